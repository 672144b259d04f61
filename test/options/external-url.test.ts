// http.externalUrl through HTTP: every Location header the registry sends (upload sessions,
// chunk progress, blobs committed and mounted, manifests pushed, a 416's upload position) and
// the Link of a paginated list are absolute URLs on it, path prefix included.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeImage, pushBlob, pushManifest, sha256 } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const EXTERNAL = 'https://registry.example.com/mirror';
let registry: TestRegistry;
let url: string;

before(async () => {
  registry = await startTestRegistry({ http: { externalUrl: `${EXTERNAL}/` } });
  url = registry.url;
});
after(async () => {
  await registry.stop();
});

/** The Location, which must be on the external URL; answers its path on this registry. */
function external(res: Response): string {
  const location = res.headers.get('location') ?? '';
  assert.ok(location.startsWith(`${EXTERNAL}/v2/`), `Location ${location} is on ${EXTERNAL}`);
  return location.slice(EXTERNAL.length);
}

describe('http.externalUrl', () => {
  it('puts every Location of a push on the external URL', async () => {
    const image = makeImage({ layerBytes: 64 });
    const layer = image.layers[0]!;
    const opened = await fetch(`${url}/v2/ext/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(opened.status, 202);
    const session = external(opened);

    const patched = await fetch(`${url}${session}`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${layer.length - 1}` },
      body: layer,
    });
    assert.equal(patched.status, 202);
    const next = external(patched);
    const status = await fetch(`${url}${next}`);
    assert.equal(status.status, 204);
    external(status);

    const wrongRange = await fetch(`${url}${next}`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': '0-0' },
      body: Buffer.from('x'),
    });
    assert.equal(wrongRange.status, 416);
    external(wrongRange);

    const committed = await fetch(`${url}${next}${next.includes('?') ? '&' : '?'}digest=${sha256(layer)}`, { method: 'PUT' });
    assert.equal(committed.status, 201);
    assert.equal(external(committed), `/v2/ext/app/blobs/${sha256(layer)}`);

    const monolithic = await fetch(`${url}/v2/ext/app/blobs/uploads/?digest=${sha256(image.config)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: image.config,
    });
    assert.equal(monolithic.status, 201);
    external(monolithic);

    const mounted = await fetch(`${url}/v2/ext/other/blobs/uploads/?mount=${sha256(layer)}&from=ext/app`, { method: 'POST' });
    assert.equal(mounted.status, 201);
    assert.equal(external(mounted), `/v2/ext/other/blobs/${sha256(layer)}`);

    const manifest = await pushManifest(url, 'ext/app', 'v1', image.manifestBytes);
    assert.equal(manifest.status, 201);
    assert.equal(external(manifest), `/v2/ext/app/manifests/${image.digest}`);
  });

  it('puts the Link of a paginated list on the external URL', async () => {
    const image = makeImage();
    await pushBlob(url, 'ext/tags', image.config);
    await pushBlob(url, 'ext/tags', image.layers[0]!);
    for (const tag of ['a', 'b', 'c']) assert.equal((await pushManifest(url, 'ext/tags', tag, image.manifestBytes)).status, 201);
    const page = await fetch(`${url}/v2/ext/tags/tags/list?n=1`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('link'), `<${EXTERNAL}/v2/ext/tags/tags/list?n=1&last=a>; rel="next"`);
  });
});
