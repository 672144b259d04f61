// The audit writer over a real event store (SQLite in memory) and a real file: a line is a pure
// function of its event, a crash between a line and its checkpoint writes nothing twice, a line
// cut by a crash is closed, and a file replaced by a shorter one is filled in from the log. The
// expected lines are written out; only the time (and the seq) is taken from the event log.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { describe, it } from 'node:test';
import { ActorRunner } from '../../src/actors/actor.js';
import { AuditWriter, auditLine, auditRecord } from '../../src/actors/audit-writer.js';
import { Checkpoints } from '../../src/actors/checkpoints.js';
import { openEventStore } from '../../src/app.js';
import { readEvents, type EventStore } from '../../src/events/store.js';
import type { EventBody, StoredEvent } from '../../src/events/types.js';
import { makeTempDir } from '../helpers/registry.js';

const silent = pino({ level: 'silent' });
const context = { identity: 'alice', client: '10.0.0.7', requestId: 'req-1' };
const digest = (n: number): string => `sha256:${String(n).repeat(64).slice(0, 64)}`;

function blob(n: number): EventBody {
  return { type: 'BlobPushed', repo: 'unit/app', digest: digest(n), size: n };
}

function newStore(): EventStore {
  return openEventStore(new Database(':memory:')).store;
}

async function runWriter(store: EventStore, file: string): Promise<{ writer: AuditWriter; runner: ActorRunner }> {
  const checkpoints = new Checkpoints(store.db);
  const writer = new AuditWriter(file, store, checkpoints, silent);
  await writer.open();
  const runner = new ActorRunner(writer, store, checkpoints, silent);
  runner.start();
  await runner.caughtUp(store.head());
  return { writer, runner };
}

async function stopWriter({ writer, runner }: { writer: AuditWriter; runner: ActorRunner }): Promise<void> {
  runner.stop();
  await writer.close();
}

function timeOf(store: EventStore, seq: number): string {
  const event = Array.from(readEvents(store.db)).find((e) => e.seq === seq);
  assert.ok(event, `event ${seq} is in the log`);
  return event.time;
}

/** The line of blob(seq), appended as event `seq` (every test here appends blob(n) as seq n). */
function blobLine(store: EventStore, seq: number): string {
  return (
    `{"level":"info","clientIP":"10.0.0.7","subject":"alice","action":"PUT","object":"/v2/unit/app/blobs/${digest(seq)}",` +
    `"status":201,"seq":${seq},"event":"BlobPushed","repository":"unit/app","digest":"${digest(seq)}","size":${seq},` +
    `"outcome":"success","requestId":"req-1","time":"${timeOf(store, seq)}","message":"HTTP API Audit"}\n`
  );
}

/** The lines of blob(1) … blob(through). */
function blobLines(store: EventStore, through = store.head()): string {
  return Array.from({ length: through }, (_, i) => blobLine(store, i + 1)).join('');
}

describe('audit lines', () => {
  it('are the same for an event as appended and as read back from the log', async () => {
    const store = newStore();
    const appended: StoredEvent[] = [
      ...(await store.append([blob(1)], context)),
      ...(await store.append([{ type: 'BlobMounted', repo: 'unit/copy', digest: digest(1), size: 1, from: 'unit/app' }], context)),
      ...(await store.append([{ type: 'TagSet', repo: 'unit/app', tag: 'v1', digest: digest(2), previous: digest(3) }], { identity: 'system:import' })),
      ...(await store.append([{ type: 'WriteRefused', repo: '', method: 'PUT', path: '/v2/Bad/manifests/v1', status: 400, code: 'NAME_INVALID' }], context)),
    ];
    const readBack = Array.from(readEvents(store.db));
    const [d1, d2, d3] = [digest(1), digest(2), digest(3)];
    const time = appended.map((event) => event.time);
    const expected = [
      `{"level":"info","clientIP":"10.0.0.7","subject":"alice","action":"PUT","object":"/v2/unit/app/blobs/${d1}","status":201,"seq":1,"event":"BlobPushed","repository":"unit/app","digest":"${d1}","size":1,"outcome":"success","requestId":"req-1","time":"${time[0]}","message":"HTTP API Audit"}\n`,
      `{"level":"info","clientIP":"10.0.0.7","subject":"alice","action":"POST","object":"/v2/unit/copy/blobs/uploads/?mount=${d1}&from=unit/app","status":201,"seq":2,"event":"BlobMounted","repository":"unit/copy","digest":"${d1}","from":"unit/app","size":1,"outcome":"success","requestId":"req-1","time":"${time[1]}","message":"HTTP API Audit"}\n`,
      `{"level":"info","clientIP":"","subject":"system:import","action":"PUT","object":"/v2/unit/app/manifests/v1","status":201,"seq":3,"event":"TagSet","repository":"unit/app","digest":"${d2}","tag":"v1","previous":"${d3}","outcome":"success","time":"${time[2]}","message":"HTTP API Audit"}\n`,
      `{"level":"info","clientIP":"10.0.0.7","subject":"alice","action":"PUT","object":"/v2/Bad/manifests/v1","status":400,"seq":4,"event":"WriteRefused","repository":"","code":"NAME_INVALID","count":1,"outcome":"refused","requestId":"req-1","time":"${time[3]}","message":"HTTP API Audit"}\n`,
    ];
    assert.deepEqual(appended.map(auditLine), expected);
    assert.deepEqual(readBack.map(auditLine), expected);
  });

  it("name the request that makes the change, with zot's field names", async () => {
    const store = newStore();
    const [tag] = await store.append([{ type: 'TagSet', repo: 'unit/app', tag: 'v1', digest: digest(2), previous: digest(3) }], context);
    assert.ok(tag);
    assert.deepEqual(auditRecord(tag), {
      level: 'info',
      clientIP: '10.0.0.7',
      subject: 'alice',
      action: 'PUT',
      object: '/v2/unit/app/manifests/v1',
      status: 201,
      seq: 1,
      event: 'TagSet',
      repository: 'unit/app',
      digest: digest(2),
      tag: 'v1',
      previous: digest(3),
      outcome: 'success',
      requestId: 'req-1',
      time: tag.time,
      message: 'HTTP API Audit',
    });
  });

  it('carry an event type this version does not know as its action', async () => {
    const future = { type: 'SyncedImage', repo: 'mirror/alpine', digest: digest(4), seq: 9, version: 1, time: '2024-01-01T00:00:00.000Z', identity: 'system:sync' };
    const record = auditRecord(future as unknown as StoredEvent);
    assert.deepEqual(
      [record.action, record.object, record.status, record.event, record.digest, record.outcome, record.subject, record.clientIP],
      ['SyncedImage', '/v2/mirror/alpine', undefined, 'SyncedImage', digest(4), 'success', 'system:sync', ''],
    );
  });
});

describe('audit writer', () => {
  it('writes every event of the log from its checkpoint, then live ones', async () => {
    const store = newStore();
    await store.append([blob(1), blob(2)], context);
    const file = path.join(makeTempDir(), 'nested', 'audit.log');
    const running = await runWriter(store, file);
    await store.append([blob(3)], context);
    await running.runner.caughtUp(3);
    await stopWriter(running);
    assert.equal(fs.readFileSync(file, 'utf8'), blobLines(store));
  });

  it('does not write twice a line that was written before a crash moved the checkpoint', async () => {
    const store = newStore();
    await store.append([blob(1), blob(2), blob(3)], context);
    const file = path.join(makeTempDir(), 'audit.log');
    // Lines 1..3 are in the file, but the checkpoint says only 1 was handled.
    fs.writeFileSync(file, blobLines(store));
    new Checkpoints(store.db).commit('audit-writer', 1, () => undefined);
    const running = await runWriter(store, file);
    await store.append([blob(4)], context);
    await running.runner.caughtUp(4);
    await stopWriter(running);
    assert.equal(fs.readFileSync(file, 'utf8'), blobLines(store));
  });

  it('starts on a new line after a line cut by a crash', async () => {
    const store = newStore();
    await store.append([blob(1), blob(2)], context);
    const file = path.join(makeTempDir(), 'audit.log');
    const cut = blobLine(store, 2).slice(0, 40);
    fs.writeFileSync(file, blobLines(store, 1) + cut);
    new Checkpoints(store.db).commit('audit-writer', 1, () => undefined);
    await stopWriter(await runWriter(store, file));
    assert.equal(fs.readFileSync(file, 'utf8'), `${blobLine(store, 1)}${cut}\n${blobLine(store, 2)}`);
  });

  it('fills in a replacement file that holds fewer lines than it wrote', async () => {
    const store = newStore();
    const file = path.join(makeTempDir(), 'audit.log');
    const running = await runWriter(store, file);
    await store.append([blob(1), blob(2), blob(3), blob(4)], context);
    await running.runner.caughtUp(4);
    // A rebuild that read the log at seq 2 renames its file over ours.
    fs.writeFileSync(`${file}.rebuilt`, blobLines(store, 2));
    fs.renameSync(`${file}.rebuilt`, file);
    await store.append([blob(5)], context);
    await running.runner.caughtUp(5);
    await stopWriter(running);
    assert.equal(fs.readFileSync(file, 'utf8'), blobLines(store));
  });

  it('reopens by name on request (SIGHUP) and writes the next line to the new file', async () => {
    const store = newStore();
    const file = path.join(makeTempDir(), 'audit.log');
    const running = await runWriter(store, file);
    await store.append([blob(1)], context);
    await running.runner.caughtUp(1);
    fs.renameSync(file, `${file}.1`);
    await running.writer.reopen();
    assert.equal(fs.readFileSync(file, 'utf8'), '', 'the new file exists at once, empty');
    await store.append([blob(2)], context);
    await running.runner.caughtUp(2);
    await stopWriter(running);
    assert.equal(fs.readFileSync(`${file}.1`, 'utf8') + fs.readFileSync(file, 'utf8'), blobLines(store));
  });
});
