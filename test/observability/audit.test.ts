// The audit log (`log.audit`) of a real registry: one line per action with zot's fields and ours,
// refused writes audited, `zot audit --rebuild-audit-log` equal to the live file byte for byte,
// nothing lost or doubled across a rotation (file moved, SIGHUP), and the lines of a batch of
// events written together.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually, expectOciError, rawRequest } from '../helpers/http.js';
import { makeImage, pushBlob, pushImage, pushManifest, sha256, type TestImage } from '../helpers/oci.js';
import { makeTempDir, runZot, spawnRegistry, startTestRegistry, testConfig, writeConfig, type TestRegistry } from '../helpers/registry.js';
import { stopTraced, straceUnavailable } from '../helpers/strace.js';

interface AuditLine {
  level: string;
  clientIP: string;
  subject: string;
  action: string;
  object: string;
  status?: number;
  seq: number;
  event: string;
  repository: string;
  digest?: string;
  tag?: string;
  reference?: string;
  from?: string;
  previous?: string;
  size?: number;
  code?: string;
  count?: number;
  firstTime?: string;
  lastTime?: string;
  outcome: string;
  requestId?: string;
  time: string;
  message: string;
}

function readLines(file: string): string[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '');
}

function readAudit(file: string): AuditLine[] {
  return readLines(file).map((line) => JSON.parse(line) as AuditLine);
}

async function pushOk(url: string, repo: string, tag: string, image: TestImage = makeImage()): Promise<TestImage> {
  const res = await pushImage(url, repo, tag, image);
  assert.equal(res.status, 201, await res.text());
  return image;
}

/** The one line for `event` (and, when given, `ref`: its tag or digest). */
function lineFor(lines: AuditLine[], event: string, repo: string, ref?: string): AuditLine {
  const found = lines.filter((line) => line.event === event && line.repository === repo && (ref === undefined || line.tag === ref || line.digest === ref));
  assert.equal(found.length, 1, `expected one ${event} line for ${repo} ${ref ?? ''}: ${JSON.stringify(lines, null, 1)}`);
  return found[0] as AuditLine;
}

describe('audit log: one line per action', () => {
  let registry: TestRegistry;
  let auditFile: string;
  let image: TestImage;
  let retagged: TestImage;
  let mounted: string;
  let lines: AuditLine[];

  before(async () => {
    auditFile = path.join(makeTempDir(), 'logs', 'audit.log');
    registry = await startTestRegistry({ log: { level: 'error', audit: auditFile } });
    const { url } = registry;
    image = await pushOk(url, 'audit/app', 'v1');
    retagged = await pushOk(url, 'audit/app', 'v1');
    mounted = sha256(image.config);
    const mount = await fetch(`${url}/v2/audit/copy/blobs/uploads/?mount=${mounted}&from=audit/app`, { method: 'POST' });
    assert.equal(mount.status, 201, await mount.text());
    assert.equal((await fetch(`${url}/v2/audit/copy/blobs/${mounted}`, { method: 'DELETE' })).status, 202);
    assert.equal((await pushManifest(url, 'audit/app', 'v2', retagged.manifestBytes)).status, 201);
    assert.equal((await fetch(`${url}/v2/audit/app/manifests/v2`, { method: 'DELETE' })).status, 202);
    assert.equal((await fetch(`${url}/v2/audit/app/manifests/${image.digest}`, { method: 'DELETE' })).status, 202);
    // Reads change nothing and are not audited, neither answered nor refused.
    assert.equal((await fetch(`${url}/v2/audit/app/manifests/v1`)).status, 200);
    assert.equal((await fetch(`${url}/v2/audit/app/manifests/nope`)).status, 404);
    await registry.running.actorsCaughtUp();
    lines = readAudit(auditFile);
  });

  after(async () => {
    await registry.stop();
  });

  it('writes one line per event, in log order, every line ending in a newline', () => {
    const text = fs.readFileSync(auditFile, 'utf8');
    assert.ok(text.endsWith('\n'));
    assert.equal(lines.length, registry.running.store.head());
    assert.deepEqual(
      lines.map((line) => line.seq),
      lines.map((_, i) => i + 1),
    );
    assert.equal((fs.statSync(auditFile).mode & 0o777).toString(8), '600', 'the audit file is private, as zot makes it');
  });

  it('writes the first push as these four lines (seq, time, client and request id from the event log)', () => {
    const text = fs.readFileSync(auditFile, 'utf8');
    const [config, layer, manifest, tag] = Array.from(registry.running.store.read({ limit: 4 }));
    assert.ok(config && layer && manifest && tag);
    const configDigest = sha256(image.config);
    const layerDigest = sha256(image.layers[0] as Buffer);
    const m = image.digest;
    const expected = [
      `{"level":"info","clientIP":"${config.client}","subject":"anonymous","action":"PUT","object":"/v2/audit/app/blobs/${configDigest}","status":201,"seq":1,"event":"BlobPushed","repository":"audit/app","digest":"${configDigest}","size":${image.config.length},"outcome":"success","requestId":"${config.requestId}","time":"${config.time}","message":"HTTP API Audit"}`,
      `{"level":"info","clientIP":"${layer.client}","subject":"anonymous","action":"PUT","object":"/v2/audit/app/blobs/${layerDigest}","status":201,"seq":2,"event":"BlobPushed","repository":"audit/app","digest":"${layerDigest}","size":${(image.layers[0] as Buffer).length},"outcome":"success","requestId":"${layer.requestId}","time":"${layer.time}","message":"HTTP API Audit"}`,
      `{"level":"info","clientIP":"${manifest.client}","subject":"anonymous","action":"PUT","object":"/v2/audit/app/manifests/${m}","status":201,"seq":3,"event":"ManifestPushed","repository":"audit/app","digest":"${m}","size":${image.manifestBytes.length},"outcome":"success","requestId":"${manifest.requestId}","time":"${manifest.time}","message":"HTTP API Audit"}`,
      `{"level":"info","clientIP":"${tag.client}","subject":"anonymous","action":"PUT","object":"/v2/audit/app/manifests/v1","status":201,"seq":4,"event":"TagSet","repository":"audit/app","digest":"${m}","tag":"v1","outcome":"success","requestId":"${tag.requestId}","time":"${tag.time}","message":"HTTP API Audit"}`,
    ];
    assert.deepEqual(text.split('\n').slice(0, 4), expected);
  });

  it("carries zot's fields and ours on every line", () => {
    for (const line of lines) {
      assert.equal(line.level, 'info');
      assert.equal(line.message, 'HTTP API Audit');
      assert.equal(line.subject, 'anonymous');
      assert.match(line.clientIP, /127\.0\.0\.1$/);
      assert.match(line.action, /^(PUT|POST|DELETE|PATCH)$/);
      assert.match(line.object, /^\/v2\/audit\//);
      assert.equal(line.outcome, 'success');
      assert.equal(typeof line.requestId, 'string');
      assert.ok(!Number.isNaN(Date.parse(line.time)), line.time);
      assert.match(line.repository, /^audit\//);
    }
  });

  it('audits blob pushes, mounts and deletes', () => {
    const config = sha256(image.config);
    const pushed = lineFor(lines.filter((line) => line.seq <= 4), 'BlobPushed', 'audit/app', config);
    assert.deepEqual(
      { action: pushed.action, object: pushed.object, status: pushed.status, size: pushed.size },
      { action: 'PUT', object: `/v2/audit/app/blobs/${config}`, status: 201, size: image.config.length },
    );
    const mount = lineFor(lines, 'BlobMounted', 'audit/copy', mounted);
    assert.deepEqual(
      { action: mount.action, object: mount.object, status: mount.status, from: mount.from },
      { action: 'POST', object: `/v2/audit/copy/blobs/uploads/?mount=${mounted}&from=audit/app`, status: 201, from: 'audit/app' },
    );
    const deleted = lineFor(lines, 'BlobDeleted', 'audit/copy', mounted);
    assert.deepEqual(
      { action: deleted.action, object: deleted.object, status: deleted.status },
      { action: 'DELETE', object: `/v2/audit/copy/blobs/${mounted}`, status: 202 },
    );
  });

  it('audits manifest pushes and deletes, and tags set, moved and removed', () => {
    const manifest = lineFor(lines, 'ManifestPushed', 'audit/app', image.digest);
    assert.deepEqual(
      { action: manifest.action, object: manifest.object, status: manifest.status, size: manifest.size },
      { action: 'PUT', object: `/v2/audit/app/manifests/${image.digest}`, status: 201, size: image.manifestBytes.length },
    );
    const sets = lines.filter((line) => line.event === 'TagSet' && line.tag === 'v1');
    assert.deepEqual(
      sets.map((line) => [line.action, line.object, line.status, line.digest, line.previous]),
      [
        ['PUT', '/v2/audit/app/manifests/v1', 201, image.digest, undefined],
        ['PUT', '/v2/audit/app/manifests/v1', 201, retagged.digest, image.digest],
      ],
    );
    // The manifest and the tag of one PUT share its request id.
    assert.equal(manifest.requestId, sets[0]?.requestId);
    const removed = lineFor(lines, 'TagRemoved', 'audit/app', 'v2');
    assert.deepEqual(
      { action: removed.action, object: removed.object, status: removed.status, digest: removed.digest },
      { action: 'DELETE', object: '/v2/audit/app/manifests/v2', status: 202, digest: retagged.digest },
    );
    const deleted = lineFor(lines, 'ManifestDeleted', 'audit/app', image.digest);
    assert.deepEqual(
      { action: deleted.action, object: deleted.object, status: deleted.status },
      { action: 'DELETE', object: `/v2/audit/app/manifests/${image.digest}`, status: 202 },
    );
  });

  it('has no line for reads', () => {
    assert.ok(lines.every((line) => line.action !== 'GET' && line.action !== 'HEAD'));
  });
});

describe('audit log: refused writes', () => {
  let registry: TestRegistry;
  let auditFile: string;

  before(async () => {
    auditFile = path.join(makeTempDir(), 'audit.log');
    registry = await startTestRegistry({ log: { level: 'error', audit: auditFile } });
  });

  after(async () => {
    await registry.stop();
  });

  async function lastLine(): Promise<AuditLine> {
    await registry.running.actorsCaughtUp();
    const line = readAudit(auditFile).at(-1);
    assert.ok(line, 'the audit file has a line');
    return line;
  }

  it('audits a blob pushed with the wrong digest', async () => {
    const wrong = sha256('something else');
    const res = await fetch(`${registry.url}/v2/refused/app/blobs/uploads/?digest=${wrong}&token=not-in-the-audit-log`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: 'the bytes',
    });
    await expectOciError(res, 400, 'DIGEST_INVALID');
    const line = await lastLine();
    assert.deepEqual(
      {
        event: line.event,
        outcome: line.outcome,
        action: line.action,
        object: line.object,
        status: line.status,
        code: line.code,
        repository: line.repository,
        reference: line.reference,
        subject: line.subject,
      },
      {
        event: 'WriteRefused',
        outcome: 'refused',
        action: 'POST',
        object: '/v2/refused/app/blobs/uploads/',
        status: 400,
        code: 'DIGEST_INVALID',
        repository: 'refused/app',
        reference: wrong,
        subject: 'anonymous',
      },
    );
    assert.match(line.clientIP, /127\.0\.0\.1$/);
    assert.equal(typeof line.requestId, 'string');
    assert.ok(!fs.readFileSync(auditFile, 'utf8').includes('not-in-the-audit-log'), 'query strings stay out of the audit log');
  });

  it('audits a manifest that references a missing blob', async () => {
    const image = makeImage();
    await pushBlob(registry.url, 'refused/app', image.config);
    const res = await pushManifest(registry.url, 'refused/app', 'v1', image.manifestBytes);
    await expectOciError(res, 400, 'MANIFEST_BLOB_UNKNOWN');
    const line = await lastLine();
    assert.deepEqual(
      [line.event, line.action, line.object, line.status, line.code, line.repository, line.reference],
      ['WriteRefused', 'PUT', '/v2/refused/app/manifests/v1', 400, 'MANIFEST_BLOB_UNKNOWN', 'refused/app', 'v1'],
    );
  });

  it('audits a delete of something unknown and a write to an invalid name (repository "")', async () => {
    await expectOciError(await fetch(`${registry.url}/v2/refused/app/manifests/nope`, { method: 'DELETE' }), 404, 'MANIFEST_UNKNOWN');
    let line = await lastLine();
    assert.deepEqual([line.action, line.status, line.code, line.reference], ['DELETE', 404, 'MANIFEST_UNKNOWN', 'nope']);

    const res = await rawRequest(registry.url, 'PUT', '/v2/Not_Valid/manifests/v1', Buffer.from('{}'), { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
    assert.equal(res.status, 400, res.body);
    line = await lastLine();
    assert.deepEqual([line.event, line.code, line.repository, line.object], ['WriteRefused', 'NAME_INVALID', '', '/v2/Not_Valid/manifests/v1']);
  });

  it('does not audit refused reads', async () => {
    const before = readAudit(auditFile).length;
    assert.equal((await fetch(`${registry.url}/v2/refused/app/manifests/nope`)).status, 404);
    assert.equal((await fetch(`${registry.url}/v2/refused/app/blobs/${sha256('x')}`)).status, 404);
    await registry.running.actorsCaughtUp();
    assert.equal(readAudit(auditFile).length, before);
  });

  it('audits refusals of one repository and code once, then with their count', async () => {
    const file = path.join(makeTempDir(), 'audit.log');
    // An interval longer than the test: the counted refusals are appended at shutdown.
    const counting = await startTestRegistry({ log: { level: 'error', audit: file } }, { refusalIntervalMs: 10 * 60_000 });
    let stopped = false;
    try {
      for (const tag of ['a', 'b', 'c']) {
        await expectOciError(await fetch(`${counting.url}/v2/counted/app/manifests/${tag}`, { method: 'DELETE' }), 404, 'NAME_UNKNOWN');
      }
      await counting.running.actorsCaughtUp();
      // The first is written at once; the other two are counted until the interval ends (here: shutdown).
      assert.equal(readAudit(file).length, 1);
      await counting.stop();
      stopped = true;
      const lines = readAudit(file);
      assert.deepEqual(
        lines.map((line) => [line.event, line.outcome, line.action, line.object, line.status, line.code, line.repository, line.reference, line.count]),
        [
          ['WriteRefused', 'refused', 'DELETE', '/v2/counted/app/manifests/a', 404, 'NAME_UNKNOWN', 'counted/app', 'a', 1],
          ['WriteRefused', 'refused', 'DELETE', '/v2/counted/app/manifests/c', 404, 'NAME_UNKNOWN', 'counted/app', 'c', 2],
        ],
      );
      const counted = lines[1] as AuditLine;
      assert.ok(counted.firstTime !== undefined && counted.lastTime !== undefined && counted.firstTime <= counted.lastTime, JSON.stringify(counted));
    } finally {
      if (!stopped) await counting.stop();
    }
  });
});

describe('audit log: rebuild from the event log', () => {
  it('--rebuild-audit-log writes the live file byte for byte, while the registry runs and after', async () => {
    const auditFile = path.join(makeTempDir(), 'audit.log');
    const registry = await startTestRegistry({ log: { level: 'error', audit: auditFile } });
    const configPath = writeConfig(testConfig({ root: registry.root, log: { level: 'error', audit: auditFile } }));
    try {
      const image = await pushOk(registry.url, 'rebuild/app', 'v1');
      await pushOk(registry.url, 'rebuild/app', 'v1');
      await expectOciError(await fetch(`${registry.url}/v2/rebuild/app/manifests/gone`, { method: 'DELETE' }), 404, 'MANIFEST_UNKNOWN');
      assert.equal((await fetch(`${registry.url}/v2/rebuild/app/manifests/${image.digest}`, { method: 'DELETE' })).status, 202);
      await registry.running.actorsCaughtUp();
      const live = fs.readFileSync(auditFile);

      const result = await runZot(['audit', configPath, '--rebuild-audit-log']);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`rebuilt .*audit\\.log: ${registry.running.store.head()} line\\(s\\)`));
      assert.ok(fs.readFileSync(auditFile).equals(live), 'the rebuilt file equals the live one');
      assert.deepEqual(
        fs.readdirSync(path.dirname(auditFile)),
        ['audit.log'],
        'no temporary file is left',
      );

      // The running writer follows the rebuilt file by name: later lines land in it, once.
      await pushOk(registry.url, 'rebuild/app', 'v2');
      await registry.running.actorsCaughtUp();
      const continued = fs.readFileSync(auditFile);
      const again = await runZot(['audit', configPath, '--rebuild-audit-log']);
      assert.equal(again.code, 0, again.stderr);
      assert.ok(fs.readFileSync(auditFile).equals(continued), 'the continued file still equals a rebuild');
    } finally {
      await registry.stop();
    }
  });

  it('refuses to rebuild when log.audit is not set', async () => {
    const registry = await startTestRegistry();
    try {
      const result = await runZot(['audit', writeConfig(testConfig({ root: registry.root })), '--rebuild-audit-log']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /log\.audit is not set/);
    } finally {
      await registry.stop();
    }
  });

  it('an audit log turned on later starts with the whole history', async () => {
    const registry = await startTestRegistry();
    const root = registry.root;
    await pushOk(registry.url, 'late/app', 'v1');
    await registry.stop();
    const auditFile = path.join(makeTempDir(), 'audit.log');
    const again = await startTestRegistry({ root, log: { level: 'error', audit: auditFile } });
    try {
      await again.running.actorsCaughtUp();
      assert.deepEqual(
        readAudit(auditFile).map((line) => line.event),
        ['BlobPushed', 'BlobPushed', 'ManifestPushed', 'TagSet'],
      );
    } finally {
      await again.stop();
    }
  });
});

describe('audit log: writes', () => {
  it('appends the lines of a batch of events in one write (the history of a log turned on later)', async (t) => {
    const cannot = straceUnavailable();
    if (cannot) return t.skip(cannot);
    const registry = await startTestRegistry();
    const root = registry.root;
    for (let i = 0; i < 5; i++) await pushOk(registry.url, `batch/app${i}`, 'v1');
    await registry.stop();

    // Catch-up hands the audit writer the 20 events as one batch.
    const dir = fs.realpathSync(makeTempDir());
    const auditFile = path.join(dir, 'audit.log');
    const traceFile = path.join(dir, 'trace.txt');
    const traced = await spawnRegistry(
      { root, log: { level: 'warn', audit: auditFile } },
      { runUnder: ['strace', '-f', '-y', '-e', 'trace=write,writev,pwrite64,pwritev,pwritev2', '-o', traceFile] },
    );
    try {
      await eventually(async () => readLines(auditFile).length >= 20, 'the history in the audit log');
    } finally {
      await stopTraced(traced.child);
    }
    assert.deepEqual(
      readAudit(auditFile).map((line) => line.seq),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    const writes = fs
      .readFileSync(traceFile, 'utf8')
      .split('\n')
      .filter((line) => line.includes(`<${auditFile}>`));
    assert.equal(writes.length, 1, writes.join('\n'));
  });
});

describe('audit log: rotation', () => {
  it('loses and doubles nothing when the file is moved, with and without SIGHUP', async () => {
    const dir = makeTempDir();
    const auditFile = path.join(dir, 'audit.log');
    const registry = await spawnRegistry({ log: { level: 'warn', audit: auditFile } });
    try {
      await pushOk(registry.url, 'rotate/app', 'a');
      await eventually(async () => readLines(auditFile).length === 4, 'the first push in the audit file');

      // logrotate's way: move, then SIGHUP; the file is reopened by name at once.
      fs.renameSync(auditFile, `${auditFile}.1`);
      registry.child.kill('SIGHUP');
      await eventually(async () => fs.existsSync(auditFile), 'the audit file reopened after SIGHUP');
      await pushOk(registry.url, 'rotate/app', 'b');

      // Moved without a signal: the writer notices before its next line.
      await eventually(async () => readLines(auditFile).length === 4, 'the second push in the new file');
      fs.renameSync(auditFile, `${auditFile}.2`);
      await pushOk(registry.url, 'rotate/app', 'c');
      assert.equal((await fetch(`${registry.url}/v2/`)).status, 200, 'SIGHUP did not stop the registry');
    } finally {
      assert.equal(await registry.stop(), 0, registry.output());
    }
    const rotated = [...readLines(`${auditFile}.1`), ...readLines(`${auditFile}.2`), ...readLines(auditFile)];
    assert.deepEqual(
      [readLines(`${auditFile}.1`).length, readLines(`${auditFile}.2`).length, readLines(auditFile).length],
      [4, 4, 4],
    );
    assert.deepEqual(
      rotated.map((line) => (JSON.parse(line) as AuditLine).seq),
      Array.from({ length: 12 }, (_, i) => i + 1),
    );
    // Together they are the audit log rebuilt from the event log.
    const result = await runZot(['audit', registry.configPath, '--rebuild-audit-log']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(rotated.join('\n') + '\n', fs.readFileSync(auditFile, 'utf8'));
  });

  it('refuses to start when the audit file cannot be written', async () => {
    const blocker = path.join(makeTempDir(), 'not-a-directory');
    fs.writeFileSync(blocker, '');
    await assert.rejects(startTestRegistry({ log: { level: 'error', audit: path.join(blocker, 'audit.log') } }));
  });
});
