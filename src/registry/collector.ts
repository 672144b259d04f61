// Garbage collection of one repository: what nothing keeps any more and is older than its root's
// gcDelay goes, each removal an event appended by identity system:gc. A sweep reads candidates
// from the projection with indexed queries, so its cost follows the repository swept and what it
// removes, and it takes no global lock: each removal holds only the content lock of its digest,
// and re-checks inside its append that the thing is still garbage.
//
// In order:
//   0. retention (retention.ts): the tags the repository's policy does not keep;
//   1. manifests nothing keeps (untagged, not in an index, not a referrer of a present subject)
//      that the retention policy lets go (untagged ones unless deleteUntagged is false or
//      keepUntagged keeps them, referrers whose subject is gone only with deleteReferrers) once
//      older than its delay, repeated while removing one frees others (an index's children, a
//      subject's referrers); none in a dry run, which stops here and removes nothing at all;
//   2. blobs no manifest of the repository references;
//   3. orphans: blob files no event names (a crash between placing bytes and appending);
//   4. the repository itself once nothing is left in it (no upload session either: idle sessions
//      expire on their own, GC or not, in upload-expiry.ts).
import type { Logger } from 'pino';
import type { EventStore } from '../events/store.js';
import { SYSTEM_GC_IDENTITY, type EventContext, type RemovalCause } from '../events/types.js';
import type { RegistryStateQueries } from '../projections/registry-state.js';
import { blobPath, blobsDir, indexPath, ociLayoutPath, repoDir, uploadsDir } from '../storage/layout.js';
import { removeEmptyDirectory as removeLocalDirectory } from '../storage/directories.js';
import type { StorageDriver } from '../storage/driver.js';
import type { StorageRoots } from '../storage/roots.js';
import { DIGEST_ALGORITHMS, digestOfStoredName, parseDigest, type ParsedDigest } from '../oci/digest.js';
import type { Registry } from './registry.js';
import type { Retention } from './retention.js';

const GC_CONTEXT: EventContext = { identity: SYSTEM_GC_IDENTITY };

/** What one sweep removed, by kind (the `type` label of zot_gc_deleted_total). */
export interface RemovedCounts {
  manifests: number;
  blobs: number;
  orphans: number;
  repositories: number;
}

export interface SweepResult {
  removed: RemovedCounts;
  /** When something now too young to remove will be old enough; undefined when nothing waits. */
  nextDueAt?: number;
}

/** Thrown by a removal's precondition when a write made the thing live again: not a failure. */
class StillInUse extends Error {}

export class RepositoryCollector {
  constructor(
    private readonly registry: Registry,
    private readonly queries: RegistryStateQueries,
    private readonly store: EventStore,
    private readonly roots: StorageRoots,
    private readonly retention: Retention,
    private readonly logger: Logger,
  ) {}

  /** How long after content arrives it may first be garbage: gcDelay, or retention's delay if shorter. */
  delayAfterAdding(repo: string): number {
    return Math.min(this.roots.for(repo).gcDelayMs, this.retention.delayMs(repo));
  }

  /** `stopping` is checked between removals, so a shutdown never waits for a long sweep. */
  async sweep(repo: string, now: number, stopping: () => boolean = () => false): Promise<SweepResult> {
    const root = this.roots.for(repo);
    const cutoff = now - root.gcDelayMs;
    const waiting: number[] = [];
    const youngUntil = (since: number): void => {
      waiting.push(since + root.gcDelayMs);
    };
    const removed: RemovedCounts = { manifests: 0, blobs: 0, orphans: 0, repositories: 0 };

    const tagPass = await this.retention.applyToTags(repo, now);
    if (tagPass.nextDueAt !== undefined) waiting.push(tagPass.nextDueAt);
    const manifestCutoff = now - this.retention.delayMs(repo);
    // A dry run removes no manifest: which ones go is retention's to say, and it only logs them.
    for (let progress = !this.retention.dryRun(repo); progress; ) {
      progress = false;
      const candidates = this.queries.unreachableManifests(repo);
      const verdicts = await this.retention.judgeManifests(repo, candidates, now);
      for (const candidate of candidates) {
        if (stopping()) return { removed, nextDueAt: now };
        const verdict = verdicts.get(candidate.digest);
        if (!verdict?.remove) {
          if (verdict?.until !== undefined) waiting.push(verdict.until);
          continue;
        }
        if (await this.removeManifest(repo, candidate.digest, manifestCutoff, this.retention.cause(repo, verdict.reason))) {
          removed.manifests++;
          progress = true;
        }
      }
    }

    // A dry run is a simulation: it removes nothing at all, as in zot, and logs the blobs that
    // would go now (those the manifests it would remove hold go on a later sweep).
    if (this.retention.dryRun(repo)) {
      for (const candidate of this.queries.unreferencedBlobs(repo)) {
        if (candidate.addedAt > cutoff) youngUntil(candidate.addedAt);
        else this.logger.info({ repo, digest: candidate.digest, dryRun: true }, 'garbage collection would remove a blob');
      }
      return this.result(repo, removed, waiting, now);
    }

    for (const candidate of this.queries.unreferencedBlobs(repo)) {
      if (stopping()) return { removed, nextDueAt: now };
      if (candidate.addedAt > cutoff) {
        youngUntil(candidate.addedAt);
        continue;
      }
      if (await this.removeBlob(repo, parseDigest(candidate.digest), cutoff)) removed.blobs++;
    }

    removed.orphans = await this.removeOrphans(repo, cutoff, youngUntil);
    if (waiting.length === 0 && (await this.removeRepositoryIfEmpty(repo))) removed.repositories++;
    return this.result(repo, removed, waiting, now);
  }

  private result(repo: string, removed: RemovedCounts, waiting: readonly number[], now: number): SweepResult {
    // Retention's rules read pull times and the clock, which change with no event to say so.
    const revisit = removed.repositories > 0 ? undefined : this.retention.revisitAt(repo, now);
    const due = revisit === undefined ? waiting : [...waiting, revisit];
    return { removed, ...(due.length > 0 ? { nextDueAt: Math.min(...due) } : {}) };
  }

  private async removeManifest(repo: string, digest: string, cutoff: number, cause: RemovalCause): Promise<boolean> {
    const stillGarbage = (): void => {
      const row = this.queries.manifest(repo, digest);
      if (!row || row.added_at > cutoff || !this.queries.isUnreachableManifest(repo, digest)) throw new StillInUse();
    };
    return this.attempt(() =>
      this.registry.locks.withContent(repo, digest, () => this.registry.manifests.remove(repo, digest, GC_CONTEXT, stillGarbage, cause)),
    );
  }

  private async removeBlob(repo: string, digest: ParsedDigest, cutoff: number): Promise<boolean> {
    const stillGarbage = (): void => {
      const addedAt = this.queries.blobAddedAt(repo, digest.value);
      if (addedAt === undefined || addedAt > cutoff || this.queries.isBlobReferenced(repo, digest.value)) throw new StillInUse();
    };
    return this.attempt(() => this.registry.locks.withContent(repo, digest.value, () => this.registry.blobRemoval.releaseBlob(repo, digest, GC_CONTEXT, stillGarbage)));
  }

  /** Runs one removal; false when a write got there first (the precondition said so). */
  private async attempt(removal: () => Promise<void>): Promise<boolean> {
    try {
      await removal();
      return true;
    } catch (err) {
      if (err instanceof StillInUse) return false;
      throw err;
    }
  }

  private async removeOrphans(repo: string, cutoff: number, youngUntil: (since: number) => void): Promise<number> {
    const { driver } = this.roots.for(repo);
    let removed = 0;
    for (const algorithm of DIGEST_ALGORITHMS) {
      for (const hex of await driver.list(blobsDir(repo, algorithm))) {
        const digest = digestOfStoredName(algorithm, hex);
        if (!digest || this.registry.files.ownPathNamed(repo, digest.value)) continue;
        const path = blobPath(repo, digest);
        const info = await driver.stat(path);
        if (!info || info.isDirectory) continue;
        if (info.modTime.getTime() > cutoff) {
          youngUntil(info.modTime.getTime());
          continue;
        }
        const gone = await this.registry.locks.withContent(repo, digest.value, async () => {
          if (this.registry.files.ownPathNamed(repo, digest.value)) return false;
          await driver.delete(path);
          await this.store.append([{ type: 'OrphanRemoved', repo, digest: digest.value, size: info.size }], GC_CONTEXT);
          return true;
        });
        if (gone) removed++;
      }
    }
    return removed;
  }

  /**
   * Removes a repository with no manifests, blobs, uploads or files left: an event, then its layout
   * files and empty directories. Alone in the repository, so no write can start laying it out
   * meanwhile; a write in progress makes the sweep leave it for the next one.
   */
  private async removeRepositoryIfEmpty(repo: string): Promise<boolean> {
    const { driver, staging } = this.roots.for(repo);
    const removed = await this.registry.locks.gate.tryExclusive(repo, async () => {
      if (!this.queries.repositoryIsEmpty(repo)) return false;
      if ((await staging.list(uploadsDir(repo))).length > 0) return false;
      for (const algorithm of DIGEST_ALGORITHMS) if ((await driver.list(blobsDir(repo, algorithm))).length > 0) return false;
      const known = this.queries.repositoryExists(repo);
      if (known) await this.store.append([{ type: 'RepositoryRemoved', repo }], GC_CONTEXT);
      this.registry.files.forget(repo);
      await driver.delete(ociLayoutPath(repo));
      await driver.delete(indexPath(repo));
      // Directories go only when empty (rmdir, never a recursive delete): a nested repository's
      // files may sit under them, and its writes do not hold this repository's gate.
      for (const algorithm of DIGEST_ALGORITHMS) await removeEmptyDirectory(driver, blobsDir(repo, algorithm));
      await removeEmptyDirectory(driver, `${repoDir(repo)}/blobs`);
      await removeEmptyDirectory(staging, uploadsDir(repo));
      const parts = repo.split('/');
      for (let depth = parts.length; depth > 0; depth--) {
        const dir = parts.slice(0, depth).join('/');
        if (staging !== driver) await removeEmptyDirectory(staging, dir);
        if (!(await removeEmptyDirectory(driver, dir))) break;
      }
      return known;
    });
    return removed === true;
  }

}

/** Removes an empty local directory; object stores have no directories. */
async function removeEmptyDirectory(driver: StorageDriver, dir: string): Promise<boolean> {
  const local = driver.localPath(dir);
  return local === undefined ? true : removeLocalDirectory(local);
}
