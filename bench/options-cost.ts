// The cost of two of zot's options on the hot path, each next to none, on fresh servers:
//
//   rate limiter   manifest GETs with http.ratelimit set high enough never to answer 429
//                  (overall and for GET), against no rate limit;
//   NATS sink      the many-small-images push with an extensions.events NATS sink attached (a
//                  nats-server started here, on 127.0.0.1, with a subscriber counting what
//                  arrives), against no sink; and how long after the last push the subscriber
//                  had every event.
//
// Rounds alternate the order (none first, then the option first) so a drift of the shared
// machine falls on both.
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

/** The loop fails on any answer but 200, so a run that finishes met no 429. */
async function getRun(limited: boolean, sizes: Sizes, tmpRoot: string, repoRoot: string, result: OptionsCostResult, log: (m: string) => void): Promise<void> {
  const settings = limited ? { zotHttp: { ratelimit: { rate: NEVER_LIMITING, methods: [{ method: 'GET', rate: NEVER_LIMITING }] } } } : {};
  await withServer(settings, tmpRoot, repoRoot, async (server) => {
    const stats = await manifestGets(server.baseUrl, sizes);
    const variant = limited ? 'ratelimit' : 'none';
    result.getRps[variant].push(stats.rps);
    result.getP99Ms[variant].push(stats.p99Ms);
    log(`manifest GET, rate limiter ${limited ? 'on' : 'off'}: ${stats.rps.toFixed(0)} req/s, p99 ${stats.p99Ms.toFixed(2)} ms`);
  });
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
  const rounds = sizes.quick ? 1 : 2;
  const result: OptionsCostResult = {
    rounds,
    getRps: { none: [], ratelimit: [] },
    getP99Ms: { none: [], ratelimit: [] },
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
    for (const limited of optionFirst ? [true, false] : [false, true]) {
      await attempt(`manifest GET, rate limiter ${limited ? 'on' : 'off'}`, () => getRun(limited, sizes, tmpRoot, repoRoot, result, log));
    }
    for (const withSink of optionFirst ? [true, false] : [false, true]) {
      await attempt(`push, NATS sink ${withSink ? 'on' : 'off'}`, () => pushRun(withSink, sizes, tmpRoot, repoRoot, result, log));
    }
  }
  return result;
}

export function renderOptionsCost(result: OptionsCostResult, sizes: Sizes): string {
  const m = (values: number[]): number => (values.length > 0 ? median(values) : NaN);
  const rows: [string, string, number, number, number][] = [
    [`manifest GET c=${sizes.getConcurrency}, ${sizes.getDurationMs / 1000} s: throughput`, 'req/s', m(result.getRps.none), m(result.getRps.ratelimit), 0],
    [`manifest GET c=${sizes.getConcurrency}: p99`, 'ms', m(result.getP99Ms.none), m(result.getP99Ms.ratelimit), 2],
    [`push ${sizes.smallImages} small images, c=${sizes.smallConcurrency}`, 'images/s', m(result.imagesPerS.none), m(result.imagesPerS.nats), 1],
  ];
  const header = ['figure', 'unit', 'none', 'with option', 'option/none'];
  const fmt = (v: number, digits: number): string => (Number.isFinite(v) ? v.toFixed(digits) : 'FAILED');
  const lines = rows.map(([figure, unit, a, b, digits], i) => [
    `${figure}${i < 2 ? ' (rate limiter)' : ' (NATS sink)'}`,
    unit,
    fmt(a, digits),
    fmt(b, digits),
    Number.isFinite(b / a) ? (b / a).toFixed(3) : '—',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const row = (cols: string[]): string => cols.map((c, i) => (i >= 2 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join(' | ').trimEnd();
  const out = [
    `zot-ts options next to none (median of ${result.rounds} round${result.rounds === 1 ? '' : 's'}, fresh server each, order alternating)`,
    row(header),
    widths.map((w) => '-'.repeat(w)).join('-|-'),
    ...lines.map(row),
  ];
  for (const d of result.delivered) out.push(`NATS subscriber: ${d.received} of ${d.expected} events, the last ${d.drainMs.toFixed(0)} ms after the last push`);
  for (const error of result.errors) out.push(`FAILED ${error}`);
  return out.join('\n');
}
