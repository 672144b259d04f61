// Upload sessions: a file per session under the repository's .uploads directory, in the local
// staging directory of the repository's storage root (for S3 roots too: their full parts also go
// to the bucket as they arrive, upload-parts.ts). The session's offset is the file's size, so sessions survive a
// restart with no other state. A session being closed by a PUT that carries a last chunk also has a
// marker (.zot-ts/closing-uploads/ID) holding the size its PATCHes acknowledged, so a failed or
// interrupted PUT leaves the session as the client last saw it. (A PUT whose body is the whole blob,
// on a session with no bytes, leaves the session's file alone on a filesystem root: no marker.)
//
// A request whose body is the whole blob on a filesystem root has no session file at all: its body
// is staged in a temporary file (stageBody) that the commit renames into place (blob-commit.ts).
//
// The open sessions are also indexed in memory, for the caps on how many may be open
// (upload-limits.ts) and for the idle expiry (upload-expiry.ts). The sessions of earlier runs are
// found by a walk of the staging directories that runs while the registry starts and listens: a
// root of 1,000 repositories took some 120 ms of listings, which the first answer, a pull's, need
// not wait for. Whatever opens or uses a session waits for the walk; nothing else does.
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { PathNotFoundError, SizeMismatchError } from '../storage/driver.js';
import type { FilesystemDriver, RemovalFailure, TemporaryFile } from '../storage/filesystem.js';
import { CLOSING_UPLOADS_DIR, closingUploadPath, isLayoutEntry, uploadPath, uploadsDir, UPLOADS_DIR } from '../storage/layout.js';
import type { DigestAlgorithm } from '../oci/digest.js';
import { eachBounded } from '../concurrency.js';
import { RegistryError } from '../oci/errors.js';
import { isValidName } from '../oci/names.js';
import type { UploadHashes, UploadRef } from './upload-hashes.js';
import type { UploadParts } from './upload-parts.js';
import { BackgroundSync, type UploadWriteback } from './upload-writeback.js';
import type { UploadLimits } from './upload-limits.js';

/** How often discardWhenIdle looks again at a session a request holds. */
const DISCARD_RETRY_MS = 50;

const UPLOAD_ID_RE = /^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$/;

export interface ChunkRange {
  start: number;
  /** Inclusive. */
  end: number;
}

/** What a closing marker records: the session and the size its PATCHes acknowledged. */
export interface ClosingMarker {
  repo: string;
  id: string;
  acknowledged: number;
  /** The digest the PUT commits as: when the repository holds it, the commit happened. */
  digest: string;
}

/** An open session and when it was last written (ms since the epoch). */
export interface OpenSession {
  repo: string;
  id: string;
  lastWrite: number;
}

/** A request's body written whole to a temporary file (UploadSessions.stageBody). */
export interface StagedBody {
  readonly repo: string;
  /** Its running hash. */
  readonly ref: UploadRef;
  readonly temp: TemporaryFile;
  readonly size: number;
  /** Its syncs started while it was written (upload-writeback.ts), if the commit is to place it. */
  readonly writeback?: BackgroundSync;
}

/** Directories listed at once while the sessions of earlier runs are indexed at start. */
const LISTINGS_AT_ONCE = 16;


export class UploadSessions {
  /** Sessions with a request in progress: a second concurrent request on one session is refused. */
  private readonly busy = new Set<string>();
  /** Open sessions: repository → session id → last write. */
  private readonly open = new Map<string, Map<string, number>>();
  private openCount = 0;
  /** The walk that indexes the sessions of earlier runs, while it runs (indexEarlierSessions). */
  private indexing: Promise<void> | undefined;

  constructor(
    private readonly stagingFor: (repo: string) => FilesystemDriver,
    /** Every staging directory once (roots may share one). */
    private readonly allStaging: () => FilesystemDriver[],
    private readonly limits: Readonly<UploadLimits>,
    /** The running hash of each session, kept as its bytes are written (upload-hashes.ts). */
    private readonly hashes: UploadHashes,
    /** The parts of each session on an S3 root, sent as its bytes are written (upload-parts.ts). */
    private readonly parts: UploadParts,
    /** The background syncs between a session's PATCHes (upload-writeback.ts). */
    private readonly writeback: UploadWriteback,
    /** Hears of a file whose removal in the background failed. */
    private readonly onRemovalFailure: RemovalFailure,
  ) {}

  /**
   * Opens a session, within the caps. Past one the answer is TOOMANYREQUESTS (429), not DENIED:
   * the condition passes as sessions finish or expire. containers/image (skopeo, podman) retries
   * TOOMANYREQUESTS and never DENIED; docker retries neither, but shows "toomanyrequests", which
   * reads as a passing limit rather than a permission to fix.
   */
  async create(repo: string, options: { ownedByRequest?: boolean } = {}): Promise<string> {
    if (this.indexing) await this.indexing;
    const id = randomUUID();
    // A session a single request opens and commits (POST ?digest=) is never idle until that request
    // writes it: the idle expiry would otherwise take it between its creation and the commit's hold.
    this.reserve(repo, id, options.ownedByRequest === true ? Number.POSITIVE_INFINITY : Date.now());
    try {
      // Not synced: a session's bytes are made durable when it commits (its PATCHes promise no
      // durability; upload-writeback.ts only starts their writing early); a power cut may lose an
      // open session, and its client then starts again.
      await this.stagingFor(repo).createEmpty(uploadPath(repo, id));
    } catch (err) {
      this.forget(repo, id);
      throw err;
    }
    return id;
  }

  /** Counts a new session against the caps, synchronously, so concurrent POSTs cannot pass them together. */
  private reserve(repo: string, id: string, lastWrite: number): void {
    const inRepository = this.open.get(repo)?.size ?? 0;
    if (inRepository >= this.limits.perRepository) {
      throw new RegistryError(
        'TOOMANYREQUESTS',
        `repository ${repo} has ${inRepository} upload sessions open, its limit: finish or cancel one, or retry once idle ones expire`,
      );
    }
    if (this.openCount >= this.limits.overall) {
      throw new RegistryError(
        'TOOMANYREQUESTS',
        `the registry has ${this.openCount} upload sessions open, its limit across all repositories: retry once some finish or expire`,
      );
    }
    this.track(repo, id, lastWrite);
  }

  private track(repo: string, id: string, lastWrite: number): void {
    let sessions = this.open.get(repo);
    if (!sessions) {
      sessions = new Map();
      this.open.set(repo, sessions);
    }
    if (!sessions.has(id)) this.openCount++;
    sessions.set(id, lastWrite);
  }

  private forget(repo: string, id: string): void {
    const sessions = this.open.get(repo);
    if (!sessions?.delete(id)) return;
    this.openCount--;
    if (sessions.size === 0) this.open.delete(repo);
  }

  /** Marks a session written now (or at `at`, its file's time), if it is open. */
  touch(repo: string, id: string, at = Date.now()): void {
    const sessions = this.open.get(repo);
    if (sessions?.has(id)) sessions.set(id, at);
  }

  /** Open sessions last written at or before `cutoff(repo)`, oldest first. */
  idle(cutoff: (repo: string) => number): OpenSession[] {
    const found: OpenSession[] = [];
    for (const [repo, sessions] of this.open) {
      const before = cutoff(repo);
      for (const [id, lastWrite] of sessions) if (lastWrite <= before) found.push({ repo, id, lastWrite });
    }
    return found.sort((a, b) => a.lastWrite - b.lastWrite);
  }

  /** At start, before any request: the S3 parts of the sessions of earlier runs are found again. */
  async recoverParts(): Promise<void> {
    await this.parts.recover(this.allStaging(), (repo, id) => this.localFile(repo, id));
  }

  /**
   * At start, before any request, and settling after the registry listens: indexes the sessions
   * every staging directory holds (their last write is their file's time), so the caps and the
   * idle expiry see the sessions of earlier runs. Until it settles, whatever opens or uses a
   * session waits (create, reserveBody, and every request that holds one); a failure leaves the
   * index with what the walk found, and the caller reports it.
   */
  indexEarlierSessions(): Promise<void> {
    const walk = (async () => {
      for (const staging of this.allStaging()) await this.loadFrom(staging, '');
    })();
    // Whatever the walk's outcome, its waiters go on once it is over, and later calls wait for nothing.
    this.indexing = walk.then(
      () => undefined,
      () => undefined,
    ).then(() => {
      this.indexing = undefined;
    });
    return walk;
  }

  /** Settles once the sessions of earlier runs are indexed (at once when no walk runs). */
  async indexed(): Promise<void> {
    await this.indexing;
  }

  private async loadFrom(staging: FilesystemDriver, dir: string): Promise<void> {
    const entries = await staging.list(dir);
    if (dir !== '' && entries.includes(UPLOADS_DIR) && isValidName(dir) && this.stagingFor(dir) === staging) {
      for (const id of await staging.list(uploadsDir(dir))) {
        const info = UPLOAD_ID_RE.test(id) ? await staging.stat(uploadPath(dir, id)) : undefined;
        if (info && !info.isDirectory) this.track(dir, id, info.modTime.getTime());
      }
    }
    // Layout entries (blobs, index.json, oci-layout, .uploads, .zot-ts) hold no repositories. A
    // child that is a file lists as empty: no stat first. Siblings are listed a few at a time, as
    // a root of 1,000 repositories took a second of sequential round trips before the first answer.
    const children = entries.filter((entry) => !isLayoutEntry(entry)).map((entry) => (dir === '' ? entry : `${dir}/${entry}`));
    await eachBounded(children, LISTINGS_AT_ONCE, (child) => this.loadFrom(staging, child));
  }

  /**
   * At shutdown, after the last request: the parts still being sent to S3 arrive and are recorded,
   * and the files being removed in the background go.
   */
  async settle(): Promise<void> {
    await this.parts.settle();
    await Promise.all(this.allStaging().map((staging) => staging.removalsSettled()));
  }

  /** Whether the repository has any session open (GC keeps such a repository). */
  async anyOpen(repo: string): Promise<boolean> {
    return (await this.stagingFor(repo).list(uploadsDir(repo))).length > 0;
  }

  /** The session's file on local disk, for hashing and for the move into place. */
  localFile(repo: string, id: string): string {
    return this.stagingFor(repo).localPath(uploadPath(repo, id));
  }

  /**
   * Hex digest of the session's `size` bytes, from the running hash its writes kept (rebuilt from
   * the file when this process has none). The caller holds the session.
   */
  digest(repo: string, id: string, size: number, algorithm: DigestAlgorithm): Promise<string> {
    return this.hashes.digest({ repo, id, file: this.localFile(repo, id) }, size, algorithm);
  }

  /**
   * Before a request's body whose digest is known, on a session with no bytes yet: the parts its
   * body fills go straight to `to`, the blob's path, or, without `to`, nowhere; with the body's
   * `length` known, as one streamed write (upload-parts.ts).
   */
  aimParts(repo: string, id: string, to: string | undefined, length?: number): void {
    this.parts.aim({ repo, id, file: this.localFile(repo, id) }, to, length);
  }

  /**
   * Puts the session's `size` verified bytes at `to` from the parts it sent as they arrived, where
   * it did (upload-parts.ts); false when the caller is to put its file there instead.
   */
  placeFromParts(repo: string, id: string, size: number, to: string): Promise<boolean> {
    return this.parts.place({ repo, id }, size, to);
  }

  /**
   * Counts a request that writes a whole blob without a session file (stageBody) against the
   * session caps, as the session it replaces would be; returns its release.
   */
  async reserveBody(repo: string): Promise<() => void> {
    if (this.indexing) await this.indexing;
    const id = randomUUID();
    // Never idle: the idle expiry has no file of it to remove.
    this.reserve(repo, id, Number.POSITIVE_INFINITY);
    return () => this.forget(repo, id);
  }

  /**
   * Writes a request's body that is the whole blob (a POST ?digest=, or a PUT on a session with no
   * bytes) to a new temporary file of the repository's staging directory, hashing it as it
   * arrives: no session file to create, append to and remove. A declared range must start at 0.
   * With `writeback` (the commit is to place the file itself), the file is synced in the
   * background as it grows (upload-writeback.ts), so that syncBody finds little left to write.
   * The caller places the file (a filesystem root renames it into the layout) or drops it (dropBody).
   */
  async stageBody(repo: string, body: Readable, range?: ChunkRange, options: { writeback?: boolean } = {}): Promise<StagedBody> {
    const exactLength = chunkLength(range, 0);
    const staging = this.stagingFor(repo);
    const writeback = options.writeback === true ? new BackgroundSync() : undefined;
    // The running hash's key: no session has this id.
    const id = randomUUID();
    let ref: UploadRef | undefined;
    try {
      const { temp, size } = await staging.writeTemporary(body, exactLength, (created) => {
        const upload = { repo, id, file: created.localPath };
        ref = upload;
        return async (from, to, bytes) => {
          await this.hashes.written(upload, from, to, bytes);
          writeback?.written(to - from, () => staging.syncTemporary(created));
        };
      });
      return { repo, ref: ref as UploadRef, temp, size, ...(writeback ? { writeback } : {}) };
    } catch (err) {
      if (ref) this.hashes.forget(ref);
      if (err instanceof SizeMismatchError) throw new RegistryError('SIZE_INVALID', `blob body does not match Content-Range: ${err.message}`);
      throw err;
    }
  }

  /** Hex digest of a staged body, from the running hash its writes kept. */
  bodyDigest(staged: StagedBody, algorithm: DigestAlgorithm): Promise<string> {
    return this.hashes.digest(staged.ref, staged.size, algorithm);
  }

  /** fsync(2) of a staged body's file, once its background syncs are done; fails when one of them failed. */
  async syncBody(staged: StagedBody): Promise<void> {
    await staged.writeback?.settled();
    await this.stagingFor(staged.repo).syncTemporary(staged.temp);
  }

  /**
   * Renames a staged body's file to `to`, a path no event names, in the staging directory's own
   * tree, then makes it durable: `syncing` (syncBody, started since its last write) side by side
   * with its directory's sync.
   */
  async placeBody(staged: StagedBody, to: string, syncing: Promise<void>): Promise<void> {
    await this.stagingFor(staged.repo).placeTemporary(staged.temp, to, syncing);
  }

  /** The staged body is over: its hash goes, and its file unless placed. */
  async dropBody(staged: StagedBody): Promise<void> {
    this.hashes.forget(staged.ref);
    await this.stagingFor(staged.repo).discardTemporary(staged.temp);
  }

  /**
   * The staged body of a committed push is over, as dropBody, but its file, unless placed (the
   * repository or, with dedupe, the root held the bytes), is unlinked in the background.
   */
  async dropBodyInBackground(staged: StagedBody): Promise<void> {
    this.hashes.forget(staged.ref);
    await this.stagingFor(staged.repo).discardTemporaryInBackground(staged.temp, this.onRemovalFailure);
  }

  /** Current size of the session, or BLOB_UPLOAD_UNKNOWN. */
  async size(repo: string, id: string): Promise<number> {
    assertUploadId(id);
    const info = await this.stagingFor(repo).stat(uploadPath(repo, id));
    if (!info || info.isDirectory) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${id} is unknown`);
    return info.size;
  }

  /**
   * Runs `work` holding the session, so two requests never write one upload at once. `knownSize`:
   * the caller knows the session's size (one it just created, that no client can reach), which
   * then needs no stat.
   */
  async exclusive<T>(repo: string, id: string, work: (size: number) => Promise<T>, knownSize?: number): Promise<T> {
    return this.holding(repo, id, async () => work(knownSize ?? (await this.size(repo, id))));
  }

  /** Runs `work` holding the session (see exclusive), without looking at its file first. */
  private async holding<T>(repo: string, id: string, work: () => Promise<T>): Promise<T> {
    if (this.indexing) await this.indexing;
    const key = `${repo}\u0000${id}`;
    if (this.busy.has(key)) throw new RegistryError('BLOB_UPLOAD_INVALID', `upload ${id} is busy with another request`);
    this.busy.add(key);
    try {
      return await work();
    } finally {
      this.busy.delete(key);
    }
  }

  /**
   * Appends a chunk at the session's current size. A declared range must start exactly there
   * (416 otherwise) and the body must be exactly its length.
   */
  async append(repo: string, id: string, currentSize: number, body: Readable, range?: ChunkRange): Promise<number> {
    const upload = { repo, id, file: this.localFile(repo, id) };
    const expected = chunkLength(range, currentSize);
    try {
      const written = await this.stagingFor(repo).append(uploadPath(repo, id), body, expected, this.afterWrite(upload));
      return currentSize + written;
    } catch (err) {
      throw await this.failedAppend(upload, currentSize, err);
    } finally {
      this.touch(repo, id);
    }
  }

  /**
   * A PATCH's chunk, holding the session: appended as `append` does, at the size the session's
   * file has once open (no stat before), then the file starts for the disk in the background
   * while the client sends its next request (upload-writeback.ts). Returns the new size.
   */
  async appendChunk(repo: string, id: string, body: Readable, range?: ChunkRange): Promise<number> {
    assertUploadId(id);
    const upload = { repo, id, file: this.localFile(repo, id) };
    const staging = this.stagingFor(repo);
    return this.holding(repo, id, async () => {
      // The session's size once the chunk is accepted; unset while it may still be refused.
      let accepted: number | undefined;
      try {
        const { before, written } = await staging.appendChecked(uploadPath(repo, id), body, (size) => {
          const exactLength = chunkLength(range, size);
          accepted = size;
          return { exactLength, afterWrite: this.afterWrite(upload) };
        });
        this.writeback.written(repo, id, written, () => staging.sync(uploadPath(repo, id)));
        return before + written;
      } catch (err) {
        if (err instanceof PathNotFoundError) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${id} is unknown`);
        // Refused before its first byte (a range that does not continue the session): nothing to undo.
        if (accepted === undefined) throw err;
        throw await this.failedAppend(upload, accepted, err);
      } finally {
        this.touch(repo, id);
      }
    });
  }

  /** What a write to the session's file tells the running hash and the parts, as each range lands. */
  private afterWrite(upload: UploadRef): (from: number, to: number, bytes: readonly Buffer[]) => Promise<void> {
    return async (from, to, bytes) => {
      await this.hashes.written(upload, from, to, bytes);
      await this.parts.written(upload, from, to);
    };
  }

  /**
   * After a failed append, whose file is back at `size`: what the running hash and the parts took
   * of the write is not in it. Returns the error to throw.
   */
  private async failedAppend(upload: UploadRef, size: number, err: unknown): Promise<unknown> {
    this.hashes.invalidate(upload);
    await this.parts.cut(upload, size);
    if (err instanceof SizeMismatchError) return new RegistryError('SIZE_INVALID', `chunk body does not match Content-Range: ${err.message}`);
    return err;
  }

  /**
   * Flushes the session's bytes to stable storage (the caller holds the session); fails when a
   * background sync since the last call failed.
   */
  async sync(repo: string, id: string): Promise<void> {
    await this.writeback.settled(repo, id);
    await this.stagingFor(repo).sync(uploadPath(repo, id));
  }

  /**
   * Discards a session whose bytes failed to sync in the background (upload-writeback.ts) once no
   * request holds it: its file must not outlive a failure that only this process knows of. A commit
   * that holds it meanwhile hears of the failure itself and discards it (blob-commit.ts).
   */
  async discardWhenIdle(repo: string, id: string): Promise<void> {
    while (this.open.get(repo)?.has(id) === true) {
      if (!this.busy.has(`${repo}\u0000${id}`)) {
        await this.holding(repo, id, () => this.discard(repo, id));
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, DISCARD_RETRY_MS));
    }
  }

  async discard(repo: string, id: string): Promise<void> {
    await this.end(repo, id, () => this.stagingFor(repo).delete(uploadPath(repo, id)));
  }

  /**
   * A committed session goes, as `discard` has it go, but its file's unlink, which frees its
   * blocks when the commit did not keep them, does not hold the answer: the file leaves the
   * repository's .uploads at once (a rename into the temporary directory) and is unlinked in the
   * background (FilesystemDriver.deleteInBackground).
   */
  async discardInBackground(repo: string, id: string): Promise<void> {
    await this.end(repo, id, () => this.stagingFor(repo).deleteInBackground(uploadPath(repo, id), this.onRemovalFailure));
  }

  /** The session's parts end, `removeFile` removes its file, and what this process kept of it goes. */
  private async end(repo: string, id: string, removeFile: () => Promise<void>): Promise<void> {
    await this.parts.end({ repo, id }, removeFile);
    this.forget(repo, id);
    this.hashes.forget({ repo, id });
    this.writeback.forget(repo, id);
  }

  /**
   * Records, durably, the size the session's PATCHes acknowledged before a closing PUT appends its
   * last chunk: whatever stops the PUT (an error, a crash), the session goes back to that size.
   */
  async markClosing(repo: string, id: string, acknowledged: number, digest: string): Promise<void> {
    const marker: ClosingMarker = { repo, id, acknowledged, digest };
    await this.stagingFor(repo).putContent(closingUploadPath(id), JSON.stringify(marker));
  }

  /** The PUT is over (committed, or the session discarded): its closing marker goes. */
  async unmarkClosing(repo: string, id: string): Promise<void> {
    await this.stagingFor(repo).delete(closingUploadPath(id));
  }

  /** Cuts the session back to what its PATCHes acknowledged and drops its closing marker. */
  async restore(repo: string, id: string, acknowledged: number): Promise<void> {
    const staging = this.stagingFor(repo);
    this.hashes.invalidate({ repo, id });
    await this.parts.cut({ repo, id }, acknowledged);
    await staging.truncate(uploadPath(repo, id), acknowledged);
    await staging.delete(closingUploadPath(id));
  }

  /**
   * At start, before any request: finishes what a crash left of closing PUTs. A session whose
   * commit happened (`committed` says so) goes; any other goes back to its acknowledged size.
   * Returns how many sessions were restored.
   */
  async recoverClosing(committed: (marker: ClosingMarker) => boolean): Promise<number> {
    let restored = 0;
    for (const staging of this.allStaging()) {
      for (const name of await staging.list(CLOSING_UPLOADS_DIR)) {
        const marker = parseMarker(await staging.getContent(closingUploadPath(name)).catch(() => undefined));
        // A marker is written whole (a rename) or not at all: anything else is not ours to act on.
        if (marker && marker.id === name && UPLOAD_ID_RE.test(name) && isValidName(marker.repo)) {
          const session = uploadPath(marker.repo, marker.id);
          const info = await staging.stat(session);
          if (info && !info.isDirectory) {
            if (committed(marker)) {
              await staging.delete(session);
            } else if (info.size !== marker.acknowledged) {
              await staging.truncate(session, marker.acknowledged);
              restored++;
            }
          }
        }
        await staging.delete(closingUploadPath(name));
      }
    }
    return restored;
  }

}

function assertUploadId(id: string): void {
  if (!UPLOAD_ID_RE.test(id)) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${id} is unknown`);
}

/**
 * The exact length of a chunk written at `size`, from its declared range (none: any length). A
 * range must start exactly at `size`: RANGE_INVALID (416) otherwise.
 */
export function chunkLength(range: ChunkRange | undefined, size: number): number | undefined {
  if (!range) return undefined;
  if (range.start !== size || range.end < range.start) {
    throw new RegistryError('RANGE_INVALID', `chunk ${range.start}-${range.end} does not continue the upload at ${size}`, { size });
  }
  return range.end - range.start + 1;
}

function parseMarker(content: Buffer | undefined): ClosingMarker | undefined {
  if (!content) return undefined;
  try {
    const value = JSON.parse(content.toString('utf8')) as Partial<ClosingMarker>;
    const { repo, id, acknowledged, digest } = value;
    if (typeof repo !== 'string' || typeof id !== 'string' || typeof digest !== 'string') return undefined;
    if (typeof acknowledged !== 'number' || !Number.isSafeInteger(acknowledged) || acknowledged < 0) return undefined;
    return { repo, id, acknowledged, digest };
  } catch {
    return undefined;
  }
}
