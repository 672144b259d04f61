// The running hash of each upload session, kept in the worker pool as the bytes arrive: every write
// to a session's file sends the pool the range just written (a path and offsets, never the bytes),
// and the thread that keeps the session's hash reads that range from the page cache. A commit then
// only asks for the digest. After a restart, or when a failed write cut the file back, the thread
// rebuilds the hash by reading the file once from its start; such re-reads are logged.
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

interface SessionHash {
  /** The worker keeps state of this generation only; a new one makes it rebuild from the file. */
  generation: number;
  /**
   * The bytes the thread was asked to hash, or that the session held when this process first
   * wrote to it: hashing any of them again is a re-read.
   */
  known?: number;
  pending: Set<Promise<void>>;
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
  async written(upload: UploadRef, from: number, size: number): Promise<void> {
    const entry = this.entry(upload);
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

  /** What was hashed is no longer the file's bytes (a failed write cut it back): rebuild at the next task. */
  invalidate(upload: Pick<UploadRef, 'repo' | 'id'>): void {
    const entry = this.sessions.get(key(upload));
    if (!entry) return;
    entry.generation = this.nextGeneration++;
    delete entry.known;
  }

  /** Hex digest of the session's first `size` bytes (the whole file: the caller holds the session). */
  async digest(upload: UploadRef, size: number, algorithm: DigestAlgorithm): Promise<string> {
    if (algorithm !== STREAMED_ALGORITHM) return this.pool.hashFile({ path: upload.file, algorithm });
    const entry = this.entry(upload);
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
