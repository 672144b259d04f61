// Upload sessions: a file per session under the repository's .uploads directory. The session's
// offset is the file's size, so sessions survive a restart with no other state.
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { SizeMismatchError, type StorageDriver } from '../storage/driver.js';
import { uploadPath } from '../storage/layout.js';
import { RegistryError } from './errors.js';

const UPLOAD_ID_RE = /^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$/;

export interface ChunkRange {
  start: number;
  /** Inclusive. */
  end: number;
}

export class UploadSessions {
  /** Sessions with a request in progress: a second concurrent request on one session is refused. */
  private readonly busy = new Set<string>();

  constructor(private readonly driver: StorageDriver) {}

  async create(repo: string): Promise<string> {
    const id = randomUUID();
    await this.driver.putContent(uploadPath(repo, id), Buffer.alloc(0));
    return id;
  }

  /** Current size of the session, or BLOB_UPLOAD_UNKNOWN. */
  async size(repo: string, id: string): Promise<number> {
    if (!UPLOAD_ID_RE.test(id)) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${id} is unknown`);
    const info = await this.driver.stat(uploadPath(repo, id));
    if (!info || info.isDirectory) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${id} is unknown`);
    return info.size;
  }

  /** Runs `work` holding the session, so two requests never write one upload at once. */
  async exclusive<T>(repo: string, id: string, work: (size: number) => Promise<T>): Promise<T> {
    const key = `${repo}\u0000${id}`;
    if (this.busy.has(key)) throw new RegistryError('BLOB_UPLOAD_INVALID', `upload ${id} is busy with another request`);
    this.busy.add(key);
    try {
      return await work(await this.size(repo, id));
    } finally {
      this.busy.delete(key);
    }
  }

  /**
   * Appends a chunk at the session's current size. A declared range must start exactly there
   * (416 otherwise) and the body must be exactly its length.
   */
  async append(repo: string, id: string, currentSize: number, body: Readable, range?: ChunkRange): Promise<number> {
    if (range) {
      if (range.start !== currentSize || range.end < range.start) {
        throw new RegistryError('RANGE_INVALID', `chunk ${range.start}-${range.end} does not continue the upload at ${currentSize}`, {
          size: currentSize,
        });
      }
    }
    const expected = range ? range.end - range.start + 1 : undefined;
    try {
      const written = await this.driver.append(uploadPath(repo, id), body, expected);
      return currentSize + written;
    } catch (err) {
      if (err instanceof SizeMismatchError) {
        throw new RegistryError('SIZE_INVALID', `chunk body does not match Content-Range: ${err.message}`);
      }
      throw err;
    }
  }

  async discard(repo: string, id: string): Promise<void> {
    await this.driver.delete(uploadPath(repo, id));
  }

  path(repo: string, id: string): string {
    return uploadPath(repo, id);
  }
}
