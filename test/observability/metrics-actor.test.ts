// Given events, then figures: the metrics actor over a real SQLite database, its table written
// with its checkpoint, and its figures loaded back by the next actor on the same database.
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { MetricsActor, METRICS_ACTOR } from '../../src/actors/metrics-actor.js';
import { PrometheusMetrics } from '../../src/actors/prometheus.js';
import { EventStore } from '../../src/events/store.js';
import { SYSTEM_IMPORT_IDENTITY, type EventBody, type EventContext } from '../../src/events/types.js';
import { RegistryStateProjection } from '../../src/projections/registry-state.js';
import { byLabel, parsePrometheusText, type Exposition } from '../helpers/prometheus.js';

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
  let metrics: PrometheusMetrics;
  let actor: MetricsActor;

  const newActor = (): void => {
    metrics = new PrometheusMetrics(
      { commit: '', binaryType: 'test', goVersion: process.version, version: '1.1.0' },
      { length: () => store.head(), head: () => store.head(), checkpoints: () => [] },
    );
    actor = new MetricsActor(db, store, metrics);
  };
  /** Appends the events and hands each to the actor, as its runner would. */
  const given = async (context: EventContext, ...bodies: EventBody[]): Promise<void> => {
    for (const event of store.append(bodies, context)) await actor.handle(event);
  };
  const figures = async (): Promise<Exposition> => parsePrometheusText(await metrics.render());

  beforeEach(() => {
    db = new Database(':memory:');
    db.pragma('synchronous = FULL');
    store = new EventStore(db, [new RegistryStateProjection()]);
    newActor();
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
    // Its own commits skip the fsync; the connection's setting (the log's appends) is put back.
    assert.equal(db.pragma('synchronous', { simple: true }), 2);
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
    assert.equal(store.getCheckpoint(METRICS_ACTOR), store.head());
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

  it('leaves the figures and the checkpoint untouched when its transaction fails', async () => {
    await given(client, { type: 'BlobPushed', repo: 'a', digest: d('1'), size: 10 });
    const checkpoint = store.getCheckpoint(METRICS_ACTOR);
    db.exec('DROP TABLE metrics_content');
    const [event] = store.append([{ type: 'BlobPushed', repo: 'a', digest: d('2'), size: 20 }], client);
    assert.ok(event);
    await assert.rejects(actor.handle(event));
    assert.equal(store.getCheckpoint(METRICS_ACTOR), checkpoint);
    assert.deepEqual(byLabel(await figures(), 'zot_repo_storage_bytes', 'repo'), { a: 10 });
  });
});
