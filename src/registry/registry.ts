// The registry's commands and queries: everything the HTTP layer asks for, above the storage
// roots and the event store. No HTTP here: callers get values or typed RegistryErrors.
//
// One concern per part, all built from the same RegistryParts:
//   uploads.ts          upload sessions (files under REPO/.uploads, the offset is the size)
//   upload-parts.ts     on S3 roots, a session's full parts sent to a multipart upload as they arrive
//   blob-commit.ts      an upload becoming a blob: the named steps of a commit
//   blob-removal.ts     a repository letting go of a blob (DELETE, GC), S3 relocation
//   mounts.ts           cross-repository mounts
//   manifest-store.ts   manifests and tags
//   refusals.ts         refused writes for the audit log, aggregated (built by the composition root)
//   locks.ts            the lock order every part follows
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { EventStore } from '../events/store.js';
import type { EventContext } from '../events/types.js';
import { parseDigest, type ParsedDigest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { assertValidName } from '../oci/names.js';
import type { RegistryStateQueries } from '../projections/registry-state.js';
import { PathNotFoundError } from '../storage/driver.js';
import { linksShareBytes, type StorageRoots } from '../storage/roots.js';
import type { HashPool } from '../workers/pool.js';
import { BlobCommit, type LastChunk } from './blob-commit.js';
import { BlobRemoval } from './blob-removal.js';
import { RegistryLocks } from './locks.js';
import { clipRange, type BlobContent, type BlobHandle, type BlobReadOptions, type PullThrough, type RangeFor } from './pull-through.js';
import { ManifestStore, type ManifestContent, type PushedManifest, type PutManifestOptions, type Referrer } from './manifest-store.js';
import { Mounts } from './mounts.js';
import type { RegistryParts } from './parts.js';
import type { RefusalRecorder, RefusedWrite } from './refusals.js';
import type { RepositoryQuota } from './repository-quota.js';
import { RepositoryFiles } from './repository-files.js';
import { UploadHashes } from './upload-hashes.js';
import { UploadParts } from './upload-parts.js';
import { UploadWriteback } from './upload-writeback.js';
import { DEFAULT_UPLOAD_LIMITS, type UploadLimits } from './upload-limits.js';
import { UploadSessions, type ChunkRange } from './uploads.js';

export { MAX_MANIFEST_BYTES } from './manifest-store.js';
export type { ManifestContent, PushedManifest, PutManifestOptions, Referrer, RefusedWrite };

/** Repositories read per query while a filtered catalog page is collected. */
const CATALOG_BATCH = 500;

export type { BlobContent, BlobHandle, PullThrough } from './pull-through.js';

export interface RegistryDeps {
  logger?: Logger;
  roots: StorageRoots;
  store: EventStore;
  queries: RegistryStateQueries;
  hashPool: HashPool;
  /** Told of each new upload session, so GC can look at the repository once it may be empty. */
  onUploadStarted?: (repo: string) => void;
  /** Records refused writes as events; absent in a read-only registry, which records nothing. */
  refusals?: RefusalRecorder;
  /** storage.maxRepos: refuses the upload that starts a push into one repository too many. */
  quota?: RepositoryQuota;
  /** Caps and idle expiry of upload sessions; DEFAULT_UPLOAD_LIMITS where not given (tests lower them). */
  uploadLimits?: Partial<UploadLimits>;
  /** Answers manifest and blob reads that miss locally (sync on demand), when configured. */
  pullThrough?: () => PullThrough | undefined;
}

export class Registry {
  readonly uploads: UploadSessions;
  readonly uploadLimits: Readonly<UploadLimits>;
  readonly locks: RegistryLocks;
  readonly files: RepositoryFiles;
  readonly manifests: ManifestStore;
  readonly blobRemoval: BlobRemoval;
  private readonly parts: RegistryParts;
  private readonly commits: BlobCommit;
  private readonly mounts: Mounts;

  constructor(private readonly deps: RegistryDeps) {
    const { roots, store, queries, hashPool, logger } = deps;
    this.uploadLimits = { ...DEFAULT_UPLOAD_LIMITS, ...deps.uploadLimits };
    this.uploads = new UploadSessions(
      (repo) => roots.for(repo).staging,
      () => [...new Set(roots.roots.map((root) => root.staging))],
      this.uploadLimits,
      new UploadHashes(hashPool, logger),
      new UploadParts(roots, logger),
      new UploadWriteback(
        (repo) => linksShareBytes(roots.for(repo)),
        (repo, uploadId, err) => {
          logger?.error({ repo, uploadId, err }, 'a background fsync of an upload failed: its bytes may not be on disk, so the session is discarded and the blob must be pushed again');
          this.uploads.discardWhenIdle(repo, uploadId).catch((discardErr: unknown) => {
            logger?.error({ repo, uploadId, err: discardErr }, 'failed to discard the upload session whose background fsync failed');
          });
        },
      ),
      (file, err) => logger?.warn({ file, err }, 'failed to remove an unneeded upload file in the background, leaving it to the next start'),
    );
    this.locks = new RegistryLocks(roots);
    this.files = new RepositoryFiles(roots, queries, logger);
    this.parts = { roots, store, queries, hashPool, locks: this.locks, files: this.files, uploads: this.uploads, ...(logger ? { logger } : {}) };
    this.manifests = new ManifestStore(this.parts);
    this.blobRemoval = new BlobRemoval(this.parts);
    this.commits = new BlobCommit(this.parts);
    this.mounts = new Mounts(this.parts);
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

  async recordRefusedWrite(refusal: RefusedWrite, context: EventContext): Promise<void> {
    await this.deps.refusals?.record(refusal, context);
  }

  // ---- blobs --------------------------------------------------------------------------------

  /**
   * A blob of the repository (or one of its manifests, which are blobs too), for GET and HEAD.
   * `rangeFor` gets the blob's size and answers the byte range asked for, if any.
   */
  async blob(repo: string, digestText: string, rangeFor?: RangeFor, options: BlobReadOptions = {}): Promise<BlobHandle> {
    const pullThrough = this.deps.pullThrough?.();
    const local = (): Promise<BlobHandle> => this.localBlob(repo, digestText, rangeFor);
    return pullThrough ? pullThrough.blob(repo, digestText, rangeFor, options, local) : local();
  }

  private async localBlob(repo: string, digestText: string, rangeFor: RangeFor | undefined): Promise<BlobHandle> {
    assertValidName(repo);
    const digest = parseDigest(digestText);
    const { queries, roots } = this.deps;
    const { driver } = roots.for(repo);
    const size = queries.blobSize(repo, digest.value) ?? queries.manifest(repo, digest.value)?.size;
    if (size === undefined) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest.value} is not in ${repo}`);
    const clipped = clipRange(size, rangeFor);
    const path = this.files.contentPath(repo, digest);
    return {
      size,
      digest: digest.value,
      ...(clipped ? { range: clipped } : {}),
      open: async (): Promise<BlobContent> => {
        try {
          if (driver.openFile) return { file: await driver.openFile(path), start: clipped?.start ?? 0, end: clipped?.end ?? size - 1 };
          return { stream: await driver.reader(path, clipped) };
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

  /** Mount without `from`, from a readable repository of the same root that holds the blob (mounts.ts). */
  mountFromReadableHolder(repo: string, digestText: string, mayRead: (repo: string) => boolean, context: EventContext): Promise<string | undefined> {
    return this.mounts.mountFromReadableHolder(repo, digestText, mayRead, context);
  }

  /** Cross-repository mount; undefined when the source does not hold the blob (then: a session). */
  mountBlob(repo: string, digestText: string, from: string, context: EventContext): Promise<string | undefined> {
    return this.mounts.mountBlob(repo, digestText, from, context);
  }

  // ---- uploads ------------------------------------------------------------------------------

  async startUpload(repo: string, options: { ownedByRequest?: boolean } = {}): Promise<string> {
    assertValidName(repo);
    this.deps.quota?.assertRoomFor(repo);
    return this.locks.inRepository(repo, async () => {
      await this.files.ensureLayout(repo);
      const id = await this.uploads.create(repo, options);
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
    return this.uploads.appendChunk(repo, id, body, range);
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

  /**
   * At start, before any request: closing PUTs a crash interrupted are finished or undone
   * (blob-commit.ts), and the S3 parts of open sessions are found again. Returns how many
   * sessions were put back to their acknowledged size.
   */
  async loadUploadSessions(): Promise<number> {
    const restored = await this.commits.recoverInterrupted();
    await this.uploads.recoverParts();
    return restored;
  }

  /**
   * After loadUploadSessions, before any request: starts indexing the open sessions of earlier
   * runs for the caps and the idle expiry (uploads.ts), which settles in the background; requests
   * that open or use a session wait for it.
   */
  indexUploadSessions(): Promise<void> {
    return this.uploads.indexEarlierSessions();
  }

  /**
   * A whole blob in one request (POST ?digest=): a session that lives only as long as the request.
   * `length`: the body's declared length, if any.
   */
  async pushBlob(repo: string, digestText: string, body: Readable, context: EventContext, length?: number): Promise<string> {
    const digest = parseDigest(digestText);
    if (this.commits.takesBodies(repo)) return this.pushBody(repo, digest, body, context);
    const id = await this.startUpload(repo, { ownedByRequest: true });
    return this.pushBlobInto(repo, id, digest, body, context, length);
  }

  /**
   * pushBlob into a session the caller opened (startUpload with ownedByRequest, no bytes yet), so
   * that it can read the session's file while the body arrives (a sync fetch's streaming readers).
   * The digest is known before the body, so on S3 the bytes go straight to the blob's key. The
   * session goes whatever the outcome.
   */
  async pushBlobInto(repo: string, id: string, digest: ParsedDigest, body: Readable, context: EventContext, length?: number): Promise<string> {
    try {
      return await this.locks.inRepository(repo, () => this.commits.commit(repo, id, digest, context, { body, ...(length !== undefined ? { length } : {}) }, { privateSession: true, readFromSession: true }));
    } catch (err) {
      await this.uploads.discard(repo, id).catch(() => undefined);
      throw err;
    }
  }

  /**
   * pushBlob on a filesystem root: no session file, the body goes to a temporary file that is
   * renamed into place (blob-commit.ts commitBody). The request still counts against the caps on
   * sessions, as the session it replaces would.
   */
  private async pushBody(repo: string, digest: ParsedDigest, body: Readable, context: EventContext): Promise<string> {
    assertValidName(repo);
    this.deps.quota?.assertRoomFor(repo);
    const release = await this.uploads.reserveBody(repo);
    try {
      return await this.locks.inRepository(repo, async () => {
        await this.files.ensureLayout(repo);
        this.deps.onUploadStarted?.(repo);
        return this.commits.commitBody(repo, digest, context, { body });
      });
    } finally {
      release();
    }
  }

  // ---- manifests ----------------------------------------------------------------------------

  /** Media type, digest and size without the content, for HEAD. */
  async manifestInfo(repo: string, reference: string): Promise<{ digest: string; mediaType: string; size: number }> {
    if (!this.deps.pullThrough?.()) return this.manifests.info(repo, reference);
    const { digest, mediaType, size } = await this.manifest(repo, reference);
    return { digest, mediaType, size };
  }

  manifest(repo: string, reference: string): Promise<ManifestContent> {
    const pullThrough = this.deps.pullThrough?.();
    const local = (): Promise<ManifestContent> => this.manifests.get(repo, reference);
    return pullThrough ? pullThrough.manifest(repo, reference, local) : local();
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
