// Sync on demand (`onDemand: true`): a manifest or blob read that misses locally, in a repository
// an on-demand registry's content takes (any repository when it has no content), is answered from
// upstream.
//
// A manifest: fetched once (concurrent reads of one repository and reference share it), verified
// against its digest, and answered at once from memory ("staged") while the image is copied in
// the background through the registry's commands (image-copier.ts); the tag is set when the copy
// is complete. A blob: fetched into the repository (blob-fetches.ts), the client reading the bytes
// as they arrive (streaming pull-through, beyond zot); a fetch under way, by the background copy
// or another client, is joined. A HEAD waits for the blob's digest to be verified.
//
// A tag the repository holds is checked upstream on each read (zot's behaviour), one check at a
// time per tag, bounded: a tag that moved is pulled again; an upstream that does not answer in
// time, or could not be reached lately, leaves the local copy to answer.
//
// containerd's mirror requests carry `?ns=<upstream host>`: mirrorName() maps them to the local
// name `<host>/<name>` (`:` written `_`), which this module serves from the registry with that host.
import type { Logger } from 'pino';
import { isRegistryError, RegistryError } from '../oci/errors.js';
import { looksLikeDigest } from '../oci/digest.js';
import { isValidName } from '../oci/names.js';
import type { ManifestContent } from '../registry/manifest-store.js';
import { clipRange, type BlobHandle, type BlobReadOptions, type PullThrough, type RangeFor } from '../registry/pull-through.js';
import type { BlobFetches } from './blob-fetches.js';
import { ruleForLocal, ruleForUpstream, upstreamName } from './content-rules.js';
import type { ImageCopier } from './image-copier.js';
import { findReferrers, isSigned } from './referrers.js';
import type { SyncMetrics } from './sync-metrics.js';
import type { SyncRegistrySettings } from './sync-settings.js';
import { UpstreamError, type FetchedManifest, type ManifestHead, type UpstreamClient } from './upstream-client.js';

export interface OnDemandSource {
  settings: SyncRegistrySettings;
  client: UpstreamClient;
}

export interface OnDemandOptions {
  /** Bound of the upstream check of a tag the repository holds. */
  checkTimeoutMs?: number;
  /** After a failed check, the upstream is not asked again for this long (reads answer locally). */
  unreachableForMs?: number;
  /** Bound of a manifest fetch for a read that missed. */
  fetchTimeoutMs?: number;
  /** Images pulled (staged and copied) at once; more is TOOMANYREQUESTS, so clients cannot grow it. */
  maxImages?: number;
  /** Blobs fetched at once for reads; more is TOOMANYREQUESTS. */
  maxBlobFetches?: number;
}

interface Candidate {
  source: OnDemandSource;
  upstreamRepo: string;
  /** The content rule's platforms, when it has some. */
  platforms?: readonly string[];
}

interface Staged {
  manifest: FetchedManifest;
  candidate: Candidate;
}

const MISSES = new Set(['MANIFEST_UNKNOWN', 'NAME_UNKNOWN', 'BLOB_UNKNOWN']);


function isMiss(err: unknown): err is RegistryError {
  return isRegistryError(err) && MISSES.has(err.kind);
}

/** A host as a repository name component: lower case, a port's `:` written `_`. */
export function hostAsName(host: string): string {
  return host.toLowerCase().replace(/:/g, '_');
}

export class OnDemand implements PullThrough {
  /** Manifests answered from upstream while their image is copied, by repository and reference. */
  private readonly staged = new Map<string, Promise<Staged>>();
  /** Tag checks in flight, by repository and tag. */
  private readonly checks = new Map<string, Promise<ManifestHead | undefined>>();
  private readonly unreachableUntil = new Map<OnDemandSource, number>();
  /** Background copies running, for stop(). */
  private readonly copies = new Set<Promise<void>>();
  private readonly stopping = new AbortController();
  private readonly checkTimeoutMs: number;
  private readonly unreachableForMs: number;
  private readonly fetchTimeoutMs: number;
  private readonly maxImages: number;
  private readonly maxBlobFetches: number;

  constructor(
    private readonly sources: readonly OnDemandSource[],
    private readonly copier: ImageCopier,
    private readonly blobs: BlobFetches,
    private readonly logger: Logger,
    private readonly metrics: SyncMetrics,
    options: OnDemandOptions = {},
  ) {
    this.checkTimeoutMs = options.checkTimeoutMs ?? 3_000;
    this.unreachableForMs = options.unreachableForMs ?? 30_000;
    this.fetchTimeoutMs = options.fetchTimeoutMs ?? 10_000;
    this.maxImages = options.maxImages ?? 64;
    this.maxBlobFetches = options.maxBlobFetches ?? 64;
  }

  /** The local name of a mirror request `?ns=<host>` for `name`, when a registry has that host. */
  mirrorName(ns: string, name: string): string | undefined {
    const wanted = ns.toLowerCase();
    const source = this.sources.find((s) => s.settings.urls.some((url) => hostMatches(new URL(url), wanted)));
    if (!source) return undefined;
    const local = `${hostAsName(wanted)}/${name}`;
    return isValidName(local) ? local : undefined;
  }

  // ---- manifests ----------------------------------------------------------------------------

  async manifest(repo: string, reference: string, local: () => Promise<ManifestContent>): Promise<ManifestContent> {
    let found: ManifestContent | undefined;
    let miss: RegistryError | undefined;
    try {
      found = await local();
    } catch (err) {
      if (!isMiss(err)) throw err;
      miss = err;
    }
    const candidates = this.candidates(repo);
    if (candidates.length === 0) {
      if (found) return found;
      throw miss;
    }
    if (!found) return content((await this.stage(repo, reference, candidates, miss, true)).manifest);
    if (looksLikeDigest(reference)) return found;
    const moved = await this.checkTag(repo, reference, found.digest, candidates);
    if (!moved) return found;
    try {
      return content((await this.stage(repo, reference, candidates, miss, true)).manifest);
    } catch (err) {
      this.logger.warn({ repo, reference, err }, 'failed to pull a tag that moved upstream, serving the local copy');
      return found;
    }
  }

  /** The candidates that could serve `repo`, in the order of the registries. */
  private candidates(repo: string): Candidate[] {
    const found: Candidate[] = [];
    for (const source of this.sources) {
      const hosted = source.settings.urls.map((url) => `${hostAsName(new URL(url).host)}/`).find((prefix) => repo.startsWith(prefix));
      if (hosted !== undefined) {
        const upstreamRepo = repo.slice(hosted.length);
        const rule = ruleForUpstream(source.settings.content, upstreamRepo);
        if (source.settings.content.length === 0 || rule) found.push({ source, upstreamRepo, ...(rule?.platforms ? { platforms: rule.platforms } : {}) });
        continue;
      }
      if (source.settings.content.length === 0) {
        found.push({ source, upstreamRepo: repo });
        continue;
      }
      const rule = ruleForLocal(source.settings.content, repo);
      if (rule) found.push({ source, upstreamRepo: upstreamName(rule, repo), ...(rule.platforms ? { platforms: rule.platforms } : {}) });
    }
    return found;
  }

  /**
   * Whether the tag moved upstream: the upstream's head when it names another digest. One check per
   * tag at a time, bounded; an upstream that fails it is left alone for a while.
   */
  private checkTag(repo: string, tag: string, localDigest: string, candidates: readonly Candidate[]): Promise<ManifestHead | undefined> {
    const key = `${repo}\u0000${tag}`;
    const running = this.checks.get(key);
    if (running) return running;
    const check = (async (): Promise<ManifestHead | undefined> => {
      const candidate = candidates.find((c) => (this.unreachableUntil.get(c.source) ?? 0) <= Date.now());
      if (!candidate) return undefined;
      try {
        const head = await candidate.source.client.headManifest(candidate.upstreamRepo, tag, {
          idleTimeoutMs: this.checkTimeoutMs,
          retries: false,
          signal: AbortSignal.timeout(this.checkTimeoutMs),
        });
        return head && head.digest !== localDigest ? head : undefined;
      } catch (err) {
        this.unreachableUntil.set(candidate.source, Date.now() + this.unreachableForMs);
        this.logger.warn({ upstream: candidate.source.client.name, repo, tag, err }, 'failed to check tag upstream, serving the local copy');
        return undefined;
      }
    })().finally(() => this.checks.delete(key));
    this.checks.set(key, check);
    return check;
  }

  /**
   * The manifest staged for `repo` and `reference`: fetched once and answered from memory until
   * its image is copied. With `copy`, the copy starts here and the entry goes when it ends;
   * without, the caller's copy includes it and `forget` drops the entry after it.
   */
  private stage(repo: string, reference: string, candidates: readonly Candidate[], miss: RegistryError | undefined, copy: boolean): Promise<Staged> {
    const key = `${repo}\u0000${reference}`;
    const staged = this.staged.get(key);
    if (staged) return staged;
    if (this.stopping.signal.aborted) return Promise.reject(new RegistryError('UPSTREAM_UNAVAILABLE', 'sync is stopping'));
    if (copy && this.copies.size >= this.maxImages) {
      return Promise.reject(new RegistryError('TOOMANYREQUESTS', `${this.maxImages} images are being pulled from upstream already; retry later`));
    }
    const fetching = this.fetchManifest(repo, reference, candidates, miss);
    this.staged.set(key, fetching);
    const forget = (): void => this.forget(key, fetching);
    fetching.then((found) => {
      if (!copy) return;
      // A read by digest of the manifest staged under a tag is answered from the same bytes.
      const byDigest = `${repo}\u0000${found.manifest.digest}`;
      const alias = byDigest !== key && !this.staged.has(byDigest);
      if (alias) this.staged.set(byDigest, fetching);
      const copying = this.copyInBackground(repo, reference, found);
      this.copies.add(copying);
      void copying.finally(() => {
        forget();
        if (alias) this.forget(byDigest, fetching);
        this.copies.delete(copying);
      });
    }, forget);
    return fetching;
  }

  private forget(key: string, entry: Promise<Staged>): void {
    if (this.staged.get(key) === entry) this.staged.delete(key);
  }

  private async fetchManifest(repo: string, reference: string, candidates: readonly Candidate[], miss: RegistryError | undefined): Promise<Staged> {
    let unreachable: unknown;
    for (const candidate of candidates) {
      const { client, settings } = candidate.source;
      let manifest: FetchedManifest | undefined;
      try {
        manifest = await client.manifest(candidate.upstreamRepo, reference, { idleTimeoutMs: this.fetchTimeoutMs });
      } catch (err) {
        if (!(err instanceof UpstreamError)) throw err;
        unreachable = err;
        this.logger.warn({ upstream: client.name, repo, reference, err }, 'failed to fetch manifest upstream');
        continue;
      }
      if (!manifest) continue;
      if (settings.onlySigned && !looksLikeDigest(reference)) {
        const referrers = await findReferrers(client, candidate.upstreamRepo, manifest.digest, await client.tags(candidate.upstreamRepo));
        if (!isSigned(manifest.digest, referrers)) {
          this.logger.info({ upstream: client.name, repo: candidate.upstreamRepo, tag: reference, localRepo: repo, digest: manifest.digest, reason: 'not signed' }, 'image skipped');
          this.metrics.image(client.name, 'skipped');
          continue;
        }
      }
      return { manifest, candidate };
    }
    if (unreachable !== undefined) {
      throw new RegistryError('UPSTREAM_UNAVAILABLE', `no upstream could be asked for ${repo}:${reference}: ${(unreachable as Error).message}`);
    }
    throw miss ?? new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not in ${repo} nor upstream`);
  }

  private async copyInBackground(repo: string, reference: string, staged: Staged): Promise<void> {
    const { source, upstreamRepo } = staged.candidate;
    const upstream = source.client.name;
    const fields = { upstream, repo: upstreamRepo, reference, localRepo: repo, onDemand: true };
    const children: [string, Promise<Staged>][] = [];
    try {
      const outcome = await this.copier.copy({
        client: source.client,
        upstreamRepo,
        localRepo: repo,
        reference,
        manifest: staged.manifest,
        signal: this.stopping.signal,
        ...(staged.candidate.platforms ? { platforms: staged.candidate.platforms } : {}),
        // A child GET by a client and the copy's own fetch of it share one fetch.
        fetchChild: async (digest) => {
          const child = this.stage(repo, digest, [staged.candidate], undefined, false);
          children.push([`${repo}\u0000${digest}`, child]);
          return (await child.catch(() => undefined))?.manifest;
        },
      });
      if (outcome.kind === 'synced') {
        const { digest, blobs, bytes, manifests, referrers } = outcome;
        this.logger.info({ ...fields, digest, blobs, bytes, manifests, referrers }, 'image synced');
        this.metrics.image(upstream, 'synced');
      }
    } catch (err) {
      if (this.stopping.signal.aborted) return;
      this.logger.error({ ...fields, err }, 'failed to sync image');
      this.metrics.image(upstream, 'failed');
      this.metrics.error(upstream);
    } finally {
      for (const [key, child] of children) this.forget(key, child);
    }
  }

  /** Stops the background copies (their blob fetches are cancelled) and waits for them. */
  async stop(): Promise<void> {
    this.stopping.abort(new Error('sync is stopping'));
    await Promise.all([...this.copies]);
  }

  // ---- blobs --------------------------------------------------------------------------------

  async blob(repo: string, digest: string, rangeFor: RangeFor | undefined, options: BlobReadOptions, local: () => Promise<BlobHandle>): Promise<BlobHandle> {
    let miss: RegistryError;
    try {
      return await local();
    } catch (err) {
      if (!isMiss(err)) throw err;
      miss = err;
    }
    let unreachable: unknown;
    for (const candidate of this.candidates(repo)) {
      let fetch;
      try {
        fetch = await this.blobs.fetch(repo, digest, { client: candidate.source.client, repo: candidate.upstreamRepo }, { limit: this.maxBlobFetches });
      } catch (err) {
        if (isMiss(err)) continue;
        if (!(err instanceof UpstreamError)) throw err;
        unreachable = err;
        continue;
      }
      // Committed meanwhile, of unknown size, or a HEAD: answer once the digest is verified.
      if (!fetch) return local();
      if (fetch.size === undefined || options.body === false) {
        await fetch.committed.catch((err: unknown) => {
          throw new RegistryError('UPSTREAM_UNAVAILABLE', `failed to fetch blob ${digest} of ${repo} from upstream: ${(err as Error).message}`);
        });
        return local();
      }
      const size = fetch.size;
      const range = clipRange(size, rangeFor);
      return { size, digest, ...(range ? { range } : {}), open: async () => ({ stream: await fetch.reader(range) }) };
    }
    if (unreachable !== undefined) throw new RegistryError('UPSTREAM_UNAVAILABLE', `no upstream could be asked for blob ${digest} of ${repo}: ${(unreachable as Error).message}`);
    throw miss;
  }
}

function content(manifest: FetchedManifest): ManifestContent {
  return { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.size, content: manifest.bytes };
}

function hostMatches(url: URL, ns: string): boolean {
  return url.host.toLowerCase() === ns || (!ns.includes(':') && url.hostname.toLowerCase() === ns);
}
