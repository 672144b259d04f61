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
import { openStorageRoots } from '../../src/storage/roots.js';
import { assertReplayClean } from '../helpers/http.js';
import { makeImage, pushBlob, pushImage } from '../helpers/oci.js';
import { runZot, startTestRegistry, writeConfig, type TestRegistry } from '../helpers/registry.js';

function blobFile(root: string, repo: string, digest: string): string {
  return path.join(root, repo, 'blobs', 'sha256', digest.slice('sha256:'.length));
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
    const db = openLiveLog(registry.root);
    assert.ok(db);
    try {
      const queries = new RegistryStateQueries(db);
      const roots = await openStorageRoots(registry.config.storage, { createDirectories: false });
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
