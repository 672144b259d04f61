// Checkpoints of the event log's WAL, off the event loop. SQLite checkpoints a WAL database inside
// the commit that takes its -wal file past wal_autocheckpoint pages (1000 by default): on the
// connection that commits, so for the registry on the event loop, with an fsync of the -wal file
// and one of the database file around the copy: 9 checkpoints per 500 small images pushed, each
// with two waits for the disk (up to 8.5 ms each beside a 1 GiB push), where the store otherwise
// never waits for it (src/events/store.ts). Here a thread of its own, on a connection of its own,
// copies the pages a burst committed once per interval. The writer starts the -wal file over only
// at a commit that finds every frame copied, which a copy made beside the commits often misses, so
// the file grows under a long burst; past 64 MiB (or when the thread cannot run) the registry's
// connections checkpoint in their commits again, as SQLite would: the safety valve.
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Db } from './database.js';
import { WAL_CHECKPOINT_WORKER } from '../install-layout.js';
import { COMMITS, SLOTS, STOP } from '../workers/wal-checkpoint-state.cjs';
import type { WalCheckpointMessage, WalCheckpointWorkerData } from '../workers/wal-checkpoint-worker.cjs';

/** SQLite's default wal_autocheckpoint, put back if the thread cannot run. */
const SQLITE_AUTOCHECKPOINT_PAGES = 1000;
/** The registry's connections checkpoint past this many pages (64 MiB of 4 KiB pages). */
const VALVE_AUTOCHECKPOINT_PAGES = 16_384;
/** How long a burst commits before the thread copies its pages. */
const DEFAULT_INTERVAL_MS = 1000;

export interface WalCheckpointerOptions {
  intervalMs?: number;
  /** The thread's module (tests give one that cannot load). */
  workerFile?: string;
}

export class WalCheckpointer {
  private readonly state = new Int32Array(new SharedArrayBuffer(SLOTS * Int32Array.BYTES_PER_ELEMENT));
  private worker: Worker | undefined;
  private exited: Promise<void> | undefined;
  private failed = false;
  private stopping = false;
  private checkpointsRun = 0;

  /**
   * Takes the checkpoints of `connections` (every one that commits to `file`) off their commits;
   * the thread starts at the first commit, so an idle registry holds none.
   */
  constructor(
    private readonly file: string,
    private readonly connections: readonly Db[],
    private readonly logger: Logger,
    private readonly options: WalCheckpointerOptions = {},
  ) {
    this.setAutocheckpoint(VALVE_AUTOCHECKPOINT_PAGES);
  }

  /** A connection committed (a group of appends, an actor's batch): the thread copies its pages within the interval. */
  committed(): void {
    if (this.failed || this.stopping) return;
    Atomics.add(this.state, COMMITS, 1);
    if (this.worker === undefined) this.start();
    Atomics.notify(this.state, COMMITS);
  }

  /** Checkpoints the thread has made (each one or more PASSIVE runs). */
  get checkpoints(): number {
    return this.checkpointsRun;
  }

  /** Stops the thread after the checkpoint it may be making; call before closing the connections. */
  async stop(): Promise<void> {
    this.stopping = true;
    Atomics.store(this.state, STOP, 1);
    // Raised too: a thread between its look at STOP and its wait for commits does not wait.
    Atomics.add(this.state, COMMITS, 1);
    Atomics.notify(this.state, STOP);
    Atomics.notify(this.state, COMMITS);
    // Waited for: the thread closes its connection before the registry closes its own.
    this.worker?.ref();
    await this.exited;
  }

  private start(): void {
    const workerData: WalCheckpointWorkerData = {
      file: this.file,
      state: this.state.buffer as SharedArrayBuffer,
      intervalMs: this.options.intervalMs ?? DEFAULT_INTERVAL_MS,
    };
    const worker = new Worker(this.options.workerFile ?? fileURLToPath(WAL_CHECKPOINT_WORKER), {
      workerData,
      // The thread holds a connection and a few objects: a small heap is plenty.
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 },
      stdout: false,
      stderr: false,
    });
    this.worker = worker;
    worker.on('message', (message: WalCheckpointMessage) => {
      if (message.type === 'checkpointed') {
        this.checkpointsRun++;
        if (!message.caughtUp) this.logger.debug({ frames: message.frames }, 'WAL checkpoint left frames behind commits made meanwhile');
      } else {
        this.logger.warn({ eventLog: this.file, error: message.message }, 'background checkpoint of the event log failed; it is tried again at the next burst');
      }
    });
    let failure: unknown;
    worker.on('error', (err) => (failure = err));
    this.exited = new Promise((resolve) =>
      worker.once('exit', (code) => {
        if (!this.stopping) this.fallBack(failure ?? new Error(`the checkpoint thread exited with code ${code}`));
        resolve();
      }),
    );
    // Never what keeps the process alive: stop() ends it with the registry. After the listeners,
    // as a 'message' listener refs the thread again.
    worker.unref();
  }

  /** Without the thread, the connections checkpoint in their commits again, as SQLite does by default. */
  private fallBack(err: unknown): void {
    this.failed = true;
    this.logger.warn({ err, eventLog: this.file }, 'event log checkpoints run in the commits again: the checkpoint thread stopped');
    this.setAutocheckpoint(SQLITE_AUTOCHECKPOINT_PAGES);
  }

  private setAutocheckpoint(pages: number): void {
    for (const db of this.connections) if (db.open) db.pragma(`wal_autocheckpoint = ${pages}`);
  }
}
