// Blobs and blob uploads over HTTP.
// Mirrors the OCI distribution-spec conformance suite (opencontainers/distribution-spec,
// conformance/): 01_pull_test.go "Setup" (POST then PUT of config and layer blobs) and "Pull blobs";
// 02_push_test.go "Blob Upload Streamed", "Blob Upload Monolithic", "Blob Upload Chunked" (416 for
// out-of-order and retried chunks, Range "0-N" after each chunk, GET of the session) and
// "Cross-Repository Blob Mount" (201 with Location, fallback to a 202 session); 04_management_test.go
// "Blob delete" (202, then 404) and the teardown blob deletes of every file. Beyond the suite: upload
// cancel, GET with Range (206 / 416), HEAD headers, repository-scoped blobs, and mount fallbacks for
// invalid arguments (spec "Mounting a blob from another repository").
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, pushBlob, pushImage, sha256 } from '../helpers/oci.js';
import {
  expectOciError,
  openSession,
  patchChunk,
  pushChunked,
  resolveLocation,
  sessionStatus,
  uploadFiles,
  withDigest,
} from '../helpers/http.js';

let registry: TestRegistry;
let url: string;

/** The suite's dummy digest: sha256 of "hello world", never pushed. */
const dummyDigest = sha256('hello world');

before(async () => {
  registry = await startTestRegistry();
  url = registry.url;
});
after(async () => {
  await registry.stop();
});

/** POST a session, then PUT the whole blob to its Location with ?digest= (the suite's setup). */
async function postThenPut(repo: string, data: Buffer): Promise<Response> {
  const session = await openSession(url, repo);
  return fetch(withDigest(session, sha256(data)), { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body: data });
}

async function getBlob(repo: string, digest: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}/v2/${repo}/blobs/${digest}`, { headers });
}

describe('pull blobs (01_pull "Pull blobs")', () => {
  const repo = 'conformance/pull';
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', author: randomBytes(8).toString('hex') }, null, '\t'));
  const layer = randomBytes(300);

  before(async () => {
    for (const data of [config, layer]) {
      const res = await postThenPut(repo, data);
      assert.ok(res.status >= 200 && res.status < 300, `setup push answered ${res.status}`);
    }
  });

  it('HEAD request to nonexistent blob should result in 404 response', async () => {
    const res = await fetch(`${url}/v2/${repo}/blobs/${dummyDigest}`, { method: 'HEAD' });
    assert.equal(res.status, 404);
    assert.equal((await res.arrayBuffer()).byteLength, 0, 'HEAD answers have no body');
  });

  it('HEAD request to existing blob should yield 200 with digest and length, and no body', async () => {
    const res = await fetch(`${url}/v2/${repo}/blobs/${sha256(config)}`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), sha256(config));
    assert.equal(res.headers.get('content-length'), String(config.length));
    assert.equal((await res.arrayBuffer()).byteLength, 0);
  });

  it('GET nonexistent blob should result in 404 response (BLOB_UNKNOWN)', async () => {
    await expectOciError(await getBlob(repo, dummyDigest), 404, 'BLOB_UNKNOWN');
  });

  it('GET request to existing blob URL should yield 200 with the exact bytes', async () => {
    for (const data of [config, layer]) {
      const res = await getBlob(repo, sha256(data));
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-content-digest'), sha256(data));
      assert.equal(res.headers.get('content-length'), String(data.length));
      assert.equal(res.headers.get('content-type'), 'application/octet-stream');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
    }
  });

  it('HEAD and GET agree on every header', async () => {
    const head = await fetch(`${url}/v2/${repo}/blobs/${sha256(layer)}`, { method: 'HEAD' });
    const get = await getBlob(repo, sha256(layer));
    await get.arrayBuffer();
    for (const name of ['content-length', 'content-type', 'docker-content-digest', 'etag', 'accept-ranges']) {
      assert.equal(head.headers.get(name), get.headers.get(name), `${name} is the same for HEAD and GET`);
    }
  });

  it('a blob is served only from a repository that holds it', async () => {
    assert.equal((await pushImage(url, 'conformance/other', 'latest')).status, 201);
    await expectOciError(await getBlob('conformance/other', sha256(config)), 404, 'BLOB_UNKNOWN');
    const head = await fetch(`${url}/v2/conformance/other/blobs/${sha256(config)}`, { method: 'HEAD' });
    assert.equal(head.status, 404);
  });
});

describe('blob upload streamed (02_push "Blob Upload Streamed")', () => {
  const repo = 'conformance/streamed';
  const blobA = randomBytes(42);
  let lastLocation = '';

  it('PATCH request with blob in body should yield 202 response', async () => {
    const post = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    assert.equal(post.status, 202);
    assert.ok(post.headers.get('location'), 'POST answers a Location');
    const res = await patchChunk(resolveLocation(url, post), blobA);
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('range'), `0-${blobA.length - 1}`);
    lastLocation = resolveLocation(url, res);
  });

  it('PUT request to session URL with digest should yield 201 response', async () => {
    const res = await fetch(withDigest(lastLocation, sha256(blobA)), { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' } });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('location'), `/v2/${repo}/blobs/${sha256(blobA)}`);
    assert.equal(res.headers.get('docker-content-digest'), sha256(blobA));
    const get = await getBlob(repo, sha256(blobA));
    assert.deepEqual(Buffer.from(await get.arrayBuffer()), blobA);
  });

  it('several PATCHes without Content-Range append in order', async () => {
    const parts = [randomBytes(10), randomBytes(1), randomBytes(100)];
    let session = await openSession(url, repo);
    let size = 0;
    for (const part of parts) {
      const res = await patchChunk(session, part);
      assert.equal(res.status, 202);
      size += part.length;
      assert.equal(res.headers.get('range'), `0-${size - 1}`);
      session = resolveLocation(url, res);
    }
    const whole = Buffer.concat(parts);
    const put = await fetch(withDigest(session, sha256(whole)), { method: 'PUT' });
    assert.equal(put.status, 201);
    assert.deepEqual(Buffer.from(await (await getBlob(repo, sha256(whole))).arrayBuffer()), whole);
  });
});

describe('blob upload monolithic (02_push "Blob Upload Monolithic")', () => {
  const repo = 'conformance/monolithic';
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }, null, '\t'));
  const layer = randomBytes(1000);

  it('GET nonexistent blob should result in 404 response', async () => {
    await expectOciError(await getBlob(repo, dummyDigest), 404, 'BLOB_UNKNOWN');
  });

  it('POST request with digest and blob should yield a 201 with Location and digest', async () => {
    const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha256(config)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: config,
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('location'), `/v2/${repo}/blobs/${sha256(config)}`);
    assert.equal(res.headers.get('docker-content-digest'), sha256(config));
  });

  it('GET request to blob URL from prior request should yield 200', async () => {
    const res = await getBlob(repo, sha256(config));
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), config);
  });

  it('POST request should yield a session ID (202 with Location)', async () => {
    const res = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    assert.equal(res.status, 202);
    const location = res.headers.get('location') ?? '';
    assert.match(location, new RegExp(`^/v2/${repo}/blobs/uploads/[^/?]+$`));
    assert.equal(res.headers.get('content-length'), '0');
  });

  it('PUT upload of a blob should yield a 201 Response, and GET then 200', async () => {
    const second = Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'linux' }));
    const res = await postThenPut(repo, second);
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('location'), `/v2/${repo}/blobs/${sha256(second)}`);
    const get = await getBlob(repo, sha256(second));
    assert.equal(get.status, 200);
    assert.deepEqual(Buffer.from(await get.arrayBuffer()), second);
  });

  it('PUT upload of a layer blob should yield a 201 Response, and GET then 200', async () => {
    const res = await postThenPut(repo, layer);
    assert.equal(res.status, 201);
    assert.ok(res.headers.get('location'));
    const get = await getBlob(repo, sha256(layer));
    assert.equal(get.status, 200);
    assert.deepEqual(Buffer.from(await get.arrayBuffer()), layer);
  });

  it('pushing a blob the repository already holds answers 201 again', async () => {
    const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha256(layer)}`, { method: 'POST', body: layer });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('docker-content-digest'), sha256(layer));
  });

  it('an empty blob can be pushed and pulled', async () => {
    const empty = Buffer.alloc(0);
    const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha256(empty)}`, { method: 'POST', body: empty });
    assert.equal(res.status, 201);
    const get = await getBlob(repo, sha256(empty));
    assert.equal(get.status, 200);
    assert.equal(get.headers.get('content-length'), '0');
    assert.equal((await get.arrayBuffer()).byteLength, 0);
  });
});

describe('blob upload chunked (02_push "Blob Upload Chunked")', () => {
  const repo = 'conformance/chunked';
  const blobB = randomBytes(42);
  const chunk1 = blobB.subarray(0, 22);
  const chunk2 = blobB.subarray(22);
  const chunk1Range = `0-${chunk1.length - 1}`;
  const chunk2Range = `${chunk1.length}-${blobB.length - 1}`;
  let session = '';
  let lastLocation = '';

  it('Out-of-order blob upload should return 416', async () => {
    const first = await openSession(url, repo);
    const res = await patchChunk(first, chunk2, chunk2Range);
    await expectOciError(res, 416, 'RANGE_INVALID');
    assert.ok(res.headers.get('location'), 'the 416 says where the upload is');
    const status = await sessionStatus(first);
    assert.equal(status.status, 204);
    assert.equal(status.range, '0-0', 'nothing was written by the refused chunk');
  });

  it('PATCH request with first chunk should return 202 and Range 0-N', async () => {
    session = await openSession(url, repo);
    const res = await patchChunk(session, chunk1, chunk1Range);
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('range'), chunk1Range);
    assert.ok(res.headers.get('location'));
    assert.equal(res.headers.get('content-length'), '0');
  });

  it('Retry previous blob chunk should return 416, with the current Range', async () => {
    const res = await patchChunk(session, chunk1, chunk1Range);
    await expectOciError(res, 416, 'RANGE_INVALID');
    assert.equal(res.headers.get('range'), chunk1Range);
  });

  it('Get on stale blob upload should return 204 with a range and location', async () => {
    const res = await fetch(session);
    assert.equal(res.status, 204);
    assert.ok(res.headers.get('location'));
    assert.equal(res.headers.get('range'), chunk1Range);
    lastLocation = resolveLocation(url, res);
  });

  it('PATCH request with second chunk should return 202', async () => {
    const res = await patchChunk(lastLocation, chunk2, chunk2Range);
    assert.equal(res.status, 202);
    assert.ok(res.headers.get('location'));
    assert.equal(res.headers.get('range'), `0-${blobB.length - 1}`);
    lastLocation = resolveLocation(url, res);
  });

  it('PUT request with digest should return 201', async () => {
    const res = await fetch(withDigest(lastLocation, sha256(blobB)), {
      method: 'PUT',
      headers: { 'Content-Length': '0', 'Content-Type': 'application/octet-stream' },
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('location'), `/v2/${repo}/blobs/${sha256(blobB)}`);
    assert.equal(res.headers.get('docker-content-digest'), sha256(blobB));
  });

  it('the chunked blob is served whole, and its session is gone', async () => {
    const res = await getBlob(repo, sha256(blobB));
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), blobB);
    await expectOciError(await fetch(lastLocation), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('the last chunk may travel in the closing PUT with its Content-Range', async () => {
    const data = randomBytes(5000);
    const s = await openSession(url, repo);
    const first = await patchChunk(s, data.subarray(0, 3000), '0-2999');
    assert.equal(first.status, 202);
    const put = await fetch(withDigest(resolveLocation(url, first), sha256(data)), {
      method: 'PUT',
      headers: { 'Content-Range': `3000-${data.length - 1}`, 'Content-Type': 'application/octet-stream' },
      body: data.subarray(3000),
    });
    assert.equal(put.status, 201);
    assert.deepEqual(Buffer.from(await (await getBlob(repo, sha256(data))).arrayBuffer()), data);
  });

  it('a Content-Range with the "bytes " prefix of RFC 9110 is accepted', async () => {
    const data = randomBytes(64);
    const s = await openSession(url, repo);
    const res = await patchChunk(s, data, `bytes 0-63/64`);
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('range'), '0-63');
  });

  it('many chunks of a larger blob arrive in order', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const digest = await pushChunked(url, repo, data, 1024 * 1024);
    const res = await getBlob(repo, digest);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
  });
});

describe('upload cancel and session status', () => {
  const repo = 'conformance/cancel';

  it('DELETE of a session answers 204; the session is then unknown everywhere and nothing is served', async () => {
    const data = randomBytes(256);
    const s = await openSession(url, repo);
    assert.equal((await patchChunk(s, data)).status, 202);
    assert.equal(uploadFiles(registry.root, repo).length, 1);

    const del = await fetch(s, { method: 'DELETE' });
    assert.equal(del.status, 204);
    assert.deepEqual(uploadFiles(registry.root, repo), [], 'the session data is dumped');

    await expectOciError(await fetch(s), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectOciError(await patchChunk(s, data), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectOciError(await fetch(withDigest(s, sha256(data)), { method: 'PUT' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectOciError(await fetch(s, { method: 'DELETE' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectOciError(await getBlob(repo, sha256(data)), 404, 'BLOB_UNKNOWN');
  });

  it('a new session reports an empty range and its own Location', async () => {
    const s = await openSession(url, repo);
    const status = await sessionStatus(s);
    assert.equal(status.status, 204);
    assert.equal(status.range, '0-0');
    assert.equal(new URL(status.location ?? '', url).toString(), s);
  });

  it('a session of one repository is unknown in another', async () => {
    const s = await openSession(url, repo);
    const id = new URL(s).pathname.split('/').at(-1);
    await expectOciError(await fetch(`${url}/v2/conformance/elsewhere/blobs/uploads/${id}`), 404, 'BLOB_UPLOAD_UNKNOWN');
  });
});

describe('GET blob with Range', () => {
  const repo = 'conformance/ranges';
  const data = randomBytes(1000);
  const digest = sha256(data);

  before(async () => {
    await pushBlob(url, repo, data);
  });

  it('bytes=a-b answers 206 with Content-Range and exactly those bytes', async () => {
    const res = await getBlob(repo, digest, { Range: 'bytes=0-9' });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes 0-9/${data.length}`);
    assert.equal(res.headers.get('content-length'), '10');
    assert.equal(res.headers.get('docker-content-digest'), digest);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data.subarray(0, 10));
  });

  it('an open range bytes=a- runs to the end', async () => {
    const res = await getBlob(repo, digest, { Range: 'bytes=990-' });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes 990-999/${data.length}`);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data.subarray(990));
  });

  it('a suffix range bytes=-N is the last N bytes', async () => {
    const res = await getBlob(repo, digest, { Range: 'bytes=-5' });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes 995-999/${data.length}`);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data.subarray(995));
  });

  it('an end past the size is clipped to the blob', async () => {
    const res = await getBlob(repo, digest, { Range: 'bytes=500-5000' });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes 500-999/${data.length}`);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data.subarray(500));
  });

  it('a range starting at or beyond the size is 416 RANGE_INVALID with Content-Range */size', async () => {
    for (const range of [`bytes=${data.length}-`, `bytes=${data.length + 10}-${data.length + 20}`]) {
      const res = await getBlob(repo, digest, { Range: range });
      assert.equal(res.headers.get('content-range'), `bytes */${data.length}`);
      await expectOciError(res, 416, 'RANGE_INVALID');
    }
  });

  it('a range whose end is before its start is 416', async () => {
    await expectOciError(await getBlob(repo, digest, { Range: 'bytes=20-10' }), 416, 'RANGE_INVALID');
  });

  it('HEAD with a Range answers the 206 headers and no body', async () => {
    const res = await fetch(`${url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD', headers: { Range: 'bytes=100-199' } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes 100-199/${data.length}`);
    assert.equal(res.headers.get('content-length'), '100');
    assert.equal((await res.arrayBuffer()).byteLength, 0);
  });

  it('several ranges at once are answered with the whole blob (200)', async () => {
    const res = await getBlob(repo, digest, { Range: 'bytes=0-1,5-6' });
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
  });

  it('a Range in a unit other than bytes is ignored (RFC 9110 section 14.2): 200 and the whole blob', async () => {
    const res = await getBlob(repo, digest, { Range: 'items=0-1' });
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
  });
});

describe('cross-repository blob mount (02_push "Cross-Repository Blob Mount")', () => {
  const source = 'conformance/mount-source';
  const crossmount = 'conformance/crossmount';
  const blobA = randomBytes(42);
  let mounted: Response;

  before(async () => {
    await pushBlob(url, source, blobA);
  });

  it('Cross-mounting of a blob without the from argument should yield session id', async () => {
    const res = await fetch(`${url}/v2/${crossmount}/blobs/uploads/?mount=${dummyDigest}`, { method: 'POST' });
    assert.equal(res.status, 202);
    assert.match(res.headers.get('location') ?? '', new RegExp(`^/v2/${crossmount}/blobs/uploads/`));
  });

  it("POST request to mount another repository's blob should return 201", async () => {
    mounted = await fetch(`${url}/v2/${crossmount}/blobs/uploads/?mount=${sha256(blobA)}&from=${source}`, { method: 'POST' });
    assert.equal(mounted.status, 201);
    assert.equal(mounted.headers.get('docker-content-digest'), sha256(blobA));
  });

  it('GET request to test digest within cross-mount namespace should return 200', async () => {
    assert.equal(mounted.headers.get('location'), `/v2/${crossmount}/blobs/${sha256(blobA)}`);
    const res = await fetch(resolveLocation(url, mounted));
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), blobA);
  });

  it('Cross-mounting of nonexistent blob should yield session id', async () => {
    const res = await fetch(`${url}/v2/${crossmount}/blobs/uploads/?mount=${dummyDigest}&from=${source}`, { method: 'POST' });
    assert.equal(res.status, 202);
    assert.match(res.headers.get('location') ?? '', new RegExp(`^/v2/${crossmount}/blobs/uploads/[^/]+$`));
    // The fallback session is a real one: a blob can be uploaded through it.
    const data = randomBytes(16);
    const put = await fetch(withDigest(resolveLocation(url, res), sha256(data)), { method: 'PUT', body: data });
    assert.equal(put.status, 201);
  });

  it('Cross-mounting without from, and automatic content discovery enabled should return a 201', async () => {
    const other = 'conformance/crossmount-auto';
    const res = await fetch(`${url}/v2/${other}/blobs/uploads/?mount=${sha256(blobA)}`, { method: 'POST' });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('location'), `/v2/${other}/blobs/${sha256(blobA)}`);
    assert.equal((await getBlob(other, sha256(blobA))).status, 200);
  });

  it('mounting from a repository that does not hold the blob falls back to a session', async () => {
    const res = await fetch(`${url}/v2/${crossmount}/blobs/uploads/?mount=${sha256(blobA)}&from=conformance/pull-nothing`, { method: 'POST' });
    assert.equal(res.status, 202);
    assert.ok(res.headers.get('location'));
  });

  it('mounting with an invalid source name or digest falls back to a session (202), as the spec says', async () => {
    for (const query of [`mount=${sha256(blobA)}&from=Not..Valid`, `mount=sha256:nothex&from=${source}`, `mount=md5:abcd&from=${source}`]) {
      const res = await fetch(`${url}/v2/${crossmount}/blobs/uploads/?${query}`, { method: 'POST' });
      assert.equal(res.status, 202, `${query} answered ${res.status}: ${await res.clone().text()}`);
      assert.match(res.headers.get('location') ?? '', new RegExp(`^/v2/${crossmount}/blobs/uploads/`));
    }
  });

  it('mounting a blob the target already holds answers 201', async () => {
    const res = await fetch(`${url}/v2/${crossmount}/blobs/uploads/?mount=${sha256(blobA)}&from=${source}`, { method: 'POST' });
    assert.equal(res.status, 201);
  });

  it('a mounted blob survives its deletion from the source repository', async () => {
    const del = await fetch(`${url}/v2/${source}/blobs/${sha256(blobA)}`, { method: 'DELETE' });
    assert.equal(del.status, 202);
    await expectOciError(await getBlob(source, sha256(blobA)), 404, 'BLOB_UNKNOWN');
    const res = await getBlob(crossmount, sha256(blobA));
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), blobA);
  });
});

describe('blob delete (04_management "Blob delete" and the teardowns)', () => {
  const repo = 'conformance/management';
  const image = makeImage({ layers: 2 });

  before(async () => {
    assert.equal((await pushImage(url, repo, 'tagtest0', image)).status, 201);
  });

  it('DELETE of a blob a manifest of the repository references is refused with 405 UNSUPPORTED', async () => {
    const res = await fetch(`${url}/v2/${repo}/blobs/${sha256(image.config)}`, { method: 'DELETE' });
    await expectOciError(res, 405, 'UNSUPPORTED');
    assert.equal((await getBlob(repo, sha256(image.config))).status, 200);
  });

  it('after the manifest is deleted, DELETE request to blob URL should yield 202 response', async () => {
    const delManifest = await fetch(`${url}/v2/${repo}/manifests/${image.digest}`, { method: 'DELETE' });
    assert.equal(delManifest.status, 202);
    for (const data of [image.config, ...image.layers]) {
      const res = await fetch(`${url}/v2/${repo}/blobs/${sha256(data)}`, { method: 'DELETE' });
      assert.equal(res.status, 202);
      assert.equal((await res.arrayBuffer()).byteLength, 0);
    }
  });

  it('GET request to deleted blob URL should yield 404 response', async () => {
    await expectOciError(await getBlob(repo, sha256(image.config)), 404, 'BLOB_UNKNOWN');
    const head = await fetch(`${url}/v2/${repo}/blobs/${sha256(image.layers[0] as Buffer)}`, { method: 'HEAD' });
    assert.equal(head.status, 404);
  });

  it('DELETE of a blob already deleted or never pushed is 404 BLOB_UNKNOWN', async () => {
    await expectOciError(await fetch(`${url}/v2/${repo}/blobs/${sha256(image.config)}`, { method: 'DELETE' }), 404, 'BLOB_UNKNOWN');
    await expectOciError(await fetch(`${url}/v2/${repo}/blobs/${dummyDigest}`, { method: 'DELETE' }), 404, 'BLOB_UNKNOWN');
  });

  it('deleting a blob in one repository leaves the same blob in another untouched', async () => {
    const data = randomBytes(128);
    await pushBlob(url, 'conformance/share-a', data);
    await pushBlob(url, 'conformance/share-b', data);
    assert.equal((await fetch(`${url}/v2/conformance/share-a/blobs/${sha256(data)}`, { method: 'DELETE' })).status, 202);
    const res = await getBlob('conformance/share-b', sha256(data));
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
  });

  it('a deleted blob can be pushed again', async () => {
    const res = await postThenPut(repo, image.config);
    assert.equal(res.status, 201);
    assert.deepEqual(Buffer.from(await (await getBlob(repo, sha256(image.config))).arrayBuffer()), image.config);
  });
});
