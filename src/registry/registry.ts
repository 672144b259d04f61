// The registry's commands and queries: everything the HTTP layer asks for, above one storage
// driver and the event store. No HTTP here: callers get values or typed RegistryErrors.
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { EventStore } from '../events/store.js';
import type { EventBody, EventContext } from '../events/types.js';
import type { ManifestRow, RegistryStateQueries } from '../projections/registry-state.js';
import type { ByteRange, StorageDriver } from '../storage/driver.js';
import { PathNotFoundError } from '../storage/driver.js';
import { blobPath, indexPath, ociLayoutPath, OCI_LAYOUT_CONTENT } from '../storage/layout.js';
import type { HashPool } from '../workers/pool.js';
import { RegistryError } from './errors.js';
import { KeyedLock } from './keyed-lock.js';
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
  driver: StorageDriver;
  store: EventStore;
  queries: RegistryStateQueries;
  hashPool: HashPool;
}

export class Registry {
  readonly uploads: UploadSessions;
  private readonly manifestCache = new ManifestCache(64 * 1024 * 1024);
  /** Repositories whose oci-layout and index.json are known to be on storage. */
  private readonly initialisedRepos = new Set<string>();
  /** Held while a repository's copy of some bytes is written or removed. */
  private readonly contentLock = new KeyedLock();

  constructor(private readonly deps: RegistryDeps) {
    this.uploads = new UploadSessions(deps.driver);
  }

  // ---- repositories -------------------------------------------------------------------------

  /** Writes the repository's oci-layout and an empty index.json, as zot does on first push. */
  async initRepository(repo: string): Promise<void> {
    if (this.initialisedRepos.has(repo)) return;
    const { driver } = this.deps;
    if (!(await driver.stat(ociLayoutPath(repo)))) await driver.putContent(ociLayoutPath(repo), OCI_LAYOUT_CONTENT);
    if (!(await driver.stat(indexPath(repo)))) {
      await driver.putContent(indexPath(repo), JSON.stringify({ schemaVersion: 2, manifests: [] }));
    }
    this.initialisedRepos.add(repo);
  }

  private withContent<T>(repo: string, digest: string, work: () => Promise<T>): Promise<T> {
    return this.contentLock.run(`${repo}@${digest}`, work);
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
    const { queries, driver } = this.deps;
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
    const path = blobPath(repo, digest);
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
    const { queries, store, driver } = this.deps;
    const held = (): void => {
      if (queries.blobSize(repo, digest.value) === undefined) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest.value} is not in ${repo}`);
      if (queries.isBlobReferenced(repo, digest.value)) throw new RegistryError('BLOB_REFERENCED');
    };
    held();
    await this.withContent(repo, digest.value, async () => {
      store.append([{ type: 'BlobDeleted', repo, digest: digest.value }], context, { precondition: held });
      // The event is the commit point: a crash before this removal leaves an orphan for GC, never
      // a served blob without bytes.
      await driver.delete(blobPath(repo, digest));
    });
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
    const { queries, store, driver } = this.deps;
    const size = queries.blobSize(from, digest.value);
    if (size === undefined) return undefined;
    if (queries.blobSize(repo, digest.value) !== undefined) return digest.value;
    await this.initRepository(repo);
    return this.withContent(repo, digest.value, async () => {
      await driver.link(blobPath(from, digest), blobPath(repo, digest));
      const stillThere = (): void => {
        if (queries.blobSize(from, digest.value) === undefined) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest.value} left ${from} during the mount`);
      };
      store.append([{ type: 'BlobMounted', repo, digest: digest.value, size, from }], context, { precondition: stillThere });
      return digest.value;
    });
  }

  async startUpload(repo: string): Promise<string> {
    assertValidName(repo);
    await this.initRepository(repo);
    return this.uploads.create(repo);
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
    return this.uploads.exclusive(repo, id, async (sizeBefore) => {
      const size = lastChunk ? await this.uploads.append(repo, id, sizeBefore, lastChunk.body, lastChunk.range) : sizeBefore;
      const upload = this.uploads.path(repo, id);
      await this.verifyDigest(upload, digest, () => this.uploads.discard(repo, id));
      await this.withContent(repo, digest.value, async () => {
        await this.placeBlob(repo, digest, upload);
        this.recordBlob(repo, digest.value, size, context);
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

  /** Hashes the upload in the worker pool; on mismatch discards it and throws DIGEST_INVALID. */
  private async verifyDigest(upload: string, digest: ParsedDigest, discard: () => Promise<void>): Promise<void> {
    const local = this.deps.driver.localPath(upload);
    if (!local) throw new Error(`storage driver ${this.deps.driver.name} has no local path for hashing`);
    const actual = await this.deps.hashPool.hashFile({ path: local, algorithm: digest.algorithm });
    if (actual !== digest.hex) {
      await discard();
      throw new RegistryError('DIGEST_INVALID', `upload content has digest ${digest.algorithm}:${actual}, not ${digest.value}`);
    }
  }

  /** Makes the verified upload durable and moves it to its content address. */
  private async placeBlob(repo: string, digest: ParsedDigest, upload: string): Promise<void> {
    const { driver } = this.deps;
    await driver.sync(upload);
    await driver.move(upload, blobPath(repo, digest));
  }

  private recordBlob(repo: string, digest: string, size: number, context: EventContext): void {
    if (this.deps.queries.blobSize(repo, digest) === size) return;
    this.deps.store.append([{ type: 'BlobPushed', repo, digest, size }], context);
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
        content = await this.deps.driver.getContent(blobPath(repo, parseDigest(row.digest)));
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
    const { queries, store, driver } = this.deps;
    const referencesPresent = (): void => {
      const missingBlob = parsed.blobs.find((b) => queries.blobSize(repo, b) === undefined);
      if (missingBlob) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `blob ${missingBlob} is not in ${repo}`, { digest: missingBlob });
      const missingChild = parsed.manifests.find((m) => queries.manifest(repo, m) === undefined);
      if (missingChild) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `manifest ${missingChild} is not in ${repo}`, { digest: missingChild });
    };
    referencesPresent();

    await this.initRepository(repo);
    await this.withContent(repo, digest.value, async () => {
      const path = blobPath(repo, digest);
      const existing = await driver.stat(path);
      if (!existing || existing.size !== content.length) await driver.putContent(path, content);
      const events = this.manifestEvents(repo, ref, digest.value, parsed, content.length);
      if (events.length > 0) store.append(events, context, { precondition: referencesPresent });
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
    const { store, queries, driver } = this.deps;
    if (ref.kind === 'tag') {
      store.append([{ type: 'TagRemoved', repo, tag: ref.tag, digest: row.digest }], context);
      return;
    }
    await this.withContent(repo, row.digest, async () => {
      const events: EventBody[] = queries.tagsOf(repo, row.digest).map((tag) => ({ type: 'TagRemoved', repo, tag, digest: row.digest }));
      events.push({ type: 'ManifestDeleted', repo, digest: row.digest });
      store.append(events, context, {
        precondition: () => {
          if (!queries.manifest(repo, row.digest)) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${repo}`);
        },
      });
      // A manifest's bytes are a blob of the repository too; keep them while a blob entry names them.
      if (queries.blobSize(repo, row.digest) === undefined) await driver.delete(blobPath(repo, parseDigest(row.digest)));
    });
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
