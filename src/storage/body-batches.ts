// An upload body read in batches, for a driver that writes it to a file. The body's chunks (one
// per socket read, ~64 KiB) are taken as 'data' events, straight from the HTTP parser's callback,
// and gathered into batches that `write` takes one at a time while the next one fills. An async
// iterator costs a chain of promises and ticks per chunk on the event loop, several thousand times
// a second during a large push; here a chunk costs one function call. The source is paused (its
// socket no longer read) while a full batch waits for the write before it, and never destroyed:
// the HTTP layer still answers on the connection. The length rule is exact-length.ts's.
import { finished, type Readable } from 'node:stream';
import { ExactLength } from './exact-length.js';

/**
 * Bytes taken from the source before the event loop gets a turn: one socket read (libuv reads 64
 * KiB at a time). libuv reads a readable socket up to 32 times (2 MiB) in one go, and a client
 * that got ahead leaves that much queued: without a turn, other connections wait for all of it.
 * With a turn per read, requests served next to a large push wait behind one read of its body,
 * not four: under CPU contention, manifest GETs during a 1 GiB push had a lower p99 than with
 * 256 KiB in 8 of 10 alternating runs, at the same event-loop CPU per MiB pushed.
 */
const TURN_BYTES = 64 * 1024;

/**
 * Writes `source` to its end through `write`, in batches of about `batchBytes` (the last one
 * smaller), in order, one call at a time. Resolves with the bytes passed to `write` once the last
 * call is done; rejects with the source's error, `write`'s, or SizeMismatchError when the body does
 * not have `exactLength` bytes, and then only once no call of `write` is still running.
 */
export function writeInBatches(
  source: Readable,
  exactLength: number | undefined,
  batchBytes: number,
  write: (buffers: Buffer[], bytes: number) => Promise<void>,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const length = new ExactLength(exactLength);
    let filling: Buffer[] = [];
    let fillingBytes = 0;
    let passed = 0;
    let writing = false;
    /** Paused: a full batch waits for the write before it. */
    let waitingForWrite = false;
    /** Paused: the event loop takes a turn. */
    let yielding = false;
    let sinceTurn = 0;
    /** The source has nothing more for us: it ended, or the length rule stopped reading it. */
    let sourceDone = false;
    let failure: { error: unknown } | undefined;
    let settled = false;

    const settle = (): void => {
      if (settled || writing) return;
      if (failure === undefined && !sourceDone) return;
      settled = true;
      if (failure !== undefined) {
        reject(failure.error);
        return;
      }
      try {
        length.check();
        resolve(passed);
      } catch (err) {
        reject(err);
      }
    };

    const stopReading = (): void => {
      source.off('data', onData);
      stopWatching();
      source.pause();
    };

    const fail = (error: unknown): void => {
      if (failure !== undefined || settled) return;
      failure = { error };
      stopReading();
      settle();
    };

    /** Hands the filled batch to `write` when none is running; resumes the source if it waited. */
    const writeNext = (): void => {
      if (writing) return;
      if (failure !== undefined || fillingBytes === 0 || (fillingBytes < batchBytes && !sourceDone)) {
        settle();
        return;
      }
      const buffers = filling;
      const bytes = fillingBytes;
      filling = [];
      fillingBytes = 0;
      writing = true;
      waitingForWrite = false;
      if (!sourceDone && !yielding) source.resume();
      write(buffers, bytes).then(
        () => {
          writing = false;
          writeNext();
        },
        (err: unknown) => {
          writing = false;
          fail(err);
        },
      );
    };

    const takeTurn = (): void => {
      yielding = false;
      if (!waitingForWrite && !sourceDone && failure === undefined) source.resume();
    };

    const onData = (chunk: Buffer): void => {
      sinceTurn += chunk.length;
      if (sinceTurn >= TURN_BYTES) {
        sinceTurn = 0;
        yielding = true;
        source.pause();
        setImmediate(takeTurn);
      }
      const verdict = length.take(chunk.length);
      if (verdict === 'stop') {
        sourceDone = true;
        stopReading();
        writeNext();
        return;
      }
      if (verdict === 'drop') return;
      passed += chunk.length;
      filling.push(chunk);
      fillingBytes += chunk.length;
      if (fillingBytes < batchBytes) return;
      // The batch is full: it goes now, or the source waits for the write before it.
      if (!writing) {
        writeNext();
        return;
      }
      waitingForWrite = true;
      source.pause();
    };

    // Also settles at once for a source that was destroyed or errored before we came.
    const stopWatching = finished(source, { writable: false }, (err) => {
      if (err) {
        fail(err);
        return;
      }
      if (sourceDone) return;
      sourceDone = true;
      source.off('data', onData);
      stopWatching();
      writeNext();
    });
    source.on('data', onData);
  });
}
