// Every endpoint and every error of src/http/oci-errors.ts, driven through HTTP with its status and
// the body `{"errors":[{"code","message"}]}` in JSON.
// Mirrors the OCI distribution-spec conformance suite (opencontainers/distribution-spec,
// conformance/): 01_pull_test.go "Error codes" (a 4xx body holds an OCI code) and the error-code list
// of setup.go; the 405 answers the suite accepts for deletes (04_management_test.go and the
// teardowns). UNAUTHORIZED and DENIED have no trigger before auth exists, and INTERNAL has none by
// design: the last test checks every other entry of the table was seen here.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OCI_ERRORS } from '../../src/http/oci-errors.js';
import type { ErrorKind } from '../../src/oci/errors.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { OCI_INDEX, OCI_MANIFEST, descriptor, makeImage, pushBlob, pushImage, pushManifest, sha256 } from '../helpers/oci.js';
import { expectOciError, eventually, openSession, patchChunk, rawHttp, rawRequest, sessionStatus, withDigest, type RawResponse } from '../helpers/http.js';

let registry: TestRegistry;
let url: string;
const seen = new Set<ErrorKind>();

/**
 * Kinds with no trigger here: UNAUTHORIZED and DENIED need an authentication config (test/auth and
 * test/auth-http answer them), UPSTREAM_UNAVAILABLE needs a sync upstream
 * (test/sync/on-demand.test.ts answers it), INTERNAL is a bug by definition, REQUEST_TIMEOUT
 * needs headers held back for node's headersTimeout (checked every 30 s), and LOG_UNWRITABLE a
 * failed fsync of the event log (test/storage/log-sync-failure.test.ts injects one with strace).
 */
const UNTRIGGERABLE: readonly ErrorKind[] = ['UNAUTHORIZED', 'DENIED', 'UPSTREAM_UNAVAILABLE', 'INTERNAL', 'REQUEST_TIMEOUT', 'LOG_UNWRITABLE'];

/**
 * Asserts the answer is the table's entry for `kind`, whose status and code are also written here
 * literally so that a change of the table shows up as a failing test.
 */
async function expectKind(res: Response, kind: ErrorKind, status: number, code: string): Promise<void> {
  assert.equal(OCI_ERRORS[kind].status, status, `the table answers ${kind} with ${status}`);
  assert.equal(OCI_ERRORS[kind].code, code, `the table answers ${kind} with ${code}`);
  await expectOciError(res, status, code);
  seen.add(kind);
}

const repo = 'errors/repo';
const image = makeImage();
const absentDigest = sha256('never pushed anywhere');

before(async () => {
  registry = await startTestRegistry();
  url = registry.url;
  assert.equal((await pushImage(url, repo, 'latest', image)).status, 201);
});
after(async () => {
  await registry.stop();
});

describe('the error body', () => {
  it('is JSON of the form {"errors":[{"code","message"}]} with a code of the spec', async () => {
    const res = await fetch(`${url}/v2/${repo}/manifests/absent`);
    assert.equal(res.status, 404);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json\b/);
    const body = (await res.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body), ['errors']);
    const errors = body.errors as Record<string, unknown>[];
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.code, 'MANIFEST_UNKNOWN');
    assert.equal(typeof errors[0]?.message, 'string');
    for (const key of Object.keys(errors[0] ?? {})) assert.ok(['code', 'message', 'detail'].includes(key), `unexpected field ${key}`);
  });
});

describe('BLOB_UNKNOWN (404)', () => {
  it('GET and DELETE of a blob the repository does not hold', async () => {
    await expectKind(await fetch(`${url}/v2/${repo}/blobs/${absentDigest}`), 'BLOB_UNKNOWN', 404, 'BLOB_UNKNOWN');
    await expectKind(await fetch(`${url}/v2/${repo}/blobs/${absentDigest}`, { method: 'DELETE' }), 'BLOB_UNKNOWN', 404, 'BLOB_UNKNOWN');
  });

  it('HEAD of an unknown blob is a bodiless 404', async () => {
    const res = await fetch(`${url}/v2/${repo}/blobs/${absentDigest}`, { method: 'HEAD' });
    assert.equal(res.status, 404);
    assert.equal((await res.arrayBuffer()).byteLength, 0);
  });
});

describe('BLOB_UPLOAD_INVALID (400)', () => {
  it('a second request on a session another request is still writing', async () => {
    const session = await openSession(url, repo);
    const target = new URL(session);
    const first = randomBytes(1000);
    // A PATCH that has sent half its body and is still sending holds the session.
    let firstStatus = 0;
    const holding = http.request({ host: target.hostname, port: target.port, method: 'PATCH', path: target.pathname, headers: { 'Content-Length': String(first.length) } });
    const firstDone = new Promise<void>((resolve, reject) => {
      holding.on('response', (res) => {
        firstStatus = res.statusCode ?? 0;
        res.resume();
        res.on('end', () => resolve());
      });
      holding.on('error', reject);
    });
    holding.write(first.subarray(0, 500));

    let busy: Response | undefined;
    await eventually(async () => {
      const res = await patchChunk(session, Buffer.alloc(0));
      if (res.status === 400) {
        busy = res;
        return true;
      }
      await res.arrayBuffer();
      return false;
    }, 'the second PATCH to be refused while the first holds the session');
    await expectKind(busy as Response, 'BLOB_UPLOAD_INVALID', 400, 'BLOB_UPLOAD_INVALID');

    holding.end(first.subarray(500));
    await firstDone;
    assert.equal(firstStatus, 202, 'the first request completes normally');
    assert.equal((await sessionStatus(session)).range, `0-${first.length - 1}`, 'the refused request wrote nothing');
  });
});

describe('BLOB_UPLOAD_UNKNOWN (404)', () => {
  it('GET, PATCH, PUT and DELETE of a session that does not exist', async () => {
    const unknown = `${url}/v2/${repo}/blobs/uploads/${randomUUID()}`;
    await expectKind(await fetch(unknown), 'BLOB_UPLOAD_UNKNOWN', 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectKind(await patchChunk(unknown, Buffer.from('x')), 'BLOB_UPLOAD_UNKNOWN', 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectKind(await fetch(withDigest(unknown, sha256('x')), { method: 'PUT', body: 'x' }), 'BLOB_UPLOAD_UNKNOWN', 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectKind(await fetch(unknown, { method: 'DELETE' }), 'BLOB_UPLOAD_UNKNOWN', 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('a session id that is not one the registry hands out', async () => {
    for (const id of ['not-a-session', 'ABCDEF00-0000-0000-0000-000000000000', '0']) {
      await expectKind(await fetch(`${url}/v2/${repo}/blobs/uploads/${encodeURIComponent(id)}`), 'BLOB_UPLOAD_UNKNOWN', 404, 'BLOB_UPLOAD_UNKNOWN');
    }
  });
});

describe('DIGEST_INVALID (400)', () => {
  it('a monolithic POST whose ?digest= does not match the body', async () => {
    const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha256('other')}`, { method: 'POST', body: 'content' });
    await expectKind(res, 'DIGEST_INVALID', 400, 'DIGEST_INVALID');
  });

  it('a closing PUT whose ?digest= does not match the upload', async () => {
    const session = await openSession(url, repo);
    const res = await fetch(withDigest(session, sha256('other')), { method: 'PUT', body: 'content' });
    await expectKind(res, 'DIGEST_INVALID', 400, 'DIGEST_INVALID');
  });

  it('a closing PUT without ?digest=', async () => {
    const session = await openSession(url, repo);
    await expectKind(await fetch(session, { method: 'PUT', body: 'content' }), 'DIGEST_INVALID', 400, 'DIGEST_INVALID');
  });

  it('a malformed digest in a query or a path', async () => {
    await expectKind(await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=sha256:xyz`, { method: 'POST', body: 'x' }), 'DIGEST_INVALID', 400, 'DIGEST_INVALID');
    await expectKind(await fetch(`${url}/v2/${repo}/blobs/sha256:abc`), 'DIGEST_INVALID', 400, 'DIGEST_INVALID');
    await expectKind(await fetch(`${url}/v2/${repo}/blobs/${sha256('x').toUpperCase()}`), 'DIGEST_INVALID', 400, 'DIGEST_INVALID');
  });

  it('a manifest PUT by a digest that is not the digest of the body', async () => {
    const other = makeImage();
    const res = await pushManifest(url, repo, other.digest, image.manifestBytes);
    await expectKind(res, 'DIGEST_INVALID', 400, 'DIGEST_INVALID');
  });
});

describe('MANIFEST_BLOB_UNKNOWN (400)', () => {
  it('an image manifest naming a blob the repository does not hold; detail names it', async () => {
    const missing = makeImage();
    await pushBlob(url, repo, missing.config);
    const res = await pushManifest(url, repo, 'missing-layer', missing.manifestBytes);
    const body = (await res.clone().json()) as { errors: { detail?: { digest?: string } }[] };
    await expectKind(res, 'MANIFEST_BLOB_UNKNOWN', 400, 'MANIFEST_BLOB_UNKNOWN');
    assert.equal(body.errors[0]?.detail?.digest, sha256(missing.layers[0] as Buffer));
  });

  it('an index naming a manifest the repository does not hold', async () => {
    const child = makeImage();
    const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [descriptor(OCI_MANIFEST, child.manifestBytes)] });
    await expectKind(await pushManifest(url, repo, 'missing-child', index, OCI_INDEX), 'MANIFEST_BLOB_UNKNOWN', 400, 'MANIFEST_BLOB_UNKNOWN');
  });
});

describe('MANIFEST_INVALID (400) and manifests over 4 MiB (413)', () => {
  it('a body that is not JSON', async () => {
    await expectKind(await pushManifest(url, repo, 'broken', '{"schemaVersion": 2,'), 'MANIFEST_INVALID', 400, 'MANIFEST_INVALID');
  });

  it('a tag that the grammar refuses', async () => {
    for (const tag of ['-leading-dash', '.dot', 'a'.repeat(129)]) {
      await expectKind(await pushManifest(url, repo, tag, image.manifestBytes), 'MANIFEST_INVALID', 400, 'MANIFEST_INVALID');
    }
  });

  it('a body over 4 MiB with a declared length is 413, with the table message', async () => {
    const huge = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, annotations: { pad: 'x'.repeat(4 * 1024 * 1024) } });
    const res = await pushManifest(url, repo, 'huge', huge);
    const body = (await res.clone().json()) as { errors: { message: string }[] };
    await expectKind(res, 'MANIFEST_TOO_LARGE', 413, 'MANIFEST_INVALID');
    assert.equal(body.errors[0]?.message, OCI_ERRORS.MANIFEST_TOO_LARGE.message);
  });

  it('a body over 4 MiB sent chunked, with no length, is 413 too', async () => {
    const piece = Buffer.alloc(256 * 1024, 0x20);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 5 * 1024 * 1024) return controller.close();
        sent += piece.length;
        controller.enqueue(piece);
      },
    });
    const res = await fetch(`${url}/v2/${repo}/manifests/huge-chunked`, {
      method: 'PUT',
      headers: { 'Content-Type': OCI_MANIFEST },
      body: stream,
      duplex: 'half',
    } as RequestInit & { duplex: 'half' });
    await expectKind(res, 'MANIFEST_TOO_LARGE', 413, 'MANIFEST_INVALID');
  });

  it('after a 413 on a chunked body, the kept-alive connection still answers the next request', async () => {
    const target = new URL(url);
    const socket = net.connect(Number(target.port), target.hostname);
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => undefined);
    const waitFor = (pattern: RegExp, what: string): Promise<void> => eventually(async () => pattern.test(received), what, 5000);

    socket.write(`PUT /v2/${repo}/manifests/huge-keepalive HTTP/1.1\r\nHost: registry\r\nContent-Type: ${OCI_MANIFEST}\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const piece = Buffer.alloc(256 * 1024, 0x20);
    for (let i = 0; i < 20; i++) socket.write(Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]));
    socket.write('0\r\n\r\n');
    await waitFor(/^HTTP\/1\.1 413 [^]*\r\n\r\n[^]*"errors"/, 'the 413 answer');
    assert.doesNotMatch(received, /connection: close/i, 'the registry keeps the connection');

    received = '';
    socket.write('GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n');
    await waitFor(/^HTTP\/1\.1 200 /, 'the next request on the same connection to be answered');
    socket.destroy();
    await closed;
  });

  it('a body of exactly 4 MiB is not refused for its size', async () => {
    const prefix = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: descriptor('application/vnd.oci.image.config.v1+json', image.config), layers: [] }).slice(0, -1);
    const suffix = ',"annotations":{"pad":"';
    const end = '"}}';
    const pad = 4 * 1024 * 1024 - Buffer.byteLength(prefix + suffix + end);
    const body = prefix + suffix + 'x'.repeat(pad) + end;
    assert.equal(Buffer.byteLength(body), 4 * 1024 * 1024);
    const res = await pushManifest(url, repo, 'exactly-4mib', body);
    assert.equal(res.status, 201, await res.text());
  });
});

describe('DENIED (405) for deleting a manifest an index of the repository lists', () => {
  it('the delete of the child by digest, as zot answers it; detail names the indexes', async () => {
    const child = makeImage();
    assert.equal((await pushImage(url, repo, child.digest, child)).status, 201);
    const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [descriptor(OCI_MANIFEST, child.manifestBytes)] });
    assert.equal((await pushManifest(url, repo, 'listing-child', index, OCI_INDEX)).status, 201);
    const res = await fetch(`${url}/v2/${repo}/manifests/${child.digest}`, { method: 'DELETE' });
    const body = (await res.clone().json()) as { errors: { detail?: unknown }[] };
    await expectKind(res, 'MANIFEST_REFERENCED', 405, 'DENIED');
    assert.deepEqual(body.errors[0]?.detail, { reference: child.digest, referencedBy: [sha256(index)] });
  });
});

describe('MANIFEST_UNKNOWN (404)', () => {
  it('GET, HEAD and DELETE of a tag or digest the repository does not hold', async () => {
    await expectKind(await fetch(`${url}/v2/${repo}/manifests/absent`), 'MANIFEST_UNKNOWN', 404, 'MANIFEST_UNKNOWN');
    await expectKind(await fetch(`${url}/v2/${repo}/manifests/${absentDigest}`), 'MANIFEST_UNKNOWN', 404, 'MANIFEST_UNKNOWN');
    await expectKind(await fetch(`${url}/v2/${repo}/manifests/absent`, { method: 'DELETE' }), 'MANIFEST_UNKNOWN', 404, 'MANIFEST_UNKNOWN');
    const head = await fetch(`${url}/v2/${repo}/manifests/absent`, { method: 'HEAD' });
    assert.equal(head.status, 404);
    assert.equal((await head.arrayBuffer()).byteLength, 0);
  });
});

describe('NAME_INVALID (400)', () => {
  it('an upper-case name on every endpoint that takes a name', async () => {
    const bad = 'Errors/Upper';
    const session = `${url}/v2/${bad}/blobs/uploads/${randomUUID()}`;
    const requests: [string, RequestInit][] = [
      [`${url}/v2/${bad}/tags/list`, {}],
      [`${url}/v2/${bad}/manifests/latest`, {}],
      [`${url}/v2/${bad}/manifests/latest`, { method: 'PUT', headers: { 'Content-Type': OCI_MANIFEST }, body: image.manifestBytes }],
      [`${url}/v2/${bad}/manifests/${image.digest}`, { method: 'DELETE' }],
      [`${url}/v2/${bad}/blobs/${absentDigest}`, {}],
      [`${url}/v2/${bad}/blobs/${absentDigest}`, { method: 'DELETE' }],
      [`${url}/v2/${bad}/blobs/uploads/`, { method: 'POST' }],
      [session, {}],
      [session, { method: 'PATCH', body: 'x' }],
      [withDigest(session, sha256('x')), { method: 'PUT', body: 'x' }],
      [session, { method: 'DELETE' }],
      [`${url}/v2/${bad}/referrers/${absentDigest}`, {}],
    ];
    for (const [target, init] of requests) {
      await expectKind(await fetch(target, init), 'NAME_INVALID', 400, 'NAME_INVALID');
    }
  });

  it('a literal .. component, sent as is', async () => {
    const res = await rawRequest(url, 'GET', '/v2/errors/../repo/tags/list');
    assert.equal(res.status, 400);
    assert.match(res.headers['content-type'] ?? '', /^application\/json\b/);
    assert.equal((JSON.parse(res.body) as { errors: { code: string }[] }).errors[0]?.code, 'NAME_INVALID');
  });
});

describe('NAME_UNKNOWN (404)', () => {
  it('tags and manifests of a repository that does not exist', async () => {
    await expectKind(await fetch(`${url}/v2/errors/nowhere/tags/list`), 'NAME_UNKNOWN', 404, 'NAME_UNKNOWN');
    await expectKind(await fetch(`${url}/v2/errors/nowhere/manifests/latest`), 'NAME_UNKNOWN', 404, 'NAME_UNKNOWN');
  });
});

describe('SIZE_INVALID (400)', () => {
  it('a chunk whose body is shorter or longer than its Content-Range', async () => {
    const session = await openSession(url, repo);
    await expectKind(await patchChunk(session, randomBytes(50), '0-99'), 'SIZE_INVALID', 400, 'SIZE_INVALID');
    await expectKind(await patchChunk(session, randomBytes(150), '0-99'), 'SIZE_INVALID', 400, 'SIZE_INVALID');
    assert.equal((await sessionStatus(session)).range, '0-0', 'neither chunk was kept');
  });
});

describe('RANGE_INVALID (416)', () => {
  it('an out-of-order chunk, and a blob range past the end', async () => {
    const session = await openSession(url, repo);
    await expectKind(await patchChunk(session, randomBytes(10), '10-19'), 'RANGE_INVALID', 416, 'RANGE_INVALID');
    const res = await fetch(`${url}/v2/${repo}/blobs/${sha256(image.config)}`, { headers: { Range: `bytes=${image.config.length}-` } });
    await expectKind(res, 'RANGE_INVALID', 416, 'RANGE_INVALID');
  });
});

describe('PAGINATION_NUMBER_INVALID (400)', () => {
  it('n that is not a non-negative integer, on tags and catalog', async () => {
    await expectKind(await fetch(`${url}/v2/${repo}/tags/list?n=-5`), 'PAGINATION_INVALID', 400, 'PAGINATION_NUMBER_INVALID');
    await expectKind(await fetch(`${url}/v2/_catalog?n=ten`), 'PAGINATION_INVALID', 400, 'PAGINATION_NUMBER_INVALID');
  });
});

describe('UNSUPPORTED: 405 for a method an endpoint does not take, 404 for no endpoint', () => {
  const session = `/v2/${repo}/blobs/uploads/${randomUUID()}`;
  const endpoints: { path: string; allowed: string[] }[] = [
    { path: '/v2/', allowed: ['GET', 'HEAD'] },
    { path: '/v2/_catalog', allowed: ['GET'] },
    { path: `/v2/${repo}/blobs/uploads/`, allowed: ['POST'] },
    { path: session, allowed: ['GET', 'PATCH', 'PUT', 'DELETE'] },
    { path: `/v2/${repo}/blobs/${absentDigest}`, allowed: ['GET', 'HEAD', 'DELETE'] },
    { path: `/v2/${repo}/manifests/latest`, allowed: ['GET', 'HEAD', 'PUT', 'DELETE'] },
    { path: `/v2/${repo}/tags/list`, allowed: ['GET'] },
    { path: `/v2/${repo}/referrers/${image.digest}`, allowed: ['GET'] },
  ];
  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

  for (const { path: endpoint, allowed } of endpoints) {
    it(`${endpoint.replace(/[0-9a-f-]{36}|sha256:[0-9a-f]{64}/g, '<id>')}: ${methods.filter((m) => !allowed.includes(m)).join(', ')} answer 405 with Allow`, async () => {
      for (const method of methods.filter((m) => !allowed.includes(m))) {
        const res = await fetch(`${url}${endpoint}`, { method, ...(method === 'GET' || method === 'HEAD' ? {} : { body: '' }) });
        assert.equal(res.headers.get('allow'), allowed.join(', '), `${method} ${endpoint}: Allow lists the endpoint's methods`);
        if (method === 'HEAD') {
          assert.equal(res.status, 405, `HEAD ${endpoint}`);
          await res.arrayBuffer();
        } else {
          await expectKind(res, 'METHOD_UNKNOWN', 405, 'UNSUPPORTED');
        }
      }
    });
  }

  it('a path under /v2/ that is no endpoint is 404 UNSUPPORTED, and so is a path outside /v2/', async () => {
    await expectKind(await fetch(`${url}/v2/${repo}/nothing/here`), 'ROUTE_UNKNOWN', 404, 'UNSUPPORTED');
    await expectKind(await fetch(`${url}/v1/_ping`), 'ROUTE_UNKNOWN', 404, 'UNSUPPORTED');
  });

  it('DELETE of a blob a manifest of the repository references is 405 UNSUPPORTED, saying why', async () => {
    const res = await fetch(`${url}/v2/${repo}/blobs/${sha256(image.config)}`, { method: 'DELETE' });
    const body = (await res.clone().json()) as { errors: { message: string }[] };
    await expectKind(res, 'BLOB_REFERENCED', 405, 'UNSUPPORTED');
    assert.equal(body.errors[0]?.message, OCI_ERRORS.BLOB_REFERENCED.message);
  });
});

describe('UNSUPPORTED (405) for writes to a read-only registry; reads still work', () => {
  let readOnly: TestRegistry;
  const root = path.join(makeTempDir(), 'root');
  const ro = 'errors/readonly';
  const roImage = makeImage();
  let session = '';

  before(async () => {
    const writable = await startTestRegistry({ root });
    assert.equal((await pushImage(writable.url, ro, 'latest', roImage)).status, 201);
    session = new URL(await openSession(writable.url, ro)).pathname;
    await writable.stop();
    readOnly = await startTestRegistry({ root, http: { ReadOnly: true } });
  });
  after(async () => {
    await readOnly.stop();
  });

  it('every write method of every endpoint is refused', async () => {
    const writes: [string, RequestInit][] = [
      [`/v2/${ro}/blobs/uploads/`, { method: 'POST' }],
      [`/v2/${ro}/blobs/uploads/?digest=${sha256('x')}`, { method: 'POST', body: 'x' }],
      [`/v2/${ro}/blobs/uploads/?mount=${sha256(roImage.config)}&from=${ro}`, { method: 'POST' }],
      [session, { method: 'PATCH', body: 'x' }],
      [`${session}?digest=${sha256('x')}`, { method: 'PUT', body: 'x' }],
      [session, { method: 'DELETE' }],
      [`/v2/${ro}/manifests/other`, { method: 'PUT', headers: { 'Content-Type': OCI_MANIFEST }, body: roImage.manifestBytes }],
      [`/v2/${ro}/manifests/latest`, { method: 'DELETE' }],
      [`/v2/${ro}/manifests/${roImage.digest}`, { method: 'DELETE' }],
      [`/v2/${ro}/blobs/${sha256(roImage.config)}`, { method: 'DELETE' }],
    ];
    for (const [target, init] of writes) {
      await expectKind(await fetch(`${readOnly.url}${target}`, init), 'UNSUPPORTED', 405, 'UNSUPPORTED');
    }
  });

  it('nothing changed: the tag, manifest, blobs and session are as before', async () => {
    const manifest = await fetch(`${readOnly.url}/v2/${ro}/manifests/latest`);
    assert.equal(manifest.status, 200);
    assert.equal(await manifest.text(), roImage.manifestBytes);
    const blob = await fetch(`${readOnly.url}/v2/${ro}/blobs/${sha256(roImage.config)}`);
    assert.deepEqual(Buffer.from(await blob.arrayBuffer()), roImage.config);
    assert.equal((await fetch(`${readOnly.url}/v2/${ro}/manifests/other`)).status, 404);
  });

  it('every read answers: base, catalog, tags, manifest GET/HEAD, blob GET/HEAD, referrers, upload status', async () => {
    const reads: [string, string, number][] = [
      ['GET', '/v2/', 200],
      ['GET', '/v2/_catalog', 200],
      ['GET', `/v2/${ro}/tags/list`, 200],
      ['GET', `/v2/${ro}/manifests/latest`, 200],
      ['HEAD', `/v2/${ro}/manifests/${roImage.digest}`, 200],
      ['GET', `/v2/${ro}/blobs/${sha256(roImage.config)}`, 200],
      ['HEAD', `/v2/${ro}/blobs/${sha256(roImage.layers[0] as Buffer)}`, 200],
      ['GET', `/v2/${ro}/referrers/${roImage.digest}`, 200],
      ['GET', session, 204],
    ];
    for (const [method, target, status] of reads) {
      const res = await fetch(`${readOnly.url}${target}`, { method });
      assert.equal(res.status, status, `${method} ${target}`);
      await res.arrayBuffer();
    }
    const tags = (await (await fetch(`${readOnly.url}/v2/${ro}/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(tags.tags, ['latest']);
  });
});

describe('TOOMANYREQUESTS: 429 over http.ratelimit, 413 past storage.maxRepos', () => {
  it('a burst over the rate limit', async () => {
    const limited = await startTestRegistry({ http: { ratelimit: { rate: 1 } } });
    try {
      const responses = await Promise.all(Array.from({ length: 10 }, () => fetch(`${limited.url}/v2/`)));
      const over = responses.find((res) => res.status === 429);
      assert.ok(over, 'a burst of 10 at 1 request/s meets the limit');
      await expectKind(over, 'TOOMANYREQUESTS', 429, 'TOOMANYREQUESTS');
    } finally {
      await limited.stop();
    }
  });

  it('an upload that would create one repository too many', async () => {
    const full = await startTestRegistry({ storage: { maxRepos: 1 } });
    try {
      await pushBlob(full.url, 'quota/one', 'first');
      await expectKind(await fetch(`${full.url}/v2/quota/two/blobs/uploads/`, { method: 'POST' }), 'REPOSITORY_QUOTA', 413, 'TOOMANYREQUESTS');
    } finally {
      await full.stop();
    }
  });
});

describe('requests the HTTP parser refuses: UNSUPPORTED with 400, or 431 for headers too large', () => {
  /** Like expectKind, for an answer read off the socket. */
  function expectRawKind(res: RawResponse, kind: ErrorKind, status: number, code: string): void {
    assert.equal(OCI_ERRORS[kind].status, status, `the table answers ${kind} with ${status}`);
    assert.equal(OCI_ERRORS[kind].code, code, `the table answers ${kind} with ${code}`);
    assert.equal(res.status, status, `answered ${res.status}: ${res.body}`);
    assert.match(String(res.headers['content-type']), /^application\/json\b/);
    const body = JSON.parse(res.body) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]?.code, code, res.body);
    assert.equal(body.errors[0]?.message, OCI_ERRORS[kind].message);
    seen.add(kind);
  }

  it('a duplicate Content-Length, Content-Length with Transfer-Encoding, a space in the path: 400 REQUEST_MALFORMED', async () => {
    const heads = [
      `POST /v2/${repo}/blobs/uploads/ HTTP/1.1\r\nHost: registry\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n`,
      `POST /v2/${repo}/blobs/uploads/ HTTP/1.1\r\nHost: registry\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n`,
      `GET /v2/${repo}/tags /list HTTP/1.1\r\nHost: registry\r\n\r\n`,
    ];
    for (const head of heads) expectRawKind(await rawHttp(url, head, Buffer.from('{}')), 'REQUEST_MALFORMED', 400, 'UNSUPPORTED');
  });

  it('headers larger than the parser takes: 431 HEADERS_TOO_LARGE', async () => {
    const head = `GET /v2/${repo}/tags/list HTTP/1.1\r\nHost: registry\r\nX-Padding: ${'p'.repeat(64 * 1024)}\r\n\r\n`;
    expectRawKind(await rawHttp(url, head), 'HEADERS_TOO_LARGE', 431, 'UNSUPPORTED');
  });
});

describe('the error table', () => {
  it('every entry with a trigger was answered through HTTP above', () => {
    const kinds = Object.keys(OCI_ERRORS) as ErrorKind[];
    const missing = kinds.filter((kind) => !UNTRIGGERABLE.includes(kind) && !seen.has(kind));
    assert.deepEqual(missing, [], 'every triggerable error kind has an HTTP test');
  });
});
