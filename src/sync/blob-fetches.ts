// Blobs brought in from upstream, through the same command as a monolithic push with ?digest=
// (Registry.pushBlobInto): an upload session of the fetch's own receives the upstream's bytes as
// they arrive, then the commit verifies the digest in the worker pool, places the bytes durably and
// appends BlobPushed (identity `sync`, with the upstream as its source): the append is the commit
// point, so a failed or interrupted fetch leaves nothing visible (its session is discarded, or
// expires after a crash). As the digest is known before the body, on S3 the bytes go straight to
// the blob's key, stored there only once verified: no session key, no copy.
//
// One fetch per repository and digest at a time: a second caller (a client's blob GET, the image
// copy of the same image) joins it. A joined fetch can be read while it runs (streaming
// pull-through): a reader gets the bytes already on disk, then the ones still in memory on their
// way to it, and waits for more. The bytes are hashed as they arrive, and the last byte is held
// back until that hash matches the digest, so a client never receives a whole body that is wrong:
// a fetch that fails cuts its readers short. (The commit verifies the file again in the pool.)
import { createHash, type Hash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import type { Logger } from 'pino';
import { SYNC_IDENTITY } from '../events/types.js';
import { parseDigest, type ParsedDigest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import type { RegistryStateQueries } from '../projections/registry-state.js';
import type { Registry } from '../registry/registry.js';
import type { UpstreamClient } from './upstream-client.js';

/** Where a blob comes from: an upstream and the repository there (relative to the URL's path). */
export interface BlobOrigin {
  client: UpstreamClient;
  repo: string;
}

export interface BlobFetchObserver {
  /** Bytes received from the upstream named `upstream`. */
  bytes(upstream: string, count: number): void;
}

/** How far behind the bytes received the file may be: the writer gathers ~1 MiB per write. */
const MEMORY_WINDOW_BYTES = 4 * 1024 * 1024;
const READ_CHUNK_BYTES = 256 * 1024;
/** A reader waiting for bytes looks again after this long even without news. */
const READER_POLL_MS = 50;

export class BlobFetches {
  private readonly running = new Map<string, Promise<BlobFetch>>();

  constructor(
    private readonly registry: Registry,
    private readonly queries: RegistryStateQueries,
    private readonly logger: Logger,
    private readonly observer?: BlobFetchObserver,
  ) {}

  /** Fetches running. */
  get size(): number {
    return this.running.size;
  }

  /**
   * Starts the fetch of `digest` into `repo`, or joins the one running. Resolves once the upstream
   * has answered (the size is known), with undefined when the repository holds the blob already;
   * rejects with BLOB_UNKNOWN when the upstream does not have it, and with TOOMANYREQUESTS when
   * `limit` fetches run already (joining one is always possible).
   */
  fetch(repo: string, digest: string, origin: BlobOrigin, options: { signal?: AbortSignal; limit?: number } = {}): Promise<BlobFetch | undefined> {
    const { signal, limit } = options;
    const key = `${repo}\u0000${digest}`;
    const running = this.running.get(key);
    if (running) return running;
    if (this.queries.blobSize(repo, digest) !== undefined) return Promise.resolve(undefined);
    if (limit !== undefined && this.running.size >= limit) {
      return Promise.reject(new RegistryError('TOOMANYREQUESTS', `${limit} blobs are being fetched from upstream already; retry later`));
    }
    const started = this.start(repo, digest, origin, signal);
    this.running.set(key, started);
    const forget = (): void => {
      if (this.running.get(key) === started) this.running.delete(key);
    };
    started.then(
      (fetch) => fetch.committed.then(forget, forget),
      forget,
    );
    return started;
  }

  private async start(repo: string, digest: string, origin: BlobOrigin, signal: AbortSignal | undefined): Promise<BlobFetch> {
    const parsed = parseDigest(digest);
    const answer = await origin.client.blob(origin.repo, digest, signal ? { signal } : {});
    if (!answer) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${origin.repo} at ${origin.client.name}`);
    let id: string;
    let file: fs.FileHandle;
    try {
      // The fetch's own session, as a monolithic push's: never idle while the upstream is slow.
      id = await this.registry.startUpload(repo, { ownedByRequest: true });
    } catch (err) {
      answer.body.destroy();
      throw err;
    }
    try {
      file = await fs.open(this.registry.uploads.localFile(repo, id), 'r');
    } catch (err) {
      answer.body.destroy();
      await this.registry.cancelUpload(repo, id).catch(() => undefined);
      throw err;
    }
    const fetch = new BlobFetch(answer.size, parsed, file);
    const upstream = origin.client.name;
    const counted = new Transform({
      transform: (chunk: Buffer, _encoding, done) => {
        fetch.received(chunk);
        this.observer?.bytes(upstream, chunk.length);
        done(null, chunk);
      },
      // Before the body's end reaches the push: a short or wrong body fails it with nothing stored.
      flush: (done) => {
        try {
          fetch.ended();
          done();
        } catch (err) {
          done(err as Error);
        }
      },
    });
    answer.body.on('error', (err) => counted.destroy(err));
    const context = { identity: SYNC_IDENTITY, source: { url: answer.url, repo: origin.repo, digest } };
    fetch.run(async () => {
      try {
        // The digest is known before the body: a push with ?digest=, which on S3 writes straight
        // to the blob's key (no session key, no copy) and stores nothing there unless verified.
        await this.registry.pushBlobInto(repo, id, parsed, answer.body.pipe(counted), context, answer.size);
      } catch (err) {
        answer.body.destroy();
        this.logger.warn({ repo, digest, upstream, err }, 'failed to sync blob');
        throw err;
      }
    });
    return fetch;
  }
}

/** One blob on its way in: its committed promise, and readers that follow it. */
export class BlobFetch {
  /** Resolves once BlobPushed is appended; rejects when the fetch fails. */
  readonly committed: Promise<void>;
  private settle!: { resolve: () => void; reject: (err: unknown) => void };
  private readonly changes = new EventEmitter();
  private failure: unknown;
  /** The bytes received hash to the digest: readers may have the last byte. */
  private verified = false;
  private readonly hash: Hash;
  private receivedBytes = 0;
  /** Recent chunks, which may not be on disk yet: [memoryStart, receivedBytes). */
  private memory: Buffer[] = [];
  private memoryStart = 0;
  /** Holders of the file handle: the fetch itself until it settles, and each reader. */
  private holders = 1;

  constructor(
    /** Content-Length of the upstream's answer; undefined when it sent none. */
    readonly size: number | undefined,
    private readonly digest: ParsedDigest,
    private readonly file: fs.FileHandle,
  ) {
    this.hash = createHash(digest.algorithm);
    this.changes.setMaxListeners(0);
    this.committed = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    // A failure nobody reads is still logged by the fetcher; keep it from being an unhandled rejection.
    this.committed.catch(() => undefined);
  }

  run(work: () => Promise<void>): void {
    work().then(
      () => {
        this.settle.resolve();
        this.finish();
      },
      (err: unknown) => {
        this.failure = err;
        this.settle.reject(err);
        this.finish();
      },
    );
  }

  received(chunk: Buffer): void {
    this.hash.update(chunk);
    this.memory.push(chunk);
    this.receivedBytes += chunk.length;
    while (this.memory.length > 1 && this.receivedBytes - this.memoryStart - (this.memory[0]?.length ?? 0) >= MEMORY_WINDOW_BYTES) {
      this.memoryStart += this.memory.shift()?.length ?? 0;
    }
    this.changes.emit('change');
  }

  /**
   * The upstream's body ended: it must have the length the upstream declared and hash to the
   * digest (else DIGEST_INVALID), before the push takes its end and before any reader gets the last
   * byte. The memory window stays until the fetch settles: the last bytes may not be on disk yet.
   */
  ended(): void {
    if (this.size !== undefined && this.receivedBytes !== this.size) {
      throw new Error(`upstream sent ${this.receivedBytes} bytes of ${this.size}`);
    }
    const actual = this.hash.digest('hex');
    if (actual !== this.digest.hex) {
      throw new RegistryError('DIGEST_INVALID', `upstream content has digest ${this.digest.algorithm}:${actual}, not ${this.digest.value}`);
    }
    this.verified = true;
    this.changes.emit('change');
  }

  /**
   * The blob's bytes from `start` to `end` (inclusive) as they arrive. The last byte of the blob
   * comes only once the digest is verified; if the fetch fails, the stream errors.
   */
  reader(range?: { start: number; end: number }): Readable {
    const size = this.size;
    if (size === undefined) throw new Error('a blob of unknown size cannot be read while it is fetched');
    this.holders++;
    return Readable.from(this.read(range?.start ?? 0, range?.end ?? size - 1, size), { objectMode: false });
  }

  private async *read(start: number, end: number, size: number): AsyncGenerator<Buffer> {
    try {
      let position = start;
      while (position <= end) {
        if (this.failure !== undefined) throw this.failure;
        const limit = this.verified ? end : Math.min(end, size - 2);
        const chunk = position > limit ? undefined : await this.bytesAt(position, Math.min(READ_CHUNK_BYTES, limit - position + 1));
        if (chunk === undefined || chunk.length === 0) {
          await this.change();
          continue;
        }
        position += chunk.length;
        yield chunk;
      }
      // An empty blob (or range) has no last byte to hold back: it ends once verified.
      while (!this.verified) {
        if (this.failure !== undefined) throw this.failure;
        await this.change();
      }
    } finally {
      this.release();
    }
  }

  /** Bytes at `position`: from the file when they are there, else from the memory window. */
  private async bytesAt(position: number, length: number): Promise<Buffer | undefined> {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await this.file.read(buffer, 0, length, position);
    if (bytesRead > 0) return buffer.subarray(0, bytesRead);
    if (position < this.memoryStart || position >= this.receivedBytes) return undefined;
    let offset = this.memoryStart;
    for (const chunk of this.memory) {
      if (position < offset + chunk.length) return chunk.subarray(position - offset, Math.min(chunk.length, position - offset + length));
      offset += chunk.length;
    }
    return undefined;
  }

  private change(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.changes.off('change', done);
        resolve();
      };
      const timer = setTimeout(done, READER_POLL_MS);
      this.changes.once('change', done);
    });
  }

  private finish(): void {
    this.memory = [];
    this.changes.emit('change');
    this.release();
  }

  private release(): void {
    this.holders--;
    if (this.holders === 0) void this.file.close().catch(() => undefined);
  }
}
