// The actors' checkpoints: one row per actor in the `checkpoints` table of the event log's
// database (created with the log's tables), written only by the actor runner (see the scheme at
// the top of actor.ts), through the connection it is given: in the registry, the actors' own
// connection, whose commits do not wait for the disk.
import type { Db } from '../events/database.js';

export class Checkpoints {
  private readonly select;
  private readonly inTransaction;

  constructor(readonly db: Db) {
    this.select = db.prepare('SELECT seq FROM checkpoints WHERE name = ?');
    const upsert = db.prepare('INSERT INTO checkpoints (name, seq) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET seq = excluded.seq');
    this.inTransaction = db.transaction((name: string, seq: number, write: () => unknown): unknown => {
      const result = write();
      upsert.run(name, seq);
      return result;
    });
  }

  /** Whether the actor has a checkpoint: it ran before. */
  has(name: string): boolean {
    return this.select.get(name) !== undefined;
  }

  /** Sequence number of the last event the actor finished with; 0 before its first. */
  get(name: string): number {
    return (this.select.get(name) as { seq: number } | undefined)?.seq ?? 0;
  }

  /**
   * Runs `write` (the actor's own table writes, synchronous) and stores `seq` as its checkpoint, in
   * one transaction: both commit or neither does. IMMEDIATE takes the write lock first, so another
   * writer makes it wait (busy_timeout) rather than fail between its reads and its writes.
   */
  commit<T>(name: string, seq: number, write: () => T): T {
    return this.inTransaction.immediate(name, seq, write) as T;
  }
}
