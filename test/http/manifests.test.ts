// Manifests over HTTP: push, pull, HEAD, delete, and every manifest kind the registry stores.
// Mirrors the OCI distribution-spec conformance suite (opencontainers/distribution-spec,
// conformance/): 01_pull_test.go "Setup" (manifests with unknown descriptor fields `data` and
// `newUnspecifiedField`, one by tag and one by digest), "Pull manifests", "Error codes" and
// "Teardown"; 02_push_test.go "Manifest Upload" (one manifest under tags test0..test3, a manifest
// with no layers and no mediaType) and "Teardown"; 04_management_test.go "Manifest delete" (tag
// delete, then digest delete, then 404). Beyond the suite: OCI index, Docker schema2 manifest and
// manifest list, artifacts with artifactType and the empty config, OCI-Subject on PUT, byte-exact
// round trips, HEAD headers equal to GET's, and tag moves.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import {
  DOCKER_LIST,
  DOCKER_MANIFEST,
  OCI_CONFIG,
  OCI_EMPTY,
  OCI_INDEX,
  OCI_MANIFEST,
  descriptor,
  makeImage,
  pushBlob,
  pushImage,
  pushManifest,
  sha256,
  type TestImage,
} from '../helpers/oci.js';
import { assertReplayClean, expectOciError } from '../helpers/http.js';

let registry: TestRegistry;
let url: string;

/** The suite's error codes: a 400 answer must carry one of them. */
const SUITE_ERROR_CODES = [
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'MANIFEST_UNVERIFIED',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'TAG_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
];
const NONEXISTENT_MANIFEST = '.INVALID_MANIFEST_NAME';
const EMPTY_JSON = Buffer.from('{}');
const EMPTY_JSON_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

before(async () => {
  registry = await startTestRegistry();
  url = registry.url;
});
after(async () => {
  await registry.stop();
});

interface SuiteImage {
  config: Buffer;
  layer: Buffer;
  manifest: string;
  digest: string;
}

/**
 * An image as the suite's setup.go builds it: a config with a random author, indented with tabs,
 * and a config descriptor carrying `data` and a field no spec defines.
 */
function suiteImage(options: { layer?: Buffer; omitMediaType?: boolean; noLayers?: boolean } = {}): SuiteImage {
  const config = Buffer.from(
    JSON.stringify({ author: randomBytes(8).toString('hex'), architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }, null, '\t'),
  );
  const layer = options.layer ?? randomBytes(200);
  const manifest: Record<string, unknown> = { schemaVersion: 2 };
  if (!options.omitMediaType) manifest.mediaType = OCI_MANIFEST;
  manifest.config = {
    mediaType: OCI_CONFIG,
    digest: sha256(config),
    size: config.length,
    data: config.toString('base64'),
    newUnspecifiedField: Buffer.from('hello world').toString('base64'),
  };
  manifest.layers = options.noLayers ? [] : [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', size: layer.length, digest: sha256(layer), data: null, newUnspecifiedField: null }];
  const text = JSON.stringify(manifest, null, '\t');
  return { config, layer, manifest: text, digest: sha256(text) };
}

async function pushSuiteBlobs(repo: string, image: SuiteImage): Promise<void> {
  await pushBlob(url, repo, image.config);
  await pushBlob(url, repo, image.layer);
}

async function getManifest(repo: string, reference: string, accept = OCI_MANIFEST): Promise<Response> {
  return fetch(`${url}/v2/${repo}/manifests/${reference}`, { headers: { Accept: accept } });
}

async function headManifest(repo: string, reference: string): Promise<Response> {
  return fetch(`${url}/v2/${repo}/manifests/${reference}`, { method: 'HEAD', headers: { Accept: OCI_MANIFEST } });
}

async function deleteManifest(repo: string, reference: string): Promise<Response> {
  return fetch(`${url}/v2/${repo}/manifests/${reference}`, { method: 'DELETE' });
}

/** Asserts a 201 manifest push: Location by digest and Docker-Content-Digest. */
async function expectPushed(res: Response, repo: string, digest: string): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, 201, `manifest push answered ${res.status}: ${text}`);
  assert.equal(res.headers.get('location'), `/v2/${repo}/manifests/${digest}`);
  assert.equal(res.headers.get('docker-content-digest'), digest);
}

describe('pull manifests (01_pull "Pull manifests", "Error codes", "Teardown")', () => {
  const repo = 'conformance/manifest-pull';
  const layer = randomBytes(300);
  const manifests = [suiteImage({ layer }), suiteImage({ layer })];
  const tag = 'tagtest0';

  before(async () => {
    for (const image of manifests) await pushSuiteBlobs(repo, image);
    const first = await pushManifest(url, repo, tag, (manifests[0] as SuiteImage).manifest);
    assert.ok(first.status >= 200 && first.status < 300);
    const second = await pushManifest(url, repo, (manifests[1] as SuiteImage).digest, (manifests[1] as SuiteImage).manifest);
    assert.ok(second.status >= 200 && second.status < 300);
  });

  it('HEAD request to nonexistent manifest should return 404', async () => {
    const res = await headManifest(repo, NONEXISTENT_MANIFEST);
    assert.equal(res.status, 404);
    assert.equal((await res.arrayBuffer()).byteLength, 0);
  });

  it('HEAD request to manifest[0] and manifest[1] path (digest) should yield 200 response', async () => {
    for (const image of manifests) {
      const res = await headManifest(repo, image.digest);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-content-digest'), image.digest);
    }
  });

  it('HEAD request to manifest path (tag) should yield 200 response', async () => {
    const res = await headManifest(repo, tag);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), (manifests[0] as SuiteImage).digest);
  });

  it('GET nonexistent manifest should return 404', async () => {
    await expectOciError(await getManifest(repo, NONEXISTENT_MANIFEST), 404, 'MANIFEST_UNKNOWN');
  });

  it('GET request to manifest[0] and manifest[1] path (digest) should yield 200 response', async () => {
    for (const image of manifests) {
      const res = await getManifest(repo, image.digest);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), image.manifest, 'the manifest comes back byte for byte, unknown fields included');
    }
  });

  it('GET request to manifest path (tag) should yield 200 response', async () => {
    const res = await getManifest(repo, tag);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), (manifests[0] as SuiteImage).digest);
    assert.equal(await res.text(), (manifests[0] as SuiteImage).manifest);
  });

  it('400 response body should contain OCI-conforming JSON message (GET of sha256:totallywrong)', async () => {
    const res = await fetch(`${url}/v2/${repo}/manifests/sha256:totallywrong`, {
      headers: { 'Content-Type': OCI_MANIFEST },
    });
    assert.ok(res.status === 400 || res.status === 404, `answered ${res.status}`);
    const body = (await res.json()) as { errors: { code: string }[] };
    assert.ok(SUITE_ERROR_CODES.includes(body.errors[0]?.code ?? ''), `code ${body.errors[0]?.code} is an OCI code`);
  });

  it('a PUT of invalid content to sha256:totallywrong is a 400 with an OCI code', async () => {
    const res = await pushManifest(url, repo, 'sha256:totallywrong', 'blablabla');
    const body = (await res.clone().json()) as { errors: { code: string }[] };
    assert.equal(res.status, 400);
    assert.ok(SUITE_ERROR_CODES.includes(body.errors[0]?.code ?? ''), `code ${body.errors[0]?.code} is an OCI code`);
  });

  it('Teardown: delete manifests by digest (202), then their config and layer blobs (202)', async () => {
    for (const image of manifests) assert.equal((await deleteManifest(repo, image.digest)).status, 202);
    for (const image of manifests) {
      assert.equal((await fetch(`${url}/v2/${repo}/blobs/${sha256(image.config)}`, { method: 'DELETE' })).status, 202);
    }
    assert.equal((await fetch(`${url}/v2/${repo}/blobs/${sha256(layer)}`, { method: 'DELETE' })).status, 202);
    await expectOciError(await getManifest(repo, tag), 404, 'MANIFEST_UNKNOWN');
  });
});

describe('manifest upload (02_push "Manifest Upload", "Teardown")', () => {
  const repo = 'conformance/manifest-push';
  const image = suiteImage();
  const emptyLayer = suiteImage({ omitMediaType: true, noLayers: true });

  before(async () => {
    await pushSuiteBlobs(repo, image);
    await pushBlob(url, repo, emptyLayer.config);
  });

  it('GET nonexistent manifest should return 404', async () => {
    await expectOciError(await getManifest(repo, NONEXISTENT_MANIFEST), 404, 'MANIFEST_UNKNOWN');
  });

  it('PUT should accept a manifest upload (tags test0..test3)', async () => {
    for (let i = 0; i < 4; i++) await expectPushed(await pushManifest(url, repo, `test${i}`, image.manifest), repo, image.digest);
    const tags = (await (await fetch(`${url}/v2/${repo}/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(tags.tags, ['test0', 'test1', 'test2', 'test3']);
  });

  it('Registry should accept a manifest upload with no layers (and no mediaType in the body)', async () => {
    await expectPushed(await pushManifest(url, repo, 'emptylayer', emptyLayer.manifest), repo, emptyLayer.digest);
    const res = await getManifest(repo, 'emptylayer');
    assert.equal(res.headers.get('content-type'), OCI_MANIFEST, 'the media type comes from the Content-Type of the push');
    assert.equal(await res.text(), emptyLayer.manifest);
  });

  it('GET request to manifest URL (digest) should yield 200 response', async () => {
    const res = await getManifest(repo, image.digest);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), image.manifest);
  });

  it('Teardown: delete the manifests by digest (202), then the blobs (202)', async () => {
    assert.equal((await deleteManifest(repo, image.digest)).status, 202);
    assert.equal((await deleteManifest(repo, emptyLayer.digest)).status, 202);
    for (const data of [image.config, image.layer, emptyLayer.config]) {
      assert.equal((await fetch(`${url}/v2/${repo}/blobs/${sha256(data)}`, { method: 'DELETE' })).status, 202);
    }
    const tags = (await (await fetch(`${url}/v2/${repo}/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(tags.tags, []);
  });
});

describe('manifest delete (04_management "Manifest delete")', () => {
  const repo = 'conformance/manifest-management';
  const image = suiteImage();
  let numTags = 0;

  before(async () => {
    await pushSuiteBlobs(repo, image);
    await expectPushed(await pushManifest(url, repo, 'tagtest0', image.manifest), repo, image.digest);
    assert.equal((await pushImage(url, repo, 'other')).status, 201);
    numTags = ((await (await fetch(`${url}/v2/${repo}/tags/list`)).json()) as { tags: string[] }).tags.length;
  });

  it('DELETE request to manifest tag should return 202', async () => {
    const res = await deleteManifest(repo, 'tagtest0');
    assert.equal(res.status, 202);
    assert.equal((await res.arrayBuffer()).byteLength, 0);
  });

  it('the deleted tag is gone but the manifest stays reachable by digest', async () => {
    await expectOciError(await getManifest(repo, 'tagtest0'), 404, 'MANIFEST_UNKNOWN');
    const res = await getManifest(repo, image.digest);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), image.manifest);
  });

  it('GET request to tags list should reflect manifest deletion', async () => {
    const tags = ((await (await fetch(`${url}/v2/${repo}/tags/list`)).json()) as { tags: string[] }).tags;
    assert.ok(tags.length < numTags);
    assert.deepEqual(tags, ['other']);
  });

  it('DELETE request to manifest (digest) should yield 202 response', async () => {
    assert.equal((await deleteManifest(repo, image.digest)).status, 202);
  });

  it('GET request to deleted manifest URL should yield 404 response', async () => {
    await expectOciError(await getManifest(repo, image.digest), 404, 'MANIFEST_UNKNOWN');
    assert.equal((await headManifest(repo, image.digest)).status, 404);
  });

  it('a second DELETE of the manifest or of an unknown tag is 404 MANIFEST_UNKNOWN', async () => {
    await expectOciError(await deleteManifest(repo, image.digest), 404, 'MANIFEST_UNKNOWN');
    await expectOciError(await deleteManifest(repo, 'tagtest0'), 404, 'MANIFEST_UNKNOWN');
  });

  it('DELETE by digest removes every tag on the manifest', async () => {
    const multi = makeImage();
    assert.equal((await pushImage(url, repo, 'a', multi)).status, 201);
    assert.equal((await pushManifest(url, repo, 'b', multi.manifestBytes)).status, 201);
    assert.equal((await deleteManifest(repo, multi.digest)).status, 202);
    await expectOciError(await getManifest(repo, 'a'), 404, 'MANIFEST_UNKNOWN');
    await expectOciError(await getManifest(repo, 'b'), 404, 'MANIFEST_UNKNOWN');
    const tags = ((await (await fetch(`${url}/v2/${repo}/tags/list`)).json()) as { tags: string[] }).tags;
    assert.deepEqual(tags, ['other']);
  });

  it('a deleted manifest can be pushed again', async () => {
    await expectPushed(await pushManifest(url, repo, 'tagtest0', image.manifest), repo, image.digest);
    assert.equal((await getManifest(repo, 'tagtest0')).status, 200);
  });
});

describe('deleting a manifest an index lists (as zot: 405 DENIED)', () => {
  const repo = 'refs/multi-arch';
  const amd64 = makeImage();
  const arm64 = makeImage();
  const index = (...children: TestImage[]): string =>
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: children.map((child) => descriptor(OCI_MANIFEST, child.manifestBytes)) });
  const both = index(amd64, arm64);
  const amd64Only = index(amd64);

  /** The detail of a refused delete: the reference asked for and the indexes that list it. */
  const expectReferenced = async (res: Response, reference: string, referencedBy: string[]): Promise<void> => {
    const body = await expectOciError(res, 405, 'DENIED');
    assert.deepEqual(body.errors[0]?.detail, { reference, referencedBy: [...referencedBy].sort() });
  };

  before(async () => {
    for (const child of [amd64, arm64]) await expectPushed(await pushImage(url, repo, child.digest, child), repo, child.digest);
    await expectPushed(await pushManifest(url, repo, 'multi', both, OCI_INDEX), repo, sha256(both));
    await expectPushed(await pushManifest(url, repo, sha256(amd64Only), amd64Only, OCI_INDEX), repo, sha256(amd64Only));
  });

  it('refuses a child by digest, naming every index that lists it; nothing changes', async () => {
    await expectReferenced(await deleteManifest(repo, amd64.digest), amd64.digest, [sha256(both), sha256(amd64Only)]);
    await expectReferenced(await deleteManifest(repo, arm64.digest), arm64.digest, [sha256(both)]);
    const pulled = await getManifest(repo, 'multi', OCI_INDEX);
    assert.equal(pulled.status, 200);
    assert.equal(await pulled.text(), both);
    for (const child of [amd64, arm64]) assert.equal(await (await getManifest(repo, child.digest)).text(), child.manifestBytes);
  });

  it('records the refusal as a WriteRefused event, like other refused writes', async () => {
    await expectOciError(await deleteManifest(repo, arm64.digest), 405, 'DENIED');
    // Refusals are aggregated per identity, repository and code: the first of this describe's
    // DENIED deletes was appended at once, the later ones are counted into one event.
    const refusals = [...registry.running.store.read({ repo, type: 'WriteRefused' })];
    const refusal = refusals.find((event) => event.type === 'WriteRefused' && event.method === 'DELETE' && event.code === 'DENIED');
    assert.ok(refusal, JSON.stringify(refusals));
    assert.ok(refusal.type === 'WriteRefused');
    const children = [amd64.digest, arm64.digest];
    assert.ok(children.includes(refusal.reference ?? ''), `the refusal names a child: ${JSON.stringify(refusal)}`);
    assert.deepEqual([refusal.status, refusal.path], [405, `/v2/${repo}/manifests/${refusal.reference}`]);
  });

  it('a tag on a child can still be deleted: that removes the tag only', async () => {
    await expectPushed(await pushManifest(url, repo, 'amd64', amd64.manifestBytes), repo, amd64.digest);
    assert.equal((await deleteManifest(repo, 'amd64')).status, 202);
    await expectOciError(await getManifest(repo, 'amd64'), 404, 'MANIFEST_UNKNOWN');
    assert.equal((await getManifest(repo, amd64.digest)).status, 200);
  });

  it('deleting the indexes first, then the children, works', async () => {
    assert.equal((await deleteManifest(repo, sha256(amd64Only))).status, 202);
    await expectReferenced(await deleteManifest(repo, amd64.digest), amd64.digest, [sha256(both)]);
    assert.equal((await deleteManifest(repo, sha256(both))).status, 202);
    for (const child of [amd64, arm64]) {
      assert.equal((await deleteManifest(repo, child.digest)).status, 202);
      await expectOciError(await getManifest(repo, child.digest), 404, 'MANIFEST_UNKNOWN');
    }
    await assertReplayClean(registry);
  });
});

describe('a delete racing an index push that lists the manifest', () => {
  const repo = 'refs/race';
  const child = makeImage();
  const index = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [descriptor(OCI_MANIFEST, child.manifestBytes)] });
  const hex = child.digest.slice('sha256:'.length);
  let held: TestRegistry;
  // Holds a push of the child's bytes as a blob in its move into place, and with it the child's
  // content lock: a delete of the child checks, then waits there for the lock.
  let reachedMove!: () => void;
  const moveReached = new Promise<void>((resolve) => (reachedMove = resolve));
  let releaseMove!: () => void;
  const moveReleased = new Promise<void>((resolve) => (releaseMove = resolve));

  before(async () => {
    held = await startTestRegistry(
      {},
      {
        wrapDriver: (driver) =>
          new Proxy(driver, {
            get: (target, property, receiver) => {
              const value = Reflect.get(target, property, receiver) as unknown;
              // putFile moves a session's file into place; placeTemporary a whole body's file.
              if ((property !== 'putFile' && property !== 'placeTemporary') || typeof value !== 'function') return value;
              return async (from: unknown, to: string) => {
                if (to.endsWith(hex)) {
                  reachedMove();
                  await moveReleased;
                }
                return (value as (a: unknown, b: string) => Promise<void>).call(target, from, to);
              };
            },
          }),
      },
    );
  });
  after(async () => {
    releaseMove();
    await held.stop();
  });

  it('is refused when the index was recorded while the delete waited: the re-check inside the append sees it', async () => {
    await expectPushed(await pushImage(held.url, repo, child.digest, child), repo, child.digest);
    const blobPush = fetch(`${held.url}/v2/${repo}/blobs/uploads/?digest=${child.digest}`, { method: 'POST', body: child.manifestBytes });
    await moveReached;
    let deleteAnswered = false;
    const deletion = fetch(`${held.url}/v2/${repo}/manifests/${child.digest}`, { method: 'DELETE' }).finally(() => (deleteAnswered = true));
    const indexPush = await fetch(`${held.url}/v2/${repo}/manifests/multi`, { method: 'PUT', headers: { 'Content-Type': OCI_INDEX }, body: index });
    assert.equal(indexPush.status, 201, await indexPush.text());
    assert.equal(deleteAnswered, false, 'the delete waits for the content lock the blob push holds');
    releaseMove();
    assert.equal((await blobPush).status, 201);
    const body = await expectOciError(await deletion, 405, 'DENIED');
    assert.deepEqual(body.errors[0]?.detail, { reference: child.digest, referencedBy: [sha256(index)] });
    const pulled = await fetch(`${held.url}/v2/${repo}/manifests/${child.digest}`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(await pulled.text(), child.manifestBytes, 'the index still finds its child');
    await assertReplayClean(held);
  });
});

describe('manifest kinds', () => {
  const repo = 'kinds/all';

  it('OCI image manifest: GET answers its media type, digest and exact bytes', async () => {
    const image = makeImage({ layers: 3 });
    await expectPushed(await pushImage(url, repo, 'oci-image', image), repo, image.digest);
    const res = await getManifest(repo, 'oci-image');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), OCI_MANIFEST);
    assert.equal(res.headers.get('docker-content-digest'), image.digest);
    assert.equal(await res.text(), image.manifestBytes);
  });

  it('OCI index whose children were pushed by digest first', async () => {
    const amd64 = makeImage();
    const arm64 = makeImage();
    for (const child of [amd64, arm64]) {
      await pushBlob(url, repo, child.config);
      for (const layer of child.layers) await pushBlob(url, repo, layer);
      await expectPushed(await pushManifest(url, repo, child.digest, child.manifestBytes), repo, child.digest);
    }
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { ...descriptor(OCI_MANIFEST, amd64.manifestBytes), platform: { architecture: 'amd64', os: 'linux' } },
        { ...descriptor(OCI_MANIFEST, arm64.manifestBytes), platform: { architecture: 'arm64', os: 'linux' } },
      ],
    });
    await expectPushed(await pushManifest(url, repo, 'multi-arch', index, OCI_INDEX), repo, sha256(index));
    const res = await getManifest(repo, 'multi-arch', OCI_INDEX);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), OCI_INDEX);
    assert.equal(await res.text(), index);
    // The children stay reachable by digest, untagged.
    for (const child of [amd64, arm64]) assert.equal(await (await getManifest(repo, child.digest)).text(), child.manifestBytes);
  });

  it('OCI index without mediaType in the body takes it from Content-Type', async () => {
    const child = makeImage();
    await expectPushed(await pushImage(url, repo, child.digest, child), repo, child.digest);
    const index = JSON.stringify({ schemaVersion: 2, manifests: [descriptor(OCI_MANIFEST, child.manifestBytes)] });
    await expectPushed(await pushManifest(url, repo, 'index-no-mediatype', index, OCI_INDEX), repo, sha256(index));
    assert.equal((await getManifest(repo, 'index-no-mediatype', OCI_INDEX)).headers.get('content-type'), OCI_INDEX);
  });

  it('Docker v2 schema2 manifest', async () => {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } }));
    const layer = randomBytes(400);
    await pushBlob(url, repo, config);
    await pushBlob(url, repo, layer);
    const manifest = JSON.stringify(
      {
        schemaVersion: 2,
        mediaType: DOCKER_MANIFEST,
        config: descriptor('application/vnd.docker.container.image.v1+json', config),
        layers: [descriptor('application/vnd.docker.image.rootfs.diff.tar.gzip', layer)],
      },
      null,
      3,
    );
    await expectPushed(await pushManifest(url, repo, 'docker', manifest, DOCKER_MANIFEST), repo, sha256(manifest));
    const res = await getManifest(repo, 'docker', DOCKER_MANIFEST);
    assert.equal(res.headers.get('content-type'), DOCKER_MANIFEST);
    assert.equal(await res.text(), manifest);
  });

  it('Docker manifest list of schema2 manifests', async () => {
    const children: string[] = [];
    for (const arch of ['amd64', 'arm64']) {
      const config = Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
      const layer = randomBytes(64);
      await pushBlob(url, repo, config);
      await pushBlob(url, repo, layer);
      const manifest = JSON.stringify({
        schemaVersion: 2,
        mediaType: DOCKER_MANIFEST,
        config: descriptor('application/vnd.docker.container.image.v1+json', config),
        layers: [descriptor('application/vnd.docker.image.rootfs.diff.tar.gzip', layer)],
      });
      await expectPushed(await pushManifest(url, repo, sha256(manifest), manifest, DOCKER_MANIFEST), repo, sha256(manifest));
      children.push(manifest);
    }
    const list = JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_LIST,
      manifests: children.map((m, i) => ({ ...descriptor(DOCKER_MANIFEST, m), platform: { architecture: i === 0 ? 'amd64' : 'arm64', os: 'linux' } })),
    });
    await expectPushed(await pushManifest(url, repo, 'docker-list', list, DOCKER_LIST), repo, sha256(list));
    const res = await getManifest(repo, 'docker-list', DOCKER_LIST);
    assert.equal(res.headers.get('content-type'), DOCKER_LIST);
    assert.equal(await res.text(), list);
  });

  it('artifact with artifactType and the empty config {}', async () => {
    assert.equal(sha256(EMPTY_JSON), EMPTY_JSON_DIGEST);
    const payload = Buffer.from('{"sbom":"spdx"}');
    await pushBlob(url, repo, EMPTY_JSON);
    await pushBlob(url, repo, payload);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.sbom.v1+json',
      config: { mediaType: OCI_EMPTY, digest: EMPTY_JSON_DIGEST, size: 2, data: 'e30=' },
      layers: [descriptor('application/spdx+json', payload)],
      annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
    });
    await expectPushed(await pushManifest(url, repo, 'sbom', manifest), repo, sha256(manifest));
    const res = await getManifest(repo, 'sbom');
    assert.equal(await res.text(), manifest);
    const config = await fetch(`${url}/v2/${repo}/blobs/${EMPTY_JSON_DIGEST}`);
    assert.equal(await config.text(), '{}');
  });

  it('a manifest with a subject answers OCI-Subject on PUT; the subject need not exist', async () => {
    const subject = makeImage();
    const referrer = makeImage({ subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: Buffer.byteLength(subject.manifestBytes) } });
    const res = await pushImage(url, repo, referrer.digest, referrer);
    assert.equal(res.headers.get('oci-subject'), subject.digest);
    await expectPushed(res, repo, referrer.digest);
    const plain = await pushImage(url, repo, 'no-subject');
    assert.equal(plain.headers.get('oci-subject'), null, 'no OCI-Subject without a subject');
    await plain.arrayBuffer();
  });

  it('a manifest pushed by a sha512 digest is stored and served under it', async () => {
    const image = makeImage();
    const digest = `sha512:${createHash('sha512').update(image.manifestBytes).digest('hex')}`;
    await pushBlob(url, repo, image.config);
    for (const layer of image.layers) await pushBlob(url, repo, layer);
    await expectPushed(await pushManifest(url, repo, digest, image.manifestBytes), repo, digest);
    const res = await getManifest(repo, digest);
    assert.equal(res.headers.get('docker-content-digest'), digest);
    assert.equal(await res.text(), image.manifestBytes);
  });
});

describe('byte-exact round trip and HEAD', () => {
  const repo = 'kinds/exact';
  const image = makeImage();
  // Odd whitespace, key order and escapes: the registry must keep the bytes, not re-serialise.
  const oddManifest =
    '{\r\n  "layers" :[ ' +
    JSON.stringify(descriptor('application/vnd.oci.image.layer.v1.tar', image.layers[0] as Buffer)) +
    ' ] ,\n\t"schemaVersion":   2,\n"config":' +
    JSON.stringify(descriptor(OCI_CONFIG, image.config)) +
    ',   "mediaType" : "application\\/vnd.oci.image.manifest.v1+json", "annotations": {"note": "caf\\u00e9 ✓"}  }\n\n';

  before(async () => {
    await pushBlob(url, repo, image.config);
    await pushBlob(url, repo, image.layers[0] as Buffer);
  });

  it('GET returns exactly the bytes pushed, and Docker-Content-Digest is the sha256 of the body', async () => {
    const digest = sha256(oddManifest);
    const put = await pushManifest(url, repo, 'odd', oddManifest);
    assert.equal(put.headers.get('docker-content-digest'), digest);
    await expectPushed(put, repo, digest);
    for (const reference of ['odd', digest]) {
      const res = await getManifest(repo, reference);
      const body = Buffer.from(await res.arrayBuffer());
      assert.deepEqual(body, Buffer.from(oddManifest));
      assert.equal(res.headers.get('docker-content-digest'), sha256(body));
      assert.equal(res.headers.get('content-length'), String(body.length));
      assert.equal(res.headers.get('content-type'), OCI_MANIFEST);
    }
  });

  it('HEAD returns the same headers as GET, with Content-Length, and no body', async () => {
    const get = await getManifest(repo, 'odd');
    const body = Buffer.from(await get.arrayBuffer());
    const head = await headManifest(repo, 'odd');
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(body.length));
    for (const name of ['content-type', 'docker-content-digest', 'etag', 'content-length', 'docker-distribution-api-version']) {
      assert.equal(head.headers.get(name), get.headers.get(name), `${name} is the same for HEAD and GET`);
    }
    assert.equal((await head.arrayBuffer()).byteLength, 0);
  });

  it('the manifest is also served as a blob of the repository', async () => {
    const res = await fetch(`${url}/v2/${repo}/blobs/${sha256(oddManifest)}`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), oddManifest);
  });

  it('pushing a tag again with another manifest moves it; the old one stays by digest', async () => {
    const first = makeImage();
    const second = makeImage();
    assert.equal((await pushImage(url, repo, 'moving', first)).status, 201);
    assert.equal((await pushImage(url, repo, 'moving', second)).status, 201);
    const res = await getManifest(repo, 'moving');
    assert.equal(res.headers.get('docker-content-digest'), second.digest);
    assert.equal(await res.text(), second.manifestBytes);
    assert.equal(await (await getManifest(repo, first.digest)).text(), first.manifestBytes);
  });

  it('pushing the same manifest twice under the same tag is idempotent', async () => {
    const again = await pushManifest(url, repo, 'odd', oddManifest);
    await expectPushed(again, repo, sha256(oddManifest));
    assert.equal(await (await getManifest(repo, 'odd')).text(), oddManifest);
  });
});
