// The body of an append, held to its declared length, for every driver. A body longer than
// declared is read to its end without being passed on, so the client still gets an answer (not a
// connection reset); longer or shorter, the append then fails with SizeMismatchError.
import { SizeMismatchError } from './driver.js';

/** The source's chunks while they fit in `exactLength` (all of them when it is undefined). */
export async function* withinLength(source: AsyncIterable<unknown>, exactLength: number | undefined): AsyncGenerator<Buffer> {
  let passed = 0;
  let overflow = false;
  for await (const chunk of source) {
    const buffer = chunk as Buffer;
    if (overflow) continue;
    if (exactLength !== undefined && passed + buffer.length > exactLength) {
      overflow = true;
      continue;
    }
    passed += buffer.length;
    yield buffer;
  }
  if (overflow) throw new SizeMismatchError(exactLength ?? 0, (exactLength ?? 0) + 1);
  if (exactLength !== undefined && passed !== exactLength) throw new SizeMismatchError(exactLength, passed);
}
