// Given events, then figures: the metrics actor over a real SQLite database, driven by its runner,
// its tables written in the transaction of its checkpoint, and its figures loaded back by the next
// actor on the same database. Then a real registry killed with SIGKILL in the middle of a stream
// of pushes: after the restart its figures are what the event log implies, counted once.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { ActorRunner } from '../../src/actors/actor.js';
import { Checkpoints } from '../../src/actors/checkpoints.js';
import { MetricsActor, METRICS_ACTOR } from '../../src/actors/metrics-actor.js';
import { PrometheusMetrics } from '../../src/actors/prometheus.js';
import { EventStore } from '../../src/events/store.js';
import { SYSTEM_IMPORT_IDENTITY, type EventBody, type EventContext, type StoredEvent } from '../../src/events/types.js';
import { RegistryStateProjection } from '../../src/projections/registry-state.js';
import { eventually } from '../helpers/http.js';
import { makeImage, pushImage } from '../helpers/oci.js';
import { byLabel, parsePrometheusText, scrape, type Exposition } from '../helpers/prometheus.js';
import { runZot, spawnRegistry, type RegistryProcess } from '../helpers/registry.js';
const d = (c: string): string => `sha256:${c.repeat(64)}`;
const client: EventContext = { identity: 'anonymous', client: '127.0.0.1', requestId: 'r1' };
const manifest = (repo: string, digest: string, size: number): EventBody => ({
  type: 'ManifestPushed',
  repo,
  digest,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  size,
  blobs: [],
  manifests: [],
});

describe('metrics actor', () => {
  let db: Database.Database;
  let store: EventStore;
  let checkpoints: Checkpoints;
  let metrics: PrometheusMetrics;
  let actor: MetricsActor;
  let runner: ActorRunner | undefined;

  /** A new actor and runner on the same database, as after a restart. */
  const newActor = (): void => {
    runner?.stop();
    metrics = new PrometheusMetrics(
      { commit: '', binaryType: 'test', goVersion: process.version, version: '1.1.0' },
      { length: () => store.head(), head: () => store.head(), checkpoints: () => [] },
    );
    actor = new MetricsActor(db, metrics);
    runner = new ActorRunner(actor, store, checkpoints, pino({ level: 'silent' }), { firstDelayMs: 5, maxDelayMs: 20, errorAtAttempt: 3 });
    runner.start();
  };
  /** Appends the events and waits for the runner to have handled them. */
  const given = async (context: EventContext, ...bodies: EventBody[]): Promise<void> => {
    await store.append(bodies, context);
    await runner?.caughtUp(store.head());
  };
  const figures = async (): Promise<Exposition> => parsePrometheusText(await metrics.render());

  beforeEach(() => {
    db = new Database(':memory:');
    store = new EventStore(db, [new RegistryStateProjection()]);
    checkpoints = new Checkpoints(db);
    runner = undefined;
    newActor();
  });

  afterEach(() => {
    runner?.stop();
    db.close();
  });

  it('adds the size of what a repository receives and counts manifest pushes as uploads', async () => {
    await given(
      client,
      { type: 'BlobPushed', repo: 'a', digest: d('1'), size: 10 },
      { type: 'BlobPushed', repo: 'a', digest: d('2'), size: 20 },
      manifest('a', d('3'), 5),
      { type: 'BlobMounted', repo: 'b', digest: d('1'), size: 10, from: 'a' },
    );
    const e = await figures();
    assert.deepEqual(byLabel(e, 'zot_repo_storage_bytes', 'repo'), { a: 35, b: 10 });
    assert.deepEqual(byLabel(e, 'zot_repo_uploads_total', 'repo'), { a: 1 });
  });

  it('subtracts the size of what is deleted, read from its own table', async () => {
    await given(client, { type: 'BlobPushed', repo: 'a', digest: d('1'), size: 10 }, manifest('a', d('2'), 5));
    await given(client, { type: 'ManifestDeleted', repo: 'a', digest: d('2') }, { type: 'BlobDeleted', repo: 'a', digest: d('1') });
    const e = await figures();
    assert.deepEqual(byLabel(e, 'zot_repo_storage_bytes', 'repo'), { a: 0 });
    assert.deepEqual(byLabel(e, 'zot_repo_uploads_total', 'repo'), { a: 1 });
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM metrics_content').get() as { n: number }).n, 0);
  });

  it('counts content held both as a blob and as a manifest once, until both are gone', async () => {
    await given(client, { type: 'BlobPushed', repo: 'a', digest: d('1'), size: 7 }, manifest('a', d('1'), 7));
    assert.deepEqual(byLabel(await figures(), 'zot_repo_storage_bytes', 'repo'), { a: 7 });
    await given(client, { type: 'ManifestDeleted', repo: 'a', digest: d('1') });
    assert.deepEqual(byLabel(await figures(), 'zot_repo_storage_bytes', 'repo'), { a: 7 });
    await given(client, { type: 'BlobDeleted', repo: 'a', digest: d('1') });
    assert.deepEqual(byLabel(await figures(), 'zot_repo_storage_bytes', 'repo'), { a: 0 });
  });

  it('gives an imported zot root its bytes but no uploads', async () => {
    await given({ identity: SYSTEM_IMPORT_IDENTITY }, { type: 'BlobPushed', repo: 'z', digest: d('1'), size: 3 }, manifest('z', d('2'), 4));
    const e = await figures();
    assert.deepEqual(byLabel(e, 'zot_repo_storage_bytes', 'repo'), { z: 7 });
    assert.deepEqual(byLabel(e, 'zot_repo_uploads_total', 'repo'), {});
  });

  it('stores its checkpoint with its figures, and the next actor on the database starts from them', async () => {
    await given(client, { type: 'BlobPushed', repo: 'a', digest: d('1'), size: 10 }, manifest('a', d('2'), 5));
    assert.equal(checkpoints.get(METRICS_ACTOR), store.head());
    for (let i = 0; i < 3; i++) actor.recordDownload('a');
    actor.recordDownload('b');
    actor.flushDownloads();
    actor.recordDownload('a');
    actor.stop();

    newActor();
    const e = await figures();
    assert.deepEqual(byLabel(e, 'zot_repo_storage_bytes', 'repo'), { a: 15, b: 0 });
    assert.deepEqual(byLabel(e, 'zot_repo_uploads_total', 'repo'), { a: 1 });
    assert.deepEqual(byLabel(e, 'zot_repo_downloads_total', 'repo'), { a: 4, b: 1 });
    // Nothing pending: a flush adds nothing.
    actor.flushDownloads();
    newActor();
    assert.deepEqual(byLabel(await figures(), 'zot_repo_downloads_total', 'repo'), { a: 4, b: 1 });
  });

  it('leaves the figures and the checkpoint untouched while its writes fail, and counts the event once when they succeed', async () => {
    await given(client, { type: 'BlobPushed', repo: 'a', digest: d('1'), size: 10 });
    const checkpoint = checkpoints.get(METRICS_ACTOR);
    db.exec(`CREATE TRIGGER fail_figures BEFORE UPDATE ON metrics_repos BEGIN SELECT RAISE(ABORT, 'injected failure'); END`);
    await store.append([{ type: 'BlobPushed', repo: 'a', digest: d('2'), size: 20 }], client);
    await runner?.caughtUpOrFailing(store.head());
    assert.equal(checkpoints.get(METRICS_ACTOR), checkpoint);
    assert.equal((db.prepare('SELECT COUNT(*) AS n FROM metrics_content').get() as { n: number }).n, 1, 'the content row rolled back with the figures');
    assert.deepEqual(byLabel(await figures(), 'zot_repo_storage_bytes', 'repo'), { a: 10 });

    db.exec('DROP TRIGGER fail_figures');
    await runner?.caughtUp(store.head());
    assert.equal(checkpoints.get(METRICS_ACTOR), store.head());
    assert.deepEqual(byLabel(await figures(), 'zot_repo_storage_bytes', 'repo'), { a: 30 });
    newActor();
    assert.deepEqual(byLabel(await figures(), 'zot_repo_storage_bytes', 'repo'), { a: 30 }, 'the stored figures agree');
  });
});

/** Uploads and storage bytes per repository as the event log implies them (no deletes happen here). */
function figuresFromLog(events: StoredEvent[]): { uploads: Record<string, number>; bytes: Record<string, number> } {
  const uploads: Record<string, number> = {};
  const bytes: Record<string, number> = {};
  const held = new Set<string>();
  for (const event of events) {
    if (event.type === 'BlobDeleted' || event.type === 'ManifestDeleted') assert.fail(`unexpected ${event.type} in the log`);
    if (event.type !== 'BlobPushed' && event.type !== 'BlobMounted' && event.type !== 'ManifestPushed') continue;
    if (event.type === 'ManifestPushed' && event.identity !== SYSTEM_IMPORT_IDENTITY) uploads[event.repo] = (uploads[event.repo] ?? 0) + 1;
    const key = `${event.repo} ${event.digest}`;
    if (held.has(key)) continue;
    held.add(key);
    bytes[event.repo] = (bytes[event.repo] ?? 0) + event.size;
  }
  return { uploads, bytes };
}

describe('metrics actor across kill -9', () => {
  it('after a SIGKILL in the middle of a stream of pushes, its figures are what the log implies', async () => {
    const options = { extensions: { metrics: { enable: true } } };
    let registry: RegistryProcess = await spawnRegistry(options);
    const root = registry.root;
    try {
      // Pushes from three clients; the kill lands while they are in flight, the metrics actor most
      // likely behind the log head.
      let stopped = false;
      let acknowledged = 0;
      const worker = async (w: number): Promise<void> => {
        for (let n = 0; !stopped; n++) {
          try {
            const res = await pushImage(registry.url, `kill/w${w}`, `t${n}`, makeImage({ layers: 1 + (n % 3), layerBytes: 200 + n }));
            await res.arrayBuffer();
            if (res.status === 201) acknowledged++;
          } catch {
            return;
          }
        }
      };
      const workers = [0, 1, 2].map(worker);
      await eventually(async () => acknowledged >= 9, 'some pushes acknowledged', 30_000);
      stopped = true;
      await registry.kill();
      await Promise.all(workers);

      registry = await spawnRegistry({ ...options, root });
      await eventually(async () => (await scrape(`${registry.url}/metrics`)).samples.some((s) => s.name === 'zot_actor_lag_events' && s.labels.actor === 'metrics' && s.value === 0), 'the metrics actor to catch up');
      const exposition = await scrape(`${registry.url}/metrics`);
      const listed = await runZot(['events', registry.configPath, '--json']);
      assert.equal(listed.code, 0, listed.stderr);
      const events = listed.stdout.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as StoredEvent);
      const expected = figuresFromLog(events);
      assert.ok(Object.keys(expected.uploads).length === 3, 'every client had a push acknowledged');
      assert.deepEqual(byLabel(exposition, 'zot_repo_uploads_total', 'repo'), expected.uploads);
      assert.deepEqual(byLabel(exposition, 'zot_repo_storage_bytes', 'repo'), expected.bytes);
    } finally {
      await registry.stop();
    }
  });
});
