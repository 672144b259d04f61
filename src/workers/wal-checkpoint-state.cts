// The Int32 slots that the event loop and the WAL checkpoint thread share
// (src/events/wal-checkpointer.ts, wal-checkpoint-worker.cts).

/** Raised by the event loop at each commit of the store. */
export const COMMITS = 0;
/** Set to 1 by the event loop: the thread finishes its checkpoint, closes its connection and ends. */
export const STOP = 1;
export const SLOTS = 2;
