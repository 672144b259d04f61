// Manifests: resolved by tag or digest, stored byte-exact under their digest, recorded (with the
// tag) in one append, and removed with their tags.
import { createHash } from 'node:crypto';
import { manifestPushedEvent } from '../events/manifest-pushed.js';
import type { EventBody, EventContext, RemovalCause } from '../events/types.js';
import { CANONICAL_DIGEST_ALGORITHM, parseDigest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { parseManifest, type ParsedManifest } from '../oci/manifest.js';
import { assertValidName, parseReference, type ManifestReference } from '../oci/names.js';
import type { ManifestRow } from '../projections/registry-state.js';
import { PathNotFoundError } from '../storage/driver.js';
import { blobPath } from '../storage/layout.js';
import { ManifestCache } from './manifest-cache.js';
import type { RegistryParts } from './parts.js';

/** Manifests larger than this are refused, as the distribution spec allows (and zot does). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** The indexes a refused delete names, at most: enough to act on, and the answer stays small. */
const MAX_NAMED_INDEXES = 16;

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

export interface PutManifestOptions {
  /** Called, inside the append, when the push moves an existing tag; throws to refuse (access control). */
  beforeTagMove?: () => void;
  /**
   * An index synced for some of its platforms (sync's content `platforms`): its bytes are kept
   * as they are, and the child manifests it lists need not all be in the repository.
   */
  partialIndex?: boolean;
}

export interface Referrer {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export class ManifestStore {
  private readonly cache = new ManifestCache(64 * 1024 * 1024);

  constructor(private readonly parts: RegistryParts) {}

  private assertRepositoryExists(repo: string): void {
    assertValidName(repo);
    if (!this.parts.queries.repositoryExists(repo)) {
      throw new RegistryError('NAME_UNKNOWN', `repository ${repo} is not known to the registry`);
    }
  }

  private resolve(repo: string, reference: string): ManifestRow {
    const { queries } = this.parts;
    const row = queries.together(() => {
      this.assertRepositoryExists(repo);
      let ref;
      try {
        ref = parseReference(reference);
      } catch {
        return undefined;
      }
      const digest = ref.kind === 'tag' ? queries.tagDigest(repo, ref.tag) : ref.digest.value;
      return digest === undefined ? undefined : queries.manifest(repo, digest);
    });
    if (!row) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${repo}`);
    return row;
  }

  /** Media type, digest and size without the content, for HEAD. */
  info(repo: string, reference: string): { digest: string; mediaType: string; size: number } {
    const row = this.resolve(repo, reference);
    return { digest: row.digest, mediaType: row.media_type, size: row.size };
  }

  async get(repo: string, reference: string): Promise<ManifestContent> {
    const row = this.resolve(repo, reference);
    let content = this.cache.get(row.digest);
    if (!content) {
      try {
        content = await this.parts.roots.for(repo).driver.getContent(blobPath(repo, parseDigest(row.digest)));
      } catch (err) {
        if (err instanceof PathNotFoundError) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${row.digest} is missing from storage`);
        throw err;
      }
      this.cache.set(row.digest, content);
    }
    return { digest: row.digest, mediaType: row.media_type, size: row.size, content };
  }

  /**
   * Stores a manifest byte-exact under its digest and records it (and the tag) in one append.
   * Every blob and child manifest it references must already be in the repository.
   */
  async put(
    repo: string,
    reference: string,
    contentType: string | undefined,
    content: Buffer,
    context: EventContext,
    options: PutManifestOptions = {},
  ): Promise<PushedManifest> {
    assertValidName(repo);
    const ref = parseReference(reference);
    if (content.length > MAX_MANIFEST_BYTES) throw new RegistryError('MANIFEST_TOO_LARGE');
    const algorithm = ref.kind === 'digest' ? ref.digest.algorithm : CANONICAL_DIGEST_ALGORITHM;
    const digest = parseDigest(`${algorithm}:${createHash(algorithm).update(content).digest('hex')}`);
    if (ref.kind === 'digest' && ref.digest.value !== digest.value) {
      throw new RegistryError('DIGEST_INVALID', `manifest content has digest ${digest.value}, not ${ref.digest.value}`);
    }
    const parsed = parseManifest(content, contentType);
    const { queries, store, roots, locks, files } = this.parts;
    const { driver } = roots.for(repo);
    const referencesPresent = (): void => {
      const missingBlob = parsed.blobs.find((b) => queries.blobSize(repo, b) === undefined);
      if (missingBlob) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `blob ${missingBlob} is not in ${repo}`, { digest: missingBlob });
      const missingChild = options.partialIndex ? undefined : parsed.manifests.find((m) => queries.manifest(repo, m) === undefined);
      if (missingChild) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `manifest ${missingChild} is not in ${repo}`, { digest: missingChild });
    };
    // One read transaction for a read per reference (RegistryStateQueries.together).
    queries.together(referencesPresent);

    // One shared hold of the repository from laying it out to the append: GC cannot remove it between.
    await locks.inRepository(repo, async () => {
      await files.ensureLayout(repo);
      await locks.withContent(repo, digest.value, async () => {
        // Bytes already at the path are trusted only when an event names them; whatever else is
        // there (even of the right size) is replaced by the content just hashed.
        if (!files.ownPathNamed(repo, digest.value)) await driver.putContent(blobPath(repo, digest), content, { unnamed: true });
        // The events from the state inside the append: another push may move the tag meanwhile;
        // a tag move is authorized there too, in the same transaction.
        await store.append(
          () => {
            const events = this.pushEvents(repo, ref, digest.value, parsed, content.length);
            if (events.some((event) => event.type === 'TagSet' && event.previous !== undefined)) options.beforeTagMove?.();
            return events;
          },
          context,
          { precondition: referencesPresent },
        );
      });
    });
    this.cache.set(digest.value, content);
    return { digest: digest.value, ...(parsed.subject ? { subject: parsed.subject.digest } : {}) };
  }

  /** ManifestPushed unless the repository has it already, and TagSet unless the tag is there. */
  private pushEvents(repo: string, ref: ManifestReference, digest: string, parsed: ParsedManifest, size: number): EventBody[] {
    const { queries } = this.parts;
    const events: EventBody[] = [];
    if (!queries.manifest(repo, digest)) events.push(manifestPushedEvent(repo, digest, size, parsed));
    if (ref.kind === 'tag') {
      const previous = queries.tagDigest(repo, ref.tag);
      if (previous !== digest) events.push({ type: 'TagSet', repo, tag: ref.tag, digest, ...(previous ? { previous } : {}) });
    }
    return events;
  }

  /**
   * By digest: removes the manifest and every tag on it, refused while an index of the repository
   * lists it (as zot does: a pull of the index would break). By tag: removes the tag only.
   */
  async delete(repo: string, reference: string, context: EventContext): Promise<void> {
    const row = this.resolve(repo, reference);
    const ref = parseReference(reference);
    const { store, queries, locks } = this.parts;
    if (ref.kind === 'tag') {
      const { tag } = ref;
      // Read again inside the append: a concurrent delete or push of the tag may come first.
      await store.append(() => {
        const digest = queries.tagDigest(repo, tag);
        if (digest === undefined) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${repo}`);
        return [{ type: 'TagRemoved', repo, tag, digest }];
      }, context);
      return;
    }
    // Checked again inside the append: an index pushed meanwhile that lists it refuses the delete.
    const removable = (): void => {
      if (!queries.manifest(repo, row.digest)) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${repo}`);
      const indexes = queries.indexesReferencing(repo, row.digest, MAX_NAMED_INDEXES);
      if (indexes.length > 0) {
        throw new RegistryError('MANIFEST_REFERENCED', `manifest ${row.digest} is referenced by ${indexes.join(', ')} in ${repo}`, {
          reference,
          referencedBy: indexes,
        });
      }
    };
    removable();
    await locks.withContent(repo, row.digest, () => this.remove(repo, row.digest, context, removable));
  }

  /**
   * Removes a manifest and every tag on it; the caller holds the content lock, and `precondition`
   * re-checks inside the append that the removal is still allowed. `cause`: why GC removes it.
   */
  async remove(repo: string, digest: string, context: EventContext, precondition: () => void, cause?: RemovalCause): Promise<void> {
    const { store, queries, files } = this.parts;
    // The tags as the append finds them: a tag pushed meanwhile goes too, with its own event.
    const events = (): EventBody[] => [
      ...queries.tagsOf(repo, digest).map((tag): EventBody => ({ type: 'TagRemoved', repo, tag, digest })),
      { type: 'ManifestDeleted', repo, digest, ...cause },
    ];
    await store.append(events, context, { precondition });
    // A manifest's bytes are a blob of the repository too; keep them while a blob entry names them.
    if (!files.ownPathNamed(repo, digest)) await files.removeAfterCommit(repo, digest, blobPath(repo, parseDigest(digest)));
  }

  referrers(repo: string, digestText: string, artifactType?: string): Referrer[] {
    assertValidName(repo);
    const digest = parseDigest(digestText);
    const rows = this.parts.queries.referrers(repo, digest.value);
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
