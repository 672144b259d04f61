// Retention (storage.retention) through HTTP, with short durations: every policy field, several
// policies matched by repository globs, dryRun, subPaths with their own retention, pull times kept
// across a restart. Each removal is an event naming its policy: tags by system:retention, then the
// manifests they leave unkept and their blobs by system:gc. Waits are on conditions (events in the
// log, answers over HTTP), never fixed sleeps; where a rule reads the clock, the test checks what
// must hold whatever the machine's speed (nothing removed before its window ended). `zot replay`
// is clean after each.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { SYSTEM_GC_IDENTITY, SYSTEM_PULLS_IDENTITY, SYSTEM_RETENTION_IDENTITY, type EventOf, type StoredEvent } from '../../src/events/types.js';
import { RegistryStateQueries } from '../../src/projections/registry-state.js';
import { eventLogFile } from '../../src/storage/layout.js';
import { assertReplayClean, eventually, instantAfter } from '../helpers/http.js';
import { descriptor, makeImage, OCI_MANIFEST, pushBlob, pushImage, pushManifest, sha256, type TestImage } from '../helpers/oci.js';
import { ACCEPT_MANIFESTS, assertPullsWhole } from '../helpers/pull.js';
import { makeTempDir, startTestRegistry, type TestConfigOptions, type TestRegistry } from '../helpers/registry.js';

const GC_FAST = { gc: true, dedupe: true, gcDelay: '1s', gcInterval: '200ms' };
const DELAY_MS = 1000;

const registries: TestRegistry[] = [];
after(async () => {
  for (const registry of registries) await registry.stop();
});

async function start(options: TestConfigOptions, logger?: pino.Logger): Promise<TestRegistry> {
  const registry = await startTestRegistry(options, logger ? { logger } : {});
  registries.push(registry);
  return registry;
}

async function stop(registry: TestRegistry): Promise<void> {
  registries.splice(registries.indexOf(registry), 1);
  await registry.stop();
}

/** HEAD, so that checking a manifest is not a pull. */
async function manifestStatus(url: string, repo: string, reference: string): Promise<number> {
  return (await fetch(`${url}/v2/${repo}/manifests/${reference}`, { method: 'HEAD', headers: { Accept: ACCEPT_MANIFESTS } })).status;
}

async function blobStatus(url: string, repo: string, digest: string): Promise<number> {
  return (await fetch(`${url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' })).status;
}

async function tagsOf(url: string, repo: string): Promise<string[]> {
  const res = await fetch(`${url}/v2/${repo}/tags/list`);
  if (res.status === 404) return [];
  return ((await res.json()) as { tags: string[] }).tags.sort();
}

function eventsOf<T extends StoredEvent['type']>(registry: TestRegistry, repo: string, type: T): EventOf<T>[] {
  return [...registry.running.store.read({ repo, type })] as EventOf<T>[];
}

/** Tag removals by retention in the repository, by tag. */
function tagRemovals(registry: TestRegistry, repo: string): Map<string, EventOf<'TagRemoved'>> {
  const removals = eventsOf(registry, repo, 'TagRemoved').filter((event) => event.identity === SYSTEM_RETENTION_IDENTITY);
  return new Map(removals.map((event) => [event.tag, event]));
}

function manifestRemoval(registry: TestRegistry, repo: string, digest: string): EventOf<'ManifestDeleted'> | undefined {
  return eventsOf(registry, repo, 'ManifestDeleted').find((event) => event.digest === digest);
}

/** When the tag was last set (ms): its push time for retention. */
function tagSetAt(registry: TestRegistry, repo: string, tag: string): number {
  const sets = eventsOf(registry, repo, 'TagSet').filter((event) => event.tag === tag);
  assert.ok(sets.length > 0, `${repo}:${tag} was pushed`);
  return Date.parse((sets[sets.length - 1] as StoredEvent).time);
}

/** Pushes an image under `reference` once the clock has passed the previous push (distinct push times). */
async function pushAfter(url: string, repo: string, reference: string, image: TestImage = makeImage()): Promise<TestImage> {
  await instantAfter(Date.now());
  assert.equal((await pushImage(url, repo, reference, image)).status, 201);
  return image;
}

/**
 * Makes GC sweep `repo` once more and waits until it has: an orphan file, aged past any delay, is
 * planted as a witness, a blob pushed and deleted makes the repository due now, and the sweep's
 * OrphanRemoved says it went through (after the tags and manifests of the repository).
 */
async function sweepOf(registry: TestRegistry, repo: string, root = registry.root): Promise<void> {
  const witness = randomBytes(64);
  const file = path.join(root, repo, 'blobs', 'sha256', sha256(witness).slice('sha256:'.length));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, witness);
  const old = new Date(Date.now() - 3_600_000);
  fs.utimesSync(file, old, old);
  const trigger = await pushBlob(registry.url, repo, randomBytes(64));
  assert.equal((await fetch(`${registry.url}/v2/${repo}/blobs/${trigger}`, { method: 'DELETE' })).status, 202);
  await eventually(
    async () => eventsOf(registry, repo, 'OrphanRemoved').some((event) => event.digest === sha256(witness) && event.identity === SYSTEM_GC_IDENTITY),
    `a sweep of ${repo}`,
    10_000,
  );
}

/** A logger whose JSON lines the test reads. */
function capturedLogger(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines: () => lines };
}

describe('retention: keepTags patterns', () => {
  it('removes the tags no pattern matches (unanchored, as Go matches), then their manifests after delay and their blobs; keeps the rest whole', async () => {
    const audit = path.join(makeTempDir(), 'audit.log');
    const retention = { delay: '1s', policies: [{ repositories: ['pat/**'], keepTags: [{ patterns: ['^v1\\.', 'prod'] }] }] };
    const registry = await start({ storage: { ...GC_FAST, retention }, log: { level: 'error', audit } });
    const { url } = registry;
    const repo = 'pat/app';
    const v1 = await pushAfter(url, repo, 'v1.0');
    assert.equal((await pushManifest(url, repo, 'latest', v1.manifestBytes)).status, 201);
    const preprod = await pushAfter(url, repo, 'preprod-2');
    const dev = await pushAfter(url, repo, 'dev');
    const v10 = await pushAfter(url, repo, 'v10');

    await eventually(async () => (await tagsOf(url, repo)).join() === 'preprod-2,v1.0', 'the unmatched tags to go', 10_000);
    const removals = tagRemovals(registry, repo);
    assert.deepEqual([...removals.keys()].sort(), ['dev', 'latest', 'v10']);
    for (const event of removals.values()) {
      assert.equal(event.reason, 'keepTags');
      assert.equal(event.policy, 'storage.retention.policies.0');
    }
    // A manifest left with no tag goes once older than delay, and its own layers after gcDelay.
    for (const image of [dev, v10]) {
      await eventually(async () => (await manifestStatus(url, repo, image.digest)) === 404, 'an untagged manifest to go', 10_000);
      await eventually(async () => (await blobStatus(url, repo, sha256(image.layers[0] as Buffer))) === 404, 'its layer to go', 10_000);
      const removal = manifestRemoval(registry, repo, image.digest);
      assert.equal(removal?.identity, SYSTEM_GC_IDENTITY);
      assert.equal(removal?.reason, 'deleteUntagged');
      assert.equal(removal?.policy, 'storage.retention.policies.0');
    }
    // latest's manifest is still tagged v1.0.
    assert.equal((await assertPullsWhole(url, repo, 'v1.0')).digest, v1.digest);
    assert.equal((await assertPullsWhole(url, repo, 'preprod-2')).digest, preprod.digest);

    await registry.running.actorsCaughtUp();
    const lines = fs.readFileSync(audit, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const devLine = lines.find((line) => line.event === 'TagRemoved' && line.tag === 'dev');
    assert.equal(devLine?.subject, SYSTEM_RETENTION_IDENTITY);
    assert.equal(devLine?.reason, 'keepTags');
    assert.equal(devLine?.policy, 'storage.retention.policies.0');
    await assertReplayClean(registry);
  });
});

describe('retention: several policies', () => {
  it('applies to each repository the first policy whose glob matches; one no policy matches keeps its tags and loses its untagged manifests', async () => {
    const retention = {
      delay: '1s',
      policies: [
        { repositories: ['multi/keep/**'], keepTags: [{ patterns: ['.*'] }] },
        { repositories: ['multi/*', 'multi/keep/**'], keepTags: [{ patterns: ['^stable$'] }] },
        { repositories: ['count/*'], keepTags: [{ mostRecentlyPushedCount: 2 }] },
      ],
    };
    const registry = await start({ storage: { ...GC_FAST, retention } });
    const { url } = registry;
    for (const repo of ['multi/keep/a', 'multi/app', 'free/app']) {
      await pushAfter(url, repo, 'stable');
      await pushAfter(url, repo, 'x');
    }
    for (const tag of ['one', 'two', 'three']) await pushAfter(url, 'count/app', tag);
    const untagged = makeImage();
    assert.equal((await pushImage(url, 'free/app', untagged.digest, untagged)).status, 201);

    await eventually(async () => (await tagsOf(url, 'multi/app')).join() === 'stable', 'multi/app to keep only stable', 10_000);
    await eventually(async () => (await tagsOf(url, 'count/app')).join() === 'three,two', 'count/app to keep its two latest', 10_000);
    await eventually(async () => (await manifestStatus(url, 'free/app', untagged.digest)) === 404, "free/app's untagged manifest to go", 10_000);
    assert.equal(tagRemovals(registry, 'multi/app').get('x')?.policy, 'storage.retention.policies.1');
    assert.equal(tagRemovals(registry, 'count/app').get('one')?.policy, 'storage.retention.policies.2');
    // zot's default where no policy matches: untagged manifests go, with no policy named.
    const removal = manifestRemoval(registry, 'free/app', untagged.digest);
    assert.equal(removal?.reason, 'deleteUntagged');
    assert.equal(removal?.policy, undefined);

    for (const repo of ['multi/keep/a', 'free/app']) await sweepOf(registry, repo);
    assert.deepEqual(await tagsOf(url, 'multi/keep/a'), ['stable', 'x']);
    assert.deepEqual(await tagsOf(url, 'free/app'), ['stable', 'x']);
    assert.equal(tagRemovals(registry, 'multi/keep/a').size + tagRemovals(registry, 'free/app').size, 0);
    await assertReplayClean(registry);
  });
});

describe('retention: pushedWithin', () => {
  it('removes a tag once pushed longer ago than pushedWithin, never before; a tag an earlier entry matches stays', async () => {
    const WINDOW_MS = 2000;
    const retention = { policies: [{ repositories: ['recent/**'], keepTags: [{ patterns: ['^keep$'] }, { pushedWithin: `${WINDOW_MS}ms` }] }] };
    const registry = await start({ storage: { ...GC_FAST, retention } });
    const { url } = registry;
    const repo = 'recent/app';
    await pushAfter(url, repo, 'keep');
    await pushAfter(url, repo, 'a');

    await eventually(async () => tagRemovals(registry, repo).has('a'), 'a to go once out of its window', 15_000);
    const removedAt = Date.parse((tagRemovals(registry, repo).get('a') as StoredEvent).time);
    assert.ok(removedAt >= tagSetAt(registry, repo, 'a') + WINDOW_MS, 'not removed inside its pushedWithin window');
    assert.deepEqual(await tagsOf(url, repo), ['keep']);
    await assertReplayClean(registry);
  });
});

describe('retention: pulledWithin', () => {
  it('keeps a tag while it is pulled within the window, and one pushed within it; removes each once neither', async () => {
    const WINDOW_MS = 2000;
    const retention = { policies: [{ repositories: ['pulled/**'], keepTags: [{ pulledWithin: `${WINDOW_MS}ms` }] }] };
    const registry = await start({ storage: { ...GC_FAST, retention } });
    const { url } = registry;
    const repo = 'pulled/app';
    await pushAfter(url, repo, 'a');
    await pushAfter(url, repo, 'b');

    // Pull a over and over (each GET is a pull) until b, never pulled, goes.
    const pulls: number[] = [];
    await eventually(
      async () => {
        pulls.push(Date.now());
        const res = await fetch(`${url}/v2/${repo}/manifests/a`, { headers: { Accept: ACCEPT_MANIFESTS } });
        await res.arrayBuffer();
        return res.status !== 200 || tagRemovals(registry, repo).has('b');
      },
      'b to go, or a',
      15_000,
    );
    await eventually(async () => tagRemovals(registry, repo).has('b'), 'b to go', 15_000);
    const removedB = Date.parse((tagRemovals(registry, repo).get('b') as StoredEvent).time);
    assert.ok(removedB >= tagSetAt(registry, repo, 'b') + WINDOW_MS, 'b was kept while pushed within the window');

    await eventually(async () => tagRemovals(registry, repo).has('a'), 'a to go once no longer pulled', 15_000);
    const removedA = Date.parse((tagRemovals(registry, repo).get('a') as StoredEvent).time);
    const lastPull = Math.max(...pulls.filter((at) => at < removedA));
    assert.ok(removedA >= lastPull + WINDOW_MS, 'a was kept while pulled within the window');
    assert.equal(tagRemovals(registry, repo).get('a')?.policy, 'storage.retention.policies.0');
    await assertReplayClean(registry);
  });
});

describe('retention: pull times', () => {
  it('are kept across a restart: mostRecentlyPulledCount keeps the tag and the untagged manifest pulled last (a HEAD is no pull)', async () => {
    const root = path.join(makeTempDir(), 'root');
    const repo = 'pulls/app';
    // First without GC: the pushes and pulls happen before any rule looks.
    const first = await start({ root, storage: { gc: false } });
    const [t1, t2, t3] = [await pushAfter(first.url, repo, 't1'), await pushAfter(first.url, repo, 't2'), await pushAfter(first.url, repo, 't3')];
    const [u1, u2] = [makeImage(), makeImage()];
    for (const image of [u1, u2]) await pushAfter(first.url, repo, image.digest, image);
    assert.equal((await fetch(`${first.url}/v2/${repo}/manifests/t1`)).status, 200);
    assert.equal((await fetch(`${first.url}/v2/${repo}/manifests/${u1.digest}`)).status, 200);
    await instantAfter(Date.now());
    assert.equal(await manifestStatus(first.url, repo, 't2'), 200);
    await stop(first);

    const retention = { delay: '1s', policies: [{ repositories: ['pulls/*'], keepTags: [{ mostRecentlyPulledCount: 1 }], keepUntagged: { mostRecentlyPulledCount: 1 } }] };
    const registry = await start({ root, storage: { ...GC_FAST, retention } });
    const { url } = registry;
    await eventually(async () => (await tagsOf(url, repo)).join() === 't1', 'only t1 to stay tagged', 10_000);
    // t2 and t3 are untagged now, beside u1 and u2: only u1, pulled, is kept.
    for (const image of [t2, t3, u2]) {
      await eventually(async () => (await manifestStatus(url, repo, image.digest)) === 404, 'an untagged manifest never pulled to go', 10_000);
      assert.equal(manifestRemoval(registry, repo, image.digest)?.reason, 'deleteUntagged');
    }
    assert.equal(await manifestStatus(url, repo, u1.digest), 200);
    assert.equal(await manifestStatus(url, repo, t1.digest), 200);
    assert.equal(manifestRemoval(registry, repo, u1.digest), undefined);
    await assertReplayClean(registry);
  });
});

describe('retention: pulls in the event log', () => {
  it('are appended in batches, one ManifestsPulled per repository with a count per manifest, never one event per pull; a HEAD is no pull', async () => {
    const root = path.join(makeTempDir(), 'root');
    const first = await start({ root, storage: { gc: false } });
    const repo = 'batched/app';
    const image = await pushAfter(first.url, repo, 'v1');
    const PULLS = 20;
    for (let i = 0; i < PULLS; i++) {
      const res = await fetch(`${first.url}/v2/${repo}/manifests/${i % 2 === 0 ? 'v1' : image.digest}`, { headers: { Accept: ACCEPT_MANIFESTS } });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      assert.equal(await manifestStatus(first.url, repo, 'v1'), 200);
    }
    assert.equal((await fetch(`${first.url}/v2/${repo}/manifests/missing`)).status, 404);
    // Shutdown appends what is pending.
    await stop(first);

    const registry = await start({ root, storage: { gc: false } });
    const batches = eventsOf(registry, repo, 'ManifestsPulled');
    assert.ok(batches.length >= 1 && batches.length < PULLS, `${batches.length} events for ${PULLS} pulls`);
    assert.equal(
      batches.flatMap((batch) => batch.pulls).reduce((sum, pull) => sum + pull.count, 0),
      PULLS,
    );
    for (const batch of batches) {
      assert.equal(batch.identity, SYSTEM_PULLS_IDENTITY);
      assert.deepEqual(batch.pulls.map((pull) => pull.digest), [image.digest]);
      assert.ok(Date.parse((batch.pulls[0] as { time: string }).time) <= Date.parse(batch.time));
    }
    // The pulls are in the read model, rebuilt the same by replay.
    assert.equal(new RegistryStateQueries(registry.running.store.db).lastPulls(repo).get(image.digest), Date.parse((batches.at(-1)?.pulls[0] as { time: string }).time));
    await assertReplayClean(registry);
  });
});

describe('retention: untagged manifests', () => {
  it('keeps them with deleteUntagged false, keeps what keepUntagged keeps, removes the rest after delay', async () => {
    const retention = {
      delay: '1s',
      policies: [
        { repositories: ['keepall/**'], deleteUntagged: false },
        { repositories: ['newest/**'], keepUntagged: { mostRecentlyPushedCount: 1 } },
      ],
    };
    const registry = await start({ storage: { ...GC_FAST, retention } });
    const { url } = registry;
    const untagged = makeImage();
    assert.equal((await pushImage(url, 'keepall/app', untagged.digest, untagged)).status, 201);
    const detagged = await pushAfter(url, 'keepall/app', 'x');
    assert.equal((await fetch(`${url}/v2/keepall/app/manifests/x`, { method: 'DELETE' })).status, 202);
    const newest: TestImage[] = [];
    for (let i = 0; i < 3; i++) {
      const image = makeImage();
      newest.push(await pushAfter(url, 'newest/app', image.digest, image));
    }

    for (const image of newest.slice(0, 2)) {
      await eventually(async () => (await manifestStatus(url, 'newest/app', image.digest)) === 404, 'an older untagged manifest to go', 10_000);
      const removal = manifestRemoval(registry, 'newest/app', image.digest);
      assert.equal(removal?.reason, 'deleteUntagged');
      assert.equal(removal?.policy, 'storage.retention.policies.1');
      const pushed = eventsOf(registry, 'newest/app', 'ManifestPushed').find((event) => event.digest === image.digest) as StoredEvent;
      assert.ok(Date.parse((removal as StoredEvent).time) >= Date.parse(pushed.time) + DELAY_MS, 'not removed before delay');
    }
    assert.equal(await manifestStatus(url, 'newest/app', (newest[2] as TestImage).digest), 200);

    await eventually(async () => Date.now() > tagSetAt(registry, 'keepall/app', 'x') + DELAY_MS, 'both to be older than delay', 5000);
    await sweepOf(registry, 'keepall/app');
    for (const image of [untagged, detagged]) assert.equal(await manifestStatus(url, 'keepall/app', image.digest), 200);
    assert.equal(eventsOf(registry, 'keepall/app', 'ManifestDeleted').length, 0);
    await assertReplayClean(registry);
  });
});

describe('retention: keepUntagged by time', () => {
  it('keeps an untagged manifest while pushed within pushedWithin, or pulled within pulledWithin; removes it after', async () => {
    const WINDOW_MS = 2500;
    const retention = {
      delay: '1s',
      policies: [
        { repositories: ['pushwin/**'], keepUntagged: { pushedWithin: `${WINDOW_MS}ms` } },
        { repositories: ['pullwin/**'], keepUntagged: { pulledWithin: `${WINDOW_MS}ms` } },
      ],
    };
    const registry = await start({ storage: { ...GC_FAST, retention } });
    const { url } = registry;
    const pushed = makeImage();
    assert.equal((await pushImage(url, 'pushwin/app', pushed.digest, pushed)).status, 201);
    const pulled = makeImage();
    assert.equal((await pushImage(url, 'pullwin/app', pulled.digest, pulled)).status, 201);
    const pulledAlone = makeImage();
    assert.equal((await pushImage(url, 'pullwin/app', pulledAlone.digest, pulledAlone)).status, 201);

    // Pull one of the two over and over until the other, never pulled, goes.
    const pulls: number[] = [];
    await eventually(
      async () => {
        pulls.push(Date.now());
        const res = await fetch(`${url}/v2/pullwin/app/manifests/${pulled.digest}`, { headers: { Accept: ACCEPT_MANIFESTS } });
        await res.arrayBuffer();
        return res.status !== 200 || manifestRemoval(registry, 'pullwin/app', pulledAlone.digest) !== undefined;
      },
      'the manifest never pulled to go',
      15_000,
    );
    assert.ok(manifestRemoval(registry, 'pullwin/app', pulledAlone.digest), 'the manifest never pulled went first');
    await eventually(async () => manifestRemoval(registry, 'pullwin/app', pulled.digest) !== undefined, 'the pulled manifest to go once no longer pulled', 15_000);
    const removedPulled = Date.parse((manifestRemoval(registry, 'pullwin/app', pulled.digest) as StoredEvent).time);
    assert.ok(removedPulled >= Math.max(...pulls.filter((at) => at < removedPulled)) + WINDOW_MS, 'kept while pulled within the window');

    await eventually(async () => manifestRemoval(registry, 'pushwin/app', pushed.digest) !== undefined, 'the untagged manifest to go once out of its window', 15_000);
    const pushedAt = Date.parse((eventsOf(registry, 'pushwin/app', 'ManifestPushed').find((e) => e.digest === pushed.digest) as StoredEvent).time);
    const removal = manifestRemoval(registry, 'pushwin/app', pushed.digest) as EventOf<'ManifestDeleted'>;
    assert.ok(Date.parse(removal.time) >= pushedAt + WINDOW_MS, 'kept while pushed within the window');
    assert.equal(removal.reason, 'deleteUntagged');
    assert.equal(removal.policy, 'storage.retention.policies.0');
    await assertReplayClean(registry);
  });
});

describe('retention: referrers', () => {
  it('removes referrers whose subject is gone with deleteReferrers, in turn; keeps them without it, as zot does', async () => {
    const retention = { delay: '1s', policies: [{ repositories: ['refs/**'], deleteReferrers: true }] };
    const registry = await start({ storage: { ...GC_FAST, retention } });
    const { url } = registry;
    const chain = async (repo: string): Promise<{ subject: TestImage; referrer: TestImage; second: TestImage }> => {
      const subject = await pushAfter(url, repo, 'subject');
      const referrer = makeImage({ subject: descriptor(OCI_MANIFEST, subject.manifestBytes), artifactType: 'application/example.sbom' });
      assert.equal((await pushImage(url, repo, referrer.digest, referrer)).status, 201);
      const second = makeImage({ subject: descriptor(OCI_MANIFEST, referrer.manifestBytes), artifactType: 'application/example.signature' });
      assert.equal((await pushImage(url, repo, second.digest, second)).status, 201);
      return { subject, referrer, second };
    };
    const deleting = await chain('refs/app');
    const keeping = await chain('plain/app');
    // A referrer pushed before its subject (the spec allows it) waits for it.
    const early = makeImage({ subject: descriptor(OCI_MANIFEST, makeImage().manifestBytes), artifactType: 'application/example.sbom' });
    assert.equal((await pushImage(url, 'plain/app', early.digest, early)).status, 201);
    // A referrer whose subject is present is never a candidate.
    const present = await pushAfter(url, 'refs/app', 'other');
    const attached = makeImage({ subject: descriptor(OCI_MANIFEST, present.manifestBytes), artifactType: 'application/example.sbom' });
    assert.equal((await pushImage(url, 'refs/app', attached.digest, attached)).status, 201);
    for (const [repo, images] of [['refs/app', deleting], ['plain/app', keeping]] as const) {
      assert.equal((await fetch(`${url}/v2/${repo}/manifests/${images.subject.digest}`, { method: 'DELETE' })).status, 202);
    }

    for (const image of [deleting.referrer, deleting.second]) {
      await eventually(async () => (await manifestStatus(url, 'refs/app', image.digest)) === 404, 'a referrer without subject to go', 10_000);
      const removal = manifestRemoval(registry, 'refs/app', image.digest);
      assert.equal(removal?.reason, 'deleteReferrers');
      assert.equal(removal?.policy, 'storage.retention.policies.0');
    }
    assert.equal(await manifestStatus(url, 'refs/app', attached.digest), 200);

    await eventually(async () => Date.now() > Date.parse(eventsOf(registry, 'plain/app', 'ManifestDeleted')[0]?.time ?? '') + DELAY_MS, 'delay to pass', 5000);
    await sweepOf(registry, 'plain/app');
    for (const image of [keeping.referrer, keeping.second, early]) assert.equal(await manifestStatus(url, 'plain/app', image.digest), 200);
    await assertReplayClean(registry);
  });
});

describe('retention: dryRun', () => {
  it('logs each tag, manifest and blob it would remove, with its policy, and removes nothing at all', async () => {
    const { logger, lines } = capturedLogger();
    const retention = { dryRun: true, delay: '1s', policies: [{ repositories: ['dry/**'], keepTags: [{ patterns: ['^keep$'] }] }] };
    const registry = await start({ storage: { ...GC_FAST, retention } }, logger);
    const { url } = registry;
    const repo = 'dry/app';
    const kept = await pushAfter(url, repo, 'keep');
    const dropped = await pushAfter(url, repo, 'drop');
    const untagged = makeImage();
    assert.equal((await pushImage(url, repo, untagged.digest, untagged)).status, 201);
    const loose = await pushBlob(url, repo, randomBytes(100));

    const logged = (message: string, match: (line: Record<string, unknown>) => boolean) => lines().filter((line) => line.msg === message && match(line));
    await eventually(async () => logged('retention would remove a tag', (line) => line.tag === 'drop').length > 0, 'the tag it would remove', 10_000);
    const tagLine = logged('retention would remove a tag', (line) => line.tag === 'drop')[0];
    assert.equal(tagLine?.policy, 'storage.retention.policies.0');
    assert.equal(tagLine?.digest, dropped.digest);
    assert.equal(tagLine?.dryRun, true);
    // Its manifest would be left untagged and go too; so would the untagged one, once old enough.
    for (const image of [dropped, untagged]) {
      await eventually(async () => logged('retention would remove a manifest', (line) => line.digest === image.digest).length > 0, 'a manifest it would remove', 10_000);
      const line = logged('retention would remove a manifest', (l) => l.digest === image.digest)[0];
      assert.equal(line?.reason, 'deleteUntagged');
      assert.equal(line?.policy, 'storage.retention.policies.0');
    }
    assert.equal(logged('retention would remove a tag', (line) => line.tag === 'keep').length, 0);
    assert.equal(logged('retention would remove a manifest', (line) => line.digest === kept.digest).length, 0);
    await eventually(async () => logged('garbage collection would remove a blob', (line) => line.digest === loose).length > 0, 'the blob it would remove', 10_000);
    assert.equal(await blobStatus(url, repo, loose), 200);

    assert.deepEqual(await tagsOf(url, repo), ['drop', 'keep']);
    for (const image of [kept, dropped, untagged]) {
      assert.equal(await manifestStatus(url, repo, image.digest), 200);
      assert.equal(await blobStatus(url, repo, sha256(image.layers[0] as Buffer)), 200);
    }
    const removals = ['TagRemoved', 'ManifestDeleted', 'BlobDeleted', 'OrphanRemoved', 'UploadExpired', 'RepositoryRemoved'] as const;
    for (const type of removals) assert.equal(eventsOf(registry, repo, type).length, 0, `no ${type}`);
    await assertReplayClean(registry);
  });
});

describe('retention: subPaths', () => {
  it('applies each root its own retention, naming the policy by its path', async () => {
    const subRoot = path.join(makeTempDir(), 'sub');
    const storage = {
      ...GC_FAST,
      retention: { policies: [{ repositories: ['**'], keepTags: [{ patterns: ['^main-'] }] }] },
      subPaths: {
        '/sub': { rootDirectory: subRoot, ...GC_FAST, retention: { policies: [{ repositories: ['sub/**'], keepTags: [{ patterns: ['^sub-'] }] }] } },
      },
    };
    const registry = await start({ storage });
    const { url } = registry;
    for (const repo of ['app', 'sub/app']) {
      await pushAfter(url, repo, 'main-1');
      await pushAfter(url, repo, 'sub-1');
    }
    await eventually(async () => (await tagsOf(url, 'app')).join() === 'main-1', "the default root's policy", 10_000);
    await eventually(async () => (await tagsOf(url, 'sub/app')).join() === 'sub-1', "the subPath's policy", 10_000);
    assert.equal(tagRemovals(registry, 'app').get('sub-1')?.policy, 'storage.retention.policies.0');
    assert.equal(tagRemovals(registry, 'sub/app').get('main-1')?.policy, 'storage.subPaths./sub.retention.policies.0');
    await assertReplayClean(registry);
  });
});

describe('retention: push times of a log written before tags had one', () => {
  it('fills them from the events on open, so replay finds no drift', async () => {
    const root = path.join(makeTempDir(), 'root');
    const first = await start({ root, storage: { gc: false } });
    await pushAfter(first.url, 'old/app', 'v1');
    await pushAfter(first.url, 'old/app', 'v2');
    await stop(first);
    const db = new Database(eventLogFile(root));
    db.exec('ALTER TABLE tags DROP COLUMN set_at');
    db.close();

    const registry = await start({ root, storage: { gc: false } });
    await assertReplayClean(registry);
  });
});
