// A blob's bytes streamed to its key as an upload session's file fills, with the last byte held
// back: the store keeps nothing until that byte arrives, which is sent only once the digest is
// verified. A single request, so an object store completes it without re-reading parts (s3rver's
// multipart completion rewrites the whole object; S3's does not, but takes one more request).
// Bytes are read back from the session's file, from the page cache, in batches.
import * as fs from 'node:fs/promises';
import type { StreamedWrite } from '../storage/driver.js';

/** Bytes read back and sent at once while the body arrives. */
const BATCH = 4 * 1024 * 1024;

export class HeldBackWrite {
  /** Bytes of the file sent so far. */
  private sent = 0;
  private failure: unknown;

  constructor(
    private readonly write: StreamedWrite,
    private readonly file: string,
    /** The declared length of the blob: the last of these bytes is held back. */
    readonly length: number,
  ) {}

  /** Whether the write failed: the commit then uploads the file whole. */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /**
   * The file now holds `size` bytes: sends those not sent yet, in batches, all but the last byte of
   * the blob. Resolves when the store can take more; a failure is kept for the commit, not thrown.
   */
  async written(size: number): Promise<void> {
    const until = Math.min(size, this.length - 1);
    if (this.failed || until - this.sent < BATCH) return;
    try {
      await this.send(until);
    } catch (err) {
      this.fail(err);
    }
  }

  /** With the file's `size` bytes verified: sends the rest, the last byte last; resolves once stored. */
  async finish(size: number): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (size !== this.length) throw new Error(`the upload holds ${size} bytes, not the ${this.length} its request declared`);
    await this.send(size - 1);
    await this.write.end(await this.read(size - 1, size));
  }

  /** Stops the write; the store keeps nothing. */
  abort(): void {
    this.fail(new Error('the streamed write was aborted'));
  }

  private fail(err: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    this.write.abort();
  }

  private async send(until: number): Promise<void> {
    while (this.sent < until) {
      const end = Math.min(until, this.sent + BATCH);
      const bytes = await this.read(this.sent, end);
      await this.write.write(bytes);
      this.sent = end;
    }
  }

  private async read(start: number, end: number): Promise<Buffer> {
    const bytes = Buffer.allocUnsafe(end - start);
    const handle = await fs.open(this.file, 'r');
    try {
      let filled = 0;
      while (filled < bytes.length) {
        const { bytesRead } = await handle.read(bytes, filled, bytes.length - filled, start + filled);
        if (bytesRead === 0) throw new Error(`the upload file ${this.file} ends before byte ${start + filled}`);
        filled += bytesRead;
      }
    } finally {
      await handle.close();
    }
    return bytes;
  }
}
