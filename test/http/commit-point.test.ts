// The append is the commit point: an event and its projection rows commit together or not at all.
// A projection statement is made to fail after the events of a manifest push were inserted (a
// trigger on the tags table, added through a second connection to the registry's SQLite file):
// the push answers 500, and neither event, nor the manifest, is left behind.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { after, before, describe, it } from 'node:test';
import { assertReplayClean, expectOciError } from '../helpers/http.js';
import { makeImage, pushBlob, pushManifest } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

describe('a projection statement failing after the events were inserted', () => {
  const repo = 'commit/point';
  const image = makeImage({ layers: 2 });
  let registry: TestRegistry;
  let db: Database.Database;

  before(async () => {
    registry = await startTestRegistry();
    await pushBlob(registry.url, repo, image.config);
    for (const layer of image.layers) await pushBlob(registry.url, repo, layer);
    db = new Database(path.join(registry.root, '.zot-ts', 'events.db'));
    // TagSet's projection row is written after the ManifestPushed and TagSet rows and the manifest's rows.
    db.exec(`
      CREATE TRIGGER refuse_poisoned_tag BEFORE INSERT ON tags WHEN NEW.tag = 'poisoned'
      BEGIN SELECT RAISE(ABORT, 'injected projection failure'); END
    `);
  });
  after(async () => {
    db.close();
    await registry.stop();
  });

  it('rolls back the whole append: a 500, no event, no manifest, and replay is clean', async () => {
    const head = db.prepare('SELECT MAX(seq) FROM events').pluck().get() as number;
    await expectOciError(await pushManifest(registry.url, repo, 'poisoned', image.manifestBytes), 500, 'UNKNOWN');

    assert.deepEqual(db.prepare('SELECT type FROM events WHERE seq > ?').pluck().all(head), [], 'the events table holds neither event');
    assert.equal(db.prepare('SELECT COUNT(*) FROM manifests WHERE repo = ?').pluck().get(repo), 0);
    await expectOciError(await fetch(`${registry.url}/v2/${repo}/manifests/${image.digest}`), 404, 'MANIFEST_UNKNOWN');
    await expectOciError(await fetch(`${registry.url}/v2/${repo}/manifests/poisoned`), 404, 'MANIFEST_UNKNOWN');
    await assertReplayClean(registry);

    db.exec('DROP TRIGGER refuse_poisoned_tag');
    const retry = await pushManifest(registry.url, repo, 'poisoned', image.manifestBytes);
    assert.equal(retry.status, 201, await retry.text());
    assert.deepEqual(db.prepare('SELECT type FROM events WHERE seq > ? ORDER BY seq').pluck().all(head), ['ManifestPushed', 'TagSet']);
    await assertReplayClean(registry);
  });
});
