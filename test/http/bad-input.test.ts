// Bad input over HTTP: malformed manifests, wrong digests, invalid names, bad Content-Range, chunks
// whose body disagrees with their range, clients that disconnect mid-upload, manifests naming
// content the repository lacks, schema 1. After each case the answer is checked, then what is
// served, then `zot replay` on the registry's root: the event log rebuilt from scratch equals the
// live projections and storage holds everything they name.
// Mirrors the OCI distribution-spec conformance suite (opencontainers/distribution-spec,
// conformance/) where it touches bad input: 02_push_test.go "Blob Upload Chunked" (416 for an
// out-of-order chunk and for a retried one) and 01_pull_test.go "Error codes" (invalid manifest
// content answered with an OCI error). The rest goes beyond the suite.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, descriptor, makeImage, pushBlob, pushImage, pushManifest, sha256, type TestImage } from '../helpers/oci.js';
import {
  assertReplayClean,
  disconnectMidBody,
  eventually,
  expectOciError,
  openSession,
  patchChunk,
  rawHttp,
  rawRequest,
  resolveLocation,
  sessionStatus,
  uploadFiles,
  withDigest,
} from '../helpers/http.js';

let registry: TestRegistry;
let url: string;

before(async () => {
  registry = await startTestRegistry();
  url = registry.url;
});
after(async () => {
  await registry.stop();
});

async function expectNotServed(repo: string, ...digests: string[]): Promise<void> {
  for (const digest of digests) {
    const res = await fetch(`${url}/v2/${repo}/blobs/${digest}`);
    assert.equal(res.status, 404, `${digest} is not served from ${repo}`);
    await res.arrayBuffer();
  }
}

async function catalog(): Promise<string[]> {
  return ((await (await fetch(`${url}/v2/_catalog`)).json()) as { repositories: string[] }).repositories;
}

/** Waits until no request holds the session (a zero-byte PATCH is accepted), then returns its Range. */
async function settledRange(session: string): Promise<string | null> {
  await eventually(async () => {
    const res = await patchChunk(session, Buffer.alloc(0));
    await res.arrayBuffer();
    return res.status === 202;
  }, 'the aborted request to release the session');
  return (await sessionStatus(session)).range;
}

describe('malformed manifests', () => {
  const repo = 'bad/manifests';
  const image = makeImage();
  const config = descriptor(OCI_CONFIG, image.config);
  const layer = descriptor('application/vnd.oci.image.layer.v1.tar', image.layers[0] as Buffer);

  before(async () => {
    assert.equal((await pushImage(url, repo, 'good', image)).status, 201);
  });

  const cases: [string, string][] = [
    ['not JSON at all', 'blablabla'],
    ['truncated JSON', image.manifestBytes.slice(0, -5)],
    ['a JSON array', '[]'],
    ['a JSON string', '"manifest"'],
    ['schemaVersion 1 in an OCI manifest', JSON.stringify({ schemaVersion: 1, mediaType: OCI_MANIFEST, config, layers: [layer] })],
    ['no schemaVersion', JSON.stringify({ mediaType: OCI_MANIFEST, config, layers: [layer] })],
    ['no config', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [layer] })],
    ['layers that are not a list', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: layer })],
    ['a descriptor with a malformed digest', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { ...config, digest: 'sha256:1234' }, layers: [] })],
    ['a descriptor with a negative size', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { ...config, size: -1 }, layers: [] })],
    ['a descriptor without mediaType', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { digest: config.digest, size: config.size }, layers: [] })],
    ['annotations that are not strings', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [layer], annotations: { n: 1 } })],
    ['an index whose manifests are not a list', JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: {} })],
    ['an unknown manifest media type', JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.example.unknown+json', config, layers: [] })],
  ];

  for (const [what, body] of cases) {
    it(`${what}: 400 MANIFEST_INVALID, nothing tagged, replay clean`, async () => {
      const contentType = what.startsWith('an index') ? OCI_INDEX : what.startsWith('an unknown') ? 'application/vnd.example.unknown+json' : OCI_MANIFEST;
      await expectOciError(await pushManifest(url, repo, 'bad', body, contentType), 400, 'MANIFEST_INVALID');
      await expectOciError(await fetch(`${url}/v2/${repo}/manifests/bad`), 404, 'MANIFEST_UNKNOWN');
      await expectNotServed(repo, sha256(body));
      await assertReplayClean(registry);
    });
  }

  it('the good manifest and its tag list are untouched by all of it', async () => {
    const res = await fetch(`${url}/v2/${repo}/manifests/good`);
    assert.equal(await res.text(), image.manifestBytes);
    assert.deepEqual(((await (await fetch(`${url}/v2/${repo}/tags/list`)).json()) as { tags: string[] }).tags, ['good']);
  });
});

describe('wrong digests', () => {
  const repo = 'bad/digests';

  it('monolithic POST ?digest= that does not match: DIGEST_INVALID, nothing served, no session left', async () => {
    const data = randomBytes(500);
    const claimed = sha256('something else');
    const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${claimed}`, { method: 'POST', body: data });
    await expectOciError(res, 400, 'DIGEST_INVALID');
    await expectNotServed(repo, claimed, sha256(data));
    assert.deepEqual(uploadFiles(registry.root, repo), []);
    await assertReplayClean(registry);
  });

  it('chunked upload closed by PUT ?digest= that does not match: DIGEST_INVALID and the session is gone', async () => {
    const data = randomBytes(2000);
    const session = await openSession(url, repo);
    const chunk = await patchChunk(session, data.subarray(0, 1000), '0-999');
    assert.equal(chunk.status, 202);
    const claimed = sha256('not this');
    const res = await fetch(withDigest(resolveLocation(url, chunk), claimed), {
      method: 'PUT',
      headers: { 'Content-Range': '1000-1999' },
      body: data.subarray(1000),
    });
    await expectOciError(res, 400, 'DIGEST_INVALID');
    await expectOciError(await fetch(session), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectNotServed(repo, claimed, sha256(data));
    assert.deepEqual(uploadFiles(registry.root, repo), []);
    await assertReplayClean(registry);
  });

  it('streamed upload closed by a bodiless PUT ?digest= that does not match: same', async () => {
    const data = randomBytes(300);
    const session = await openSession(url, repo);
    assert.equal((await patchChunk(session, data)).status, 202);
    const claimed = sha256(data.subarray(1));
    await expectOciError(await fetch(withDigest(session, claimed), { method: 'PUT' }), 400, 'DIGEST_INVALID');
    await expectOciError(await fetch(session), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectNotServed(repo, claimed, sha256(data));
    await assertReplayClean(registry);
  });

  it('a malformed ?digest= is DIGEST_INVALID and serves nothing', async () => {
    const data = randomBytes(100);
    for (const digest of ['sha256:abc', 'sha256', `sha256:${'G'.repeat(64)}`, 'notadigest']) {
      const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${encodeURIComponent(digest)}`, { method: 'POST', body: data });
      await expectOciError(res, 400, 'DIGEST_INVALID');
    }
    await expectNotServed(repo, sha256(data));
    assert.deepEqual(uploadFiles(registry.root, repo), []);
    await assertReplayClean(registry);
  });

  it('a digest of an unsupported algorithm is a 400 (not a 405: the method is allowed) and serves nothing', async () => {
    const data = randomBytes(100);
    const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=md5:${'a'.repeat(32)}`, { method: 'POST', body: data });
    const text = await res.text();
    assert.equal(res.status, 400, `answered ${res.status}: ${text}`);
    const code = (JSON.parse(text) as { errors: { code: string }[] }).errors[0]?.code;
    assert.ok(code === 'DIGEST_INVALID' || code === 'UNSUPPORTED', `code ${code}`);
    const get = await fetch(`${url}/v2/${repo}/blobs/md5:${'a'.repeat(32)}`);
    assert.equal(get.status, 400, 'a GET of a blob by an unsupported algorithm is a bad request too');
    await get.arrayBuffer();
    await expectNotServed(repo, sha256(data));
    await assertReplayClean(registry);
  });

  it('a manifest PUT under a digest that is not its own: DIGEST_INVALID, stored under neither', async () => {
    const image = makeImage();
    const other = makeImage();
    await pushBlob(url, repo, image.config);
    await pushBlob(url, repo, image.layers[0] as Buffer);
    await expectOciError(await pushManifest(url, repo, other.digest, image.manifestBytes), 400, 'DIGEST_INVALID');
    for (const digest of [image.digest, other.digest]) {
      await expectOciError(await fetch(`${url}/v2/${repo}/manifests/${digest}`), 404, 'MANIFEST_UNKNOWN');
    }
    await assertReplayClean(registry);
  });
});

describe('invalid repository names', () => {
  // Each is sent byte for byte (fetch would resolve `..` and `.` segments).
  // The last three are no valid percent-encoding, which fastify's router would answer itself.
  const names = ['Upper/case', 'a/../b', 'a/./b', 'a//b', 'a/b/', '-leading-dash', 'a/-dash', '_leading', '.hidden', 'trailing-', 'a..b', 'x'.repeat(256), 'a/%2E%2E/b', 'a/%zz', 'a/%C0%AF', '%'];
  const ok = makeImage();

  before(async () => {
    assert.equal((await pushImage(url, 'bad/names-control', 'latest', ok)).status, 201);
  });

  for (const name of names) {
    it(`${name.length > 40 ? `${name.slice(0, 10)}… (${name.length} characters)` : JSON.stringify(name)}: NAME_INVALID on every endpoint, nothing created`, async () => {
      const before = await catalog();
      const attempts: [string, string, Buffer | undefined][] = [
        ['GET', `/v2/${name}/tags/list`, undefined],
        ['GET', `/v2/${name}/manifests/latest`, undefined],
        ['PUT', `/v2/${name}/manifests/latest`, Buffer.from(ok.manifestBytes)],
        ['POST', `/v2/${name}/blobs/uploads/`, undefined],
        ['POST', `/v2/${name}/blobs/uploads/?digest=${sha256(ok.config)}`, ok.config],
        ['POST', `/v2/${name}/blobs/uploads/?mount=${sha256(ok.config)}&from=bad/names-control`, undefined],
        ['GET', `/v2/${name}/blobs/${sha256(ok.config)}`, undefined],
        ['GET', `/v2/${name}/referrers/${ok.digest}`, undefined],
      ];
      for (const [method, target, body] of attempts) {
        const res = await rawRequest(url, method, target, body, { 'Content-Type': OCI_MANIFEST });
        assert.equal(res.status, 400, `${method} ${target} answered ${res.status}: ${res.body}`);
        assert.match(res.headers['content-type'] ?? '', /^application\/json\b/);
        assert.equal((JSON.parse(res.body) as { errors: { code: string }[] }).errors[0]?.code, 'NAME_INVALID', `${method} ${target}`);
      }
      assert.deepEqual(await catalog(), before, 'no repository appeared');
      const root = fs.readdirSync(registry.root);
      assert.ok(!root.some((entry) => /^[A-Z_.-]/.test(entry) && entry !== '.zot-ts'), `nothing written at the storage root: ${root.join(', ')}`);
      assert.ok(!fs.existsSync(path.join(registry.root, 'Upper')), 'no directory for an invalid name');
      await assertReplayClean(registry);
    });
  }

  it('names at the edges of the grammar are accepted', async () => {
    for (const name of ['a', 'a/b/c/d', 'a_b', 'a__b', 'a--b', 'a.b', '0', 'x'.repeat(255)]) {
      const res = await fetch(`${url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
      assert.equal(res.status, 202, `${name.slice(0, 20)} answered ${res.status}`);
      await res.arrayBuffer();
    }
  });
});

describe('repository names that collide with the storage layout', () => {
  // zot's layout puts blobs/, index.json and oci-layout inside each repository's folder, so a name
  // with such a component lands inside the layout of the repository above it. It is refused on every
  // endpoint, whether the outer repository exists already or is pushed afterwards.
  const entries = ['blobs', 'index.json', 'oci-layout'];

  /** Every endpoint of the API on `name`, each expected to answer 400 NAME_INVALID. */
  async function expectRefusedEverywhere(name: string, outer: string, image: TestImage): Promise<void> {
    const config = sha256(image.config);
    const session = `/v2/${name}/blobs/uploads/${randomUUID()}`;
    const attempts: [string, string, Buffer | undefined][] = [
      ['GET', `/v2/${name}/tags/list`, undefined],
      ['GET', `/v2/${name}/manifests/latest`, undefined],
      ['HEAD', `/v2/${name}/manifests/${image.digest}`, undefined],
      ['PUT', `/v2/${name}/manifests/latest`, Buffer.from(image.manifestBytes)],
      ['DELETE', `/v2/${name}/manifests/${image.digest}`, undefined],
      ['GET', `/v2/${name}/blobs/${config}`, undefined],
      ['HEAD', `/v2/${name}/blobs/${config}`, undefined],
      ['DELETE', `/v2/${name}/blobs/${config}`, undefined],
      ['POST', `/v2/${name}/blobs/uploads/`, undefined],
      ['POST', `/v2/${name}/blobs/uploads/?digest=${config}`, image.config],
      ['POST', `/v2/${name}/blobs/uploads/?mount=${config}&from=${outer}`, undefined],
      ['GET', session, undefined],
      ['PATCH', session, image.config],
      ['PUT', `${session}?digest=${config}`, image.config],
      ['DELETE', session, undefined],
      ['GET', `/v2/${name}/referrers/${image.digest}`, undefined],
    ];
    for (const [method, target, body] of attempts) {
      const res = await rawRequest(url, method, target, body, { 'Content-Type': OCI_MANIFEST });
      assert.equal(res.status, 400, `${method} ${target} answered ${res.status}: ${res.body}`);
      if (method === 'HEAD') continue;
      assert.equal((JSON.parse(res.body) as { errors: { code: string }[] }).errors[0]?.code, 'NAME_INVALID', `${method} ${target}: ${res.body}`);
    }
  }

  /** The outer repository serves its image, and its folder holds only its own layout. */
  async function expectOuterIntact(outer: string, image: TestImage): Promise<void> {
    const manifest = await fetch(`${url}/v2/${outer}/manifests/latest`);
    assert.equal(manifest.status, 200);
    assert.equal(await manifest.text(), image.manifestBytes);
    for (const blob of [image.config, ...image.layers]) {
      const res = await fetch(`${url}/v2/${outer}/blobs/${sha256(blob)}`);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), blob);
    }
    // A later push of the same content to the outer repository still works.
    assert.equal(await pushBlob(url, outer, image.config), sha256(image.config));
    assert.equal((await pushManifest(url, outer, 'again', image.manifestBytes)).status, 201);
    // index.json is written by the index.json writer, after the manifest's answer.
    await registry.running.actorsCaughtUp();
    const dir = path.join(registry.root, outer);
    assert.ok(fs.statSync(path.join(dir, 'index.json')).isFile(), 'index.json is a file');
    assert.ok(fs.statSync(path.join(dir, 'oci-layout')).isFile(), 'oci-layout is a file');
    for (const algorithm of fs.readdirSync(path.join(dir, 'blobs'))) {
      for (const entry of fs.readdirSync(path.join(dir, 'blobs', algorithm))) {
        assert.match(entry, /^[0-9a-f]{64}$/, `only blobs in ${outer}/blobs/${algorithm}`);
        assert.ok(fs.statSync(path.join(dir, 'blobs', algorithm, entry)).isFile(), `${entry} is a file`);
      }
    }
  }

  for (const entry of entries) {
    const inners = (outer: string, image: TestImage): string[] =>
      entry === 'blobs' ? [`${outer}/blobs`, `${outer}/blobs/sha256`, `${outer}/blobs/sha256/${sha256(image.config).slice(7)}`] : [`${outer}/${entry}`];

    it(`${entry}: the name inside the layout first, then the outer repository: refused, the outer one works, replay clean`, async () => {
      const outer = `layout/${entry.replace(/\W/g, '')}-x/inner-first`;
      const image = makeImage();
      for (const inner of inners(outer, image)) await expectRefusedEverywhere(inner, outer, image);
      assert.equal((await pushImage(url, outer, 'latest', image)).status, 201);
      await expectOuterIntact(outer, image);
      for (const inner of inners(outer, image)) await expectRefusedEverywhere(inner, outer, image);
      assert.deepEqual((await catalog()).filter((repo) => repo.startsWith(`${outer}/`)), [], 'no repository inside the outer one');
      await assertReplayClean(registry);
    });

    it(`${entry}: the outer repository first, then the name inside its layout: refused, the outer one intact, replay clean`, async () => {
      const outer = `layout/${entry.replace(/\W/g, '')}-x/outer-first`;
      const image = makeImage();
      assert.equal((await pushImage(url, outer, 'latest', image)).status, 201);
      for (const inner of inners(outer, image)) await expectRefusedEverywhere(inner, outer, image);
      await expectOuterIntact(outer, image);
      assert.deepEqual((await catalog()).filter((repo) => repo.startsWith(`${outer}/`)), [], 'no repository inside the outer one');
      await assertReplayClean(registry);
    });
  }
});

describe('bad Content-Range', () => {
  const repo = 'bad/ranges';
  const data = randomBytes(3000);
  let session = '';

  before(async () => {
    session = await openSession(url, repo);
    const first = await patchChunk(session, data.subarray(0, 1000), '0-999');
    assert.equal(first.status, 202);
  });

  const cases: [string, string, number][] = [
    ['malformed: letters', 'abc', 100],
    ['malformed: the Range syntax', 'bytes=1000-1099', 100],
    ['malformed: no end', '1000-', 100],
    ['malformed: no start', '-1099', 100],
    ['malformed: three numbers', '1000-1049-1099', 100],
    ['malformed: negative', '-1000--901', 100],
    ['out of order: a gap after the upload', '1500-1599', 100],
    ['out of order: overlapping what is there', '500-599', 100],
    ['out of order: from the start again', '0-99', 100],
    ['end before start', '1000-900', 100],
  ];

  for (const [what, range, length] of cases) {
    it(`${what} (${range}): 416 RANGE_INVALID with Location and Range, upload unchanged`, async () => {
      const res = await patchChunk(session, randomBytes(length), range);
      await expectOciError(res, 416, 'RANGE_INVALID');
      const status = await sessionStatus(session);
      assert.equal(status.status, 204);
      assert.equal(status.range, '0-999', 'the upload still holds its first 1000 bytes');
      await assertReplayClean(registry);
    });
  }

  it('a malformed Content-Range on the closing PUT is 416 and commits nothing', async () => {
    const res = await fetch(withDigest(session, sha256(data)), { method: 'PUT', headers: { 'Content-Range': 'whatever' }, body: data.subarray(1000) });
    await expectOciError(res, 416, 'RANGE_INVALID');
    assert.equal((await sessionStatus(session)).range, '0-999');
    await expectNotServed(repo, sha256(data));
    await assertReplayClean(registry);
  });

  it('after all that, the upload completes with the right chunks', async () => {
    const second = await patchChunk(session, data.subarray(1000, 2000), '1000-1999');
    assert.equal(second.status, 202);
    const put = await fetch(withDigest(resolveLocation(url, second), sha256(data)), {
      method: 'PUT',
      headers: { 'Content-Range': '2000-2999' },
      body: data.subarray(2000),
    });
    assert.equal(put.status, 201);
    assert.deepEqual(Buffer.from(await (await fetch(`${url}/v2/${repo}/blobs/${sha256(data)}`)).arrayBuffer()), data);
    await assertReplayClean(registry);
  });
});

describe('numbers at the edges of what a number can hold', () => {
  // Numbers from clients reach SQLite (n) and arithmetic (ranges, lengths). JavaScript numbers are
  // exact to 2^53, SQLite integers stop at 2^63 - 1, and HTTP parsers at 2^64 - 1: each is tried.
  const repo = 'bad/numbers';
  const data = randomBytes(1000);
  const TWO_63_MINUS_1 = '9223372036854775807';
  const TWO_63 = '9223372036854775808';
  const TWO_53_PLUS_1 = '9007199254740993';

  before(async () => {
    await pushImage(url, repo, 'latest');
    await pushBlob(url, repo, data);
  });

  for (const n of [TWO_63_MINUS_1, TWO_63, TWO_53_PLUS_1, '1'.padEnd(40, '0'), '1000000001']) {
    it(`?n=${n} on _catalog and tags/list: 400 PAGINATION_NUMBER_INVALID naming n`, async () => {
      for (const list of ['/v2/_catalog', `/v2/${repo}/tags/list`]) {
        const body = await expectOciError(await fetch(`${url}${list}?n=${n}`), 400, 'PAGINATION_NUMBER_INVALID');
        assert.deepEqual(body.errors[0]?.detail, { n }, list);
      }
    });
  }

  it('?n=1000000000, the largest page, lists everything with no Link', async () => {
    const res = await fetch(`${url}/v2/${repo}/tags/list?n=1000000000`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('link'), null);
    assert.deepEqual(((await res.json()) as { tags: string[] }).tags, ['latest']);
    const catalogRes = await fetch(`${url}/v2/_catalog?n=1000000000&last=${encodeURIComponent('\u0000')}`);
    assert.equal(catalogRes.status, 200);
    assert.ok(((await catalogRes.json()) as { repositories: string[] }).repositories.includes(repo));
  });

  const blobRange = async (range: string): Promise<Response> => fetch(`${url}/v2/${repo}/blobs/${sha256(data)}`, { headers: { Range: range } });

  for (const start of [TWO_63_MINUS_1, TWO_63, TWO_53_PLUS_1, '9'.repeat(400)]) {
    it(`Range: bytes=${start.slice(0, 20)}- (start past any blob): 416 RANGE_INVALID with the size`, async () => {
      const res = await blobRange(`bytes=${start}-`);
      assert.equal(res.headers.get('content-range'), `bytes */${data.length}`);
      await expectOciError(res, 416, 'RANGE_INVALID');
    });
  }

  for (const end of [TWO_63_MINUS_1, TWO_63, '9'.repeat(400)]) {
    it(`Range: bytes=10-${end.slice(0, 20)} (end past the blob): 206 up to the last byte`, async () => {
      const res = await blobRange(`bytes=10-${end}`);
      assert.equal(res.status, 206);
      assert.equal(res.headers.get('content-range'), `bytes 10-${data.length - 1}/${data.length}`);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data.subarray(10));
    });
  }

  it(`Range: bytes=-${TWO_63} (a suffix longer than the blob): 206 with the whole blob`, async () => {
    const res = await blobRange(`bytes=-${TWO_63}`);
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes 0-${data.length - 1}/${data.length}`);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
  });

  for (const range of [`0-${TWO_63_MINUS_1}`, `${TWO_63}-${TWO_63}`, `${TWO_53_PLUS_1}-${TWO_53_PLUS_1}`]) {
    it(`Content-Range: ${range} on a PATCH: 416 RANGE_INVALID, the session unchanged`, async () => {
      const session = await openSession(url, repo);
      assert.equal((await patchChunk(session, data.subarray(0, 100), '0-99')).status, 202);
      await expectOciError(await patchChunk(session, data.subarray(100, 200), range), 416, 'RANGE_INVALID');
      assert.equal((await sessionStatus(session)).range, '0-99');
      await assertReplayClean(registry);
    });
  }

  it('Content-Range: 100-9007199254740991 (2^53 - 1, exact) on a PATCH with 100 bytes: 400 SIZE_INVALID, the session unchanged', async () => {
    const session = await openSession(url, repo);
    assert.equal((await patchChunk(session, data.subarray(0, 100), '0-99')).status, 202);
    await expectOciError(await patchChunk(session, data.subarray(100, 200), '100-9007199254740991'), 400, 'SIZE_INVALID');
    assert.equal((await sessionStatus(session)).range, '0-99');
    await assertReplayClean(registry);
  });

  it(`Content-Length: ${TWO_63_MINUS_1} on a manifest PUT: 413 before any byte is read`, async () => {
    const res = await rawHttp(url, `PUT /v2/${repo}/manifests/huge HTTP/1.1\r\nHost: registry\r\nContent-Type: ${OCI_MANIFEST}\r\nContent-Length: ${TWO_63_MINUS_1}\r\n\r\n`, Buffer.from('{}'));
    assert.equal(res.status, 413, res.body);
    assert.equal((JSON.parse(res.body) as { errors: { code: string }[] }).errors[0]?.code, 'MANIFEST_INVALID');
    await expectOciError(await fetch(`${url}/v2/${repo}/manifests/huge`), 404, 'MANIFEST_UNKNOWN');
  });

  it('Content-Length: 18446744073709551616 (2^64, past what HTTP parsers hold): 400 in OCI error JSON', async () => {
    const res = await rawHttp(url, `POST /v2/${repo}/blobs/uploads/ HTTP/1.1\r\nHost: registry\r\nContent-Length: 18446744073709551616\r\n\r\n`, Buffer.from('x'));
    assert.equal(res.status, 400, res.body);
    assert.match(String(res.headers['content-type']), /^application\/json\b/);
    assert.equal((JSON.parse(res.body) as { errors: { code: string }[] }).errors[0]?.code, 'UNSUPPORTED', res.body);
    assert.equal((await fetch(`${url}/v2/`)).status, 200, 'the registry still answers');
  });
});

describe('chunk bodies that disagree with their Content-Range', () => {
  const repo = 'bad/sizes';

  it('a body shorter or longer than its range: 400 SIZE_INVALID and the upload size unchanged', async () => {
    const data = randomBytes(1000);
    const session = await openSession(url, repo);
    assert.equal((await patchChunk(session, data.subarray(0, 400), '0-399')).status, 202);
    for (const body of [data.subarray(400, 450), data.subarray(400, 1000)]) {
      await expectOciError(await patchChunk(session, body, '400-499'), 400, 'SIZE_INVALID');
      assert.equal((await sessionStatus(session)).range, '0-399');
    }
    await expectOciError(await patchChunk(session, Buffer.alloc(0), '400-499'), 400, 'SIZE_INVALID');
    assert.equal((await sessionStatus(session)).range, '0-399');
    // The same on the closing PUT: nothing is committed and the session stays as it was.
    const put = await fetch(withDigest(session, sha256(data)), { method: 'PUT', headers: { 'Content-Range': '400-999' }, body: data.subarray(400, 900) });
    await expectOciError(put, 400, 'SIZE_INVALID');
    assert.equal((await sessionStatus(session)).range, '0-399');
    await expectNotServed(repo, sha256(data));
    await assertReplayClean(registry);

    const rest = await patchChunk(session, data.subarray(400), '400-999');
    assert.equal(rest.status, 202);
    assert.equal((await fetch(withDigest(session, sha256(data)), { method: 'PUT' })).status, 201);
    assert.deepEqual(Buffer.from(await (await fetch(`${url}/v2/${repo}/blobs/${sha256(data)}`)).arrayBuffer()), data);
    await assertReplayClean(registry);
  });
});

describe('clients that disconnect mid-upload', () => {
  const repo = 'bad/disconnects';

  it('a PATCH cut off mid-body: the registry answers, the upload is as before, and it can go on', async () => {
    const data = randomBytes(4000);
    const session = await openSession(url, repo);
    assert.equal((await patchChunk(session, data.subarray(0, 1000))).status, 202);

    await disconnectMidBody(session, 'PATCH', 2000, data.subarray(1000, 1600));
    assert.equal((await fetch(`${url}/v2/`)).status, 200, 'the registry still answers');
    assert.equal(await settledRange(session), '0-999', 'the cut-off chunk left nothing behind');
    await expectNotServed(repo, sha256(data), sha256(data.subarray(0, 1600)));

    const rest = await patchChunk(session, data.subarray(1000), `1000-${data.length - 1}`);
    assert.equal(rest.status, 202);
    assert.equal((await fetch(withDigest(session, sha256(data)), { method: 'PUT' })).status, 201);
    assert.deepEqual(Buffer.from(await (await fetch(`${url}/v2/${repo}/blobs/${sha256(data)}`)).arrayBuffer()), data);
    await assertReplayClean(registry);
  });

  it('a PATCH with Content-Range cut off mid-body: same', async () => {
    const data = randomBytes(3000);
    const session = await openSession(url, repo);
    await disconnectMidBody(session, 'PATCH', 3000, data.subarray(0, 1200), { 'Content-Range': '0-2999' });
    assert.equal(await settledRange(session), '0-0');
    const all = await patchChunk(session, data, '0-2999');
    assert.equal(all.status, 202);
    assert.equal((await fetch(withDigest(session, sha256(data)), { method: 'PUT' })).status, 201);
    await assertReplayClean(registry);
  });

  it('a closing PUT cut off mid-body: nothing is committed, the session is as before', async () => {
    const data = randomBytes(3000);
    const session = await openSession(url, repo);
    assert.equal((await patchChunk(session, data.subarray(0, 1000), '0-999')).status, 202);
    await disconnectMidBody(withDigest(session, sha256(data)), 'PUT', 2000, data.subarray(1000, 1500), { 'Content-Range': '1000-2999' });
    assert.equal(await settledRange(session), '0-999');
    await expectNotServed(repo, sha256(data));
    await assertReplayClean(registry);
    const put = await fetch(withDigest(session, sha256(data)), { method: 'PUT', headers: { 'Content-Range': '1000-2999' }, body: data.subarray(1000) });
    assert.equal(put.status, 201);
  });

  it('a monolithic POST cut off mid-body: nothing served and no session left behind', async () => {
    const data = randomBytes(5000);
    await disconnectMidBody(`${url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, 'POST', data.length, data.subarray(0, 2500));
    assert.equal((await fetch(`${url}/v2/`)).status, 200);
    // The earlier sessions of this repository were all committed: any file left would be the POST's.
    await eventually(async () => uploadFiles(registry.root, repo).length === 0, 'the cut-off POST to clean up its session');
    await expectNotServed(repo, sha256(data));
    await assertReplayClean(registry);
  });

  it('a manifest PUT cut off mid-body: no manifest, no tag', async () => {
    const image = makeImage();
    await pushBlob(url, repo, image.config);
    await pushBlob(url, repo, image.layers[0] as Buffer);
    const body = Buffer.from(image.manifestBytes);
    await disconnectMidBody(`${url}/v2/${repo}/manifests/cut`, 'PUT', body.length, body.subarray(0, 100), { 'Content-Type': OCI_MANIFEST });
    assert.equal((await fetch(`${url}/v2/`)).status, 200);
    await expectOciError(await fetch(`${url}/v2/${repo}/manifests/cut`), 404, 'MANIFEST_UNKNOWN');
    await expectOciError(await fetch(`${url}/v2/${repo}/manifests/${image.digest}`), 404, 'MANIFEST_UNKNOWN');
    await assertReplayClean(registry);
  });
});

describe('a client that disconnects mid-request is no server error', () => {
  // The registry's log is read line by line: a disconnect is one info line, never an error, and the
  // upload it cut short answers the size acknowledged before it, with no event appended.
  interface LogLine {
    level: number;
    msg: string;
    method?: string;
    path?: string;
  }
  const repo = 'bad/disconnect-log';
  const lines: LogLine[] = [];
  let logged: TestRegistry;
  const DISCONNECTED = 'client disconnected before the request completed';

  before(async () => {
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
    logged = await startTestRegistry({}, { logger });
  });
  after(async () => {
    await logged.stop();
  });

  /** Runs `cut`, then waits until the registry logged it (as a disconnect or as an error); returns what was logged meanwhile. */
  async function logOf(cut: () => Promise<void>): Promise<LogLine[]> {
    const from = lines.length;
    await cut();
    await eventually(async () => lines.slice(from).some((line) => line.msg === DISCONNECTED || line.level >= 50), 'the disconnect to be logged');
    return lines.slice(from);
  }

  function expectOneInfoLine(logs: LogLine[], method: string, path: string): void {
    assert.deepEqual(logs.filter((line) => line.level >= 40), [], 'nothing at warn or error');
    const disconnects = logs.filter((line) => line.msg === DISCONNECTED);
    assert.equal(disconnects.length, 1, JSON.stringify(logs));
    assert.equal(disconnects[0]?.level, 30, 'at info');
    assert.equal(disconnects[0]?.method, method);
    assert.equal(disconnects[0]?.path, path);
  }

  async function settled(session: string): Promise<string | null> {
    await eventually(async () => {
      const res = await patchChunk(session, Buffer.alloc(0));
      await res.arrayBuffer();
      return res.status === 202;
    }, 'the cut request to release the session');
    return (await sessionStatus(session)).range;
  }

  it('mid-PATCH: one info line, the session at its acknowledged size, no event', async () => {
    const data = randomBytes(4000);
    const session = await openSession(logged.url, repo);
    assert.equal((await patchChunk(session, data.subarray(0, 1000), '0-999')).status, 202);
    const head = logged.running.store.head();
    const logs = await logOf(() => disconnectMidBody(session, 'PATCH', 3000, data.subarray(1000, 2500), { 'Content-Range': '1000-3999' }));
    assert.equal(await settled(session), '0-999');
    expectOneInfoLine(logs, 'PATCH', new URL(session).pathname);
    assert.equal(logged.running.store.head(), head, 'nothing appended to the event log');
    assert.equal((await patchChunk(session, data.subarray(1000), '1000-3999')).status, 202, 'the upload goes on');
    assert.equal((await fetch(withDigest(session, sha256(data)), { method: 'PUT' })).status, 201);
  });

  it('mid-PUT closing an upload: one info line, the session at its acknowledged size, no event', async () => {
    const data = randomBytes(3000);
    const session = await openSession(logged.url, repo);
    assert.equal((await patchChunk(session, data.subarray(0, 1000), '0-999')).status, 202);
    const head = logged.running.store.head();
    const logs = await logOf(() => disconnectMidBody(withDigest(session, sha256(data)), 'PUT', 2000, data.subarray(1000, 1500), { 'Content-Range': '1000-2999' }));
    assert.equal(await settled(session), '0-999');
    expectOneInfoLine(logs, 'PUT', new URL(session).pathname);
    assert.equal(logged.running.store.head(), head, 'nothing appended to the event log');
    await expectOciError(await fetch(`${logged.url}/v2/${repo}/blobs/${sha256(data)}`), 404, 'BLOB_UNKNOWN');
    await assertReplayClean(logged);
  });

  it('mid-POST of a whole blob and mid-PUT of a manifest: one info line each, no event', async () => {
    const data = randomBytes(3000);
    const head = logged.running.store.head();
    const post = await logOf(() => disconnectMidBody(`${logged.url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, 'POST', data.length, data.subarray(0, 1000)));
    expectOneInfoLine(post, 'POST', `/v2/${repo}/blobs/uploads/`);
    const manifest = await logOf(() => disconnectMidBody(`${logged.url}/v2/${repo}/manifests/cut`, 'PUT', 2000, Buffer.alloc(500, 32), { 'Content-Type': OCI_MANIFEST }));
    expectOneInfoLine(manifest, 'PUT', `/v2/${repo}/manifests/cut`);
    assert.equal(logged.running.store.head(), head, 'nothing appended to the event log');
    await assertReplayClean(logged);
  });
});

describe('manifests naming content the repository lacks', () => {
  const repo = 'bad/references';

  it('an image naming a missing layer, in a repository that does not exist yet: refused, no repository created', async () => {
    const image = makeImage();
    const fresh = 'bad/never-created';
    await pushBlob(url, repo, image.config);
    const res = await pushManifest(url, fresh, 'latest', image.manifestBytes);
    await expectOciError(res, 400, 'MANIFEST_BLOB_UNKNOWN');
    await expectOciError(await fetch(`${url}/v2/${fresh}/tags/list`), 404, 'NAME_UNKNOWN');
    assert.ok(!(await catalog()).includes(fresh));
    await assertReplayClean(registry);
  });

  it('an image whose blobs are only in another repository: MANIFEST_BLOB_UNKNOWN', async () => {
    const image = makeImage();
    assert.equal((await pushImage(url, 'bad/holder', 'latest', image)).status, 201);
    await pushBlob(url, repo, randomBytes(10));
    await expectOciError(await pushManifest(url, repo, 'borrowed', image.manifestBytes), 400, 'MANIFEST_BLOB_UNKNOWN');
    await expectOciError(await fetch(`${url}/v2/${repo}/manifests/borrowed`), 404, 'MANIFEST_UNKNOWN');
    await assertReplayClean(registry);
  });

  it('an index naming a child manifest that was never pushed: MANIFEST_BLOB_UNKNOWN', async () => {
    const child = makeImage();
    const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [descriptor(OCI_MANIFEST, child.manifestBytes)] });
    await expectOciError(await pushManifest(url, repo, 'index', index, OCI_INDEX), 400, 'MANIFEST_BLOB_UNKNOWN');
    await expectOciError(await fetch(`${url}/v2/${repo}/manifests/index`), 404, 'MANIFEST_UNKNOWN');
    await assertReplayClean(registry);
  });

  it('an index naming a digest the repository holds only as a blob, not as a manifest: MANIFEST_BLOB_UNKNOWN', async () => {
    const child = makeImage();
    await pushBlob(url, repo, child.manifestBytes);
    const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [descriptor(OCI_MANIFEST, child.manifestBytes)] });
    await expectOciError(await pushManifest(url, repo, 'index-of-blob', index, OCI_INDEX), 400, 'MANIFEST_BLOB_UNKNOWN');
    await assertReplayClean(registry);
  });

  it('an index pushed after one child and before the other: refused, then accepted once both are there', async () => {
    const first = makeImage();
    const second = makeImage();
    assert.equal((await pushImage(url, repo, first.digest, first)).status, 201);
    const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [first, second].map((c) => descriptor(OCI_MANIFEST, c.manifestBytes)) });
    const refused = await pushManifest(url, repo, 'pair', index, OCI_INDEX);
    const body = (await refused.clone().json()) as { errors: { detail?: { digest?: string } }[] };
    await expectOciError(refused, 400, 'MANIFEST_BLOB_UNKNOWN');
    assert.equal(body.errors[0]?.detail?.digest, second.digest, 'the error names the missing child');
    assert.equal((await pushImage(url, repo, second.digest, second)).status, 201);
    assert.equal((await pushManifest(url, repo, 'pair', index, OCI_INDEX)).status, 201);
    await assertReplayClean(registry);
  });
});

describe('manifest media types', () => {
  const repo = 'bad/media-types';
  const image = makeImage();

  before(async () => {
    await pushBlob(url, repo, image.config);
    await pushBlob(url, repo, image.layers[0] as Buffer);
  });

  it('a Content-Type that disagrees with the body mediaType: 400 MANIFEST_INVALID', async () => {
    for (const contentType of [DOCKER_MANIFEST, OCI_INDEX, 'application/vnd.docker.distribution.manifest.list.v2+json']) {
      await expectOciError(await pushManifest(url, repo, 'mismatch', image.manifestBytes, contentType), 400, 'MANIFEST_INVALID');
    }
    const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
    await expectOciError(await pushManifest(url, repo, 'mismatch', index, OCI_MANIFEST), 400, 'MANIFEST_INVALID');
    await expectOciError(await fetch(`${url}/v2/${repo}/manifests/mismatch`), 404, 'MANIFEST_UNKNOWN');
    await assertReplayClean(registry);
  });

  it('Docker schema 1 (signed or not) is refused with 400 MANIFEST_INVALID', async () => {
    const layer = sha256(image.layers[0] as Buffer);
    const schema1 = {
      schemaVersion: 1,
      name: repo,
      tag: 'old',
      architecture: 'amd64',
      fsLayers: [{ blobSum: layer }],
      history: [{ v1Compatibility: JSON.stringify({ id: 'a'.repeat(64) }) }],
    };
    const signed = JSON.stringify({
      ...schema1,
      signatures: [{ header: { jwk: { crv: 'P-256', kty: 'EC', x: 'x', y: 'y' }, alg: 'ES256' }, signature: 'sig', protected: 'prot' }],
    }, null, 3);
    await expectOciError(await pushManifest(url, repo, 'old', signed, 'application/vnd.docker.distribution.manifest.v1+prettyjws'), 400, 'MANIFEST_INVALID');
    await expectOciError(await pushManifest(url, repo, 'old', JSON.stringify(schema1), 'application/vnd.docker.distribution.manifest.v1+json'), 400, 'MANIFEST_INVALID');
    await expectOciError(await pushManifest(url, repo, 'old', JSON.stringify(schema1), 'application/json'), 400, 'MANIFEST_INVALID');
    await expectOciError(await fetch(`${url}/v2/${repo}/manifests/old`), 404, 'MANIFEST_UNKNOWN');
    await assertReplayClean(registry);
  });

  it('with no mediaType and a Content-Type that names no manifest, the shape decides', async () => {
    const noType = JSON.stringify({ schemaVersion: 2, config: descriptor(OCI_CONFIG, image.config), layers: [descriptor('application/vnd.oci.image.layer.v1.tar', image.layers[0] as Buffer)] });
    const res = await pushManifest(url, repo, 'shape', noType, 'application/json');
    assert.equal(res.status, 201, await res.text());
    assert.equal((await fetch(`${url}/v2/${repo}/manifests/shape`)).headers.get('content-type'), OCI_MANIFEST);
    await assertReplayClean(registry);
  });
});
