// Refused writes are aggregated: a flood of bad writes adds a handful of WriteRefused events (one
// per identity, repository and code at once, then one per interval carrying a `count`), the counts
// add up to the refusals, the audit log, `zot audit` and the metrics show them, and a client
// cycling through repository names cannot grow the log or the recorder's memory either.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { auditLine } from '../../src/actors/audit-writer.js';
import { openEventStore } from '../../src/app.js';
import { readEvents } from '../../src/events/store.js';
import type { EventOf, StoredEvent } from '../../src/events/types.js';
import { RefusalRecorder, type RefusedWrite } from '../../src/registry/refusals.js';
import { eventLogFile } from '../../src/storage/layout.js';
import { eventually } from '../helpers/http.js';
import { makeImage, OCI_MANIFEST } from '../helpers/oci.js';
import { byLabel, scrape } from '../helpers/prometheus.js';
import { makeTempDir, runZot, startTestRegistry, testConfig, writeConfig, type TestRegistry } from '../helpers/registry.js';

type Refused = EventOf<'WriteRefused'>;

interface AuditLine {
  event: string;
  repository: string;
  code?: string;
  count?: number;
  firstTime?: string;
  lastTime?: string;
  folded?: boolean;
  subject: string;
}

/** The event log's bytes on disk: the database and its write-ahead log. */
function logBytes(root: string): number {
  const file = eventLogFile(root);
  return [file, `${file}-wal`].reduce((sum, name) => sum + (fs.existsSync(name) ? fs.statSync(name).size : 0), 0);
}

function refusedEvents(root: string): Refused[] {
  const db = new Database(eventLogFile(root), { readonly: true });
  try {
    return Array.from(readEvents(db, { type: 'WriteRefused' })) as Refused[];
  } finally {
    db.close();
  }
}

const countOf = (event: { count?: number }): number => event.count ?? 1;

/** Refusals per `repo code`, summed over their events' counts. */
function tally(events: readonly { repo?: string; repository?: string; code?: string; count?: number }[]): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const event of events) {
    const key = `${event.repo ?? event.repository ?? ''} ${event.code ?? ''}`;
    sums[key] = (sums[key] ?? 0) + countOf(event);
  }
  return sums;
}

/** Sends `requests` with `parallel` requests in flight at a time, over fetch's keep-alive pool. */
async function flood(requests: readonly (() => Promise<Response>)[], parallel = 16): Promise<Record<number, number>> {
  const statuses: Record<number, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < requests.length) {
        const send = requests[next++] as () => Promise<Response>;
        const res = await send();
        await res.arrayBuffer();
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      }
    }),
  );
  return statuses;
}

describe('refused writes: a flood through HTTP', () => {
  let registry: TestRegistry;
  let auditFile: string;
  let headBefore = 0;
  let headAfterFlood = 0;
  let bytesBefore = 0;
  let bytesAfterFlood = 0;
  let metrics: Record<string, number> = {};
  let stopped = false;
  const missingBlobs = makeImage().manifestBytes;

  before(async () => {
    auditFile = path.join(makeTempDir(), 'audit.log');
    // An interval longer than the test: every count lands in the event appended at shutdown.
    registry = await startTestRegistry(
      { log: { level: 'error', audit: auditFile }, extensions: { metrics: { enable: true, prometheus: { path: '/metrics' } } } },
      { refusalIntervalMs: 10 * 60_000 },
    );
    const { url } = registry;
    // One refusal of each kind first, so the log's pages for them exist before measuring.
    await (await fetch(`${url}/v2/warmup/app/manifests/v1`, { method: 'PUT', headers: { 'Content-Type': OCI_MANIFEST }, body: 'not json' })).arrayBuffer();
    await registry.running.actorsCaughtUp();
    headBefore = registry.running.store.head();
    bytesBefore = logBytes(registry.root);
    const put = (repo: string, body: string) => () =>
      fetch(`${url}/v2/${repo}/manifests/v1`, { method: 'PUT', headers: { 'Content-Type': OCI_MANIFEST }, body });
    const requests = [
      ...Array.from({ length: 1000 }, () => put('flood/a', 'not json')),
      ...Array.from({ length: 500 }, () => put('flood/b', 'not json')),
      ...Array.from({ length: 500 }, () => put('flood/a', missingBlobs)),
    ];
    assert.deepEqual(await flood(requests), { 400: 2000 });
    await registry.running.actorsCaughtUp();
    headAfterFlood = registry.running.store.head();
    bytesAfterFlood = logBytes(registry.root);
    metrics = byLabel(await scrape(`${url}/metrics`), 'zot_refused_writes_total', 'code');
    await registry.stop();
    stopped = true;
  });

  after(async () => {
    if (!stopped) await registry.stop();
  });

  it('adds one event per repository and code while the flood lasts, and a bounded number of bytes', async () => {
    assert.equal(headAfterFlood - headBefore, 3, 'the first refusal of each (identity, repository, code) is recorded at once');
    // Before aggregation, 2,000 refusals added 2,000 events and megabytes; three events (and the actors' checkpoints after them) are a few dozen pages.
    assert.ok(bytesAfterFlood - bytesBefore <= 256 * 1024, `the log grew by ${bytesAfterFlood - bytesBefore} bytes`);
  });

  it('appends the counted rest at shutdown; the counts add up to the refusals, per repository and code', async () => {
    const events = refusedEvents(registry.root).filter((event) => event.repo !== 'warmup/app');
    assert.ok(events.length <= 6, `${events.length} events`);
    assert.deepEqual(tally(events), { 'flood/a MANIFEST_INVALID': 1000, 'flood/b MANIFEST_INVALID': 500, 'flood/a MANIFEST_BLOB_UNKNOWN': 500 });
    for (const event of events) {
      assert.equal(event.identity, 'anonymous');
      assert.equal(event.path, `/v2/${event.repo}/manifests/v1`);
      assert.equal(event.folded, undefined, 'three keys are far below the bound');
      if (event.count === undefined) continue;
      assert.ok(event.count > 1);
      assert.ok(event.firstTime !== undefined && event.lastTime !== undefined && event.firstTime <= event.lastTime, JSON.stringify(event));
      assert.ok(event.lastTime <= event.time);
    }
  });

  it('the audit log and `zot audit` show the counts', async () => {
    const lines = fs
      .readFileSync(auditFile, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as AuditLine)
      .filter((line) => line.event === 'WriteRefused' && line.repository !== 'warmup/app');
    assert.ok(lines.every((line) => typeof line.count === 'number' && line.count >= 1));
    assert.deepEqual(tally(lines), { 'flood/a MANIFEST_INVALID': 1000, 'flood/b MANIFEST_INVALID': 500, 'flood/a MANIFEST_BLOB_UNKNOWN': 500 });

    const configPath = writeConfig(testConfig({ root: registry.root, log: { level: 'error', audit: auditFile } }));
    const json = await runZot(['audit', configPath, '--json', '--type', 'WriteRefused', '--repo', 'flood/*']);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.stdout, `${fs.readFileSync(auditFile, 'utf8').split('\n').filter((line) => line.includes('"repository":"flood/')).join('\n')}\n`);
    const table = await runZot(['audit', configPath, '--type', 'WriteRefused', '--repo', 'flood/b']);
    assert.equal(table.code, 0, table.stderr);
    const rows = table.stdout.split('\n').filter((line) => line !== '');
    assert.equal(rows.length, 2, table.stdout);
    assert.match(rows[1] ?? '', /MANIFEST_INVALID\s+count=499$/);
  });

  it('the metrics count every refusal', async () => {
    assert.equal(metrics.MANIFEST_INVALID, 1501);
    assert.equal(metrics.MANIFEST_BLOB_UNKNOWN, 500);
  });
});

describe('refused writes: intervals and bounds through HTTP', () => {
  const badPut = (url: string, repo: string): Promise<Response> =>
    fetch(`${url}/v2/${repo}/manifests/v1`, { method: 'PUT', headers: { 'Content-Type': OCI_MANIFEST }, body: 'not json' });

  it('appends the counted refusals when the interval ends, and forgets a key idle for a whole interval', async () => {
    const registry = await startTestRegistry({}, { refusalIntervalMs: 300 });
    try {
      for (let i = 0; i < 5; i++) assert.equal((await badPut(registry.url, 'tick/app')).status, 400);
      // While the registry runs: the first at once, the other four in the event(s) of the interval(s)
      // they fell in (one, unless this machine is slow enough for an interval to end between two).
      await eventually(async () => refusedEvents(registry.root).reduce((sum, event) => sum + countOf(event), 0) === 5, 'the counted refusals to be appended', 5000);
      const events = refusedEvents(registry.root);
      assert.equal(events[0]?.count, undefined);
      assert.ok(events.length >= 2 && events.slice(1).every((event) => (event.count ?? 0) >= 1 && event.firstTime !== undefined), JSON.stringify(events));
      // Two intervals with no refusal: the key is gone, and the next refusal is appended at once.
      await new Promise((resolve) => setTimeout(resolve, 800));
      assert.equal(refusedEvents(registry.root).length, events.length, 'nothing is appended for an idle key');
      assert.equal((await badPut(registry.url, 'tick/app')).status, 400);
      const later = refusedEvents(registry.root);
      assert.equal(later.length, events.length + 1);
      assert.equal(later.at(-1)?.count, undefined);
    } finally {
      await registry.stop();
    }
  });

  it('a client cycling through repository names is folded past the key bound', async () => {
    const registry = await startTestRegistry({}, { refusalIntervalMs: 10 * 60_000 });
    const names = Array.from({ length: 300 }, (_, i) => `cycle/r${i}`);
    try {
      assert.deepEqual(await flood(names.map((name) => () => badPut(registry.url, name)), 4), { 400: 300 });
    } finally {
      await registry.stop();
    }
    const events = refusedEvents(registry.root);
    const distinct = events.filter((event) => event.folded === undefined);
    const folded = events.filter((event) => event.folded === true);
    assert.equal(distinct.length, 32, 'one identity holds at most 32 keys of its own');
    assert.ok(distinct.every((event) => event.count === undefined && event.repo.startsWith('cycle/r')));
    assert.equal(new Set(distinct.map((event) => event.repo)).size, 32);
    assert.equal(folded.length, 2, 'the rest: one folded event at once, one with the count at shutdown');
    assert.ok(folded.every((event) => event.repo === '' && event.identity === 'anonymous'));
    assert.equal(events.reduce((sum, event) => sum + countOf(event), 0), 300);
  });
});

describe('refused writes: the recorder keeps identities apart and bounds its keys', () => {
  const write = (repo: string, code = 'MANIFEST_INVALID'): RefusedWrite => ({ repo, method: 'PUT', path: `/v2/${repo}/manifests/v1`, status: 400, code });
  const silent = pino({ level: 'silent' });

  function newRecorder(): { recorder: RefusalRecorder; events: () => Refused[] } {
    const { store } = openEventStore(new Database(':memory:'));
    const recorder = new RefusalRecorder(store, { intervalMs: 10 * 60_000, logger: silent });
    return { recorder, events: () => Array.from(store.read({ type: 'WriteRefused' })) as Refused[] };
  }

  it('counts each identity, repository and code on its own key', async () => {
    const { recorder, events } = newRecorder();
    for (const identity of ['alice', 'bob']) {
      for (let i = 0; i < 3; i++) await recorder.record(write('app'), { identity, client: '10.0.0.1' });
      await recorder.record(write('app', 'NAME_UNKNOWN'), { identity });
      await recorder.record(write('lib'), { identity });
    }
    assert.equal(events().length, 6);
    await recorder.stop();
    const byKey: Record<string, number> = {};
    for (const event of events()) byKey[`${event.identity} ${event.repo} ${event.code}`] = (byKey[`${event.identity} ${event.repo} ${event.code}`] ?? 0) + countOf(event);
    assert.deepEqual(byKey, {
      'alice app MANIFEST_INVALID': 3,
      'alice app NAME_UNKNOWN': 1,
      'alice lib MANIFEST_INVALID': 1,
      'bob app MANIFEST_INVALID': 3,
      'bob app NAME_UNKNOWN': 1,
      'bob lib MANIFEST_INVALID': 1,
    });
    assert.equal(events().length, 8, 'one more event per key that counted more than its first refusal');
  });

  it('past every bound, many identities fold into one system key; the counts still add up', async () => {
    const { recorder, events } = newRecorder();
    const identities = Array.from({ length: 600 }, (_, i) => `user${i}`);
    for (const identity of identities) for (let r = 0; r < 5; r++) await recorder.record(write(`repo${r}`), { identity });
    await recorder.stop();
    const all: StoredEvent[] = events();
    assert.equal(all.reduce((sum, event) => sum + countOf(event as Refused), 0), 3000);
    // 1,024 keys of their own, at most 256 folded keys, and one system key for the rest.
    assert.ok(all.length <= 1024 + 2 * 256 + 2, `${all.length} events`);
    assert.ok(all.some((event) => event.identity === 'system:refusals'));
  });
});

describe('refused writes: audit lines', () => {
  it('carry count 1 for an event without one (as every event written before aggregation), and the count, times and fold of an aggregated one', async () => {
    const { store } = openEventStore(new Database(':memory:'));
    const request = { identity: 'anonymous', client: '10.0.0.7', requestId: 'req-9' };
    const [single] = await store.append([{ type: 'WriteRefused', repo: 'a/b', method: 'PUT', path: '/v2/a/b/manifests/v1', status: 400, code: 'MANIFEST_INVALID', reference: 'v1' }], request);
    const [aggregated] = await store.appendEach([
      {
        body: {
          type: 'WriteRefused',
          repo: '',
          method: 'DELETE',
          path: '/v2/x/y/manifests/v2',
          status: 404,
          code: 'MANIFEST_UNKNOWN',
          reference: 'v2',
          count: 41,
          firstTime: '2025-01-01T00:00:00.000Z',
          lastTime: '2025-01-01T00:00:09.000Z',
          folded: true,
        },
        context: request,
      },
    ]);
    assert.ok(single && aggregated);
    assert.equal(
      auditLine(single),
      `{"level":"info","clientIP":"10.0.0.7","subject":"anonymous","action":"PUT","object":"/v2/a/b/manifests/v1","status":400,"seq":1,"event":"WriteRefused","repository":"a/b","reference":"v1","code":"MANIFEST_INVALID","count":1,"outcome":"refused","requestId":"req-9","time":"${single.time}","message":"HTTP API Audit"}\n`,
    );
    assert.equal(
      auditLine(aggregated),
      `{"level":"info","clientIP":"10.0.0.7","subject":"anonymous","action":"DELETE","object":"/v2/x/y/manifests/v2","status":404,"seq":2,"event":"WriteRefused","repository":"","reference":"v2","code":"MANIFEST_UNKNOWN","count":41,"firstTime":"2025-01-01T00:00:00.000Z","lastTime":"2025-01-01T00:00:09.000Z","folded":true,"outcome":"refused","requestId":"req-9","time":"${aggregated.time}","message":"HTTP API Audit"}\n`,
    );
    // Read back from the log, the lines are the same.
    assert.deepEqual(Array.from(readEvents(store.db)).map(auditLine), [auditLine(single), auditLine(aggregated)]);
  });
});
