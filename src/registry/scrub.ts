// Scrub: re-reads every blob and manifest the projections say storage holds and checks that its
// bytes still hash to its digest. Files with a local path are hashed in the piscina pool, with
// enough tasks queued to keep every thread busy; content with no local path (S3) is streamed
// through node:crypto on the main thread, a few objects at a time. Read-only: it never repairs.
import { createHash } from 'node:crypto';
import { addAbortSignal, type Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { RegistryStateQueries } from '../projections/registry-state.js';
import { PathNotFoundError } from '../storage/driver.js';
import { blobPath } from '../storage/layout.js';
import type { StorageRoot, StorageRoots } from '../storage/roots.js';
import type { HashPool } from '../workers/pool.js';
import { eachBounded } from '../concurrency.js';
import { RegistryError } from '../oci/errors.js';
import { parseDigest, type ParsedDigest } from '../oci/digest.js';

export type ContentKind = 'blob' | 'manifest';

export interface CorruptContent {
  digest: string;
  kind: ContentKind;
  /** The size the log recorded. */
  size: number;
  /**
   * `digest-mismatch`: the bytes hash to `found`; `size-mismatch`: storage holds `found` bytes;
   * `unreadable`: reading failed with the error in `found`.
   */
  problem: 'digest-mismatch' | 'size-mismatch' | 'unreadable';
  found: string;
}

export interface MissingContent {
  digest: string;
  kind: ContentKind;
  size: number;
}

export interface RepositoryScrub {
  repo: string;
  /** Content whose bytes hash to its digest. */
  ok: { blobs: number; manifests: number };
  corrupt: CorruptContent[];
  missing: MissingContent[];
}

export interface ScrubReport {
  /** Every repository of the log, by name. */
  repositories: RepositoryScrub[];
  /** Intact `blobs` and `manifests`, problems, and the `bytes` (as the log sizes them) read, each copy once. */
  totals: { repositories: number; blobs: number; manifests: number; bytes: number; corrupt: number; missing: number };
  durationMs: number;
}

export interface ScrubDeps {
  roots: StorageRoots;
  queries: RegistryStateQueries;
  hashPool: Pick<HashPool, 'hashFile' | 'maxThreads'>;
  signal?: AbortSignal;
  /**
   * Pool tasks in flight. Default: two per pool thread, so a thread finds its next file queued
   * while the main thread stats the one after. A registry sharing its pool with uploads asks less.
   */
  poolConcurrency?: number;
}

/** Objects streamed at once from a driver with no local path; each holds a connection and a buffer. */
export const STREAM_CONCURRENCY = 4;
/** How long to wait before asking again when the pool is full of upload verifications. */
const POOL_FULL_RETRY_MS = 1000;

type Outcome =
  | { status: 'ok' }
  | { status: 'missing' }
  | { status: 'corrupt'; problem: CorruptContent['problem']; found: string };

interface Item {
  repo: string;
  digest: ParsedDigest;
  size: number;
  kind: ContentKind;
  root: StorageRoot;
  path: string;
}

export function scrubFoundProblems(report: ScrubReport): boolean {
  return report.totals.corrupt > 0 || report.totals.missing > 0;
}

export async function scrubStorage(deps: ScrubDeps): Promise<ScrubReport> {
  const { roots, queries, hashPool, signal } = deps;
  const started = Date.now();

  // Where the bytes of a repository's blob or manifest live: a blob deduped on S3 is read at its
  // holder's path; a manifest is always at the repository's own.
  const contentPathOf = (repo: string, digest: string, kind: 'blob' | 'manifest'): string =>
    blobPath(kind === 'blob' ? (queries.blobStoredIn(repo, digest) ?? repo) : repo, parseDigest(digest));

  const byRepo = new Map<string, RepositoryScrub>();
  const repository = (repo: string): RepositoryScrub => {
    let entry = byRepo.get(repo);
    if (!entry) byRepo.set(repo, (entry = { repo, ok: { blobs: 0, manifests: 0 }, corrupt: [], missing: [] }));
    return entry;
  };
  for (const repo of queries.allRepositories()) repository(repo);

  const local: Item[] = [];
  const remote: Item[] = [];
  for (const row of queries.allStoredContent()) {
    const root = roots.for(row.repo);
    const item: Item = { ...row, digest: parseDigest(row.digest), root, path: contentPathOf(row.repo, row.digest, row.kind) };
    (root.driver.localPath(item.path) !== undefined ? local : remote).push(item);
  }

  // A manifest stored as a blob too, or bytes shared by two repositories, are read once.
  const checked = new Map<string, Promise<Outcome>>();
  let bytes = 0;
  const scrubItem = async (item: Item): Promise<void> => {
    const key = `${item.root.rootDirectory}\0${item.path}`;
    let outcome = checked.get(key);
    if (!outcome) {
      outcome = checkContent(item, hashPool, signal);
      checked.set(key, outcome);
      bytes += item.size;
    }
    const result = await outcome;
    if (result.status === 'ok') {
      repository(item.repo).ok[item.kind === 'blob' ? 'blobs' : 'manifests']++;
      return;
    }
    // Deleted while the scrub ran: the log names it no longer, so its absence is no damage.
    if (!stillHeld(queries, item)) return;
    // Its bytes moved while the scrub ran (their holder was deleted): check them where they are now.
    const now = contentPathOf(item.repo, item.digest.value, item.kind);
    if (now !== item.path) return scrubItem({ ...item, path: now });
    const entry = repository(item.repo);
    if (result.status === 'missing') entry.missing.push({ digest: item.digest.value, kind: item.kind, size: item.size });
    else entry.corrupt.push({ digest: item.digest.value, kind: item.kind, size: item.size, problem: result.problem, found: result.found });
  };

  const poolConcurrency = Math.max(1, deps.poolConcurrency ?? hashPool.maxThreads * 2);
  await Promise.all([eachBounded(local, poolConcurrency, scrubItem, signal), eachBounded(remote, STREAM_CONCURRENCY, scrubItem, signal)]);
  signal?.throwIfAborted();

  const repositories = [...byRepo.values()].sort((a, b) => (a.repo < b.repo ? -1 : a.repo > b.repo ? 1 : 0));
  const byDigest = (a: { digest: string; kind: string }, b: { digest: string; kind: string }) =>
    a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : a.kind.localeCompare(b.kind);
  const totals = { repositories: repositories.length, blobs: 0, manifests: 0, bytes, corrupt: 0, missing: 0 };
  for (const entry of repositories) {
    entry.corrupt.sort(byDigest);
    entry.missing.sort(byDigest);
    totals.blobs += entry.ok.blobs;
    totals.manifests += entry.ok.manifests;
    totals.corrupt += entry.corrupt.length;
    totals.missing += entry.missing.length;
  }
  return { repositories, totals, durationMs: Date.now() - started };
}

async function checkContent(item: Item, hashPool: ScrubDeps['hashPool'], signal: AbortSignal | undefined): Promise<Outcome> {
  const { driver } = item.root;
  let hex: string;
  try {
    const info = await driver.stat(item.path);
    if (!info) return { status: 'missing' };
    if (info.isDirectory) return { status: 'corrupt', problem: 'unreadable', found: 'a directory' };
    // A file of the wrong size cannot hash right: no need to read it.
    if (info.size !== item.size) return { status: 'corrupt', problem: 'size-mismatch', found: String(info.size) };
    signal?.throwIfAborted();
    const localPath = driver.localPath(item.path);
    hex =
      localPath !== undefined
        ? await hashInPool(hashPool, localPath, item.digest.algorithm, signal)
        : await hashStream(await driver.reader(item.path), item.digest.algorithm, signal);
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    // Removed between the stat and the read.
    if (err instanceof PathNotFoundError || (err as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'missing' };
    return { status: 'corrupt', problem: 'unreadable', found: err instanceof Error ? err.message : String(err) };
  }
  return hex === item.digest.hex ? { status: 'ok' } : { status: 'corrupt', problem: 'digest-mismatch', found: `${item.digest.algorithm}:${hex}` };
}

async function hashInPool(hashPool: ScrubDeps['hashPool'], path: string, algorithm: ParsedDigest['algorithm'], signal: AbortSignal | undefined): Promise<string> {
  for (;;) {
    try {
      return await hashPool.hashFile({ path, algorithm }, signal);
    } catch (err) {
      // A pool shared with a busy registry: uploads come first, the scrub waits its turn.
      if (!(err instanceof RegistryError && err.kind === 'TOOMANYREQUESTS')) throw err;
      await delay(POOL_FULL_RETRY_MS, undefined, signal ? { signal } : {});
    }
  }
}

async function hashStream(stream: Readable, algorithm: ParsedDigest['algorithm'], signal: AbortSignal | undefined): Promise<string> {
  if (signal) addAbortSignal(signal, stream);
  const hash = createHash(algorithm);
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function stillHeld(queries: RegistryStateQueries, item: Item): boolean {
  return item.kind === 'blob'
    ? queries.blobSize(item.repo, item.digest.value) !== undefined
    : queries.manifest(item.repo, item.digest.value) !== undefined;
}

