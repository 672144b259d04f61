// Sync on demand through zot-ts from a real docker-registry behind a counting proxy: skopeo pulls
// through it, concurrent pulls share one upstream fetch, a tag moved upstream is followed, a down
// or hanging upstream leaves the local copy answering (or a clear 502), the first blob pull streams
// while the upstream is still sending, a corrupted blob is refused and not stored, and containerd's
// `?ns=` picks the registry by host.
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SyncConfig } from '../../src/config/types.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { assertReplayClean, eventually, expectOciError } from '../helpers/http.js';
import { readLayoutBlobs, taggedDigest } from '../helpers/layout.js';
import { sha256 } from '../helpers/oci.js';
import { assertPullsWhole, ACCEPT_MANIFESTS } from '../helpers/pull.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeo, type Skopeo } from '../helpers/skopeo.js';
import { layoutImage, multiPlatformImage, pushOverHttp, type LayoutManifest } from '../helpers/sync-images.js';
import { startSyncProxy, type SyncProxy } from '../helpers/sync-proxy.js';
import { startSyncingRegistry, type SyncingRegistry } from '../helpers/sync-registry.js';

/** Whether the repository serves `reference` from its own storage (the background copy is done). */
async function stored(local: SyncingRegistry, repo: string, reference: string): Promise<boolean> {
  const digest = reference.includes(':') ? reference : local.running.queries.tagDigest(repo, reference);
  return digest !== undefined && local.running.queries.manifest(repo, digest) !== undefined;
}

describe('sync on demand', () => {
  let upstream: DockerRegistry;
  let proxy: SyncProxy;
  let second: TestRegistry;
  let local: SyncingRegistry;
  let client: Skopeo;
  const app = layoutImage({ layers: 2 });
  const { index, children } = multiPlatformImage();

  before(async () => {
    upstream = await startDockerRegistry();
    await pushOverHttp(upstream.url, 'lib/app', 'v1', app);
    await pushOverHttp(upstream.url, 'lib/multi', 'v1', index, children);
    proxy = await startSyncProxy(upstream.url);
    second = await startTestRegistry();
    const sync: SyncConfig = {
      enable: true,
      registries: [
        { urls: [proxy.url], onDemand: true, content: [{ prefix: 'lib/**' }] },
        { urls: [second.url], onDemand: true, content: [{ prefix: 'nsrepo/**' }] },
      ],
    };
    local = await startSyncingRegistry(sync, { metrics: { enable: true } }, { syncOnDemand: { checkTimeoutMs: 500, unreachableForMs: 200 } });
    client = skopeo();
  });
  after(async () => {
    client?.close();
    await local?.stop();
    await second?.stop();
    await proxy?.close();
    await upstream?.stop();
  });

  const host = (): string => new URL(local.url).host;

  it('serves skopeo an image and a multi-platform index pulled through from upstream, byte for byte', async () => {
    const out = path.join(makeTempDir('zot-ts-ondemand-'), 'app');
    await client.ok(['copy', '--preserve-digests', '--src-tls-verify=false', `docker://${host()}/lib/app:v1`, `oci:${out}:v1`]);
    assert.equal(taggedDigest(out, 'v1'), app.digest);
    const blobs = readLayoutBlobs(out);
    for (const blob of app.blobs) assert.ok(blobs.get(sha256(blob))?.equals(blob), 'every blob byte-exact');

    const all = path.join(makeTempDir('zot-ts-ondemand-'), 'multi');
    await client.ok(['copy', '--all', '--preserve-digests', '--src-tls-verify=false', `docker://${host()}/lib/multi:v1`, `oci:${all}:v1`]);
    assert.equal(taggedDigest(all, 'v1'), index.digest);
    assert.deepEqual([...readLayoutBlobs(all).keys()].sort(), [...new Set([index.bytes, ...index.blobs].map(sha256))].sort());

    await eventually(async () => (await stored(local, 'lib/app', 'v1')) && (await stored(local, 'lib/multi', 'v1')), 'the images stored', 10_000);
    const events = [...local.running.store.read({ repo: 'lib/app' })];
    assert.ok(events.length > 0 && events.every((e) => e.identity === 'sync' && e.source?.url === proxy.url));
    await assertReplayClean(local);
  });

  it('makes one upstream fetch of the manifest and of each blob for 10 concurrent pulls of one image', async () => {
    const image = layoutImage({ layers: 3, fileBytes: [100_000, 200_000, 300_000] });
    await pushOverHttp(upstream.url, 'lib/popular', 'v1', image);
    proxy.requests.length = 0;
    await Promise.all(Array.from({ length: 10 }, () => assertPullsWhole(local.url, 'lib/popular', 'v1')));
    assert.equal(proxy.count('GET', /\/lib\/popular\/manifests\//), 1, 'one manifest GET upstream');
    for (const blob of image.blobs) assert.equal(proxy.count('GET', new RegExp(`/lib/popular/blobs/${sha256(blob)}$`)), 1, `one GET of ${sha256(blob)}`);
  });

  it('follows a tag moved upstream when it is pulled again', async () => {
    const before = (await assertPullsWhole(local.url, 'lib/app', 'v1')).digest;
    assert.equal(before, app.digest);
    const next = layoutImage();
    await pushOverHttp(upstream.url, 'lib/app', 'v1', next);
    assert.equal((await assertPullsWhole(local.url, 'lib/app', 'v1')).digest, next.digest);
    await eventually(async () => local.running.queries.tagDigest('lib/app', 'v1') === next.digest, 'the local tag moved', 10_000);
    await pushOverHttp(upstream.url, 'lib/app', 'v1', app);
    await assertPullsWhole(local.url, 'lib/app', 'v1');
    await eventually(async () => local.running.queries.tagDigest('lib/app', 'v1') === app.digest, 'the local tag moved back', 10_000);
  });

  it('answers from the local copy while the upstream is down or hangs, and 502 for what it never pulled', async () => {
    proxy.refuse(true);
    try {
      assert.equal((await assertPullsWhole(local.url, 'lib/app', 'v1')).digest, app.digest, 'down: the local copy');
      await expectOciError(await fetch(`${local.url}/v2/lib/never/manifests/v1`, { headers: { Accept: ACCEPT_MANIFESTS } }), 502, 'UNKNOWN');
      await expectOciError(await fetch(`${local.url}/v2/lib/never/blobs/${sha256(Buffer.from('x'))}`), 502, 'UNKNOWN');
    } finally {
      proxy.refuse(false);
    }
    await new Promise((resolve) => setTimeout(resolve, 250)); // past unreachableForMs: the upstream is asked again
    proxy.stall(true);
    try {
      assert.equal((await assertPullsWhole(local.url, 'lib/app', 'v1')).digest, app.digest, 'hanging: the local copy after the bounded check');
    } finally {
      proxy.stall(false);
    }
  });

  it('streams the first pull of a blob to the client while the upstream is still sending it', async () => {
    const big = layoutImage({ layers: 1, fileBytes: [2_000_000] });
    await pushOverHttp(upstream.url, 'lib/big', 'v1', big);
    const layer = big.blobs[1] as Buffer;
    const hold = proxy.holdTail(sha256(layer), 64 * 1024);
    const manifest = await fetch(`${local.url}/v2/lib/big/manifests/v1`, { headers: { Accept: ACCEPT_MANIFESTS } });
    assert.equal(manifest.status, 200);
    await manifest.arrayBuffer();
    const chunks: Buffer[] = [];
    let receivedBeforeRelease = 0;
    let released = false;
    const release = (): void => {
      released = true;
      hold.release();
    };
    // Without streaming nothing would arrive before the release: let go after a while, and fail below.
    const guard = setTimeout(release, 15_000);
    await new Promise<void>((resolve, reject) => {
      http.get(`${local.url}/v2/lib/big/blobs/${sha256(layer)}`, (res) => {
        assert.equal(res.statusCode, 200);
        assert.equal(Number(res.headers['content-length']), layer.length);
        res.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          if (!released) {
            // The upstream has not sent its last 64 KiB yet, and the client already has bytes.
            receivedBeforeRelease = chunks.reduce((n, c) => n + c.length, 0);
            clearTimeout(guard);
            void hold.sentAllButTail.then(release);
          }
        });
        res.on('end', resolve);
        res.on('error', reject);
      }).on('error', reject);
    });
    assert.ok(receivedBeforeRelease > 0 && receivedBeforeRelease < layer.length, `bytes reached the client before the upstream sent the last ones (${receivedBeforeRelease})`);
    assert.ok(Buffer.concat(chunks).equals(layer), 'the streamed body is the blob');
    await eventually(async () => local.running.queries.blobSize('lib/big', sha256(layer)) === layer.length, 'the blob committed', 10_000);
  });

  // A joined reader follows the fetch's session file; the bytes in memory are only its last 4 MiB
  // and go at the commit. A reader that falls behind must still find the rest in the file.
  it('gives a client that reads slowly, behind the fetch and past its commit, the whole blob', async () => {
    const large = layoutImage({ layers: 1, fileBytes: [12 * 1024 * 1024] });
    await pushOverHttp(upstream.url, 'lib/large', 'v1', large);
    const layer = large.blobs[1] as Buffer;
    const manifest = await fetch(`${local.url}/v2/lib/large/manifests/v1`, { headers: { Accept: ACCEPT_MANIFESTS } });
    assert.equal(manifest.status, 200);
    await manifest.arrayBuffer();
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const request = http.get(`${local.url}/v2/lib/large/blobs/${sha256(layer)}`, (res) => {
        assert.equal(res.statusCode, 200);
        res.once('data', (first: Buffer) => {
          chunks.push(first);
          // Stop reading until the fetch has committed, then take the rest.
          res.pause();
          void eventually(async () => local.running.queries.blobSize('lib/large', sha256(layer)) === layer.length, 'the blob committed', 20_000).then(() => {
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.resume();
          }, reject);
        });
        res.on('end', resolve);
        res.on('error', reject);
      });
      request.on('error', reject);
      // Without the bytes the reader would wait for ever: fail instead.
      request.setTimeout(30_000, () => request.destroy(new Error('the body stalled')));
    });
    assert.ok(Buffer.concat(chunks).equals(layer), 'the slow reader got the whole blob');
  });

  it('refuses a corrupted upstream blob: the client gets a cut body, nothing is stored, a HEAD says 502', async () => {
    const bad = layoutImage({ layers: 1, fileBytes: [300_000] });
    await pushOverHttp(upstream.url, 'lib/bad', 'v1', bad);
    const layer = sha256(bad.blobs[1] as Buffer);
    proxy.corrupt(layer);
    try {
      const res = await fetch(`${local.url}/v2/lib/bad/blobs/${layer}`);
      assert.equal(res.status, 200, 'the answer started before the digest could be checked');
      const body = await res.arrayBuffer().then(
        (buffer) => Buffer.from(buffer),
        () => undefined,
      );
      assert.ok(body === undefined || body.length < (bad.blobs[1] as Buffer).length, 'the body is cut short: never whole and wrong');
      assert.equal((await fetch(`${local.url}/v2/lib/bad/blobs/${layer}`, { method: 'HEAD' })).status, 502, 'a HEAD waits for the digest check');
      assert.equal(local.running.queries.blobSize('lib/bad', layer), undefined, 'not stored');
      assert.ok(![...local.running.store.read({ repo: 'lib/bad' })].some((e) => 'digest' in e && e.digest === layer), 'no event names it');
    } finally {
      proxy.corrupt(undefined);
    }
    const whole = Buffer.from(await (await fetch(`${local.url}/v2/lib/bad/blobs/${layer}`)).arrayBuffer());
    assert.equal(sha256(whole), layer, 'served whole once the upstream serves it right');
  });

  it('bounds the images pulled at once: one more is 429 TOOMANYREQUESTS until the first is in', async () => {
    const narrow = await startSyncingRegistry({ registries: [{ urls: [proxy.url], onDemand: true }] }, {}, { syncOnDemand: { maxImages: 1 } });
    try {
      const first = layoutImage({ layers: 1, fileBytes: [200_000] });
      await pushOverHttp(upstream.url, 'lib/first', 'v1', first);
      const hold = proxy.holdTail(sha256(first.blobs[1] as Buffer), 1000);
      const staged = await fetch(`${narrow.url}/v2/lib/first/manifests/v1`, { headers: { Accept: ACCEPT_MANIFESTS } });
      assert.equal(staged.status, 200);
      await staged.arrayBuffer();
      await hold.sentAllButTail;
      await expectOciError(await fetch(`${narrow.url}/v2/lib/app/manifests/v1`, { headers: { Accept: ACCEPT_MANIFESTS } }), 429, 'TOOMANYREQUESTS');
      hold.release();
      await eventually(async () => stored(narrow, 'lib/first', 'v1'), 'the first image stored', 10_000);
      assert.equal((await assertPullsWhole(narrow.url, 'lib/app', 'v1')).digest, app.digest, 'then the next one is pulled');
    } finally {
      await narrow.stop();
    }
  });

  it('keeps out repositories no on-demand registry takes, without asking upstream', async () => {
    proxy.requests.length = 0;
    await expectOciError(await fetch(`${local.url}/v2/other/thing/manifests/v1`, { headers: { Accept: ACCEPT_MANIFESTS } }), 404, 'NAME_UNKNOWN');
    assert.equal(proxy.requests.length, 0);
  });

  it('selects the registry by host with ?ns= and keeps the image under that host name', async () => {
    const image: LayoutManifest = layoutImage();
    await pushOverHttp(second.url, 'nsrepo/app', 'v1', image);
    const ns = new URL(second.url).host;
    const res = await fetch(`${local.url}/v2/nsrepo/app/manifests/v1?ns=${ns}`, { headers: { Accept: ACCEPT_MANIFESTS } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), image.digest);
    await res.arrayBuffer();
    for (const blob of image.blobs) {
      const got = Buffer.from(await (await fetch(`${local.url}/v2/nsrepo/app/blobs/${sha256(blob)}?ns=${ns}`)).arrayBuffer());
      assert.ok(got.equals(blob));
    }
    const localName = `${ns.replace(':', '_')}/nsrepo/app`;
    await eventually(async () => stored(local, localName, 'v1'), `${localName}:v1 stored`, 10_000);
    assert.equal((await assertPullsWhole(local.url, localName, 'v1')).digest, image.digest, 'the same image, by its local name');
  });
});
