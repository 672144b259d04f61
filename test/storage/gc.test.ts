// Garbage collection through HTTP, with a short gcDelay and gcInterval: what nothing keeps goes
// (each removal an event by system:gc), everything still referenced stays and pulls whole, blobs
// inside gcDelay survive a sweep until their manifest arrives, manifest pushes racing a sweep either
// keep all they reference or are refused, and what a crash left on storage is found at start. Waits
// are on conditions (events in the log, answers over HTTP), each with a deadline.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SYSTEM_GC_IDENTITY, type EventOf, type StoredEvent } from '../../src/events/types.js';
import { assertReplayClean, eventually, openSession, uploadFiles, type OciErrorBody } from '../helpers/http.js';
import { descriptor, makeImage, OCI_INDEX, OCI_MANIFEST, pushBlob, pushImage, pushManifest, sha256, type TestImage } from '../helpers/oci.js';
import { byLabel, scrape } from '../helpers/prometheus.js';
import { assertAcknowledgedPull, assertListedPullWhole, assertPullsWhole, pullBlob } from '../helpers/pull.js';
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

/**
 * Resolves once GC has committed a blob removal in `repo`: one already in the log, or the next one
 * published (in-process, the moment its append commits, while the sweep goes on).
 */
function gcBlobRemovalCommitted(registry: TestRegistry, repo: string, timeoutMs: number): Promise<void> {
  const isRemoval = (event: StoredEvent): boolean => event.type === 'BlobDeleted' && event.repo === repo && event.identity === SYSTEM_GC_IDENTITY;
  const { store } = registry.running;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      subscription.unsubscribe();
      reject(new Error(`GC removed no blob of ${repo} within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      subscription.unsubscribe();
      resolve();
    };
    const subscription = store.events$.subscribe((event) => {
      if (isRemoval(event)) done();
    });
    if ([...store.read({ repo, type: 'BlobDeleted' })].some(isRemoval)) done();
  });
}

/**
 * Makes GC sweep `repo` once more and waits until it has (bounded): an orphan file, aged past any
 * gcDelay, is planted in the repository as a witness; a client's blob DELETE makes the repository
 * due now; the sweep's OrphanRemoved, appended after its blob phase, says the sweep went through.
 */
async function sweepOf(registry: TestRegistry, repo: string): Promise<EventOf<'OrphanRemoved'>> {
  const witness = randomBytes(64);
  const file = blobFile(registry.root, repo, sha256(witness));
  fs.writeFileSync(file, witness);
  const old = new Date(Date.now() - 3_600_000);
  fs.utimesSync(file, old, old);
  const trigger = await pushBlob(registry.url, repo, randomBytes(64));
  assert.equal((await fetch(`${registry.url}/v2/${repo}/blobs/${trigger}`, { method: 'DELETE' })).status, 202);
  const removedBy = (): EventOf<'OrphanRemoved'> | undefined =>
    [...registry.running.store.read({ repo, type: 'OrphanRemoved' })].find(
      (event): event is EventOf<'OrphanRemoved'> => event.type === 'OrphanRemoved' && event.digest === sha256(witness) && event.identity === SYSTEM_GC_IDENTITY,
    );
  await eventually(async () => removedBy() !== undefined, `a sweep of ${repo}`, 10_000);
  return removedBy()!;
}

/** The image pulls whole under `reference` (every byte re-hashed), and it is the image pushed. */
async function assertImagePulls(url: string, repo: string, reference: string, image: TestImage): Promise<void> {
  assert.equal((await assertPullsWhole(url, repo, reference)).digest, image.digest, `${repo}:${reference} is the image pushed`);
}

describe('garbage collection', () => {
  let registry: TestRegistry;
  before(async () => {
    // Referrers whose subject is gone stay unless a retention policy says deleteReferrers, as in zot.
    const retention = { delay: GC_FAST.gcDelay, policies: [{ repositories: ['gc/**'], deleteReferrers: true }] };
    registry = await startTestRegistry({ storage: { ...GC_FAST, retention }, extensions: { metrics: { enable: true } } });
  });
  after(async () => registry?.stop());

  it('removes untagged manifests, unreferenced blobs, orphaned referrers (deleteReferrers), stale uploads and empty repositories; keeps the rest', async () => {
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
    // Files go after the append that takes their content out of the answers.
    await eventually(async () => !fs.existsSync(path.join(registry.root, 'gc', 'empty')), 'the empty repository directory to go', 8000);
    await eventually(async () => !fs.existsSync(blobFile(registry.root, repo, droppedDigest)), 'the manifest file to go', 8000);

    assert.equal(await status(`${url}/v2/${repo}/blobs/${sha256(dropped.layers[0]!)}`), 404, 'the dropped image layer is gone');
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
});

describe('garbage collection inside gcDelay', () => {
  const GC_DELAY_MS = 3000;
  let registry: TestRegistry | undefined;
  after(async () => registry?.stop());

  it('keeps blobs pushed inside gcDelay through a sweep of their repository, and keeps them once their manifest arrives and they are old', async () => {
    registry = await startTestRegistry({ storage: { gc: true, dedupe: true, gcDelay: `${GC_DELAY_MS}ms`, gcInterval: '100ms' } });
    const { url } = registry;
    const repo = 'gc/late';
    const image = makeImage();
    await pushBlob(url, repo, image.config);
    await pushBlob(url, repo, image.layers[0]!);
    const pushedAt = [...registry.running.store.read({ repo, type: 'BlobPushed' })].map((event) => Date.parse(event.time));

    // A sweep while both are young and no manifest references them: the age check must keep them.
    const young = await sweepOf(registry, repo);
    assert.ok(Date.parse(young.time) < Math.min(...pushedAt) + GC_DELAY_MS, 'the sweep ran inside gcDelay of both blobs');
    for (const blob of [image.config, image.layers[0]!]) await pullBlob(url, repo, sha256(blob), blob.length);
    assert.equal((await pushManifest(url, repo, 'v1', image.manifestBytes)).status, 201);

    // A sweep once both are older than gcDelay: the manifest keeps them.
    await eventually(async () => Date.now() > Math.max(...pushedAt) + GC_DELAY_MS, 'the blobs to be older than gcDelay', 2 * GC_DELAY_MS);
    await sweepOf(registry, repo);
    await assertAcknowledgedPull(url, [{ kind: 'manifest', repo, digest: image.digest, tag: 'v1' }]);
    const removed = [...registry.running.store.read({ repo, type: 'BlobDeleted' })].filter((event) => event.identity === SYSTEM_GC_IDENTITY);
    assert.deepEqual(removed, [], 'GC removed none of the blobs');
    await assertReplayClean(registry);
  });
});

describe('manifest pushes racing GC over old unreferenced blobs', () => {
  const RACE_IMAGES = 120;
  const RACE_GC_DELAY_MS = 300;
  let writer: TestRegistry | undefined;
  let registry: TestRegistry | undefined;
  after(async () => {
    await writer?.stop();
    await registry?.stop();
  });

  // Every blob is older than gcDelay and unreferenced when GC starts, so its first sweep lists them
  // all as candidates at once. The manifests naming them are pushed the moment that sweep commits
  // its first removal. A push that wins does so before GC reaches its blobs, so GC's re-check inside
  // its append is what must keep them; a push that loses names a blob GC removed.
  it('each push either wins and pulls whole, its blobs passed over by the running sweep, or is MANIFEST_BLOB_UNKNOWN for a blob GC removed', async () => {
    const root = path.join(makeTempDir(), 'root');
    const repo = 'race/app';
    writer = await startTestRegistry({ root, storage: { gc: false } });
    const images = Array.from({ length: RACE_IMAGES }, () => makeImage());
    const blobs = images.flatMap((image) => [image.config, image.layers[0]!]);
    const { url: writerUrl } = writer;
    await Promise.all(
      Array.from({ length: 8 }, async (_, lane) => {
        for (let i = lane; i < blobs.length; i += 8) await pushBlob(writerUrl, repo, blobs[i]!);
      }),
    );
    const blobPushedAt = [...writer.running.store.read({ repo, type: 'BlobPushed' })].map((event) => Date.parse(event.time));
    assert.equal(blobPushedAt.length, 2 * RACE_IMAGES);
    await writer.stop();
    writer = undefined;
    const youngest = Math.max(...blobPushedAt);
    await eventually(async () => Date.now() > youngest + RACE_GC_DELAY_MS, 'the blobs to be older than gcDelay', 5000);

    const gcStartedAt = Date.now();
    registry = await startTestRegistry({
      root,
      storage: { gc: true, dedupe: true, gcDelay: `${RACE_GC_DELAY_MS}ms`, gcInterval: '250ms' },
      extensions: { metrics: { enable: true } },
    });
    const { url } = registry;
    await gcBlobRemovalCommitted(registry, repo, 10_000);
    const answers = await Promise.all(
      images.map(async (image, i) => {
        const tag = `t${i}`;
        const res = await pushManifest(url, repo, tag, image.manifestBytes);
        const body = res.status === 201 ? undefined : ((await res.json()) as OciErrorBody);
        if (res.status === 201) await res.arrayBuffer();
        return { image, tag, status: res.status, code: body?.errors[0]?.code, missing: (body?.errors[0]?.detail as { digest?: string } | undefined)?.digest };
      }),
    );
    // zot_gc_runs_total counts a sweep once it has gone through every candidate.
    await eventually(async () => (byLabel(await scrape(`${url}/metrics`), 'zot_gc_runs_total', 'error').false ?? 0) >= 1, 'the first sweep to finish', 10_000);
    await registry.running.actorsCaughtUp();

    const removals = [...registry.running.store.read({ repo, type: 'BlobDeleted' })].filter((event): event is EventOf<'BlobDeleted'> => event.type === 'BlobDeleted' && event.identity === SYSTEM_GC_IDENTITY);
    const removedAt = new Map(removals.map((event) => [event.digest, event.seq]));
    const manifestsPushed = [...registry.running.store.read({ repo, type: 'ManifestPushed' })].filter((event): event is EventOf<'ManifestPushed'> => event.type === 'ManifestPushed');
    const pushedAt = new Map(manifestsPushed.map((event) => [event.digest, event.seq]));
    const won = answers.filter((answer) => answer.status === 201);
    const lost = answers.filter((answer) => answer.status !== 201);
    const summary = `${won.length} pushes won, ${lost.length} lost, GC removed ${removals.length} blobs (seq ${removals[0]?.seq}..${removals.at(-1)?.seq})`;
    assert.ok(blobPushedAt.every((at) => at + RACE_GC_DELAY_MS < gcStartedAt), 'every blob was a candidate of the first sweep');
    assert.ok(lost.length > 0, `some pushes lost to GC: ${summary}`);
    assert.ok(won.length > 0, `some pushes won against GC: ${summary}`);

    for (const answer of lost) {
      assert.deepEqual([answer.status, answer.code], [400, 'MANIFEST_BLOB_UNKNOWN'], `${answer.tag}: ${summary}`);
      assert.ok(answer.missing !== undefined && [sha256(answer.image.config), sha256(answer.image.layers[0]!)].includes(answer.missing), `${answer.tag} names its missing blob`);
      assert.ok(removedAt.has(answer.missing), `${answer.tag} lost to GC: system:gc removed ${answer.missing}`);
      assert.ok(!pushedAt.has(answer.image.digest), `${answer.tag} left no ManifestPushed`);
    }
    const firstRemoval = removals[0]!.seq;
    const lastRemoval = removals.at(-1)!.seq;
    for (const answer of won) {
      const seq = pushedAt.get(answer.image.digest);
      assert.ok(seq !== undefined && seq > firstRemoval, `${answer.tag} was pushed while the sweep was removing (ManifestPushed ${seq}, first removal ${firstRemoval})`);
      for (const blob of [answer.image.config, answer.image.layers[0]!]) assert.ok(!removedAt.has(sha256(blob)), `GC kept the blobs of ${answer.tag}`);
    }
    // The interleaving in the log: the sweep went on removing after pushes had won, so it reached
    // their blobs (candidates since its start) only once a manifest referenced them.
    const wonMidSweep = won.filter((answer) => pushedAt.get(answer.image.digest)! < lastRemoval);
    assert.ok(wonMidSweep.length > 0, `no push won while GC was still removing: the race did not happen (${summary})`);

    // Every 201 pulls whole, by tag and by digest, and nothing else is listed.
    await assertAcknowledgedPull(url, won.map((answer) => ({ kind: 'manifest' as const, repo, digest: answer.image.digest, tag: answer.tag })));
    const listed = await assertListedPullWhole(url);
    assert.deepEqual(listed.sort(), won.map((answer) => `${repo}:${answer.tag}`).sort());
    await assertReplayClean(registry);
  });
});

// A removal that did not happen is only shown by one that did: each of these runs a control registry
// with gc on over the same content, and checks once the control has collected it.
const GC_SOON = { gc: true, gcDelay: '100ms', gcInterval: '100ms' };

async function collectedBy(control: TestRegistry, repo: string, image: TestImage): Promise<void> {
  await eventually(async () => (await status(`${control.url}/v2/${repo}/manifests/${image.digest}`)) === 404, 'the control registry to collect the untagged manifest', 8000);
}

describe('garbage collection off', () => {
  const registries: TestRegistry[] = [];
  after(async () => {
    for (const registry of registries) await registry.stop();
  });

  it('removes nothing, however old, while a registry with gc on removes the same content', async () => {
    const off = await startTestRegistry({ storage: { ...GC_SOON, gc: false } });
    registries.push(off);
    const control = await startTestRegistry({ storage: GC_SOON });
    registries.push(control);
    const image = makeImage();
    const loose = Buffer.from('never collected');
    // Pushed to the registry with gc off first: it is at least as old there as in the control.
    for (const { url } of [off, control]) {
      await pushImage(url, 'nogc/app', image.digest, image);
      await pushBlob(url, 'nogc/app', loose);
    }
    await collectedBy(control, 'nogc/app', image);
    await eventually(async () => (await status(`${control.url}/v2/nogc/app/blobs/${sha256(loose)}`)) === 404, 'the control registry to collect the loose blob', 8000);
    assert.equal(await status(`${off.url}/v2/nogc/app/manifests/${image.digest}`), 200);
    assert.equal(await status(`${off.url}/v2/nogc/app/blobs/${sha256(loose)}`), 200);
    assert.equal(gcEvents(off).length, 0);
  });
});

describe('garbage collection on a read-only registry', () => {
  const registries: TestRegistry[] = [];
  after(async () => {
    for (const registry of registries) await registry.stop();
  });

  it('removes nothing: a read-only registry writes nothing, while a writable copy collects the same content', async () => {
    const root = path.join(makeTempDir(), 'root');
    const writer = await startTestRegistry({ root, storage: { gc: false } });
    const image = makeImage();
    await pushImage(writer.url, 'ro/app', image.digest, image);
    await writer.stop();
    const controlRoot = path.join(makeTempDir(), 'root');
    fs.cpSync(root, controlRoot, { recursive: true });
    const readOnly = await startTestRegistry({ root, http: { ReadOnly: true }, storage: GC_SOON });
    registries.push(readOnly);
    const control = await startTestRegistry({ root: controlRoot, storage: GC_SOON });
    registries.push(control);
    await collectedBy(control, 'ro/app', image);
    assert.equal(await status(`${readOnly.url}/v2/ro/app/manifests/${image.digest}`), 200);
    assert.equal(gcEvents(readOnly).length, 0);
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

describe('garbage collection after a restart', () => {
  let registry: TestRegistry | undefined;
  after(async () => registry?.stop());

  it('collects what the events before the restart left to collect, without reading them again', async () => {
    const root = path.join(makeTempDir(), 'root');
    // GC on, with a delay that keeps everything during the first run: its checkpoint is at the head.
    const first = await startTestRegistry({ root, storage: { ...GC_FAST, gcDelay: '1h' } });
    const kept = makeImage();
    const dropped = makeImage();
    assert.equal((await pushImage(first.url, 'restart/app', 'keep', kept)).status, 201);
    assert.equal((await pushImage(first.url, 'restart/app', 'tmp', dropped)).status, 201);
    assert.equal((await fetch(`${first.url}/v2/restart/app/manifests/tmp`, { method: 'DELETE' })).status, 202);
    await first.running.actorsCaughtUp();
    await first.stop();

    // GC learns of the repository at start (every one is due), not from the log's old events.
    registry = await startTestRegistry({ root, storage: GC_FAST });
    await eventually(async () => (await status(`${registry!.url}/v2/restart/app/manifests/${dropped.digest}`)) === 404, 'the untagged manifest to go', 8000);
    await eventually(async () => !fs.existsSync(blobFile(root, 'restart/app', dropped.digest)), 'its file to go', 8000);
    await assertImagePulls(registry.url, 'restart/app', 'keep', kept);
    await registry.running.actorsCaughtUp();
    await assertReplayClean(registry);
  });
});
