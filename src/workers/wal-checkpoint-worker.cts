// The thread that checkpoints the event log's WAL (src/events/wal-checkpointer.ts): it copies the
// committed pages from the -wal file into the database file, with the fsyncs SQLite makes around
// that, so that the registry's own connections need not do it inside a commit on the event loop.
// CommonJS, for a synchronous require() in the thread (as hash-worker.cts).
import { parentPort, workerData } from 'node:worker_threads';
import Database = require('better-sqlite3');
import { COMMITS, STOP } from './wal-checkpoint-state.cjs';

export interface WalCheckpointWorkerData {
  /** The event log's database file. */
  file: string;
  /** The slots of wal-checkpoint-state.cts, shared with the event loop. */
  state: SharedArrayBuffer;
  /** How long a burst of commits runs before its pages are copied. */
  intervalMs: number;
}

/** What the thread tells the main thread. */
export type WalCheckpointMessage = { type: 'failed'; message: string } | { type: 'checkpointed'; frames: number; caughtUp: boolean };

/**
 * A PASSIVE checkpoint copies the frames committed when it began, beside the registry's commits,
 * and never waits. The writer starts the -wal file over only at a commit that finds every frame
 * copied; commits made during the copy leave some behind, so it runs again (those few frames)
 * until it catches up or the tries run out, and the next burst copies the rest.
 */
const CATCH_UP_TRIES = 4;

interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

function run(data: WalCheckpointWorkerData): void {
  const state = new Int32Array(data.state);
  const db = new Database(data.file, { fileMustExist: true });
  try {
    // NORMAL: SQLite syncs the -wal file before it copies and the database file after, which is
    // what makes the frames safe to overwrite once the writer starts the file over.
    db.pragma('synchronous = NORMAL');
    let seen = 0;
    for (;;) {
      if (Atomics.load(state, STOP) !== 0) return;
      const commits = Atomics.load(state, COMMITS);
      if (commits === seen) {
        Atomics.wait(state, COMMITS, commits);
        continue;
      }
      // A burst has begun: its pages are copied once per interval, not once per commit.
      if (Atomics.wait(state, STOP, 0, data.intervalMs) !== 'timed-out') return;
      seen = Atomics.load(state, COMMITS);
      checkpoint(db);
    }
  } finally {
    db.close();
  }
}

function checkpoint(db: Database.Database): void {
  try {
    let frames = 0;
    let caughtUp = false;
    for (let tries = 0; tries < CATCH_UP_TRIES && !caughtUp; tries++) {
      const [result] = db.pragma('wal_checkpoint(PASSIVE)') as CheckpointResult[];
      if (result === undefined || result.busy !== 0) break;
      frames = result.log;
      caughtUp = result.checkpointed >= result.log;
    }
    parentPort?.postMessage({ type: 'checkpointed', frames, caughtUp } satisfies WalCheckpointMessage);
  } catch (err) {
    parentPort?.postMessage({ type: 'failed', message: err instanceof Error ? err.message : String(err) } satisfies WalCheckpointMessage);
  }
}

if (parentPort !== null) run(workerData as WalCheckpointWorkerData);
