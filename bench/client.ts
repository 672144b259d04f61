// A small OCI distribution-spec client for the benchmark, on node:http only.
//
// Every request goes to the registry's own base URL (127.0.0.1): Location headers returned by the
// registry are resolved against it and refused if they point anywhere else. Request bodies are
// streamed from files or small buffers; response bodies are either collected (bounded, for small
// answers and error messages) or streamed to /dev/null while counting bytes.

import fs from 'node:fs';
import http from 'node:http';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** A blob on disk, with its size and sha256 digest (`sha256:<hex>`). */
export interface BlobFile {
  path: string;
  size: number;
  digest: string;
}

/** A request body: nothing, a buffer, or a byte range of a file (end inclusive). */
export type RequestBody =
  | { kind: 'none' }
  | { kind: 'buffer'; data: Buffer }
  | { kind: 'file'; path: string; start: number; end: number };

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Collected body (at most COLLECT_LIMIT bytes), empty when the body was discarded. */
  body: Buffer;
  /** Number of body bytes received, whether collected or discarded. */
  bytes: number;
}

type ResponseMode = 'collect' | 'devnull';

const COLLECT_LIMIT = 4 * 1024 * 1024;

/** A request that got no answer, or an answer the client did not expect. */
export class HttpError extends Error {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number | undefined,
    readonly detail: string,
  ) {
    super(`${method} ${url} -> ${status === undefined ? 'no response' : `HTTP ${status}`}: ${detail}`);
    this.name = 'HttpError';
  }
}

function describeResponse(res: HttpResult): string {
  const interesting = ['content-type', 'content-length', 'location', 'range', 'docker-upload-uuid', 'docker-content-digest'];
  const hdrs = interesting
    .filter((h) => res.headers[h] !== undefined)
    .map((h) => `${h}: ${String(res.headers[h])}`)
    .join('; ');
  const text = res.body.subarray(0, 600).toString('utf8').replace(/\s+/g, ' ').trim();
  return `headers {${hdrs}} body ${text === '' ? '(empty)' : JSON.stringify(text)}`;
}

export interface ClientOptions {
  /** Per-request inactivity timeout (socket idle), milliseconds. */
  timeoutMs?: number;
  /** An Authorization header sent with every request (HTTP Basic for the authentication figures). */
  authorization?: string;
}

export class OciClient {
  readonly base: URL;
  readonly agent: http.Agent;
  private readonly timeoutMs: number;
  private readonly authorization: string | undefined;

  constructor(baseUrl: string | URL, agent: http.Agent, options: ClientOptions = {}) {
    this.base = new URL(baseUrl);
    if (this.base.protocol !== 'http:' || this.base.hostname !== '127.0.0.1') {
      throw new Error(`benchmark client only talks to http://127.0.0.1, not ${this.base.href}`);
    }
    this.agent = agent;
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.authorization = options.authorization;
  }

  /** Resolves a path or a Location header against the base URL; refuses other hosts. */
  resolve(location: string): URL {
    const url = new URL(location, this.base);
    if (url.protocol !== this.base.protocol || url.host !== this.base.host) {
      throw new Error(`registry redirected to ${url.href}, outside ${this.base.host}; refusing`);
    }
    return url;
  }

  /** Sends one request and waits for the whole response. */
  request(
    method: string,
    url: URL,
    headers: http.OutgoingHttpHeaders,
    body: RequestBody = { kind: 'none' },
    mode: ResponseMode = 'collect',
  ): Promise<HttpResult> {
    const target = this.resolve(url.href);
    const label = `${method} ${target.pathname}${target.search}`;
    return new Promise<HttpResult>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        reject(err instanceof HttpError ? err : new HttpError(method, label, undefined, err.message));
      };
      const allHeaders: http.OutgoingHttpHeaders = { ...headers };
      if (this.authorization !== undefined) allHeaders.authorization = this.authorization;
      if (body.kind === 'buffer') allHeaders['content-length'] = body.data.length;
      else if (body.kind === 'file') allHeaders['content-length'] = body.end - body.start + 1;
      else if (method === 'PUT' || method === 'POST' || method === 'PATCH') allHeaders['content-length'] = 0;

      const req = http.request(
        {
          agent: this.agent,
          host: target.hostname,
          port: target.port,
          method,
          path: `${target.pathname}${target.search}`,
          headers: allHeaders,
        },
        (res) => {
          const status = res.statusCode ?? 0;
          const done = (collected: Buffer, bytes: number): void => {
            if (settled) return;
            settled = true;
            resolve({ status, headers: res.headers, body: collected, bytes });
          };
          if (mode === 'devnull' && status >= 200 && status < 300) {
            // Synchronous writes to /dev/null: the kernel discards them at no cost, and unlike an
            // fs.WriteStream (a thread-pool round trip per chunk) they do not cap the pull rate.
            let fd: number | undefined = fs.openSync('/dev/null', 'w');
            const close = (): void => {
              if (fd !== undefined) fs.closeSync(fd);
              fd = undefined;
            };
            let bytes = 0;
            res.on('data', (chunk: Buffer) => {
              bytes += chunk.length;
              if (fd !== undefined) fs.writeSync(fd, chunk);
            });
            res.on('end', () => {
              close();
              done(Buffer.alloc(0), bytes);
            });
            res.on('error', (err) => {
              close();
              fail(err);
            });
            res.on('close', () => {
              close();
              if (!res.complete) fail(new Error(`connection closed after ${bytes} body bytes`));
            });
            return;
          }
          const chunks: Buffer[] = [];
          let bytes = 0;
          res.on('data', (chunk: Buffer) => {
            if (bytes < COLLECT_LIMIT) chunks.push(chunk);
            bytes += chunk.length;
          });
          res.on('end', () => done(Buffer.concat(chunks), bytes));
          res.on('error', fail);
          res.on('close', () => {
            if (!res.complete) fail(new Error(`connection closed after ${bytes} body bytes`));
          });
        },
      );
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`no activity for ${this.timeoutMs} ms`)));
      req.on('error', fail);
      if (body.kind === 'buffer') {
        req.end(body.data);
      } else if (body.kind === 'file') {
        const rs = fs.createReadStream(body.path, { start: body.start, end: body.end, highWaterMark: 1 << 20 });
        rs.on('error', (err) => req.destroy(err));
        req.on('close', () => rs.destroy());
        rs.pipe(req);
      } else {
        req.end();
      }
    });
  }

  private expect(method: string, url: URL, res: HttpResult, statuses: readonly number[]): void {
    if (!statuses.includes(res.status)) {
      throw new HttpError(method, `${url.pathname}${url.search}`, res.status, `expected ${statuses.join('/')}; ${describeResponse(res)}`);
    }
  }

  private location(method: string, url: URL, res: HttpResult): URL {
    const loc = res.headers.location;
    if (typeof loc !== 'string' || loc === '') {
      throw new HttpError(method, `${url.pathname}${url.search}`, res.status, `no Location header; ${describeResponse(res)}`);
    }
    return this.resolve(loc);
  }

  private withDigest(url: URL, digest: string): URL {
    const u = new URL(url.href);
    u.searchParams.set('digest', digest);
    return u;
  }

  /** GET /v2/ and return the status. */
  async ping(): Promise<number> {
    const url = this.resolve('/v2/');
    const res = await this.request('GET', url, {});
    return res.status;
  }

  /** POST /v2/<name>/blobs/uploads/ → 202 + Location. */
  async startUpload(repo: string): Promise<URL> {
    const url = this.resolve(`/v2/${repo}/blobs/uploads/`);
    const res = await this.request('POST', url, {});
    this.expect('POST', url, res, [202]);
    return this.location('POST', url, res);
  }

  /** POST, then one PUT ?digest= carrying the whole file (streamed, with Content-Length). */
  async pushBlobMonolithic(repo: string, blob: BlobFile): Promise<void> {
    const loc = await this.startUpload(repo);
    const put = this.withDigest(loc, blob.digest);
    const res = await this.request(
      'PUT',
      put,
      { 'content-type': 'application/octet-stream' },
      { kind: 'file', path: blob.path, start: 0, end: blob.size - 1 },
    );
    this.expect('PUT', put, res, [201]);
  }

  /** POST, PATCH chunk by chunk (following each Location), then PUT ?digest= with an empty body. */
  async pushBlobChunked(repo: string, blob: BlobFile, chunkBytes: number): Promise<number> {
    let loc = await this.startUpload(repo);
    let patches = 0;
    for (let start = 0; start < blob.size; start += chunkBytes) {
      const end = Math.min(start + chunkBytes, blob.size) - 1;
      const res = await this.request(
        'PATCH',
        loc,
        { 'content-type': 'application/octet-stream', 'content-range': `${start}-${end}` },
        { kind: 'file', path: blob.path, start, end },
      );
      this.expect('PATCH', loc, res, [202]);
      loc = this.location('PATCH', loc, res);
      patches++;
    }
    const put = this.withDigest(loc, blob.digest);
    const res = await this.request('PUT', put, {});
    this.expect('PUT', put, res, [201]);
    return patches;
  }

  /**
   * Pushes a small blob with a monolithic POST ?digest= (body in the POST → 201). If the registry
   * answers 202 instead (it opened a session and ignored the body), falls back to PUT ?digest= on
   * the returned Location. Returns which path was taken.
   */
  async pushSmallBlob(repo: string, data: Buffer, digest: string): Promise<'post' | 'put'> {
    const url = this.resolve(`/v2/${repo}/blobs/uploads/`);
    url.searchParams.set('digest', digest);
    const res = await this.request('POST', url, { 'content-type': 'application/octet-stream' }, { kind: 'buffer', data });
    this.expect('POST', url, res, [201, 202]);
    if (res.status === 201) return 'post';
    const put = this.withDigest(this.location('POST', url, res), digest);
    const putRes = await this.request('PUT', put, { 'content-type': 'application/octet-stream' }, { kind: 'buffer', data });
    this.expect('PUT', put, putRes, [201]);
    return 'put';
  }

  /** PUT /v2/<name>/manifests/<ref> → 201; returns Docker-Content-Digest if sent. */
  async putManifest(repo: string, ref: string, manifest: Buffer, mediaType: string): Promise<string | undefined> {
    const url = this.resolve(`/v2/${repo}/manifests/${ref}`);
    const res = await this.request('PUT', url, { 'content-type': mediaType }, { kind: 'buffer', data: manifest });
    this.expect('PUT', url, res, [201]);
    const d = res.headers['docker-content-digest'];
    return typeof d === 'string' ? d : undefined;
  }

  /** GET /v2/<name>/manifests/<ref> → 200; returns the body length. */
  async getManifest(repo: string, ref: string, accept: string = OCI_MANIFEST): Promise<number> {
    const url = this.resolve(`/v2/${repo}/manifests/${ref}`);
    const res = await this.request('GET', url, { accept });
    this.expect('GET', url, res, [200]);
    return res.bytes;
  }

  /** HEAD /v2/<name>/blobs/<digest>: true on 200, false on 404. */
  async blobExists(repo: string, digest: string): Promise<boolean> {
    const url = this.resolve(`/v2/${repo}/blobs/${digest}`);
    const res = await this.request('HEAD', url, {});
    this.expect('HEAD', url, res, [200, 404]);
    return res.status === 200;
  }

  /** GET /v2/<name>/blobs/<digest>, streamed to /dev/null; returns the byte count. */
  async pullBlob(repo: string, digest: string): Promise<number> {
    const url = this.resolve(`/v2/${repo}/blobs/${digest}`);
    const res = await this.request('GET', url, {}, { kind: 'none' }, 'devnull');
    this.expect('GET', url, res, [200]);
    return res.bytes;
  }
}

/** A keep-alive agent sized for the given concurrency. */
export function keepAliveAgent(concurrency: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
}
