// Worker-thread tasks of the piscina pool. Each task gets a path, never the bytes, so the main
// thread only moves file names around. CommonJS on purpose: the thread then loads it with a
// synchronous require(), never through Node 20's ESM loader, which can abort the whole process
// when a pool is destroyed while a thread is still instantiating an ES module.
import { createHash, type Hash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { setPriority } from 'node:os';
import type { DigestAlgorithm } from '../oci/digest.js';

// On Linux a priority set with pid 0 applies to the calling thread only: hashing yields the CPU
// to the event loop, so requests keep their latency while a large blob is verified.
try {
  setPriority(0, 10);
} catch {
  // Not permitted or not supported: hash at normal priority.
}

export interface HashFileTask {
  path: string;
  algorithm: DigestAlgorithm;
}

const READ_BUFFER_BYTES = 1024 * 1024;
/**
 * Read buffers, reused: hashing a large blob makes no garbage. A thread can run several tasks at
 * once (the tasks of upload sessions bound to it, next to a whole-file hash), one buffer each.
 */
const freeBuffers: Buffer[] = [];

async function withBuffer<T>(work: (buffer: Buffer) => Promise<T>): Promise<T> {
  const buffer = freeBuffers.pop() ?? Buffer.allocUnsafe(READ_BUFFER_BYTES);
  try {
    return await work(buffer);
  } finally {
    if (freeBuffers.length < 2) freeBuffers.push(buffer);
  }
}

/** Hex digest of the whole file. */
export async function hashFile(task: HashFileTask): Promise<string> {
  const hash = createHash(task.algorithm);
  const handle = await open(task.path, 'r');
  try {
    await withBuffer(async (buffer) => {
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
        if (bytesRead === 0) break;
        hash.update(buffer.subarray(0, bytesRead));
      }
    });
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

/** Does nothing: the pool sends it to start a thread ahead of the tasks (HashPool.warm). */
export function warmUp(): void {}

// ---- running hashes of upload sessions ----------------------------------------------------------
// The pool sends every task of one session to the same thread (pool.ts), which keeps the session's
// hash of the bytes [0, offset) of its file. Each task brings it up to a size by reading only the
// bytes after `offset`, which were just written and are still in the page cache. State this thread
// does not have (a restart, a thread that exited, a generation the main thread gave up on after a
// failed write) is rebuilt by reading the file from its start: one re-read, counted in the answer.

export interface UploadHashTask {
  /** The session's key; its tasks all come to this thread. */
  session: string;
  /**
   * Changes whenever the main thread can no longer vouch for the bytes hashed so far (a failed
   * append cut the file back): state of another generation is rebuilt.
   */
  generation: number;
  path: string;
  algorithm: DigestAlgorithm;
  /** Bring the hash up to the file's first `size` bytes. */
  size: number;
  /** Where the bytes this task is for begin (just written; `size` for a commit): any read below it is a re-read. */
  fresh: number;
  /** Answer the digest of those bytes too (the commit). */
  digest?: boolean;
}

export interface UploadHashResult {
  /** Bytes read again because the state was missing or stale. */
  reread: number;
  /** Hex digest of the first `size` bytes, when asked for. */
  digest?: string;
}

export interface ForgetUploadTask {
  session: string;
}

interface UploadHashState {
  generation: number;
  algorithm: DigestAlgorithm;
  hash: Hash;
  offset: number;
}

/** Sessions whose hash this thread keeps; past it the least recently used is dropped (and rebuilt if it comes back). */
const MAX_UPLOAD_STATES = 4096;
const states = new Map<string, UploadHashState>();
/** The last task of each session: tasks of one session run one after another, in order. */
const tails = new Map<string, Promise<unknown>>();

export function hashUpload(task: UploadHashTask): Promise<UploadHashResult> {
  const previous = tails.get(task.session) ?? Promise.resolve();
  const run = previous.then(
    () => advance(task),
    () => advance(task),
  );
  tails.set(task.session, run);
  const clear = (): void => {
    if (tails.get(task.session) === run) tails.delete(task.session);
  };
  run.then(clear, clear);
  return run;
}

export async function forgetUpload(task: ForgetUploadTask): Promise<void> {
  await tails.get(task.session)?.catch(() => undefined);
  states.delete(task.session);
}

async function advance(task: UploadHashTask): Promise<UploadHashResult> {
  const kept = states.get(task.session);
  states.delete(task.session);
  const usable = kept && kept.generation === task.generation && kept.algorithm === task.algorithm && kept.offset <= task.size;
  const state: UploadHashState = usable ? kept : { generation: task.generation, algorithm: task.algorithm, hash: createHash(task.algorithm), offset: 0 };
  // Bytes below `fresh` were hashed by an earlier task, or should have been: reading them is a re-read.
  const reread = Math.max(0, Math.min(task.fresh, task.size) - state.offset);
  const handle = await open(task.path, 'r');
  try {
    await withBuffer(async (buffer) => {
      while (state.offset < task.size) {
        const length = Math.min(buffer.length, task.size - state.offset);
        const { bytesRead } = await handle.read(buffer, 0, length, state.offset);
        // The file is shorter than the caller said: the state is dropped, the next task rebuilds it.
        if (bytesRead === 0) throw new Error(`upload file ended at ${state.offset} bytes, expected ${task.size}`);
        state.hash.update(buffer.subarray(0, bytesRead));
        state.offset += bytesRead;
      }
    });
  } finally {
    await handle.close();
  }
  // Re-inserted last: the map's order is least recently used first.
  states.set(task.session, state);
  if (states.size > MAX_UPLOAD_STATES) {
    const oldest = states.keys().next().value;
    if (oldest !== undefined) states.delete(oldest);
  }
  return { reread, ...(task.digest ? { digest: state.hash.copy().digest('hex') } : {}) };
}
