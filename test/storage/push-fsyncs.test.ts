// A push syncs its bytes once, at the commit: `zot serve` runs under strace while blobs are pushed
// into a repository, and the trace must show each blob's bytes fsynced once, and nothing of a
// session beyond that: no sync of an empty session file when the session opens, nor of the
// directory that holds the sessions. A blob in one request (POST ?digest=) has no session file at
// all: its body goes to a temporary file, synced once and renamed into place; so does the body of a
// closing PUT that is the whole blob, with no closing marker, as the session's file never changes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { sha256 } from '../helpers/oci.js';
import { openSession, pushChunked, withDigest } from '../helpers/http.js';
import { spawnTraced, stopTraced } from '../helpers/strace.js';

const PUSHES = 3;

describe('fsyncs of a push', () => {
  it('sync each blob once, at its commit, and nothing of a session before', async (t: TestContext) => {
    // -y: file descriptors are printed with their paths.
    const traced = await spawnTraced(t, ['-y', '-e', 'trace=fsync,fdatasync,openat,rename,statx,newfstatat']);
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
      for (let i = 0; i < PUSHES; i++) await pushChunked(registry.url, 'chunked', randomBytes(100_000));
      for (let i = 0; i < PUSHES; i++) {
        const data = randomBytes(100_000);
        const done = await fetch(withDigest(await openSession(registry.url, 'whole'), sha256(data)), { method: 'PUT', body: data });
        assert.equal(done.status, 201, await done.text());
      }
    } finally {
      await stopTraced(registry.child);
    }
    const trace = fs.readFileSync(traceFile, 'utf8').split('\n');
    const synced = trace
      // A call another thread interrupted is printed `<unfinished ...>`, its result on a later line.
      .map((line) => /\b(?:fsync|fdatasync)\(\d+<([^>]*)>(?:\)\s+= 0| <unfinished \.\.\.>)/.exec(line)?.[1])
      .filter((file): file is string => file !== undefined);
    const opened = trace.map((line) => /\bopenat\([^"]*"([^"]*)"/.exec(line)?.[1]).filter((file): file is string => file !== undefined);
    // Temporary files (layout files use them too) by where they were renamed to.
    const renamedTo = new Map(
      trace.flatMap((line) => {
        const names = /\brename\("([^"]*)", "([^"]*)"/.exec(line);
        return names ? [[names[1] as string, names[2] as string] as const] : [];
      }),
    );
    for (const repo of ['synced', 'whole']) {
      // The sync may start before the rename (the temporary file's name) or after it (the blob's).
      const blobs = synced.filter((file) => (renamedTo.get(file) ?? file).startsWith(`${root}/${repo}/blobs/sha256/`));
      assert.equal(blobs.length, PUSHES, `${repo}: each body once, in the temporary file renamed into blobs/: ${synced.join(', ')}`);
      assert.equal(new Set(blobs).size, PUSHES, `${repo}: each in a file of its own`);
    }
    assert.deepEqual(
      opened.filter((file) => file.startsWith(`${root}/synced/.uploads/`)),
      [],
      'a POST ?digest= opens no session file',
    );
    const sessionOpens = trace.filter((line) => line.includes(`openat(`) && line.includes(`"${root}/whole/.uploads/`));
    assert.equal(sessionOpens.length, PUSHES, 'one open of each session file');
    assert.ok(sessionOpens.every((line) => line.includes('O_EXCL')), `only to create it: ${sessionOpens.join('\n')}`);
    assert.deepEqual(opened.filter((file) => file.includes('/closing-uploads/')), [], 'and writes no closing marker');
    const sessions = `${root}/chunked/.uploads`;
    // A PATCH opens its session file and takes the size from the open file: no stat by path (the
    // closing PUT's one is all).
    const statsByPath = trace.filter((line) => /\b(?:statx|newfstatat)\(AT_FDCWD/.test(line) && line.includes(`"${sessions}/`));
    assert.equal(statsByPath.length, PUSHES, `one stat by path per chunked session, by its PUT: ${statsByPath.join('\n')}`);
    assert.equal(synced.filter((file) => file.startsWith(`${sessions}/`)).length, PUSHES, `each chunked upload's session file once: ${synced.join(', ')}`);
    assert.deepEqual(synced.filter((file) => file === sessions || file === `${root}/synced/.uploads`), [], 'the sessions directories never');
    assert.ok(synced.some((file) => file.endsWith('events.db-wal')), 'the trace shows the event log synced');
  });
});
