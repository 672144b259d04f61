// Compares what the projections say with what storage holds. Drift is anything a client could
// be served wrongly: content the projection names that is missing or of the wrong size (or, when
// asked to re-hash, whose bytes do not hash to its digest), or an index.json that disagrees with
// the tags. Files storage holds that no event names (a crash between writing bytes and appending
// the event) are orphans, reported as notes: GC removes them.
import type { RegistryStateQueries } from '../projections/registry-state.js';
import { PathNotFoundError } from '../storage/driver.js';
import type { StorageRoots } from '../storage/roots.js';
import { blobPath, blobsDir, indexPath, uploadsDir } from '../storage/layout.js';
import { DIGEST_ALGORITHMS, parseDigest } from '../oci/digest.js';
import { scrubStorage, type ScrubDeps } from './scrub.js';

export interface StorageComparison {
  drift: string[];
  notes: string[];
  /**
   * Content the projections name that storage lacked: drift unless a removal committed after the
   * projections were read explains it (recheckMissing, once the caller's snapshot is over).
   */
  missing: StoredContent[];
  /**
   * Repositories whose index.json could not be read: drift unless the repository's removal (GC of
   * an empty repository) committed after the projections were read (recheckMissing).
   */
  missingIndexes: string[];
}

export interface StoredContent {
  repo: string;
  digest: string;
  kind: 'blob' | 'manifest';
}

export async function compareStorage(
  roots: StorageRoots,
  queries: RegistryStateQueries,
  expectedIndex: (repo: string) => unknown,
  indexWriterCaughtUp: boolean,
  /** With a pool, every blob and manifest is also re-hashed, as scrub does. */
  rehashWith?: ScrubDeps['hashPool'],
): Promise<StorageComparison> {
  const drift: string[] = [];
  const notes: string[] = [];
  const missing: StoredContent[] = [];
  const missingIndexes: string[] = [];
  const known = new Map<string, Set<string>>();
  for (const item of queries.allStoredContent()) {
    const digest = parseDigest(item.digest);
    const { driver } = roots.for(item.repo);
    const storedIn = item.kind === 'blob' ? queries.blobStoredIn(item.repo, item.digest) : undefined;
    if (storedIn !== undefined && roots.for(storedIn) !== roots.for(item.repo)) {
      drift.push(`${item.repo}: blob ${item.digest} is stored in ${storedIn}, which is in another storage root`);
    }
    const info = await driver.stat(blobPath(storedIn ?? item.repo, digest));
    if (!info) missing.push({ repo: item.repo, digest: item.digest, kind: item.kind });
    else if (info.size !== item.size) drift.push(sizeDrift(item, info.size, item.size));
    let set = known.get(item.repo);
    if (!set) known.set(item.repo, (set = new Set()));
    set.add(`${digest.algorithm}/${digest.hex}`);
  }
  for (const repo of queries.allRepositories()) {
    const { driver, staging } = roots.for(repo);
    const names = known.get(repo) ?? new Set<string>();
    let orphans = 0;
    for (const algorithm of DIGEST_ALGORITHMS) {
      for (const hex of await driver.list(blobsDir(repo, algorithm))) {
        if (!names.has(`${algorithm}/${hex}`)) orphans++;
      }
    }
    if (orphans > 0) notes.push(`${repo}: ${orphans} blob file(s) that no event names (orphans, removed by GC)`);
    const uploads = (await staging.list(uploadsDir(repo))).length;
    if (uploads > 0) notes.push(`${repo}: ${uploads} upload session(s) in progress or abandoned`);
    if (!indexWriterCaughtUp) continue;
    try {
      const onDisk = JSON.parse((await driver.getContent(indexPath(repo))).toString('utf8')) as unknown;
      if (JSON.stringify(onDisk) !== JSON.stringify(expectedIndex(repo))) drift.push(`${repo}: index.json differs from the tags and manifests in the log`);
    } catch (err) {
      // On a filesystem a repository holding no manifest has no index.json until its first
      // (repository-files.ts ensureLayout).
      if (err instanceof PathNotFoundError && staging === driver && queries.manifestsWithTags(repo).length === 0) continue;
      missingIndexes.push(repo);
    }
  }
  if (rehashWith) drift.push(...(await rehashDrift(roots, queries, rehashWith)));
  if (!indexWriterCaughtUp) notes.push('index.json writer has not caught up with the log; index.json files were not compared');
  return { drift, notes, missing, missingIndexes };
}

/** The drift line of content whose file has another size than the log records. */
function sizeDrift(item: StoredContent, onStorage: number, inLog: number): string {
  return `${item.repo}: ${item.kind} ${item.digest} has ${onStorage} bytes on storage, ${inLog} in the log`;
}

/**
 * Content found missing while the projections were read in one snapshot, checked again against
 * the projections as they are now: a running registry removes a file only after it commits the
 * removal (GC, a DELETE), so a file that went while the check ran is explained by a removal the
 * snapshot predates. Content still recorded and still absent (where it is stored now) is drift.
 */
export async function recheckMissing(
  roots: StorageRoots,
  queries: RegistryStateQueries,
  missing: readonly StoredContent[],
  missingIndexes: readonly string[] = [],
): Promise<StorageComparison> {
  const drift: string[] = [];
  let removed = 0;
  let removedRepositories = 0;
  for (const repo of missingIndexes) {
    if (!queries.repositoryExists(repo)) removedRepositories++;
    else if (!(await readableIndex(roots, repo))) drift.push(`${repo}: index.json is missing or unreadable`);
  }
  for (const item of missing) {
    const recorded = item.kind === 'blob' ? queries.blobSize(item.repo, item.digest) : queries.manifest(item.repo, item.digest)?.size;
    if (recorded === undefined) {
      removed++;
      continue;
    }
    const storedIn = item.kind === 'blob' ? queries.blobStoredIn(item.repo, item.digest) : undefined;
    const info = await roots.for(item.repo).driver.stat(blobPath(storedIn ?? item.repo, parseDigest(item.digest)));
    if (!info) drift.push(`${item.repo}: ${item.kind} ${item.digest} is missing from storage`);
    else if (info.size !== recorded) drift.push(sizeDrift(item, info.size, recorded));
  }
  const notes = removed > 0 ? [`${removed} blob(s) or manifest(s) removed by the registry while the check ran (not drift)`] : [];
  if (removedRepositories > 0) notes.push(`${removedRepositories} repository(ies) removed by the registry while the check ran (not drift)`);
  return { drift, notes, missing: [], missingIndexes: [] };
}

/** Whether the repository's index.json reads as JSON. */
async function readableIndex(roots: StorageRoots, repo: string): Promise<boolean> {
  try {
    JSON.parse((await roots.for(repo).driver.getContent(indexPath(repo))).toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

/**
 * Content whose bytes do not hash to its digest, or cannot be read. Missing content and a wrong
 * size are reported by the comparison above already, so they are left out here.
 */
async function rehashDrift(roots: StorageRoots, queries: RegistryStateQueries, hashPool: ScrubDeps['hashPool']): Promise<string[]> {
  const report = await scrubStorage({ roots, queries, hashPool });
  const drift: string[] = [];
  for (const entry of report.repositories) {
    for (const item of entry.corrupt) {
      if (item.problem === 'digest-mismatch') drift.push(`${entry.repo}: ${item.kind} ${item.digest} has bytes on storage that hash to ${item.found}`);
      else if (item.problem === 'unreadable') drift.push(`${entry.repo}: ${item.kind} ${item.digest} is unreadable on storage: ${item.found}`);
    }
  }
  return drift;
}
