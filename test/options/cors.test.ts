// CORS through HTTP, as zot sends it (pkg/api/routes.go): Access-Control-Allow-Origin on the
// endpoints a browser UI reads (http.allowOrigin, or * when unset), the allowed methods and
// headers on those that take a preflight, OPTIONS answered 200 with no body there and 405
// elsewhere, and no CORS headers on pushes and blob reads. With an htpasswd login, preflights still
// need no credentials (browsers send none) and say Access-Control-Allow-Credentials: true.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetchAs, writeHtpasswd } from '../helpers/auth.js';
import { expectOciError } from '../helpers/http.js';
import { makeImage, pushImage, sha256 } from '../helpers/oci.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const ORIGIN = 'https://ui.example.com';
let registry: TestRegistry;
let url: string;
let digest: string;

before(async () => {
  registry = await startTestRegistry({ http: { allowOrigin: ORIGIN } });
  url = registry.url;
  const image = makeImage();
  const res = await pushImage(url, 'cors/app', 'v1', image);
  assert.equal(res.status, 201);
  digest = image.digest;
});
after(async () => {
  await registry.stop();
});

function cors(res: Response): Record<string, string | null> {
  return {
    origin: res.headers.get('access-control-allow-origin'),
    methods: res.headers.get('access-control-allow-methods'),
    headers: res.headers.get('access-control-allow-headers'),
  };
}

const UI_HEADERS = 'Authorization,content-type,X-ZOT-API-CLIENT';

describe('CORS (http.allowOrigin)', () => {
  it('answers the preflight of the read endpoints with 200, no body, origin, methods and headers', async () => {
    const cases: [string, string][] = [
      ['/v2/', 'GET,OPTIONS'],
      ['/v2/_catalog', 'GET,OPTIONS'],
      ['/v2/cors/app/tags/list', 'GET,OPTIONS'],
      [`/v2/cors/app/referrers/${digest}`, 'GET,OPTIONS'],
      ['/v2/cors/app/manifests/v1', 'HEAD,GET,DELETE,OPTIONS'],
    ];
    for (const [path, methods] of cases) {
      const res = await fetch(`${url}${path}`, {
        method: 'OPTIONS',
        headers: { Origin: ORIGIN, 'Access-Control-Request-Method': 'GET' },
      });
      assert.equal(res.status, 200, `OPTIONS ${path}`);
      assert.equal(await res.text(), '', `OPTIONS ${path} has no body`);
      assert.deepEqual(cors(res), { origin: ORIGIN, methods, headers: UI_HEADERS }, `OPTIONS ${path}`);
    }
  });

  it('sends the same headers on the reads, error answers included', async () => {
    const tags = await fetch(`${url}/v2/cors/app/tags/list`);
    assert.equal(tags.status, 200);
    assert.deepEqual(cors(tags), { origin: ORIGIN, methods: 'GET,OPTIONS', headers: UI_HEADERS });
    const head = await fetch(`${url}/v2/cors/app/manifests/v1`, { method: 'HEAD' });
    assert.deepEqual(cors(head), { origin: ORIGIN, methods: 'HEAD,GET,DELETE,OPTIONS', headers: UI_HEADERS });
    // zot sets only the origin on a manifest GET and DELETE.
    const get = await fetch(`${url}/v2/cors/app/manifests/v1`);
    assert.equal(get.status, 200);
    await get.arrayBuffer();
    assert.deepEqual(cors(get), { origin: ORIGIN, methods: null, headers: null });
    const unknown = await fetch(`${url}/v2/cors/none/tags/list`);
    assert.deepEqual(cors(unknown), { origin: ORIGIN, methods: 'GET,OPTIONS', headers: UI_HEADERS });
    await expectOciError(unknown, 404, 'NAME_UNKNOWN');
  });

  it('sends nothing on pushes and blob reads, and refuses their preflight with 405', async () => {
    const image = makeImage();
    const blob = await fetch(`${url}/v2/cors/app/blobs/${sha256(image.config)}`);
    await blob.arrayBuffer();
    assert.deepEqual(cors(blob), { origin: null, methods: null, headers: null }, 'blob GET');
    const upload = await fetch(`${url}/v2/cors/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(upload.status, 202);
    assert.deepEqual(cors(upload), { origin: null, methods: null, headers: null }, 'upload POST');
    const preflight = await fetch(`${url}/v2/cors/app/blobs/uploads/`, { method: 'OPTIONS' });
    assert.equal(preflight.headers.get('allow'), 'POST');
    await expectOciError(preflight, 405, 'UNSUPPORTED');
  });

  it('allows any origin when http.allowOrigin is unset', async () => {
    const open = await startTestRegistry();
    try {
      const res = await fetch(`${open.url}/v2/`, { method: 'OPTIONS' });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
      assert.equal(res.headers.get('access-control-allow-credentials'), null, 'never credentials with *');
    } finally {
      await open.stop();
    }
  });

  it('with an htpasswd login: preflights need no credentials and allow them, reads without them are 401 with the origin', async () => {
    const htpasswd = writeHtpasswd(path.join(makeTempDir(), 'htpasswd'), { alice: 'alice-password' });
    const secured = await startTestRegistry({ http: { allowOrigin: ORIGIN, auth: { htpasswd: { path: htpasswd } } } });
    try {
      const preflight = await fetch(`${secured.url}/v2/_catalog`, { method: 'OPTIONS', headers: { Origin: ORIGIN, 'Access-Control-Request-Method': 'GET' } });
      assert.equal(preflight.status, 200);
      assert.deepEqual(cors(preflight), { origin: ORIGIN, methods: 'GET,OPTIONS', headers: UI_HEADERS });
      assert.equal(preflight.headers.get('access-control-allow-credentials'), 'true');

      const anonymous = await fetch(`${secured.url}/v2/_catalog`, { headers: { Origin: ORIGIN } });
      await expectOciError(anonymous, 401, 'UNAUTHORIZED');
      assert.equal(anonymous.headers.get('access-control-allow-origin'), ORIGIN, 'a browser can read the 401');

      const wrong = await fetchAs('alice', 'wrong', `${secured.url}/v2/_catalog`, { headers: { Origin: ORIGIN } });
      await expectOciError(wrong, 401, 'UNAUTHORIZED');
      assert.equal(wrong.headers.get('access-control-allow-origin'), ORIGIN, 'failed credentials too');

      const alice = await fetchAs('alice', 'alice-password', `${secured.url}/v2/_catalog`, { headers: { Origin: ORIGIN } });
      assert.equal(alice.status, 200);
      assert.equal(alice.headers.get('access-control-allow-credentials'), 'true');
    } finally {
      await secured.stop();
    }
  });
});
