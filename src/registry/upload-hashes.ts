// The running hash of each upload session, kept in the worker pool as the bytes arrive: every write
// to a session's file sends the pool the range just written (a path and offsets, never the bytes),
// and the thread that keeps the session's hash reads that range from the page cache. A commit then
// only asks for the digest. After a restart, or when a failed write cut the file back, the thread
// rebuilds the hash by reading the file once from its start; such re-reads are logged.
//
// A small session (a config, a manifest-sized layer: most blobs of most images) is hashed on the
// event loop instead, from the bytes as they are written: at this size a round trip to the thread
// (a task, the thread's open and read of the file, and a second task to drop its state) costs
// more than the hash itself, which stays well under a tenth of a millisecond. So is a larger
// session whose first bytes arrive while no hashing thread is online (the first push after a start,
// or after the pool's idle timeout): a thread takes some 100 ms to start, and the commit would wait
// for it. It goes to the pool at its first write once a thread is online, which hashes it from the
// start of the file (the page cache); one that ends before then is never sent.
import { createHash, type Hash } from 'node:crypto';
import type { Logger } from 'pino';
import type { DigestAlgorithm } from '../oci/digest.js';
import type { HashPool } from '../workers/pool.js';

/** Hashed as the bytes arrive: the algorithm nearly every client commits with. Others hash the whole file at commit. */
export const STREAMED_ALGORITHM: DigestAlgorithm = 'sha256';

/** Written bytes gathered into one hash task: fewer round trips to the thread, for at most this much hashed at commit. */
const HASH_STEP_BYTES = 4 * 1024 * 1024;

/**
 * Hash tasks of one session in flight before its writes wait. Hashing is faster than the network,
 * but its thread runs at a lower priority than the event loop and gets little CPU on a busy
 * machine: a deep backlog keeps the upload from stalling on it.
 */
const MAX_PENDING_TASKS = 16;

/** Sessions up to this size are hashed on the event loop (see the top); larger ones by the pool. */
export const INLINE_HASH_MAX_BYTES = 16 * 1024;

interface SessionHash {
  /** The worker keeps state of this generation only; a new one makes it rebuild from the file. */
  generation: number;
  /**
   * The bytes the thread was asked to hash, or that the session held when this process first
   * wrote to it: hashing any of them again is a re-read.
   */
  known?: number;
  pending: Set<Promise<void>>;
  /** The hash of a small session, kept here from its first byte while it stays small (see the top). */
  inline?: { hash: Hash; bytes: number };
}

export interface UploadRef {
  repo: string;
  id: string;
  /** The session's file on local disk. */
  file: string;
}

export class UploadHashes {
  private nextGeneration = 1;
  private readonly sessions = new Map<string, SessionHash>();

  constructor(
    private readonly pool: HashPool,
    private readonly logger?: Logger,
  ) {}

  /**
   * The session's file now holds `size` bytes, of which [from, size) were just written: they are
   * hashed in the background. Resolves at once unless too many hashes of the session are in flight.
   */
  async written(upload: UploadRef, from: number, size: number, bytes?: readonly Buffer[]): Promise<void> {
    const entry = this.entry(upload);
    if (this.hashedInline(entry, from, size, bytes)) return;
    const known = entry.known ?? from;
    entry.known = known;
    if (size - known < HASH_STEP_BYTES) return;
    entry.known = size;
    const { generation } = entry;
    const task = this.pool
      .hashUpload({ session: key(upload), generation, path: upload.file, algorithm: STREAMED_ALGORITHM, size, fresh: known })
      .then(
        (result) => this.noteReread(upload, result.reread),
        (err: unknown) => {
          // The thread dropped the session's state: the next task (or the commit) rebuilds it.
          this.logger?.warn({ repo: upload.repo, uploadId: upload.id, err }, 'failed to hash upload chunk, rehashing from the file later');
        },
      );
    entry.pending.add(task);
    void task.finally(() => entry.pending.delete(task));
    while (entry.pending.size >= MAX_PENDING_TASKS) await Promise.race(entry.pending);
  }

  /**
   * Hashes the written bytes here when the session is small, or no hashing thread is online yet,
   * and this process saw all of it; true if it did. A session that outgrows the limit once a
   * thread is online goes to the pool, which hashes it from the start of the file (not a re-read:
   * the thread never had those bytes).
   */
  private hashedInline(entry: SessionHash, from: number, size: number, bytes: readonly Buffer[] | undefined): boolean {
    const continues = from === 0 ? entry.inline === undefined && entry.known === undefined : entry.inline?.bytes === from;
    const small = size <= INLINE_HASH_MAX_BYTES;
    if (!small) this.pool.warm();
    // A call brings at most one write batch (1 MiB: ~0.6 ms of the event loop while a thread starts).
    if (bytes !== undefined && continues && (small || !this.pool.threadReady())) {
      entry.inline ??= { hash: createHash(STREAMED_ALGORITHM), bytes: 0 };
      for (const chunk of bytes) entry.inline.hash.update(chunk);
      entry.inline.bytes = size;
      return true;
    }
    if (entry.inline !== undefined) {
      delete entry.inline;
      entry.known = 0;
    }
    return false;
  }

  /** What was hashed is no longer the file's bytes (a failed write cut it back): rebuild at the next task. */
  invalidate(upload: Pick<UploadRef, 'repo' | 'id'>): void {
    const entry = this.sessions.get(key(upload));
    if (!entry) return;
    entry.generation = this.nextGeneration++;
    delete entry.known;
    delete entry.inline;
  }

  /** Hex digest of the session's first `size` bytes (the whole file: the caller holds the session). */
  async digest(upload: UploadRef, size: number, algorithm: DigestAlgorithm): Promise<string> {
    if (algorithm !== STREAMED_ALGORITHM) return this.pool.hashFile({ path: upload.file, algorithm });
    const entry = this.entry(upload);
    // A copy: the session stays hashable if this commit fails and a later one asks again.
    if (entry.inline?.bytes === size) return entry.inline.hash.copy().digest('hex');
    // Tasks never reject (failures are logged and rebuilt from): waiting for them keeps the order.
    await Promise.all(entry.pending);
    const result = await this.pool.hashUpload({
      session: key(upload),
      generation: entry.generation,
      path: upload.file,
      algorithm,
      size,
      fresh: Math.min(entry.known ?? size, size),
      digest: true,
    });
    this.noteReread(upload, result.reread);
    if (result.digest === undefined) throw new Error('the hashing thread answered no digest');
    return result.digest;
  }

  /** The session is over (committed, cancelled, expired): its hash goes. */
  forget(upload: Pick<UploadRef, 'repo' | 'id'>): void {
    const k = key(upload);
    if (!this.sessions.delete(k)) return;
    this.pool.forgetUpload(k).catch((err: unknown) => {
      this.logger?.warn({ repo: upload.repo, uploadId: upload.id, err }, 'failed to drop the running hash of an upload session');
    });
  }

  private entry(upload: Pick<UploadRef, 'repo' | 'id'>): SessionHash {
    const k = key(upload);
    let entry = this.sessions.get(k);
    if (!entry) {
      entry = { generation: this.nextGeneration++, pending: new Set() };
      this.sessions.set(k, entry);
    }
    return entry;
  }

  private noteReread(upload: UploadRef, bytes: number): void {
    if (bytes > 0) this.logger?.info({ repo: upload.repo, uploadId: upload.id, bytes }, 'rebuilt the running hash of an upload session from its file');
  }
}

function key(upload: Pick<UploadRef, 'repo' | 'id'>): string {
  return `${upload.repo}\u0000${upload.id}`;
}
