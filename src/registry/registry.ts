// The registry's commands and queries: everything the HTTP layer asks for, above the storage
// roots and the event store. No HTTP here: callers get values or typed RegistryErrors.
//
// One concern per part, all built from the same RegistryParts:
//   uploads.ts          upload sessions (files under REPO/.uploads, the offset is the size)
//   blob-commit.ts      an upload becoming a blob: the named steps of a commit
//   blob-removal.ts     a repository letting go of a blob (DELETE, GC), S3 relocation
//   mounts.ts           cross-repository mounts
//   manifest-store.ts   manifests and tags
//   refusals.ts         refused writes for the audit log
//   locks.ts            the lock order every part follows
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { EventStore } from '../events/store.js';
import type { EventContext } from '../events/types.js';
import { parseDigest, type ParsedDigest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { assertValidName } from '../oci/names.js';
import type { RegistryStateQueries } from '../projections/registry-state.js';
import { PathNotFoundError, type ByteRange } from '../storage/driver.js';
import type { StorageRoots } from '../storage/roots.js';
import type { HashPool } from '../workers/pool.js';
import { BlobCommit, type LastChunk } from './blob-commit.js';
import { BlobRemoval } from './blob-removal.js';
import { RegistryLocks } from './locks.js';
import { ManifestStore, type ManifestContent, type PushedManifest, type PutManifestOptions, type Referrer } from './manifest-store.js';
import { Mounts } from './mounts.js';
import type { RegistryParts } from './parts.js';
import { RefusalRecorder, type RefusedWrite } from './refusals.js';
import { RepositoryFiles } from './repository-files.js';
import { UploadSessions, type ChunkRange } from './uploads.js';

export { MAX_MANIFEST_BYTES } from './manifest-store.js';
export type { ManifestContent, PushedManifest, PutManifestOptions, Referrer, RefusedWrite };

/** Repositories read per query while a filtered catalog page is collected. */
const CATALOG_BATCH = 500;

export interface BlobHandle {
  size: number;
  digest: string;
  /** The requested range, clipped to the blob, when one was asked for. */
  range?: ByteRange;
  open(): Promise<Readable>;
}

export interface RegistryDeps {
  logger?: Logger;
  roots: StorageRoots;
  store: EventStore;
  queries: RegistryStateQueries;
  hashPool: HashPool;
  /** Told of each new upload session, so GC can expire it if it is abandoned. */
  onUploadStarted?: (repo: string) => void;
}

export class Registry {
  readonly uploads: UploadSessions;
  readonly locks: RegistryLocks;
  readonly files: RepositoryFiles;
  readonly manifests: ManifestStore;
  readonly blobRemoval: BlobRemoval;
  private readonly parts: RegistryParts;
  private readonly commits: BlobCommit;
  private readonly mounts: Mounts;
  private readonly refusals: RefusalRecorder;

  constructor(private readonly deps: RegistryDeps) {
    const { roots, store, queries, hashPool, logger } = deps;
    this.uploads = new UploadSessions((repo) => roots.for(repo).staging);
    this.locks = new RegistryLocks(roots);
    this.files = new RepositoryFiles(roots, queries, logger);
    this.parts = { roots, store, queries, hashPool, locks: this.locks, files: this.files, uploads: this.uploads, ...(logger ? { logger } : {}) };
    this.manifests = new ManifestStore(this.parts);
    this.blobRemoval = new BlobRemoval(this.parts);
    this.commits = new BlobCommit(this.parts);
    this.mounts = new Mounts(this.parts);
    this.refusals = new RefusalRecorder(store);
  }

  // ---- repositories -------------------------------------------------------------------------

  /** Repositories after `last`, at most `limit`; with `visible`, only those it accepts (access control). */
  catalog(last: string, limit: number, visible?: (repo: string) => boolean): { repositories: string[]; more: boolean } {
    if (visible === undefined) {
      const rows = this.deps.queries.repositories(last, limit + 1);
      return { repositories: rows.slice(0, limit), more: rows.length > limit };
    }
    const found: string[] = [];
    for (let cursor = last; ; ) {
      const rows = this.deps.queries.repositories(cursor, CATALOG_BATCH);
      for (const repo of rows) {
        if (!visible(repo)) continue;
        if (found.length === limit) return { repositories: found, more: true };
        found.push(repo);
      }
      const lastRow = rows.at(-1);
      if (rows.length < CATALOG_BATCH || lastRow === undefined) return { repositories: found, more: false };
      cursor = lastRow;
    }
  }

  tagExists(repo: string, tag: string): boolean {
    return this.deps.queries.tagDigest(repo, tag) !== undefined;
  }

  tags(repo: string, last: string, limit: number): { tags: string[]; more: boolean } {
    assertValidName(repo);
    if (!this.deps.queries.repositoryExists(repo)) throw new RegistryError('NAME_UNKNOWN', `repository ${repo} is not known to the registry`);
    const rows = this.deps.queries.tags(repo, last, limit + 1);
    return { tags: rows.slice(0, limit), more: rows.length > limit };
  }

  recordRefusedWrite(refusal: RefusedWrite, context: EventContext): void {
    this.refusals.record(refusal, context);
  }

  // ---- blobs --------------------------------------------------------------------------------

  /**
   * A blob of the repository (or one of its manifests, which are blobs too), for GET and HEAD.
   * `rangeFor` gets the blob's size and answers the byte range asked for, if any.
   */
  async blob(repo: string, digestText: string, rangeFor?: (size: number) => { start: number; end?: number } | undefined): Promise<BlobHandle> {
    assertValidName(repo);
    const digest = parseDigest(digestText);
    const { queries, roots } = this.deps;
    const { driver } = roots.for(repo);
    const size = queries.blobSize(repo, digest.value) ?? queries.manifest(repo, digest.value)?.size;
    if (size === undefined) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest.value} is not in ${repo}`);
    let clipped: ByteRange | undefined;
    const range = rangeFor?.(size);
    if (range) {
      const end = Math.min(range.end ?? size - 1, size - 1);
      if (range.start >= size || end < range.start) {
        throw new RegistryError('RANGE_INVALID', `range ${range.start}-${range.end ?? ''} is outside a blob of ${size} bytes`, { size });
      }
      clipped = { start: range.start, end };
    }
    const path = this.files.contentPath(repo, digest);
    return {
      size,
      digest: digest.value,
      ...(clipped ? { range: clipped } : {}),
      open: async () => {
        try {
          return await driver.reader(path, clipped);
        } catch (err) {
          if (err instanceof PathNotFoundError) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest.value} is missing from storage`);
          throw err;
        }
      },
    };
  }

  deleteBlob(repo: string, digestText: string, context: EventContext): Promise<void> {
    return this.blobRemoval.deleteBlob(repo, digestText, context);
  }

  /** Cross-repository mount; undefined when the source does not hold the blob (then: a session). */
  mountBlob(repo: string, digestText: string, from: string, context: EventContext): Promise<string | undefined> {
    return this.mounts.mountBlob(repo, digestText, from, context);
  }

  // ---- uploads ------------------------------------------------------------------------------

  async startUpload(repo: string): Promise<string> {
    assertValidName(repo);
    return this.locks.inRepository(repo, async () => {
      await this.files.ensureLayout(repo);
      const id = await this.uploads.create(repo);
      this.deps.onUploadStarted?.(repo);
      return id;
    });
  }

  async uploadStatus(repo: string, id: string): Promise<number> {
    assertValidName(repo);
    return this.uploads.size(repo, id);
  }

  async appendUpload(repo: string, id: string, body: Readable, range?: ChunkRange): Promise<number> {
    assertValidName(repo);
    return this.uploads.exclusive(repo, id, (size) => this.uploads.append(repo, id, size, body, range));
  }

  async cancelUpload(repo: string, id: string): Promise<void> {
    assertValidName(repo);
    await this.uploads.exclusive(repo, id, () => this.uploads.discard(repo, id));
  }

  /** Finishes an upload: appends the last chunk, if any, then commits the blob (blob-commit.ts). */
  async commitUpload(repo: string, id: string, digestText: string, context: EventContext, lastChunk?: LastChunk): Promise<string> {
    assertValidName(repo);
    const digest: ParsedDigest = parseDigest(digestText);
    return this.locks.inRepository(repo, () => this.commits.commit(repo, id, digest, context, lastChunk));
  }

  /** A whole blob in one request (POST ?digest=): a session that lives only as long as the request. */
  async pushBlob(repo: string, digest: string, body: Readable, context: EventContext): Promise<string> {
    const id = await this.startUpload(repo);
    try {
      return await this.commitUpload(repo, id, digest, context, { body });
    } catch (err) {
      await this.uploads.discard(repo, id).catch(() => undefined);
      throw err;
    }
  }

  // ---- manifests ----------------------------------------------------------------------------

  manifestInfo(repo: string, reference: string): { digest: string; mediaType: string; size: number } {
    return this.manifests.info(repo, reference);
  }

  manifest(repo: string, reference: string): Promise<ManifestContent> {
    return this.manifests.get(repo, reference);
  }

  putManifest(
    repo: string,
    reference: string,
    contentType: string | undefined,
    content: Buffer,
    context: EventContext,
    options: PutManifestOptions = {},
  ): Promise<PushedManifest> {
    return this.manifests.put(repo, reference, contentType, content, context, options);
  }

  deleteManifest(repo: string, reference: string, context: EventContext): Promise<void> {
    return this.manifests.delete(repo, reference, context);
  }

  referrers(repo: string, digestText: string, artifactType?: string): Referrer[] {
    return this.manifests.referrers(repo, digestText, artifactType);
  }
}
