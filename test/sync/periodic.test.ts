// Periodic sync from a real docker-registry (behind a counting proxy) and from a second zot-ts
// (referrers): each content filter brings exactly the expected repositories and tags, a moved
// upstream tag is followed, a second poll fetches nothing, onlySigned keeps unsigned images out,
// and each image gets one log line and a count in /metrics.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { SyncConfig, SyncContent } from '../../src/config/types.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { assertReplayClean } from '../helpers/http.js';
import { descriptor, OCI_EMPTY, OCI_MANIFEST, pushBlob, pushManifest, sha256 } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { layoutImage, multiPlatformImage, pushOverHttp, type LayoutManifest } from '../helpers/sync-images.js';
import { startSyncProxy, type SyncProxy } from '../helpers/sync-proxy.js';
import { catalogWithTags, startSyncingRegistry, type SyncingRegistry } from '../helpers/sync-registry.js';

const tiny = (): LayoutManifest => layoutImage({ layers: 1 });

function periodic(url: string, content: SyncContent[], extra: Partial<SyncConfig['registries'] extends (infer R)[] | undefined ? R : never> = {}): SyncConfig {
  return { enable: true, registries: [{ urls: [url], pollInterval: '1h', content, ...extra }] };
}

describe('periodic sync from docker-registry', () => {
  let upstream: DockerRegistry;
  let proxy: SyncProxy;
  const started: TestRegistry[] = [];
  const moving = { first: tiny(), second: tiny() };

  before(async () => {
    upstream = await startDockerRegistry();
    const push = (repo: string, tag: string, image: LayoutManifest = tiny()): Promise<void> => pushOverHttp(upstream.url, repo, tag, image);
    for (const tag of ['4.0', '4.1-rc1', 'v4.2', '14.x', '5.0', 'latest']) await push('repo1/repo', tag);
    await push('repo1/extra/deep', 'v1');
    await push('repo2/repo-a', 'v1', moving.first);
    await push('repo2/repo-a', 'v2');
    await push('repo2/repob', '1.0');
    await push('repo2/other', 'v1');
    await push('repo3', 'top');
    await push('repo3/x', 'v1');
    await push('repo3/x/y', 'v1');
    await push('unmatched/img', 'v1');
    proxy = await startSyncProxy(upstream.url);
  });
  after(async () => {
    for (const registry of started) await registry.stop();
    await proxy?.close();
    await upstream?.stop();
  });

  const start = async (sync: SyncConfig, metrics = false): Promise<SyncingRegistry> => {
    const registry = await startSyncingRegistry(sync, metrics ? { metrics: { enable: true } } : {});
    started.push(registry);
    await registry.running.sync?.firstPollsDone();
    return registry;
  };

  it('takes exact prefixes, * and ** as zot matches them, with tags.regex and tags.semver', async () => {
    const local = await start(
      periodic(proxy.url, [{ prefix: '/repo1/repo', tags: { regex: '4.*', semver: true } }, { prefix: '/repo2/repo*' }, { prefix: '/repo3/**' }]),
      true,
    );
    assert.deepEqual(await catalogWithTags(local.url), {
      'repo1/repo': ['4.0', '4.1-rc1', 'v4.2'],
      'repo2/repo-a': ['v1', 'v2'],
      'repo2/repob': ['1.0'],
      repo3: ['top'],
      'repo3/x': ['v1'],
      'repo3/x/y': ['v1'],
    });
    const imageLines = local.logs().filter((line) => line.msg === 'image synced');
    assert.equal(imageLines.length, 9, 'one log line per image synced');
    assert.ok(imageLines.every((line) => line['upstream'] === proxy.url && typeof line['digest'] === 'string'));
    const metrics = await (await fetch(`${local.url}/metrics`)).text();
    assert.match(metrics, new RegExp(`zot_sync_images_total\\{upstream="${proxy.url}",outcome="synced"\\} 9`));
    assert.match(metrics, new RegExp(`zot_sync_bytes_total\\{upstream="${proxy.url}"\\} \\d+`));

    // A second poll: nothing new is fetched, every image is skipped with its reason.
    proxy.requests.length = 0;
    const [summary] = (await local.running.sync?.pollNow()) ?? [];
    assert.deepEqual(summary && { synced: summary.synced, skipped: summary.skipped, failed: summary.failed }, { synced: 0, skipped: 9, failed: 0 });
    assert.equal(proxy.count('GET', /\/blobs\//), 0, 'no blob fetched again');
    assert.equal(proxy.count('GET', /\/manifests\//), 0, 'no manifest fetched again');
    const skipped = local.logs().filter((line) => line.msg === 'image skipped');
    assert.equal(skipped.length, 9);
    assert.ok(skipped.every((line) => line['reason'] === 'already synced'));

    // The upstream moves repo2/repo-a:v1: the next poll moves the local tag.
    await pushOverHttp(upstream.url, 'repo2/repo-a', 'v1', moving.second);
    await local.running.sync?.pollNow();
    const moved = await fetch(`${local.url}/v2/repo2/repo-a/manifests/v1`, { method: 'HEAD', headers: { Accept: OCI_MANIFEST } });
    assert.equal(moved.headers.get('docker-content-digest'), moving.second.digest);
    const tagSets = [...local.running.store.read({ repo: 'repo2/repo-a', type: 'TagSet' })].filter((e) => e.type === 'TagSet' && e.tag === 'v1');
    assert.deepEqual(
      tagSets.map((e) => (e.type === 'TagSet' ? [e.digest, e.previous ?? null, e.identity] : [])),
      [
        [moving.first.digest, null, 'sync'],
        [moving.second.digest, moving.first.digest, 'sync'],
      ],
    );
    await assertReplayClean(local);
  });

  it('places repositories by destination and stripPrefix exactly as the seed describes, and drops tags.excludeRegex', async () => {
    const local = await start(
      periodic(proxy.url, [
        { prefix: '/repo1/repo', destination: '/localrepo', stripPrefix: true, tags: { excludeRegex: '-rc|^latest$' } },
        { prefix: '/repo1/**', destination: '/localrepo', stripPrefix: true },
        { prefix: '/repo2/repob', destination: '/kept' },
        { prefix: '/repo3/**', destination: '/mirror', stripPrefix: true },
      ]),
    );
    assert.deepEqual(await catalogWithTags(local.url), {
      localrepo: ['14.x', '4.0', '5.0', 'v4.2'],
      'localrepo/extra/deep': ['v1'],
      'kept/repo2/repob': ['1.0'],
      mirror: ['top'],
      'mirror/x': ['v1'],
      'mirror/x/y': ['v1'],
    });
  });

  it('follows an upstream URL with a path: its repositories under their names below it', async () => {
    const local = await start(periodic(`${proxy.url}/repo3`, [{ prefix: '**' }]));
    assert.deepEqual(await catalogWithTags(local.url), { x: ['v1'], 'x/y': ['v1'] });
    const event = [...local.running.store.read({ repo: 'x', type: 'ManifestPushed' })][0];
    assert.equal(event?.source?.repo, 'x');
    assert.equal(event?.source?.url, `${proxy.url}/repo3`);
  });

  it('syncs only the platforms a content entry lists, keeping the index bytes and digest', async () => {
    const { index, children } = multiPlatformImage();
    await pushOverHttp(upstream.url, 'plat/app', 'v1', index, children);
    const local = await start(periodic(proxy.url, [{ prefix: 'plat/**', platforms: ['linux/amd64', 'linux/arm64'] }]));
    const res = await fetch(`${local.url}/v2/plat/app/manifests/v1`, { headers: { Accept: index.mediaType } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), index.digest);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(index.bytes), 'the index bytes are untouched');
    const [amd64, arm64, s390x] = children as [LayoutManifest, LayoutManifest, LayoutManifest];
    for (const wanted of [amd64, arm64]) {
      assert.equal((await fetch(`${local.url}/v2/plat/app/manifests/${wanted.digest}`, { method: 'HEAD', headers: { Accept: OCI_MANIFEST } })).status, 200);
      for (const blob of wanted.blobs) assert.equal((await fetch(`${local.url}/v2/plat/app/blobs/${sha256(blob)}`, { method: 'HEAD' })).status, 200);
    }
    assert.equal((await fetch(`${local.url}/v2/plat/app/manifests/${s390x.digest}`, { method: 'HEAD', headers: { Accept: OCI_MANIFEST } })).status, 404, 'linux/s390x is left upstream');
    for (const blob of s390x.blobs) {
      assert.equal(proxy.count('GET', new RegExp(`/blobs/${sha256(blob)}$`)), 0, 'no blob of linux/s390x is fetched');
    }
    await assertReplayClean(local);
  });

  it('syncs only signed images with onlySigned: a cosign signature tag signs one, the other is skipped with its reason', async () => {
    const signedImage = tiny();
    const signature = tiny();
    await pushOverHttp(upstream.url, 'signed/app', 'v1', signedImage);
    await pushOverHttp(upstream.url, 'signed/app', 'v2', tiny());
    await pushOverHttp(upstream.url, 'signed/app', `${signedImage.digest.replace(':', '-')}.sig`, signature);
    const local = await start(periodic(proxy.url, [{ prefix: '/signed/**' }], { onlySigned: true }));
    assert.deepEqual(await catalogWithTags(local.url), { 'signed/app': [`${signedImage.digest.replace(':', '-')}.sig`, 'v1'] });
    const skipped = local.logs().filter((line) => line.msg === 'image skipped');
    assert.deepEqual(
      skipped.map((line) => [line['tag'], line['reason']]),
      [['v2', 'not signed']],
    );
  });
});

describe('periodic sync from a referrers-capable zot-ts', () => {
  let upstream: TestRegistry;

  before(async () => {
    upstream = await startTestRegistry();
  });
  after(async () => {
    await upstream?.stop();
  });

  /** An artifact referring to `subject`, of `artifactType`, with one blob. */
  const pushReferrer = async (repo: string, subject: LayoutManifest, artifactType: string): Promise<string> => {
    const payload = Buffer.from(`${artifactType} of ${subject.digest}`);
    await pushBlob(upstream.url, repo, payload);
    await pushBlob(upstream.url, repo, '{}');
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType,
      config: descriptor(OCI_EMPTY, '{}'),
      layers: [descriptor('application/octet-stream', payload)],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.bytes.length },
    });
    const res = await pushManifest(upstream.url, repo, sha256(manifest), manifest);
    assert.equal(res.status, 201);
    return sha256(manifest);
  };

  it('brings each image with its referrers (signatures, SBOMs), and onlySigned counts a notation signature', async () => {
    const image = tiny();
    const unsigned = tiny();
    await pushOverHttp(upstream.url, 'apps/web', 'v1', image);
    await pushOverHttp(upstream.url, 'apps/web', 'v2', unsigned);
    const sbom = await pushReferrer('apps/web', image, 'application/spdx+json');
    const signature = await pushReferrer('apps/web', image, 'application/vnd.cncf.notary.signature');
    const local = await startSyncingRegistry(periodic(upstream.url, [{ prefix: 'apps/**' }], { onlySigned: true }));
    try {
      await local.running.sync?.firstPollsDone();
      assert.deepEqual(await catalogWithTags(local.url), { 'apps/web': ['v1'] });
      const referrers = (await (await fetch(`${local.url}/v2/apps/web/referrers/${image.digest}`)).json()) as { manifests: { digest: string; artifactType: string }[] };
      assert.deepEqual(referrers.manifests.map((m) => m.digest).sort(), [sbom, signature].sort());
      assert.equal((await fetch(`${local.url}/v2/apps/web/manifests/${unsigned.digest}`)).status, 404, 'the unsigned image stays out');
      await assertReplayClean(local);
    } finally {
      await local.stop();
    }
  });
});
