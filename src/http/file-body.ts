// The body of a blob GET from a local file, written to the response without a stream between:
// large positional reads into buffers of a shared pool, each buffer written to the socket and
// given back once the socket has taken its bytes. The socket's pace is the backpressure: a
// download holds at most BUFFERS_PER_DOWNLOAD buffers, reading or waiting to be sent, and reads
// on only as the socket frees one. Nothing is allocated per chunk.
import type { FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { BufferPool } from './buffer-pool.js';

/** One read: large, so a MiB costs few system calls and few trips through the event loop. */
const CHUNK_BYTES = 1024 * 1024;
/** One buffer being read while the socket sends the others. */
const BUFFERS_PER_DOWNLOAD = 3;
/** Kept for reuse across downloads: a handful of concurrent downloads allocate nothing. */
const RETAINED_BUFFERS = 12;

const pool = new BufferPool(CHUNK_BYTES, RETAINED_BUFFERS);

/** The response closed before its body was written: the client went away. */
export class ResponseClosedError extends Error {
  readonly code = 'ERR_STREAM_PREMATURE_CLOSE';
  constructor() {
    super('the response closed before its body was written');
    this.name = 'ResponseClosedError';
  }
}

interface ReadResult {
  buffer: Buffer;
  length: number;
  error?: Error;
}

/**
 * Writes bytes `start` to `end` (inclusive) of the file to the response, whose headers the caller
 * has written. Resolves once every byte is handed to the socket (the caller then ends the
 * response); rejects when a read fails, the file is shorter than the range, or the response
 * closes first. The caller closes the file: its close waits for reads still in flight.
 */
export async function writeFileBody(response: ServerResponse, file: FileHandle, start: number, end: number): Promise<void> {
  const reads: Promise<ReadResult>[] = [];
  let next = start;
  let withSocket = 0;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const waiting = wake;
    wake = undefined;
    waiting?.();
  };
  const onClose = (): void => {
    failure ??= new ResponseClosedError();
    notify();
  };
  response.once('close', onClose);

  const readMore = (): void => {
    while (next <= end && reads.length + withSocket < BUFFERS_PER_DOWNLOAD) {
      const length = Math.min(CHUNK_BYTES, end - next + 1);
      const position = next;
      const buffer = pool.take();
      next += length;
      reads.push(
        file.read(buffer, 0, length, position).then(
          ({ bytesRead }) =>
            bytesRead === length ? { buffer, length } : { buffer, length, error: new Error(`short read at ${position}: ${bytesRead} of ${length} bytes`) },
          (error: Error) => ({ buffer, length, error }),
        ),
      );
    }
  };

  try {
    for (;;) {
      readMore();
      const head = reads.shift();
      if (!head) {
        if (next > end) return;
        // Every buffer is with the socket: wait until it frees one.
        await new Promise<void>((resolve) => (wake = resolve));
        if (failure) throw failure;
        continue;
      }
      const { buffer, length, error } = await head;
      if (error || failure) {
        pool.give(buffer);
        throw error ?? failure;
      }
      withSocket++;
      response.write(length === buffer.length ? buffer : buffer.subarray(0, length), (err) => {
        // The socket has taken the bytes (or failed): the buffer is free again.
        withSocket--;
        pool.give(buffer);
        if (err) failure ??= err;
        notify();
      });
    }
  } finally {
    response.off('close', onClose);
    // Reads still in flight after a failure give their buffers back when they settle.
    for (const read of reads) void read.then(({ buffer }) => pool.give(buffer));
  }
}
