// Upload sessions: a file per session under the repository's .uploads directory, in the local
// staging directory of the repository's storage root (for S3 roots too: the bytes move to the
// bucket when the blob commits). The session's offset is the file's size, so sessions survive a
// restart with no other state. A session being closed by a PUT that carries a last chunk also has a
// marker (.zot-ts/closing-uploads/ID) holding the size its PATCHes acknowledged, so a failed or
// interrupted PUT leaves the session as the client last saw it.
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { SizeMismatchError } from '../storage/driver.js';
import type { FilesystemDriver } from '../storage/filesystem.js';
import { CLOSING_UPLOADS_DIR, closingUploadPath, uploadPath, uploadsDir } from '../storage/layout.js';
import { RegistryError } from '../oci/errors.js';
import { isValidName } from '../oci/names.js';

const UPLOAD_ID_RE = /^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$/;

export interface ChunkRange {
  start: number;
  /** Inclusive. */
  end: number;
}

/** What a closing marker records: the session and the size its PATCHes acknowledged. */
export interface ClosingMarker {
  repo: string;
  id: string;
  acknowledged: number;
  /** The digest the PUT commits as: when the repository holds it, the commit happened. */
  digest: string;
}

export class UploadSessions {
  /** Sessions with a request in progress: a second concurrent request on one session is refused. */
  private readonly busy = new Set<string>();

  constructor(
    private readonly stagingFor: (repo: string) => FilesystemDriver,
    /** Every staging directory once (roots may share one). */
    private readonly allStaging: () => FilesystemDriver[],
  ) {}

  async create(repo: string): Promise<string> {
    const id = randomUUID();
    await this.stagingFor(repo).putContent(uploadPath(repo, id), Buffer.alloc(0));
    return id;
  }

  /** Whether the repository has any session open (GC keeps such a repository). */
  async anyOpen(repo: string): Promise<boolean> {
    return (await this.stagingFor(repo).list(uploadsDir(repo))).length > 0;
  }

  /** The session's file on local disk, for hashing and for the move into place. */
  localFile(repo: string, id: string): string {
    return this.stagingFor(repo).localPath(uploadPath(repo, id));
  }

  /** Current size of the session, or BLOB_UPLOAD_UNKNOWN. */
  async size(repo: string, id: string): Promise<number> {
    if (!UPLOAD_ID_RE.test(id)) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${id} is unknown`);
    const info = await this.stagingFor(repo).stat(uploadPath(repo, id));
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
      const written = await this.stagingFor(repo).append(uploadPath(repo, id), body, expected);
      return currentSize + written;
    } catch (err) {
      if (err instanceof SizeMismatchError) {
        throw new RegistryError('SIZE_INVALID', `chunk body does not match Content-Range: ${err.message}`);
      }
      throw err;
    }
  }

  async discard(repo: string, id: string): Promise<void> {
    await this.stagingFor(repo).delete(uploadPath(repo, id));
  }

  /**
   * Records, durably, the size the session's PATCHes acknowledged before a closing PUT appends its
   * last chunk: whatever stops the PUT (an error, a crash), the session goes back to that size.
   */
  async markClosing(repo: string, id: string, acknowledged: number, digest: string): Promise<void> {
    const marker: ClosingMarker = { repo, id, acknowledged, digest };
    await this.stagingFor(repo).putContent(closingUploadPath(id), JSON.stringify(marker));
  }

  /** The PUT is over (committed, or the session discarded): its closing marker goes. */
  async unmarkClosing(repo: string, id: string): Promise<void> {
    await this.stagingFor(repo).delete(closingUploadPath(id));
  }

  /** Cuts the session back to what its PATCHes acknowledged and drops its closing marker. */
  async restore(repo: string, id: string, acknowledged: number): Promise<void> {
    const staging = this.stagingFor(repo);
    await staging.truncate(uploadPath(repo, id), acknowledged);
    await staging.delete(closingUploadPath(id));
  }

  /**
   * At start, before any request: finishes what a crash left of closing PUTs. A session whose
   * commit happened (`committed` says so) goes; any other goes back to its acknowledged size.
   * Returns how many sessions were restored.
   */
  async recoverClosing(committed: (marker: ClosingMarker) => boolean): Promise<number> {
    let restored = 0;
    for (const staging of this.allStaging()) {
      for (const name of await staging.list(CLOSING_UPLOADS_DIR)) {
        const marker = parseMarker(await staging.getContent(closingUploadPath(name)).catch(() => undefined));
        // A marker is written whole (a rename) or not at all: anything else is not ours to act on.
        if (marker && marker.id === name && UPLOAD_ID_RE.test(name) && isValidName(marker.repo)) {
          const session = uploadPath(marker.repo, marker.id);
          const info = await staging.stat(session);
          if (info && !info.isDirectory) {
            if (committed(marker)) {
              await staging.delete(session);
            } else if (info.size !== marker.acknowledged) {
              await staging.truncate(session, marker.acknowledged);
              restored++;
            }
          }
        }
        await staging.delete(closingUploadPath(name));
      }
    }
    return restored;
  }

}

function parseMarker(content: Buffer | undefined): ClosingMarker | undefined {
  if (!content) return undefined;
  try {
    const value = JSON.parse(content.toString('utf8')) as Partial<ClosingMarker>;
    const { repo, id, acknowledged, digest } = value;
    if (typeof repo !== 'string' || typeof id !== 'string' || typeof digest !== 'string') return undefined;
    if (typeof acknowledged !== 'number' || !Number.isSafeInteger(acknowledged) || acknowledged < 0) return undefined;
    return { repo, id, acknowledged, digest };
  } catch {
    return undefined;
  }
}
