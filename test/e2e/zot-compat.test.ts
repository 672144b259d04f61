// Storage compatibility with zot, both ways. A root zot wrote (OCI image layouts per repository,
// tags in index.json annotations) is imported into the event log on first start, verified blob by
// blob, and served; and a root we wrote is one zot, or any OCI layout tool, can read.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DOCKER_MANIFEST, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, pushBlob, pushManifest, sha256 } from '../helpers/oci.js';
import {
  REF_NAME,
  layoutImage,
  layoutIndex,
  readIndexJson,
  readLayoutBlobs,
  taggedDigest,
  writeBlobFile,
  writeLayout,
  type LayoutManifest,
} from '../helpers/layout.js';
import { makeTempDir, runZot, spawnRegistry, startTestRegistry, testConfig, writeConfig, type RegistryProcess, type TestRegistry } from '../helpers/registry.js';
import { skopeo, type Skopeo } from '../helpers/skopeo.js';

interface JsonEvent {
  seq: number;
  type: string;
  repo: string;
  digest?: string;
  tag?: string;
  identity: string;
}

/** The events that change the registry: the pulls the test makes (ManifestsPulled, reads) left out. */
async function eventsOf(configPath: string): Promise<JsonEvent[]> {
  const result = await runZot(['events', configPath, '--json']);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as JsonEvent)
    .filter((event) => event.type !== 'ManifestsPulled');
}

async function get(url: string, accept?: string): Promise<{ status: number; bytes: Buffer; type: string | null; digest: string | null }> {
  const res = await fetch(url, accept ? { headers: { Accept: accept } } : {});
  return {
    status: res.status,
    bytes: Buffer.from(await res.arrayBuffer()),
    type: res.headers.get('content-type'),
    digest: res.headers.get('docker-content-digest'),
  };
}

async function json<T>(url: string): Promise<T> {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  return (await res.json()) as T;
}

const ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST].join(', ');

/** The manifest is served under `reference` byte-identical, and so is every blob it needs. */
async function assertServed(url: string, repo: string, reference: string, manifest: LayoutManifest): Promise<void> {
  const got = await get(`${url}/v2/${repo}/manifests/${reference}`, ACCEPT);
  assert.equal(got.status, 200, `${repo}:${reference} is served`);
  assert.ok(got.bytes.equals(manifest.bytes), `${repo}:${reference} is byte-identical`);
  assert.equal(got.digest, manifest.digest);
  assert.equal(got.type, manifest.mediaType);
  for (const blob of manifest.blobs) {
    const served = await get(`${url}/v2/${repo}/blobs/${sha256(blob)}`);
    assert.equal(served.status, 200, `${repo} serves ${sha256(blob)}`);
    assert.ok(served.bytes.equals(blob));
  }
}

describe('a storage root written by zot', () => {
  const root = path.join(makeTempDir('zot-ts-compat-'), 'root');
  const started = new Set<RegistryProcess>();
  const alpine = layoutImage({ layers: 2 });
  const nested = layoutImage({ layers: 1 });
  const amd64 = layoutImage({ architecture: 'amd64' });
  const arm64 = layoutImage({ architecture: 'arm64' });
  const index = layoutIndex([amd64, arm64]);
  const sbom = referrerOf(alpine, 'application/vnd.example.sbom.v1+json');
  const broken = layoutImage({ layers: 1 });
  // The broken image's layer file holds other bytes than its name says.
  const corruptDigest = sha256(broken.blobs[1] as Buffer);
  let importedEvents: JsonEvent[] = [];

  before(() => {
    writeLayout(path.join(root, 'library/alpine'), [
      { manifest: alpine, tag: 'v1' },
      { manifest: alpine, tag: 'latest' },
      { manifest: broken, tag: 'broken' },
      // zot keeps a referrer (an SBOM, a signature) untagged in index.json.
      { manifest: sbom },
    ]);
    writeBlobFile(path.join(root, 'library/alpine'), Buffer.from('these are not the bytes you are looking for'), corruptDigest);
    writeLayout(path.join(root, 'a/b'), [{ manifest: nested, tag: '1.0' }]);
    // A layout inside a repository's blob folder has a name no repository may take (a/b/blobs/...):
    // the import, and GC's start-up scan with it, pass it by.
    writeLayout(path.join(root, 'a/b/blobs/inner'), [{ manifest: layoutImage({ layers: 1 }), tag: 'stray' }]);
    // zot lists an index's children in index.json untagged, next to the tagged index.
    writeLayout(path.join(root, 'multi/arch'), [{ manifest: amd64 }, { manifest: arm64 }, { manifest: index, tag: 'latest' }]);
  });

  after(async () => {
    for (const registry of started) await registry.kill();
  });

  const start = async (): Promise<RegistryProcess> => {
    const registry = await spawnRegistry({ root });
    started.add(registry);
    return registry;
  };

  it('is imported on first start and served: catalog, tags, manifests and blobs', async () => {
    const registry = await start();
    const { url } = registry;
    assert.deepEqual((await json<{ repositories: string[] }>(`${url}/v2/_catalog`)).repositories, ['a/b', 'library/alpine', 'multi/arch']);
    assert.deepEqual((await json<{ tags: string[] }>(`${url}/v2/library/alpine/tags/list`)).tags, ['latest', 'v1']);
    assert.deepEqual((await json<{ tags: string[] }>(`${url}/v2/a/b/tags/list`)).tags, ['1.0']);
    assert.deepEqual((await json<{ tags: string[] }>(`${url}/v2/multi/arch/tags/list`)).tags, ['latest']);

    await assertServed(url, 'library/alpine', 'v1', alpine);
    await assertServed(url, 'library/alpine', 'latest', alpine);
    await assertServed(url, 'library/alpine', alpine.digest, alpine);
    await assertServed(url, 'a/b', '1.0', nested);
    await assertServed(url, 'multi/arch', 'latest', index);
    await assertServed(url, 'multi/arch', amd64.digest, amd64);
    await assertServed(url, 'multi/arch', arm64.digest, arm64);

    await assertServed(url, 'library/alpine', sbom.digest, sbom);
    const referrers = await json<{ manifests: { digest: string; artifactType?: string }[] }>(`${url}/v2/library/alpine/referrers/${alpine.digest}`);
    assert.deepEqual(
      referrers.manifests.map((m) => [m.digest, m.artifactType]),
      [[sbom.digest, 'application/vnd.example.sbom.v1+json']],
    );

    // Nothing unverified: the corrupt blob and the manifest that needs it are left out.
    assert.equal((await get(`${url}/v2/library/alpine/blobs/${corruptDigest}`)).status, 404);
    assert.equal((await fetch(`${url}/v2/library/alpine/blobs/${corruptDigest}`, { method: 'HEAD' })).status, 404);
    assert.equal((await get(`${url}/v2/library/alpine/manifests/broken`, ACCEPT)).status, 404);
    assert.equal((await get(`${url}/v2/library/alpine/manifests/${broken.digest}`, ACCEPT)).status, 404);

    importedEvents = await eventsOf(registry.configPath);
    assert.ok(importedEvents.length > 0);
    for (const event of importedEvents) assert.equal(event.identity, 'system:import', JSON.stringify(event));
    assert.deepEqual(
      importedEvents
        .filter((e) => e.type === 'TagSet')
        .map((e) => `${e.repo}:${e.tag}@${e.digest}`)
        .sort(),
      [`a/b:1.0@${nested.digest}`, `library/alpine:latest@${alpine.digest}`, `library/alpine:v1@${alpine.digest}`, `multi/arch:latest@${index.digest}`].sort(),
    );
    assert.deepEqual(
      importedEvents
        .filter((e) => e.type === 'ManifestPushed')
        .map((e) => `${e.repo}@${e.digest}`)
        .sort(),
      [`a/b@${nested.digest}`, `library/alpine@${alpine.digest}`, `library/alpine@${sbom.digest}`, `multi/arch@${amd64.digest}`, `multi/arch@${arm64.digest}`, `multi/arch@${index.digest}`].sort(),
    );
    assert.ok(!importedEvents.some((e) => e.digest === corruptDigest), 'no event names the corrupt blob');

    const table = await runZot(['events', registry.configPath]);
    assert.equal(table.code, 0);
    const rows = table.stdout.split('\n').filter((l) => l !== '' && !l.includes('ManifestsPulled'));
    assert.equal(rows.length, importedEvents.length);
    assert.ok(rows.every((line) => line.includes('system:import')));

    assert.equal(await registry.stop(), 0, registry.output());
    started.delete(registry);
    const replay = await runZot(['replay', registry.configPath]);
    assert.equal(replay.code, 0, replay.stdout + replay.stderr);
  });

  it('is not imported again on the next start', async () => {
    assert.ok(importedEvents.length > 0, 'the first start imported the root');
    const registry = await start();
    assert.deepEqual(await eventsOf(registry.configPath), importedEvents);
    assert.deepEqual((await json<{ tags: string[] }>(`${registry.url}/v2/library/alpine/tags/list`)).tags, ['latest', 'v1']);
    await assertServed(registry.url, 'multi/arch', 'latest', index);
    assert.equal(await registry.stop(), 0, registry.output());
    started.delete(registry);
    assert.deepEqual(await eventsOf(registry.configPath), importedEvents);
  });
});

describe('a zot root holding corrupt copies of a manifest and a layer', () => {
  const root = path.join(makeTempDir('zot-ts-compat-corrupt-'), 'root');
  const repo = 'flipped/app';
  const image = layoutImage({ layers: 2 });
  const layer = image.blobs[2] as Buffer;
  let registry: TestRegistry | undefined;

  /** Flips one bit of a blob file of the layout: same size, other bytes. */
  const flipBit = (digest: string): void => {
    const file = path.join(root, repo, 'blobs', 'sha256', digest.slice('sha256:'.length));
    const bytes = fs.readFileSync(file);
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] as number) ^ 0x01;
    fs.writeFileSync(file, bytes);
  };

  /** GET answers bytes that hash to the digest it names, and they are the genuine ones. */
  const assertGenuine = async (url: string, what: string, target: string, genuine: Buffer): Promise<void> => {
    const got = await get(`${url}/v2/${repo}/${target}`, ACCEPT);
    assert.equal(got.status, 200, what);
    assert.equal(sha256(got.bytes), got.digest ?? sha256(genuine), `${what}: the body hashes to Docker-Content-Digest`);
    assert.ok(got.bytes.equals(genuine), `${what}: the genuine bytes are served`);
  };

  before(() => {
    writeLayout(path.join(root, repo), [{ manifest: image, tag: 'v1' }]);
    flipBit(image.digest);
    flipBit(sha256(layer));
  });

  after(async () => {
    await registry?.stop();
  });

  it('serves the genuine bytes a client pushes again, after a restart too; replay --rehash is clean', async () => {
    registry = await startTestRegistry({ root });
    // The import left both out: neither hashes to its name.
    assert.equal((await get(`${registry.url}/v2/${repo}/manifests/v1`, ACCEPT)).status, 404);
    assert.equal((await get(`${registry.url}/v2/${repo}/blobs/${sha256(layer)}`)).status, 404);

    await pushBlob(registry.url, repo, layer);
    const res = await pushManifest(registry.url, repo, 'v1', image.bytes.toString(), image.mediaType);
    assert.equal(res.status, 201, await res.text());
    assert.equal(res.headers.get('docker-content-digest'), image.digest);
    await registry.running.actorsCaughtUp();
    await registry.stop();

    // A restart: nothing cached, every byte read from storage.
    registry = await startTestRegistry({ root });
    await assertGenuine(registry.url, 'manifest by tag', 'manifests/v1', image.bytes);
    await assertGenuine(registry.url, 'manifest by digest', `manifests/${image.digest}`, image.bytes);
    await assertGenuine(registry.url, 'manifest as a blob', `blobs/${image.digest}`, image.bytes);
    await assertGenuine(registry.url, 'layer', `blobs/${sha256(layer)}`, layer);
    await registry.running.actorsCaughtUp();
    await registry.stop();
    registry = undefined;

    const replay = await runZot(['replay', writeConfig(testConfig({ root })), '--rehash']);
    assert.equal(replay.code, 0, replay.stdout + replay.stderr);
  });
});

describe('a storage root written by zot-ts', () => {
  let registry: TestRegistry | undefined;
  let client: Skopeo | undefined;
  const repo = 'rev/app';
  const first = layoutImage({ layers: 2 });
  const second = layoutImage({ layers: 1 });
  const amd64 = layoutImage({ architecture: 'amd64' });
  const arm64 = layoutImage({ architecture: 'arm64' });
  const index = layoutIndex([amd64, arm64]);
  const docker = dockerImage();
  const tags: Record<string, LayoutManifest> = { v1: first, stable: first, v2: second, multi: index, docker };

  /** Pushes an image's blobs, then its manifest under `reference`. */
  const push = async (reference: string, manifest: LayoutManifest): Promise<void> => {
    assert.ok(registry);
    for (const blob of manifest.blobs) await pushBlob(registry.url, repo, blob);
    const res = await pushManifest(registry.url, repo, reference, manifest.bytes.toString(), manifest.mediaType);
    assert.equal(res.status, 201, await res.text());
  };

  before(async () => {
    registry = await startTestRegistry();
    client = skopeo();
    await push('v1', first);
    await push('stable', first);
    await push('v2', second);
    // Children by digest first, then the index that lists them.
    await push(amd64.digest, amd64);
    await push(arm64.digest, arm64);
    const res = await pushManifest(registry.url, repo, 'multi', index.bytes.toString(), OCI_INDEX);
    assert.equal(res.status, 201, await res.text());
    await push('docker', docker);
    await registry.running.actorsCaughtUp();
  });

  after(async () => {
    client?.close();
    await registry?.stop();
  });

  it('has a zot-shaped index.json and oci-layout in each repository', () => {
    assert.ok(registry);
    const dir = path.join(registry.root, repo);
    assert.equal(fs.readFileSync(path.join(dir, 'oci-layout'), 'utf8'), '{"imageLayoutVersion":"1.0.0"}');

    const written = readIndexJson(dir);
    assert.deepEqual(Object.keys(written).sort(), ['manifests', 'schemaVersion']);
    assert.equal(written.schemaVersion, 2);
    for (const descriptor of written.manifests) {
      assert.deepEqual(
        Object.keys(descriptor).filter((k) => !['mediaType', 'digest', 'size', 'annotations'].includes(k)),
        [],
      );
    }
    // One descriptor per tag, carrying it in the ref.name annotation.
    const tagged = written.manifests.filter((m) => m.annotations?.[REF_NAME] !== undefined);
    assert.deepEqual(
      tagged.map((m) => m.annotations?.[REF_NAME]).sort(),
      Object.keys(tags).sort(),
    );
    for (const descriptor of tagged) {
      const manifest = tags[descriptor.annotations?.[REF_NAME] as string] as LayoutManifest;
      assert.deepEqual(descriptor, {
        mediaType: manifest.mediaType,
        digest: manifest.digest,
        size: manifest.bytes.length,
        annotations: { [REF_NAME]: descriptor.annotations?.[REF_NAME] },
      });
    }
    // Every manifest is listed; the index's children untagged, as zot keeps them.
    const untagged = written.manifests.filter((m) => m.annotations === undefined);
    assert.deepEqual(untagged.map((m) => m.digest).sort(), [amd64.digest, arm64.digest].sort());
    for (const child of [amd64, arm64]) {
      assert.deepEqual(
        untagged.find((m) => m.digest === child.digest),
        { mediaType: OCI_MANIFEST, digest: child.digest, size: child.bytes.length },
      );
    }

    // Every file under blobs/ is named by the hash of its bytes.
    for (const [digest, bytes] of readLayoutBlobs(dir)) assert.equal(sha256(bytes), digest);
  });

  it('can be read as an OCI layout by skopeo, as zot reads it', async () => {
    assert.ok(registry && client);
    const dir = path.join(registry.root, repo);
    const work = makeTempDir('zot-ts-compat-out-');

    const single = path.join(work, 'single');
    await client.ok(['copy', '--preserve-digests', `oci:${dir}:v1`, `oci:${single}:v1`]);
    assert.equal(taggedDigest(single, 'v1'), first.digest);
    const copied = readLayoutBlobs(single);
    assert.deepEqual([...copied.keys()].sort(), [first.digest, ...first.blobs.map((b) => sha256(b))].sort());
    for (const [digest, bytes] of copied) assert.equal(sha256(bytes), digest);

    const multi = path.join(work, 'multi');
    await client.ok(['copy', '--all', '--preserve-digests', `oci:${dir}:multi`, `oci:${multi}:multi`]);
    assert.equal(taggedDigest(multi, 'multi'), index.digest);
    assert.deepEqual([...readLayoutBlobs(multi).keys()].sort(), [index.digest, ...index.blobs.map((b) => sha256(b))].sort());
  });

  it('is imported whole by a registry started on a copy without the event log', async () => {
    assert.ok(registry);
    const copy = path.join(makeTempDir('zot-ts-compat-copy-'), 'root');
    fs.cpSync(registry.root, copy, { recursive: true, filter: (source) => path.basename(source) !== '.zot-ts' });
    const imported = await startTestRegistry({ root: copy });
    try {
      assert.deepEqual((await json<{ tags: string[] }>(`${imported.url}/v2/${repo}/tags/list`)).tags, Object.keys(tags).sort());
      for (const [tag, manifest] of Object.entries(tags)) await assertServed(imported.url, repo, tag, manifest);
      await assertServed(imported.url, repo, amd64.digest, amd64);
    } finally {
      await imported.stop();
    }
  });
});

/** An artifact manifest (empty config, one blob) whose subject is `subject`. */
function referrerOf(subject: LayoutManifest, artifactType: string): LayoutManifest {
  const empty = Buffer.from('{}');
  const content = Buffer.from(JSON.stringify({ packages: [] }));
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType,
    config: { mediaType: OCI_EMPTY, digest: sha256(empty), size: empty.length },
    layers: [{ mediaType: 'application/spdx+json', digest: sha256(content), size: content.length }],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.bytes.length },
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  return { mediaType: OCI_MANIFEST, bytes, digest: sha256(bytes), blobs: [empty, content] };
}

/** A Docker schema 2 image: Docker media types for the manifest, its config and its layer. */
function dockerImage(): LayoutManifest {
  const oci = layoutImage({ layers: 1 });
  const [config, layer] = oci.blobs as [Buffer, Buffer];
  const manifest = {
    schemaVersion: 2,
    mediaType: DOCKER_MANIFEST,
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: sha256(config) },
    layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: sha256(layer) }],
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  return { mediaType: DOCKER_MANIFEST, bytes, digest: sha256(bytes), blobs: [config, layer] };
}
