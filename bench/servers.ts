// Starting and stopping the two registries under test, free ports, temp dirs, and RSS sampling.
//
// Every process started here is recorded; a process 'exit' hook SIGKILLs whatever is still alive
// (by process group, as each server is spawned as its own group leader) and removes the temp dirs,
// so an exception or Ctrl-C never leaves a registry behind.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

export type RegistryKind = 'zot' | 'distribution';

export const REGISTRY_LABEL: Record<RegistryKind, string> = {
  zot: 'zot-ts',
  distribution: 'distribution',
};

// ---------------------------------------------------------------------------------------------
// Process and temp-dir bookkeeping

const liveChildren = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let hooksInstalled = false;

function killGroupSync(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** Synchronous last-resort cleanup: kill every child we started, remove our temp dirs. */
export function cleanupSync(): void {
  for (const child of liveChildren) killGroupSync(child, 'SIGKILL');
  liveChildren.clear();
  for (const dir of tempDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
  tempDirs.clear();
}

/** Records a helper process (e.g. an S3 server) so the exit hook kills its group like a registry's. */
export function trackChild(child: ChildProcess): void {
  liveChildren.add(child);
  child.on('exit', () => liveChildren.delete(child));
}

/** Installs exit/signal hooks once. */
export function installCleanupHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: stopping registries and removing temp dirs\n`);
      cleanupSync();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

/** Creates a temp dir that is removed at exit (or earlier with removeTempDir). */
export function makeTempDir(parent: string, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(parent, prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('could not get a free port'));
        return;
      }
      const { port } = addr;
      srv.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// RSS sampling (/proc)

function readStatusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** pid and all its descendant processes (threads share the pid's memory and are not listed). */
function processTree(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0 && out.length < 256) {
    const p = queue.shift();
    if (p === undefined) break;
    out.push(p);
    let tids: string[] = [];
    try {
      tids = fs.readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const kids = fs.readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').trim();
        if (kids !== '') for (const k of kids.split(/\s+/)) queue.push(Number(k));
      } catch {
        // thread gone
      }
    }
  }
  return out;
}

let clockTicks: number | undefined;

export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(r.stdout?.trim());
    clockTicks = r.status === 0 && Number.isFinite(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

/** What the kernel has counted for a process tree so far (every thread included). */
export interface ProcessCounters {
  /** CPU seconds, user + system. */
  cpuS: number;
  /** Page faults, minor + major. */
  faults: number;
}

/** CPU time and page faults so far of a process and its descendants, from /proc/<pid>/stat. */
export function processCounters(pid: number): ProcessCounters {
  let ticks = 0;
  let faults = 0;
  for (const p of processTree(pid)) {
    try {
      // Fields after the ")" that closes the command name, from field 3 (state) on: minflt is
      // field 10, majflt 12, utime 14, stime 15.
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      faults += Number(fields[7] ?? 0) + Number(fields[9] ?? 0);
      ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
    } catch {
      // process gone
    }
  }
  return { cpuS: ticks / ticksPerSecond(), faults };
}

/** CPU seconds (user + system, all threads) used so far by a process and its descendants. */
export function cpuSeconds(pid: number): number {
  return processCounters(pid).cpuS;
}

/** Current RSS (MiB) of a process and its descendants. */
export function treeRssMiB(pid: number): number {
  let kib = 0;
  for (const p of processTree(pid)) kib += readStatusKiB(p, 'VmRSS') ?? 0;
  return kib / 1024;
}

/** Polls VmRSS of a process tree every intervalMs; keeps the peak. Reads VmHWM on demand. */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  peakTreeKiB = 0;
  peakHwmKiB = 0;
  samples = 0;

  constructor(readonly pid: number, intervalMs = 100) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  sample(): void {
    let sum = 0;
    for (const p of processTree(this.pid)) sum += readStatusKiB(p, 'VmRSS') ?? 0;
    if (sum > 0) {
      this.samples++;
      if (sum > this.peakTreeKiB) this.peakTreeKiB = sum;
    }
    const hwm = readStatusKiB(this.pid, 'VmHWM');
    if (hwm !== undefined && hwm > this.peakHwmKiB) this.peakHwmKiB = hwm;
  }

  /** Final sample (call before the process is stopped) and stop polling. */
  stop(): void {
    this.sample();
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Peak in MiB: the larger of the kernel's VmHWM and the polled process-tree RSS. */
  get peakMiB(): number {
    return Math.max(this.peakHwmKiB, this.peakTreeKiB) / 1024;
  }
}

// ---------------------------------------------------------------------------------------------
// Registries

export interface ServerHandle {
  kind: RegistryKind;
  port: number;
  baseUrl: string;
  pid: number;
  /** Milliseconds from spawn to the first 200 on GET /v2/. */
  startupMs: number;
  dir: string;
  /** The registry's storage root: under `dir`, or StartOptions.dataDir. */
  dataDir: string;
  rss: RssSampler;
  /** Exit status, if the process already exited. */
  exitStatus(): string | undefined;
  /** Last lines of the server's stdout+stderr. */
  logTail(): string;
  /** Bytes of output so far: a mark for logSince. */
  logMark(): number;
  /** Output since a mark (as far as the retained tail reaches). */
  logSince(mark: number): string;
  stop(): Promise<void>;
}

export interface StartOptions {
  kind: RegistryKind;
  /** Parent temp dir; a per-instance dir is created in it. */
  tmpRoot: string;
  /** Repository root (cwd for `node bin/zot.js`). */
  repoRoot: string;
  readyTimeoutMs?: number;
  distributionBinary?: string;
  /** Top-level sections added to zot-ts's config, e.g. `{ extensions: { metrics: { enable: true } } }`. */
  zotConfig?: Record<string, unknown>;
  /**
   * Keys merged into zot-ts's `storage` section over the bench's dedupe and gc off, e.g.
   * `{ dedupe: true }` or `{ storageDriver: { name: 's3', ... } }`.
   */
  zotStorage?: Record<string, unknown>;
  /** Keys merged into zot-ts's `http` section over address and port, e.g. `{ ratelimit: { rate: 10 } }`. */
  zotHttp?: Record<string, unknown>;
  /** distribution's s3 driver parameters, in place of its filesystem driver. */
  distributionS3?: Record<string, string | number | boolean>;
  /** distribution as a pull-through cache (its `proxy: remoteurl:`) of this upstream URL. */
  distributionProxy?: string;
  /**
   * An htpasswd file both registries authenticate against (zot-ts: http.auth.htpasswd,
   * distribution: auth.htpasswd); GET /v2/ then answers 401 until the client authenticates.
   */
  htpasswd?: string;
  /**
   * An existing storage root to serve (the caller creates and removes it), so a second server
   * with other settings can take over the first one's content.
   */
  dataDir?: string;
}

function distributionConfig(dataDir: string, port: number, s3?: Record<string, string | number | boolean>, htpasswd?: string, proxy?: string): string {
  // With s3, blob GETs are served by the registry (redirect disabled), as zot-ts serves them,
  // instead of a 307 to the object store that the bench client would refuse to follow.
  const driver =
    s3 === undefined
      ? ['  filesystem:', `    rootdirectory: ${dataDir}`]
      : ['  s3:', ...Object.entries(s3).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`), '  redirect:', '    disable: true'];
  return [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    ...driver,
    '  delete:',
    '    enabled: true',
    '  cache:',
    '    blobdescriptor: inmemory',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  secret: zot-ts-bench-not-a-secret',
    ...(htpasswd === undefined ? [] : ['auth:', '  htpasswd:', '    realm: zot-ts-bench', `    path: ${htpasswd}`]),
    ...(proxy === undefined ? [] : ['proxy:', `  remoteurl: ${proxy}`]),
    '',
  ].join('\n');
}

function zotConfig(
  dataDir: string,
  port: number,
  extra: Record<string, unknown> = {},
  storage: Record<string, unknown> = {},
  http: Record<string, unknown> = {},
  htpasswd?: string,
): string {
  return `${JSON.stringify(
    {
      distSpecVersion: '1.1.0',
      http: { address: '127.0.0.1', port: String(port), ...http, ...(htpasswd === undefined ? {} : { auth: { htpasswd: { path: htpasswd } } }) },
      storage: { rootDirectory: dataDir, dedupe: false, gc: false, ...storage },
      log: { level: 'warn' },
      ...extra,
    },
    null,
    2,
  )}\n`;
}

/**
 * Between two readiness probes. The wait is part of the start-up figure (figure 8): at 10 ms it
 * added 0-10 ms, some 5 on average, to both registries' starts (a sixth of distribution's). A
 * refused probe costs the bench well under a millisecond of CPU.
 */
const READY_POLL_MS = 2;

/** One GET /v2/ without keep-alive; resolves the status, or 0 on connection errors. */
function probe(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: '/v2/', method: 'GET', agent: false, timeout: 1000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });
}

/**
 * The server's environment. distribution's s3 driver (aws-sdk-go v1) panics at start when
 * AWS_CA_BUNDLE is set ("unable to load custom CA bundle, HTTPClient's transport unsupported
 * type"): its HTTP client is wrapped. The S3 endpoint is plain HTTP on loopback, so it is dropped.
 */
function serverEnv(opts: StartOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'production' };
  if (opts.distributionS3 !== undefined) delete env.AWS_CA_BUNDLE;
  return env;
}

/** Starts one registry on a free port and waits for GET /v2/ to answer 200 (401 with htpasswd). */
export async function startRegistry(opts: StartOptions): Promise<ServerHandle> {
  installCleanupHooks();
  const dir = fs.mkdtempSync(path.join(opts.tmpRoot, `${opts.kind}-`));
  const dataDir = opts.dataDir ?? path.join(dir, opts.kind === 'zot' ? 'zot' : 'data');
  fs.mkdirSync(dataDir, { recursive: true });
  const port = await freePort();
  let command: string;
  let args: string[];
  let configPath: string;
  if (opts.kind === 'distribution') {
    configPath = path.join(dir, 'config.yml');
    fs.writeFileSync(configPath, distributionConfig(dataDir, port, opts.distributionS3, opts.htpasswd, opts.distributionProxy));
    command = opts.distributionBinary ?? '/usr/bin/docker-registry';
    args = ['serve', configPath];
  } else {
    configPath = path.join(dir, 'config.json');
    fs.writeFileSync(configPath, zotConfig(dataDir, port, opts.zotConfig, opts.zotStorage, opts.zotHttp, opts.htpasswd));
    // Run directly, as users do, so the node flags of its shebang apply.
    command = path.join(opts.repoRoot, 'bin', 'zot.js');
    args = ['serve', configPath];
  }

  const logPath = path.join(dir, 'server.log');
  const logFd = fs.openSync(logPath, 'a');
  const TAIL_CHARS = 64_000;
  let tail = '';
  let logged = 0;
  const keepTail = (chunk: Buffer): void => {
    fs.writeSync(logFd, chunk);
    const text = chunk.toString('utf8');
    logged += text.length;
    tail = (tail + text).slice(-TAIL_CHARS);
  };

  const t0 = performance.now();
  const child = spawn(command, args, {
    cwd: opts.repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group, so the whole tree can be killed
    env: serverEnv(opts),
  });
  liveChildren.add(child);
  child.stdout?.on('data', keepTail);
  child.stderr?.on('data', keepTail);
  let spawnError: Error | undefined;
  child.on('error', (err) => {
    spawnError = err;
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  child.on('exit', () => liveChildren.delete(child));
  const exitStatus = (): string | undefined => {
    if (spawnError !== undefined) return `spawn failed: ${spawnError.message}`;
    if (child.exitCode !== null) return `exited with code ${child.exitCode}`;
    if (child.signalCode !== null) return `killed by ${child.signalCode}`;
    return undefined;
  };

  const stop = async (): Promise<void> => {
    if (exitStatus() === undefined) {
      killGroupSync(child, 'SIGTERM');
      const timedOut = await Promise.race([exited.then(() => false), sleep(5000).then(() => true)]);
      if (timedOut) {
        killGroupSync(child, 'SIGKILL');
        await Promise.race([exited, sleep(2000)]);
      }
    }
    liveChildren.delete(child);
    try {
      fs.closeSync(logFd);
    } catch {
      // already closed
    }
  };

  const deadline = t0 + (opts.readyTimeoutMs ?? 60_000);
  let lastStatus = 0;
  for (;;) {
    const st = exitStatus();
    if (st !== undefined) {
      await stop();
      throw new Error(`${REGISTRY_LABEL[opts.kind]} ${st} before answering GET /v2/; log tail:\n${tail.slice(-4000).trim()}`);
    }
    lastStatus = await probe(port);
    // With authentication the base endpoint asks for credentials: the server is up.
    if (lastStatus === 200 || (opts.htpasswd !== undefined && lastStatus === 401)) break;
    if (performance.now() > deadline) {
      await stop();
      throw new Error(
        `${REGISTRY_LABEL[opts.kind]} did not answer 200 on GET /v2/ within ${opts.readyTimeoutMs ?? 60_000} ms ` +
          `(last status ${lastStatus || 'connection refused'}); log tail:\n${tail.slice(-4000).trim()}`,
      );
    }
    await sleep(READY_POLL_MS);
  }
  const startupMs = performance.now() - t0;
  if (child.pid === undefined) throw new Error('spawned process has no pid');

  return {
    kind: opts.kind,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    pid: child.pid,
    startupMs,
    dir,
    dataDir,
    rss: new RssSampler(child.pid),
    exitStatus,
    logTail: () => tail.slice(-4000).trim(),
    logMark: () => logged,
    logSince: (mark: number) => tail.slice(-Math.min(tail.length, Math.max(0, logged - mark))),
    stop,
  };
}

/** The version string of the distribution binary, for the report. */
export function distributionVersion(binary = '/usr/bin/docker-registry'): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(binary, ['--version'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.on('error', () => resolve('unavailable'));
    child.on('exit', () => resolve(out.trim() || 'unknown'));
  });
}

interface PinoLine {
  level?: number;
  msg?: string;
  err?: { type?: string; message?: string; stack?: string };
}

/**
 * The last error a server logged in `text`, summarised on one line: pino JSON lines (zot-ts) with
 * level >= 50, or logrus/Go lines (distribution) with level=error/fatal/panic. Undefined if none.
 */
export function lastLoggedError(text: string): string | undefined {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  let count = 0;
  let last: string | undefined;
  for (const line of lines) {
    let summary: string | undefined;
    if (line.startsWith('{')) {
      try {
        const entry = JSON.parse(line) as PinoLine;
        if ((entry.level ?? 0) >= 50) {
          const frames = (entry.err?.stack ?? '')
            .split('\n')
            .filter((f) => f.trim().startsWith('at '))
            .slice(0, 4)
            .map((f) => f.trim().replace(/^at /, '').replace(/(?:file:\/\/)?\/\S*?\/(dist\/|node_modules\/)/g, '$1'))
            .join(' < ');
          summary = `${entry.msg ?? 'error'}: ${entry.err?.type ?? 'Error'}: ${entry.err?.message ?? '?'}${frames === '' ? '' : ` (at ${frames})`}`;
        }
      } catch {
        // a partial line at the start of the tail
      }
    } else if (/level=(error|fatal|panic)|^panic:/.test(line)) {
      summary = line.slice(0, 600);
    }
    if (summary !== undefined) {
      count++;
      last = summary;
    }
  }
  return last === undefined ? undefined : `${last}${count > 1 ? ` [${count} error lines in this scenario]` : ''}`;
}
