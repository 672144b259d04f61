// zot-ts vs. the CNCF distribution registry (Debian's docker-registry), side by side, in one run,
// with the same clients, both on 127.0.0.1: curl for the big single-request pushes (figure 1 and
// the push of 6) and the second pull figure (3b, bench/curl-client.ts), clients in processes of
// their own for the chunked push (figure 2, bench/chunked-push-child.ts) and the pull (figure 3,
// bench/pull-child.ts), bench/client.ts (node:http) in the bench process for everything else.
//
//   npm run bench                       # full run
//   npm run bench -- --quick            # smoke run with smaller sizes and shorter loops
//   npm run bench -- --only distribution
//   npm run bench -- --only metrics     # zot-ts with metrics and audit log off and on, nothing else
//   npm run bench -- --only options     # zot-ts with the rate limiter and a NATS events sink, each next to none
//   npm run bench -- --only storage     # figures 10–12 only: dedupe on disk, S3, GETs during GC
//   npm run bench -- --only datapath    # figures 1–3 and 6–8 only: big pushes and pulls, GETs during a push
//   npm run bench -- --only small       # figure 4 only: small images, both registries, alternating, median of 5
//   npm run bench -- --only small-ab --against ../other-checkout
//                                       # figure 4 for this build next to another build of zot-ts (bench/small-ab.ts)
//   npm run bench -- --only auth        # manifest GETs anonymous and with htpasswd, both registries
//   npm run bench -- --only sync        # sync figures only: periodic mirror, on-demand first pull
//   npm run bench -- --only startup     # cold start and idle RSS only, both registries, median of 7
//   npm run bench -- --only scale       # zot-ts with 100,000 manifests and ~1,000,000 events (--quick: a tenth)
//
// Progress goes to stderr; the results table goes to stdout and, as JSON, to a file in
// os.tmpdir() whose path is printed at the end.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { bundleIsCurrent, cliEntryPoints } from '../src/cli/bundle-loader.cjs';
import type { BlobFile } from './client.js';
import { measureAuthCost, renderAuthCost } from './auth-cost.js';
import { childrenCpuS } from './curl-client.js';
import { measureMetricsCost, renderMetricsCost, type MetricsCostResult } from './metrics-cost.js';
import { measureOptionsCost, renderOptionsCost, type OptionsCostResult } from './options-cost.js';
import { measureScale, renderScale } from './scale.js';
import { measureSmallAb, renderSmallAb } from './small-ab.js';
import { measureStorage, type DiskRun, type DiskVariant, type StorageResult, type TransferRuns } from './storage-scenarios.js';
import { measureStartup, renderStartup } from './startup-scenarios.js';
import { measureSync, renderSync } from './sync-scenarios.js';
import {
  latencyUnderPush,
  manifestGets,
  median,
  pullBlob,
  pullBlobWithCurl,
  pushChunked,
  pushMonolithic,
  pushSmallImages,
  sizesFor,
  writeRandomFile,
  type LatencyStats,
  type Sizes,
  type SmallImagesResult,
  type ThroughputResult,
  type UnderLoadResult,
} from './scenarios.js';
import {
  processCounters,
  distributionVersion,
  lastLoggedError,
  installCleanupHooks,
  makeTempDir,
  REGISTRY_LABEL,
  removeTempDir,
  startRegistry,
  treeRssMiB,
  type RegistryKind,
  type ServerHandle,
} from './servers.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const KINDS: readonly RegistryKind[] = ['zot', 'distribution'];
const MiB = 1024 * 1024;

interface Options {
  quick: boolean;
  /** The results as JSON on stdout (the report goes to stderr); without it, the report on stdout. */
  json: boolean;
  /**
   * One registry; `metrics`: only zot-ts with metrics and audit log off and on; `storage`: only
   * figures 10–12, both registries; `datapath`: only figures 1–3 and 6–8, both registries;
   * `scale`: only zot-ts at 100,000 manifests (bench/scale.ts); `small-ab`: figure 4 for this
   * build next to the one at `against` (bench/small-ab.ts).
   */
  only: RegistryKind | 'metrics' | 'options' | 'storage' | 'datapath' | 'small' | 'small-ab' | 'auth' | 'sync' | 'startup' | 'scale' | undefined;
  /** The other zot-ts checkout of `--only small-ab`. */
  against: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      json: { type: 'boolean', default: false },
      against: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(
      'usage: node dist/bench/run.js [--quick] [--json] [--only zot|distribution|metrics|options|storage|datapath|small|auth|sync|startup|scale]\n' +
        '       node dist/bench/run.js [--quick] [--json] --only small-ab --against <another zot-ts checkout, built>\n',
    );
    process.exit(0);
  }
  const only = values.only;
  if (
    only !== undefined &&
    only !== 'zot' &&
    only !== 'distribution' &&
    only !== 'metrics' &&
    only !== 'options' &&
    only !== 'storage' &&
    only !== 'datapath' &&
    only !== 'small' &&
    only !== 'small-ab' &&
    only !== 'auth' &&
    only !== 'sync' &&
    only !== 'startup' &&
    only !== 'scale'
  ) {
    throw new Error(`--only must be zot, distribution, metrics, options, storage, datapath, small, small-ab, auth, sync, startup or scale, not ${only}`);
  }
  if ((only === 'small-ab') !== (values.against !== undefined)) throw new Error('--only small-ab needs --against <another zot-ts checkout>, and --against goes with it only');
  return { quick: values.quick === true, json: values.json === true, only, against: values.against };
}

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);
}

/** Where `publish` puts the JSON: set once from the command line. */
let jsonOnStdout = false;

/**
 * Writes a run's results as JSON to $TMPDIR/`fileName` and prints its report: on stdout, or with
 * `--json` on stderr with the JSON itself on stdout (for a pipe).
 */
function publish(fileName: string, json: object, report: string): void {
  const resultPath = path.join(os.tmpdir(), fileName);
  const text = `${JSON.stringify(json, errorsAsText, 2)}\n`;
  fs.writeFileSync(resultPath, text);
  const readable = `${report}\n\nResults as JSON: ${resultPath}\n`;
  if (jsonOnStdout) {
    process.stderr.write(readable);
    process.stdout.write(text);
  } else {
    process.stdout.write(readable);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------------------------
// One registry under test: its current server, restarts, RSS peaks, failures

interface CpuRecord {
  scenario: string;
  wallS: number;
  serverCpuS: number;
  /** Page faults of the server, minor and major. */
  serverFaults: number;
  /** The bench process and the processes it ran; for a big transfer, the client's own count over it. */
  clientCpuS: number;
}

interface Failure {
  registry: string;
  scenario: string;
  error: string;
}

class Contender {
  server: ServerHandle | undefined;
  startupMs: number[] = [];
  /** RSS (MiB) of each started instance once idle, before its first scenario. */
  idleRssMiB: number[] = [];
  startErrors: string[] = [];
  /** Peak RSS (MiB) of every instance that ran scenarios (normally one). */
  rssPeaksMiB: number[] = [];
  notes: string[] = [];
  failures: Failure[] = [];
  /** Server and client CPU seconds, and wall seconds, per measurement. */
  cpu: CpuRecord[] = [];

  constructor(
    readonly kind: RegistryKind,
    private readonly tmpRoot: string,
  ) {}

  get label(): string {
    return REGISTRY_LABEL[this.kind];
  }

  async start(): Promise<ServerHandle> {
    const server = await startRegistry({ kind: this.kind, tmpRoot: this.tmpRoot, repoRoot: REPO_ROOT });
    log(`${this.label}: pid ${server.pid} on ${server.baseUrl}, ready after ${server.startupMs.toFixed(0)} ms`);
    return server;
  }

  /** Stops a server, keeping its RSS peak if it ran scenarios, and removes its directory. */
  async retire(server: ServerHandle, keepRss: boolean): Promise<void> {
    server.rss.stop();
    if (keepRss) this.rssPeaksMiB.push(server.rss.peakMiB);
    await server.stop();
    removeTempDir(server.dir);
  }

  /** The running server, restarted (and noted) if it died. */
  async ensure(): Promise<ServerHandle> {
    if (this.server !== undefined) {
      const status = this.server.exitStatus();
      if (status === undefined) return this.server;
      this.notes.push(`${this.label} server ${status}; restarted it. Log tail: ${this.server.logTail().slice(-800)}`);
      const dead = this.server;
      this.server = undefined;
      await this.retire(dead, true);
    }
    this.server = await this.start();
    return this.server;
  }

  /** Runs one measurement; a failure is recorded and returned, never thrown. */
  async measure<T>(scenario: string, fn: (server: ServerHandle) => Promise<T>): Promise<T | Error> {
    let server: ServerHandle;
    try {
      server = await this.ensure();
    } catch (err) {
      const error = `could not start the server: ${errorText(err)}`;
      this.failures.push({ registry: this.label, scenario, error });
      log(`${this.label} ${scenario}: FAILED ${error}`);
      return new Error(error);
    }
    // Each timed run starts with no dirty pages left by the other registry's run: distribution
    // never fsyncs, so its writes went to disk during whichever run came next (ours, as runs
    // alternate), against our fsyncs; and ext4 without a journal skips inodes freed in the last
    // 60 s, or 360 s while their inode table block is still dirty, at every allocation.
    spawnSync('sync');
    const logMark = server.logMark();
    const wall0 = performance.now();
    const server0 = processCounters(server.pid);
    const client0 = process.cpuUsage();
    const curl0 = childrenCpuS();
    try {
      return await fn(server);
    } catch (err) {
      let error = errorText(err);
      const status = server.exitStatus();
      if (status !== undefined) error += ` [server ${status}; log tail: ${server.logTail().slice(-1500)}]`;
      else {
        const logged = lastLoggedError(server.logSince(logMark));
        if (logged !== undefined) error += ` | server logged: ${logged}`;
      }
      this.failures.push({ registry: this.label, scenario, error });
      log(`${this.label} ${scenario}: FAILED ${error}`);
      return err instanceof Error ? err : new Error(error);
    } finally {
      const client = process.cpuUsage(client0);
      const server1 = processCounters(server.pid);
      this.cpu.push({
        scenario,
        wallS: (performance.now() - wall0) / 1000,
        serverCpuS: server1.cpuS - server0.cpuS,
        serverFaults: server1.faults - server0.faults,
        // The bench process and the curl processes it ran.
        clientCpuS: (client.user + client.system) / 1e6 + (childrenCpuS() - curl0),
      });
    }
  }

  /** CPU seconds per scenario, summed over its runs. */
  cpuByScenario(): Map<string, { wall: number; server: number; client: number }> {
    const byScenario = new Map<string, { wall: number; server: number; client: number }>();
    for (const r of this.cpu) {
      const acc = byScenario.get(r.scenario) ?? { wall: 0, server: 0, client: 0 };
      acc.wall += r.wallS;
      acc.server += r.serverCpuS;
      acc.client += r.clientCpuS;
      byScenario.set(r.scenario, acc);
    }
    return byScenario;
  }

  /** Server CPU seconds, and cores used (CPU seconds per wall second) by server and client. */
  cpuSummary(): string {
    return [...this.cpuByScenario().entries()]
      .map(([name, a]) => `${name.split(' ')[0] ?? name} ${a.server.toFixed(1)} s (${(a.server / a.wall).toFixed(2)} cores; client ${(a.client / a.wall).toFixed(2)})`)
      .join(', ');
  }

  /** Notes for scenarios where the benchmark client, not the server, was the limit. */
  clientBoundNotes(): string[] {
    const notes: string[] = [];
    for (const [name, a] of this.cpuByScenario()) {
      const client = a.client / a.wall;
      const server = a.server / a.wall;
      if (client >= 0.8) {
        notes.push(
          `${this.label} / ${name}: the client used ${client.toFixed(2)} cores (the bench's event loop and each curl run on one) and the server ` +
            `${server.toFixed(2)} of ${os.cpus().length}; the client was near saturation, so this figure is a lower bound for the server.`,
        );
      }
    }
    return notes;
  }
}

// ---------------------------------------------------------------------------------------------
// Results table

type Better = 'higher' | 'lower';

interface Cell {
  value?: number;
  /** Shown instead of a number when the figure does not apply to this registry. */
  text?: string;
  error?: string;
  note?: string;
  /** Errors of failed repetitions when others succeeded. */
  failedRuns?: string[];
}

interface Row {
  figure: string;
  unit: string;
  better: Better;
  digits: number;
  cells: Partial<Record<RegistryKind, Cell>>;
}

interface Collected {
  startup: Cell;
  idleRss: Cell;
  pushMono: ThroughputResult[];
  pushMonoErr: string[];
  pushChunked: ThroughputResult[];
  pushChunkedErr: string[];
  pull: ThroughputResult[];
  pullErr: string[];
  pullByCurl: ThroughputResult[];
  pullByCurlErr: string[];
  small: SmallImagesResult[];
  smallErr: string[];
  gets: LatencyStats | Error | undefined;
  underLoad: UnderLoadResult[];
  underLoadErr: string[];
  rss: Cell;
}

function emptyCollected(): Collected {
  return {
    startup: {},
    idleRss: {},
    pushMono: [],
    pushMonoErr: [],
    pushChunked: [],
    pushChunkedErr: [],
    pull: [],
    pullErr: [],
    pullByCurl: [],
    pullByCurlErr: [],
    small: [],
    smallErr: [],
    gets: undefined,
    underLoad: [],
    underLoadErr: [],
    rss: {},
  };
}

function medianCell<T = ThroughputResult>(
  values: T[],
  errors: string[],
  reps: number,
  pick: (r: T) => number | undefined = (r) => (r as ThroughputResult).mibPerS,
): Cell {
  const picked = values.flatMap((v) => {
    const x = pick(v);
    return x === undefined ? [] : [x];
  });
  if (picked.length === 0) return { error: errors[0] ?? 'not run' };
  const cell: Cell = { value: median(picked) };
  if (errors.length > 0) {
    cell.note = `${errors.length}/${reps} failed`;
    cell.failedRuns = errors;
  }
  return cell;
}

function fromResult<T>(r: T | Error | undefined, pick: (v: T) => number): Cell {
  if (r === undefined) return { error: 'not run' };
  if (r instanceof Error) return { error: r.message };
  return { value: pick(r) };
}

function buildRows(sizes: Sizes, data: Partial<Record<RegistryKind, Collected>>): Row[] {
  const blob = `${sizes.blobBytes / MiB} MiB`;
  const big = sizes.bigPushBytes >= 1024 * MiB ? `${sizes.bigPushBytes / 1024 / MiB} GiB` : `${sizes.bigPushBytes / MiB} MiB`;
  const secs = `${sizes.getDurationMs / 1000} s`;
  const reps = sizes.reps;
  const row = (figure: string, unit: string, better: Better, digits: number, cell: (c: Collected) => Cell): Row => {
    const cells: Partial<Record<RegistryKind, Cell>> = {};
    for (const k of KINDS) {
      const c = data[k];
      if (c !== undefined) cells[k] = cell(c);
    }
    return { figure, unit, better, digits, cells };
  };
  // What the registry process spent per MiB moved (all its threads, from /proc/<pid>/stat), and
  // what the client spent (curl, or the chunked push's or the pull's own process): a client near
  // one core would be the limit, not the registry.
  const serverCostRows = (what: string, runs: (c: Collected) => [ThroughputResult[], string[]], reps = sizes.reps): Row[] => [
    row(`${what}: registry CPU per MiB (median)`, 'ms', 'lower', 2, (c) => medianCell(...runs(c), reps, (r) => r.serverCpuMsPerMiB)),
    row(`${what}: registry page faults per MiB (median)`, 'faults', 'lower', 2, (c) => medianCell(...runs(c), reps, (r) => r.serverFaultsPerMiB)),
    row(`${what}: client CPU per MiB (median)`, 'ms', 'lower', 2, (c) => medianCell(...runs(c), reps, (r) => r.clientCpuMsPerMiB)),
  ];
  return [
    row(`1. push ${blob} monolithic (median of ${reps})`, 'MiB/s', 'higher', 1, (c) => medianCell(c.pushMono, c.pushMonoErr, reps)),
    row(`2. push ${blob} in ${sizes.chunkBytes / MiB} MiB chunks (median of ${reps})`, 'MiB/s', 'higher', 1, (c) =>
      medianCell(c.pushChunked, c.pushChunkedErr, reps),
    ),
    row(`3. pull ${blob} (median of ${sizes.pullReps})`, 'MiB/s', 'higher', 1, (c) => medianCell(c.pull, c.pullErr, sizes.pullReps)),
    row(`3b. pull ${blob} by curl (median of ${sizes.pullReps})`, 'MiB/s', 'higher', 1, (c) => medianCell(c.pullByCurl, c.pullByCurlErr, sizes.pullReps)),
    ...serverCostRows('1. monolithic push', (c) => [c.pushMono, c.pushMonoErr]),
    ...serverCostRows('2. chunked push', (c) => [c.pushChunked, c.pushChunkedErr]),
    ...serverCostRows('3. pull', (c) => [c.pull, c.pullErr], sizes.pullReps),
    ...serverCostRows('3b. pull by curl', (c) => [c.pullByCurl, c.pullByCurlErr], sizes.pullReps),
    ...smallImageRows(sizes, row),
    row(`5. manifest GET c=${sizes.getConcurrency}, ${secs}: throughput`, 'req/s', 'higher', 0, (c) => fromResult(c.gets, (v) => v.rps)),
    row(`5. manifest GET c=${sizes.getConcurrency}: p50`, 'ms', 'lower', 2, (c) => fromResult(c.gets, (v) => v.p50Ms)),
    row(`5. manifest GET c=${sizes.getConcurrency}: p99`, 'ms', 'lower', 2, (c) => fromResult(c.gets, (v) => v.p99Ms)),
    ...underLoadRows(sizes, big, row),
    row(`7. peak RSS of the server over the run`, 'MiB', 'lower', 1, (c) => c.rss),
    row(`8. start-up, spawn to first 200 on /v2/ (median of 3)`, 'ms', 'lower', 0, (c) => c.startup),
    row(`8. idle RSS after start (median of 3)`, 'MiB', 'lower', 1, (c) => c.idleRss),
  ];
}

/**
 * Figure 6: manifest GET latency idle and during a big push, medians over `latencyReps` runs; each
 * run's ratio pairs its own idle and loaded loops, so the ratio is the median of those.
 */
function underLoadRows(sizes: Sizes, big: string, row: (figure: string, unit: string, better: Better, digits: number, cell: (c: Collected) => Cell) => Row): Row[] {
  const lc = sizes.latencyConcurrency;
  const n = sizes.latencyReps;
  const of = n > 1 ? ` (median of ${n})` : '';
  const cell = (c: Collected, pick: (r: UnderLoadResult) => number): Cell => medianCell(c.underLoad, c.underLoadErr, n, pick);
  return [
    row(`6. manifest GET c=${lc} idle: p50${of}`, 'ms', 'lower', 2, (c) => cell(c, (v) => v.idle.p50Ms)),
    row(`6. manifest GET c=${lc} idle: p99${of}`, 'ms', 'lower', 2, (c) => cell(c, (v) => v.idle.p99Ms)),
    row(`6. manifest GET c=${lc} during ${big} push: p50${of}`, 'ms', 'lower', 2, (c) => cell(c, (v) => v.during.p50Ms)),
    row(`6. manifest GET c=${lc} during ${big} push: p99${of}`, 'ms', 'lower', 2, (c) => cell(c, (v) => v.during.p99Ms)),
    row(`6. p50 ratio during/idle${of}`, 'x', 'lower', 2, (c) => cell(c, (v) => v.p50Ratio)),
    row(`6. p99 ratio during/idle${of}`, 'x', 'lower', 2, (c) => cell(c, (v) => v.p99Ratio)),
    row(`6. the ${big} push itself (under GET load)${of}`, 'MiB/s', 'higher', 1, (c) => cell(c, (v) => v.pushMiBPerS)),
    row(`6. client (curl) CPU per MiB of that push${of}`, 'ms', 'lower', 2, (c) => cell(c, (v) => v.pushClientCpuMsPerMiB)),
  ];
}

/**
 * Figure 4 and what goes with it: the latency of one image (its first blob request to the manifest
 * PUT's answer), and the CPU the registry and the bench's node client spent per image, so a client
 * near one core shows. Medians over `reps` rounds, in a whole-bench run as with --only small.
 */
function smallImageRows(sizes: Sizes, row: (figure: string, unit: string, better: Better, digits: number, cell: (c: Collected) => Cell) => Row): Row[] {
  const f = `4. push ${sizes.smallImages} small images, c=${sizes.smallConcurrency}`;
  const cell = (c: Collected, pick: (r: SmallImagesResult) => number | undefined): Cell => medianCell(c.small, c.smallErr, c.small.length + c.smallErr.length, pick);
  return [
    row(f, 'images/s', 'higher', 1, (c) => cell(c, (r) => r.imagesPerS)),
    row(`4. per image, first blob request to manifest answer: p50`, 'ms', 'lower', 1, (c) => cell(c, (r) => r.perImage.p50Ms)),
    row(`4. per image: p99`, 'ms', 'lower', 1, (c) => cell(c, (r) => r.perImage.p99Ms)),
    row(`4. registry CPU per image`, 'ms', 'lower', 2, (c) => cell(c, (r) => r.serverCpuMsPerImage)),
    row(`4. client (bench node process) CPU per image`, 'ms', 'lower', 2, (c) => cell(c, (r) => r.clientCpuMsPerImage)),
  ];
}

/** Rows of figures 10–12, from measureStorage; a registry not run has no cell ("skipped"). */
function storageRows(st: StorageResult, kinds: readonly RegistryKind[]): Row[] {
  const s = st.sizes;
  const row = (figure: string, unit: string, better: Better, digits: number, zot: Cell, distribution: Cell): Row => {
    const cells: Partial<Record<RegistryKind, Cell>> = {};
    if (kinds.includes('zot')) cells.zot = zot;
    if (kinds.includes('distribution')) cells.distribution = distribution;
    return { figure, unit, better, digits, cells };
  };
  const disk = (v: DiskVariant, pick: (r: DiskRun) => number | undefined): Cell => {
    const r = st.disk[v];
    if (r === undefined) return { error: 'not run' };
    if (r instanceof Error) return { error: r.message };
    const value = pick(r);
    return value === undefined ? { error: 'not measured' } : { value };
  };
  const mib = (bytes: number): number => bytes / MiB;
  const dedupeSaving = (): Cell => {
    const on = disk('zot-dedupe', (r) => r.usage.allocatedBytes);
    const off = disk('zot-no-dedupe', (r) => r.usage.allocatedBytes);
    if (on.value === undefined || off.value === undefined) return { error: on.error ?? off.error ?? 'not run' };
    return { value: off.value / on.value };
  };
  const transfer = (kind: RegistryKind, backend: 'fs' | 's3', pick: (t: TransferRuns) => number[]): Cell => {
    if (st.s3 instanceof Error) return { error: st.s3.message };
    const t = st.s3.registries[kind]?.[backend];
    if (t === undefined) return { error: 'not run' };
    if (t.skipped !== undefined) return { text: 'n/a: see note 11' };
    const values = pick(t);
    if (values.length === 0) return { error: t.errors[0] ?? 'not run' };
    const cell: Cell = { value: median(values) };
    if (t.errors.length > 0) {
      cell.note = `${t.errors.length}/${s.s3Reps} failed`;
      cell.failedRuns = t.errors;
    }
    return cell;
  };
  const s3Ratio = (kind: RegistryKind, pick: (t: TransferRuns) => number[]): Cell => {
    const a = transfer(kind, 's3', pick);
    const b = transfer(kind, 'fs', pick);
    if (a.text !== undefined) return a;
    if (a.value === undefined || b.value === undefined) return { error: a.error ?? b.error ?? 'not run' };
    return { value: a.value / b.value };
  };
  const push = (t: TransferRuns): number[] => t.pushMiBPerS;
  const pull = (t: TransferRuns): number[] => t.pullMiBPerS;
  const gc = (pick: (g: Exclude<StorageResult['gc'], Error | undefined>) => number): Cell => fromResult(st.gc, pick);
  const offline: Cell = { text: 'n/a: offline GC' };
  const base = s.baseLayerBytes.reduce((a, b) => a + b, 0) / MiB;
  const n = s.diskImages;
  const blob = `${s.s3BlobBytes / MiB} MiB`;
  const lc = s.gcGetConcurrency;
  return [
    row(`10. disk after ${n} images (${s.baseLayerBytes.length} shared base layers, ${base} MiB) in ${n} repos`, 'MiB', 'lower', 1,
      disk('zot-dedupe', (r) => mib(r.usage.allocatedBytes)), disk('distribution', (r) => mib(r.usage.allocatedBytes))),
    row(`10. the same, zot-ts with dedupe off`, 'MiB', 'lower', 1,
      disk('zot-no-dedupe', (r) => mib(r.usage.allocatedBytes)), { text: 'n/a: no such setting' }),
    row(`10. what dedupe saves (dedupe off / on)`, 'x', 'higher', 1, dedupeSaving(), { text: 'n/a' }),
    row(`10. zot-ts event log (.zot-ts/, not in the above), dedupe on`, 'MiB', 'lower', 1,
      disk('zot-dedupe', (r) => (r.eventLog === undefined ? undefined : mib(r.eventLog.allocatedBytes))), { text: 'n/a: no event log' }),
    row(`11. push ${blob} to filesystem (median of ${s.s3Reps})`, 'MiB/s', 'higher', 1, transfer('zot', 'fs', push), transfer('distribution', 'fs', push)),
    row(`11. push ${blob} to S3 (s3rver on 127.0.0.1)`, 'MiB/s', 'higher', 1, transfer('zot', 's3', push), transfer('distribution', 's3', push)),
    row(`11. push S3 / filesystem`, 'x', 'higher', 2, s3Ratio('zot', push), s3Ratio('distribution', push)),
    row(`11. pull ${blob} from filesystem (median of ${s.s3Reps})`, 'MiB/s', 'higher', 1, transfer('zot', 'fs', pull), transfer('distribution', 'fs', pull)),
    row(`11. pull ${blob} from S3 (s3rver on 127.0.0.1)`, 'MiB/s', 'higher', 1, transfer('zot', 's3', pull), transfer('distribution', 's3', pull)),
    row(`11. pull S3 / filesystem`, 'x', 'higher', 2, s3Ratio('zot', pull), s3Ratio('distribution', pull)),
    row(`12. manifest GET c=${lc}, gc on, idle: p50`, 'ms', 'lower', 2, gc((g) => g.idle.p50Ms), offline),
    row(`12. manifest GET c=${lc}, gc on, idle: p99`, 'ms', 'lower', 2, gc((g) => g.idle.p99Ms), offline),
    row(`12. manifest GET c=${lc} while GC removes ${s.gcBlobs} blobs: p50`, 'ms', 'lower', 2, gc((g) => g.during.p50Ms), offline),
    row(`12. manifest GET c=${lc} while GC removes ${s.gcBlobs} blobs: p99`, 'ms', 'lower', 2, gc((g) => g.during.p99Ms), offline),
    row(`12. p99 ratio during GC / idle`, 'x', 'lower', 2, gc((g) => g.p99Ratio), offline),
    row(`12. GC: first to last removal of ${s.gcBlobs} blobs`, 's', 'lower', 2, gc((g) => g.removalMs / 1000), offline),
  ];
}

/** How figures 10–12 were taken, and their details, for under the table. */
function storageNotes(st: StorageResult): string[] {
  const s = st.sizes;
  const out = [
    '',
    `Storage figures 10–12 (own servers; zot-ts's dedupe and gc as stated, otherwise off as in 1–8):`,
    `  10. each image: the same ${s.baseLayerBytes.length} random base layers (${s.baseLayerBytes.map((b) => `${b / MiB} MiB`).join(', ')}), one 4–16 KiB unique layer, ` +
      `a unique config, pushed to its own repository bench/diskN:latest (c=${s.diskConcurrency}, every blob uploaded, no cross-repository mount). ` +
      `Allocated bytes (st_blocks × 512, each inode once, directories included, as du -s) of the storage root once the server stopped; ` +
      `zot-ts's .zot-ts/ (event log) is counted apart. distribution keeps one copy of each blob and link files per repository; zot-ts keeps an OCI layout per repository, with hard links when dedupe is on.`,
  ];
  for (const [variant, r] of Object.entries(st.disk)) {
    if (r === undefined || r instanceof Error) continue;
    out.push(
      `      ${variant}: ${(r.usage.allocatedBytes / MiB).toFixed(1)} MiB allocated, ${(r.usage.apparentBytes / MiB).toFixed(1)} MiB apparent, ` +
        `${r.usage.fileEntries} file entries on ${r.usage.fileInodes} inodes; pushed in ${(r.pushMs / 1000).toFixed(1)} s` +
        (r.eventLog === undefined ? '' : `; .zot-ts/ ${(r.eventLog.allocatedBytes / MiB).toFixed(1)} MiB`),
    );
  }
  out.push(
    `  11. one monolithic push of a new random ${s.s3BlobBytes / MiB} MiB blob, then a pull of it, ${s.s3Reps} times per registry and backend; s3rver 3.7.1 ` +
      `(the tests' helper) in its own node process; zot-ts with its s3 driver (staged on local disk; full parts sent to a multipart upload as they arrive, completed and moved into place at the commit).`,
  );
  if (!(st.s3 instanceof Error)) {
    const f = (xs: number[]): string => xs.map((x) => x.toFixed(1)).join(', ');
    const b = st.s3.baseline;
    out.push(
      `      s3rver alone (SDK PutObject / GetObject of the same blobs from the bench process, the ceiling for a registry on it): ` +
        `put median ${median(b.putMiBPerS).toFixed(1)} MiB/s [${f(b.putMiBPerS)}], get median ${median(b.getMiBPerS).toFixed(1)} MiB/s [${f(b.getMiBPerS)}]` +
        (b.errors.length > 0 ? `; ${b.errors.length} failed: ${b.errors[0] ?? ''}` : ''),
    );
    for (const [kind, runs] of Object.entries(st.s3.registries)) {
      out.push(
        `      ${REGISTRY_LABEL[kind as RegistryKind]} runs (MiB/s): filesystem push [${f(runs.fs.pushMiBPerS)}] pull [${f(runs.fs.pullMiBPerS)}]; ` +
          (runs.s3.skipped === undefined ? `S3 push [${f(runs.s3.pushMiBPerS)}] pull [${f(runs.s3.pullMiBPerS)}]` : `S3 not run: ${runs.s3.skipped}`),
      );
    }
  }
  out.push(
    `  12. zot-ts only: distribution's GC is an offline command (docker-registry garbage-collect) that needs the registry stopped or read-only. ` +
      `${s.gcBlobs} unreferenced 1–4 KiB blobs pushed to bench/garbage with gc off; then a server with gc on takes over the same root ` +
      `(a short gcDelay would otherwise let GC start during the push). Idle loop before its first tick, during-GC loop from the first removal seen ` +
      `until the blob directory is empty (listed every ${s.gcPollMs} ms during both loops).`,
  );
  if (st.gc !== undefined && !(st.gc instanceof Error)) {
    const g = st.gc;
    out.push(
      `      gcDelay ${g.gcDelay}, gcInterval ${g.gcInterval}; push of the blobs ${(g.pushMs / 1000).toFixed(1)} s; first removal ${(g.startToFirstRemovalMs / 1000).toFixed(1)} s after the start; ` +
        `${g.removedPerS.toFixed(0)} blobs/s; ${g.blobsAfterIdle} of ${g.blobs} left after the idle loop; ` +
        `requests idle ${g.idle.count}, during GC ${g.during.count} (max ${g.during.maxMs.toFixed(1)} ms); p50 ratio during/idle ${g.p50Ratio.toFixed(2)}`,
    );
  }
  return out;
}

/** Failure numbers, so that a table cell can point at the full message under the table. */
function failureRef(failures: Failure[], kind: RegistryKind, error: string | undefined): string {
  const i = failures.findIndex((f) => f.registry === REGISTRY_LABEL[kind] && error !== undefined && f.error.startsWith(error));
  return i < 0 ? '' : ` [${i + 1}]`;
}

function formatCell(cell: Cell | undefined, digits: number, ref: string): string {
  if (cell === undefined) return 'skipped';
  if (cell.value === undefined) return cell.text ?? `FAILED${ref}`;
  const v = cell.value.toFixed(digits);
  return cell.note === undefined ? v : `${v} (${cell.note}${ref})`;
}

function ratio(row: Row): number | undefined {
  const z = row.cells.zot?.value;
  const d = row.cells.distribution?.value;
  if (z === undefined || d === undefined || d === 0) return undefined;
  return z / d;
}

function renderTable(rows: Row[], failures: Failure[]): string {
  const header = ['figure', 'unit', 'zot-ts', 'distribution', 'zot-ts/distribution', 'better'];
  const lines = rows.map((r) => {
    const q = ratio(r);
    const cell = (k: RegistryKind): string => {
      const c = r.cells[k];
      const firstError = c?.error ?? c?.failedRuns?.[0];
      return formatCell(c, r.digits, failureRef(failures, k, firstError));
    };
    return [r.figure, r.unit, cell('zot'), cell('distribution'), q === undefined ? '—' : q.toFixed(2), r.better];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const numeric = new Set([2, 3, 4]);
  const fmt = (cols: string[]): string =>
    cols.map((c, i) => (numeric.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join(' | ').trimEnd();
  const sep = widths.map((w) => '-'.repeat(w)).join('-|-');
  return [fmt(header), sep, ...lines.map(fmt)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Orchestration

function gitCommit(checkout = REPO_ROOT): string {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: checkout, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

function fmtRun(r: ThroughputResult): string {
  const cost =
    (r.serverCpuMsPerMiB === undefined ? '' : `; registry ${r.serverCpuMsPerMiB.toFixed(2)} ms CPU and ${(r.serverFaultsPerMiB ?? 0).toFixed(2)} faults per MiB`) +
    (r.clientCpuMsPerMiB === undefined ? '' : `; client ${r.clientCpuMsPerMiB.toFixed(2)} ms CPU per MiB`);
  return `${r.mibPerS.toFixed(1)} MiB/s (${(r.ms / 1000).toFixed(2)} s${r.patches === undefined ? '' : `, ${r.patches} PATCHes`}${cost})`;
}

/**
 * The bench measures what users run: `npm ci` builds the bundle, and bin/zot.js runs it. After a
 * `tsc` alone it would run tsc's four hundred modules instead, and the start-up figures with them
 * (494 ms to the first 200 and 79 MiB idle, against 182 ms and 57 MiB, in one such run).
 */
function assertBundleCurrent(): void {
  if (bundleIsCurrent(cliEntryPoints(path.join(REPO_ROOT, 'dist')))) return;
  throw new Error("dist/bundle/main.cjs is missing or older than tsc's output, so bin/zot.js would not run it: `npm run build` first (`npm run bench` does)");
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  jsonOnStdout = opts.json;
  const sizes = sizesFor(opts.quick);
  assertBundleCurrent();
  installCleanupHooks();
  if (opts.only === 'metrics') return metricsOnly(sizes);
  if (opts.only === 'options') return optionsOnly(sizes);
  if (opts.only === 'storage') return storageOnly(opts.quick);
  if (opts.only === 'auth') return authOnly(sizes);
  if (opts.only === 'sync') return syncOnly(opts.quick);
  if (opts.only === 'startup') return startupOnly(opts.quick);
  if (opts.only === 'scale') return scaleOnly(opts.quick);
  if (opts.only === 'small-ab') return smallAbOnly(sizes, opts.against as string);
  const datapathOnly = opts.only === 'datapath';
  const smallOnly = opts.only === 'small';
  // Figures beyond 1–8 (storage, metrics, auth, options) run only in a whole-bench or one-registry run.
  const extras = !datapathOnly && !smallOnly;
  const kinds = KINDS.filter((k) => opts.only === undefined || datapathOnly || smallOnly || k === opts.only);

  const tmpRoot = makeTempDir(os.tmpdir(), 'zot-ts-bench-');
  const contenders = kinds.map((k) => new Contender(k, tmpRoot));
  const collected: Partial<Record<RegistryKind, Collected>> = {};
  for (const k of kinds) collected[k] = emptyCollected();
  const got = (k: RegistryKind): Collected => collected[k] as Collected;
  const startedAt = new Date();
  const loadAtStart = os.loadavg();
  log(`zot-ts bench${opts.quick ? ' (--quick)' : ''}: ${kinds.map((k) => REGISTRY_LABEL[k]).join(' vs. ')}; temp dir ${tmpRoot}`);

  try {
    // Fixtures: random blobs on disk, digests computed while writing.
    const fixtures = makeTempDir(tmpRoot, 'fixtures-');
    // --only small needs none of them: empty files stand in.
    const bytes = (n: number): number => (smallOnly ? 0 : n);
    if (!smallOnly) log(`writing ${sizes.blobBytes / MiB} MiB and ${sizes.bigPushBytes / MiB} MiB random blobs`);
    const blob: BlobFile = writeRandomFile(path.join(fixtures, 'blob.bin'), bytes(sizes.blobBytes));
    const bigBlob: BlobFile = writeRandomFile(path.join(fixtures, 'big.bin'), bytes(sizes.bigPushBytes));
    // The fixtures' 1.25 GiB reach the disk before the start-ups are timed: a zot-ts start right
    // after writing that much took 773-853 ms to its first 200, against 196-214 after a sync (its
    // start makes its event log and directories durable, and waits behind the writeback).
    spawnSync('sync');

    // 8. Start-up: three starts each (alternating); the third instance stays up for the scenarios.
    for (let i = smallOnly ? 2 : 0; i < 3; i++) {
      for (const c of contenders) {
        try {
          const server = await c.start();
          c.startupMs.push(server.startupMs);
          // Idle: start-up's background work settles before the resident set is read.
          await new Promise((resolve) => setTimeout(resolve, 2000));
          c.idleRssMiB.push(treeRssMiB(server.pid));
          if (i < 2) await c.retire(server, false);
          else c.server = server;
        } catch (err) {
          c.startErrors.push(errorText(err));
          log(`${c.label}: start ${i + 1}/3 FAILED: ${errorText(err)}`);
        }
      }
    }
    for (const c of contenders) {
      const cell: Cell =
        c.startupMs.length > 0 ? { value: median(c.startupMs) } : { error: c.startErrors[0] ?? 'did not start' };
      if (c.startupMs.length > 0 && c.startErrors.length > 0) {
        cell.note = `${c.startErrors.length}/3 failed`;
        cell.failedRuns = c.startErrors;
      }
      if (c.startErrors.length > 0) {
        c.failures.push({ registry: c.label, scenario: '8. start-up', error: c.startErrors[0] ?? '' });
      }
      got(c.kind).startup = cell;
      got(c.kind).idleRss = c.idleRssMiB.length > 0 ? { value: median(c.idleRssMiB) } : { error: 'did not start' };
    }

    // 1–3: big blob push (monolithic, chunked) and pull, interleaving registries per repetition.
    const bigBlobScenarios: Array<{
      name: string;
      reps: number;
      run: (s: ServerHandle, rep: number) => Promise<ThroughputResult>;
      ok: (c: Collected) => ThroughputResult[];
      err: (c: Collected) => string[];
    }> = [
      { name: '1. push monolithic', reps: sizes.reps, run: (s, rep) => pushMonolithic(s.baseUrl, blob, rep), ok: (c) => c.pushMono, err: (c) => c.pushMonoErr },
      { name: '2. push chunked', reps: sizes.reps, run: (s, rep) => pushChunked(s.baseUrl, blob, sizes.chunkBytes, rep), ok: (c) => c.pushChunked, err: (c) => c.pushChunkedErr },
      { name: '3. pull', reps: sizes.pullReps, run: (s) => pullBlob(s.baseUrl, blob), ok: (c) => c.pull, err: (c) => c.pullErr },
      { name: '3b. pull by curl', reps: sizes.pullReps, run: (s) => pullBlobWithCurl(s.baseUrl, blob), ok: (c) => c.pullByCurl, err: (c) => c.pullByCurlErr },
    ];
    for (const sc of smallOnly ? [] : bigBlobScenarios) {
      for (let rep = 0; rep < sc.reps; rep++) {
        for (const c of contenders) {
          const r = await c.measure(sc.name, (s) => sc.run(s, rep));
          if (r instanceof Error) sc.err(got(c.kind)).push(r.message);
          else {
            const cost = c.cpu.at(-1);
            if (cost !== undefined) {
              r.serverCpuMsPerMiB = (cost.serverCpuS * 1000) / (r.bytes / MiB);
              r.serverFaultsPerMiB = cost.serverFaults / (r.bytes / MiB);
              // The client's load is what the client measured over the transfer: the measure's
              // own count would hold a client process's start (node's, some 70 ms of CPU), which
              // no transfer waits for.
              if (r.clientCpuMsPerMiB !== undefined) {
                cost.clientCpuS = (r.clientCpuMsPerMiB * (r.bytes / MiB)) / 1000;
                cost.wallS = r.ms / 1000;
              }
            }
            sc.ok(got(c.kind)).push(r);
            log(`${c.label} ${sc.name} ${rep + 1}/${sc.reps}: ${fmtRun(r)}`);
          }
        }
      }
    }

    // 4. Small images: alternating rounds, each into new repositories, the median of `reps` reported
    // (one round after the big pushes swung with what they left behind: 1.57x where --only small
    // gave 2.67x; three rounds still missed by a few percent where five alone passed).
    const smallReps = datapathOnly ? 0 : sizes.reps;
    for (let rep = 0; rep < smallReps; rep++) {
      for (const c of contenders) {
        const prefix = rep === 0 ? 'bench/small' : `bench/r${rep}small`;
        const r = await c.measure('4. small images', (s) => pushSmallImages(s.baseUrl, sizes, prefix));
        if (r instanceof Error) {
          got(c.kind).smallErr.push(r.message);
          continue;
        }
        const cost = c.cpu.at(-1);
        if (cost !== undefined) {
          r.serverCpuMsPerImage = (cost.serverCpuS * 1000) / r.images;
          r.clientCpuMsPerImage = (cost.clientCpuS * 1000) / r.images;
        }
        got(c.kind).small.push(r);
        log(
          `${c.label} 4. small images ${rep + 1}/${smallReps}: ${r.imagesPerS.toFixed(1)} images/s (${r.images} in ${(r.ms / 1000).toFixed(2)} s; ` +
            `per image p50 ${r.perImage.p50Ms.toFixed(1)} / p99 ${r.perImage.p99Ms.toFixed(1)} ms; ` +
            `CPU per image registry ${(r.serverCpuMsPerImage ?? NaN).toFixed(2)} ms, client ${(r.clientCpuMsPerImage ?? NaN).toFixed(2)} ms; ` +
            `blobs by POST ${r.blobsByPost}, by PUT fallback ${r.blobsByPutFallback})`,
        );
      }
    }

    // 5. Manifest GET throughput.
    for (const c of datapathOnly || smallOnly ? [] : contenders) {
      const r = await c.measure('5. manifest GETs', (s) => manifestGets(s.baseUrl, sizes));
      got(c.kind).gets = r;
      if (!(r instanceof Error)) {
        log(`${c.label} 5. manifest GETs: ${r.rps.toFixed(0)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, max ${r.maxMs.toFixed(1)} ms (${r.count} requests)`);
      }
    }

    // 6. Manifest GET latency while a big blob is pushed: alternating runs, medians reported.
    for (let rep = 0; rep < (smallOnly ? 0 : sizes.latencyReps); rep++) {
      for (const c of contenders) {
        const r = await c.measure('6. latency during big push', (s) => latencyUnderPush(s.baseUrl, bigBlob, sizes, rep));
        if (r instanceof Error) {
          got(c.kind).underLoadErr.push(r.message);
          continue;
        }
        got(c.kind).underLoad.push(r);
        log(
          `${c.label} 6. latency ${rep + 1}/${sizes.latencyReps}: idle p50 ${r.idle.p50Ms.toFixed(2)} / p99 ${r.idle.p99Ms.toFixed(2)} ms (${r.idle.count}); ` +
            `during push p50 ${r.during.p50Ms.toFixed(2)} / p99 ${r.during.p99Ms.toFixed(2)} / max ${r.during.maxMs.toFixed(1)} ms (${r.during.count}); ` +
            `p99 ratio ${r.p99Ratio.toFixed(2)}; push ${r.pushMiBPerS.toFixed(1)} MiB/s in ${(r.pushMs / 1000).toFixed(2)} s (curl ${r.pushClientCpuMsPerMiB.toFixed(2)} ms CPU per MiB)`,
        );
      }
    }

    // 7. Peak RSS (final sample before stopping).
    for (const c of contenders) {
      if (c.server !== undefined) {
        const s = c.server;
        c.server = undefined;
        await c.retire(s, true);
      }
      got(c.kind).rss =
        c.rssPeaksMiB.length > 0 ? { value: Math.max(...c.rssPeaksMiB) } : { error: 'no server instance ran' };
      if (c.rssPeaksMiB.length > 1) got(c.kind).rss.note = `${c.rssPeaksMiB.length} instances`;
    }
  } finally {
    for (const c of contenders) {
      if (c.server !== undefined) {
        const s = c.server;
        c.server = undefined;
        await c.retire(s, true).catch(() => undefined);
      }
    }
  }

  // 10–12. Storage: dedupe on disk, S3 next to the filesystem, manifest GETs during GC.
  let storage: StorageResult | undefined;
  if (extras) {
    log('10–12. storage: dedupe on disk, S3 next to the filesystem, manifest GETs while GC removes blobs');
    storage = await measureStorage(kinds, opts.quick, tmpRoot, REPO_ROOT, log);
  }

  // 9. The cost of metrics and audit on the hot path: zot-ts with metrics and audit log off and on.
  let metricsCost: MetricsCostResult | undefined;
  if (kinds.includes('zot') && extras) {
    log('9. zot-ts with metrics and audit log off and on');
    metricsCost = await measureMetricsCost(sizes, tmpRoot, REPO_ROOT, log);
  }

  // 13. Authentication: manifest GETs anonymous and with htpasswd (bcrypt cost 10).
  let authCost: Awaited<ReturnType<typeof measureAuthCost>> | undefined;
  if (extras) {
    log('13. manifest GETs anonymous and with htpasswd');
    authCost = await measureAuthCost(kinds, sizes, tmpRoot, REPO_ROOT, log);
  }

  // 14. The cost of the rate limiter on GETs and of a NATS events sink on pushes.
  let optionsCost: OptionsCostResult | undefined;
  if (kinds.includes('zot') && extras) {
    log('14. zot-ts with the rate limiter and a NATS events sink, each next to none');
    optionsCost = await measureOptionsCost(sizes, tmpRoot, REPO_ROOT, log);
  }

  // Report.
  const figures = buildRows(sizes, collected).filter((r) => (datapathOnly ? !/^[45]\./.test(r.figure) : !smallOnly || /^[47]\./.test(r.figure)));
  const rows = [...figures, ...(storage ? storageRows(storage, kinds) : [])];
  const failures = [...contenders.flatMap((c) => c.failures), ...(storage?.failures ?? [])];
  const table = renderTable(rows, failures);
  const notes = contenders.flatMap((c) => [...c.notes, ...c.clientBoundNotes()]);
  const out: string[] = [];
  out.push('');
  out.push(
    `zot-ts ${gitCommit()} vs. ${await distributionVersion()} | ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), ` +
      `${(os.totalmem() / 1024 / MiB).toFixed(0)} GiB RAM, node ${process.version} | ${opts.quick ? 'quick' : 'full'} run, ${startedAt.toISOString()}`,
  );
  const fmtLoad = (l: number[]): string => l.map((x) => x.toFixed(2)).join(' ');
  out.push(`load average (1/5/15 min) at start ${fmtLoad(loadAtStart)}, at end ${fmtLoad(os.loadavg())} — the machine is shared; compare ratios, not absolutes`);
  out.push('');
  out.push(table);
  if (storage) out.push(...storageNotes(storage));
  out.push('');
  if (metricsCost !== undefined) {
    out.push(renderMetricsCost(metricsCost, sizes));
    out.push('');
  }
  if (authCost !== undefined) {
    out.push(renderAuthCost(authCost, sizes));
    out.push('');
  }
  if (optionsCost !== undefined) {
    out.push(renderOptionsCost(optionsCost, sizes));
    out.push('');
  }
  for (const c of contenders) {
    const d = got(c.kind);
    const runs = (xs: ThroughputResult[]): string => (xs.length === 0 ? '—' : xs.map((x) => x.mibPerS.toFixed(1)).join(', '));
    out.push(
      `${c.label}: runs (MiB/s) monolithic [${runs(d.pushMono)}], chunked [${runs(d.pushChunked)}], pull [${runs(d.pull)}], ` +
        `pull by curl [${runs(d.pullByCurl)}]; ` +
        `start-ups (ms) [${c.startupMs.map((x) => x.toFixed(0)).join(', ')}]` +
        (d.small.length > 0
          ? `; small images (images/s) [${d.small.map((r) => r.imagesPerS.toFixed(1)).join(', ')}], blobs stored by POST ?digest= ` +
            `${d.small.reduce((n, r) => n + r.blobsByPost, 0)}, by PUT fallback after 202 ${d.small.reduce((n, r) => n + r.blobsByPutFallback, 0)}`
          : ''),
    );
    out.push(`${c.label}: server CPU per scenario (all runs): ${c.cpuSummary()}`);
  }
  if (failures.length > 0) {
    out.push('');
    out.push('Failures (request, response):');
    failures.forEach((f, i) => out.push(`  [${i + 1}] ${f.registry} / ${f.scenario}: ${f.error}`));
  }
  if (notes.length > 0) {
    out.push('');
    out.push('Notes:');
    for (const n of notes) out.push(`  - ${n}`);
  }

  const json = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    zotTsCommit: gitCommit(),
    distribution: await distributionVersion(),
    host: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      totalMemMiB: os.totalmem() / MiB,
      node: process.version,
      loadAverageAtStart: loadAtStart,
      loadAverageAtEnd: os.loadavg(),
    },
    options: opts,
    sizes,
    rows: rows.map((r) => ({
      figure: r.figure,
      unit: r.unit,
      better: r.better,
      'zot-ts': r.cells.zot ?? null,
      distribution: r.cells.distribution ?? null,
      ratio: ratio(r) ?? null,
    })),
    details: Object.fromEntries(
      contenders.map((c) => {
        const d = got(c.kind);
        const plain = <T>(r: T | Error | undefined): T | { error: string } | null =>
          r === undefined ? null : r instanceof Error ? { error: r.message } : r;
        return [
          c.label,
          {
            startupMs: c.startupMs,
            idleRssMiB: c.idleRssMiB,
            pushMonolithic: d.pushMono,
            pushChunked: d.pushChunked,
            pull: d.pull,
            pullByCurl: d.pullByCurl,
            smallImages: d.small,
            smallImagesErrors: d.smallErr,
            manifestGets: plain(d.gets),
            latencyUnderPush: d.underLoad,
            latencyUnderPushErrors: d.underLoadErr,
            peakRssMiB: c.rssPeaksMiB,
            cpu: c.cpu,
          },
        ];
      }),
    ),
    storage: storage ?? null,
    metricsOnOff: metricsCost ?? null,
    authentication: authCost ?? null,
    optionsNextToNone: optionsCost ?? null,
    failures,
    notes,
  };
  publish(smallOnly ? 'zot-ts-bench-small-latest.json' : 'zot-ts-bench-latest.json', json, out.join('\n'));
}

/** JSON.stringify replacer: an Error (a failed figure) as its message; it would be {} otherwise. */
function errorsAsText(_key: string, value: unknown): unknown {
  return value instanceof Error ? { error: value.message } : value;
}

/** `--only storage`: figures 10–12 for both registries, and nothing else. */
async function storageOnly(quick: boolean): Promise<void> {
  const tmpRoot = makeTempDir(os.tmpdir(), 'zot-ts-bench-');
  const startedAt = new Date();
  log(`zot-ts bench${quick ? ' (--quick)' : ''}: storage figures 10–12; temp dir ${tmpRoot}`);
  const storage = await measureStorage(KINDS, quick, tmpRoot, REPO_ROOT, log);
  const rows = storageRows(storage, KINDS);
  const json = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    zotTsCommit: gitCommit(),
    distribution: await distributionVersion(),
    rows: rows.map((r) => ({ figure: r.figure, unit: r.unit, better: r.better, 'zot-ts': r.cells.zot ?? null, distribution: r.cells.distribution ?? null, ratio: ratio(r) ?? null })),
    storage,
  };
  const out = [
    '',
    `zot-ts ${gitCommit()} vs. ${await distributionVersion()} | ${os.cpus().length} CPUs, node ${process.version} | ${quick ? 'quick' : 'full'} run, ${startedAt.toISOString()}`,
    `load average (1/5/15 min) at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} — the machine is shared; compare ratios, not absolutes`,
    '',
    renderTable(rows, storage.failures),
    ...storageNotes(storage),
  ];
  if (storage.failures.length > 0) {
    out.push('', 'Failures (request, response):');
    storage.failures.forEach((f, i) => out.push(`  [${i + 1}] ${f.registry} / ${f.scenario}: ${f.error}`));
  }
  publish('zot-ts-bench-storage-latest.json', json, out.join('\n'));
}

/** `--only scale`: zot-ts at 100,000 manifests and about 1,000,000 events (bench/scale.ts). */
async function scaleOnly(quick: boolean): Promise<void> {
  const tmpRoot = makeTempDir(os.tmpdir(), 'zot-ts-bench-');
  const startedAt = new Date();
  log(`zot-ts bench${quick ? ' (--quick)' : ''}: scale; temp dir ${tmpRoot}`);
  try {
    const result = await measureScale(quick, tmpRoot, REPO_ROOT, log);
    publish(
      'zot-ts-bench-scale-latest.json',
      { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), zotTsCommit: gitCommit(), ...result },
      `\nzot-ts ${gitCommit()} | ${os.cpus().length} CPUs, node ${process.version}\n${renderScale(result)}`,
    );
  } finally {
    removeTempDir(tmpRoot);
  }
}

/** `--only auth`: manifest GETs anonymous and with htpasswd, for both registries, and nothing else. */
async function authOnly(sizes: Sizes): Promise<void> {
  const tmpRoot = makeTempDir(os.tmpdir(), 'zot-ts-bench-');
  const startedAt = new Date();
  log(`zot-ts bench${sizes.quick ? ' (--quick)' : ''}: manifest GETs anonymous vs. htpasswd; temp dir ${tmpRoot}`);
  const result = await measureAuthCost(KINDS, sizes, tmpRoot, REPO_ROOT, log);
  const json = { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), zotTsCommit: gitCommit(), sizes, ...result };
  publish(
    'zot-ts-bench-auth-latest.json',
    json,
    `\nzot-ts ${gitCommit()} vs. ${await distributionVersion()} | ${os.cpus().length} CPUs, node ${process.version}\n` +
      `load average (1/5/15 min) at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}\n${renderAuthCost(result, sizes)}`,
  );
}

/** `--only sync`: the sync figures (sync-scenarios.ts), and nothing else. */
async function syncOnly(quick: boolean): Promise<void> {
  const tmpRoot = makeTempDir(os.tmpdir(), 'zot-ts-bench-');
  const startedAt = new Date();
  log(`zot-ts bench${quick ? ' (--quick)' : ''}: sync figures; temp dir ${tmpRoot}`);
  const result = await measureSync(quick, tmpRoot, REPO_ROOT, log);
  const json = { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), zotTsCommit: gitCommit(), distribution: await distributionVersion(), ...result };
  const header = `zot-ts ${gitCommit()} vs. ${await distributionVersion()} | ${os.cpus().length} CPUs, node ${process.version} | ${quick ? 'quick' : 'full'} run`;
  const load = `load average (1/5/15 min) at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} — the machine is shared; compare ratios, not absolutes`;
  publish('zot-ts-bench-sync-latest.json', json, `\n${header}\n${load}\n\n${renderSync(result)}`);
}

/** `--only startup`: cold start and idle RSS (startup-scenarios.ts), and nothing else. */
async function startupOnly(quick: boolean): Promise<void> {
  const tmpRoot = makeTempDir(os.tmpdir(), 'zot-ts-bench-');
  const startedAt = new Date();
  const runs = quick ? 3 : 7;
  log(`zot-ts bench${quick ? ' (--quick)' : ''}: start-up figures; temp dir ${tmpRoot}`);
  const result = await measureStartup(KINDS, runs, tmpRoot, REPO_ROOT, log);
  const json = { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), zotTsCommit: gitCommit(), distribution: await distributionVersion(), ...result };
  const header = `zot-ts ${gitCommit()} vs. ${await distributionVersion()} | ${os.cpus().length} CPUs, node ${process.version}`;
  const load = `load average (1/5/15 min) at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} — the machine is shared; compare ratios, not absolutes`;
  publish('zot-ts-bench-startup-latest.json', json, `\n${header}\n${load}\n\n${renderStartup(result, KINDS)}`);
  removeTempDir(tmpRoot);
}

/** `--only small-ab`: figure 4 for this build next to another build of zot-ts (small-ab.ts). */
async function smallAbOnly(sizes: Sizes, against: string): Promise<void> {
  const tmpRoot = makeTempDir(os.tmpdir(), 'zot-ts-bench-');
  const startedAt = new Date();
  const rounds = sizes.quick ? 4 : 10;
  log(`zot-ts bench${sizes.quick ? ' (--quick)' : ''}: figure 4, this build against ${against}; temp dir ${tmpRoot}`);
  const result = await measureSmallAb(sizes, rounds, tmpRoot, REPO_ROOT, against, log);
  const againstCommit = gitCommit(result.against);
  const json = { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), zotTsCommit: gitCommit(), againstCommit, sizes, ...result };
  const load = `load average (1/5/15 min) at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`;
  const header = `zot-ts ${gitCommit()} against ${againstCommit} | ${os.cpus().length} CPUs, node ${process.version}`;
  publish('zot-ts-bench-small-ab-latest.json', json, `\n${header}\n${load}\n\n${renderSmallAb(result, sizes)}`);
  removeTempDir(tmpRoot);
}

/** `--only metrics`: zot-ts with metrics and audit log off and on, and nothing else. */
async function metricsOnly(sizes: Sizes): Promise<void> {
  const tmpRoot = makeTempDir(os.tmpdir(), 'zot-ts-bench-');
  const startedAt = new Date();
  log(`zot-ts bench${sizes.quick ? ' (--quick)' : ''}: metrics and audit off vs. on; temp dir ${tmpRoot}`);
  const result = await measureMetricsCost(sizes, tmpRoot, REPO_ROOT, log);
  const json = { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), zotTsCommit: gitCommit(), sizes, ...result };
  publish('zot-ts-bench-metrics-latest.json', json, `\nzot-ts ${gitCommit()} | ${os.cpus().length} CPUs, node ${process.version}\n${renderMetricsCost(result, sizes)}`);
}

/** `--only options`: zot-ts with the rate limiter and a NATS events sink, each next to none. */
async function optionsOnly(sizes: Sizes): Promise<void> {
  const tmpRoot = makeTempDir(os.tmpdir(), 'zot-ts-bench-');
  const startedAt = new Date();
  log(`zot-ts bench${sizes.quick ? ' (--quick)' : ''}: rate limiter and NATS events sink next to none; temp dir ${tmpRoot}`);
  const result = await measureOptionsCost(sizes, tmpRoot, REPO_ROOT, log);
  const json = { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), zotTsCommit: gitCommit(), sizes, ...result };
  publish('zot-ts-bench-options-latest.json', json, `\nzot-ts ${gitCommit()} | ${os.cpus().length} CPUs, node ${process.version}\n${renderOptionsCost(result, sizes)}`);
}

main().then(
  () => process.exit(0), // 'exit' hook removes temp dirs and kills anything left
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
