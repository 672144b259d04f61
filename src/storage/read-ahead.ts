// A file reader that keeps several reads in flight, so the next chunk is already in memory when
// the socket asks for it: one read at a time (fs.ReadStream) leaves the socket idle for a thread
// pool round trip per chunk.
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';

export function readAhead(handle: FileHandle, start: number, end: number, chunkBytes: number, depth: number): Readable {
  let next = start;
  let inFlight = 0;
  const pending: Promise<Buffer>[] = [];
  let closed = false;
  const issue = (): void => {
    while (inFlight < depth && next <= end) {
      const length = Math.min(chunkBytes, end - next + 1);
      const position = next;
      next += length;
      inFlight++;
      pending.push(
        handle.read(Buffer.allocUnsafe(length), 0, length, position).then(({ buffer, bytesRead }) => {
          if (bytesRead !== length) throw new Error(`short read at ${position}: ${bytesRead} of ${length} bytes`);
          return buffer;
        }),
      );
    }
  };
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await Promise.allSettled(pending);
    await handle.close();
  };
  return new Readable({
    highWaterMark: chunkBytes * depth,
    read() {
      issue();
      const head = pending.shift();
      if (!head) {
        this.push(null);
        return;
      }
      head.then(
        (buffer) => {
          inFlight--;
          issue();
          this.push(buffer);
        },
        (err: Error) => this.destroy(err),
      );
    },
    destroy(err, callback) {
      close().then(() => callback(err), () => callback(err));
    },
  });
}
