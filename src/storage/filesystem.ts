// The filesystem driver: files under one root directory, made durable with fsync and atomic
// renames so that a `kill -9` (or power loss) never leaves a half-written file in place.
import * as fs from 'node:fs/promises';
import { closeSync, openSync, renameSync, writeFileSync, writev, writevSync } from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { writeInBatches } from './body-batches.js';
import { createTogether, ensureDirectory, fsyncDescriptor, inDirectory, settleAll, syncDirectory } from './directories.js';
import { readAhead } from './read-ahead.js';
import { TemporaryFileReserve, type ReservedFile } from './temporary-reserve.js';
import { bodyBytesReceived } from './young-garbage.js';
import { PathNotFoundError, type ByteRange, type FileInfo, type PutContentOptions, type StorageDriver } from './driver.js';

const WRITE_BUFFER_BYTES = 1024 * 1024;
/** Reads in smaller pieces: a slow client then holds little in the socket queue. */
const READ_BUFFER_BYTES = 512 * 1024;
/** Reads in flight per download. */
const READ_AHEAD_DEPTH = 4;

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/**
 * A new file in the driver's temporary directory, kept open while a request writes it whole
 * (writeTemporary): then synced and placed into the layout (syncTemporary, placeTemporary), or
 * discarded (discardTemporary, or discardTemporaryInBackground once its request succeeded). What
 * a crash leaves of one goes with the temporary directory at the next start.
 */
export interface TemporaryFile {
  /** Relative to the root. */
  readonly path: string;
  /** On local disk, for the hashing pool. */
  readonly localPath: string;
  /**
   * Open for writing until placed or discarded: a descriptor opened and closed on the event loop
   * (see SMALL_CONTENT_BYTES), closed once its syncs have returned, as its number may be reused.
   */
  readonly fd: number;
}

/** Hears of a file whose unlink in the background failed (its absolute path): the next start clears it. */
export type RemovalFailure = (file: string, err: unknown) => void;

/** Called with each range once it is in the file (absolute offsets, and the bytes, to read before it returns). */
export type AfterWrite = (from: number, to: number, bytes: readonly Buffer[]) => Promise<void>;

export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';
  private readonly tempDirectory: string;
  /**
   * The temporary directory, made durable once: nothing but clearTemporaryFiles removes it, so
   * later files skip the mkdir(2) (and its EEXIST error) that ensureDirectory would cost each.
   */
  private tempDirectoryReady: Promise<void> | undefined;
  /** Temporary files renamed into place: nothing left to remove of them. */
  private readonly placed = new WeakSet<TemporaryFile>();
  /** Temporary files' syncs in flight: their descriptors stay open until these return. */
  private readonly syncsOf = new WeakMap<TemporaryFile, Set<Promise<void>>>();
  /** Temporary files whose descriptors are closed (or being closed). */
  private readonly closed = new WeakSet<TemporaryFile>();
  /** New temporary files made ahead by the pool (temporary-reserve.ts), from the first one taken. */
  private reserve = new TemporaryFileReserve(() => this.tempFile());
  /** Unlinks started in the background (removeInBackground) and not yet ended; none of them rejects. */
  private readonly removals = new Set<Promise<void>>();

  /**
   * `tempDirectory` (relative to the root, on the same filesystem so renames stay atomic) holds
   * files being written; keeping them out of the layout means a crash never leaves a name in
   * blobs/ that is not a digest.
   */
  constructor(
    readonly root: string,
    tempDirectory: string,
  ) {
    this.tempDirectory = this.full(tempDirectory);
  }

  /** A new name in the temporary directory (made durably first), for a file not made yet. */
  private async tempFile(): Promise<string> {
    this.tempDirectoryReady ??= ensureDirectory(this.tempDirectory).catch((err: unknown) => {
      this.tempDirectoryReady = undefined;
      throw err;
    });
    await this.tempDirectoryReady;
    return path.join(this.tempDirectory, `${randomUUID()}.tmp`);
  }

  /** A new temporary file, open for writing: one from the reserve, else one opened here. */
  private async openTemporary(): Promise<ReservedFile> {
    const reserved = this.reserve.take();
    if (reserved !== undefined) return reserved;
    const localPath = await this.tempFile();
    return { localPath, fd: openSync(localPath, 'wx') };
  }

  /** Removes what a crash left in the temporary directory; only safe before any write starts. */
  async clearTemporaryFiles(): Promise<void> {
    // None runs before the first write; waited for all the same, so that none races the removal.
    await this.removalsSettled();
    this.tempDirectoryReady = undefined;
    this.reserve.destroy();
    this.reserve = new TemporaryFileReserve(() => this.tempFile());
    await fs.rm(this.tempDirectory, { recursive: true, force: true });
  }

  /** Temporary files made ahead, or being made, and not taken yet (absolute paths): no request's, and empty. */
  reservedFiles(): string[] {
    return this.reserve.files();
  }

  /** Closes and removes the temporary files made ahead. */
  destroy(): void {
    this.reserve.destroy();
  }

  private full(relative: string): string {
    const resolved = path.resolve(this.root, relative);
    // Paths come from layout.ts only, but a traversal must never reach outside the root.
    if (resolved !== this.root && !resolved.startsWith(this.root + path.sep)) {
      throw new Error(`path escapes the storage root: ${relative}`);
    }
    return resolved;
  }

  localPath(relative: string): string {
    return this.full(relative);
  }

  async stat(relative: string): Promise<FileInfo | undefined> {
    try {
      const s = await fs.stat(this.full(relative));
      return { size: s.size, modTime: s.mtime, isDirectory: s.isDirectory(), fileId: `${s.dev}:${s.ino}` };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async getContent(relative: string): Promise<Buffer> {
    try {
      return await fs.readFile(this.full(relative));
    } catch (err) {
      if (isNotFound(err)) throw new PathNotFoundError(relative);
      throw err;
    }
  }

  async putContent(relative: string, content: Buffer | string, options: PutContentOptions = {}): Promise<void> {
    const target = this.full(relative);
    const file =
      Buffer.byteLength(content) <= SMALL_CONTENT_BYTES ? writeSmall(await this.openTemporary(), content) : await writeLarge(await this.tempFile(), content);
    const temp = file.localPath;
    if (options.unnamed === true) {
      try {
        await inDirectory(path.dirname(target), () => renameOnLoop(temp, target)).catch(async (err: unknown) => {
          await fs.unlink(temp).catch(() => undefined);
          throw err;
        });
        await syncPlaced(target, file.sync);
      } finally {
        await file.close();
      }
      return;
    }
    try {
      await file.sync();
    } finally {
      await file.close();
    }
    await this.renameDurably(temp, target);
  }

  /**
   * Replaces a small file atomically (a rename) without syncing it: for state a power cut may lose
   * anyway, as it loses the unsynced upload session the state is about. Readers see the old or the
   * new content; after a power cut, possibly an empty file.
   */
  async replaceContent(relative: string, content: Buffer | string): Promise<void> {
    const target = this.full(relative);
    const temp = await this.tempFile();
    await fs.writeFile(temp, content);
    await inDirectory(path.dirname(target), () => renameOnLoop(temp, target));
  }

  /**
   * Creates an empty file (its directory durably, if new), or fails if one is there, without
   * syncing it: for a file whose bytes are synced once, by whoever makes them durable (an upload
   * session: putFile at its commit).
   */
  async createEmpty(relative: string): Promise<void> {
    const file = this.full(relative);
    await inDirectory(path.dirname(file), async () => (await fs.open(file, 'wx')).close());
  }

  /** Makes the directory (and any missing parent) exist durably. */
  async makeDirectory(relative: string): Promise<void> {
    await ensureDirectory(this.full(relative));
  }

  /**
   * Makes directories and small files (written in place) that no event names yet exist durably,
   * and `absent` files gone, all with one wait for the disk (directories.ts createTogether): a new
   * repository's layout.
   */
  async createTogether(directories: readonly string[], files: readonly { path: string; content: Buffer | string }[], absent: readonly string[] = []): Promise<void> {
    await createTogether(
      directories.map((dir) => this.full(dir)),
      files.map((file) => ({ path: this.full(file.path), content: file.content })),
      absent.map((file) => this.full(file)),
    );
  }

  async openFile(relative: string): Promise<fs.FileHandle> {
    try {
      return await fs.open(this.full(relative), 'r');
    } catch (err) {
      if (isNotFound(err)) throw new PathNotFoundError(relative);
      throw err;
    }
  }

  async reader(relative: string, range?: ByteRange): Promise<Readable> {
    // Open first so a missing file is reported before any byte of the response is written.
    const handle = await this.openFile(relative);
    const end = range ? range.end : (await handle.stat()).size - 1;
    return readAhead(handle, range?.start ?? 0, end, READ_BUFFER_BYTES, READ_AHEAD_DEPTH);
  }

  /**
   * As the driver contract says, and: the next batch is read from the source while the last one is
   * written (one write in flight), and `afterWrite` hears of each range once it is in the file
   * (absolute offsets, and the bytes, to read before it returns), before the next write starts.
   * No fsync: the commit syncs the file once.
   */
  async append(relative: string, source: Readable, exactLength?: number, afterWrite?: AfterWrite): Promise<number> {
    const file = this.full(relative);
    const { handle, size: before } = await inDirectory(path.dirname(file), () => this.openOwnCopy(file, 'a'));
    try {
      return await writeBody(handle.fd, before, source, exactLength, afterWrite);
    } catch (err) {
      await handle.truncate(before).catch(() => undefined);
      throw err;
    } finally {
      await handle.close();
    }
  }

  /**
   * Appends to an existing file as `append` does, with the file's size known before its first
   * byte: `check(size)` runs once the file is open (one open and one fstat, no stat by path
   * first) and may refuse the write by throwing. A missing file is PathNotFoundError.
   */
  async appendChecked(
    relative: string,
    source: Readable,
    check: (size: number) => { exactLength?: number; afterWrite?: AfterWrite },
  ): Promise<{ before: number; written: number }> {
    const file = this.full(relative);
    let opened: { handle: fs.FileHandle; size: number };
    try {
      // Flag 'a' without O_CREAT: a session that is gone must not come back as an empty file.
      opened = await this.openOwnCopy(file, fs.constants.O_WRONLY | fs.constants.O_APPEND);
    } catch (err) {
      if (isNotFound(err)) throw new PathNotFoundError(relative);
      throw err;
    }
    const { handle, size: before } = opened;
    let refused = true;
    try {
      const { exactLength, afterWrite } = check(before);
      refused = false;
      return { before, written: await writeBody(handle.fd, before, source, exactLength, afterWrite) };
    } catch (err) {
      // Refused before its first byte: nothing to cut back.
      if (refused) throw err;
      await handle.truncate(before).catch(() => undefined);
      throw err;
    } finally {
      await handle.close();
    }
  }

  /**
   * Writes the stream to a new temporary file, as `append` would (same batches and `afterWrite`),
   * and leaves it open; on any error the file is gone. `onCreated` hears of its path before the
   * first byte (the hashing pool reads it).
   */
  async writeTemporary(
    source: Readable,
    exactLength: number | undefined,
    onCreated: (temp: TemporaryFile) => AfterWrite | undefined,
  ): Promise<{ temp: TemporaryFile; size: number }> {
    const { localPath, fd } = await this.openTemporary();
    const temp: TemporaryFile = { path: path.relative(this.root, localPath), localPath, fd };
    try {
      return { temp, size: await writeBody(temp.fd, 0, source, exactLength, onCreated(temp)) };
    } catch (err) {
      await this.discardTemporary(temp);
      throw err;
    }
  }

  /** fsync(2) of a temporary file, through its open descriptor. */
  syncTemporary(temp: TemporaryFile): Promise<void> {
    if (this.closed.has(temp)) return Promise.reject(new Error(`temporary file ${temp.path} is closed`));
    let syncs = this.syncsOf.get(temp);
    if (!syncs) this.syncsOf.set(temp, (syncs = new Set()));
    const sync = fsyncDescriptor(temp.fd);
    const running = syncs;
    running.add(sync);
    void sync.catch(() => undefined).finally(() => running.delete(sync));
    return sync;
  }

  /** Closes a temporary file's descriptor once, after the syncs in flight on it have returned. */
  private async closeTemporary(temp: TemporaryFile): Promise<void> {
    if (this.closed.has(temp)) return;
    this.closed.add(temp);
    await Promise.allSettled(this.syncsOf.get(temp) ?? []);
    closeSync(temp.fd);
  }

  /**
   * Moves a temporary file to `to`, a path no event names (PutContentOptions.unnamed), atomically
   * and durably: renamed first, then its bytes and the directory synced side by side, and closed.
   * `syncing`: a sync of the file started after its last write (syncTemporary), waited for instead
   * of a new one.
   */
  async placeTemporary(temp: TemporaryFile, to: string, syncing?: Promise<void>): Promise<void> {
    const target = this.full(to);
    // Its failure is awaited after the rename, or of no concern when the rename fails: until then
    // it must not count as unhandled.
    syncing?.catch(() => undefined);
    await inDirectory(path.dirname(target), () => renameOnLoop(temp.localPath, target));
    this.placed.add(temp);
    try {
      await syncPlaced(target, () => syncing ?? this.syncTemporary(temp));
    } finally {
      await this.closeTemporary(temp);
    }
  }

  /** Closes and removes a temporary file that is not placed; nothing to do for one placed already. */
  async discardTemporary(temp: TemporaryFile): Promise<void> {
    if (this.placed.has(temp)) return;
    await this.closeTemporary(temp).catch(() => undefined);
    await fs.unlink(temp.localPath).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }

  /**
   * As discardTemporary, for a file whose request has succeeded without its bytes (a copy held
   * them already): closed here, but unlinked in the background, as the unlink frees its blocks
   * (93 ms for 256 MiB on ext4) and would hold the answer. A crash before it leaves the file where
   * the next start clears. `onFailure` hears of a failed unlink.
   */
  async discardTemporaryInBackground(temp: TemporaryFile, onFailure: RemovalFailure): Promise<void> {
    if (this.placed.has(temp)) return;
    await this.closeTemporary(temp).catch(() => undefined);
    this.removeInBackground(temp.localPath, onFailure);
  }

  /**
   * Deletes a file outside the temporary directory without waiting for its unlink: one rename(2)
   * moves it into the temporary directory (atomic, and no blocks freed), where it is unlinked in
   * the background, so that a crash before the unlink leaves it to the next start's clearing, not
   * under its old name. When the rename fails, deleted here as `delete` does. `onFailure` hears of
   * a failed unlink.
   */
  async deleteInBackground(relative: string, onFailure: RemovalFailure): Promise<void> {
    let moved: string;
    try {
      moved = await this.tempFile();
      await renameOnLoop(this.full(relative), moved);
    } catch {
      return this.delete(relative);
    }
    this.removeInBackground(moved, onFailure);
  }

  /** Starts the unlink of a file in the temporary directory; removalsSettled waits for it. */
  private removeInBackground(localPath: string, onFailure: RemovalFailure): void {
    const removal = fs.unlink(localPath).then(
      () => undefined,
      (err: unknown) => {
        if (!isNotFound(err)) onFailure(localPath, err);
      },
    );
    this.removals.add(removal);
    void removal.finally(() => this.removals.delete(removal));
  }

  /** Resolves once every unlink started in the background has ended (at shutdown). */
  async removalsSettled(): Promise<void> {
    while (this.removals.size > 0) await Promise.all(this.removals);
  }

  async sync(relative: string): Promise<void> {
    const handle = await fs.open(this.full(relative), 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async move(from: string, to: string): Promise<void> {
    await this.renameDurably(this.full(from), this.full(to));
  }

  async putFile(localFile: string, to: string, options: { synced?: boolean } = {}): Promise<void> {
    const target = this.full(to);
    if (options.synced !== true) {
      const handle = await fs.open(localFile, 'r+');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    // A second name for the bytes, not a rename: the local file stays until its caller commits.
    const temp = await this.tempFile();
    try {
      await fs.link(localFile, temp);
    } catch (err) {
      // A staging directory on another filesystem (or no hard links): a durable copy instead.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw err;
      await fs.copyFile(localFile, temp);
      await this.sync(path.relative(this.root, temp));
    }
    await this.renameDurably(temp, target);
  }

  /**
   * Cuts a file back to `size` bytes. A file with other names (hard links made by putFile or link)
   * is not cut in place: a copy of its first `size` bytes takes this name, and the others keep theirs.
   */
  async truncate(relative: string, size: number): Promise<void> {
    const file = this.full(relative);
    const handle = await fs.open(file, 'r+');
    try {
      if ((await handle.stat()).nlink === 1) {
        await handle.truncate(size);
        return;
      }
    } finally {
      await handle.close();
    }
    await this.replaceWithCopy(file, size);
  }

  /**
   * Opens a file for writing such that no write reaches another name of its bytes: a file with
   * hard links (a staged upload that putFile placed, whose commit did not finish) is first replaced
   * by a copy of its own.
   */
  private async openOwnCopy(file: string, flags: string | number): Promise<{ handle: fs.FileHandle; size: number }> {
    const handle = await fs.open(file, flags);
    try {
      const { nlink, size } = await handle.stat();
      if (nlink <= 1) return { handle, size };
    } catch (err) {
      await handle.close();
      throw err;
    }
    await handle.close();
    await this.replaceWithCopy(file);
    const copy = await fs.open(file, flags);
    try {
      return { handle: copy, size: (await copy.stat()).size };
    } catch (err) {
      await copy.close();
      throw err;
    }
  }

  /** Replaces a file by a copy of it (of its first `size` bytes), durably, under the same name. */
  private async replaceWithCopy(file: string, size?: number): Promise<void> {
    const temp = await this.tempFile();
    await fs.copyFile(file, temp);
    const handle = await fs.open(temp, 'r+');
    try {
      if (size !== undefined) await handle.truncate(size);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.renameDurably(temp, file);
  }

  async link(from: string, to: string): Promise<void> {
    const source = this.full(from);
    const target = this.full(to);
    const temp = await this.tempFile();
    try {
      await fs.link(source, temp);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new PathNotFoundError(from);
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw err;
      await fs.copyFile(source, temp);
      await this.sync(path.relative(this.root, temp));
    }
    await this.renameDurably(temp, target);
  }

  async delete(relative: string): Promise<void> {
    const target = this.full(relative);
    // Nearly always a file: one unlink(2), where rm would lstat it twice first. A directory (EISDIR)
    // or any other failure goes the way it always went.
    try {
      await fs.unlink(target);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    }
    await fs.rm(target, { recursive: true, force: true });
  }

  async list(relative: string): Promise<string[]> {
    try {
      return await fs.readdir(this.full(relative));
    } catch (err) {
      if (isNotFound(err) || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
      throw err;
    }
  }

  /**
   * rename(2) is atomic; the fsync of the directory makes the new name survive a crash. The
   * directory is made (durably) if missing.
   */
  private async renameDurably(from: string, to: string): Promise<void> {
    const dir = path.dirname(to);
    await inDirectory(dir, () => renameOnLoop(from, to));
    await syncDirectory(dir);
  }
}

/**
 * Content up to this size (a layout file, most index.json files, a body's batch: a config, a small
 * layer) is opened, written and closed on the event loop: into the page cache, microseconds each,
 * where as pool jobs each cost two thread hand-offs. Its fsync, which waits for the disk, goes to
 * the pool.
 */
const SMALL_CONTENT_BYTES = 64 * 1024;

/**
 * rename(2) on the event loop: names changed in the kernel's caches, microseconds, where as a pool
 * job it cost two thread hand-offs (four renames per small image pushed). Async for inDirectory.
 */
async function renameOnLoop(from: string, to: string): Promise<void> {
  renameSync(from, to);
}

/** A new file with `content`, fsynced (in the pool) before this resolves. */
/** writev(2) in the pool at the descriptor's position; resolves with the bytes written. */
function writevDescriptor(fd: number, buffers: readonly Buffer[]): Promise<number> {
  return new Promise<number>((resolve, reject) => writev(fd, buffers, (err, written) => (err ? reject(err) : resolve(written))));
}

/** A file written and left open, for its sync once it has its name (see syncPlaced). */
interface OpenWrittenFile {
  readonly localPath: string;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** Writes small content (see SMALL_CONTENT_BYTES) into a new, open file on the event loop, and leaves it open. */
function writeSmall(file: ReservedFile, content: Buffer | string): OpenWrittenFile {
  const { localPath, fd } = file;
  try {
    writeFileSync(fd, content);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return { localPath, sync: () => fsyncDescriptor(fd), close: async () => closeSync(fd) };
}

/** Writes a new file from the pool and leaves it open. */
async function writeLarge(localPath: string, content: Buffer | string): Promise<OpenWrittenFile> {
  const handle = await fs.open(localPath, 'w');
  try {
    await handle.writeFile(content);
  } catch (err) {
    await handle.close();
    throw err;
  }
  return { localPath, sync: () => handle.sync(), close: () => handle.close() };
}

/**
 * Makes a file just renamed to `target`, a path no event names, durable: its bytes (`syncBytes`)
 * and its directory synced side by side, both settled before the file may be closed. When either
 * fails the name goes again, as the bytes under it may not be on the disk.
 */
async function syncPlaced(target: string, syncBytes: () => Promise<void>): Promise<void> {
  try {
    await settleAll([syncBytes(), syncDirectory(path.dirname(target))]);
  } catch (err) {
    await fs.unlink(target).catch(() => undefined);
    throw err;
  }
}

/**
 * Writes `source` to the open file from offset `start` (its end), in ~1 MiB writes; `afterWrite`
 * hears of each range before the next write starts. Resolves with the bytes written.
 */
function writeBody(fd: number, start: number, source: Readable, exactLength: number | undefined, afterWrite: AfterWrite | undefined): Promise<number> {
  let inFile = start;
  return writeInBatches(source, exactLength, WRITE_BUFFER_BYTES, async (buffers, length) => {
    const written = length <= SMALL_CONTENT_BYTES ? writevSync(fd, buffers) : await writevDescriptor(fd, buffers);
    if (written !== length) throw new Error(`wrote ${written} of ${length} bytes`);
    const from = inFile;
    inFile += length;
    const done = afterWrite?.(from, inFile, buffers);
    // Written and read: the chunks can go (young) while afterWrite waits, rather than age into
    // the old generation; counted only now, so a young collection it triggers frees them.
    buffers.length = 0;
    bodyBytesReceived(length);
    await done;
  });
}
