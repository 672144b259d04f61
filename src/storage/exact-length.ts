// The body of an append, held to its declared length, for every driver. A body a little longer
// than declared is read to its end without being passed on, so the client still gets an answer
// (not a connection reset); one that goes on past OVERLONG_BODY_DRAIN_BYTES is not read further
// (the HTTP layer closes the connection after the answer). Longer or shorter, the append then
// fails with SizeMismatchError. A body with no declared length is legitimate and not bounded here.
import { Readable } from 'node:stream';
import { SizeMismatchError } from './driver.js';

/** The most bytes read and dropped past a body's declared length before reading stops. */
export const OVERLONG_BODY_DRAIN_BYTES = 1024 * 1024;

/** The source's chunks while they fit in `exactLength` (all of them when it is undefined). */
export async function* withinLength(source: AsyncIterable<unknown>, exactLength: number | undefined): AsyncGenerator<Buffer> {
  let passed = 0;
  let dropped = 0;
  // Leaving the loop early must not destroy a request body: that would reset the connection
  // before the answer is written.
  const chunks = source instanceof Readable ? source.iterator({ destroyOnReturn: false }) : source;
  for await (const chunk of chunks) {
    const buffer = chunk as Buffer;
    if (exactLength !== undefined && (dropped > 0 || passed + buffer.length > exactLength)) {
      dropped += buffer.length;
      if (dropped > OVERLONG_BODY_DRAIN_BYTES) break;
      continue;
    }
    passed += buffer.length;
    yield buffer;
  }
  if (dropped > 0) throw new SizeMismatchError(exactLength ?? 0, (exactLength ?? 0) + 1);
  if (exactLength !== undefined && passed !== exactLength) throw new SizeMismatchError(exactLength, passed);
}
