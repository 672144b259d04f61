// The cost of two of zot's options on the hot path, each next to none:
//
//   rate limiter   manifest GETs with http.ratelimit set high enough never to answer 429
//                  (overall and for GET), against no rate limit;
//   NATS sink      the many-small-images push with an extensions.events NATS sink attached (a
//                  nats-server started here, on 127.0.0.1, with a subscriber counting what
//                  arrives), against no sink; and how long after the last push the subscriber
//                  had every event.
//
// The GETs run on two servers up at once, in short windows that alternate between them each
// round: on a shared machine, load from elsewhere comes in bursts of seconds, and long runs one
// after the other put a burst on one side only. The push rounds alternate the order (none
// first, then the option first) so a drift of the machine falls on both.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { connect } from 'nats';
import { manifestGets, median, pushSmallImages, type Sizes } from './scenarios.js';
import { freePort, removeTempDir, startRegistry, trackChild, type ServerHandle } from './servers.js';

const NATS_SERVER = '/usr/sbin/nats-server';
const SUBJECT = 'bench.events';
/** A rate no bench loop comes near: the limiter runs on every request and never refuses one. */
const NEVER_LIMITING = 1_000_000;

export interface OptionsCostResult {
  rounds: number;
  getRps: { none: number[]; ratelimit: number[] };
  getP99Ms: { none: number[]; ratelimit: number[] };
  /** Per window pair (adjacent, same machine state): with the limiter / without, for req/s and p99. */
  getPairRatios: { rps: number[]; p99: number[] };
  imagesPerS: { none: number[]; nats: number[] };
  /** Events the subscriber received per NATS run, and how many were expected. */
  delivered: { received: number; expected: number; drainMs: number }[];
  errors: string[];
}

interface ZotSettings {
  zotConfig?: Record<string, unknown>;
  zotHttp?: Record<string, unknown>;
}

async function withServer<T>(settings: ZotSettings, tmpRoot: string, repoRoot: string, work: (server: ServerHandle) => Promise<T>): Promise<T> {
  const server = await startRegistry({ kind: 'zot', tmpRoot, repoRoot, ...settings });
  try {
    return await work(server);
  } finally {
    server.rss.stop();
    await server.stop();
    removeTempDir(server.dir);
  }
}

/** GET windows per variant and round: many short ones, interleaved, so a busy neighbour's burst falls on both. */
const GET_WINDOWS = { quick: 2, full: 4 };

/**
 * Both servers up at once (idle while the other is measured), then short windows of manifest
 * GETs alternating between them, the order flipping each window. The loop fails on any answer
 * but 200, so a window that finishes met no 429.
 */
async function getRound(sizes: Sizes, tmpRoot: string, repoRoot: string, result: OptionsCostResult, log: (m: string) => void): Promise<void> {
  const limited = { zotHttp: { ratelimit: { rate: NEVER_LIMITING, methods: [{ method: 'GET', rate: NEVER_LIMITING }] } } };
  const windows = sizes.quick ? GET_WINDOWS.quick : GET_WINDOWS.full;
  const windowSizes: Sizes = { ...sizes, getDurationMs: Math.max(1_000, Math.round(sizes.getDurationMs / 2)) };
  await withServer({}, tmpRoot, repoRoot, (none) =>
    withServer(limited, tmpRoot, repoRoot, async (ratelimit) => {
      for (let window = 0; window < windows; window++) {
        const order = window % 2 === 0 ? (['none', 'ratelimit'] as const) : (['ratelimit', 'none'] as const);
        const pair: Partial<Record<'none' | 'ratelimit', { rps: number; p99Ms: number }>> = {};
        for (const variant of order) {
          const stats = await manifestGets((variant === 'none' ? none : ratelimit).baseUrl, windowSizes);
          result.getRps[variant].push(stats.rps);
          result.getP99Ms[variant].push(stats.p99Ms);
          pair[variant] = stats;
          log(`manifest GET, rate limiter ${variant === 'none' ? 'off' : 'on'}: ${stats.rps.toFixed(0)} req/s, p99 ${stats.p99Ms.toFixed(2)} ms`);
        }
        if (pair.none && pair.ratelimit) {
          result.getPairRatios.rps.push(pair.ratelimit.rps / pair.none.rps);
          result.getPairRatios.p99.push(pair.ratelimit.p99Ms / pair.none.p99Ms);
        }
      }
    }),
  );
}

async function natsServer(tmpRoot: string): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(tmpRoot, 'nats-'));
  const child: ChildProcess = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore', detached: true, cwd: dir });
  trackChild(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 15_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${NATS_SERVER} did not start on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

async function pushRun(withSink: boolean, sizes: Sizes, tmpRoot: string, repoRoot: string, result: OptionsCostResult, log: (m: string) => void): Promise<void> {
  if (!withSink) {
    await withServer({}, tmpRoot, repoRoot, async (server) => {
      const small = await pushSmallImages(server.baseUrl, sizes);
      result.imagesPerS.none.push(small.imagesPerS);
      log(`push ${small.images} small images, no events sink: ${small.imagesPerS.toFixed(1)} images/s`);
    });
    return;
  }
  const nats = await natsServer(tmpRoot);
  const subscriber = await connect({ servers: nats.url });
  let received = 0;
  let lastAt = 0;
  const subscription = subscriber.subscribe(SUBJECT, {
    callback: () => {
      received++;
      lastAt = performance.now();
    },
  });
  await subscriber.flush();
  try {
    const zotConfig = { extensions: { events: { sinks: [{ type: 'nats', address: nats.url, channel: SUBJECT }] } } };
    await withServer({ zotConfig }, tmpRoot, repoRoot, async (server) => {
      const small = await pushSmallImages(server.baseUrl, sizes);
      const pushedAt = performance.now();
      result.imagesPerS.nats.push(small.imagesPerS);
      // Each image is a new repository: repository.created and one image.updated.
      const expected = small.images * 2;
      const deadline = Date.now() + 60_000;
      while (received < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const drainMs = Math.max(0, lastAt - pushedAt);
      result.delivered.push({ received, expected, drainMs });
      log(`push ${small.images} small images, NATS sink: ${small.imagesPerS.toFixed(1)} images/s; ${received}/${expected} events, the last ${drainMs.toFixed(0)} ms after the last push`);
    });
  } finally {
    subscription.unsubscribe();
    await subscriber.close();
    await nats.stop();
  }
}

export async function measureOptionsCost(sizes: Sizes, tmpRoot: string, repoRoot: string, log: (msg: string) => void): Promise<OptionsCostResult> {
  const rounds = sizes.quick ? 1 : 3;
  const result: OptionsCostResult = {
    rounds,
    getRps: { none: [], ratelimit: [] },
    getP99Ms: { none: [], ratelimit: [] },
    getPairRatios: { rps: [], p99: [] },
    imagesPerS: { none: [], nats: [] },
    delivered: [],
    errors: [],
  };
  const attempt = async (what: string, run: () => Promise<void>): Promise<void> => {
    try {
      await run();
    } catch (err) {
      const error = `${what}: ${err instanceof Error ? err.message : String(err)}`;
      result.errors.push(error);
      log(`FAILED ${error}`);
    }
  };
  for (let round = 0; round < rounds; round++) {
    const optionFirst = round % 2 === 1;
    await attempt('manifest GET, rate limiter off and on', () => getRound(sizes, tmpRoot, repoRoot, result, log));
    for (const withSink of optionFirst ? [true, false] : [false, true]) {
      await attempt(`push, NATS sink ${withSink ? 'on' : 'off'}`, () => pushRun(withSink, sizes, tmpRoot, repoRoot, result, log));
    }
  }
  return result;
}

/** Each round's push with the sink over the one without (the two ran one after the other). */
function pushPairRatios(result: OptionsCostResult): number[] {
  const { none, nats } = result.imagesPerS;
  return none.length === nats.length ? nats.map((withSink, round) => withSink / (none[round] ?? NaN)) : [];
}

function getWindowsLabel(result: OptionsCostResult, sizes: Sizes): string {
  return `${result.getRps.none.length} windows of ${Math.max(1_000, Math.round(sizes.getDurationMs / 2)) / 1000} s`;
}

export function renderOptionsCost(result: OptionsCostResult, sizes: Sizes): string {
  const m = (values: number[]): number => (values.length > 0 ? median(values) : NaN);
  // The ratios are the medians of the pairs' ratios (adjacent GET windows, a round's two pushes):
  // the two runs of a pair share the machine's state, which the medians of each side do not.
  const rows: [string, string, number, number, number, number][] = [
    [`manifest GET c=${sizes.getConcurrency}, ${getWindowsLabel(result, sizes)}: throughput`, 'req/s', m(result.getRps.none), m(result.getRps.ratelimit), 0, m(result.getPairRatios.rps)],
    [`manifest GET c=${sizes.getConcurrency}: p99`, 'ms', m(result.getP99Ms.none), m(result.getP99Ms.ratelimit), 2, m(result.getPairRatios.p99)],
    [`push ${sizes.smallImages} small images, c=${sizes.smallConcurrency}`, 'images/s', m(result.imagesPerS.none), m(result.imagesPerS.nats), 1, m(pushPairRatios(result))],
  ];
  const header = ['figure', 'unit', 'none', 'with option', 'option/none'];
  const fmt = (v: number, digits: number): string => (Number.isFinite(v) ? v.toFixed(digits) : 'FAILED');
  const lines = rows.map(([figure, unit, a, b, digits, ratio], i) => [
    `${figure}${i < 2 ? ' (rate limiter)' : ' (NATS sink)'}`,
    unit,
    fmt(a, digits),
    fmt(b, digits),
    Number.isFinite(ratio) ? ratio.toFixed(3) : '—',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const row = (cols: string[]): string => cols.map((c, i) => (i >= 2 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join(' | ').trimEnd();
  const out = [
    `zot-ts options next to none (GETs: both servers up, windows interleaved, ratio the median of each pair's; pushes: ${result.rounds} round${result.rounds === 1 ? '' : 's'}, fresh server each, order alternating, ratio the median of each round's)`,
    row(header),
    widths.map((w) => '-'.repeat(w)).join('-|-'),
    ...lines.map(row),
  ];
  for (const d of result.delivered) out.push(`NATS subscriber: ${d.received} of ${d.expected} events, the last ${d.drainMs.toFixed(0)} ms after the last push`);
  for (const error of result.errors) out.push(`FAILED ${error}`);
  return out.join('\n');
}
