// http.compat ["docker2s2"] and storage.commit through the CLI and HTTP: `zot serve` with both, on
// the default root and on a subPath, starts (the feature table marks them built) and serves Docker schema 2 manifests and manifest
// lists byte-exact, with their own media type and digest. Both settings are accepted, not acted
// on: zot-ts always stores Docker schema 2 as pushed and always syncs before acknowledging.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DOCKER_LIST, DOCKER_MANIFEST, descriptor, pushBlob, pushManifest, sha256 } from '../helpers/oci.js';
import { makeTempDir, spawnRegistry, type RegistryProcess } from '../helpers/registry.js';

const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

let registry: RegistryProcess;

before(async () => {
  const base = makeTempDir();
  registry = await spawnRegistry({
    http: { compat: ['docker2s2'] },
    storage: { rootDirectory: path.join(base, 'root'), commit: true, subPaths: { '/team': { rootDirectory: path.join(base, 'team'), commit: true } } },
  });
});

after(async () => {
  assert.equal(await registry.stop(), 0, registry.output());
});

/** A Docker schema 2 image whose manifest has the indentation docker writes: kept as it is. */
async function pushDockerImage(repo: string): Promise<{ manifest: string; digest: string }> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = Buffer.from(`layer of ${repo}`);
  await pushBlob(registry.url, repo, config);
  await pushBlob(registry.url, repo, layer);
  const manifest = JSON.stringify(
    { schemaVersion: 2, mediaType: DOCKER_MANIFEST, config: descriptor(DOCKER_CONFIG, config), layers: [descriptor(DOCKER_LAYER, layer)] },
    null,
    3,
  );
  const res = await pushManifest(registry.url, repo, 'v1', manifest, DOCKER_MANIFEST);
  assert.equal(res.status, 201, await res.text());
  return { manifest, digest: sha256(manifest) };
}

async function expectServedAsPushed(repo: string, reference: string, bytes: string, mediaType: string): Promise<void> {
  const res = await fetch(`${registry.url}/v2/${repo}/manifests/${reference}`, { headers: { Accept: mediaType } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), mediaType);
  assert.equal(res.headers.get('docker-content-digest'), sha256(bytes));
  assert.equal(await res.text(), bytes, 'the bytes pushed, not a re-encoding');
}

describe('http.compat docker2s2 and storage.commit', () => {
  for (const repo of ['compat/app', 'team/app']) {
    it(`serves a Docker schema 2 manifest and manifest list byte-exact (${repo})`, async () => {
      const { manifest, digest } = await pushDockerImage(repo);
      await expectServedAsPushed(repo, 'v1', manifest, DOCKER_MANIFEST);
      await expectServedAsPushed(repo, digest, manifest, DOCKER_MANIFEST);

      const list = JSON.stringify({
        schemaVersion: 2,
        mediaType: DOCKER_LIST,
        manifests: [{ ...descriptor(DOCKER_MANIFEST, manifest), platform: { architecture: 'amd64', os: 'linux' } }],
      }, null, 2);
      const pushed = await pushManifest(registry.url, repo, 'multi', list, DOCKER_LIST);
      assert.equal(pushed.status, 201, await pushed.text());
      await expectServedAsPushed(repo, 'multi', list, DOCKER_LIST);
    });
  }
});
