// An OCI distribution client for one sync registry (one `registries[]` entry): its `urls` tried
// in order when one fails (the last one that answered is tried first next time), `maxRetries`
// rounds over them `retryDelay` apart for temporary failures (no connection, 408, 429, 5xx),
// authentication (upstream-auth.ts), redirects (a blob served from object storage), and zot's
// upstream URLs with a path: `https://docker.io/library` serves the local name `alpine` from the
// upstream repository `library/alpine`. Every name this client takes or returns is relative to
// that path. Blobs are returned as streams, never read whole.
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { isDigestAlgorithm, parseDigest } from '../oci/digest.js';
import { MediaTypes } from '../oci/media-types.js';
import { MAX_MANIFEST_BYTES } from '../registry/manifest-store.js';
import { UpstreamAuth, parseTokenAnswer, type CredentialsFile, type Token } from './upstream-auth.js';
import { Transport, TransportError, readBody, type Answer, type TlsSettings } from './upstream-transport.js';

export interface UpstreamOptions {
  urls: readonly string[];
  tls: TlsSettings;
  credentials?: CredentialsFile;
  /** Extra rounds over the URLs after a temporary failure (zot's maxRetries; 0: none). */
  maxRetries?: number;
  retryDelayMs?: number;
  /** How long a connection may stay idle before the request fails (default 30 s). */
  idleTimeoutMs?: number;
  logger?: Logger;
}

/** Per request: a tighter bound, no retries (an on-demand check), cancellation. */
export interface RequestOptions {
  signal?: AbortSignal;
  idleTimeoutMs?: number;
  retries?: boolean;
}

/** The upstream could not be asked (every URL failed), or answered something unusable. */
export class UpstreamError extends Error {
  constructor(
    message: string,
    /** Every URL failed with a temporary error: the upstream is unreachable or overloaded. */
    readonly unavailable: boolean,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

export interface ManifestHead {
  digest: string;
  mediaType: string;
  size: number;
  /** The configured URL that answered, for provenance. */
  url: string;
}

export interface FetchedManifest extends ManifestHead {
  bytes: Buffer;
}

export interface BlobStream {
  /** From Content-Length; undefined when the upstream did not send one. */
  size: number | undefined;
  body: Readable;
  url: string;
}

export interface UpstreamDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
}

/** The manifest types the client accepts, as distribution clients announce them. */
const MANIFEST_ACCEPT = [MediaTypes.ociManifest, MediaTypes.ociIndex, MediaTypes.dockerManifest, MediaTypes.dockerManifestList].join(', ');
const TEMPORARY_STATUSES = new Set([408, 429, 500, 502, 503, 504]);
const MAX_REDIRECTS = 5;
const MAX_LIST_BYTES = 16 * 1024 * 1024;
const PAGE_SIZE = 1000;
const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
const USER_AGENT = 'zot-ts-sync';
/** How long an upstream without the referrers API is not asked for referrers again. */
const REFERRERS_RECHECK_MS = 10 * 60_000;

interface Base {
  /** As configured, for logs and provenance. */
  url: string;
  origin: string;
  /** The repository namespace of a URL with a path ('' for none). */
  namespace: string;
}

interface Call {
  method: 'GET' | 'HEAD';
  /** Path and query under the origin, e.g. /v2/library/alpine/tags/list. */
  path: (base: Base) => string;
  scope: (base: Base) => string;
  accept?: string;
  options?: RequestOptions;
}

export class UpstreamClient {
  private readonly bases: readonly Base[];
  private readonly transport: Transport;
  private readonly auth: UpstreamAuth;
  /** Index of the URL that answered last: asked first next time. */
  private preferred = 0;
  /** Until when (ms) the upstream is taken to have no referrers API, after it answered so. */
  private referrersMissingUntil = 0;

  constructor(private readonly options: UpstreamOptions) {
    if (options.urls.length === 0) throw new Error('a sync registry needs at least one URL');
    this.bases = options.urls.map((url) => {
      const parsed = new URL(url);
      return { url, origin: parsed.origin, namespace: parsed.pathname.replace(/^\/+|\/+$/g, '') };
    });
    this.transport = new Transport(options.tls);
    this.auth = new UpstreamAuth(options.credentials ?? {}, (url, authorization) => this.fetchToken(url, authorization));
  }

  /** The first configured URL: how the upstream is named in logs and metrics. */
  get name(): string {
    return this.options.urls[0] as string;
  }

  /** Every repository of the catalog under the URL's path, relative to it. */
  async catalog(options: RequestOptions = {}): Promise<string[]> {
    const names: string[] = [];
    let next: string | undefined = `/v2/_catalog?n=${PAGE_SIZE}`;
    while (next !== undefined) {
      const page: string = next;
      const { answer, base } = await this.call({ method: 'GET', path: () => page, scope: () => 'registry:catalog:*', options });
      if (answer.status !== 200) throw await unexpected(answer, 'list the catalog');
      const body = JSON.parse((await readBody(answer.body, MAX_LIST_BYTES)).toString('utf8')) as { repositories?: unknown };
      for (const name of Array.isArray(body.repositories) ? body.repositories : []) {
        if (typeof name !== 'string') continue;
        const relative = relativeName(base, name);
        if (relative !== undefined) names.push(relative);
      }
      next = nextPage(answer.headers);
    }
    return names;
  }

  /** The repository's tags; none when the upstream does not know the repository. */
  async tags(repo: string, options: RequestOptions = {}): Promise<string[]> {
    const tags: string[] = [];
    let next: ((base: Base) => string) | undefined = (base) => `/v2/${fullName(base, repo)}/tags/list?n=${PAGE_SIZE}`;
    while (next !== undefined) {
      const { answer } = await this.call({ method: 'GET', path: next, scope: (base) => pullScope(base, repo), options });
      if (answer.status === 404) {
        answer.body.resume();
        return tags;
      }
      if (answer.status !== 200) throw await unexpected(answer, `list the tags of ${repo}`);
      const body = JSON.parse((await readBody(answer.body, MAX_LIST_BYTES)).toString('utf8')) as { tags?: unknown };
      for (const tag of Array.isArray(body.tags) ? body.tags : []) if (typeof tag === 'string') tags.push(tag);
      const link = nextPage(answer.headers);
      next = link === undefined ? undefined : () => link;
    }
    return tags;
  }

  /** The manifest's digest, media type and size (HEAD); undefined when the upstream has none. */
  async headManifest(repo: string, reference: string, options: RequestOptions = {}): Promise<ManifestHead | undefined> {
    const { answer, base } = await this.call({
      method: 'HEAD',
      path: (b) => `/v2/${fullName(b, repo)}/manifests/${reference}`,
      scope: (b) => pullScope(b, repo),
      accept: MANIFEST_ACCEPT,
      options,
    });
    answer.body.resume();
    if (answer.status === 404) return undefined;
    if (answer.status !== 200) throw await unexpected(answer, `check the manifest ${repo}:${reference}`);
    const digest = header(answer.headers, 'docker-content-digest');
    // Without the digest header a HEAD says too little: fetch the manifest itself.
    if (digest === undefined) return this.manifest(repo, reference, options);
    return { digest, mediaType: mediaTypeOf(answer.headers), size: Number(answer.headers['content-length'] ?? 0), url: base.url };
  }

  /**
   * The manifest's bytes, checked against the digest asked for (or the one the upstream names in
   * Docker-Content-Digest); undefined when the upstream has none.
   */
  async manifest(repo: string, reference: string, options: RequestOptions = {}): Promise<FetchedManifest | undefined> {
    const { answer, base } = await this.call({
      method: 'GET',
      path: (b) => `/v2/${fullName(b, repo)}/manifests/${reference}`,
      scope: (b) => pullScope(b, repo),
      accept: MANIFEST_ACCEPT,
      options,
    });
    if (answer.status === 404) {
      answer.body.resume();
      return undefined;
    }
    if (answer.status !== 200) throw await unexpected(answer, `fetch the manifest ${repo}:${reference}`);
    const bytes = await readBody(answer.body, MAX_MANIFEST_BYTES);
    const named = reference.includes(':') ? reference : header(answer.headers, 'docker-content-digest');
    const digest = checkedDigest(bytes, named, `${repo}:${reference}`);
    return { digest, mediaType: mediaTypeOf(answer.headers, bytes), size: bytes.length, bytes, url: base.url };
  }

  /** The blob's bytes as a stream (the caller verifies them); undefined when the upstream has none. */
  async blob(repo: string, digest: string, options: RequestOptions = {}): Promise<BlobStream | undefined> {
    const { answer, base } = await this.call({
      method: 'GET',
      path: (b) => `/v2/${fullName(b, repo)}/blobs/${digest}`,
      scope: (b) => pullScope(b, repo),
      options,
    });
    if (answer.status === 404) {
      answer.body.resume();
      return undefined;
    }
    if (answer.status !== 200) throw await unexpected(answer, `fetch the blob ${digest} of ${repo}`);
    const length = answer.headers['content-length'];
    return { size: length === undefined ? undefined : Number(length), body: answer.body, url: base.url };
  }

  /** Whether the upstream repository holds the blob (HEAD). */
  async hasBlob(repo: string, digest: string, options: RequestOptions = {}): Promise<boolean> {
    const { answer } = await this.call({
      method: 'HEAD',
      path: (b) => `/v2/${fullName(b, repo)}/blobs/${digest}`,
      scope: (b) => pullScope(b, repo),
      options,
    });
    answer.body.resume();
    if (answer.status === 404) return false;
    if (answer.status !== 200) throw await unexpected(answer, `check the blob ${digest} of ${repo}`);
    return true;
  }

  /**
   * The referrers of a manifest (OCI 1.1 referrers API); none from an upstream without the API. A
   * registry with the API answers 200 even when nothing refers to the digest, so a 404 means it
   * has none: it is not asked again for a while.
   */
  async referrers(repo: string, digest: string, options: RequestOptions = {}): Promise<UpstreamDescriptor[]> {
    if (Date.now() < this.referrersMissingUntil) return [];
    const { answer } = await this.call({
      method: 'GET',
      path: (b) => `/v2/${fullName(b, repo)}/referrers/${digest}`,
      scope: (b) => pullScope(b, repo),
      accept: MediaTypes.ociIndex,
      options,
    });
    // 404 and 405: an upstream that predates the referrers API (distribution 2.x).
    if (answer.status === 404 || answer.status === 405 || answer.status === 400) {
      answer.body.resume();
      this.referrersMissingUntil = Date.now() + REFERRERS_RECHECK_MS;
      return [];
    }
    if (answer.status !== 200) throw await unexpected(answer, `list the referrers of ${repo}@${digest}`);
    const body = JSON.parse((await readBody(answer.body, MAX_MANIFEST_BYTES)).toString('utf8')) as { manifests?: unknown };
    const found: UpstreamDescriptor[] = [];
    for (const entry of Array.isArray(body.manifests) ? body.manifests : []) {
      const { mediaType, digest: child, size, artifactType } = (entry ?? {}) as Record<string, unknown>;
      if (typeof mediaType !== 'string' || typeof child !== 'string' || typeof size !== 'number') continue;
      found.push({ mediaType, digest: child, size, ...(typeof artifactType === 'string' ? { artifactType } : {}) });
    }
    return found;
  }

  close(): void {
    this.transport.close();
  }

  // ---- one call: failover over the URLs, retries, authentication, redirects -------------------

  private async call(call: Call): Promise<{ answer: Answer; base: Base }> {
    const rounds = 1 + (call.options?.retries === false ? 0 : (this.options.maxRetries ?? 0));
    let lastFailure = 'no URL was tried';
    for (let round = 0; round < rounds; round++) {
      if (round > 0) {
        this.options.logger?.warn({ upstream: this.name, attempt: round + 1, of: rounds, err: lastFailure }, 'failed to reach upstream, retrying');
        await sleep(this.options.retryDelayMs ?? 0, undefined, call.options?.signal ? { signal: call.options.signal } : {});
      }
      for (const index of this.order()) {
        const base = this.bases[index] as Base;
        try {
          const answer = await this.exchange(base, call);
          if (TEMPORARY_STATUSES.has(answer.status)) {
            answer.body.resume();
            lastFailure = `${base.url} answered ${answer.status}`;
            continue;
          }
          this.preferred = index;
          return { answer, base };
        } catch (err) {
          if (call.options?.signal?.aborted || !(err instanceof TransportError)) throw err;
          lastFailure = err.message;
        }
      }
    }
    throw new UpstreamError(`upstream ${this.name} is unavailable: ${lastFailure}`, true);
  }

  /** The URL indexes in the order to try them: the one that answered last, then the others in order. */
  private order(): number[] {
    const indexes = this.bases.map((_, i) => i);
    return [this.preferred, ...indexes.filter((i) => i !== this.preferred)];
  }

  private async exchange(base: Base, call: Call): Promise<Answer> {
    const scope = call.scope(base);
    let url = new URL(call.path(base), base.origin);
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      // Credentials and tokens go to the registry's origin only, never to where it redirects.
      const own = url.origin === base.origin;
      const send = async (): Promise<{ answer: Answer; authorization: string | undefined }> => {
        const authorization = own ? await this.auth.authorization(url, scope) : undefined;
        const headers: Record<string, string> = { 'User-Agent': USER_AGENT, ...(call.accept ? { Accept: call.accept } : {}) };
        if (authorization !== undefined) headers['Authorization'] = authorization;
        const answer = await this.transport.send({
          method: call.method,
          url,
          headers,
          idleTimeoutMs: call.options?.idleTimeoutMs ?? this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
          ...(call.options?.signal ? { signal: call.options.signal } : {}),
        });
        return { answer, authorization };
      };
      let { answer, authorization } = await send();
      if (answer.status === 401 && own && this.auth.challenged(url, answer.headers['www-authenticate'], scope, authorization)) {
        answer.body.resume();
        ({ answer, authorization } = await send());
      }
      const location = header(answer.headers, 'location');
      if ([301, 302, 303, 307, 308].includes(answer.status) && location !== undefined) {
        answer.body.resume();
        url = new URL(location, url);
        continue;
      }
      return answer;
    }
    throw new UpstreamError(`upstream ${base.url} redirected more than ${MAX_REDIRECTS} times`, false);
  }

  private async fetchToken(realm: URL, authorization: string | undefined): Promise<Token> {
    const answer = await this.transport.send({
      method: 'GET',
      url: realm,
      headers: { 'User-Agent': USER_AGENT, ...(authorization ? { Authorization: authorization } : {}) },
      idleTimeoutMs: this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    });
    if (answer.status !== 200) {
      answer.body.resume();
      throw new UpstreamError(`the token server ${realm.origin} answered ${answer.status}`, TEMPORARY_STATUSES.has(answer.status), answer.status);
    }
    return parseTokenAnswer(await readBody(answer.body, 1024 * 1024));
  }
}

function fullName(base: Base, repo: string): string {
  return base.namespace === '' ? repo : `${base.namespace}/${repo}`;
}

function relativeName(base: Base, name: string): string | undefined {
  if (base.namespace === '') return name;
  return name.startsWith(`${base.namespace}/`) ? name.slice(base.namespace.length + 1) : undefined;
}

function pullScope(base: Base, repo: string): string {
  return `repository:${fullName(base, repo)}:pull`;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The Link header's next page (`<url>; rel="next"`), as a path under the origin. */
function nextPage(headers: IncomingHttpHeaders): string | undefined {
  const link = header(headers, 'link');
  const match = link === undefined ? null : /<([^>]+)>\s*;\s*rel="?next"?/.exec(link);
  if (!match?.[1]) return undefined;
  const target = new URL(match[1], 'http://upstream.invalid');
  return `${target.pathname}${target.search}`;
}

function mediaTypeOf(headers: IncomingHttpHeaders, bytes?: Buffer): string {
  const declared = header(headers, 'content-type')?.split(';')[0]?.trim();
  if (declared && declared !== 'application/json' && declared !== 'application/octet-stream') return declared;
  if (bytes) {
    try {
      const body = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
      if (typeof body.mediaType === 'string') return body.mediaType;
      return Array.isArray(body.manifests) ? MediaTypes.ociIndex : MediaTypes.ociManifest;
    } catch {
      // not JSON: the store refuses it with a clear error
    }
  }
  return declared ?? MediaTypes.ociManifest;
}

/** The digest of manifest bytes, checked against the one the upstream named, if any. */
function checkedDigest(bytes: Buffer, named: string | undefined, what: string): string {
  const algorithm = named?.split(':')[0] ?? 'sha256';
  const digest = `${isDigestAlgorithm(algorithm) ? algorithm : 'sha256'}:${createHash(isDigestAlgorithm(algorithm) ? algorithm : 'sha256').update(bytes).digest('hex')}`;
  if (named !== undefined && isDigestAlgorithm(algorithm) && parseDigest(named).value !== digest) {
    throw new UpstreamError(`the upstream manifest ${what} hashes to ${digest}, not ${named}`, false);
  }
  return digest;
}

async function unexpected(answer: Answer, what: string): Promise<UpstreamError> {
  let detail = '';
  try {
    detail = (await readBody(answer.body, 4096)).toString('utf8').trim().slice(0, 300);
  } catch {
    // the detail is a courtesy
  }
  const reason = answer.status === 401 || answer.status === 403 ? 'refused the credentials' : `answered ${answer.status}`;
  return new UpstreamError(`failed to ${what}: the upstream ${reason}${detail ? `: ${detail}` : ''}`, false, answer.status);
}
