// Running `zot serve` under strace: whether strace can trace here, and the traced process's pid.
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestContext } from 'node:test';
import { makeTempDir, spawnRegistry, type RegistryProcess } from './registry.js';

/** Why strace cannot trace here, or undefined when it can. A missing strace is a failure, not a reason. */
export function straceUnavailable(): string | undefined {
  const probe = spawnSync('strace', ['-f', '-o', '/dev/null', 'true'], { encoding: 'utf8' });
  if (probe.error) throw new Error(`strace is needed by this test and could not run (${probe.error.message}): apt-get install strace`);
  if (probe.status !== 0) return `strace cannot trace processes here (ptrace is not permitted): ${probe.stderr.trim()}`;
  return undefined;
}

/** The traced process's own pid: strace's child. */
export function tracedPid(stracePid: number): number {
  const children = fs.readFileSync(`/proc/${stracePid}/task/${stracePid}/children`, 'utf8').trim().split(/\s+/);
  assert.equal(children.length, 1, `strace runs one process: ${children.join(' ')}`);
  return Number(children[0]);
}

/**
 * Stops a registry run under strace: SIGTERM to the registry itself; strace exits with it once it
 * has written the whole trace.
 */
export async function stopTraced(strace: ChildProcess): Promise<void> {
  if (strace.exitCode !== null || strace.pid === undefined) return;
  const exited = new Promise((resolve) => strace.once('exit', resolve));
  process.kill(tracedPid(strace.pid), 'SIGTERM');
  await exited;
}

export interface TracedRegistry {
  registry: RegistryProcess;
  /** strace's output file. */
  traceFile: string;
  /** The registry's new storage root. */
  root: string;
}

/**
 * A `zot serve` on a new root, run under `strace -f <straceOptions> -o <trace file>`; undefined,
 * with the test marked skipped, where strace cannot trace here. Stop it with stopTraced.
 */
export async function spawnTraced(t: TestContext, straceOptions: readonly string[]): Promise<TracedRegistry | undefined> {
  const cannot = straceUnavailable();
  if (cannot) {
    t.skip(cannot);
    return undefined;
  }
  const traceFile = path.join(makeTempDir('zot-ts-strace-'), 'trace.txt');
  const root = path.join(makeTempDir('zot-ts-traced-'), 'root');
  const registry = await spawnRegistry({ root }, { runUnder: ['strace', '-f', ...straceOptions, '-o', traceFile] });
  return { registry, traceFile, root };
}
