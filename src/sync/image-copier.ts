// Copies one image from an upstream into a local repository, through the registry's commands:
// blobs first (blob-fetches.ts), then each child manifest of an index by digest, then the
// manifest itself under its tag (ManifestPushed and TagSet in one append), then what refers to it
// (referrers and cosign's tags). So the tag appears last, when everything it needs is there: an
// interrupted copy leaves no tag on a partial image, and the next copy reuses what it committed.
// Manifests keep their upstream bytes, hence their digests. What the repository holds by digest
// is not fetched again; a tag that moved upstream moves here.
import type { Logger } from 'pino';
import { SYNC_IDENTITY, type EventContext } from '../events/types.js';
import { eachBounded } from '../concurrency.js';
import { RegistryError } from '../oci/errors.js';
import { parseManifest } from '../oci/manifest.js';
import { INDEX_MANIFEST_TYPES } from '../oci/media-types.js';
import type { RegistryStateQueries } from '../projections/registry-state.js';
import type { Registry } from '../registry/registry.js';
import type { BlobFetches } from './blob-fetches.js';
import { platformWanted, type Platform } from './content-rules.js';
import { findReferrers, isSigned, type UpstreamReferrers } from './referrers.js';
import type { FetchedManifest, ManifestHead, UpstreamClient } from './upstream-client.js';

export interface ImageJob {
  client: UpstreamClient;
  /** The repository upstream, relative to the URL's path. */
  upstreamRepo: string;
  localRepo: string;
  /** A tag (set on the local repository) or a digest. */
  reference: string;
  /** The manifest, when the caller has fetched it already (on demand). */
  manifest?: FetchedManifest;
  /** The upstream repository's tags, when the caller listed them (cosign's tags are among them). */
  upstreamTags?: readonly string[];
  onlySigned?: boolean;
  /** `os/architecture[/variant]` of an index's images to copy; absent: all of them. */
  platforms?: readonly string[];
  /** Fetches a child manifest by digest (on demand shares these with clients); default: the client. */
  fetchChild?: (digest: string) => Promise<FetchedManifest | undefined>;
  signal?: AbortSignal;
}

export type CopyOutcome =
  | { kind: 'synced'; digest: string; blobs: number; bytes: number; manifests: number; referrers: number }
  /** The repository had the image under this reference already; only its referrers were looked at. */
  | { kind: 'present'; digest: string; referrers: number }
  | { kind: 'unsigned'; digest: string }
  /** The upstream has no such manifest. */
  | { kind: 'missing' };

interface Tally {
  blobs: number;
  bytes: number;
  manifests: number;
  referrers: number;
}

/** Blobs of one image fetched at once. */
const BLOB_CONCURRENCY = 4;
/** Referrers of referrers (a signature of an SBOM) are followed this deep. */
const REFERRER_DEPTH = 2;

export class ImageCopier {
  constructor(
    private readonly registry: Registry,
    private readonly queries: RegistryStateQueries,
    private readonly blobs: BlobFetches,
    private readonly logger: Logger,
  ) {}

  async copy(job: ImageJob): Promise<CopyOutcome> {
    const { client, upstreamRepo, reference, localRepo } = job;
    const options = job.signal ? { signal: job.signal } : {};
    let head: ManifestHead | FetchedManifest | undefined = job.manifest ?? (await client.headManifest(upstreamRepo, reference, options));
    if (!head) return { kind: 'missing' };
    const tags = job.upstreamTags ?? (await client.tags(upstreamRepo, options));
    const referrers = await findReferrers(client, upstreamRepo, head.digest, tags, job.signal);
    if (job.onlySigned && !isSigned(head.digest, referrers)) return { kind: 'unsigned', digest: head.digest };
    const tally: Tally = { blobs: 0, bytes: 0, manifests: 0, referrers: 0 };
    const present = this.localDigest(localRepo, reference) === head.digest;
    if (!present) {
      const manifest = isFetched(head) ? head : await client.manifest(upstreamRepo, head.digest, options);
      if (!manifest) return { kind: 'missing' };
      head = manifest;
      await this.copyTree(job, manifest, reference, tally);
    }
    await this.copyReferrers(job, head.digest, referrers, tally, 1);
    if (present) return { kind: 'present', digest: head.digest, referrers: tally.referrers };
    return { kind: 'synced', digest: head.digest, ...tally };
  }

  /** The digest the repository has under `reference` (a tag's target, or the digest if held). */
  private localDigest(repo: string, reference: string): string | undefined {
    if (reference.includes(':')) return this.queries.manifest(repo, reference) ? reference : undefined;
    const digest = this.queries.tagDigest(repo, reference);
    return digest !== undefined && this.queries.manifest(repo, digest) ? digest : undefined;
  }

  /** Everything the manifest needs, then the manifest under `reference`. */
  private async copyTree(job: ImageJob, manifest: FetchedManifest, reference: string, tally: Tally): Promise<void> {
    const parsed = parseManifest(manifest.bytes, manifest.mediaType);
    const options = job.signal ? { signal: job.signal } : {};
    const children = parsed.kind === 'index' && job.platforms ? wantedChildren(manifest.bytes, job.platforms) : parsed.manifests;
    for (const child of children) {
      if (this.queries.manifest(job.localRepo, child)) continue;
      const fetched = job.fetchChild ? await job.fetchChild(child) : await job.client.manifest(job.upstreamRepo, child, options);
      if (!fetched) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${child} of ${job.upstreamRepo}@${manifest.digest} is not upstream`);
      await this.copyTree(job, fetched, child, tally);
    }
    await eachBounded(parsed.blobs, BLOB_CONCURRENCY, async (digest) => {
      const fetch = await this.blobs.fetch(job.localRepo, digest, { client: job.client, repo: job.upstreamRepo }, job.signal ? { signal: job.signal } : {});
      if (!fetch) return;
      await fetch.committed;
      tally.blobs++;
      tally.bytes += fetch.size ?? 0;
    });
    const context: EventContext = { identity: SYNC_IDENTITY, source: { url: manifest.url, repo: job.upstreamRepo, digest: manifest.digest } };
    const partialIndex = children.length < parsed.manifests.length;
    await this.registry.putManifest(job.localRepo, reference, manifest.mediaType, manifest.bytes, context, partialIndex ? { partialIndex } : {});
    tally.manifests++;
  }

  /** Referrers from the API and the tags that stand for them, each with its own referrers. */
  private async copyReferrers(job: ImageJob, digest: string, referrers: UpstreamReferrers, tally: Tally, depth: number): Promise<void> {
    const options = job.signal ? { signal: job.signal } : {};
    const found: string[] = [];
    for (const descriptor of referrers.descriptors) {
      if (this.queries.manifest(job.localRepo, descriptor.digest)) continue;
      const manifest = await job.client.manifest(job.upstreamRepo, descriptor.digest, options);
      if (!manifest) continue;
      await this.copyTree(job, manifest, descriptor.digest, tally);
      tally.referrers++;
      found.push(descriptor.digest);
    }
    for (const tag of referrers.tags) {
      const head = await job.client.headManifest(job.upstreamRepo, tag, options);
      if (!head || this.localDigest(job.localRepo, tag) === head.digest) continue;
      const manifest = await job.client.manifest(job.upstreamRepo, head.digest, options);
      if (!manifest) continue;
      await this.copyTree(job, manifest, tag, tally);
      tally.referrers++;
      found.push(manifest.digest);
    }
    if (depth >= REFERRER_DEPTH) return;
    for (const child of found) {
      const nested = await findReferrers(job.client, job.upstreamRepo, child, job.upstreamTags ?? [], job.signal);
      await this.copyReferrers(job, child, nested, tally, depth + 1);
    }
    this.logger.debug({ repo: job.localRepo, digest, referrers: found.length }, 'synced referrers');
  }
}

/**
 * The entries of an index to copy for `platforms`: those of a wanted platform, and nested indexes
 * without a platform (their own entries are filtered in turn), as zot does.
 */
function wantedChildren(bytes: Buffer, platforms: readonly string[]): string[] {
  const { manifests } = JSON.parse(bytes.toString('utf8')) as { manifests: { digest: string; mediaType?: string; platform?: Platform }[] };
  return manifests
    .filter((entry) => platformWanted(platforms, entry.platform) || (!entry.platform && entry.mediaType !== undefined && INDEX_MANIFEST_TYPES.has(entry.mediaType)))
    .map((entry) => entry.digest);
}

function isFetched(manifest: ManifestHead | FetchedManifest): manifest is FetchedManifest {
  return 'bytes' in manifest;
}

