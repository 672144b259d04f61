// A second registry on the same S3 bucket and prefix, with a fresh local root: its start-up import
// reads every object the first one left (blobs bigger than a part among them), records them as
// events and serves them byte-identical. A read that fails stops the start with an error naming
// the object, and the next start imports everything.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertReplayClean, pushChunked } from '../helpers/http.js';
import { makeImage, pushBlob, pushImage, sha256 } from '../helpers/oci.js';
import { makeTempDir, runZot, startTestRegistry, testConfig, writeConfig, type TestRegistry } from '../helpers/registry.js';
import { DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE } from '../../src/storage/s3.js';
import { startS3Server, type TestS3Server } from '../helpers/s3.js';

const MIB = 1024 * 1024;

async function pull(url: string, repo: string, digest: string): Promise<Buffer> {
  const res = await fetch(`${url}/v2/${repo}/blobs/${digest}`);
  assert.equal(res.status, 200, `GET ${repo} blob ${digest}`);
  return Buffer.from(await res.arrayBuffer());
}

describe('start-up import from an S3 prefix another registry wrote', () => {
  let s3: TestS3Server;
  const running: TestRegistry[] = [];

  before(async () => {
    s3 = await startS3Server();
  });
  after(async () => {
    for (const registry of running) await registry.stop();
    await s3?.stop();
  });

  /** A registry on the prefix, with a local root of its own unless given one. */
  async function start(prefix: string, root?: string): Promise<TestRegistry> {
    const registry = await startTestRegistry({ ...(root ? { root } : {}), storage: { dedupe: true, gc: false, storageDriver: s3.driverConfig(prefix) } });
    running.push(registry);
    return registry;
  }

  async function stop(registry: TestRegistry): Promise<void> {
    await registry.stop();
    running.splice(running.indexOf(registry), 1);
  }

  it('imports a 17 MiB blob and an image that registry A pushed, and serves them from B', async () => {
    const a = await start('/shared17');
    const image = makeImage({ layers: 1, layerBytes: 17 * MIB });
    assert.equal((await pushImage(a.url, 'imp/app', 'v1', image)).status, 201);
    await a.running.actorsCaughtUp();
    await stop(a);

    const b = await start('/shared17');
    const manifest = await fetch(`${b.url}/v2/imp/app/manifests/v1`, { headers: { Accept: image.manifest.mediaType as string } });
    assert.equal(manifest.status, 200);
    assert.equal(manifest.headers.get('docker-content-digest'), image.digest);
    assert.ok((await pull(b.url, 'imp/app', sha256(image.layers[0]!))).equals(image.layers[0]!));
    assert.ok((await pull(b.url, 'imp/app', sha256(image.config))).equals(image.config));
    await assertReplayClean(b);
  });

  it('imports blobs of every size around the part size, in several repositories', async () => {
    const a = await start('/sizes');
    const sizes = [1, MIN_CHUNK_SIZE, DEFAULT_CHUNK_SIZE - 1, DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE + 1, 2 * DEFAULT_CHUNK_SIZE + 3];
    const blobs = sizes.map((size) => randomBytes(size));
    const pushed: { repo: string; blob: Buffer; digest: string }[] = [];
    for (const [i, blob] of blobs.entries()) {
      const repo = `sizes/r${i % 2}`;
      // Half in one request, half in two PATCHes: the two ways an upload reaches the bucket.
      const digest = i % 2 === 0 ? await pushBlob(a.url, repo, blob) : await pushChunked(a.url, repo, blob);
      pushed.push({ repo, blob, digest });
    }
    const image = makeImage({ layers: 2, layerBytes: 64 * 1024 });
    assert.equal((await pushImage(a.url, 'sizes/app', 'v1', image)).status, 201);
    await a.running.actorsCaughtUp();
    await stop(a);

    const b = await start('/sizes');
    for (const { repo, blob, digest } of pushed) assert.ok((await pull(b.url, repo, digest)).equals(blob), `${blob.length} bytes in ${repo}`);
    const manifest = await fetch(`${b.url}/v2/sizes/app/manifests/v1`, { headers: { Accept: image.manifest.mediaType as string } });
    assert.equal(manifest.status, 200);
    for (const layer of image.layers) assert.ok((await pull(b.url, 'sizes/app', sha256(layer))).equals(layer));
    await assertReplayClean(b);
  });

  it('refuses to start, naming the object, when a blob cannot be read, and imports it on the next start', async () => {
    const a = await start('/faulty');
    const image = makeImage({ layers: 1, layerBytes: 256 * 1024 });
    assert.equal((await pushImage(a.url, 'fa/app', 'v1', image)).status, 201);
    await a.running.actorsCaughtUp();
    await stop(a);

    const layer = `fa/app/blobs/sha256/${sha256(image.layers[0]!).slice('sha256:'.length)}`;
    const heal = s3.failRequests('GetObject', `faulty/${layer}`);
    const root = path.join(makeTempDir(), 'root');
    await assert.rejects(start('/faulty', root), (err: Error) => {
      assert.match(err.message, /failed to import the existing storage/);
      assert.ok(err.message.includes(layer), `the message names the object: ${err.message}`);
      assert.match(err.message, /InternalError/);
      return true;
    });
    heal();

    const b = await start('/faulty', root);
    const manifest = await fetch(`${b.url}/v2/fa/app/manifests/v1`, { headers: { Accept: image.manifest.mediaType as string } });
    assert.equal(manifest.status, 200, 'the manifest is imported on the start after the failed one');
    assert.ok((await pull(b.url, 'fa/app', sha256(image.layers[0]!))).equals(image.layers[0]!));
    await assertReplayClean(b);
  });

  it('zot serve exits naming index.json when it cannot be read, instead of importing the repository without its tags', { timeout: 120_000 }, async () => {
    // The timeout only stops a regression (a serve that starts and never exits) from hanging the run.
    const a = await start('/faultyindex');
    const image = makeImage({ layers: 1, layerBytes: 1024 });
    assert.equal((await pushImage(a.url, 'fi/app', 'v1', image)).status, 201);
    await a.running.actorsCaughtUp();
    await stop(a);

    const heal = s3.failRequests('GetObject', 'faultyindex/fi/app/index.json');
    const root = path.join(makeTempDir(), 'root');
    const config = testConfig({ root, storage: { dedupe: true, gc: false, storageDriver: s3.driverConfig('/faultyindex') } });
    const serve = await runZot(['serve', writeConfig(config)]);
    assert.notEqual(serve.code, 0, 'zot serve exits');
    assert.match(
      serve.stderr,
      /^zot: failed to import the existing storage into the event log: failed to read fi\/app\/index\.json from the s3 storage: InternalError: /m,
    );
    heal();
    const b = await start('/faultyindex', root);
    assert.equal((await fetch(`${b.url}/v2/fi/app/manifests/v1`, { method: 'HEAD', headers: { Accept: image.manifest.mediaType as string } })).status, 200);
    await assertReplayClean(b);
  });
});
