// Garbage collection through HTTP, with a short gcDelay and gcInterval: what nothing keeps goes
// (each removal an event by system:gc), everything still referenced stays and pulls, a push that
// races GC inside gcDelay survives, and what a crash left on storage is found at start.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StoredEvent } from '../../src/events/types.js';
import { assertReplayClean, eventually, openSession, uploadFiles } from '../helpers/http.js';
import { descriptor, makeImage, OCI_INDEX, OCI_MANIFEST, pushBlob, pushImage, pushManifest, sha256, type TestImage } from '../helpers/oci.js';
import { byLabel, scrape } from '../helpers/prometheus.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const GC_FAST = { gc: true, dedupe: true, gcDelay: '1500ms', gcInterval: '200ms' };

function blobFile(root: string, repo: string, digest: string): string {
  return path.join(root, repo, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

async function status(url: string, method = 'GET'): Promise<number> {
  const res = await fetch(url, { method, headers: { Accept: `${OCI_MANIFEST}, ${OCI_INDEX}` } });
  await res.arrayBuffer();
  return res.status;
}

async function catalog(url: string): Promise<string[]> {
  return ((await (await fetch(`${url}/v2/_catalog`)).json()) as { repositories: string[] }).repositories;
}

function gcEvents(registry: TestRegistry): StoredEvent[] {
  return [...registry.running.store.read()].filter((event) => event.identity === 'system:gc');
}

async function assertImagePulls(url: string, repo: string, reference: string, image: TestImage): Promise<void> {
  assert.equal(await status(`${url}/v2/${repo}/manifests/${reference}`), 200, `${repo}:${reference} manifest`);
  for (const blob of [image.config, ...image.layers]) assert.equal(await status(`${url}/v2/${repo}/blobs/${sha256(blob)}`), 200, `${repo} blob`);
}

describe('garbage collection', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry({ storage: GC_FAST, extensions: { metrics: { enable: true } } });
  });
  after(async () => registry?.stop());

  it('removes untagged manifests, unreferenced blobs, orphaned referrers, stale uploads and empty repositories; keeps the rest', async () => {
    const { url } = registry;
    const repo = 'gc/app';
    // Kept: a tagged image; an index tagged "multi" whose child is untagged.
    const kept = makeImage({ layers: 2 });
    assert.equal((await pushImage(url, repo, 'keep', kept)).status, 201);
    const child = makeImage();
    assert.equal((await pushImage(url, repo, child.digest, child)).status, 201);
    const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [descriptor(OCI_MANIFEST, child.manifestBytes)] };
    assert.equal((await pushManifest(url, repo, 'multi', index, OCI_INDEX)).status, 201);
    // Removed: an image whose only tag is deleted, its own layer (a layer it shares with "keep"
    // stays), and a referrer of it; a blob no manifest names; an abandoned upload session.
    const dropped = makeImage();
    dropped.layers.push(kept.layers[0]!);
    (dropped.manifest.layers as unknown[]).push(descriptor('application/vnd.oci.image.layer.v1.tar', kept.layers[0]!));
    const droppedBytes = JSON.stringify(dropped.manifest);
    await pushBlob(url, repo, dropped.config);
    await pushBlob(url, repo, dropped.layers[0]!);
    assert.equal((await pushManifest(url, repo, 'tmp', droppedBytes)).status, 201);
    const droppedDigest = sha256(droppedBytes);
    const referrer = makeImage({ subject: descriptor(OCI_MANIFEST, droppedBytes), artifactType: 'application/example.sbom' });
    assert.equal((await pushImage(url, repo, referrer.digest, referrer)).status, 201);
    const loose = await pushBlob(url, repo, Buffer.from('a blob no manifest names'));
    const session = await openSession(url, repo);
    assert.ok(session.length > 0);
    assert.equal(uploadFiles(registry.root, repo).length, 1);
    assert.equal((await fetch(`${url}/v2/${repo}/manifests/tmp`, { method: 'DELETE' })).status, 202);
    // A repository whose only blob nobody references: it leaves the catalog.
    await pushBlob(url, 'gc/empty', Buffer.from('lonely'));
    assert.ok((await catalog(url)).includes('gc/empty'));

    await eventually(async () => (await status(`${url}/v2/${repo}/manifests/${droppedDigest}`)) === 404, 'the untagged manifest to go', 8000);
    await eventually(async () => (await status(`${url}/v2/${repo}/manifests/${referrer.digest}`)) === 404, 'its referrer to go', 8000);
    await eventually(async () => (await status(`${url}/v2/${repo}/blobs/${loose}`)) === 404, 'the loose blob to go', 8000);
    await eventually(async () => uploadFiles(registry.root, repo).length === 0, 'the stale upload session to go', 8000);
    await eventually(async () => !(await catalog(url)).includes('gc/empty'), 'the empty repository to leave the catalog', 8000);

    assert.equal(await status(`${url}/v2/${repo}/blobs/${sha256(dropped.layers[0]!)}`), 404, 'the dropped image layer is gone');
    assert.ok(!fs.existsSync(blobFile(registry.root, repo, droppedDigest)), 'the manifest file is gone');
    assert.ok(!fs.existsSync(path.join(registry.root, 'gc', 'empty')), 'the empty repository directory is gone');
    assert.equal((await fetch(`${url}/v2/${repo}/blobs/uploads/${session.split('/').pop()}`)).status, 404);

    await assertImagePulls(url, repo, 'keep', kept);
    await assertImagePulls(url, repo, child.digest, child);
    assert.equal(await status(`${url}/v2/${repo}/manifests/multi`), 200);

    await registry.running.actorsCaughtUp();
    const types = new Set(gcEvents(registry).map((event) => `${event.type}`));
    for (const type of ['ManifestDeleted', 'BlobDeleted', 'UploadExpired', 'RepositoryRemoved']) assert.ok(types.has(type), `a ${type} event by system:gc`);
    // zot's GC metrics count what went, by kind.
    const metrics = await scrape(`${url}/metrics`);
    const deleted = byLabel(metrics, 'zot_gc_deleted_total', 'type');
    assert.ok((deleted.manifests ?? 0) >= 2 && (deleted.blobs ?? 0) >= 3 && (deleted.uploads ?? 0) >= 1 && (deleted.repositories ?? 0) >= 1, JSON.stringify(deleted));
    assert.ok((byLabel(metrics, 'zot_gc_runs_total', 'error').false ?? 0) >= 1);
    await assertReplayClean(registry);
  });

  it('keeps a blob pushed inside gcDelay whose manifest arrives later, across several GC runs', async () => {
    const { url } = registry;
    const image = makeImage();
    await pushBlob(url, 'gc/race', image.config);
    await pushBlob(url, 'gc/race', image.layers[0]!);
    // Several GC intervals pass while the client "uploads" the rest.
    await new Promise((resolve) => setTimeout(resolve, 900));
    assert.equal((await pushManifest(url, 'gc/race', 'v1', image.manifestBytes)).status, 201);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await assertImagePulls(url, 'gc/race', 'v1', image);
    await assertReplayClean(registry);
  });
});

describe('manifest pushes racing GC over old unreferenced blobs', () => {
  let registry: TestRegistry;
  after(async () => registry?.stop());

  it('every manifest answered 201 keeps all it references; the others are MANIFEST_BLOB_UNKNOWN', async () => {
    registry = await startTestRegistry({ storage: { gc: true, dedupe: true, gcDelay: '300ms', gcInterval: '50ms' } });
    const { url } = registry;
    const images = Array.from({ length: 150 }, () => makeImage());
    for (const image of images) {
      await pushBlob(url, 'race/app', image.config);
      await pushBlob(url, 'race/app', image.layers[0]!);
    }
    // The first blobs are past gcDelay and referenced by nothing: GC is removing them while the
    // manifests arrive, one every few milliseconds, newest blobs first.
    const answers = await Promise.all(
      [...images].reverse().map(async (image, i) => {
        await new Promise((resolve) => setTimeout(resolve, i * 4));
        const res = await pushManifest(url, 'race/app', `t${i}`, image.manifestBytes);
        return { image, status: res.status, code: res.status === 201 ? undefined : ((await res.json()) as { errors: { code: string }[] }).errors[0]?.code };
      }),
    );
    const statuses = new Set(answers.map((answer) => answer.status));
    assert.ok(statuses.has(201), 'some manifests were pushed before GC reached their blobs');
    for (const answer of answers) {
      if (answer.status === 201) await assertImagePulls(url, 'race/app', answer.image.digest, answer.image);
      else assert.deepEqual([answer.status, answer.code], [400, 'MANIFEST_BLOB_UNKNOWN']);
    }
    // Give GC a few more runs: nothing a tag keeps may go.
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const answer of answers.filter((a) => a.status === 201)) await assertImagePulls(url, 'race/app', answer.image.digest, answer.image);
    await assertReplayClean(registry);
  });
});

describe('garbage collection off', () => {
  let registry: TestRegistry;
  after(async () => registry?.stop());

  it('removes nothing, however old', async () => {
    registry = await startTestRegistry({ storage: { gc: false, gcDelay: '100ms', gcInterval: '100ms' } });
    const image = makeImage();
    await pushImage(registry.url, 'nogc/app', image.digest, image);
    const loose = await pushBlob(registry.url, 'nogc/app', Buffer.from('never collected'));
    await new Promise((resolve) => setTimeout(resolve, 800));
    assert.equal(await status(`${registry.url}/v2/nogc/app/manifests/${image.digest}`), 200);
    assert.equal(await status(`${registry.url}/v2/nogc/app/blobs/${loose}`), 200);
    assert.equal(gcEvents(registry).length, 0);
  });
});

describe('garbage collection on a read-only registry', () => {
  let registry: TestRegistry | undefined;
  after(async () => registry?.stop());

  it('removes nothing: a read-only registry writes nothing', async () => {
    const root = path.join(makeTempDir(), 'root');
    const writer = await startTestRegistry({ root, storage: { gc: false } });
    const image = makeImage();
    await pushImage(writer.url, 'ro/app', image.digest, image);
    await writer.stop();
    registry = await startTestRegistry({ root, http: { ReadOnly: true }, storage: { gc: true, gcDelay: '100ms', gcInterval: '100ms' } });
    await new Promise((resolve) => setTimeout(resolve, 800));
    assert.equal(await status(`${registry.url}/v2/ro/app/manifests/${image.digest}`), 200);
    assert.equal(gcEvents(registry).length, 0);
  });
});

describe('garbage collection after a crash', () => {
  let registry: TestRegistry | undefined;
  after(async () => registry?.stop());

  it('removes at start what no event names: orphan blobs in a known repository and a repository the log never saw', async () => {
    const root = path.join(makeTempDir(), 'root');
    const first = await startTestRegistry({ root, storage: { gc: false } });
    const image = makeImage();
    await pushImage(first.url, 'crash/app', 'v1', image);
    await first.stop();
    // What a kill -9 between placing bytes and appending the event leaves behind, aged past gcDelay.
    const orphan = Buffer.from('bytes placed, event never appended');
    const orphanFile = blobFile(root, 'crash/app', sha256(orphan));
    fs.writeFileSync(orphanFile, orphan);
    const strayRepo = path.join(root, 'crash', 'new');
    fs.mkdirSync(path.join(strayRepo, 'blobs', 'sha256'), { recursive: true });
    fs.writeFileSync(path.join(strayRepo, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    fs.writeFileSync(blobFile(root, 'crash/new', sha256(orphan)), orphan);
    const old = new Date(Date.now() - 60_000);
    for (const file of [orphanFile, blobFile(root, 'crash/new', sha256(orphan))]) fs.utimesSync(file, old, old);

    registry = await startTestRegistry({ root, storage: GC_FAST });
    await eventually(async () => !fs.existsSync(orphanFile) && !fs.existsSync(strayRepo), 'the orphans to go', 8000);
    await assertImagePulls(registry.url, 'crash/app', 'v1', image);
    await registry.running.actorsCaughtUp();
    assert.ok(gcEvents(registry).some((event) => event.type === 'OrphanRemoved' && event.repo === 'crash/app'));
    await assertReplayClean(registry);
  });
});
