// What `zot serve` sets up in its own process before the CLI loads (src/cli/serve-process.cts,
// applied by bin/zot.js): libuv's thread pool sized for concurrent fsyncs, unless the operator
// chose a size; and the node flags and malloc setting of bin/zot.js's shebang, which apply when it
// is run directly. The pool's threads are counted in /proc: they all start at once, with the first
// file read, long before /v2/ answers.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { SERVE_THREADPOOL_SIZE } from '../../src/cli/serve-process.cjs';
import { makeTempDir, REPO_ROOT, spawnRegistry } from '../helpers/registry.js';

/**
 * What V8 holds in a running `zot serve` (started as users start it, shebang flags and all),
 * written by a module preloaded through NODE_OPTIONS once bin/zot.js has run: whether V8 accepts a
 * code cache made by a node with default flags (as Node's own modules' cache is), the heap's
 * limits, and whether gc() is there.
 */
interface V8State {
  defaultCacheAccepted: boolean;
  heapLimitMiB: number;
  /** The young generation's two semi-spaces, at the start and after a burst of garbage. */
  newSpaceAtStartMiB: number;
  newSpaceGrownMiB: number;
  gc: string;
}

async function v8StateOfServe(): Promise<V8State> {
  const dir = makeTempDir();
  const source = 'globalThis.probeValue = [1, 2, 3].map((x) => x * 2);';
  // The cache of a node without V8 flags, as Node's build makes its modules' cache.
  const made = spawnSync(process.execPath, ['-e', `process.stdout.write(new (require('node:vm').Script)(${JSON.stringify(source)}).createCachedData().toString('base64'))`], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  const out = path.join(dir, 'v8-state.json');
  const probe = path.join(dir, 'probe.cjs');
  fs.writeFileSync(
    probe,
    `setTimeout(() => {
  const vm = require('node:vm');
  const v8 = require('node:v8');
  const newSpaceMiB = () => v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space').space_size / 1048576;
  const newSpaceAtStartMiB = newSpaceMiB();
  const script = new vm.Script(${JSON.stringify(source)}, { cachedData: Buffer.from(${JSON.stringify(made.stdout)}, 'base64') });
  // Short-lived objects with some survivors, which grow the young generation to its cap.
  let kept = [];
  for (let i = 0; i < 2e6; i++) {
    kept.push({ i, list: [i] });
    if (kept.length > 50000) kept = [];
  }
  require('node:fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify({
    defaultCacheAccepted: script.cachedDataRejected === false,
    heapLimitMiB: v8.getHeapStatistics().heap_size_limit / 1048576,
    newSpaceAtStartMiB,
    newSpaceGrownMiB: newSpaceMiB(),
    gc: typeof globalThis.gc,
  }));
}, 0);
`,
  );
  const registry = await spawnRegistry({}, { env: { ...process.env, NODE_OPTIONS: `--require ${probe}` } });
  await registry.stop();
  return JSON.parse(fs.readFileSync(out, 'utf8')) as V8State;
}

async function threadsOfServe(threadpoolSize: string | undefined): Promise<number> {
  const env = { ...process.env };
  if (threadpoolSize === undefined) delete env.UV_THREADPOOL_SIZE;
  else env.UV_THREADPOOL_SIZE = threadpoolSize;
  const registry = await spawnRegistry({}, { env });
  try {
    return fs.readdirSync(`/proc/${registry.child.pid}/task`).length;
  } finally {
    await registry.stop();
  }
}

describe('zot serve process settings', () => {
  it('runs libuv with SERVE_THREADPOOL_SIZE threads, or the operator\'s UV_THREADPOOL_SIZE', { skip: !fs.existsSync('/proc/self/task') }, async () => {
    const chosen = await threadsOfServe(undefined);
    const operators = await threadsOfServe('4');
    assert.ok(SERVE_THREADPOOL_SIZE > 4);
    assert.equal(chosen - operators, SERVE_THREADPOOL_SIZE - 4, `threads: ${chosen} by default, ${operators} with UV_THREADPOOL_SIZE=4`);
  });

  it('runs V8 with an old generation capped below 2 GiB, so its growing factor stays below 4', { skip: !fs.existsSync('/proc/self/cmdline') }, async () => {
    const registry = await spawnRegistry({});
    let args: string[];
    try {
      args = fs.readFileSync(`/proc/${registry.child.pid}/cmdline`, 'utf8').split('\0');
    } finally {
      await registry.stop();
    }
    // V8 takes a factor of 4 for heaps that may reach 2 GiB (1024 MiB times its heap-limit
    // multiplier of 2 on 64-bit), and scales it down from 2.0 below that.
    const flag = args.find((a) => a.startsWith('--max-old-space-size='));
    assert.ok(flag !== undefined, `zot serve runs as: ${args.join(' ')}`);
    const mib = Number(flag.slice('--max-old-space-size='.length));
    assert.ok(mib >= 1024 && mib < 2048, `old generation capped at ${mib} MiB`);
    assert.ok(args.includes('--expose-gc'), 'young-generation collections need gc()');
  });

  it("keeps the shebang's heap limits and gc() while V8 accepts code caches made under default flags (Node's own modules')", async () => {
    const state = await v8StateOfServe();
    assert.ok(state.defaultCacheAccepted, `a code cache made under V8's default flags is rejected: ${JSON.stringify(state)}`);
    assert.ok(state.heapLimitMiB > 1024 && state.heapLimitMiB < 2048, `heap limit ${state.heapLimitMiB} MiB`);
    // Semi-spaces of 4 MiB from the start (V8 starts them at 1), and no larger after a burst (V8
    // grows them to 16): V8 counts the new space at 4 MiB, then at 8 MiB (32 without the cap).
    assert.equal(state.newSpaceAtStartMiB, 4, `new space at start ${state.newSpaceAtStartMiB} MiB`);
    assert.ok(state.newSpaceGrownMiB <= 8, `new space after a burst ${state.newSpaceGrownMiB} MiB`);
    assert.equal(state.gc, 'function', 'young-generation collections need gc()');
  });

  it('runs glibc malloc with at most two arenas (MALLOC_ARENA_MAX) and a 4 MiB top pad (MALLOC_TOP_PAD_), set by the shebang', { skip: !fs.existsSync('/proc/self/environ') }, async () => {
    const env = { ...process.env };
    delete env.MALLOC_ARENA_MAX;
    delete env.MALLOC_TOP_PAD_;
    const registry = await spawnRegistry({}, { env });
    let environment: string[];
    try {
      environment = fs.readFileSync(`/proc/${registry.child.pid}/environ`, 'utf8').split('\0');
    } finally {
      await registry.stop();
    }
    const malloc = environment.filter((v) => v.startsWith('MALLOC')).join(' ') || 'no MALLOC_*';
    assert.ok(environment.includes('MALLOC_ARENA_MAX=2'), `environment of zot serve: ${malloc}`);
    assert.ok(environment.includes('MALLOC_TOP_PAD_=4194304'), `environment of zot serve: ${malloc}`);
  });

  it('has a first line that Linux reads whole (at most 255 bytes and its newline)', () => {
    const first = fs.readFileSync(path.join(REPO_ROOT, 'bin', 'zot.js')).subarray(0, 256);
    const newline = first.indexOf(0x0a);
    assert.ok(newline > 0, 'the first 256 bytes of bin/zot.js hold its whole first line: longer, the kernel cuts it');
  });

  it('is what `npm start` runs, so the settings of its first line apply', () => {
    const scripts = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    assert.match(scripts.start ?? '', /^bin\/zot\.js serve /);
  });
});
