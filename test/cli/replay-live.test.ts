// `zot replay` on the root of a running registry: it reads the projections in one snapshot and
// storage as it is, so a removal the registry commits while the check runs (GC, a DELETE: the
// event first, then the file) leaves a file missing that the snapshot still names. The check
// looks again once the snapshot is over: such a removal is a note, a file lost without one is
// drift. The race is made deterministic here by holding the snapshot open across a DELETE.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openLiveLog } from '../../src/cli/events.js';
import { compareStorage, recheckMissing } from '../../src/registry/storage-check.js';
import { RegistryStateQueries } from '../../src/projections/registry-state.js';
import { openStorageRoots, type StorageRoots } from '../../src/storage/roots.js';
import { assertReplayClean, eventually } from '../helpers/http.js';
import { makeImage, pushBlob, pushImage, sha256 } from '../helpers/oci.js';
import { runZot, startTestRegistry, writeConfig, type TestRegistry } from '../helpers/registry.js';

function blobFile(root: string, repo: string, digest: string): string {
  return path.join(root, repo, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

/** What `zot replay` reads of a running registry: its live log (no snapshot begun yet) and storage. */
async function openCheck(registry: TestRegistry): Promise<{ db: NonNullable<ReturnType<typeof openLiveLog>>; queries: RegistryStateQueries; roots: StorageRoots }> {
  const db = openLiveLog(registry.root);
  assert.ok(db);
  return { db, queries: new RegistryStateQueries(db), roots: await openStorageRoots(registry.config.storage, { createDirectories: false }) };
}

describe('replay against a running registry', () => {
  let registry: TestRegistry;

  before(async () => {
    registry = await startTestRegistry({ storage: { dedupe: false, gc: false } });
  });
  after(async () => {
    await registry?.stop();
  });

  it('a blob the registry removes during the check is a note; a file lost without a removal is drift', async () => {
    const removed = await pushBlob(registry.url, 'live/app', 'a blob deleted through the API while replay holds its snapshot');
    const lost = await pushBlob(registry.url, 'live/app', 'a blob whose file is lost behind the registry');
    const { db, queries, roots } = await openCheck(registry);
    try {
      db.exec('BEGIN');
      assert.equal(queries.blobSize('live/app', removed) !== undefined, true, 'the snapshot starts with both blobs');
      // While the snapshot is open: the registry commits a removal, and a file goes without one.
      const deleted = await fetch(`${registry.url}/v2/live/app/blobs/${removed}`, { method: 'DELETE' });
      assert.equal(deleted.status, 202);
      assert.equal(fs.existsSync(blobFile(registry.root, 'live/app', removed)), false);
      fs.rmSync(blobFile(registry.root, 'live/app', lost));
      const inSnapshot = await compareStorage(roots, queries, () => undefined, false);
      db.exec('COMMIT');
      assert.deepEqual(inSnapshot.missing.map((item) => item.digest).sort(), [removed, lost].sort(), 'the snapshot names both');

      const rechecked = await recheckMissing(roots, queries, inSnapshot.missing);
      assert.deepEqual(rechecked.drift, [`live/app: blob ${lost} is missing from storage`]);
      assert.deepEqual(rechecked.notes, ['1 blob(s) or manifest(s) removed by the registry while the check ran (not drift)']);
    } finally {
      db.close();
    }
  });

  it('zot replay, through the CLI, still reports the file lost without a removal as drift', async () => {
    await assert.rejects(assertReplayClean(registry), /drift: live\/app: blob sha256:[0-9a-f]{64} is missing from storage\n/);
  });
});

describe('replay of index.json files once the actors caught up', () => {
  let registry: TestRegistry;

  before(async () => {
    registry = await startTestRegistry();
  });
  after(async () => {
    await registry?.stop();
  });

  // The index.json writer stores its checkpoint lazily (up to 1 s late): actorsCaughtUp stores it,
  // or replay would skip the index.json files as not written yet and compare nothing.
  it('compares the index.json files right after actorsCaughtUp, and reports one that differs', async () => {
    const res = await pushImage(registry.url, 'indexed/app', 'v1', makeImage({ layers: 1, layerBytes: 100 }));
    await res.arrayBuffer();
    assert.equal(res.status, 201);
    await registry.running.actorsCaughtUp();
    const config = writeConfig(registry.config);
    const clean = await runZot(['replay', config]);
    assert.equal(clean.code, 0, clean.stdout);
    assert.doesNotMatch(clean.stdout, /index\.json files were not compared/);
    fs.writeFileSync(path.join(registry.root, 'indexed', 'app', 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [] }));
    const drift = await runZot(['replay', config]);
    assert.equal(drift.code, 1);
    assert.match(drift.stdout, /drift: indexed\/app: index\.json differs from the tags and manifests in the log/);
  });
});

describe('replay while GC removes an empty repository', () => {
  let registry: TestRegistry;

  before(async () => {
    registry = await startTestRegistry({ storage: { gc: true, dedupe: false, gcDelay: '200ms', gcInterval: '100ms' } });
  });
  after(async () => {
    await registry?.stop();
  });

  it('an index.json gone with its repository during the check is a note; one lost without a removal is drift', async () => {
    // A repository holding a manifest has an index.json (one holding blobs alone has none yet).
    const goneImage = makeImage({ layers: 1, layerBytes: 64 });
    assert.equal((await pushImage(registry.url, 'gone/app', 'v1', goneImage)).status, 201);
    const kept = await pushImage(registry.url, 'kept/app', 'v1', makeImage({ layers: 1, layerBytes: 64 }));
    assert.equal(kept.status, 201);
    await registry.running.actorsCaughtUp();
    const { db, queries, roots } = await openCheck(registry);
    try {
      db.exec('BEGIN');
      assert.equal(queries.repositoryExists('gone/app'), true, 'the snapshot starts with the repository');
      // While the snapshot is open: the manifest and blobs go, GC removes the empty repository,
      // and an index.json goes behind the registry's back.
      assert.equal((await fetch(`${registry.url}/v2/gone/app/manifests/${goneImage.digest}`, { method: 'DELETE' })).status, 202);
      for (const blob of [goneImage.config, ...goneImage.layers]) {
        assert.equal((await fetch(`${registry.url}/v2/gone/app/blobs/${sha256(blob)}`, { method: 'DELETE' })).status, 202);
      }
      await eventually(async () => !fs.existsSync(path.join(registry.root, 'gone', 'app')), 'GC to remove gone/app', 10_000);
      fs.rmSync(path.join(registry.root, 'kept', 'app', 'index.json'));
      const inSnapshot = await compareStorage(roots, queries, () => undefined, true);
      db.exec('COMMIT');
      assert.deepEqual(inSnapshot.missingIndexes.sort(), ['gone/app', 'kept/app'], 'the snapshot finds both index.json files missing');

      const rechecked = await recheckMissing(roots, queries, inSnapshot.missing, inSnapshot.missingIndexes);
      assert.deepEqual(rechecked.drift, ['kept/app: index.json is missing or unreadable']);
      assert.ok(rechecked.notes.includes('1 repository(ies) removed by the registry while the check ran (not drift)'), rechecked.notes.join('; '));
    } finally {
      db.close();
    }
  });
});
