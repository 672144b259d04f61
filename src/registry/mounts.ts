// Cross-repository mounts (POST ?mount=&from=): the target repository gets the bytes the source
// holds, the cheapest way its root allows, and a BlobMounted event. Without `from` (automatic
// content discovery), the source is a repository of the target's root that holds the blob and
// that the caller may read.
import type { EventContext } from '../events/types.js';
import { parseDigest, type ParsedDigest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { assertValidName, isValidName } from '../oci/names.js';
import { blobPath } from '../storage/layout.js';
import { linksShareBytes } from '../storage/roots.js';
import type { RegistryParts } from './parts.js';

export class Mounts {
  constructor(private readonly parts: RegistryParts) {}

  /** The mounted digest, or undefined when the source does not hold the blob (then: a session). */
  async mountBlob(repo: string, digestText: string, from: string, context: EventContext): Promise<string | undefined> {
    assertValidName(repo);
    // The spec: a mount that fails on an invalid source repository or digest falls back to a session.
    if (!isValidName(from)) return undefined;
    let digest: ParsedDigest;
    try {
      digest = parseDigest(digestText);
    } catch {
      return undefined;
    }
    const { queries, locks } = this.parts;
    if (queries.blobSize(from, digest.value) === undefined) return undefined;
    if (queries.blobSize(repo, digest.value) !== undefined) return digest.value;
    return locks.inRepository(repo, () => this.mountHeld(repo, from, digest, context));
  }

  /**
   * POST ?mount= without `from`: mounts from the first repository (by name) of the target's root
   * that holds the blob and that `mayRead` allows; undefined when there is none (then: a session,
   * the same answer whether the blob is unknown or only held where the caller may not read).
   * Only within the root: across roots a mount is a copy, which a client asks for by naming `from`.
   */
  async mountFromReadableHolder(repo: string, digestText: string, mayRead: (repo: string) => boolean, context: EventContext): Promise<string | undefined> {
    assertValidName(repo);
    let digest: ParsedDigest;
    try {
      digest = parseDigest(digestText);
    } catch {
      return undefined;
    }
    const { queries, roots } = this.parts;
    const root = roots.for(repo);
    const holders = queries
      .blobHolders(digest.value)
      .map((holder) => holder.repo)
      .filter((holder) => roots.for(holder) === root && mayRead(holder));
    if (holders.includes(repo)) return digest.value;
    // A holder may lose the blob meanwhile (GC, a delete): the next one is tried.
    for (const from of holders) {
      const mounted = await this.mountBlob(repo, digest.value, from, context);
      if (mounted !== undefined) return mounted;
    }
    return undefined;
  }

  private async mountHeld(repo: string, from: string, digest: ParsedDigest, context: EventContext): Promise<string | undefined> {
    const { queries, store, files, locks } = this.parts;
    await files.ensureLayout(repo);
    // Both roots' locks (one when they are the same root), so neither copy moves meanwhile.
    return locks.withContentOfBoth(repo, from, digest.value, async () => {
      const size = queries.blobSize(from, digest.value);
      if (size === undefined) return undefined;
      // A push of the digest may have landed since the caller looked: its named bytes stay as they are.
      if (queries.blobSize(repo, digest.value) !== undefined) return digest.value;
      const storedIn = await this.placeCopy(repo, from, digest, size);
      const stillThere = (): void => {
        if (queries.blobSize(from, digest.value) === undefined) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest.value} left ${from} during the mount`);
      };
      await store.append([{ type: 'BlobMounted', repo, digest: digest.value, size, from, ...(storedIn ? { storedIn } : {}) }], context, {
        precondition: stillThere,
      });
      return digest.value;
    });
  }

  /**
   * Gives `repo` the bytes `from` holds: with dedupe a hard link (filesystem) or a reference to the
   * holder (S3, returned as `storedIn`); without it a server-side copy (S3) or a copy through a
   * temporary file of the target's staging directory.
   */
  private async placeCopy(repo: string, from: string, digest: ParsedDigest, size: number): Promise<string | undefined> {
    const { roots, queries, files } = this.parts;
    const target = roots.for(repo);
    const source = roots.for(from);
    const fromPath = files.contentPath(from, digest);
    if (target === source) {
      if (target.dedupe && !linksShareBytes(target)) return queries.blobStoredIn(from, digest.value) ?? from;
      if (target.dedupe || !linksShareBytes(target)) {
        await target.driver.link(fromPath, blobPath(repo, digest));
        return undefined;
      }
    }
    // A real copy, through a temporary file of the target's staging directory: what a crash leaves
    // of it goes with that directory at the next start, and never looks like an upload session.
    // The source must have the size the log records: a short file is never copied as the blob.
    const staging = target.staging;
    const { temp } = await staging.writeTemporary(await source.driver.reader(fromPath), size, () => undefined);
    try {
      if (target.driver === staging) {
        // A filesystem root: the file is renamed into place, then synced through its open descriptor.
        await staging.placeTemporary(temp, blobPath(repo, digest));
      } else {
        await target.driver.putFile(temp.localPath, blobPath(repo, digest));
      }
    } finally {
      await staging.discardTemporary(temp).catch(() => undefined);
    }
    return undefined;
  }
}
