// A push syncs its bytes once, at the commit: `zot serve` runs under strace while blobs are pushed
// in one request each into a repository, and the trace must show each upload file fsynced once
// (by the commit, before the event log's write) and nothing else of the sessions: no sync of an
// empty session file when the session opens, nor of the directory that holds the sessions.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { sha256 } from '../helpers/oci.js';
import { spawnTraced, stopTraced } from '../helpers/strace.js';

const PUSHES = 3;

describe('fsyncs of a push', () => {
  it('sync each upload once, at its commit, and nothing of the session before', async (t: TestContext) => {
    // -y: file descriptors are printed with their paths.
    const traced = await spawnTraced(t, ['-y', '-e', 'trace=fsync,fdatasync']);
    if (!traced) return;
    const { registry, traceFile, root } = traced;
    try {
      for (let i = 0; i < PUSHES; i++) {
        const data = randomBytes(100_000);
        const res = await fetch(`${registry.url}/v2/synced/blobs/uploads/?digest=${sha256(data)}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/octet-stream' },
          body: data,
        });
        assert.equal(res.status, 201, await res.text());
      }
    } finally {
      await stopTraced(registry.child);
    }
    const synced = fs
      .readFileSync(traceFile, 'utf8')
      .split('\n')
      .map((line) => /\b(?:fsync|fdatasync)\(\d+<([^>]*)>\)\s+= 0/.exec(line)?.[1])
      .filter((file): file is string => file !== undefined);
    const uploads = `${root}/synced/.uploads`;
    assert.equal(synced.filter((file) => file.startsWith(`${uploads}/`)).length, PUSHES, `each upload file once: ${synced.join(', ')}`);
    assert.deepEqual(synced.filter((file) => file === uploads), [], 'the sessions directory never');
    assert.ok(synced.some((file) => file.endsWith('events.db-wal')), 'the trace shows the event log synced');
  });
});
