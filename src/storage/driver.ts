// The one storage-driver interface. Drivers are small and path-keyed: every path is relative to
// the driver's root, uses "/" separators, and is built only by layout.ts. Uploads, the image
// layout and dedupe live above the driver, once, for every driver.
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';

export interface FileInfo {
  size: number;
  modTime: Date;
  isDirectory: boolean;
  /**
   * Identity of the stored bytes where the driver has one (device and inode on a filesystem):
   * two paths with the same fileId share one copy, as dedupe's hard links do.
   */
  fileId?: string;
}

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

export class PathNotFoundError extends Error {
  constructor(readonly path: string) {
    super(`path not found: ${path}`);
    this.name = 'PathNotFoundError';
  }
}

export class SizeMismatchError extends Error {
  constructor(
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`expected ${expected} bytes, received ${actual === expected + 1 ? 'more' : actual}`);
    this.name = 'SizeMismatchError';
  }
}

/** One stored part of a parted write: its number (from 1) and the tag the store answered for it. */
export interface StoredPart {
  number: number;
  tag: string;
}

/**
 * A file written in numbered parts that arrive over time, made visible whole and at once by
 * `complete`: an object store's multipart upload. Part `n` holds bytes [(n-1)·partSize, n·partSize)
 * of the file; every part but the last holds exactly `partSize` bytes. Storing a part number again
 * replaces it. The store keeps a write's parts until it completes or is aborted.
 */
export interface PartedWrites {
  readonly partSize: number;
  /** Starts a parted write of `path`, returning its id. */
  begin(path: string): Promise<string>;
  /** Stores one part, returning its tag. */
  putPart(path: string, writeId: string, part: number, body: Buffer): Promise<string>;
  /** Makes `path` the given parts in order, atomically, and ends the write. */
  complete(path: string, writeId: string, parts: readonly StoredPart[]): Promise<void>;
  /** Ends the write and drops its parts; a write the store no longer knows is not an error. */
  abort(path: string, writeId: string): Promise<void>;
}

/**
 * One file of a known length written as its bytes arrive, stored whole and at once when its last
 * byte is written, and not at all when aborted before: an object store's single PutObject with a
 * streamed body. Holding the last byte back keeps the write undecided until the writer knows the
 * bytes are right.
 */
export interface StreamedWrite {
  /** Sends bytes; resolves when the write can take more. Rejects once the write has failed. */
  write(bytes: Buffer): Promise<void>;
  /** Sends the last bytes (the total must be the declared length) and resolves once stored. */
  end(last: Buffer): Promise<void>;
  /** Stops the write with nothing stored. */
  abort(): void;
}

export interface PutContentOptions {
  /**
   * No event names the path yet, and whatever a crash leaves there is replaced before one does: a
   * content address whose bytes are about to be recorded (RepositoryFiles.ownPathNamed), or the
   * layout of a repository the log does not know. A filesystem then renames the file into place
   * first and syncs its bytes and its directory side by side, one wait for the disk instead of two
   * in a row; a crash before both finish may leave a short file there, never under a name that
   * counts.
   */
  unnamed?: boolean;
}

export interface StorageDriver {
  readonly name: string;
  /**
   * Writes in parts (object stores): an upload can then send its bytes as they arrive, instead of
   * all of them once the upload is finished (see putFile).
   */
  readonly partedWrites?: PartedWrites;
  /** The largest file streamedWrite takes (an object store's single-request limit). */
  readonly streamedWriteLimit?: number;
  /** Starts writing `length` bytes to `path` as they arrive (object stores; see StreamedWrite). */
  streamedWrite?(path: string, length: number): StreamedWrite;
  /** Size and kind of the entry at path, or undefined when nothing is there. */
  stat(path: string): Promise<FileInfo | undefined>;
  /** The whole content of a small file. Throws PathNotFoundError. */
  getContent(path: string): Promise<Buffer>;
  /** Writes a small file atomically and durably: readers see the old or the new content, never a mix. */
  putContent(path: string, content: Buffer | string, options?: PutContentOptions): Promise<void>;
  /** A stream of the file, or of one inclusive byte range of it. Throws PathNotFoundError. */
  reader(path: string, range?: ByteRange): Promise<Readable>;
  /**
   * The file opened for positional reads, where the driver keeps it on a local filesystem: a
   * download then reads into buffers of its own rather than a stream's fresh ones. The caller
   * closes it. Throws PathNotFoundError.
   */
  openFile?(path: string): Promise<FileHandle>;
  /**
   * Appends the stream to the file at path (creating it), returning the bytes written. With
   * `exactLength` a stream longer or shorter than that fails with SizeMismatchError. On any error
   * the file is cut back to its length before the call, so a failed append leaves nothing behind.
   */
  append(path: string, source: Readable, exactLength?: number): Promise<number>;
  /** Flushes a file to stable storage. */
  sync(path: string): Promise<void>;
  /** Moves a file into place atomically and durably, replacing what is there. */
  move(from: string, to: string): Promise<void>;
  /**
   * Puts the bytes of a finished local file (an upload staged on local disk) at `to`, durably. The
   * local file stays as it is: its owner removes it once the blob is committed, so a commit that
   * fails half-way still has it. A filesystem driver gives the bytes a second name (a hard link);
   * an object store uploads them in parts. With `synced`, the caller has flushed the local file to
   * stable storage since its last write: it is not synced again.
   */
  putFile(localFile: string, to: string, options?: { synced?: boolean }): Promise<void>;
  /** Makes `to` hold the same bytes as `from`: a hard link where the driver can, else a copy. */
  link(from: string, to: string): Promise<void>;
  /** Removes a file or a whole directory tree; removing nothing is not an error. */
  delete(path: string): Promise<void>;
  /** Names of the entries directly inside a directory; empty when it does not exist. */
  list(path: string): Promise<string[]>;
  /** Releases what the driver holds open (an object store client's sockets), at shutdown. */
  destroy?(): void;
  /** A local filesystem path for the worker pool to read, when the driver has one. */
  localPath(path: string): string | undefined;
}
