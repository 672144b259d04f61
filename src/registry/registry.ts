// The registry's commands and queries: everything the HTTP layer asks for, above the storage
// roots and the event store. No HTTP here: callers get values or typed RegistryErrors.
import { createHash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { EventStore } from '../events/store.js';
import type { EventBody, EventContext } from '../events/types.js';
import type { ManifestRow, RegistryStateQueries } from '../projections/registry-state.js';
import type { ByteRange } from '../storage/driver.js';
import { PathNotFoundError } from '../storage/driver.js';
import { blobPath, indexPath, ociLayoutPath, OCI_LAYOUT_CONTENT, uploadPath } from '../storage/layout.js';
import { linksShareBytes, type StorageRoot, type StorageRoots } from '../storage/roots.js';
import type { HashPool } from '../workers/pool.js';
import { RegistryError } from './errors.js';
import { KeyedLock } from './keyed-lock.js';
import { RepositoryGate } from './repository-gate.js';
import { ManifestCache } from './manifest-cache.js';
import { manifestPushedEvent, parseManifest, MediaTypes, type ParsedManifest } from './manifests.js';
import { assertValidName, isValidName, parseDigest, parseReference, type ManifestReference, type ParsedDigest } from './names.js';
import { UploadSessions, type ChunkRange } from './uploads.js';

/** Manifests larger than this are refused, as the distribution spec allows (and zot does). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface BlobHandle {
  size: number;
  digest: string;
  /** The requested range, clipped to the blob, when one was asked for. */
  range?: ByteRange;
  open(): Promise<Readable>;
}

export interface ManifestContent {
  digest: string;
  mediaType: string;
  size: number;
  content: Buffer;
}

export interface PushedManifest {
  digest: string;
  subject?: string;
}

export interface Referrer {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** What the HTTP layer knows about a write it refused. */
export interface RefusedWrite {
  repo: string;
  method: string;
  /** The request path, without its query string. */
  path: string;
  status: number;
  code: string;
  reference?: string;
}

/** Paths and references of refused writes are cut here: a refusal must not bloat the log. */
const MAX_REFUSED_FIELD = 1024;

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
  private readonly manifestCache = new ManifestCache(64 * 1024 * 1024);
  /** Repositories whose oci-layout and index.json are known to be on storage. */
  private readonly initialisedRepos = new Set<string>();
  /**
   * Held while some repository's copy of a digest is written, relocated or removed. Keyed by
   * root and digest, not by repository: with dedupe, one repository's bytes may be another's.
   */
  private readonly contentLock = new KeyedLock();
  /** Writes hold a repository shared; GC takes it alone to remove an empty repository. */
  readonly gate = new RepositoryGate();

  constructor(private readonly deps: RegistryDeps) {
    this.uploads = new UploadSessions((repo) => deps.roots.for(repo).staging);
  }

  private rootOf(repo: string): StorageRoot {
    return this.deps.roots.for(repo);
  }

  /** The path holding a repository's blob bytes: its own, or the holder's with S3 dedupe. */
  contentPath(repo: string, digest: ParsedDigest): string {
    return blobPath(this.deps.queries.blobStoredIn(repo, digest.value) ?? repo, digest);
  }

  // ---- repositories -------------------------------------------------------------------------

  /** Writes the repository's oci-layout and an empty index.json, as zot does on first push. */
  async initRepository(repo: string): Promise<void> {
    if (this.initialisedRepos.has(repo)) return;
    const { driver } = this.rootOf(repo);
    if (!(await driver.stat(ociLayoutPath(repo)))) await driver.putContent(ociLayoutPath(repo), OCI_LAYOUT_CONTENT);
    if (!(await driver.stat(indexPath(repo)))) {
      await driver.putContent(indexPath(repo), JSON.stringify({ schemaVersion: 2, manifests: [] }));
    }
    this.initialisedRepos.add(repo);
  }

  /** GC removed the repository: the next write lays out its oci-layout and index.json again. */
  forgetRepository(repo: string): void {
    this.initialisedRepos.delete(repo);
  }

  withContent<T>(repo: string, digest: string, work: () => Promise<T>): Promise<T> {
    return this.contentLock.run(`${this.rootOf(repo).route}\u0000${digest}`, work);
  }

  private assertRepositoryExists(repo: string): void {
    assertValidName(repo);
    if (!this.deps.queries.repositoryExists(repo)) {
      throw new RegistryError('NAME_UNKNOWN', `repository ${repo} is not known to the registry`);
    }
  }

  catalog(last: string, limit: number): { repositories: string[]; more: boolean } {
    const rows = this.deps.queries.repositories(last, limit + 1);
    return { repositories: rows.slice(0, limit), more: rows.length > limit };
  }

  tags(repo: string, last: string, limit: number): { tags: string[]; more: boolean } {
    this.assertRepositoryExists(repo);
    const rows = this.deps.queries.tags(repo, last, limit + 1);
    return { tags: rows.slice(0, limit), more: rows.length > limit };
  }

  // ---- refused writes -----------------------------------------------------------------------

  /**
   * Records a write the HTTP layer answered 4xx, so that the audit log, rebuilt from the event
   * log, holds refusals too. One small append; the name is kept only when it is a valid one.
   */
  recordRefusedWrite(refusal: RefusedWrite, context: EventContext): void {
    const reference = refusal.reference?.slice(0, MAX_REFUSED_FIELD);
    this.deps.store.append(
      [
        {
          type: 'WriteRefused',
          repo: isValidName(refusal.repo) ? refusal.repo : '',
          method: refusal.method,
          path: refusal.path.slice(0, MAX_REFUSED_FIELD),
          status: refusal.status,
          code: refusal.code,
          ...(reference ? { reference } : {}),
        },
      ],
      context,
    );
  }

  // ---- blobs --------------------------------------------------------------------------------

  /**
   * A blob of the repository (or one of its manifests, which are blobs too), for GET and HEAD.
   * `rangeFor` gets the blob's size and answers the byte range asked for, if any.
   */
  async blob(repo: string, digestText: string, rangeFor?: (size: number) => { start: number; end?: number } | undefined): Promise<BlobHandle> {
    assertValidName(repo);
    const digest = parseDigest(digestText);
    const { queries } = this.deps;
    const { driver } = this.rootOf(repo);
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
    const path = this.contentPath(repo, digest);
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

  async deleteBlob(repo: string, digestText: string, context: EventContext): Promise<void> {
    assertValidName(repo);
    const digest = parseDigest(digestText);
    const { queries } = this.deps;
    const held = (): void => {
      if (queries.blobSize(repo, digest.value) === undefined) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest.value} is not in ${repo}`);
      if (queries.isBlobReferenced(repo, digest.value)) throw new RegistryError('BLOB_REFERENCED');
    };
    held();
    await this.withContent(repo, digest.value, () => this.releaseBlob(repo, digest, context, held));
  }

  /**
   * Removes a repository's copy of a blob; the caller holds the content lock. When other
   * repositories read this copy's bytes (S3 dedupe), the bytes are first copied to one of them,
   * which the rest then point to: deleting one copy never breaks the others. `precondition`
   * re-checks, inside the append, that the removal is still allowed.
   */
  async releaseBlob(repo: string, digest: ParsedDigest, context: EventContext, precondition: () => void): Promise<void> {
    const { queries, store } = this.deps;
    const { driver } = this.rootOf(repo);
    const ownsBytes = queries.blobStoredIn(repo, digest.value) === undefined;
    const dependents = ownsBytes ? queries.blobDependents(digest.value, repo) : [];
    const events: EventBody[] = [{ type: 'BlobDeleted', repo, digest: digest.value }];
    const [heir, ...others] = dependents;
    if (heir !== undefined) {
      await driver.link(blobPath(repo, digest), blobPath(heir, digest));
      events.push({ type: 'BlobRelocated', repo: heir, digest: digest.value });
      for (const other of others) events.push({ type: 'BlobRelocated', repo: other, digest: digest.value, storedIn: heir });
    }
    store.append(events, context, { precondition });
    // The event is the commit point: a crash before this removal leaves an orphan for GC, never
    // a served blob without bytes. A manifest of the same digest keeps the file.
    if (ownsBytes && !queries.manifest(repo, digest.value)) await this.removeAfterCommit(repo, digest.value, blobPath(repo, digest));
  }

  /**
   * Removes bytes an appended event has already let go of. A failure here is not the request's:
   * the removal is committed, and GC removes the file later as an orphan.
   */
  private async removeAfterCommit(repo: string, digest: string, path: string): Promise<void> {
    try {
      await this.rootOf(repo).driver.delete(path);
    } catch (err) {
      this.deps.logger?.warn({ repo, digest, err }, 'failed to remove deleted content from storage, leaving it to garbage collection');
    }
  }

  /** Cross-repository mount; undefined when the source does not hold the blob (then: a session). */
  async mountBlob(repo: string, digestText: string, from: string, context: EventContext): Promise<string | undefined> {
    assertValidName(repo);
    // The spec: a mount that fails on an invalid source repository or digest falls back to a session.
    if (!isValidName(from)) return undefined;
    let digest: ParsedDigest;
    try {
      digest = parseDigest(digestText);
    } catch {
      return undefined;
    }
    const { queries } = this.deps;
    if (queries.blobSize(from, digest.value) === undefined) return undefined;
    if (queries.blobSize(repo, digest.value) !== undefined) return digest.value;
    return this.gate.shared(repo, () => this.mountShared(repo, from, digest, context));
  }

  private async mountShared(repo: string, from: string, digest: ParsedDigest, context: EventContext): Promise<string | undefined> {
    const { queries, store } = this.deps;
    await this.initRepository(repo);
    // Both roots' locks (one when they are the same root), so neither copy moves meanwhile.
    return this.withContentOfBoth(repo, from, digest.value, async () => {
      const size = queries.blobSize(from, digest.value);
      if (size === undefined) return undefined;
      const storedIn = await this.placeCopy(repo, from, digest);
      const stillThere = (): void => {
        if (queries.blobSize(from, digest.value) === undefined) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest.value} left ${from} during the mount`);
      };
      store.append([{ type: 'BlobMounted', repo, digest: digest.value, size, from, ...(storedIn ? { storedIn } : {}) }], context, {
        precondition: stillThere,
      });
      return digest.value;
    });
  }

  /** Takes the content locks of two repositories' roots in route order, so two mounts never deadlock. */
  private withContentOfBoth<T>(repo: string, other: string, digest: string, work: () => Promise<T>): Promise<T> {
    if (this.rootOf(repo) === this.rootOf(other)) return this.withContent(repo, digest, work);
    const [first, second] = [repo, other].sort((a, b) => (this.rootOf(a).route < this.rootOf(b).route ? -1 : 1)) as [string, string];
    return this.withContent(first, digest, () => this.withContent(second, digest, work));
  }

  /**
   * Gives `repo` the bytes `from` holds, the cheapest way its root allows: with dedupe a hard link
   * (filesystem) or a reference to the holder (S3, returned as `storedIn`); without it a
   * server-side copy (S3) or a copy through the staging directory.
   */
  private async placeCopy(repo: string, from: string, digest: ParsedDigest): Promise<string | undefined> {
    const target = this.rootOf(repo);
    const source = this.rootOf(from);
    const fromPath = this.contentPath(from, digest);
    if (target === source) {
      if (target.dedupe && !linksShareBytes(target)) return this.deps.queries.blobStoredIn(from, digest.value) ?? from;
      if (target.dedupe || !linksShareBytes(target)) {
        await target.driver.link(fromPath, blobPath(repo, digest));
        return undefined;
      }
    }
    // A real copy: into a staging file of the target root, then into place.
    const staged = uploadPath(repo, randomUUID());
    try {
      await target.staging.append(staged, await source.driver.reader(fromPath));
      await target.driver.putFile(target.staging.localPath(staged), blobPath(repo, digest));
    } finally {
      await target.staging.delete(staged).catch(() => undefined);
    }
    return undefined;
  }

  async startUpload(repo: string): Promise<string> {
    assertValidName(repo);
    return this.gate.shared(repo, async () => {
      await this.initRepository(repo);
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

  /**
   * Finishes an upload: appends the last chunk, if any, then commits the blob. The steps, in order:
   * verify the digest in the worker pool, make the bytes durable, move them into place, and append
   * the BlobPushed event — the commit point. A mismatch discards the upload.
   */
  async commitUpload(repo: string, id: string, digestText: string, context: EventContext, lastChunk?: { body: Readable; range?: ChunkRange }): Promise<string> {
    assertValidName(repo);
    const digest = parseDigest(digestText);
    return this.gate.shared(repo, () => this.commitExclusive(repo, id, digest, context, lastChunk));
  }

  private commitExclusive(repo: string, id: string, digest: ParsedDigest, context: EventContext, lastChunk?: { body: Readable; range?: ChunkRange }): Promise<string> {
    return this.uploads.exclusive(repo, id, async (sizeBefore) => {
      const size = lastChunk ? await this.uploads.append(repo, id, sizeBefore, lastChunk.body, lastChunk.range) : sizeBefore;
      const upload = this.uploads.localFile(repo, id);
      await this.verifyDigest(upload, digest, () => this.uploads.discard(repo, id));
      await this.withContent(repo, digest.value, async () => {
        if (this.deps.queries.blobSize(repo, digest.value) === size) {
          // The repository has these bytes already: nothing to place, nothing to record.
          await this.uploads.discard(repo, id);
          return;
        }
        const storedIn = await this.placeBlob(repo, digest, id);
        this.deps.store.append([{ type: 'BlobPushed', repo, digest: digest.value, size, ...(storedIn ? { storedIn } : {}) }], context);
      });
      return digest.value;
    });
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

  /** Hashes the staged upload in the worker pool; on mismatch discards it and throws DIGEST_INVALID. */
  private async verifyDigest(localFile: string, digest: ParsedDigest, discard: () => Promise<void>): Promise<void> {
    const actual = await this.deps.hashPool.hashFile({ path: localFile, algorithm: digest.algorithm });
    if (actual !== digest.hex) {
      await discard();
      throw new RegistryError('DIGEST_INVALID', `upload content has digest ${digest.algorithm}:${actual}, not ${digest.value}`);
    }
  }

  /**
   * Puts a verified upload at its content address, durably. With dedupe, when another repository
   * of the root holds the bytes already, the upload is dropped: the filesystem gets a hard link to
   * those bytes, S3 a reference to the holder (returned as `storedIn`). Otherwise the staged file
   * moves into place (a rename, or a multipart upload to S3).
   */
  private async placeBlob(repo: string, digest: ParsedDigest, uploadId: string): Promise<string | undefined> {
    const root = this.rootOf(repo);
    const holder = root.dedupe ? this.bytesHolder(root, repo, digest.value) : undefined;
    if (holder !== undefined) {
      if (!linksShareBytes(root)) {
        await this.uploads.discard(repo, uploadId);
        return holder;
      }
      try {
        await root.driver.link(blobPath(holder, digest), blobPath(repo, digest));
        await this.uploads.discard(repo, uploadId);
        return undefined;
      } catch (err) {
        // The holder's file went away (a delete in another repository): store this upload instead.
        if (!(err instanceof PathNotFoundError)) throw err;
      }
    }
    await root.driver.putFile(this.uploads.localFile(repo, uploadId), blobPath(repo, digest));
    return undefined;
  }

  /** Another repository of the root whose own path holds the digest's bytes. */
  private bytesHolder(root: StorageRoot, repo: string, digest: string): string | undefined {
    return this.deps.queries.blobHolders(digest).find((h) => h.storedIn === null && h.repo !== repo && this.rootOf(h.repo) === root)?.repo;
  }

  // ---- manifests ----------------------------------------------------------------------------

  private resolveManifest(repo: string, reference: string): ManifestRow {
    this.assertRepositoryExists(repo);
    let ref;
    try {
      ref = parseReference(reference);
    } catch {
      throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${repo}`);
    }
    const digest = ref.kind === 'tag' ? this.deps.queries.tagDigest(repo, ref.tag) : ref.digest.value;
    const row = digest === undefined ? undefined : this.deps.queries.manifest(repo, digest);
    if (!row) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${repo}`);
    return row;
  }

  /** Media type, digest and size without the content, for HEAD. */
  manifestInfo(repo: string, reference: string): { digest: string; mediaType: string; size: number } {
    const row = this.resolveManifest(repo, reference);
    return { digest: row.digest, mediaType: row.media_type, size: row.size };
  }

  async manifest(repo: string, reference: string): Promise<ManifestContent> {
    const row = this.resolveManifest(repo, reference);
    let content = this.manifestCache.get(row.digest);
    if (!content) {
      try {
        content = await this.rootOf(repo).driver.getContent(blobPath(repo, parseDigest(row.digest)));
      } catch (err) {
        if (err instanceof PathNotFoundError) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${row.digest} is missing from storage`);
        throw err;
      }
      this.manifestCache.set(row.digest, content);
    }
    return { digest: row.digest, mediaType: row.media_type, size: row.size, content };
  }

  /**
   * Stores a manifest byte-exact under its digest and records it (and the tag) in one append.
   * Every blob and child manifest it references must already be in the repository.
   */
  async putManifest(repo: string, reference: string, contentType: string | undefined, content: Buffer, context: EventContext): Promise<PushedManifest> {
    assertValidName(repo);
    const ref = parseReference(reference);
    if (content.length > MAX_MANIFEST_BYTES) throw new RegistryError('MANIFEST_TOO_LARGE');
    const algorithm = ref.kind === 'digest' ? ref.digest.algorithm : 'sha256';
    const digest = parseDigest(`${algorithm}:${createHash(algorithm).update(content).digest('hex')}`);
    if (ref.kind === 'digest' && ref.digest.value !== digest.value) {
      throw new RegistryError('DIGEST_INVALID', `manifest content has digest ${digest.value}, not ${ref.digest.value}`);
    }
    const parsed = parseManifest(content, contentType);
    const { queries, store } = this.deps;
    const { driver } = this.rootOf(repo);
    const referencesPresent = (): void => {
      const missingBlob = parsed.blobs.find((b) => queries.blobSize(repo, b) === undefined);
      if (missingBlob) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `blob ${missingBlob} is not in ${repo}`, { digest: missingBlob });
      const missingChild = parsed.manifests.find((m) => queries.manifest(repo, m) === undefined);
      if (missingChild) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `manifest ${missingChild} is not in ${repo}`, { digest: missingChild });
    };
    referencesPresent();

    // One shared hold of the repository from laying it out to the append: GC cannot remove it between.
    await this.gate.shared(repo, async () => {
      await this.initRepository(repo);
      await this.withContent(repo, digest.value, async () => {
        const path = blobPath(repo, digest);
        const existing = await driver.stat(path);
        if (!existing || existing.size !== content.length) await driver.putContent(path, content);
        const events = this.manifestEvents(repo, ref, digest.value, parsed, content.length);
        if (events.length > 0) store.append(events, context, { precondition: referencesPresent });
      });
    });
    this.manifestCache.set(digest.value, content);
    return { digest: digest.value, ...(parsed.subject ? { subject: parsed.subject.digest } : {}) };
  }

  /** ManifestPushed unless the repository has it already, and TagSet unless the tag is there. */
  private manifestEvents(repo: string, ref: ManifestReference, digest: string, parsed: ParsedManifest, size: number): EventBody[] {
    const { queries } = this.deps;
    const events: EventBody[] = [];
    if (!queries.manifest(repo, digest)) events.push(manifestPushedEvent(repo, digest, size, parsed));
    if (ref.kind === 'tag') {
      const previous = queries.tagDigest(repo, ref.tag);
      if (previous !== digest) events.push({ type: 'TagSet', repo, tag: ref.tag, digest, ...(previous ? { previous } : {}) });
    }
    return events;
  }

  /** By digest: removes the manifest and every tag on it. By tag: removes the tag only. */
  async deleteManifest(repo: string, reference: string, context: EventContext): Promise<void> {
    const row = this.resolveManifest(repo, reference);
    const ref = parseReference(reference);
    const { store, queries } = this.deps;
    if (ref.kind === 'tag') {
      store.append([{ type: 'TagRemoved', repo, tag: ref.tag, digest: row.digest }], context);
      return;
    }
    await this.withContent(repo, row.digest, () =>
      this.removeManifest(repo, row.digest, context, () => {
        if (!queries.manifest(repo, row.digest)) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${repo}`);
      }),
    );
  }

  /**
   * Removes a manifest and every tag on it; the caller holds the content lock, and `precondition`
   * re-checks inside the append that the removal is still allowed.
   */
  async removeManifest(repo: string, digest: string, context: EventContext, precondition: () => void): Promise<void> {
    const { store, queries } = this.deps;
    const events: EventBody[] = queries.tagsOf(repo, digest).map((tag) => ({ type: 'TagRemoved', repo, tag, digest }));
    events.push({ type: 'ManifestDeleted', repo, digest });
    store.append(events, context, { precondition });
    // A manifest's bytes are a blob of the repository too; keep them while a blob entry names them.
    if (queries.blobSize(repo, digest) === undefined) await this.removeAfterCommit(repo, digest, blobPath(repo, parseDigest(digest)));
  }

  referrers(repo: string, digestText: string, artifactType?: string): Referrer[] {
    assertValidName(repo);
    const digest = parseDigest(digestText);
    const rows = this.deps.queries.referrers(repo, digest.value);
    return rows
      .filter((row) => artifactType === undefined || row.artifact_type === artifactType)
      .map((row) => ({
        mediaType: row.media_type,
        digest: row.digest,
        size: row.size,
        ...(row.artifact_type !== null ? { artifactType: row.artifact_type } : {}),
        ...(row.annotations !== null ? { annotations: JSON.parse(row.annotations) as Record<string, string> } : {}),
      }));
  }
}

export { MediaTypes };
