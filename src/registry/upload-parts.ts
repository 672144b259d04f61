// On roots whose driver writes in parts (S3), an upload session's bytes also go to the bucket as
// they arrive. Each full part (the driver's part size) is read back from the session's file, from
// the page cache, once the file holds it, and sent to a multipart upload under the session's own
// key, REPO/.uploads/ID, where zot keeps an upload on S3. A session has a few parts in flight at
// most, and the registry a few part buffers at most: past either, the request's writes wait. At
// commit only the tail is left to send; the multipart upload then completes under the session's
// key and moves (a server-side copy, then a delete) to the blob's key, all before the commit event
// names the blob.
//
// When the digest is known before the body (a monolithic POST ?digest=, or a PUT whose body is the
// whole blob), there is nothing to move: the request's parts go to a multipart upload at the blob's
// key itself, which completes there once the digest is verified. S3 shows nothing at a key before
// its upload completes, and a blob key's upload is only ever completed with verified bytes and
// only ever aborted, never deleted after: whatever is at the key (a blob pushed before) stays. Such
// an upload serves its one request: a failed or interrupted request aborts it, and so does the next
// start. When the repository holds the digest already, that request's bytes are not sent at all.
// A body whose length is declared (Content-Length, within the store's single-request limit) goes
// instead as one PutObject streamed to the blob's key, its last byte held back until the digest is
// verified (held-back-write.ts): nothing to complete, and nothing stored if it is never sent.
//
// The session's file stays the truth, and the parts are a head start: a part that failed to send is
// sent at commit, and a commit whose parts fail uploads the file whole (putFile), as a session with
// no full part does. Each multipart upload's id and stored parts are recorded in the staging
// directory (.zot-ts/upload-parts/ID): a restart continues the same upload, and the upload of a
// session that went while the registry was down is aborted at the next start.
//
// Only CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload,
// CopyObject and DeleteObject are used: S3 and s3rver both have them (s3rver lacks ListParts,
// ListMultipartUploads and UploadPartCopy, so the bucket is never asked what uploads or parts it
// holds). An upload whose record a crash kept from being written is the bucket's lifecycle rule's
// to abort (AbortIncompleteMultipartUpload), as for distribution and zot.
import * as fs from 'node:fs/promises';
import type { Logger } from 'pino';
import { isValidName } from '../oci/names.js';
import type { PartedWrites, StorageDriver, StoredPart } from '../storage/driver.js';
import type { FilesystemDriver } from '../storage/filesystem.js';
import { UPLOAD_PARTS_DIR, uploadPartsPath, uploadPath } from '../storage/layout.js';
import type { StorageRoots } from '../storage/roots.js';
import { HeldBackWrite } from './held-back-write.js';
import type { UploadRef } from './upload-hashes.js';

/** Parts of one session being sent at once: one on the wire while the next is read and sent. */
const PARTS_IN_FLIGHT_PER_SESSION = 2;
/** Part buffers in memory across every session (80 MiB with distribution's 10 MiB parts). */
const PART_BUFFERS = 8;
/** S3's most parts in one multipart upload. */
const MAX_PARTS = 10_000;

/** What .zot-ts/upload-parts/ID holds: the session, its multipart upload and the full parts stored. */
interface PartsRecord {
  repo: string;
  id: string;
  writeId: string;
  partSize: number;
  /** The blob path the multipart upload is at, when its request named the digest before the body. */
  blob?: string;
  /** Byte range of each part, [start, end), so a record can be checked against the session's file. */
  parts: Array<StoredPart & { start: number; end: number }>;
}

interface SessionParts {
  readonly upload: UploadRef;
  readonly writes: PartedWrites;
  readonly driver: StorageDriver;
  readonly staging: FilesystemDriver;
  /** Where the multipart upload is: the session's key, or the blob's (`direct`). */
  readonly path: string;
  /** The upload is at the blob's key, for one request: it is completed there or aborted, never moved or deleted. */
  readonly direct: boolean;
  /** This request's bytes are not sent: the repository holds the blob already. */
  readonly withheld: boolean;
  /** Instead of parts, this request's bytes go to the blob's key as one streamed write. */
  readonly stream?: HeldBackWrite;
  /** The multipart upload, once begun (and until it moved into place or was aborted). */
  writeId?: string;
  beginning?: Promise<string>;
  /** A completed upload's object may be left under the session's key (its move failed). */
  leftover: boolean;
  /** Part number → tag, of the parts stored in the current multipart upload. */
  readonly stored: Map<number, string>;
  readonly inFlight: Set<Promise<void>>;
  /** Record writes and its removal, in order. */
  saving: Promise<void>;
  saveQueued: boolean;
}

/** A counting semaphore: at most `slots` holders at once, the others wait in order. */
class Slots {
  private readonly waiting: Array<() => void> = [];

  constructor(private free: number) {}

  async take(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

export class UploadParts {
  private readonly sessions = new Map<string, SessionParts>();
  private readonly buffers = new Slots(PART_BUFFERS);

  constructor(
    private readonly roots: StorageRoots,
    private readonly logger?: Logger,
  ) {}

  /**
   * The session's file now holds `to` bytes, of which [from, to) were just written: the parts
   * they completed start sending. Resolves once the session has room for more parts in flight.
   */
  async written(upload: UploadRef, from: number, to: number): Promise<void> {
    const stream = this.sessions.get(key(upload))?.stream;
    if (stream) return stream.written(to);
    const partSize = this.roots.for(upload.repo).driver.partedWrites?.partSize;
    if (partSize === undefined) return;
    const first = Math.floor(from / partSize) + 1;
    const last = Math.min(Math.floor(to / partSize), MAX_PARTS);
    if (last < first) return;
    const session = this.session(upload);
    if (session.withheld) return;
    for (let part = first; part <= last; part++) this.send(session, part, partSize);
    while (session.inFlight.size >= PARTS_IN_FLIGHT_PER_SESSION) await Promise.race(session.inFlight);
  }

  /**
   * Before the body of a request that names the digest, on a session with no bytes yet: its parts
   * go to a multipart upload at `to`, the blob's path (or, without `to`, the repository holding the
   * blob already, nowhere). With the body's `length` known, one streamed write instead, where the
   * driver has them. A session that has begun a multipart upload of its own keeps it.
   */
  aim(upload: UploadRef, to: string | undefined, length?: number): void {
    const root = this.roots.for(upload.repo);
    const { driver } = root;
    const writes = driver.partedWrites;
    if (!writes) return;
    const existing = this.sessions.get(key(upload));
    if (existing && (existing.writeId !== undefined || existing.beginning || existing.inFlight.size > 0 || existing.leftover || existing.direct)) return;
    const streamed = to !== undefined && length !== undefined && length > 0 && length <= (driver.streamedWriteLimit ?? 0) ? driver.streamedWrite?.(to, length) : undefined;
    const target =
      to === undefined
        ? { withheld: true }
        : { path: to, direct: true, ...(streamed && length !== undefined ? { stream: new HeldBackWrite(streamed, upload.file, length) } : {}) };
    this.sessions.set(key(upload), this.newSession(upload, writes, root.driver, root.staging, target));
  }

  /** The session's file was cut back to `size` bytes: the parts past it no longer hold its bytes. */
  async cut(upload: Pick<UploadRef, 'repo' | 'id'>, size: number): Promise<void> {
    const session = this.sessions.get(key(upload));
    if (!session) return;
    await Promise.all(session.inFlight);
    if (session.direct || session.withheld) return this.unaim(session);
    const past = [...session.stored.keys()].filter((part) => part * session.writes.partSize > size);
    for (const part of past) session.stored.delete(part);
    if (past.length > 0) await this.save(session);
  }

  /**
   * The request a blob key's upload served failed (the session goes back to its last PATCH): the
   * upload is aborted, and the session's next bytes go to its own key again.
   */
  private async unaim(session: SessionParts): Promise<void> {
    const { upload } = session;
    this.sessions.delete(key(upload));
    session.stream?.abort();
    await session.beginning?.catch(() => undefined);
    if (session.writeId === undefined) return;
    try {
      await this.abort(session.driver, session.writes, upload, session);
      await this.removeRecord(session);
    } catch (err) {
      this.logger?.warn({ repo: upload.repo, uploadId: upload.id, err }, 'failed to abort the multipart upload of a failed blob push, leaving it to the bucket lifecycle rule');
    }
  }

  /**
   * At commit, with the session's `size` bytes verified: sends what parts are missing and the
   * tail, completes the multipart upload and moves it to `to`. False when that did not happen:
   * the session has no multipart upload with a part in it, or a request failed (logged); the
   * caller then uploads the file whole, and the session's end aborts what is left.
   */
  async place(upload: Pick<UploadRef, 'repo' | 'id'>, size: number, to: string): Promise<boolean> {
    const session = this.sessions.get(key(upload));
    if (!session) return false;
    // A blob key's upload holds this digest's bytes only; its request commits as that digest.
    if (session.direct && session.path !== to) return false;
    if (session.stream) return this.finishStream(session, session.stream, size);
    let completed = false;
    try {
      if (!(await this.complete(session, size))) return false;
      completed = true;
      if (!session.direct) await session.driver.move(session.path, to);
    } catch (err) {
      if (completed && !session.direct) {
        // The object under the session's key holds these bytes only for this commit: the session
        // may change before the next one, whose parts then go to a new multipart upload.
        delete session.writeId;
        session.stored.clear();
        session.leftover = true;
      }
      this.logger?.warn({ repo: upload.repo, uploadId: upload.id, err }, 'failed to complete the multipart upload of an upload session, uploading its file whole');
      return false;
    }
    // In place: the multipart upload is over and its record goes (the caller drops the session).
    this.sessions.delete(key(upload));
    await this.removeRecord(session).catch((err: unknown) => {
      this.logger?.warn({ repo: upload.repo, uploadId: upload.id, err }, 'failed to remove the multipart upload record of a committed upload session');
    });
    return true;
  }

  /** Sends a streamed write's last bytes; false (logged) when it failed: the caller uploads the file whole. */
  private async finishStream(session: SessionParts, stream: HeldBackWrite, size: number): Promise<boolean> {
    const { upload } = session;
    try {
      await stream.finish(size);
    } catch (err) {
      this.logger?.warn({ repo: upload.repo, uploadId: upload.id, err }, 'failed to stream an upload to its blob key, uploading its file whole');
      return false;
    }
    this.sessions.delete(key(upload));
    return true;
  }

  /** Completes the multipart upload under the session's key; false when it has no part to complete. */
  private async complete(session: SessionParts, size: number): Promise<boolean> {
    await session.beginning?.catch(() => undefined);
    const { writes, upload } = session;
    const writeId = session.writeId;
    const { partSize } = writes;
    const full = Math.floor(size / partSize);
    const count = full + (size % partSize > 0 ? 1 : 0);
    if (writeId === undefined || count > MAX_PARTS) return false;
    // The tail goes beside the parts still in flight or missing.
    const tail = count > full ? this.sendTail(session, writeId, count, partSize, size - full * partSize) : undefined;
    // Seen now, thrown below: a failure is never an unhandled rejection.
    tail?.catch(() => undefined);
    await Promise.all(session.inFlight);
    if (session.stored.size === 0) return false;
    for (let part = 1; part <= full; part++) {
      if (session.stored.has(part)) continue;
      this.send(session, part, partSize);
      while (session.inFlight.size >= PARTS_IN_FLIGHT_PER_SESSION) await Promise.race(session.inFlight);
    }
    await Promise.all(session.inFlight);
    const parts: StoredPart[] = [];
    for (let part = 1; part <= full; part++) {
      const tag = session.stored.get(part);
      if (tag === undefined) throw new Error(`part ${part} of upload ${upload.id} could not be sent`);
      parts.push({ number: part, tag });
    }
    if (tail) parts.push(await tail);
    await writes.complete(session.path, writeId, parts);
    return true;
  }

  private async sendTail(session: SessionParts, writeId: string, part: number, partSize: number, length: number): Promise<StoredPart> {
    const body = await this.readPart(session, part, partSize, length);
    try {
      return { number: part, tag: await session.writes.putPart(session.path, writeId, part, body) };
    } finally {
      this.buffers.give();
    }
  }

  /**
   * The session is going (committed, cancelled, expired, refused): aborts its multipart upload and
   * deletes the object a completion may have left under its key, then `removeFile` removes the
   * session's file, then the record goes. When the abort fails, the record stays for the next start.
   */
  async end(upload: Pick<UploadRef, 'repo' | 'id'>, removeFile: () => Promise<void>): Promise<void> {
    const session = this.sessions.get(key(upload));
    if (!session) return removeFile();
    this.sessions.delete(key(upload));
    session.stream?.abort();
    await Promise.all(session.inFlight);
    await session.beginning?.catch(() => undefined);
    let aborted = true;
    if (session.writeId !== undefined || session.leftover) {
      try {
        await this.abort(session.driver, session.writes, upload, session);
      } catch (err) {
        aborted = false;
        this.logger?.warn({ repo: upload.repo, uploadId: upload.id, err }, 'failed to abort the multipart upload of an upload session, retrying at the next start');
      }
    }
    await removeFile();
    if (aborted) await this.removeRecord(session);
  }

  private async removeRecord(session: SessionParts): Promise<void> {
    const removal = session.saving.then(() => session.staging.delete(uploadPartsPath(session.upload.id)));
    session.saving = removal.catch(() => undefined);
    await removal;
  }

  /** At shutdown, after the last request: waits for the parts in flight and the records they update. */
  async settle(): Promise<void> {
    for (const session of this.sessions.values()) {
      await Promise.all(session.inFlight);
      await session.saving;
    }
  }

  /**
   * At start, before any request and after interrupted commits were undone: takes up the multipart
   * upload of each session that is still open (its parts past the session's file dropped), and
   * aborts those of sessions that are gone.
   */
  async recover(stagings: readonly FilesystemDriver[], localFile: (repo: string, id: string) => string): Promise<void> {
    for (const staging of stagings) {
      for (const name of await staging.list(UPLOAD_PARTS_DIR)) {
        const path = uploadPartsPath(name);
        const record = parseRecord(await staging.getContent(path).catch(() => undefined));
        const root = record && isValidName(record.repo) ? this.roots.for(record.repo) : undefined;
        const writes = root?.driver.partedWrites;
        if (!record || record.id !== name || !root || root.staging !== staging || !writes) {
          // Not ours to act on, or its root is no longer an object store: the bucket's lifecycle rule's.
          this.logger?.warn({ record: name }, 'failed to read the multipart upload record of an upload session, removing it');
          await staging.delete(path);
          continue;
        }
        const upload = { repo: record.repo, id: record.id, file: localFile(record.repo, record.id) };
        const info = await staging.stat(uploadPath(record.repo, record.id));
        // A blob key's upload served one request, which is gone: it is aborted, whatever the session.
        if (!info || info.isDirectory || record.partSize !== writes.partSize || record.blob !== undefined) {
          try {
            const at = record.blob === undefined ? { path: uploadPath(record.repo, record.id), direct: false } : { path: record.blob, direct: true };
            await this.abort(root.driver, writes, upload, { ...at, writeId: record.writeId });
            await staging.delete(path);
          } catch (err) {
            this.logger?.warn({ repo: record.repo, uploadId: record.id, err }, 'failed to abort the multipart upload of a finished upload session, retrying at the next start');
          }
          continue;
        }
        const session = this.newSession(upload, writes, root.driver, staging);
        session.writeId = record.writeId;
        for (const part of record.parts) {
          const start = (part.number - 1) * writes.partSize;
          if (part.start === start && part.end === start + writes.partSize && part.end <= info.size) session.stored.set(part.number, part.tag);
        }
        this.sessions.set(key(upload), session);
      }
    }
  }

  private async abort(
    driver: StorageDriver,
    writes: PartedWrites,
    upload: Pick<UploadRef, 'repo' | 'id'>,
    at: { path: string; direct: boolean; writeId?: string | undefined },
  ): Promise<void> {
    if (at.writeId !== undefined) await writes.abort(at.path, at.writeId);
    // The upload may have completed before its move failed or a crash came: its object goes too.
    // Not at a blob key: what is there is a verified blob, this push's or another's.
    if (!at.direct) await driver.delete(uploadPath(upload.repo, upload.id));
  }

  /** The session's parts (its root writes in parts). */
  private session(upload: UploadRef): SessionParts {
    const existing = this.sessions.get(key(upload));
    if (existing) return existing;
    const root = this.roots.for(upload.repo);
    const writes = root.driver.partedWrites;
    if (!writes) throw new Error(`the storage root of ${upload.repo} does not write in parts`);
    const session = this.newSession(upload, writes, root.driver, root.staging);
    this.sessions.set(key(upload), session);
    return session;
  }

  private newSession(
    upload: UploadRef,
    writes: PartedWrites,
    driver: StorageDriver,
    staging: FilesystemDriver,
    target: { path?: string; direct?: boolean; withheld?: boolean; stream?: HeldBackWrite } = {},
  ): SessionParts {
    return {
      upload,
      writes,
      driver,
      staging,
      path: target.path ?? uploadPath(upload.repo, upload.id),
      direct: target.direct ?? false,
      withheld: target.withheld ?? false,
      ...(target.stream ? { stream: target.stream } : {}),
      leftover: false,
      stored: new Map(),
      inFlight: new Set(),
      saving: Promise.resolve(),
      saveQueued: false,
    };
  }

  /** Sends one full part in the background; a failure is logged and the part sent again at commit. */
  private send(session: SessionParts, part: number, partSize: number): void {
    const { upload } = session;
    const task = (async () => {
      const writeId = await this.writeOf(session);
      const body = await this.readPart(session, part, partSize, partSize);
      let tag: string;
      try {
        tag = await session.writes.putPart(session.path, writeId, part, body);
      } finally {
        this.buffers.give();
      }
      if (session.writeId !== writeId) return;
      session.stored.set(part, tag);
      // Recorded in the background: the part is in the bucket, the request need not wait for the record.
      this.save(session).catch((err: unknown) => {
        this.logger?.warn({ repo: upload.repo, uploadId: upload.id, err }, 'failed to record an upload part, sending it again after a restart');
      });
    })().catch((err: unknown) => {
      this.logger?.warn({ repo: upload.repo, uploadId: upload.id, part, err }, 'failed to send an upload part to the bucket, sending it at commit');
    });
    session.inFlight.add(task);
    void task.finally(() => session.inFlight.delete(task));
  }

  /** Reads part `part` of the session's file into a buffer, holding one of the registry's part buffers. */
  private async readPart(session: SessionParts, part: number, partSize: number, length: number): Promise<Buffer> {
    await this.buffers.take();
    try {
      const body = Buffer.allocUnsafe(length);
      const start = (part - 1) * partSize;
      const handle = await fs.open(session.upload.file, 'r');
      try {
        let filled = 0;
        while (filled < length) {
          const { bytesRead } = await handle.read(body, filled, length - filled, start + filled);
          if (bytesRead === 0) throw new Error(`upload ${session.upload.id} holds no part ${part}`);
          filled += bytesRead;
        }
      } finally {
        await handle.close();
      }
      return body;
    } catch (err) {
      this.buffers.give();
      throw err;
    }
  }

  /** The session's multipart upload, begun (and recorded, before any part goes) on first use. */
  private writeOf(session: SessionParts): Promise<string> {
    if (session.writeId !== undefined) return Promise.resolve(session.writeId);
    session.beginning ??= (async () => {
      try {
        const writeId = await session.writes.begin(session.path);
        session.writeId = writeId;
        await this.save(session);
        return writeId;
      } finally {
        session.beginning = undefined;
      }
    })();
    return session.beginning;
  }

  /**
   * Writes the session's record after the writes queued before it (one queued write at most).
   * Rejects when this write fails; the writes queued after it still run.
   */
  private save(session: SessionParts): Promise<void> {
    if (session.saveQueued) return session.saving;
    session.saveQueued = true;
    const write = session.saving.then(async () => {
      session.saveQueued = false;
      const { writeId } = session;
      if (writeId === undefined) return;
      const { partSize } = session.writes;
      const record: PartsRecord = {
        repo: session.upload.repo,
        id: session.upload.id,
        writeId,
        partSize,
        ...(session.direct ? { blob: session.path } : {}),
        parts: [...session.stored]
          .sort(([a], [b]) => a - b)
          .map(([number, tag]) => ({ number, tag, start: (number - 1) * partSize, end: number * partSize })),
      };
      // Not synced: a power cut may lose the session's unsynced bytes too (uploads.ts); the record
      // is for the restarts that keep them. A record a power cut emptied is dropped at start.
      await session.staging.replaceContent(uploadPartsPath(session.upload.id), JSON.stringify(record));
    });
    session.saving = write.catch(() => undefined);
    return write;
  }
}

function key(upload: Pick<UploadRef, 'repo' | 'id'>): string {
  return `${upload.repo}\u0000${upload.id}`;
}

function parseRecord(content: Buffer | undefined): PartsRecord | undefined {
  if (!content) return undefined;
  try {
    const value = JSON.parse(content.toString('utf8')) as Partial<PartsRecord>;
    const { repo, id, writeId, partSize, blob, parts } = value;
    if (typeof repo !== 'string' || typeof id !== 'string' || typeof writeId !== 'string') return undefined;
    if (blob !== undefined && typeof blob !== 'string') return undefined;
    if (typeof partSize !== 'number' || !Number.isSafeInteger(partSize) || partSize <= 0 || !Array.isArray(parts)) return undefined;
    const valid = parts.every(
      (p) => Number.isSafeInteger(p.number) && p.number > 0 && typeof p.tag === 'string' && Number.isSafeInteger(p.start) && Number.isSafeInteger(p.end),
    );
    return valid ? { repo, id, writeId, partSize, ...(blob !== undefined ? { blob } : {}), parts } : undefined;
  } catch {
    return undefined;
  }
}
