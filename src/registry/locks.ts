// The registry's locks and the one order they are taken in. Every path takes a subset of them,
// outermost first, and never waits on an outer lock while holding an inner one:
//
//   1. repository gate   shared by every write that lays out files in a repository; exclusive
//                        only for GC removing an empty repository (tryExclusive: never waits)
//   2. upload session    one request per session at a time; a second is refused, never queued
//   3. content lock      per storage root and digest, held while some repository's copy of those
//                        bytes is placed, relocated or removed; with dedupe one repository's bytes
//                        may be another's, so it is keyed by root, not by repository. A mount across
//                        roots takes both roots' locks, in route order.
//
// The upload session is held by UploadSessions (uploads.ts); this file holds the other two.
import { KeyedLock } from './keyed-lock.js';
import { RepositoryGate } from './repository-gate.js';
import type { StorageRoots } from '../storage/roots.js';

export class RegistryLocks {
  readonly gate = new RepositoryGate();
  private readonly content = new KeyedLock();

  constructor(private readonly roots: StorageRoots) {}

  /** Runs `work` holding the repository shared (step 1). */
  inRepository<T>(repo: string, work: () => Promise<T>): Promise<T> {
    return this.gate.shared(repo, work);
  }

  /** Runs `work` holding the content lock of the digest in the repository's root (step 3). */
  withContent<T>(repo: string, digest: string, work: () => Promise<T>): Promise<T> {
    return this.content.run(`${this.roots.for(repo).route}\u0000${digest}`, work);
  }

  /** The content locks of two repositories' roots (one when they share a root), in route order. */
  withContentOfBoth<T>(repo: string, other: string, digest: string, work: () => Promise<T>): Promise<T> {
    const rootOf = (name: string) => this.roots.for(name);
    if (rootOf(repo) === rootOf(other)) return this.withContent(repo, digest, work);
    const [first, second] = [repo, other].sort((a, b) => (rootOf(a).route < rootOf(b).route ? -1 : 1)) as [string, string];
    return this.withContent(first, digest, () => this.withContent(second, digest, work));
  }
}
