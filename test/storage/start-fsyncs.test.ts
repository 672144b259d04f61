// The first start on an empty root creates the event log's schema in one transaction: `zot serve`
// runs under strace from spawn until it answers GET /v2/ and stops, and the trace must show the
// log's WAL synced a few times, not once per CREATE statement (about twenty).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { spawnTraced, stopTraced } from '../helpers/strace.js';

/** The schema's commit, the actors' connection, the checkpoint at stop: a handful, whatever the tables. */
const MAX_WAL_SYNCS = 6;

describe('fsyncs of a first start', () => {
  it('create the event log schema in one commit', async (t: TestContext) => {
    const traced = await spawnTraced(t, ['-y', '-e', 'trace=fsync,fdatasync']);
    if (!traced) return;
    const { registry, traceFile, root } = traced;
    await stopTraced(registry.child);
    const walSyncs = fs
      .readFileSync(traceFile, 'utf8')
      .split('\n')
      .filter((line) => /\b(?:fsync|fdatasync)\(\d+<[^>]*events\.db-wal>\)\s+= 0/.test(line));
    assert.ok(walSyncs.length > 0, 'the trace shows the event log synced');
    assert.ok(walSyncs.length <= MAX_WAL_SYNCS, `${walSyncs.length} syncs of the WAL:\n${walSyncs.join('\n')}`);
  });
});
