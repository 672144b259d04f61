// writeInBatches (src/storage/body-batches.ts): an upload body taken as 'data' events and written
// in batches, one write at a time, with exact-length.ts's length rule.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { setImmediate as turn } from 'node:timers/promises';
import { writeInBatches } from '../../src/storage/body-batches.js';
import { SizeMismatchError } from '../../src/storage/driver.js';
import { OVERLONG_BODY_DRAIN_BYTES } from '../../src/storage/exact-length.js';

const KIB = 1024;

function chunks(count: number, size: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => Buffer.alloc(size, i % 256));
}

/** A write that records its batches and takes a couple of loop turns, like a file write. */
function recordingWrite(): { batches: Buffer[]; running: { now: number; most: number }; write: (buffers: Buffer[], bytes: number) => Promise<void> } {
  const batches: Buffer[] = [];
  const running = { now: 0, most: 0 };
  return {
    batches,
    running,
    write: async (buffers, bytes) => {
      running.now++;
      running.most = Math.max(running.most, running.now);
      const batch = Buffer.concat(buffers);
      assert.equal(batch.length, bytes);
      batches.push(batch);
      await turn();
      await turn();
      running.now--;
    },
  };
}

describe('writeInBatches', () => {
  it('writes every byte in order, in batches of the asked size, one write at a time', async () => {
    const body = chunks(40, 64 * KIB);
    const { batches, running, write } = recordingWrite();
    const passed = await writeInBatches(Readable.from(body), 40 * 64 * KIB, 256 * KIB, write);
    assert.equal(passed, 40 * 64 * KIB);
    assert.deepEqual(Buffer.concat(batches), Buffer.concat(body));
    assert.deepEqual(
      batches.map((b) => b.length),
      Array.from({ length: 10 }, () => 256 * KIB),
    );
    assert.equal(running.most, 1);
  });

  it('writes the last, smaller batch when the body ends', async () => {
    const { batches, write } = recordingWrite();
    assert.equal(await writeInBatches(Readable.from(chunks(5, 100 * KIB)), undefined, 256 * KIB, write), 500 * KIB);
    assert.deepEqual(
      batches.map((b) => b.length),
      [300 * KIB, 200 * KIB],
    );
  });

  it('pauses the source while a full batch waits for the write before it', async () => {
    const source = new PassThrough();
    let release: (() => void) | undefined;
    const writes: number[] = [];
    const done = writeInBatches(source, undefined, 64 * KIB, async (_buffers, bytes) => {
      writes.push(bytes);
      if (writes.length === 1) await new Promise<void>((resolve) => (release = resolve));
    });
    source.write(Buffer.alloc(64 * KIB));
    source.write(Buffer.alloc(64 * KIB));
    await turn();
    assert.deepEqual(writes, [64 * KIB]);
    assert.equal(source.isPaused(), true);
    release?.();
    await turn();
    assert.deepEqual(writes, [64 * KIB, 64 * KIB]);
    assert.equal(source.isPaused(), false);
    source.end();
    assert.equal(await done, 128 * KIB);
  });

  it('lets the event loop turn after each 64 KiB taken (one socket read), then reads on', async () => {
    const source = new PassThrough({ highWaterMark: 4 * 1024 * KIB });
    for (const chunk of chunks(16, 64 * KIB)) source.write(chunk);
    source.end();
    const pausedAtWrite: boolean[] = [];
    const passed = await writeInBatches(source, undefined, 256 * KIB, async () => {
      pausedAtWrite.push(source.isPaused());
    });
    assert.equal(passed, 16 * 64 * KIB);
    // Each batch filled within one turn of data events: the source waited for the next turn.
    assert.deepEqual(pausedAtWrite, [true, true, true, true]);
  });

  it('takes one 64 KiB chunk (one socket read) per turn of the event loop', async () => {
    const source = new PassThrough({ highWaterMark: 4 * 1024 * KIB });
    for (const chunk of chunks(12, 64 * KIB)) source.write(chunk);
    source.end();
    let taken = 0;
    source.on('data', () => taken++);
    let settled = false;
    const done = writeInBatches(source, undefined, 1024 * KIB, async () => undefined).finally(() => (settled = true));
    const perTurn: number[] = [];
    while (!settled) {
      const before = taken;
      await turn();
      perTurn.push(taken - before);
    }
    assert.equal(await done, 12 * 64 * KIB);
    assert.equal(taken, 12);
    // Other connections get the loop between two reads of a large body, not after four.
    assert.ok(Math.max(...perTurn) <= 1, `chunks taken per turn: ${perTurn.join(' ')}`);
  });

  it('fails with SizeMismatchError for a body shorter or longer than declared', async () => {
    const noWrite = async (): Promise<void> => undefined;
    await assert.rejects(writeInBatches(Readable.from(chunks(3, KIB)), 4 * KIB, 64 * KIB, noWrite), (err: unknown) => {
      return err instanceof SizeMismatchError && err.expected === 4 * KIB && err.actual === 3 * KIB;
    });
    await assert.rejects(writeInBatches(Readable.from(chunks(5, KIB)), 4 * KIB, 64 * KIB, noWrite), SizeMismatchError);
  });

  it('stops reading a body that goes on far past its declared length, without destroying it', async () => {
    const source = new PassThrough();
    const done = writeInBatches(source, KIB, 64 * KIB, async () => undefined);
    source.write(Buffer.alloc(KIB));
    for (let sent = 0; sent <= OVERLONG_BODY_DRAIN_BYTES; sent += 64 * KIB) source.write(Buffer.alloc(64 * KIB));
    await assert.rejects(done, SizeMismatchError);
    assert.equal(source.destroyed, false);
    assert.equal(source.listenerCount('data'), 0);
  });

  it('fails with the source error, only once the running write is done', async () => {
    const source = new PassThrough();
    let release: (() => void) | undefined;
    let writeDone = false;
    const done = writeInBatches(source, undefined, 64 * KIB, async () => {
      await new Promise<void>((resolve) => (release = resolve));
      writeDone = true;
    });
    source.write(Buffer.alloc(64 * KIB));
    await turn();
    source.destroy(new Error('client went away'));
    let settled = false;
    done.catch(() => (settled = true));
    await turn();
    await turn();
    assert.equal(settled, false);
    release?.();
    await assert.rejects(done, /client went away/);
    assert.equal(writeDone, true);
  });

  it('fails with the write error and stops reading', async () => {
    const source = new PassThrough();
    const done = writeInBatches(source, undefined, 64 * KIB, async () => {
      throw new Error('disk full');
    });
    source.write(Buffer.alloc(64 * KIB));
    await assert.rejects(done, /disk full/);
    assert.equal(source.listenerCount('data'), 0);
  });

  it('fails at once for a source destroyed before it is read', async () => {
    const source = new PassThrough();
    source.destroy();
    await assert.rejects(
      writeInBatches(source, undefined, 64 * KIB, async () => undefined),
      (err: NodeJS.ErrnoException) => err.code === 'ERR_STREAM_PREMATURE_CLOSE',
    );
  });
});
