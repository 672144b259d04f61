// The body of an append, held to its declared length, for every driver. A body a little longer
// than declared is read to its end without being passed on, so the client still gets an answer
// (not a connection reset); one that goes on past OVERLONG_BODY_DRAIN_BYTES is not read further
// (the HTTP layer closes the connection after the answer). Longer or shorter, the append then
// fails with SizeMismatchError. A body with no declared length is legitimate and not bounded here.
import { Readable } from 'node:stream';
import { SizeMismatchError } from './driver.js';

/** The most bytes read and dropped past a body's declared length before reading stops. */
export const OVERLONG_BODY_DRAIN_BYTES = 1024 * 1024;

/** What to do with the next chunk of a body: pass it on, read and drop it, or read no further. */
export type ChunkVerdict = 'pass' | 'drop' | 'stop';

/** The length rule above, chunk by chunk, for readers that do not iterate (body-batches.ts). */
export class ExactLength {
  private passed = 0;
  private dropped = 0;

  constructor(private readonly exactLength: number | undefined) {}

  take(chunkLength: number): ChunkVerdict {
    if (this.exactLength !== undefined && (this.dropped > 0 || this.passed + chunkLength > this.exactLength)) {
      this.dropped += chunkLength;
      return this.dropped > OVERLONG_BODY_DRAIN_BYTES ? 'stop' : 'drop';
    }
    this.passed += chunkLength;
    return 'pass';
  }

  /** Throws SizeMismatchError unless the body had its declared length; no more chunks follow. */
  check(): void {
    const expected = this.exactLength ?? 0;
    if (this.dropped > 0) throw new SizeMismatchError(expected, expected + 1);
    if (this.exactLength !== undefined && this.passed !== this.exactLength) throw new SizeMismatchError(this.exactLength, this.passed);
  }
}

/** The source's chunks while they fit in `exactLength` (all of them when it is undefined). */
export async function* withinLength(source: AsyncIterable<unknown>, exactLength: number | undefined): AsyncGenerator<Buffer> {
  const length = new ExactLength(exactLength);
  // Leaving the loop early must not destroy a request body: that would reset the connection
  // before the answer is written.
  const chunks = source instanceof Readable ? source.iterator({ destroyOnReturn: false }) : source;
  for await (const chunk of chunks) {
    const buffer = chunk as Buffer;
    const verdict = length.take(buffer.length);
    if (verdict === 'stop') break;
    if (verdict === 'pass') yield buffer;
  }
  length.check();
}
