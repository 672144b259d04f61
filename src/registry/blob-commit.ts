// Committing an upload: the steps from a filled upload session to a blob the repository holds.
// Read top to bottom, as distribution's blobwriter.Commit:
//   1. take the last chunk, if the closing PUT carries one, after recording durably the size the
//      session's PATCHes acknowledged; on S3, when that chunk is the whole blob, its parts go
//      straight to a multipart upload at the blob's key (none when the repository holds it);
//   2. verify the digest: the running hash the worker pool kept as the chunks arrived (a mismatch
//      discards the session: DIGEST_INVALID). Meanwhile the session's bytes start for the disk
//      (an fsync of the staged file), so the durable placing of step 3 finds little left to write;
//   3. under the digest's content lock, place the bytes durably at their content address (a second
//      name for the session's bytes, or a link to a copy the root holds already, with dedupe; on
//      S3 the multipart upload the session's parts went to, completed in place or moved there);
//   4. append BlobPushed: the commit point. Until then no reader can see the blob;
//   5. drop the session (its file unlinked in the background: the answer does not wait for it).
// Until step 4 the session is kept: any failure before it (other than a digest mismatch) puts the
// session back as the PATCHes left it, and so does the start after a crash (recoverInterrupted).
//
// A body that is the whole blob (a POST ?digest=, or a closing PUT on a session with no bytes) on a
// filesystem root takes a shorter way, commitBody: no session file to create, append to, link and
// remove, and no closing marker, as no session's bytes change. The body goes to a temporary file
// (hashed as it arrives), which step 3 renames into place and syncs. A crash leaves at most the
// temporary file, which the next start clears, or an orphan in blobs/ (possibly short: no event
// names it, and the next push of the digest replaces it), as on the long way.
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
  /** The body's declared length (Content-Length), when the request has one. */
  length?: number;
}

export interface CommitOptions {
  /**
   * The session lives only for this request (a monolithic POST): no client can resume it, so its
   * acknowledged size is not recorded and the caller discards it on failure.
   */
  privateSession?: boolean;
  /**
   * Others read the session's file while the body arrives (sync's joined fetches, blob-fetches.ts):
   * its bytes go to that file, never to a temporary file of their own (commitWholeBody).
   */
  readFromSession?: boolean;
}

/**
 * An fsync of staged upload bytes failed. The kernel reports a failed writeback once: a later
 * fsync of the same file succeeds though its pages may never reach the disk, so bytes that saw one
 * are never committed. The session goes, and the client pushes the blob again into a new file.
 */
export class StagedSyncFailed extends Error {
  constructor(cause: unknown) {
    super(`an fsync of the staged upload failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'StagedSyncFailed';
  }
}

/** DIGEST_INVALID from verification: the session is discarded already, there is nothing to restore. */
class DigestMismatch extends RegistryError {
  constructor(message: string) {
    super('DIGEST_INVALID', message);
  }
}

export class BlobCommit {
  constructor(private readonly parts: RegistryParts) {}

  /** Commits the session as `digest`; the caller holds the repository (lock order step 1). */
  commit(repo: string, id: string, digest: ParsedDigest, context: EventContext, lastChunk?: LastChunk, options: CommitOptions = {}): Promise<string> {
    const { uploads, locks } = this.parts;
    // Whether the session's acknowledged size is recorded (closing marker) while the PUT runs.
    const marked = lastChunk !== undefined && !options.privateSession;
    // A private session is the caller's own, just created and empty: its size needs no stat.
    const knownSize = options.privateSession ? 0 : undefined;
    const work = async (acknowledged: number): Promise<string> => {
      if (lastChunk && acknowledged === 0 && !options.readFromSession && this.takesBodies(repo)) return this.commitWholeBody(repo, id, digest, context, lastChunk);
      try {
        if (lastChunk && acknowledged === 0) this.aimParts(repo, id, digest, lastChunk.length);
        const size = await this.takeLastChunk(repo, id, acknowledged, digest, lastChunk, marked);
        const writeback = this.startWriteback(repo, id, digest, size);
        await this.verifyDigest(repo, id, digest, size, marked);
        await writeback.done();
        await locks.withContent(repo, digest.value, () => this.placeAndRecord(repo, digest, size, context, (target) => this.placeSession(repo, id, size, target, writeback.synced)));
      } catch (err) {
        if (err instanceof StagedSyncFailed) await this.abandonSession(repo, id, marked, err);
        else if (marked && !(err instanceof DigestMismatch)) await this.restoreSession(repo, id, acknowledged);
        throw err;
      }
      await this.dropSession(repo, id, marked);
      return digest.value;
    };
    return uploads.exclusive(repo, id, work, knownSize);
  }

  /**
   * Whether a request's whole body can go to a temporary file renamed into place (commitBody): the
   * repository's root is a filesystem, whose layout is in the staging directory's own tree.
   */
  takesBodies(repo: string): boolean {
    const root = this.parts.roots.for(repo);
    return root.driver === root.staging;
  }

  /**
   * Commits a request's body that is the whole blob, on a root that takesBodies (see the top); the
   * caller holds the repository. The steps of `commit`, on a temporary file instead of a session:
   *   1. the body goes to the file, hashed as it arrives;
   *   2. verify the digest (DIGEST_INVALID on a mismatch); meanwhile the file's sync starts, when
   *      step 3 will place it;
   *   3. under the content lock, rename it to its content address, then wait for its sync and the
   *      directory's side by side (or, with dedupe, link the copy the root holds already);
   *   4. append BlobPushed: the commit point;
   *   5. the file goes, unless placed: on a failure, before the answer; after the commit point,
   *      unlinked in the background.
   */
  async commitBody(repo: string, digest: ParsedDigest, context: EventContext, body: LastChunk): Promise<string> {
    const { uploads, locks } = this.parts;
    // A body the commit will place is synced while it arrives; one it will not (the repository, or
    // with dedupe the root, holds the digest) is never synced, only dropped.
    const staged = await uploads.stageBody(repo, body.body, body.range, { writeback: this.placesOwnBytes(repo, digest) });
    try {
      const sync = this.placesOwnBytes(repo, digest, staged.size) ? uploads.syncBody(staged) : undefined;
      const writeback = new Writeback(sync);
      const actual = await uploads.bodyDigest(staged, digest.algorithm);
      if (actual !== digest.hex) throw new DigestMismatch(`upload content has digest ${digest.algorithm}:${actual}, not ${digest.value}`);
      // The file is renamed into place while its sync may still run, and that sync waited for with
      // its directory's: nothing names the path until the append.
      await locks.withContent(repo, digest.value, () =>
        this.placeAndRecord(repo, digest, staged.size, context, (target) => uploads.placeBody(staged, target, writeback.synced ? writeback.done() : uploads.syncBody(staged))),
      );
    } catch (err) {
      await uploads.dropBody(staged);
      throw err;
    }
    await uploads.dropBodyInBackground(staged);
    return digest.value;
  }

  /**
   * A closing PUT whose body is the whole blob, on a session with no bytes: committed by
   * commitBody, the session's file untouched (so nothing to mark or restore), then the session
   * goes. A digest mismatch discards the session, as on the long way.
   */
  private async commitWholeBody(repo: string, id: string, digest: ParsedDigest, context: EventContext, body: LastChunk): Promise<string> {
    try {
      await this.commitBody(repo, digest, context, body);
    } catch (err) {
      if (err instanceof DigestMismatch) await this.parts.uploads.discard(repo, id);
      throw err;
    }
    await this.dropSession(repo, id, false);
    return digest.value;
  }

  /**
   * At start, before any request: a closing PUT a crash interrupted either committed its blob (the
   * session goes) or did not (the session goes back to its acknowledged size).
   */
  async recoverInterrupted(): Promise<number> {
    const { uploads, queries } = this.parts;
    return uploads.recoverClosing((marker) => queries.blobSize(marker.repo, marker.digest) !== undefined);
  }

  private async takeLastChunk(
    repo: string,
    id: string,
    acknowledged: number,
    digest: ParsedDigest,
    lastChunk: LastChunk | undefined,
    marked: boolean,
  ): Promise<number> {
    if (!lastChunk) return acknowledged;
    if (marked) await this.parts.uploads.markClosing(repo, id, acknowledged, digest.value);
    return this.parts.uploads.append(repo, id, acknowledged, lastChunk.body, lastChunk.range);
  }

  /**
   * The body is the whole blob and its digest is known: on S3 it goes to the blob's key (streamed
   * in one request when its length is declared, else in parts), to be completed there once
   * verified, with no copy; nowhere when the repository, or with dedupe
   * another of the root, holds the bytes already (placeBlob then uploads nothing).
   */
  private aimParts(repo: string, id: string, digest: ParsedDigest, length: number | undefined): void {
    const { roots, queries, uploads } = this.parts;
    const root = roots.for(repo);
    if (!root.driver.partedWrites) return;
    const stored = queries.blobSize(repo, digest.value) !== undefined || (root.dedupe && this.bytesHolder(root, repo, digest.value) !== undefined);
    uploads.aimParts(repo, id, stored ? undefined : blobPath(repo, digest), length);
  }

  /** Puts the session back as its PATCHes left it; if that fails too, the next start does it. */
  private async restoreSession(repo: string, id: string, acknowledged: number): Promise<void> {
    try {
      await this.parts.uploads.restore(repo, id, acknowledged);
    } catch (err) {
      this.parts.logger?.error({ repo, uploadId: id, err }, 'failed to restore upload session after a failed commit, leaving it to the next start');
    }
  }

  /**
   * After a failed fsync of its bytes (StagedSyncFailed): the session goes, so that no retry of the
   * commit places bytes whose writeback failed. The client's next request on it finds no session
   * (BLOB_UPLOAD_UNKNOWN) and starts the blob again; clients restart an upload after a 5xx anyway.
   */
  private async abandonSession(repo: string, id: string, marked: boolean, failure: StagedSyncFailed): Promise<void> {
    this.parts.logger?.error({ repo, uploadId: id, err: failure.cause }, 'an fsync of an upload failed: its bytes may not be on disk, so the session is discarded and the blob must be pushed again');
    try {
      await this.parts.uploads.discard(repo, id);
      if (marked) await this.parts.uploads.unmarkClosing(repo, id);
    } catch (err) {
      this.parts.logger?.error({ repo, uploadId: id, err }, 'failed to discard the upload session whose fsync failed');
    }
  }

  /**
   * The session goes, its file unlinked in the background, then its closing marker (a marker left
   * alone is dropped at the next start). After the commit point a failure here is not the
   * request's: the session then expires idle.
   */
  private async dropSession(repo: string, id: string, marked: boolean): Promise<void> {
    try {
      await this.parts.uploads.discardInBackground(repo, id);
      if (marked) await this.parts.uploads.unmarkClosing(repo, id);
    } catch (err) {
      this.parts.logger?.warn({ repo, uploadId: id, err }, 'failed to remove committed upload session, leaving it to expire');
    }
  }

  /**
   * Syncs the staged bytes in the background while the digest is verified, when they are what
   * step 3 will place on a filesystem (not when the repository or, with dedupe, another one holds
   * the digest already, nor for a bucket, which reads the staged file instead).
   */
  private startWriteback(repo: string, id: string, digest: ParsedDigest, size: number): Writeback {
    return new Writeback(this.placesOwnBytes(repo, digest, size) ? this.parts.uploads.sync(repo, id) : undefined);
  }

  /**
   * Whether step 3 will likely place the staged bytes themselves on a filesystem: the repository
   * does not hold the digest yet (of `size` bytes, when known) and, with dedupe, no other
   * repository of the root does.
   */
  private placesOwnBytes(repo: string, digest: ParsedDigest, size?: number): boolean {
    const { roots, queries } = this.parts;
    const root = roots.for(repo);
    const held = queries.blobSize(repo, digest.value);
    // Before the bytes arrive (no size yet), a held digest is taken to be these bytes.
    const holds = size === undefined ? held !== undefined : held === size;
    return linksShareBytes(root) && !holds && !(root.dedupe && this.bytesHolder(root, repo, digest.value) !== undefined);
  }

  /**
   * The digest of the staged upload, from the running hash the worker pool kept as its chunks
   * arrived; on a mismatch discards the session and throws DIGEST_INVALID.
   */
  private async verifyDigest(repo: string, id: string, digest: ParsedDigest, size: number, marked: boolean): Promise<void> {
    const { uploads } = this.parts;
    const actual = await uploads.digest(repo, id, size, digest.algorithm);
    if (actual === digest.hex) return;
    await uploads.discard(repo, id);
    if (marked) await uploads.unmarkClosing(repo, id);
    throw new DigestMismatch(`upload content has digest ${digest.algorithm}:${actual}, not ${digest.value}`);
  }

  /**
   * Under the content lock: the bytes into place, then BlobPushed, the commit point. `placeOwn`
   * puts the upload's own bytes at the blob's path, when they are what goes there.
   */
  private async placeAndRecord(repo: string, digest: ParsedDigest, size: number, context: EventContext, placeOwn: (target: string) => Promise<void>): Promise<void> {
    // The repository has these bytes already: nothing to place, nothing to record.
    if (this.parts.queries.blobSize(repo, digest.value) === size) return;
    const storedIn = await this.placeBlob(repo, digest, placeOwn);
    await this.parts.store.append([{ type: 'BlobPushed', repo, digest: digest.value, size, ...(storedIn ? { storedIn } : {}) }], context);
  }

  /**
   * A session's bytes into place: on S3 the multipart upload its parts went to as they arrived,
   * completed at the blob's key or moved from the session's; else the staged file (a second name
   * for it, or one upload to S3). The session stays.
   */
  private async placeSession(repo: string, uploadId: string, size: number, target: string, synced: boolean): Promise<void> {
    const { roots, uploads } = this.parts;
    if (await uploads.placeFromParts(repo, uploadId, size, target)) return;
    const root = roots.for(repo);
    // The staged file itself becomes the blob: its sync, if none ran yet, here, where its failure
    // is known for what it is (putFile would sync it too, among other steps).
    if (!synced && linksShareBytes(root)) {
      await uploads.sync(repo, uploadId).catch((err: unknown) => {
        throw new StagedSyncFailed(err);
      });
      synced = true;
    }
    await root.driver.putFile(uploads.localFile(repo, uploadId), target, { synced });
  }

  /**
   * Puts a verified upload at its content address, durably. With dedupe, when another repository
   * of the root holds the bytes already, the upload is not used: the filesystem gets a hard link to
   * those bytes, S3 a reference to the holder (returned as `storedIn`). Otherwise `placeOwn` puts
   * the upload's bytes there.
   */
  private async placeBlob(repo: string, digest: ParsedDigest, placeOwn: (target: string) => Promise<void>): Promise<string | undefined> {
    const { roots } = this.parts;
    const root = roots.for(repo);
    const holder = root.dedupe ? this.bytesHolder(root, repo, digest.value) : undefined;
    if (holder !== undefined) {
      if (!linksShareBytes(root)) return holder;
      try {
        await root.driver.link(blobPath(holder, digest), blobPath(repo, digest));
        return undefined;
      } catch (err) {
        // The holder's file went away (a delete in another repository): store this upload instead.
        if (!(err instanceof PathNotFoundError)) throw err;
      }
    }
    await placeOwn(blobPath(repo, digest));
    return undefined;
  }

  /** Another repository of the root whose own path holds the digest's bytes. */
  private bytesHolder(root: StorageRoot, repo: string, digest: string): string | undefined {
    const { queries, roots } = this.parts;
    return queries.blobHolders(digest).find((h) => h.storedIn === null && h.repo !== repo && roots.for(h.repo) === root)?.repo;
  }
}

/**
 * An fsync in flight. Its failure must fail the commit: the kernel reports a failed writeback once,
 * to this sync, and the placing's own fsync would not hear of it again.
 */
class Writeback {
  private readonly outcome: Promise<unknown>;
  /** Whether a sync was started: once done() resolves, the staged file is durable as it stands. */
  readonly synced: boolean;

  constructor(sync: Promise<void> | undefined) {
    this.synced = sync !== undefined;
    // Settled either way, so that a commit that fails before done() leaves no unhandled rejection.
    this.outcome = (sync ?? Promise.resolve()).then(
      () => undefined,
      (err: unknown) => err ?? new Error('the sync of the staged upload failed'),
    );
  }

  async done(): Promise<void> {
    const failure = await this.outcome;
    if (failure !== undefined) throw new StagedSyncFailed(failure);
  }
}
