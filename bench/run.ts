// zot-ts vs. the CNCF distribution registry (Debian's docker-registry), side by side, in one run,
// with the same client code, both on 127.0.0.1.
//
//   npm run bench                       # full run
//   npm run bench -- --quick            # smoke run with smaller sizes and shorter loops
//   npm run bench -- --only distribution
//   npm run bench -- --only metrics     # zot-ts with metrics and audit log off and on, nothing else
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
import type { BlobFile } from './client.js';
import { measureMetricsCost, renderMetricsCost, type MetricsCostResult } from './metrics-cost.js';
import {
  latencyUnderPush,
  manifestGets,
  median,
  pullBlob,
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
  cpuSeconds,
  distributionVersion,
  lastLoggedError,
  installCleanupHooks,
  makeTempDir,
  REGISTRY_LABEL,
  removeTempDir,
  startRegistry,
  type RegistryKind,
  type ServerHandle,
} from './servers.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const KINDS: readonly RegistryKind[] = ['zot', 'distribution'];
const MiB = 1024 * 1024;

interface Options {
  quick: boolean;
  /** One registry, or `metrics`: only zot-ts with metrics and audit log off and on. */
  only: RegistryKind | 'metrics' | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write('usage: node dist/bench/run.js [--quick] [--only zot|distribution|metrics]\n');
    process.exit(0);
  }
  const only = values.only;
  if (only !== undefined && only !== 'zot' && only !== 'distribution' && only !== 'metrics') {
    throw new Error(`--only must be zot, distribution or metrics, not ${only}`);
  }
  return { quick: values.quick === true, only };
}

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);
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
    const logMark = server.logMark();
    const wall0 = performance.now();
    const server0 = cpuSeconds(server.pid);
    const client0 = process.cpuUsage();
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
      this.cpu.push({
        scenario,
        wallS: (performance.now() - wall0) / 1000,
        serverCpuS: cpuSeconds(server.pid) - server0,
        clientCpuS: (client.user + client.system) / 1e6,
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
          `${this.label} / ${name}: the client used ${client.toFixed(2)} cores (its event loop is one core) and the server ` +
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
  pushMono: ThroughputResult[];
  pushMonoErr: string[];
  pushChunked: ThroughputResult[];
  pushChunkedErr: string[];
  pull: ThroughputResult[];
  pullErr: string[];
  small: SmallImagesResult | Error | undefined;
  gets: LatencyStats | Error | undefined;
  underLoad: UnderLoadResult | Error | undefined;
  rss: Cell;
}

function emptyCollected(): Collected {
  return {
    startup: {},
    pushMono: [],
    pushMonoErr: [],
    pushChunked: [],
    pushChunkedErr: [],
    pull: [],
    pullErr: [],
    small: undefined,
    gets: undefined,
    underLoad: undefined,
    rss: {},
  };
}

function medianCell(values: ThroughputResult[], errors: string[], reps: number): Cell {
  if (values.length === 0) return { error: errors[0] ?? 'not run' };
  const cell: Cell = { value: median(values.map((v) => v.mibPerS)) };
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
  const lc = sizes.latencyConcurrency;
  const reps = sizes.reps;
  const row = (figure: string, unit: string, better: Better, digits: number, cell: (c: Collected) => Cell): Row => {
    const cells: Partial<Record<RegistryKind, Cell>> = {};
    for (const k of KINDS) {
      const c = data[k];
      if (c !== undefined) cells[k] = cell(c);
    }
    return { figure, unit, better, digits, cells };
  };
  return [
    row(`1. push ${blob} monolithic (median of ${reps})`, 'MiB/s', 'higher', 1, (c) => medianCell(c.pushMono, c.pushMonoErr, reps)),
    row(`2. push ${blob} in ${sizes.chunkBytes / MiB} MiB chunks (median of ${reps})`, 'MiB/s', 'higher', 1, (c) =>
      medianCell(c.pushChunked, c.pushChunkedErr, reps),
    ),
    row(`3. pull ${blob} (median of ${reps})`, 'MiB/s', 'higher', 1, (c) => medianCell(c.pull, c.pullErr, reps)),
    row(`4. push ${sizes.smallImages} small images, c=${sizes.smallConcurrency}`, 'images/s', 'higher', 1, (c) =>
      fromResult(c.small, (v) => v.imagesPerS),
    ),
    row(`5. manifest GET c=${sizes.getConcurrency}, ${secs}: throughput`, 'req/s', 'higher', 0, (c) => fromResult(c.gets, (v) => v.rps)),
    row(`5. manifest GET c=${sizes.getConcurrency}: p50`, 'ms', 'lower', 2, (c) => fromResult(c.gets, (v) => v.p50Ms)),
    row(`5. manifest GET c=${sizes.getConcurrency}: p99`, 'ms', 'lower', 2, (c) => fromResult(c.gets, (v) => v.p99Ms)),
    row(`6. manifest GET c=${lc} idle: p50`, 'ms', 'lower', 2, (c) => fromResult(c.underLoad, (v) => v.idle.p50Ms)),
    row(`6. manifest GET c=${lc} idle: p99`, 'ms', 'lower', 2, (c) => fromResult(c.underLoad, (v) => v.idle.p99Ms)),
    row(`6. manifest GET c=${lc} during ${big} push: p50`, 'ms', 'lower', 2, (c) => fromResult(c.underLoad, (v) => v.during.p50Ms)),
    row(`6. manifest GET c=${lc} during ${big} push: p99`, 'ms', 'lower', 2, (c) => fromResult(c.underLoad, (v) => v.during.p99Ms)),
    row(`6. p50 ratio during/idle`, 'x', 'lower', 2, (c) => fromResult(c.underLoad, (v) => v.p50Ratio)),
    row(`6. p99 ratio during/idle`, 'x', 'lower', 2, (c) => fromResult(c.underLoad, (v) => v.p99Ratio)),
    row(`6. the ${big} push itself (under GET load)`, 'MiB/s', 'higher', 1, (c) => fromResult(c.underLoad, (v) => v.pushMiBPerS)),
    row(`7. peak RSS of the server over the run`, 'MiB', 'lower', 1, (c) => c.rss),
    row(`8. start-up, spawn to first 200 on /v2/ (median of 3)`, 'ms', 'lower', 0, (c) => c.startup),
  ];
}

/** Failure numbers, so that a table cell can point at the full message under the table. */
function failureRef(failures: Failure[], kind: RegistryKind, error: string | undefined): string {
  const i = failures.findIndex((f) => f.registry === REGISTRY_LABEL[kind] && error !== undefined && f.error.startsWith(error));
  return i < 0 ? '' : ` [${i + 1}]`;
}

function formatCell(cell: Cell | undefined, digits: number, ref: string): string {
  if (cell === undefined) return 'skipped';
  if (cell.value === undefined) return `FAILED${ref}`;
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

function gitCommit(): string {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

function fmtRun(r: ThroughputResult): string {
  return `${r.mibPerS.toFixed(1)} MiB/s (${(r.ms / 1000).toFixed(2)} s${r.patches === undefined ? '' : `, ${r.patches} PATCHes`})`;
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const sizes = sizesFor(opts.quick);
  installCleanupHooks();
  if (opts.only === 'metrics') return metricsOnly(sizes);
  const kinds = KINDS.filter((k) => opts.only === undefined || k === opts.only);

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
    log(`writing ${sizes.blobBytes / MiB} MiB and ${sizes.bigPushBytes / MiB} MiB random blobs`);
    const blob: BlobFile = writeRandomFile(path.join(fixtures, 'blob.bin'), sizes.blobBytes);
    const bigBlob: BlobFile = writeRandomFile(path.join(fixtures, 'big.bin'), sizes.bigPushBytes);

    // 8. Start-up: three starts each (alternating); the third instance stays up for the scenarios.
    for (let i = 0; i < 3; i++) {
      for (const c of contenders) {
        try {
          const server = await c.start();
          c.startupMs.push(server.startupMs);
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
    }

    // 1–3: big blob push (monolithic, chunked) and pull, interleaving registries per repetition.
    const bigBlobScenarios: Array<{
      name: string;
      run: (s: ServerHandle, rep: number) => Promise<ThroughputResult>;
      ok: (c: Collected) => ThroughputResult[];
      err: (c: Collected) => string[];
    }> = [
      { name: '1. push monolithic', run: (s, rep) => pushMonolithic(s.baseUrl, blob, rep), ok: (c) => c.pushMono, err: (c) => c.pushMonoErr },
      { name: '2. push chunked', run: (s, rep) => pushChunked(s.baseUrl, blob, sizes.chunkBytes, rep), ok: (c) => c.pushChunked, err: (c) => c.pushChunkedErr },
      { name: '3. pull', run: (s) => pullBlob(s.baseUrl, blob), ok: (c) => c.pull, err: (c) => c.pullErr },
    ];
    for (const sc of bigBlobScenarios) {
      for (let rep = 0; rep < sizes.reps; rep++) {
        for (const c of contenders) {
          const r = await c.measure(sc.name, (s) => sc.run(s, rep));
          if (r instanceof Error) sc.err(got(c.kind)).push(r.message);
          else {
            sc.ok(got(c.kind)).push(r);
            log(`${c.label} ${sc.name} ${rep + 1}/${sizes.reps}: ${fmtRun(r)}`);
          }
        }
      }
    }

    // 4. Small images.
    for (const c of contenders) {
      const r = await c.measure('4. small images', (s) => pushSmallImages(s.baseUrl, sizes));
      got(c.kind).small = r;
      if (!(r instanceof Error)) {
        log(`${c.label} 4. small images: ${r.imagesPerS.toFixed(1)} images/s (${r.images} in ${(r.ms / 1000).toFixed(2)} s; blobs by POST ${r.blobsByPost}, by PUT fallback ${r.blobsByPutFallback})`);
      }
    }

    // 5. Manifest GET throughput.
    for (const c of contenders) {
      const r = await c.measure('5. manifest GETs', (s) => manifestGets(s.baseUrl, sizes));
      got(c.kind).gets = r;
      if (!(r instanceof Error)) {
        log(`${c.label} 5. manifest GETs: ${r.rps.toFixed(0)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, max ${r.maxMs.toFixed(1)} ms (${r.count} requests)`);
      }
    }

    // 6. Manifest GET latency while a big blob is pushed.
    for (const c of contenders) {
      const r = await c.measure('6. latency during big push', (s) => latencyUnderPush(s.baseUrl, bigBlob, sizes));
      got(c.kind).underLoad = r;
      if (!(r instanceof Error)) {
        log(
          `${c.label} 6. latency: idle p50 ${r.idle.p50Ms.toFixed(2)} / p99 ${r.idle.p99Ms.toFixed(2)} ms (${r.idle.count}); ` +
            `during push p50 ${r.during.p50Ms.toFixed(2)} / p99 ${r.during.p99Ms.toFixed(2)} / max ${r.during.maxMs.toFixed(1)} ms (${r.during.count}); ` +
            `push ${r.pushMiBPerS.toFixed(1)} MiB/s in ${(r.pushMs / 1000).toFixed(2)} s`,
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

  // 9. The cost of metrics and audit on the hot path: zot-ts with metrics and audit log off and on.
  let metricsCost: MetricsCostResult | undefined;
  if (kinds.includes('zot')) {
    log('9. zot-ts with metrics and audit log off and on');
    metricsCost = await measureMetricsCost(sizes, tmpRoot, REPO_ROOT, log);
  }

  // Report.
  const rows = buildRows(sizes, collected);
  const failures = contenders.flatMap((c) => c.failures);
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
  out.push('');
  if (metricsCost !== undefined) {
    out.push(renderMetricsCost(metricsCost, sizes));
    out.push('');
  }
  for (const c of contenders) {
    const d = got(c.kind);
    const runs = (xs: ThroughputResult[]): string => (xs.length === 0 ? '—' : xs.map((x) => x.mibPerS.toFixed(1)).join(', '));
    out.push(
      `${c.label}: runs (MiB/s) monolithic [${runs(d.pushMono)}], chunked [${runs(d.pushChunked)}], pull [${runs(d.pull)}]; ` +
        `start-ups (ms) [${c.startupMs.map((x) => x.toFixed(0)).join(', ')}]` +
        (d.small !== undefined && !(d.small instanceof Error)
          ? `; small-image blobs stored by POST ?digest= ${d.small.blobsByPost}, by PUT fallback after 202 ${d.small.blobsByPutFallback}`
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

  const resultPath = path.join(os.tmpdir(), 'zot-ts-bench-latest.json');
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
            pushMonolithic: d.pushMono,
            pushChunked: d.pushChunked,
            pull: d.pull,
            smallImages: plain(d.small),
            manifestGets: plain(d.gets),
            latencyUnderPush: plain(d.underLoad),
            peakRssMiB: c.rssPeaksMiB,
            cpu: c.cpu,
          },
        ];
      }),
    ),
    metricsOnOff: metricsCost ?? null,
    failures,
    notes,
  };
  fs.writeFileSync(resultPath, `${JSON.stringify(json, null, 2)}\n`);
  out.push('');
  out.push(`Results as JSON: ${resultPath}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

/** `--only metrics`: zot-ts with metrics and audit log off and on, and nothing else. */
async function metricsOnly(sizes: Sizes): Promise<void> {
  const tmpRoot = makeTempDir(os.tmpdir(), 'zot-ts-bench-');
  const startedAt = new Date();
  log(`zot-ts bench${sizes.quick ? ' (--quick)' : ''}: metrics and audit off vs. on; temp dir ${tmpRoot}`);
  const result = await measureMetricsCost(sizes, tmpRoot, REPO_ROOT, log);
  const resultPath = path.join(os.tmpdir(), 'zot-ts-bench-metrics-latest.json');
  const json = { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), zotTsCommit: gitCommit(), sizes, ...result };
  fs.writeFileSync(resultPath, `${JSON.stringify(json, null, 2)}\n`);
  process.stdout.write(`\nzot-ts ${gitCommit()} | ${os.cpus().length} CPUs, node ${process.version}\n${renderMetricsCost(result, sizes)}\n\nResults as JSON: ${resultPath}\n`);
}

main().then(
  () => process.exit(0), // 'exit' hook removes temp dirs and kills anything left
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
