// An actor whose side effect fails stalls and retries the same event until it succeeds; it never
// skips it. Faults are injected into real parts: the audit file's path turned into a directory,
// index.json writes of a real filesystem driver failing, a trigger in the real SQLite file that
// fails the metrics actor's checkpoint. While the stall lasts, /metrics shows the actor's lag
// growing and /readyz answers 503 (/livez stays 200); after recovery nothing is lost or doubled.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { StoredEvent } from '../../src/events/types.js';
import { eventLogFile } from '../../src/storage/layout.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { assertReplayClean, eventually } from '../helpers/http.js';
import { makeImage, pushBlob, pushImage, sha256, type TestImage } from '../helpers/oci.js';
import { byLabel, scrape } from '../helpers/prometheus.js';
import { makeTempDir, startTestRegistry, type TestConfigOptions, type TestRegistry } from '../helpers/registry.js';

/** Long enough for an actor to be past the stall bound of /readyz (5 s) and for one more retry. */
const STALL_TIMEOUT_MS = 30_000;
const METRICS_ON: TestConfigOptions = { extensions: { metrics: { enable: true } } };

async function lagOf(registry: TestRegistry, actor: string): Promise<number> {
  return byLabel(await scrape(`${registry.url}/metrics`), 'zot_actor_lag_events', 'actor')[actor] ?? -1;
}

async function status(registry: TestRegistry, probe: string): Promise<number> {
  return (await fetch(`${registry.url}${probe}`)).status;
}

/** Waits for the stall to show: the actor's lag at least `lag`, /readyz 503, /livez still 200. */
async function assertStalled(registry: TestRegistry, actor: string, lag: number): Promise<void> {
  await eventually(async () => (await lagOf(registry, actor)) >= lag, `${actor} lag to reach ${lag}`);
  await eventually(async () => (await status(registry, '/readyz')) === 503, '/readyz to answer 503 while stalled', STALL_TIMEOUT_MS);
  assert.equal(await status(registry, '/livez'), 200, 'a stalled actor does not make the process unlive');
  assert.equal(await status(registry, '/startupz'), 200, 'start-up finished before the stall');
  assert.ok((await lagOf(registry, actor)) >= lag, 'the lag stays while the stall lasts');
}

async function assertRecovered(registry: TestRegistry, actor: string): Promise<void> {
  await eventually(async () => (await status(registry, '/readyz')) === 200, '/readyz to answer 200 after recovery', STALL_TIMEOUT_MS);
  await registry.running.actorsCaughtUp();
  assert.equal(await lagOf(registry, actor), 0);
}

function events(registry: TestRegistry): StoredEvent[] {
  return Array.from(registry.running.store.read());
}

/** The audit line of a blob pushed by an anonymous client, written out field by field. */
function blobPushedLine(event: StoredEvent, repo: string, data: string): string {
  const digest = sha256(data);
  assert.equal(event.type, 'BlobPushed');
  return (
    `{"level":"info","clientIP":"${event.client}","subject":"anonymous","action":"PUT","object":"/v2/${repo}/blobs/${digest}",` +
    `"status":201,"seq":${event.seq},"event":"BlobPushed","repository":"${repo}","digest":"${digest}","size":${data.length},` +
    `"outcome":"success","requestId":"${event.requestId}","time":"${event.time}","message":"HTTP API Audit"}\n`
  );
}

describe('a stalled actor', () => {
  it('audit writer: a transient write failure loses no line, in order, after recovery and after a restart', async () => {
    const auditFile = path.join(makeTempDir(), 'audit.log');
    const options: TestConfigOptions = { ...METRICS_ON, log: { level: 'error', audit: auditFile } };
    const pushed = ['one', 'two', 'three', 'four'];
    let registry = await startTestRegistry(options);
    try {
      await pushBlob(registry.url, 'stall/audit', pushed[0] as string);
      await registry.running.actorsCaughtUp();
      // The audit file's path becomes a directory: every write of seq 2 fails until it is put back.
      fs.renameSync(auditFile, `${auditFile}.away`);
      fs.mkdirSync(auditFile);
      await pushBlob(registry.url, 'stall/audit', pushed[1] as string);
      await eventually(async () => (await lagOf(registry, 'audit-writer')) === 1, 'the audit writer to lag by one event');
      await pushBlob(registry.url, 'stall/audit', pushed[2] as string);
      await assertStalled(registry, 'audit-writer', 2);
      assert.equal(await lagOf(registry, 'metrics'), 0, 'the other actors go on');

      fs.rmdirSync(auditFile);
      fs.renameSync(`${auditFile}.away`, auditFile);
      await assertRecovered(registry, 'audit-writer');
      const log = events(registry);
      assert.equal(fs.readFileSync(auditFile, 'utf8'), log.map((event, i) => blobPushedLine(event, 'stall/audit', pushed[i] as string)).join(''));
    } finally {
      await registry.stop();
    }

    registry = await startTestRegistry({ ...options, root: registry.root });
    try {
      await pushBlob(registry.url, 'stall/audit', pushed[3] as string);
      await registry.running.actorsCaughtUp();
      const log = events(registry);
      assert.deepEqual(
        log.map((event) => event.seq),
        [1, 2, 3, 4],
      );
      assert.equal(fs.readFileSync(auditFile, 'utf8'), log.map((event, i) => blobPushedLine(event, 'stall/audit', pushed[i] as string)).join(''));
    } finally {
      await registry.stop();
    }
  });

  it('a registry shut down while an actor is failing closes; the next start writes what was left', { timeout: 60_000 }, async () => {
    const auditFile = path.join(makeTempDir(), 'audit.log');
    const options: TestConfigOptions = { ...METRICS_ON, log: { level: 'error', audit: auditFile } };
    let registry = await startTestRegistry(options);
    try {
      await pushBlob(registry.url, 'stall/close', 'one');
      await registry.running.actorsCaughtUp();
      fs.renameSync(auditFile, `${auditFile}.away`);
      fs.mkdirSync(auditFile);
      await pushBlob(registry.url, 'stall/close', 'two');
      await eventually(async () => (await lagOf(registry, 'audit-writer')) === 1, 'the audit writer to lag by one event');
    } finally {
      // Does not wait for the failing actor (that would never end); its checkpoint stays put.
      await registry.stop();
    }
    fs.rmdirSync(auditFile);
    fs.renameSync(`${auditFile}.away`, auditFile);
    registry = await startTestRegistry({ ...options, root: registry.root });
    try {
      await registry.running.actorsCaughtUp();
      const log = events(registry);
      assert.equal(fs.readFileSync(auditFile, 'utf8'), log.map((event, i) => blobPushedLine(event, 'stall/close', ['one', 'two'][i] as string)).join(''));
    } finally {
      await registry.stop();
    }
  });

  it('index.json writer: a failing write is retried and the file ends up right', async () => {
    let failing = false;
    let failed = 0;
    const failIndexWrites = <T extends StorageDriver>(driver: T): T =>
      new Proxy(driver, {
        get: (target, property, receiver) => {
          const value = Reflect.get(target, property, receiver) as unknown;
          if (property !== 'putContent' || typeof value !== 'function') return value;
          return (file: string, content: Buffer | string) => {
            if (failing && file.endsWith('index.json')) {
              failed++;
              return Promise.reject(Object.assign(new Error('injected fault in putContent'), { code: 'EIO' }));
            }
            return (value as StorageDriver['putContent']).call(target, file, content);
          };
        },
      });
    const registry = await startTestRegistry(METRICS_ON, { wrapDriver: failIndexWrites });
    try {
      const first: TestImage = makeImage();
      const second: TestImage = makeImage();
      assert.equal((await pushImage(registry.url, 'stall/index', 'v1', first)).status, 201);
      await registry.running.actorsCaughtUp();
      failing = true;
      // The push is acknowledged: the append is its commit point; index.json follows.
      assert.equal((await pushImage(registry.url, 'stall/index', 'v2', second)).status, 201);
      await assertStalled(registry, 'index-json-writer', 1);
      assert.ok(failed >= 2, `the write was retried (${failed} failed attempts)`);

      failing = false;
      await assertRecovered(registry, 'index-json-writer');
      const onDisk = JSON.parse(fs.readFileSync(path.join(registry.root, 'stall', 'index', 'index.json'), 'utf8')) as unknown;
      const descriptor = (image: TestImage, tag: string): object => ({
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: image.digest,
        size: image.manifestBytes.length,
        annotations: { 'org.opencontainers.image.ref.name': tag },
      });
      const byDigest = [
        [first, 'v1'],
        [second, 'v2'],
      ].sort(([a], [b]) => ((a as TestImage).digest < (b as TestImage).digest ? -1 : 1)) as [TestImage, string][];
      assert.deepEqual(onDisk, { schemaVersion: 2, manifests: byDigest.map(([image, tag]) => descriptor(image, tag)) });
      await assertReplayClean(registry);
    } finally {
      failing = false;
      await registry.stop();
    }
  });

  it('metrics actor: a failed checkpoint commit rolls its figures back with it, and the retry counts once', async () => {
    const registry = await startTestRegistry(METRICS_ON);
    // A second connection to the registry's own database file: a trigger fails every commit of the
    // metrics actor's checkpoint, as a full disk or an I/O error would, until it is dropped.
    const db = new Database(eventLogFile(registry.root));
    db.pragma('busy_timeout = 5000');
    try {
      const first = makeImage({ layers: 1, layerBytes: 300 });
      const second = makeImage({ layers: 2, layerBytes: 200 });
      assert.equal((await pushImage(registry.url, 'stall/metrics', 'v1', first)).status, 201);
      await registry.running.actorsCaughtUp();
      for (const when of ['INSERT', 'UPDATE']) {
        db.exec(`CREATE TRIGGER fail_metrics_${when} BEFORE ${when} ON checkpoints WHEN NEW.name = 'metrics'
                 BEGIN SELECT RAISE(ABORT, 'injected checkpoint failure'); END`);
      }
      assert.equal((await pushImage(registry.url, 'stall/metrics', 'v2', second)).status, 201);
      await assertStalled(registry, 'metrics', 4);
      const stalled = await scrape(`${registry.url}/metrics`);
      const bytes = (image: TestImage): number => image.config.length + image.layers.reduce((n, layer) => n + layer.length, 0) + image.manifestBytes.length;
      assert.deepEqual(byLabel(stalled, 'zot_repo_storage_bytes', 'repo'), { 'stall/metrics': bytes(first) }, 'nothing of the stalled event counted yet');

      for (const when of ['INSERT', 'UPDATE']) db.exec(`DROP TRIGGER fail_metrics_${when}`);
      await assertRecovered(registry, 'metrics');
      const after = await scrape(`${registry.url}/metrics`);
      assert.deepEqual(byLabel(after, 'zot_repo_storage_bytes', 'repo'), { 'stall/metrics': bytes(first) + bytes(second) });
      assert.deepEqual(byLabel(after, 'zot_repo_uploads_total', 'repo'), { 'stall/metrics': 2 });
    } finally {
      db.close();
      await registry.stop();
    }
  });
});
