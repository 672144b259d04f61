// The storage figures, 10–12. Each starts its own servers with the storage settings it needs (the
// main run keeps zot-ts's dedupe and gc off, so figures 1–8 measure the request path alone),
// stops them, and returns typed results; a failure is recorded per figure and run, never thrown.
//
//   10. bytes on disk after pushing many images that share their base layers, each image in its
//       own repository: zot-ts with dedupe on (zot's default) and off, and distribution
//   11. push and pull of one blob on S3 (s3rver in its own process) next to the filesystem
//   12. manifest GET latency while zot-ts's GC removes many unreferenced blobs (zot-ts only:
//       distribution's GC is an offline command that needs the registry stopped or read-only)

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { keepAliveAgent, OCI_MANIFEST, OciClient, type BlobFile } from './client.js';
import { s3rverBaseline, startS3rverProcess, type S3rverProcess } from './s3rver.js';
import {
  imageOver,
  manifestGetLoop,
  pushHotImage,
  runPool,
  sha256,
  writeRandomFile,
  type LatencyStats,
} from './scenarios.js';
import { makeTempDir, REGISTRY_LABEL, removeTempDir, startRegistry, type RegistryKind, type ServerHandle, type StartOptions } from './servers.js';

const MiB = 1024 * 1024;
/** zot-ts's private directory in its storage root (event log, temp files): not registry content. */
const PRIVATE_DIR = '.zot-ts';

export interface StorageSizes {
  /** Figure 10: images pushed, one repository each. */
  diskImages: number;
  /** Figure 10: sizes of the base layers every image shares. */
  baseLayerBytes: number[];
  diskConcurrency: number;
  /** Figure 11: size of each blob pushed and pulled, and repetitions (a new blob each). */
  s3BlobBytes: number;
  s3Reps: number;
  /** Figure 12: unreferenced blobs for the GC to remove. */
  gcBlobs: number;
  gcPushConcurrency: number;
  /** Figure 12: concurrency and length of the idle GET loop (the during-GC loop lasts as long as GC). */
  gcGetConcurrency: number;
  gcIdleMs: number;
  /** Figure 12: how often the blob directory is listed to see GC's progress. */
  gcPollMs: number;
}

export function storageSizesFor(quick: boolean): StorageSizes {
  return {
    diskImages: quick ? 100 : 500,
    baseLayerBytes: [1.5 * MiB, 1 * MiB, 0.5 * MiB],
    diskConcurrency: 8,
    s3BlobBytes: (quick ? 16 : 64) * MiB,
    s3Reps: 3,
    gcBlobs: quick ? 1_000 : 10_000,
    gcPushConcurrency: 16,
    gcGetConcurrency: 4, // as scenario 6
    gcIdleMs: quick ? 3_000 : 5_000,
    gcPollMs: 100,
  };
}

export interface StorageFailure {
  registry: string;
  scenario: string;
  error: string;
}

type Log = (msg: string) => void;

interface Ctx {
  tmpRoot: string;
  repoRoot: string;
  sizes: StorageSizes;
  log: Log;
  failures: StorageFailure[];
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Starts a server, runs fn, and always stops the server and removes its dir; `afterStop` runs
 * between the two (to measure what the stopped server left on disk).
 */
async function withServer<T>(
  ctx: Ctx,
  opts: Omit<StartOptions, 'tmpRoot' | 'repoRoot'>,
  fn: (s: ServerHandle) => Promise<T>,
  afterStop?: (s: ServerHandle) => void,
): Promise<T> {
  const server = await startRegistry({ ...opts, tmpRoot: ctx.tmpRoot, repoRoot: ctx.repoRoot });
  let ok = false;
  try {
    const result = await fn(server);
    ok = true;
    return result;
  } catch (err) {
    const status = server.exitStatus();
    throw new Error(`${errorText(err)}${status === undefined ? '' : ` [server ${status}; log tail: ${server.logTail().slice(-1200)}]`}`);
  } finally {
    server.rss.stop();
    await server.stop();
    try {
      if (ok) afterStop?.(server);
    } finally {
      removeTempDir(server.dir);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Figure 10: bytes on disk

export interface DiskUsage {
  /** Allocated bytes (st_blocks × 512), each inode once, directories included: what `du -s` counts. */
  allocatedBytes: number;
  /** Sum of st_size, each inode once. */
  apparentBytes: number;
  /** Directory entries that are files, and distinct file inodes among them (hard links share one). */
  fileEntries: number;
  fileInodes: number;
}

/** `du -s`-like walk of `root`, skipping top-level entries named in `skip`; never follows symlinks. */
export function diskUsage(root: string, skip: readonly string[] = []): DiskUsage {
  const seen = new Set<string>();
  const usage: DiskUsage = { allocatedBytes: 0, apparentBytes: 0, fileEntries: 0, fileInodes: 0 };
  const stack: string[] = [root];
  while (stack.length > 0) {
    const p = stack.pop() as string;
    const st = fs.lstatSync(p, { bigint: true });
    const key = `${st.dev}:${st.ino}`;
    if (!st.isDirectory()) usage.fileEntries++;
    if (seen.has(key)) continue;
    seen.add(key);
    usage.allocatedBytes += Number(st.blocks) * 512;
    usage.apparentBytes += Number(st.size);
    if (!st.isDirectory()) {
      usage.fileInodes++;
      continue;
    }
    for (const name of fs.readdirSync(p)) {
      if (p === root && skip.includes(name)) continue;
      stack.push(path.join(p, name));
    }
  }
  return usage;
}

interface DiskImage {
  blobs: Array<{ data: Buffer; digest: string }>;
  manifest: Buffer;
}

/** The images of figure 10: the same base layers, then one small unique layer and a unique config. */
function makeDiskImages(sizes: StorageSizes): DiskImage[] {
  const base = sizes.baseLayerBytes.map((n) => {
    const data = crypto.randomBytes(n);
    return { data, digest: sha256(data) };
  });
  return Array.from({ length: sizes.diskImages }, (_, i) => {
    const unique = crypto.randomBytes(4096 + crypto.randomInt(12 * 1024 + 1));
    const layers = [...base, { data: unique, digest: sha256(unique) }];
    const { config, configDigest, manifest } = imageOver(i, layers);
    return { blobs: [...layers, { data: config, digest: configDigest }], manifest };
  });
}

export type DiskVariant = 'zot-dedupe' | 'zot-no-dedupe' | 'distribution';

export interface DiskRun {
  variant: DiskVariant;
  images: number;
  pushMs: number;
  /** The storage root, without zot-ts's private .zot-ts/ directory. */
  usage: DiskUsage;
  /** zot-ts's .zot-ts/ (the SQLite event log and its projections). */
  eventLog?: DiskUsage;
}

async function diskRun(ctx: Ctx, variant: DiskVariant, images: DiskImage[]): Promise<DiskRun> {
  const kind: RegistryKind = variant === 'distribution' ? 'distribution' : 'zot';
  const opts = kind === 'zot' ? { kind, zotStorage: { dedupe: variant === 'zot-dedupe' } } : { kind };
  let usage: DiskUsage | undefined;
  let eventLog: DiskUsage | undefined;
  const pushMs = await withServer(
    ctx,
    opts,
    async (server) => {
      const agent = keepAliveAgent(ctx.sizes.diskConcurrency);
      try {
        const client = new OciClient(server.baseUrl, agent, { timeoutMs: 60_000 });
        const t0 = performance.now();
        // Every blob is uploaded, as a client without a cross-repository mount does; the registry
        // decides whether to keep another copy.
        await runPool(images.length, ctx.sizes.diskConcurrency, async (i) => {
          const img = images[i] as DiskImage;
          const repo = `bench/disk${i}`;
          for (const b of img.blobs) await client.pushSmallBlob(repo, b.data, b.digest);
          await client.putManifest(repo, 'latest', img.manifest, OCI_MANIFEST);
        });
        return performance.now() - t0;
      } finally {
        agent.destroy();
      }
    },
    // Measured once stopped: zot-ts's index.json writer and the SQLite checkpoint have finished.
    (server) => {
      usage = diskUsage(server.dataDir, kind === 'zot' ? [PRIVATE_DIR] : []);
      if (kind === 'zot') eventLog = diskUsage(path.join(server.dataDir, PRIVATE_DIR));
    },
  );
  if (usage === undefined) throw new Error('the storage root was not measured');
  return { variant, images: images.length, pushMs, usage, ...(eventLog === undefined ? {} : { eventLog }) };
}

// ---------------------------------------------------------------------------------------------
// Figure 11: S3 next to the filesystem

export type Backend = 'fs' | 's3';

export interface TransferRuns {
  pushMiBPerS: number[];
  pullMiBPerS: number[];
  errors: string[];
  /** Why this registry was not run on this backend. */
  skipped?: string;
}

export interface S3Figures {
  registries: Partial<Record<RegistryKind, Record<Backend, TransferRuns>>>;
  /** s3rver alone, PutObject and GetObject of the same blobs from the bench process. */
  baseline: { putMiBPerS: number[]; getMiBPerS: number[]; errors: string[] };
}

/**
 * distribution 2.8's s3-aws driver resumes an upload (every PATCH and the closing PUT) by finding
 * its multipart upload with ListMultipartUploads (GET /bucket?uploads), which s3rver 3.7.1 answers
 * 501 NotImplemented: every blob push fails with 500 "s3aws: NotImplemented". (Its start-up also
 * panics when AWS_CA_BUNDLE is set; servers.ts drops that variable.)
 */
export const DISTRIBUTION_S3_SKIPPED =
  "distribution 2.8's s3 driver resumes each upload with ListMultipartUploads (GET ?uploads), which s3rver 3.7.1 " +
  'answers 501 NotImplemented, so every blob PUT fails with 500 "s3aws: NotImplemented"; distribution is run on the filesystem only';

/** Storage settings of each registry for s3rver, each under its own key prefix. */
function s3Options(kind: RegistryKind, s3: S3rverProcess): Omit<StartOptions, 'tmpRoot' | 'repoRoot'> {
  if (kind === 'zot') {
    return {
      kind,
      zotStorage: {
        storageDriver: {
          name: 's3',
          rootdirectory: '/zot-ts',
          region: 'us-east-1',
          regionendpoint: s3.endpoint,
          bucket: s3.bucket,
          secure: false,
          accesskey: s3.accessKey,
          secretkey: s3.secretKey,
        },
      },
    };
  }
  // distribution 2.8's s3-aws driver: path-style addressing follows from regionendpoint being set
  // (forcepathstyle is a 3.x parameter), and the region is not checked against AWS's list then.
  return {
    kind,
    distributionS3: {
      region: 'us-east-1',
      regionendpoint: s3.endpoint,
      bucket: s3.bucket,
      accesskey: s3.accessKey,
      secretkey: s3.secretKey,
      secure: false,
      v4auth: true,
      rootdirectory: '/distribution',
    },
  };
}

/** One monolithic push of `blob` to `repo` and one pull of it, timed apart. */
async function pushThenPull(baseUrl: string, repo: string, blob: BlobFile): Promise<{ push: number; pull: number }> {
  const agent = keepAliveAgent(1);
  try {
    const client = new OciClient(baseUrl, agent);
    const t0 = performance.now();
    await client.pushBlobMonolithic(repo, blob);
    const t1 = performance.now();
    const bytes = await client.pullBlob(repo, blob.digest);
    const t2 = performance.now();
    if (bytes !== blob.size) throw new Error(`GET /v2/${repo}/blobs/${blob.digest} returned ${bytes} bytes, expected ${blob.size}`);
    return { push: blob.size / MiB / ((t1 - t0) / 1000), pull: blob.size / MiB / ((t2 - t1) / 1000) };
  } finally {
    agent.destroy();
  }
}

async function measureS3(ctx: Ctx, kinds: readonly RegistryKind[]): Promise<S3Figures> {
  const { sizes, log } = ctx;
  const fixtures = makeTempDir(ctx.tmpRoot, 'fixtures-s3-');
  const result: S3Figures = { registries: {}, baseline: { putMiBPerS: [], getMiBPerS: [], errors: [] } };
  let s3: S3rverProcess | undefined;
  try {
    // A new blob per repetition, so no registry can skip a write because it has the bytes already.
    const blobs = Array.from({ length: sizes.s3Reps }, (_, i) => writeRandomFile(path.join(fixtures, `s3-${i}.bin`), sizes.s3BlobBytes));
    s3 = await startS3rverProcess(ctx.tmpRoot);
    log(`s3rver: pid ${s3.pid} on ${s3.endpoint}`);
    for (let rep = 0; rep < sizes.s3Reps; rep++) {
      try {
        const r = await s3rverBaseline(s3, blobs[rep] as BlobFile, `baseline/${rep}`);
        result.baseline.putMiBPerS.push(r.putMiBPerS);
        result.baseline.getMiBPerS.push(r.getMiBPerS);
        log(`s3rver alone ${rep + 1}/${sizes.s3Reps}: PutObject ${r.putMiBPerS.toFixed(1)} MiB/s, GetObject ${r.getMiBPerS.toFixed(1)} MiB/s`);
      } catch (err) {
        result.baseline.errors.push(errorText(err));
        log(`s3rver alone ${rep + 1}/${sizes.s3Reps}: FAILED ${errorText(err)}`);
      }
    }
    for (const kind of kinds) {
      const runs: Record<Backend, TransferRuns> = {
        fs: { pushMiBPerS: [], pullMiBPerS: [], errors: [] },
        s3: { pushMiBPerS: [], pullMiBPerS: [], errors: [] },
      };
      result.registries[kind] = runs;
      if (kind === 'distribution') runs.s3.skipped = DISTRIBUTION_S3_SKIPPED;
      for (const backend of ['fs', 's3'] as const) {
        if (runs[backend].skipped !== undefined) continue;
        const scenario = `11. push and pull ${backend === 'fs' ? 'filesystem' : 'S3'}`;
        try {
          await withServer(ctx, backend === 'fs' ? { kind } : s3Options(kind, s3 as S3rverProcess), async (server) => {
            for (let rep = 0; rep < sizes.s3Reps; rep++) {
              try {
                const r = await pushThenPull(server.baseUrl, `bench/${backend}${rep}`, blobs[rep] as BlobFile);
                runs[backend].pushMiBPerS.push(r.push);
                runs[backend].pullMiBPerS.push(r.pull);
                log(`${REGISTRY_LABEL[kind]} ${scenario} ${rep + 1}/${sizes.s3Reps}: push ${r.push.toFixed(1)} MiB/s, pull ${r.pull.toFixed(1)} MiB/s`);
              } catch (err) {
                runs[backend].errors.push(errorText(err));
                ctx.failures.push({ registry: REGISTRY_LABEL[kind], scenario, error: errorText(err) });
                log(`${REGISTRY_LABEL[kind]} ${scenario} ${rep + 1}/${sizes.s3Reps}: FAILED ${errorText(err)}`);
                if (server.exitStatus() !== undefined) throw err;
              }
            }
          });
        } catch (err) {
          if (runs[backend].errors.length === 0) {
            runs[backend].errors.push(errorText(err));
            ctx.failures.push({ registry: REGISTRY_LABEL[kind], scenario, error: errorText(err) });
            log(`${REGISTRY_LABEL[kind]} ${scenario}: FAILED ${errorText(err)}`);
          }
        }
      }
    }
  } finally {
    await s3?.stop();
    removeTempDir(fixtures);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Figure 12: manifest GETs while GC removes blobs

export interface GcResult {
  blobs: number;
  pushMs: number;
  idle: LatencyStats;
  during: LatencyStats;
  p50Ratio: number;
  p99Ratio: number;
  /** From the server's start (gc on) to the first removal seen, and from then to the last. */
  startToFirstRemovalMs: number;
  removalMs: number;
  removedPerS: number;
  gcInterval: string;
  gcDelay: string;
  /** Blob files left when the idle loop ended: all of them unless GC started early. */
  blobsAfterIdle: number;
}

/** Files in a directory, or 0 once it is gone (GC removes an emptied repository). */
async function countFiles(dir: string): Promise<number> {
  try {
    return (await fs.promises.readdir(dir)).length;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

/**
 * The blobs are pushed with gc off, then a server with gc on takes over the same root. Pushing
 * thousands of blobs outlasts any short gcDelay, so with gc on from the start the first sweeps
 * would run during the push and mix push load into the during-GC figures. The second server
 * sweeps every repository at its first tick (gcInterval after it starts, long enough for the idle
 * loop to run first), and by then every blob is older than gcDelay.
 */
async function measureGc(ctx: Ctx): Promise<GcResult> {
  const { sizes, log } = ctx;
  const dataDir = makeTempDir(ctx.tmpRoot, 'gc-root-');
  const repo = 'bench/garbage';
  const blobsDir = path.join(dataDir, repo, 'blobs', 'sha256');
  const gcDelay = '1s';
  const gcInterval = `${Math.ceil((sizes.gcIdleMs + 500 + 4_000) / 1000)}s`;
  try {
    let pushMs = 0;
    await withServer(ctx, { kind: 'zot', dataDir }, async (server) => {
      const agent = keepAliveAgent(sizes.gcPushConcurrency);
      try {
        const client = new OciClient(server.baseUrl, agent, { timeoutMs: 60_000 });
        await pushHotImage(client);
        const t0 = performance.now();
        await runPool(sizes.gcBlobs, sizes.gcPushConcurrency, async () => {
          const data = crypto.randomBytes(1024 + crypto.randomInt(3 * 1024 + 1));
          await client.pushSmallBlob(repo, data, sha256(data));
        });
        pushMs = performance.now() - t0;
      } finally {
        agent.destroy();
      }
    });
    const pushed = await countFiles(blobsDir);
    if (pushed !== sizes.gcBlobs) throw new Error(`${pushed} blob files in ${repo} after pushing ${sizes.gcBlobs}`);
    log(`zot-ts 12. gc: pushed ${pushed} unreferenced blobs in ${(pushMs / 1000).toFixed(1)} s with gc off; restarting with gc on (gcDelay ${gcDelay}, gcInterval ${gcInterval})`);

    return await withServer(ctx, { kind: 'zot', dataDir, zotStorage: { gc: true, gcDelay, gcInterval } }, async (server) => {
      const started = performance.now() - server.startupMs;
      // The directory is listed on a timer during both loops, so both pay the same client cost.
      let count = pushed;
      let firstRemovalAt: number | undefined;
      let allGoneAt: number | undefined;
      let pollError: unknown;
      let polling = true;
      const poller = (async () => {
        while (polling && allGoneAt === undefined) {
          try {
            count = await countFiles(blobsDir);
          } catch (err) {
            pollError = err;
            return;
          }
          const now = performance.now();
          if (count < pushed && firstRemovalAt === undefined) firstRemovalAt = now;
          if (count === 0) allGoneAt = now;
          await sleep(sizes.gcPollMs);
        }
      })();
      const agent = keepAliveAgent(sizes.gcGetConcurrency);
      try {
        const client = new OciClient(server.baseUrl, agent, { timeoutMs: 120_000 });
        const target = { repo: 'bench/hot', ref: 'latest', bytes: 0 };
        // The hot image's manifest size, as the GET loop checks every answer's length.
        target.bytes = await client.getManifest(target.repo, target.ref, OCI_MANIFEST);
        await manifestGetLoop(client, target, sizes.gcGetConcurrency, { durationMs: 500, maxRequests: 500 });
        const idle = await manifestGetLoop(client, target, sizes.gcGetConcurrency, { durationMs: sizes.gcIdleMs, maxRequests: 10_000_000 });
        const blobsAfterIdle = count;
        const waitUntil = performance.now() + 120_000;
        while (firstRemovalAt === undefined && pollError === undefined && performance.now() < waitUntil) await sleep(20);
        if (pollError !== undefined) throw pollError;
        if (firstRemovalAt === undefined) throw new Error(`GC removed none of the ${pushed} blobs within 2 min of the idle loop's end`);
        const during = await manifestGetLoop(client, target, sizes.gcGetConcurrency, {
          durationMs: 600_000,
          maxRequests: 100_000_000,
          stopWhen: () => allGoneAt !== undefined || pollError !== undefined,
        });
        if (pollError !== undefined) throw pollError;
        if (allGoneAt === undefined) throw new Error(`GC had not removed all blobs after 10 min (${count} of ${pushed} left)`);
        const removalMs = allGoneAt - firstRemovalAt;
        return {
          blobs: pushed,
          pushMs,
          idle,
          during,
          p50Ratio: during.p50Ms / idle.p50Ms,
          p99Ratio: during.p99Ms / idle.p99Ms,
          startToFirstRemovalMs: firstRemovalAt - started,
          removalMs,
          removedPerS: pushed / (removalMs / 1000),
          gcInterval,
          gcDelay,
          blobsAfterIdle,
        };
      } finally {
        polling = false;
        await poller;
        agent.destroy();
      }
    });
  } finally {
    removeTempDir(dataDir);
  }
}

// ---------------------------------------------------------------------------------------------
// All three

export interface StorageResult {
  sizes: StorageSizes;
  disk: Partial<Record<DiskVariant, DiskRun | Error>>;
  s3: S3Figures | Error;
  gc: GcResult | Error | undefined;
  failures: StorageFailure[];
}

function fmtMiB(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

export async function measureStorage(kinds: readonly RegistryKind[], quick: boolean, tmpRoot: string, repoRoot: string, log: Log): Promise<StorageResult> {
  const sizes = storageSizesFor(quick);
  const ctx: Ctx = { tmpRoot, repoRoot, sizes, log, failures: [] };
  const result: StorageResult = { sizes, disk: {}, s3: new Error('not run'), gc: undefined, failures: ctx.failures };

  const images = makeDiskImages(sizes);
  const variants: DiskVariant[] = [
    ...(kinds.includes('zot') ? (['zot-dedupe', 'zot-no-dedupe'] as const) : []),
    ...(kinds.includes('distribution') ? (['distribution'] as const) : []),
  ];
  for (const variant of variants) {
    const registry = variant === 'distribution' ? 'distribution' : 'zot-ts';
    try {
      const r = await diskRun(ctx, variant, images);
      result.disk[variant] = r;
      log(
        `${registry} 10. disk (${variant}): ${r.images} images in ${(r.pushMs / 1000).toFixed(1)} s; ${fmtMiB(r.usage.allocatedBytes)} allocated, ` +
          `${fmtMiB(r.usage.apparentBytes)} apparent, ${r.usage.fileEntries} file entries on ${r.usage.fileInodes} inodes` +
          (r.eventLog === undefined ? '' : `; .zot-ts/ ${fmtMiB(r.eventLog.allocatedBytes)}`),
      );
    } catch (err) {
      result.disk[variant] = err instanceof Error ? err : new Error(errorText(err));
      ctx.failures.push({ registry, scenario: `10. disk (${variant})`, error: errorText(err) });
      log(`${registry} 10. disk (${variant}): FAILED ${errorText(err)}`);
    }
  }

  try {
    result.s3 = await measureS3(ctx, kinds);
  } catch (err) {
    result.s3 = err instanceof Error ? err : new Error(errorText(err));
    for (const kind of kinds) ctx.failures.push({ registry: REGISTRY_LABEL[kind], scenario: '11. S3', error: errorText(err) });
    log(`11. S3: FAILED ${errorText(err)}`);
  }

  if (kinds.includes('zot')) {
    try {
      const r = await measureGc(ctx);
      result.gc = r;
      log(
        `zot-ts 12. gc: idle p50 ${r.idle.p50Ms.toFixed(2)} / p99 ${r.idle.p99Ms.toFixed(2)} ms (${r.idle.count}); during GC p50 ${r.during.p50Ms.toFixed(2)} / ` +
          `p99 ${r.during.p99Ms.toFixed(2)} / max ${r.during.maxMs.toFixed(1)} ms (${r.during.count}); ${r.blobs} blobs removed in ${(r.removalMs / 1000).toFixed(2)} s ` +
          `(${r.removedPerS.toFixed(0)}/s), first removal ${(r.startToFirstRemovalMs / 1000).toFixed(1)} s after start; ${r.blobsAfterIdle} left after the idle loop`,
      );
    } catch (err) {
      result.gc = err instanceof Error ? err : new Error(errorText(err));
      ctx.failures.push({ registry: 'zot-ts', scenario: '12. GC', error: errorText(err) });
      log(`zot-ts 12. GC: FAILED ${errorText(err)}`);
    }
  }
  return result;
}

