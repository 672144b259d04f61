// Helpers for the HTTP tests of the distribution API (test/http): OCI error assertions, upload
// sessions driven step by step, raw requests that fetch cannot send (literal `..` in paths, bodies
// cut off mid-way), and the `zot replay` consistency check run after bad input.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { runZot, writeConfig, type TestRegistry } from './registry.js';
import { sha256 } from './oci.js';

export interface OciErrorBody {
  errors: { code: string; message: string; detail?: unknown }[];
}

/**
 * Asserts an OCI error answer: the status, a JSON content type and a body of the spec's shape
 * `{"errors":[{"code","message"}]}` whose first code is `code`. Returns the parsed body.
 */
export async function expectOciError(res: Response, status: number, code: string): Promise<OciErrorBody> {
  const text = await res.text();
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status}: ${text}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json\b/, 'error bodies are JSON');
  const body = JSON.parse(text) as OciErrorBody;
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `errors is a non-empty list: ${text}`);
  for (const error of body.errors) {
    assert.equal(typeof error.code, 'string', `every error has a code: ${text}`);
    assert.equal(typeof error.message, 'string', `every error has a message: ${text}`);
    assert.ok(error.message.length > 0, 'messages are not empty');
  }
  assert.equal(body.errors[0]?.code, code, `expected code ${code}: ${text}`);
  return body;
}

/** Resolves a Location header (relative or absolute) against the registry's URL. */
export function resolveLocation(base: string, res: Response): string {
  const location = res.headers.get('location');
  assert.ok(location, `response ${res.status} has a Location header`);
  return new URL(location, base).toString();
}

/** Opens an upload session with POST and returns the absolute URL of its Location. */
export async function openSession(url: string, repo: string): Promise<string> {
  const res = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { 'Content-Length': '0' } });
  assert.equal(res.status, 202, `POST upload answered ${res.status}: ${await res.clone().text()}`);
  await res.arrayBuffer();
  return resolveLocation(url, res);
}

export function withDigest(sessionUrl: string, digest: string): string {
  const u = new URL(sessionUrl);
  u.searchParams.set('digest', digest);
  return u.toString();
}

export async function patchChunk(sessionUrl: string, data: Buffer, range?: string): Promise<Response> {
  const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream' };
  if (range !== undefined) headers['Content-Range'] = range;
  return fetch(sessionUrl, { method: 'PATCH', headers, body: data });
}

/** The size an upload session reports through GET (from its Range header), or its status if not 204. */
export async function sessionStatus(sessionUrl: string): Promise<{ status: number; range: string | null; location: string | null }> {
  const res = await fetch(sessionUrl);
  await res.arrayBuffer();
  return { status: res.status, range: res.headers.get('range'), location: res.headers.get('location') };
}

/** Pushes a blob in two PATCH chunks with Content-Range and a closing PUT without body. */
export async function pushChunked(url: string, repo: string, data: Buffer, split = Math.floor(data.length / 2)): Promise<string> {
  const session = await openSession(url, repo);
  const first = await patchChunk(session, data.subarray(0, split), `0-${split - 1}`);
  assert.equal(first.status, 202);
  const second = await patchChunk(resolveLocation(url, first), data.subarray(split), `${split}-${data.length - 1}`);
  assert.equal(second.status, 202);
  const digest = sha256(data);
  const done = await fetch(withDigest(resolveLocation(url, second), digest), { method: 'PUT' });
  assert.equal(done.status, 201, await done.text());
  return digest;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A request with the path sent exactly as given (fetch would normalise `..` and `//`). */
export function rawRequest(url: string, method: string, rawPath: string, body?: Buffer, headers: Record<string, string> = {}): Promise<RawResponse> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: target.hostname, port: target.port, method, path: rawPath, headers: { ...headers, ...(body ? { 'Content-Length': String(body.length) } : {}) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Sends `head` (request line and headers, as written, so duplicates and values node's client would
 * refuse get through) and then `body` over a plain TCP connection, and reads one answer: its status,
 * headers and body (by its Content-Length). Rejects if the connection ends before a whole answer.
 * With `readAfterSending`, nothing is read until the whole body has left, as clients do that write
 * their request before they look at the answer.
 */
export function rawHttp(url: string, head: string, body: Buffer = Buffer.alloc(0), options: { readAfterSending?: boolean } = {}): Promise<RawResponse> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(target.port), target.hostname);
    if (options.readAfterSending) socket.pause();
    let received = Buffer.alloc(0);
    let done = false;
    const finish = (outcome: RawResponse | Error): void => {
      if (done) return;
      done = true;
      socket.destroy();
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) return;
      const [statusLine = '', ...lines] = received.subarray(0, end).toString('latin1').split('\r\n');
      const headers: http.IncomingHttpHeaders = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const length = Number(headers['content-length'] ?? 0);
      if (received.length < end + 4 + length) return;
      finish({ status: Number(statusLine.split(' ')[1]), headers, body: received.subarray(end + 4, end + 4 + length).toString('utf8') });
    });
    socket.on('error', (err) => finish(new Error(`connection failed before a whole answer (${received.length} bytes received): ${err.message}`)));
    socket.on('close', () => finish(new Error(`connection closed before a whole answer (${received.length} bytes received)`)));
    // Errors while writing surface on the socket's 'error' above; the answer may still be complete.
    socket.write(head);
    socket.end(body, () => socket.resume());
  });
}

/**
 * Sends a request that declares `declaredLength` body bytes, writes only `sent`, waits until the
 * bytes have left, then destroys the socket: a client that disconnects mid-upload.
 */
export async function disconnectMidBody(requestUrl: string, method: string, declaredLength: number, sent: Buffer, headers: Record<string, string> = {}): Promise<void> {
  const target = new URL(requestUrl);
  await new Promise<void>((resolve) => {
    const req = http.request({
      host: target.hostname,
      port: target.port,
      method,
      path: target.pathname + target.search,
      headers: { 'Content-Type': 'application/octet-stream', ...headers, 'Content-Length': String(declaredLength) },
    });
    // The registry answers nothing before the body ends; the only outcome is the reset we cause.
    req.on('error', () => resolve());
    req.on('response', (res) => {
      res.resume();
      resolve();
    });
    req.on('close', () => resolve());
    req.flushHeaders();
    req.write(sent, () => {
      // Give the registry time to read the partial body before the connection goes away.
      setTimeout(() => req.destroy(), 150);
    });
  });
}

/** Repeats `attempt` until it returns true or `timeoutMs` passes. */
export async function eventually(attempt: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await attempt()) return;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * The current instant, as ISO-8601, once the clock has moved past `time` (ms since the epoch):
 * event times have millisecond resolution, so a mark between two writes needs a tick on each side.
 */
export async function instantAfter(time: number): Promise<string> {
  await eventually(async () => Date.now() > time, `the clock to pass ${new Date(time).toISOString()}`, 1000);
  return new Date().toISOString();
}

/** Upload session files of a repository on storage (zot's REPO/.uploads/ID layout). */
export function uploadFiles(root: string, repo: string): string[] {
  const dir = path.join(root, repo, '.uploads');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

/**
 * Runs `zot replay` on the registry's root: the event log rebuilt from scratch must equal the live
 * projections, and every blob and manifest they name must be on storage with its size.
 */
export async function assertReplayClean(registry: TestRegistry): Promise<void> {
  await registry.running.actorsCaughtUp();
  const configPath = writeConfig(registry.config);
  const result = await runZot(['replay', configPath]);
  assert.equal(result.code, 0, `zot replay found drift:\n${result.stdout}${result.stderr}`);
}
