// Starts real registries for the tests: in-process through the same startRegistry() the CLI
// uses, or as a `zot serve` child process (for signals, crashes and the CLI itself). Every
// registry listens on a free port of 127.0.0.1 and is stopped by the test that started it.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { dump as yamlText } from 'js-yaml';
import { pino } from 'pino';
import { stringify as tomlText } from 'smol-toml';
import { startRegistry, type RunningRegistry, type StartOptions } from '../../src/app.js';
import type { Config } from '../../src/config/types.js';

/** The repository root (tests run from dist/test/helpers). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** The CLI as users start it: run directly, so its shebang's node flags apply. */
export const ZOT_BIN = path.join(REPO_ROOT, 'bin', 'zot.js');

const tempDirs: string[] = [];
// Every temporary directory a test process made is removed when that process exits.
process.on('exit', () => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

export function makeTempDir(prefix = 'zot-ts-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export interface TestConfigOptions {
  root?: string;
  port?: number;
  http?: Partial<Config['http']>;
  storage?: Partial<Config['storage']>;
  log?: Config['log'];
  metrics?: Config['metrics'];
  extensions?: Config['extensions'];
  /** The seed's top-level form; zot's newer one goes under `http`. */
  accessControl?: Config['accessControl'];
}

export function testConfig(options: TestConfigOptions = {}): Config {
  return {
    distSpecVersion: '1.1.0',
    http: { address: '127.0.0.1', port: String(options.port ?? 0), ...options.http },
    storage: { rootDirectory: options.root ?? path.join(makeTempDir(), 'root'), ...options.storage },
    log: options.log ?? { level: 'error' },
    ...(options.metrics ? { metrics: options.metrics } : {}),
    ...(options.extensions ? { extensions: options.extensions } : {}),
    ...(options.accessControl ? { accessControl: options.accessControl } : {}),
  };
}

export interface TestRegistry {
  url: string;
  root: string;
  config: Config;
  running: RunningRegistry;
  stop(): Promise<void>;
}

export async function startTestRegistry(options: TestConfigOptions = {}, start: StartOptions = {}): Promise<TestRegistry> {
  const config = testConfig(options);
  const running = await startRegistry(config, { logger: pino({ level: 'silent' }), ...start });
  return { url: running.url, root: running.rootDirectory, config, running, stop: () => running.close() };
}

export interface RegistryProcess {
  url: string;
  root: string;
  configPath: string;
  child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
}

export async function getFreePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

export interface ZotProcess {
  child: ChildProcess;
  /** What the process has written so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code once the process has closed its output. */
  exited: Promise<number | null>;
}

/** Runs the CLI (a command that ends by itself, or a `--follow` the test stops). */
export function spawnZot(args: string[], options: { cwd?: string } = {}): ZotProcess {
  const child = spawn(ZOT_BIN, args, { cwd: options.cwd ?? REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

export async function runZot(args: string[], options: { cwd?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = spawnZot(args, options);
  const code = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

export type ConfigFormat = 'json' | 'yaml' | 'toml';

export function writeConfig(config: Config, dir = makeTempDir(), format: ConfigFormat = 'json'): string {
  const file = path.join(dir, `config.${format}`);
  const text = format === 'yaml' ? yamlText(config) : format === 'toml' ? tomlText(config) : JSON.stringify(config, null, 2);
  fs.writeFileSync(file, text);
  return file;
}

export interface SpawnOptions {
  /** A command that runs `zot serve` for the test (e.g. strace and its flags); the child is then that command. */
  runUnder?: string[];
  /** The child's environment (the test's own when not given). */
  env?: NodeJS.ProcessEnv;
  /** The config file's format (JSON when not given). */
  configFormat?: ConfigFormat;
}

/** Starts `zot serve` as a child process and waits until /v2/ answers. */
export async function spawnRegistry(options: TestConfigOptions = {}, spawnOptions: SpawnOptions = {}): Promise<RegistryProcess> {
  const port = options.port ?? (await getFreePort());
  const config = testConfig({ ...options, port, log: options.log ?? { level: 'warn' } });
  const configPath = writeConfig(config, makeTempDir(), spawnOptions.configFormat);
  const [command = ZOT_BIN, ...args] = [...(spawnOptions.runUnder ?? []), ZOT_BIN, 'serve', configPath];
  const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...(spawnOptions.env ? { env: spawnOptions.env } : {}) });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`zot serve exited with ${child.exitCode}: ${output}`);
    try {
      const res = await fetch(`${url}/v2/`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`zot serve did not start within 15 s: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    root: path.resolve(config.storage.rootDirectory),
    configPath,
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill: async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
