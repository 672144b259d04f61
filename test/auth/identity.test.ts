// Identity everywhere: every event a request causes names who did it and how they authenticated;
// refused writes are WriteRefused events (UNAUTHORIZED, DENIED) under the identity that was
// refused; the audit log and `zot audit --identity` show both. And no secret reaches the logs, at
// debug level, nor the audit file: passwords, Authorization headers, htpasswd hashes.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { startRegistry, type RunningRegistry } from '../../src/app.js';
import { EventStore } from '../../src/events/store.js';
import { readEvents } from '../../src/events/store.js';
import type { StoredEvent } from '../../src/events/types.js';
import { createProjections } from '../../src/projections/index.js';
import { basicAuth, fetchAs, writeHtpasswd } from '../helpers/auth.js';
import { layoutImage, writeLayout } from '../helpers/layout.js';
import { OCI_MANIFEST, makeImage, sha256 } from '../helpers/oci.js';
import { makeTempDir, runZot, testConfig, writeConfig } from '../helpers/registry.js';
import { skopeo, type Skopeo } from '../helpers/skopeo.js';

const PASSWORDS = { alice: 'alice-Pa55-word', mallory: 'mallory-Pa55-word' };
const WRONG_PASSWORD = 'not-alices-Pa55-word';

describe('identity in events, the audit log and zot audit; no secret in the logs', () => {
  let running: RunningRegistry;
  let configPath: string;
  let logFile: string;
  let auditFile: string;
  let htpasswd: string;
  let client: Skopeo;
  let work: string;

  before(async () => {
    work = makeTempDir('zot-ts-identity-');
    htpasswd = writeHtpasswd(path.join(work, 'htpasswd'), PASSWORDS);
    logFile = path.join(work, 'zot.log');
    auditFile = path.join(work, 'audit.log');
    const config = testConfig({
      http: {
        auth: { htpasswd: { path: htpasswd } },
        accessControl: {
          repositories: {
            'team/**': { policies: [{ users: ['alice'], actions: ['read', 'create', 'update', 'delete'] }], defaultPolicy: ['read'] },
          },
        },
      },
      log: { level: 'debug', output: logFile, audit: auditFile },
    });
    configPath = writeConfig(config, work);
    running = await startRegistry(config);
    client = skopeo();
  });

  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await running?.close();
  };

  after(async () => {
    client?.close();
    await close();
  });

  const url = (suffix: string): string => `${running.url}/v2/${suffix}`;

  it('records who did what and how, and what each identity was refused', async () => {
    // alice pushes with skopeo and with plain requests.
    const host = new URL(running.url).host;
    const source = path.join(work, 'image');
    writeLayout(source, [{ manifest: layoutImage({ layers: 1 }), tag: 'v1' }]);
    await client.ok(['copy', '--dest-tls-verify=false', '--dest-creds', `alice:${PASSWORDS.alice}`, `oci:${source}:v1`, `docker://${host}/team/app:v1`]);
    const image = makeImage();
    for (const blob of [image.config, ...image.layers]) {
      const res = await fetchAs('alice', PASSWORDS.alice, url(`team/app/blobs/uploads/?digest=${sha256(blob)}`), { method: 'POST', body: blob });
      assert.equal(res.status, 201);
    }
    const tagged = await fetchAs('alice', PASSWORDS.alice, url('team/app/manifests/v2'), {
      method: 'PUT',
      body: image.manifestBytes,
      headers: { 'Content-Type': OCI_MANIFEST },
    });
    assert.equal(tagged.status, 201);

    // mallory may read team/**, not write: 403, recorded under her name.
    const denied = await fetchAs('mallory', PASSWORDS.mallory, url('team/app/manifests/v2'), { method: 'DELETE' });
    assert.equal(denied.status, 403);
    // No credentials, and a wrong password: 401, recorded as anonymous (no identity was proven).
    assert.equal((await fetch(url('team/app/blobs/uploads/'), { method: 'POST' })).status, 401);
    // (Another repository: refusals of one identity, repository and code may be counted together.)
    const wrong = await fetchAs('alice', WRONG_PASSWORD, url('team/lib/manifests/v2'), { method: 'DELETE' });
    assert.equal(wrong.status, 401);
    await running.actorsCaughtUp();

    const events = Array.from(running.store.read());
    const byAlice = events.filter((event) => event.identity === 'alice');
    assert.ok(byAlice.length >= 4, 'the pushes are recorded under alice');
    for (const event of byAlice) {
      assert.notEqual(event.type, 'WriteRefused');
      assert.equal(event.authMethod, 'htpasswd', `${event.type} says how alice authenticated`);
    }
    assert.ok(byAlice.some((event) => event.type === 'TagSet' && event.repo === 'team/app' && event.tag === 'v2'));

    const refusals = events.filter((event): event is Extract<StoredEvent, { type: 'WriteRefused' }> => event.type === 'WriteRefused');
    const mallorys = refusals.filter((event) => event.identity === 'mallory');
    assert.equal(mallorys.length, 1);
    assert.deepEqual(
      [mallorys[0]?.code, mallorys[0]?.status, mallorys[0]?.method, mallorys[0]?.repo, mallorys[0]?.authMethod],
      ['DENIED', 403, 'DELETE', 'team/app', 'htpasswd'],
    );
    const anonymous = refusals.filter((event) => event.identity === 'anonymous');
    assert.deepEqual(
      anonymous.map((event) => [event.code, event.status, event.method, event.repo, event.authMethod]),
      [
        ['UNAUTHORIZED', 401, 'POST', 'team/app', 'anonymous'],
        ['UNAUTHORIZED', 401, 'DELETE', 'team/lib', 'anonymous'],
      ],
    );

    // The audit file: alice's actions with how she authenticated, mallory's refusal.
    const lines = fs
      .readFileSync(auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { subject: string; authMethod?: string; outcome: string; code?: string; event: string });
    const alices = lines.filter((line) => line.subject === 'alice');
    assert.ok(alices.length >= 4 && alices.every((line) => line.authMethod === 'htpasswd' && line.outcome === 'success'));
    assert.deepEqual(
      lines.filter((line) => line.subject === 'mallory').map((line) => [line.event, line.outcome, line.code, line.authMethod]),
      [['WriteRefused', 'refused', 'DENIED', 'htpasswd']],
    );
    assert.ok(lines.filter((line) => line.subject === 'anonymous').every((line) => line.authMethod === undefined));

    // zot audit --identity: what each one did, and was refused.
    const alice = await runZot(['audit', configPath, '--identity', 'alice', '--json']);
    assert.equal(alice.code, 0, alice.stderr);
    const aliceLines = alice.stdout.trim().split('\n').map((line) => JSON.parse(line) as { subject: string; event: string });
    assert.equal(aliceLines.length, alices.length);
    assert.ok(aliceLines.every((line) => line.subject === 'alice'));
    const mallory = await runZot(['audit', configPath, '--identity', 'mallory']);
    assert.equal(mallory.code, 0, mallory.stderr);
    assert.match(mallory.stdout, /WriteRefused\s+refused\s+mallory\s+127\.0\.0\.1\s+DELETE \/v2\/team\/app\/manifests\/v2\s+403\s+DENIED/);
  });

  it('keeps every secret out of the log (at debug level), the audit file and the event log', async () => {
    // Requests carrying each secret in every place a client puts credentials.
    await fetch(url(''), { headers: { Authorization: basicAuth('alice', WRONG_PASSWORD), Cookie: `session=${PASSWORDS.alice}` } });
    await fetch(url('team/app/tags/list'), { headers: { Authorization: basicAuth('alice', PASSWORDS.alice) } });
    await fetch(url('team/app/tags/list'), { headers: { Authorization: `Bearer ${PASSWORDS.mallory}` } });
    await running.actorsCaughtUp();
    // Closed, so every line is flushed to the files.
    await close();

    const hashes = fs
      .readFileSync(htpasswd, 'utf8')
      .trim()
      .split('\n')
      .map((line) => line.slice(line.indexOf(':') + 1));
    const secrets = [
      ...Object.values(PASSWORDS),
      WRONG_PASSWORD,
      ...Object.entries(PASSWORDS).map(([user, password]) => basicAuth(user, password).slice('Basic '.length)),
      basicAuth('alice', WRONG_PASSWORD).slice('Basic '.length),
      ...hashes,
      // The salt alone, in case a hash were cut.
      ...hashes.map((hash) => hash.slice(7, 29)),
    ];
    const log = fs.readFileSync(logFile, 'utf8');
    assert.match(log, /"level":20/, 'the log is at debug level');
    assert.match(log, /authentication failed/, 'the failed logins are in the log');
    const files: [string, string][] = [
      ['log', log],
      ['audit file', fs.readFileSync(auditFile, 'utf8')],
      ['event log', fs.readFileSync(path.join(running.rootDirectory, '.zot-ts', 'events.db')).toString('latin1')],
    ];
    for (const [name, text] of files) {
      for (const secret of secrets) assert.ok(!text.includes(secret), `the ${name} does not hold a secret (${secret.slice(0, 4)}…)`);
      assert.ok(!/basic [A-Za-z0-9+/=]{8,}/i.test(text), `the ${name} holds no Basic credentials`);
    }
  });
});

describe('events written before authMethod was recorded', () => {
  it('read as anonymous', async () => {
    const dir = makeTempDir('zot-ts-old-log-');
    const file = path.join(dir, 'events.db');
    const old = new Database(file);
    // The events table as the first release made it, without auth_method.
    old.exec(`CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, version INTEGER NOT NULL, time TEXT NOT NULL,
      repo TEXT NOT NULL, digest TEXT, media_type TEXT, size INTEGER, tag TEXT, client TEXT, request_id TEXT, identity TEXT NOT NULL, data TEXT NOT NULL)`);
    old
      .prepare("INSERT INTO events (type, version, time, repo, digest, size, identity, data) VALUES ('BlobPushed', 1, '2024-01-01T00:00:00.000Z', 'old/app', ?, 3, 'anonymous', '{}')")
      .run(`sha256:${'a'.repeat(64)}`);
    old.close();

    const db = new Database(file);
    try {
      const store = new EventStore(db, createProjections());
      const [event] = Array.from(readEvents(db));
      assert.equal(event?.authMethod, 'anonymous');
      const [appended] = await store.append([{ type: 'BlobDeleted', repo: 'old/app', digest: `sha256:${'a'.repeat(64)}` }], { identity: 'alice', authMethod: 'htpasswd' });
      assert.equal(appended?.authMethod, 'htpasswd');
      assert.deepEqual(Array.from(readEvents(db)).map((e) => [e.identity, e.authMethod]), [
        ['anonymous', 'anonymous'],
        ['alice', 'htpasswd'],
      ]);
    } finally {
      db.close();
    }
  });
});
