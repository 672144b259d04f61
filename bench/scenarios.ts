// The benchmark scenarios. Each takes a running registry and returns typed measurements; each
// sets up whatever it needs (untimed) so that one scenario failing does not break the next.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  keepAliveAgent,
  OCI_CONFIG,
  OCI_LAYER_GZIP,
  OCI_MANIFEST,
  OciClient,
  type BlobFile,
} from './client.js';
import type { ChunkedChildResult } from './chunked-push-child.js';
import type { PullChildResult } from './pull-child.js';
import { curl, type CurlResult } from './curl-client.js';

const MiB = 1024 * 1024;

export interface Sizes {
  quick: boolean;
  /** Size of the blob for scenarios 1–3. */
  blobBytes: number;
  /** PATCH size for scenario 2. */
  chunkBytes: number;
  /** Repetitions of scenarios 1–3 (the median is reported). */
  reps: number;
  /**
   * Repetitions of scenario 3, the pull: one takes ~0.2 s and single pulls spread widely on a
   * shared 2-core machine (the ratio of two medians of 5 ranged 0.82–1.19 over one quiet minute),
   * so the pull takes more runs than the pushes. Odd, for a plain median.
   */
  pullReps: number;
  smallImages: number;
  smallConcurrency: number;
  getConcurrency: number;
  getDurationMs: number;
  getMaxRequests: number;
  /** Size of the blob pushed during scenario 6. */
  bigPushBytes: number;
  latencyConcurrency: number;
  /** Duration of the idle latency loop of scenario 6. */
  idleDurationMs: number;
  /**
   * Repetitions of scenario 6 (medians reported). One big push's p99 is a few dozen requests on a
   * shared 2-core machine: single runs of the ratio ranged 1.6-2.9x for the same build.
   */
  latencyReps: number;
}

export function sizesFor(quick: boolean): Sizes {
  return {
    quick,
    blobBytes: (quick ? 32 : 256) * MiB,
    chunkBytes: 16 * MiB,
    reps: quick ? 3 : 5,
    pullReps: quick ? 7 : 21,
    smallImages: quick ? 100 : 500,
    smallConcurrency: 16,
    getConcurrency: 50,
    getDurationMs: quick ? 3_000 : 10_000,
    getMaxRequests: 1_000_000,
    bigPushBytes: (quick ? 128 : 1024) * MiB,
    latencyConcurrency: 4,
    idleDurationMs: quick ? 3_000 : 5_000,
    latencyReps: quick ? 1 : 3,
  };
}

// ---------------------------------------------------------------------------------------------
// Fixtures and statistics

export function sha256(data: Buffer): string {
  return `sha256:${crypto.createHash('sha256').update(data).digest('hex')}`;
}

/** Writes `size` random bytes to `file`, hashing while writing (never holds the file in memory). */
export function writeRandomFile(file: string, size: number): BlobFile {
  const hash = crypto.createHash('sha256');
  const buf = Buffer.allocUnsafe(4 * MiB);
  const fd = fs.openSync(file, 'w');
  try {
    for (let written = 0; written < size; ) {
      const n = Math.min(buf.length, size - written);
      const slice = buf.subarray(0, n);
      crypto.randomFillSync(slice);
      hash.update(slice);
      for (let off = 0; off < n; ) off += fs.writeSync(fd, slice, off, n - off);
      written += n;
    }
    // On disk before any figure: the writeback of a GiB of fixtures would otherwise run during the
    // first figures (start-up, then the pushes' own fsyncs) and fall on whichever registry is timed.
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return { path: file, size, digest: `sha256:${hash.digest('hex')}` };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] as number;
}

export interface LatencyStats {
  count: number;
  elapsedMs: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

function latencyStats(latencies: number[], elapsedMs: number): LatencyStats {
  const sorted = Float64Array.from(latencies).sort();
  return {
    count: sorted.length,
    elapsedMs,
    rps: (sorted.length / elapsedMs) * 1000,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.length > 0 ? (sorted[sorted.length - 1] as number) : Number.NaN,
  };
}

// ---------------------------------------------------------------------------------------------
// Small images

interface SmallImage {
  layer: Buffer;
  layerDigest: string;
  config: Buffer;
  configDigest: string;
  manifest: Buffer;
}

/**
 * A unique config (a nonce label) and the OCI manifest over `layers`, in order. Every image the
 * bench pushes is built here.
 */
export function imageOver(index: number, layers: readonly { data: Buffer; digest: string }[]): { config: Buffer; configDigest: string; manifest: Buffer } {
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: new Date().toISOString(),
      config: { Labels: { 'bench.index': String(index), 'bench.nonce': crypto.randomUUID() } },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
    }),
  );
  const configDigest = sha256(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER_GZIP, digest: l.digest, size: l.data.length })),
    }),
  );
  return { config, configDigest, manifest };
}

function makeSmallImage(index: number): SmallImage {
  const layer = crypto.randomBytes(4096 + crypto.randomInt(12 * 1024 + 1));
  const layerDigest = sha256(layer);
  return { layer, layerDigest, ...imageOver(index, [{ data: layer, digest: layerDigest }]) };
}

interface SmallPushCounts {
  post: number;
  put: number;
}

async function pushSmallImage(client: OciClient, repo: string, tag: string, img: SmallImage, counts: SmallPushCounts): Promise<void> {
  for (const [data, digest] of [
    [img.layer, img.layerDigest],
    [img.config, img.configDigest],
  ] as const) {
    const how = await client.pushSmallBlob(repo, data, digest);
    counts[how]++;
  }
  await client.putManifest(repo, tag, img.manifest, OCI_MANIFEST);
}

/** Runs `count` jobs with at most `concurrency` in flight; stops starting new ones after a failure. */
export async function runPool(count: number, concurrency: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < count) {
      const i = next++;
      try {
        await job(i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(concurrency, count) }, worker));
  const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected !== undefined) throw rejected.reason;
}

// ---------------------------------------------------------------------------------------------
// Scenarios 1–3: one big blob

export interface ThroughputResult {
  bytes: number;
  ms: number;
  mibPerS: number;
  /** Number of PATCH requests (chunked push only). */
  patches?: number;
  /** CPU milliseconds the registry process spent per MiB moved (set by the runner, which knows the process). */
  serverCpuMsPerMiB?: number;
  /** Page faults (minor and major) of the registry process per MiB moved. */
  serverFaultsPerMiB?: number;
  /** CPU milliseconds the client (curl) spent per MiB moved: it shows whether the client was the limit. */
  clientCpuMsPerMiB?: number;
}

function throughput(bytes: number, ms: number): ThroughputResult {
  return { bytes, ms, mibPerS: bytes / MiB / (ms / 1000) };
}

function expectStatus(what: string, result: CurlResult, status: number): void {
  if (result.status !== status) throw new Error(`${what} -> HTTP ${result.status}, expected ${status}`);
}

/** An upload session's Location with ?digest= added. */
function withDigest(location: URL, digest: string): string {
  const url = new URL(location.href);
  url.searchParams.set('digest', digest);
  return url.href;
}

/** Scenario 1: POST, then one PUT ?digest= carrying the whole file, sent by curl. */
export async function pushMonolithic(baseUrl: string, blob: BlobFile, rep: number): Promise<ThroughputResult> {
  const agent = keepAliveAgent(1);
  try {
    const client = new OciClient(baseUrl, agent);
    const t0 = performance.now();
    const location = await client.startUpload(`bench/mono${rep}`);
    const put = await curl('PUT', withDigest(location, blob.digest), { 'content-type': 'application/octet-stream' }, blob.path);
    const ms = performance.now() - t0;
    expectStatus(`PUT ${location.pathname}?digest=`, put, 201);
    return { ...throughput(blob.size, ms), clientCpuMsPerMiB: (put.cpuS * 1000) / (blob.size / MiB) };
  } finally {
    agent.destroy();
  }
}

/**
 * Scenario 2: POST, one PATCH per `chunkBytes` (Content-Range) over one connection, PUT ?digest=
 * with an empty body, sent by a client process of its own (chunked-push-child.ts): started, and
 * its start awaited, before the clock runs, so the figure holds the push and not a process start.
 */
export async function pushChunked(baseUrl: string, blob: BlobFile, chunkBytes: number, rep: number): Promise<ThroughputResult> {
  const { ms, result } = await runClientChild<ChunkedChildResult>('chunked push', CHUNKED_CHILD, [
    baseUrl,
    `bench/chunked${rep}`,
    blob.path,
    String(blob.size),
    blob.digest,
    String(chunkBytes),
  ]);
  if (!result.ok) throw new Error(result.error ?? 'chunked push failed');
  return { ...throughput(blob.size, ms), patches: result.patches, clientCpuMsPerMiB: result.cpuMs / (blob.size / MiB) };
}

/** The compiled client processes, next to this file. */
const CHUNKED_CHILD = fileURLToPath(new URL('chunked-push-child.js', import.meta.url));
const PULL_CHILD = fileURLToPath(new URL('pull-child.js', import.meta.url));

/**
 * Runs a client process (chunked-push-child.ts, pull-child.ts): started, and its start awaited,
 * before the clock runs, so the time is the transfer's and not a process start. The time runs
 * from the "go" line to the child's JSON result line.
 */
async function runClientChild<T>(what: string, script: string, args: string[]): Promise<{ ms: number; result: T }> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const lines = readLines(child.stdout);
  try {
    const ready = await lines.next();
    if (ready.value !== 'ready') throw new Error(`${what} client did not start: ${stderr.trim() || String(ready.value)}`);
    const t0 = performance.now();
    child.stdin.end('go\n');
    const answer = await lines.next();
    const ms = performance.now() - t0;
    if (typeof answer.value !== 'string') throw new Error(`${what} client ended without a result (exit ${await exited}): ${stderr.trim()}`);
    return { ms, result: JSON.parse(answer.value) as T };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  }
}

/** The lines a stream carries, one at a time. */
function readLines(stream: NodeJS.ReadableStream): AsyncIterator<string> {
  return createInterface({ input: stream, crlfDelay: Infinity })[Symbol.asyncIterator]();
}

/** Makes sure the blob is in `repo` (untimed), pushing it if needed. */
async function ensureBlob(client: OciClient, repo: string, blob: BlobFile): Promise<void> {
  if (!(await client.blobExists(repo, blob.digest))) await client.pushBlobMonolithic(repo, blob);
}

/**
 * Scenario 3: GET the blob from a client process of its own (pull-child.ts) that reads into one
 * reused buffer and spends less CPU per MiB than either registry; the byte count must match.
 */
export async function pullBlob(baseUrl: string, blob: BlobFile): Promise<ThroughputResult> {
  const target = await pullTarget(baseUrl, blob);
  const { ms, result } = await runClientChild<PullChildResult>('pull', PULL_CHILD, [baseUrl, target]);
  if (!result.ok) throw new Error(`GET ${target}: ${result.error ?? 'failed'}`);
  if (result.status !== 200) throw new Error(`GET ${target} -> HTTP ${result.status}, expected 200`);
  expectBytes(target, result.bytes, blob.size);
  return { ...throughput(blob.size, ms), clientCpuMsPerMiB: result.cpuMs / (blob.size / MiB) };
}

/**
 * Scenario 3b: the same GET by curl, to /dev/null. curl's CPU per MiB is above either registry's,
 * so this figure is capped by the client; it is kept beside scenario 3 as the figure of earlier runs.
 */
export async function pullBlobWithCurl(baseUrl: string, blob: BlobFile): Promise<ThroughputResult> {
  const target = await pullTarget(baseUrl, blob);
  const t0 = performance.now();
  const get = await curl('GET', new URL(target, baseUrl).href, {});
  const ms = performance.now() - t0;
  expectStatus(`GET ${target}`, get, 200);
  expectBytes(target, get.downloaded, blob.size);
  return { ...throughput(blob.size, ms), clientCpuMsPerMiB: (get.cpuS * 1000) / (blob.size / MiB) };
}

/** The blob's GET path in the repository scenario 1 pushed it to (pushed here, untimed, if that failed). */
async function pullTarget(baseUrl: string, blob: BlobFile): Promise<string> {
  const agent = keepAliveAgent(1);
  try {
    const repo = 'bench/mono0';
    await ensureBlob(new OciClient(baseUrl, agent), repo, blob);
    return `/v2/${repo}/blobs/${blob.digest}`;
  } finally {
    agent.destroy();
  }
}

function expectBytes(target: string, got: number, expected: number): void {
  if (got !== expected) throw new Error(`GET ${target} returned ${got} bytes, expected ${expected}`);
}

// ---------------------------------------------------------------------------------------------
// Scenario 4: many small images

export interface SmallImagesResult {
  images: number;
  ms: number;
  imagesPerS: number;
  /** Blobs stored by the monolithic POST (201) vs. by the PUT fallback after a 202. */
  blobsByPost: number;
  blobsByPutFallback: number;
  /** Per image, from its first blob request to the manifest PUT's answer. */
  perImage: LatencyStats;
  /** CPU milliseconds the registry process spent per image (set by the runner, which knows the process). */
  serverCpuMsPerImage?: number;
  /** CPU milliseconds the bench process (the node client) spent per image: near one core, it is the limit. */
  clientCpuMsPerImage?: number;
}

/** Pushes `sizes.smallImages` images, each to its own new repository `${repoPrefix}N`. */
export async function pushSmallImages(baseUrl: string, sizes: Sizes, repoPrefix = 'bench/small'): Promise<SmallImagesResult> {
  const images = Array.from({ length: sizes.smallImages }, (_, i) => makeSmallImage(i));
  const agent = keepAliveAgent(sizes.smallConcurrency);
  try {
    const client = new OciClient(baseUrl, agent, { timeoutMs: 60_000 });
    const counts: SmallPushCounts = { post: 0, put: 0 };
    const latencies: number[] = [];
    const t0 = performance.now();
    await runPool(images.length, sizes.smallConcurrency, async (i) => {
      const s = performance.now();
      await pushSmallImage(client, `${repoPrefix}${i}`, 'latest', images[i] as SmallImage, counts);
      latencies.push(performance.now() - s);
    });
    const ms = performance.now() - t0;
    return {
      images: images.length,
      ms,
      imagesPerS: (images.length / ms) * 1000,
      blobsByPost: counts.post,
      blobsByPutFallback: counts.put,
      perImage: latencyStats(latencies, ms),
    };
  } finally {
    agent.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios 5 and 6: manifest GETs

export interface ManifestTarget {
  repo: string;
  ref: string;
  bytes: number;
}

/** Pushes one small image to bench/hot:latest (untimed) as the target of the GET loops. */
export async function pushHotImage(client: OciClient): Promise<ManifestTarget> {
  const img = makeSmallImage(-1);
  await pushSmallImage(client, 'bench/hot', 'latest', img, { post: 0, put: 0 });
  return { repo: 'bench/hot', ref: 'latest', bytes: img.manifest.length };
}

export interface LoopLimits {
  durationMs: number;
  maxRequests: number;
  /** Stop early once this flag function returns true. */
  stopWhen?: () => boolean;
}

/** `concurrency` loops of GET manifest by tag until a limit is hit; fails on the first error. */
export async function manifestGetLoop(client: OciClient, target: ManifestTarget, concurrency: number, limits: LoopLimits): Promise<LatencyStats> {
  const latencies: number[] = [];
  let issued = 0;
  let failed = false;
  const t0 = performance.now();
  const deadline = t0 + limits.durationMs;
  const stop = (): boolean =>
    failed || issued >= limits.maxRequests || performance.now() >= deadline || (limits.stopWhen?.() ?? false);
  const loop = async (): Promise<void> => {
    while (!stop()) {
      issued++;
      const s = performance.now();
      try {
        const bytes = await client.getManifest(target.repo, target.ref, OCI_MANIFEST);
        if (bytes !== target.bytes) {
          throw new Error(`GET /v2/${target.repo}/manifests/${target.ref} returned ${bytes} bytes, expected ${target.bytes}`);
        }
      } catch (err) {
        failed = true;
        throw err;
      }
      latencies.push(performance.now() - s);
    }
  };
  const results = await Promise.allSettled(Array.from({ length: concurrency }, loop));
  const elapsed = performance.now() - t0;
  const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected !== undefined) throw rejected.reason;
  return latencyStats(latencies, elapsed);
}

/** Scenario 5: GET manifest by tag at concurrency 50 for a fixed time (after a short warm-up). */
export async function manifestGets(baseUrl: string, sizes: Sizes, authorization?: string): Promise<LatencyStats> {
  const agent = keepAliveAgent(sizes.getConcurrency);
  try {
    const client = new OciClient(baseUrl, agent, { timeoutMs: 30_000, ...(authorization !== undefined ? { authorization } : {}) });
    const target = await pushHotImage(client);
    await manifestGetLoop(client, target, sizes.getConcurrency, { durationMs: 1_000, maxRequests: 2_000 });
    return await manifestGetLoop(client, target, sizes.getConcurrency, {
      durationMs: sizes.getDurationMs,
      maxRequests: sizes.getMaxRequests,
    });
  } finally {
    agent.destroy();
  }
}

export interface UnderLoadResult {
  idle: LatencyStats;
  during: LatencyStats;
  pushBytes: number;
  pushMs: number;
  pushMiBPerS: number;
  /** CPU milliseconds curl spent per MiB of the big push. */
  pushClientCpuMsPerMiB: number;
  p50Ratio: number;
  p99Ratio: number;
}

/**
 * Scenario 6: manifest GET latency at low concurrency, first idle, then while a big blob is pushed
 * monolithically to the same registry by curl (its own process: the loop here only times GETs).
 */
export async function latencyUnderPush(baseUrl: string, bigBlob: BlobFile, sizes: Sizes, rep = 0): Promise<UnderLoadResult> {
  const agent = keepAliveAgent(sizes.latencyConcurrency);
  try {
    const client = new OciClient(baseUrl, agent, { timeoutMs: 120_000 });
    const target = await pushHotImage(client);
    await manifestGetLoop(client, target, sizes.latencyConcurrency, { durationMs: 500, maxRequests: 500 });
    const idle = await manifestGetLoop(client, target, sizes.latencyConcurrency, {
      durationMs: sizes.idleDurationMs,
      maxRequests: sizes.getMaxRequests,
    });

    // A repository per run: each run stores the blob anew rather than finding it there.
    const location = await client.startUpload(rep === 0 ? 'bench/big-during' : `bench/big-during${rep}`);
    const pushStart = performance.now();
    let pushFinished = false;
    const pushed = curl('PUT', withDigest(location, bigBlob.digest), { 'content-type': 'application/octet-stream' }, bigBlob.path).then((put) => {
      expectStatus(`PUT ${location.pathname}?digest=`, put, 201);
      return { ms: performance.now() - pushStart, cpuS: put.cpuS };
    });
    pushed.then(
      () => (pushFinished = true),
      () => (pushFinished = true),
    );
    let during: LatencyStats;
    try {
      during = await manifestGetLoop(client, target, sizes.latencyConcurrency, {
        durationMs: 600_000,
        maxRequests: 10_000_000,
        stopWhen: () => pushFinished,
      });
    } finally {
      await pushed.catch(() => undefined); // never leave curl running
    }
    const { ms: pushMs, cpuS } = await pushed;
    return {
      idle,
      during,
      pushBytes: bigBlob.size,
      pushMs,
      pushMiBPerS: bigBlob.size / MiB / (pushMs / 1000),
      pushClientCpuMsPerMiB: (cpuS * 1000) / (bigBlob.size / MiB),
      p50Ratio: during.p50Ms / idle.p50Ms,
      p99Ratio: during.p99Ms / idle.p99Ms,
    };
  } finally {
    agent.destroy();
  }
}
