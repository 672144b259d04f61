// A root whose event log was written before the projections lost their redundant index on
// repo_blobs (digest), next to the one on (digest, stored_in) that serves every query by digest:
// the next start drops it, and what the queries by digest answer over HTTP is unchanged.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { eventLogFile } from '../../src/storage/layout.js';
import { assertReplayClean } from '../helpers/http.js';
import { pushBlob } from '../helpers/oci.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';

function indexesOf(root: string, table: string): string[] {
  const db = new Database(eventLogFile(root), { readonly: true });
  try {
    return db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name NOT LIKE 'sqlite_%' ORDER BY name").pluck().all(table) as string[];
  } finally {
    db.close();
  }
}

describe('an event log from before repo_blobs lost its index on digest alone', () => {
  const registries: TestRegistry[] = [];
  after(async () => {
    for (const registry of registries) await registry.stop();
  });

  it('loses the index at the next start, and still finds blobs by digest (automatic mount, holders)', async () => {
    const root = path.join(makeTempDir(), 'root');
    const first = await startTestRegistry({ root, storage: { gc: false, dedupe: true } });
    const digest = await pushBlob(first.url, 'library/base', Buffer.from('a layer the old root holds '.repeat(64)));
    await first.stop();
    // The old schema: the index every log had until now.
    const db = new Database(eventLogFile(root));
    db.exec('CREATE INDEX IF NOT EXISTS repo_blobs_by_digest ON repo_blobs (digest)');
    db.close();
    assert.deepEqual(indexesOf(root, 'repo_blobs'), ['repo_blobs_by_digest', 'repo_blobs_by_store']);

    const registry = await startTestRegistry({ root, storage: { gc: false, dedupe: true } });
    registries.push(registry);
    assert.deepEqual(indexesOf(root, 'repo_blobs'), ['repo_blobs_by_store'], 'the redundant index is dropped on open');
    // Found by digest alone: mounted without `from`, then held by two repositories.
    const mounted = await fetch(`${registry.url}/v2/team/app/blobs/uploads/?mount=${digest}`, { method: 'POST' });
    assert.equal(mounted.status, 201, await mounted.clone().text());
    assert.deepEqual(registry.running.queries.blobHolders(digest).map((holder) => holder.repo), ['library/base', 'team/app']);
    assert.equal(registry.running.queries.repositoryHoldingBlob(digest) !== undefined, true);
    assert.deepEqual(registry.running.queries.sharedDigests(), [digest]);
    const pulled = await fetch(`${registry.url}/v2/team/app/blobs/${digest}`);
    assert.equal(pulled.status, 200);
    await pulled.arrayBuffer();
    await assertReplayClean(registry);
  });
});
