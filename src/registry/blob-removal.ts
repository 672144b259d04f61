// Removing a repository's copy of a blob, for a client's DELETE and for GC. With S3 dedupe other
// repositories may read this copy's bytes: they are first copied to one of them, which the rest
// then point to, so deleting one copy never breaks the others.
import type { EventBody, EventContext } from '../events/types.js';
import { parseDigest, type ParsedDigest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { assertValidName } from '../oci/names.js';
import { blobPath } from '../storage/layout.js';
import type { RegistryParts } from './parts.js';

export class BlobRemoval {
  constructor(private readonly parts: RegistryParts) {}

  /** A client's DELETE: refused while a manifest of the repository references the blob. */
  async deleteBlob(repo: string, digestText: string, context: EventContext): Promise<void> {
    assertValidName(repo);
    const digest = parseDigest(digestText);
    const { queries, locks } = this.parts;
    const held = (): void => {
      if (queries.blobSize(repo, digest.value) === undefined) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest.value} is not in ${repo}`);
      if (queries.isBlobReferenced(repo, digest.value)) throw new RegistryError('BLOB_REFERENCED');
    };
    held();
    await locks.withContent(repo, digest.value, () => this.releaseBlob(repo, digest, context, held));
  }

  /**
   * Removes a repository's copy of a blob; the caller holds the content lock. `precondition`
   * re-checks, inside the append, that the removal is still allowed.
   */
  async releaseBlob(repo: string, digest: ParsedDigest, context: EventContext, precondition: () => void): Promise<void> {
    const { queries, store, roots, files } = this.parts;
    const { driver } = roots.for(repo);
    const ownsBytes = queries.blobStoredIn(repo, digest.value) === undefined;
    const dependents = ownsBytes ? queries.blobDependents(digest.value, repo) : [];
    const events: EventBody[] = [{ type: 'BlobDeleted', repo, digest: digest.value }];
    const [heir, ...others] = dependents;
    if (heir !== undefined) {
      await driver.link(blobPath(repo, digest), blobPath(heir, digest));
      events.push({ type: 'BlobRelocated', repo: heir, digest: digest.value });
      for (const other of others) events.push({ type: 'BlobRelocated', repo: other, digest: digest.value, storedIn: heir });
    }
    await store.append(events, context, { precondition });
    // The event is the commit point: a crash before this removal leaves an orphan for GC, never
    // a served blob without bytes. A manifest of the same digest keeps the file.
    if (ownsBytes && !queries.manifest(repo, digest.value)) await files.removeAfterCommit(repo, digest.value, blobPath(repo, digest));
  }
}
