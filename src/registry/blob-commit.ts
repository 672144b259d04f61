// Committing an upload: the steps from a filled upload session to a blob the repository holds.
// Read top to bottom, as distribution's blobwriter.Commit:
//   1. take the last chunk, if the closing PUT carries one;
//   2. verify the digest in the worker pool (a mismatch discards the session: DIGEST_INVALID);
//   3. under the digest's content lock, place the bytes durably at their content address (or
//      link them to a copy the root holds already, with dedupe);
//   4. append BlobPushed: the commit point. Until then no reader can see the blob.
import type { Readable } from 'node:stream';
import type { EventContext } from '../events/types.js';
import type { ParsedDigest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { PathNotFoundError } from '../storage/driver.js';
import { blobPath } from '../storage/layout.js';
import { linksShareBytes, type StorageRoot } from '../storage/roots.js';
import type { RegistryParts } from './parts.js';
import type { ChunkRange } from './uploads.js';

export interface LastChunk {
  body: Readable;
  range?: ChunkRange;
}

export class BlobCommit {
  constructor(private readonly parts: RegistryParts) {}

  /** Commits the session as `digest`; the caller holds the repository (lock order step 1). */
  commit(repo: string, id: string, digest: ParsedDigest, context: EventContext, lastChunk?: LastChunk): Promise<string> {
    const { uploads, locks } = this.parts;
    return uploads.exclusive(repo, id, async (sizeBefore) => {
      const size = await this.takeLastChunk(repo, id, sizeBefore, lastChunk);
      await this.verifyDigest(repo, id, digest);
      await locks.withContent(repo, digest.value, async () => {
        if (this.parts.queries.blobSize(repo, digest.value) === size) {
          // The repository has these bytes already: nothing to place, nothing to record.
          await uploads.discard(repo, id);
          return;
        }
        const storedIn = await this.placeBlob(repo, digest, id);
        this.parts.store.append([{ type: 'BlobPushed', repo, digest: digest.value, size, ...(storedIn ? { storedIn } : {}) }], context);
      });
      return digest.value;
    });
  }

  private async takeLastChunk(repo: string, id: string, sizeBefore: number, lastChunk: LastChunk | undefined): Promise<number> {
    if (!lastChunk) return sizeBefore;
    return this.parts.uploads.append(repo, id, sizeBefore, lastChunk.body, lastChunk.range);
  }

  /** Hashes the staged upload in the worker pool; on mismatch discards it and throws DIGEST_INVALID. */
  private async verifyDigest(repo: string, id: string, digest: ParsedDigest): Promise<void> {
    const { uploads, hashPool } = this.parts;
    const actual = await hashPool.hashFile({ path: uploads.localFile(repo, id), algorithm: digest.algorithm });
    if (actual !== digest.hex) {
      await uploads.discard(repo, id);
      throw new RegistryError('DIGEST_INVALID', `upload content has digest ${digest.algorithm}:${actual}, not ${digest.value}`);
    }
  }

  /**
   * Puts a verified upload at its content address, durably. With dedupe, when another repository
   * of the root holds the bytes already, the upload is dropped: the filesystem gets a hard link to
   * those bytes, S3 a reference to the holder (returned as `storedIn`). Otherwise the staged file
   * moves into place (a rename, or a multipart upload to S3).
   */
  private async placeBlob(repo: string, digest: ParsedDigest, uploadId: string): Promise<string | undefined> {
    const { roots, uploads } = this.parts;
    const root = roots.for(repo);
    const holder = root.dedupe ? this.bytesHolder(root, repo, digest.value) : undefined;
    if (holder !== undefined) {
      if (!linksShareBytes(root)) {
        await uploads.discard(repo, uploadId);
        return holder;
      }
      try {
        await root.driver.link(blobPath(holder, digest), blobPath(repo, digest));
        await uploads.discard(repo, uploadId);
        return undefined;
      } catch (err) {
        // The holder's file went away (a delete in another repository): store this upload instead.
        if (!(err instanceof PathNotFoundError)) throw err;
      }
    }
    await root.driver.putFile(uploads.localFile(repo, uploadId), blobPath(repo, digest));
    return undefined;
  }

  /** Another repository of the root whose own path holds the digest's bytes. */
  private bytesHolder(root: StorageRoot, repo: string, digest: string): string | undefined {
    const { queries, roots } = this.parts;
    return queries.blobHolders(digest).find((h) => h.storedIn === null && h.repo !== repo && roots.for(h.repo) === root)?.repo;
  }
}
