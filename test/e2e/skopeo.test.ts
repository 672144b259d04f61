// A real client against a real `zot serve`: skopeo copies OCI layouts built here into the
// registry and back out, and everything must come back byte for byte, under the same digests.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, sha256 } from '../helpers/oci.js';
import { layoutImage, layoutIndex, readIndexJson, readLayoutBlobs, taggedDigest, writeLayout } from '../helpers/layout.js';
import { makeTempDir, runZot, spawnRegistry, type RegistryProcess } from '../helpers/registry.js';
import { skopeo, type Skopeo } from '../helpers/skopeo.js';

const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

describe('skopeo against zot serve', () => {
  let registry: RegistryProcess | undefined;
  let client: Skopeo;
  let work: string;
  let host: string;

  before(async () => {
    work = makeTempDir('zot-ts-skopeo-work-');
    client = skopeo();
    registry = await spawnRegistry();
    host = new URL(registry.url).host;
  });

  after(async () => {
    client?.close();
    await registry?.kill();
  });

  const ref = (repo: string, tagOrDigest: string): string =>
    `docker://${host}/${repo}${tagOrDigest.startsWith('sha256:') ? '@' : ':'}${tagOrDigest}`;

  const inspectRaw = async (reference: string): Promise<Buffer> => {
    const result = await client.ok(['inspect', '--tls-verify=false', '--raw', reference]);
    return Buffer.from(result.stdout, 'utf8');
  };

  const listTags = async (repo: string): Promise<string[]> => {
    const result = await client.ok(['list-tags', '--tls-verify=false', `docker://${host}/${repo}`]);
    return ((JSON.parse(result.stdout) as { Tags: string[] }).Tags ?? []).sort();
  };

  /** Every blob of `source` is in `copy` with the same bytes, and `copy` holds nothing else. */
  const assertSameBlobs = (source: string, copy: string): void => {
    const want = readLayoutBlobs(source);
    const got = readLayoutBlobs(copy);
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
    for (const [digest, bytes] of got) {
      assert.equal(sha256(bytes), digest, `${digest} in the copied layout hashes to its name`);
      assert.ok(bytes.equals(want.get(digest) as Buffer), `${digest} is byte-identical after the round trip`);
    }
  };

  it('copies a single-platform image in and out unchanged, lists its tag and deletes it by digest', async () => {
    const source = path.join(work, 'single');
    const image = layoutImage({ layers: 2 });
    writeLayout(source, [{ manifest: image, tag: 'v1' }]);

    await client.ok(['copy', '--preserve-digests', '--dest-tls-verify=false', `oci:${source}:v1`, ref('skopeo/single', 'v1')]);

    const raw = await inspectRaw(ref('skopeo/single', 'v1'));
    assert.equal(sha256(raw), image.digest);
    assert.ok(raw.equals(image.bytes), 'the registry serves the manifest byte-identical');

    const out = path.join(work, 'single-out');
    await client.ok(['copy', '--preserve-digests', '--src-tls-verify=false', ref('skopeo/single', 'v1'), `oci:${out}:v1`]);
    assert.equal(taggedDigest(out, 'v1'), image.digest);
    assertSameBlobs(source, out);

    assert.deepEqual(await listTags('skopeo/single'), ['v1']);

    await client.ok(['delete', '--tls-verify=false', ref('skopeo/single', image.digest)]);
    const gone = await client.run(['inspect', '--tls-verify=false', '--raw', ref('skopeo/single', image.digest)]);
    assert.notEqual(gone.code, 0, 'inspect of a deleted manifest fails');
    assert.match(gone.stderr, /manifest unknown/i);
    const byTag = await client.run(['inspect', '--tls-verify=false', '--raw', ref('skopeo/single', 'v1')]);
    assert.notEqual(byTag.code, 0, 'the tag went with the manifest');
    assert.deepEqual(await listTags('skopeo/single'), []);
  });

  it('copies a multi-arch index with --multi-arch all, children byte-identical', async () => {
    const source = path.join(work, 'multi');
    const amd64 = layoutImage({ architecture: 'amd64', layers: 2 });
    const arm64 = layoutImage({ architecture: 'arm64', layers: 2 });
    const index = layoutIndex([amd64, arm64]);
    writeLayout(source, [{ manifest: index, tag: 'multi' }]);

    await client.ok(['copy', '--multi-arch', 'all', '--preserve-digests', '--dest-tls-verify=false', `oci:${source}:multi`, ref('skopeo/multi', 'multi')]);

    const raw = await inspectRaw(ref('skopeo/multi', 'multi'));
    assert.equal(sha256(raw), index.digest);
    assert.ok(raw.equals(index.bytes));
    assert.equal((JSON.parse(raw.toString()) as { mediaType: string }).mediaType, OCI_INDEX);
    for (const child of [amd64, arm64]) {
      const childRaw = await inspectRaw(ref('skopeo/multi', child.digest));
      assert.ok(childRaw.equals(child.bytes), `child ${child.platform?.architecture} is byte-identical`);
    }
    // Only the index is tagged; its children are reachable by digest.
    assert.deepEqual(await listTags('skopeo/multi'), ['multi']);

    const out = path.join(work, 'multi-out');
    await client.ok(['copy', '--all', '--preserve-digests', '--src-tls-verify=false', ref('skopeo/multi', 'multi'), `oci:${out}:multi`]);
    assert.equal(taggedDigest(out, 'multi'), index.digest);
    assertSameBlobs(source, out);

    await client.ok(['delete', '--tls-verify=false', ref('skopeo/multi', index.digest)]);
    const gone = await client.run(['inspect', '--tls-verify=false', '--raw', ref('skopeo/multi', index.digest)]);
    assert.notEqual(gone.code, 0, 'inspect of a deleted index fails');
  });

  it('round-trips a Docker schema 2 manifest written with --format v2s2', async () => {
    const source = path.join(work, 'docker');
    const image = layoutImage({ layers: 2 });
    writeLayout(source, [{ manifest: image, tag: 'v1' }]);

    await client.ok(['copy', '--format', 'v2s2', '--dest-tls-verify=false', `oci:${source}:v1`, ref('skopeo/docker', 'v1')]);
    const raw = await inspectRaw(ref('skopeo/docker', 'v1'));
    const manifest = JSON.parse(raw.toString()) as {
      mediaType: string;
      config: { mediaType: string; digest: string };
      layers: { mediaType: string; digest: string }[];
    };
    assert.equal(manifest.mediaType, DOCKER_MANIFEST);
    assert.equal(manifest.config.mediaType, DOCKER_CONFIG);
    assert.deepEqual(
      manifest.layers.map((l) => l.mediaType),
      [DOCKER_LAYER_GZIP, DOCKER_LAYER_GZIP],
    );
    // The conversion rewrites the manifest, never the blobs.
    const sourceManifest = JSON.parse(image.bytes.toString()) as { config: { digest: string }; layers: { digest: string }[] };
    assert.equal(manifest.config.digest, sourceManifest.config.digest);
    assert.deepEqual(
      manifest.layers.map((l) => l.digest),
      sourceManifest.layers.map((l) => l.digest),
    );
    const head = await fetch(`${registry?.url}/v2/skopeo/docker/manifests/v1`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-type'), DOCKER_MANIFEST);
    assert.equal(head.headers.get('docker-content-digest'), sha256(raw));

    // dir: keeps the manifest exactly as served; pushing it back must give the same digest.
    const out = path.join(work, 'docker-dir');
    await client.ok(['copy', '--preserve-digests', '--src-tls-verify=false', ref('skopeo/docker', 'v1'), `dir:${out}`]);
    assert.ok(fs.readFileSync(path.join(out, 'manifest.json')).equals(raw), 'the pulled manifest is byte-identical');
    const sourceBlobs = readLayoutBlobs(source);
    for (const digest of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
      const pulled = fs.readFileSync(path.join(out, digest.replace(/^sha256:/, '')));
      assert.ok(pulled.equals(sourceBlobs.get(digest) as Buffer), `${digest} is byte-identical`);
    }

    await client.ok(['copy', '--preserve-digests', '--dest-tls-verify=false', `dir:${out}`, ref('skopeo/docker-again', 'v1')]);
    const again = await inspectRaw(ref('skopeo/docker-again', 'v1'));
    assert.ok(again.equals(raw), 'the manifest survives a second push unchanged');
    assert.deepEqual(await listTags('skopeo/docker-again'), ['v1']);
  });

  it('copies between repositories of the registry, mounting the layers', async () => {
    assert.ok(registry);
    const source = path.join(work, 'mount');
    // One layer of a few MiB: several write buffers on the way in, several reads on the way out.
    const image = layoutImage({ fileBytes: [100, 5 * 1024 * 1024 + 123] });
    writeLayout(source, [{ manifest: image, tag: 'v1' }]);
    await client.ok(['copy', '--preserve-digests', '--dest-tls-verify=false', `oci:${source}:v1`, ref('skopeo/mount-from', 'v1')]);
    await client.ok([
      'copy',
      '--preserve-digests',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      ref('skopeo/mount-from', 'v1'),
      ref('skopeo/mount-to', 'v1'),
    ]);
    assert.ok((await inspectRaw(ref('skopeo/mount-to', 'v1'))).equals(image.bytes));
    for (const blob of image.blobs) {
      const res = await fetch(`${registry.url}/v2/skopeo/mount-to/blobs/${sha256(blob)}`);
      assert.equal(res.status, 200);
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(blob));
    }
    const events = await runZot(['events', registry.configPath, '--json', '--repo', 'skopeo/mount-to', '--type', 'BlobMounted']);
    assert.equal(events.code, 0, events.stderr);
    const mounted = events.stdout.split('\n').filter((line) => line !== '').map((line) => (JSON.parse(line) as { digest: string }).digest);
    const layers = image.blobs.slice(1).map((blob) => sha256(blob));
    assert.deepEqual(mounted.filter((digest) => layers.includes(digest)).sort(), [...layers].sort(), 'skopeo mounted the layers from the other repository');
  });

  it('leaves a root whose projections and storage agree', async () => {
    assert.ok(registry);
    assert.equal(await registry.stop(), 0);
    const replay = await runZot(['replay', registry.configPath]);
    assert.equal(replay.code, 0, replay.stdout + replay.stderr);
    assert.doesNotMatch(replay.stdout, /^drift:/m);
    // Each repository's index.json names exactly the manifests still there.
    const single = readIndexJson(path.join(registry.root, 'skopeo/single'));
    assert.deepEqual(single.manifests, []);
    const docker = readIndexJson(path.join(registry.root, 'skopeo/docker'));
    assert.deepEqual(
      docker.manifests.map((m) => m.mediaType),
      [DOCKER_MANIFEST],
    );
    // Deleting an index leaves its children (untagged), as the distribution spec has it.
    assert.deepEqual(
      readIndexJson(path.join(registry.root, 'skopeo/multi')).manifests.map((m) => [m.mediaType, m.annotations]),
      [
        [OCI_MANIFEST, undefined],
        [OCI_MANIFEST, undefined],
      ],
    );
  });
});
