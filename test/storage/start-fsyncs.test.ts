// The first start on an empty root creates the event log's schema in one transaction and syncs
// none of it before it answers: `zot serve` runs under strace from spawn until it answers GET /v2/
// and stops. The log's WAL is synced a few times, not once per CREATE statement (about twenty),
// and no sync of the log's files comes before the first connection; the first push's answer
// comes after the syncs of the log's file, its WAL and their directory, which make the schema and
// the new files durable with the push's events (src/events/store.ts).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import * as path from 'node:path';
import { pushBlob, sha256 } from '../helpers/oci.js';
import { makeTempDir, runZot, spawnRegistry } from '../helpers/registry.js';
import { spawnTraced, stopTraced } from '../helpers/strace.js';

/** The WAL at stop and the checkpoint of the close: a handful, whatever the tables. */
const MAX_WAL_SYNCS = 6;

/** A sync of a file or directory of the event log (`strace -y` names each descriptor's path). */
const LOG_SYNC = /\b(?:fsync|fdatasync)\(\d+<[^>]*\/\.zot-ts(?:\/events\.db(?:-wal)?)?>/;

describe('fsyncs of a first start', () => {
  it('create the event log schema in one commit', async (t: TestContext) => {
    const traced = await spawnTraced(t, ['-y', '-e', 'trace=fsync,fdatasync']);
    if (!traced) return;
    const { registry, traceFile } = traced;
    await stopTraced(registry.child);
    const walSyncs = fs
      .readFileSync(traceFile, 'utf8')
      .split('\n')
      .filter((line) => /\b(?:fsync|fdatasync)\(\d+<[^>]*events\.db-wal>\)\s+= 0/.test(line));
    assert.ok(walSyncs.length > 0, 'the trace shows the event log synced');
    assert.ok(walSyncs.length <= MAX_WAL_SYNCS, `${walSyncs.length} syncs of the WAL:\n${walSyncs.join('\n')}`);
  });

  it('sync nothing of the event log before the first answer; the first push syncs its file, WAL and directory before its own', async (t: TestContext) => {
    const traced = await spawnTraced(t, ['-y', '-s', '64', '-e', 'trace=fsync,fdatasync,accept4,write,writev']);
    if (!traced) return;
    const { registry, traceFile } = traced;
    try {
      await pushBlob(registry.url, 'first/push', 'the first event of the log');
    } finally {
      await stopTraced(registry.child);
    }
    const trace = fs.readFileSync(traceFile, 'utf8').split('\n');
    const firstAccept = trace.findIndex((line) => line.includes('accept4(') || line.includes('<... accept4 resumed>'));
    assert.ok(firstAccept >= 0, 'the registry accepted a connection');
    const syncsBefore = trace.slice(0, firstAccept).filter((line) => LOG_SYNC.test(line));
    assert.deepEqual(syncsBefore, [], 'syncs of the event log before the registry answered');
    const created = trace.findIndex((line) => /\bwritev?\(/.test(line) && line.includes('HTTP/1.1 201'));
    assert.ok(created > firstAccept, 'the blob push was answered 201');
    const syncedBeforeAnswer = trace.slice(firstAccept, created).filter((line) => LOG_SYNC.test(line));
    for (const file of ['/.zot-ts/events.db>', '/.zot-ts/events.db-wal>', '/.zot-ts>']) {
      assert.ok(
        syncedBeforeAnswer.some((line) => line.includes(file)),
        `${file.slice(0, -1)} synced before the 201:\n${syncedBeforeAnswer.join('\n') || 'no sync of the log'}`,
      );
    }
  });

  it('leave, killed right after the first answer, a log that the next start opens and appends to', async () => {
    const root = path.join(makeTempDir('zot-ts-first-kill-'), 'root');
    const first = await spawnRegistry({ root });
    await first.kill();
    const second = await spawnRegistry({ root });
    try {
      const blob = Buffer.from('the first blob, after a kill -9 of the first start');
      assert.equal(await pushBlob(second.url, 'after/kill', blob), sha256(blob));
      const pulled = await fetch(`${second.url}/v2/after/kill/blobs/${sha256(blob)}`);
      assert.ok(Buffer.from(await pulled.arrayBuffer()).equals(blob));
    } finally {
      await second.stop();
    }
    const replay = await runZot(['replay', second.configPath]);
    assert.equal(replay.code, 0, replay.stdout + replay.stderr);
  });
});
