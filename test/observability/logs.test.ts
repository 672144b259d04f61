// The process log of `zot serve`: JSON lines at `log.level`, to `log.output` (reopened on SIGHUP)
// or stdout, one line per request with method, path, status, duration, client and request id,
// and no secret (Authorization header, token in a query string) in any line at any level.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { LogLevel } from '../../src/config/types.js';
import { eventually } from '../helpers/http.js';
import { makeImage, pushImage, sha256 } from '../helpers/oci.js';
import { makeTempDir, spawnRegistry, type RegistryProcess } from '../helpers/registry.js';

interface LogLine {
  level: number;
  time: string;
  msg: string;
  [field: string]: unknown;
}

const LEVELS: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50 };

function parseLines(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      try {
        return JSON.parse(line) as LogLine;
      } catch {
        assert.fail(`not a JSON line: ${line}`);
      }
    });
}

function readLog(file: string): LogLine[] {
  return fs.existsSync(file) ? parseLines(fs.readFileSync(file, 'utf8')) : [];
}

const requestLines = (lines: LogLine[]): LogLine[] => lines.filter((line) => line.msg === 'request completed');

/** Runs `zot serve` at `level` with its log in a file, makes a few requests, stops it and returns the file's lines. */
async function runAt(level: LogLevel, requests: (registry: RegistryProcess) => Promise<void>): Promise<LogLine[]> {
  const file = path.join(makeTempDir(), 'logs', 'zot.log');
  const registry = await spawnRegistry({ log: { level, output: file } });
  try {
    await requests(registry);
  } finally {
    assert.equal(await registry.stop(), 0, registry.output());
  }
  assert.equal(registry.output(), '', 'with log.output set, nothing goes to stdout or stderr');
  return readLog(file);
}

async function fewRequests(registry: RegistryProcess): Promise<void> {
  assert.equal((await fetch(`${registry.url}/v2/`)).status, 200);
  assert.equal((await pushImage(registry.url, 'logs/app', 'v1', makeImage())).status, 201);
  assert.equal((await fetch(`${registry.url}/v2/logs/app/manifests/nope`)).status, 404);
}

describe('logs', () => {
  it('at info: one JSON line per request with method, path, status, duration, client and request id; no debug lines', async () => {
    const lines = await runAt('info', fewRequests);
    assert.ok(lines.every((line) => line.level >= LEVELS.info), 'no line below info');
    assert.ok(lines.every((line) => typeof line.msg === 'string' && !Number.isNaN(Date.parse(line.time))));
    const requests = requestLines(lines);
    // GET /v2/ (the readiness probe of spawnRegistry, then ours), 3 blob POSTs, the manifest PUT, the 404 GET.
    assert.ok(requests.length >= 6, JSON.stringify(requests));
    const ids = new Set<unknown>();
    for (const line of requests) {
      assert.equal(line.level, LEVELS.info);
      assert.match(String(line.method), /^(GET|POST|PUT)$/);
      assert.match(String(line.path), /^\/v2\//);
      assert.equal(typeof line.status, 'number');
      assert.equal(typeof line.durationMs, 'number');
      assert.ok((line.durationMs as number) >= 0);
      assert.match(String(line.client), /127\.0\.0\.1$/);
      assert.match(String(line.requestId), /^[0-9a-f-]{36}$/);
      ids.add(line.requestId);
    }
    assert.equal(ids.size, requests.length, 'each request has its own id');
    assert.deepEqual(
      requests.filter((line) => line.path === '/v2/logs/app/manifests/nope').map((line) => [line.method, line.status]),
      [['GET', 404]],
    );
    assert.deepEqual(
      requests.filter((line) => line.method === 'PUT').map((line) => [line.path, line.status]),
      [['/v2/logs/app/manifests/v1', 201]],
    );
    assert.ok(lines.some((line) => line.msg === 'registry listening'));
  });

  it('at debug: debug lines too', async () => {
    const lines = await runAt('debug', fewRequests);
    assert.ok(lines.some((line) => line.level === LEVELS.debug), 'at least one debug line');
    assert.ok(requestLines(lines).length >= 6);
  });

  it('at warn and error: no request lines', async () => {
    for (const level of ['warn', 'error'] as const) {
      const lines = await runAt(level, fewRequests);
      assert.ok(lines.every((line) => line.level >= LEVELS[level]), `${level}: ${JSON.stringify(lines)}`);
      assert.deepEqual(requestLines(lines), []);
    }
  });

  it('go to stdout when log.output is not set', async () => {
    const registry = await spawnRegistry({ log: { level: 'info' } });
    try {
      assert.equal((await fetch(`${registry.url}/v2/`)).status, 200);
    } finally {
      assert.equal(await registry.stop(), 0);
    }
    const lines = parseLines(registry.output());
    assert.ok(requestLines(lines).some((line) => line.path === '/v2/' && line.status === 200));
  });

  it('never carry a secret: Authorization headers and query-string tokens stay out of every line, at debug', async () => {
    const password = 'pa55-w0rd-never-logged';
    const token = 'tok-3nS6aQ-never-logged';
    const basic = Buffer.from(`alice:${password}`).toString('base64');
    const bearer = 'eyJhbGciOiJub25lIn0.never-logged-bearer';
    const dir = makeTempDir();
    const auditFile = path.join(dir, 'audit.log');
    const file = path.join(dir, 'zot.log');
    const registry = await spawnRegistry({ log: { level: 'debug', output: file, audit: auditFile } });
    try {
      const image = makeImage();
      const headers = { Authorization: `Basic ${basic}` };
      for (const blob of [image.config, ...image.layers]) {
        const res = await fetch(`${registry.url}/v2/secret/app/blobs/uploads/?digest=${sha256(blob)}&token=${token}`, {
          method: 'POST',
          headers: { ...headers, 'Content-Type': 'application/octet-stream' },
          body: blob,
        });
        assert.equal(res.status, 201);
      }
      const put = await fetch(`${registry.url}/v2/secret/app/manifests/v1?access_token=${token}`, {
        method: 'PUT',
        headers: { ...headers, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
        body: image.manifestBytes,
      });
      assert.equal(put.status, 201);
      // Refused writes and failed reads, with a bearer token this time.
      const refused = await fetch(`${registry.url}/v2/secret/app/manifests/v2?token=${token}`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${bearer}`, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
        body: '{"not":"a manifest"}',
      });
      assert.equal(refused.status, 400);
      assert.equal((await fetch(`${registry.url}/v2/secret/app/blobs/sha256:${'0'.repeat(64)}?token=${token}`, { headers })).status, 404);
      assert.equal((await fetch(`${registry.url}/v2/Bad_Name/manifests/v1?token=${token}`, { method: 'DELETE', headers })).status, 400);
    } finally {
      assert.equal(await registry.stop(), 0, registry.output());
    }
    const logText = fs.readFileSync(file, 'utf8');
    const auditText = fs.readFileSync(auditFile, 'utf8');
    assert.ok(requestLines(parseLines(logText)).length >= 7);
    assert.ok(auditText.split('\n').length >= 6);
    for (const [name, text] of [
      ['log', logText],
      ['audit log', auditText],
    ] as const) {
      for (const line of text.split('\n')) {
        for (const secret of [password, token, basic, bearer]) assert.ok(!line.includes(secret), `the ${name} carries a secret: ${line}`);
        assert.ok(!/authorization/i.test(line), `the ${name} carries an Authorization header: ${line}`);
      }
    }
  });

  it('reopen log.output by name on SIGHUP, after a rotation moved it', async () => {
    const file = path.join(makeTempDir(), 'zot.log');
    const registry = await spawnRegistry({ log: { level: 'info', output: file } });
    try {
      await eventually(async () => readLog(file).some((line) => line.msg === 'registry listening'), 'the first lines');
      fs.renameSync(file, `${file}.1`);
      registry.child.kill('SIGHUP');
      await eventually(async () => fs.existsSync(file), 'the log file reopened after SIGHUP');
      assert.equal((await fetch(`${registry.url}/v2/after-rotation/tags/list`)).status, 404);
    } finally {
      assert.equal(await registry.stop(), 0, registry.output());
    }
    assert.ok(readLog(`${file}.1`).some((line) => line.msg === 'registry listening'));
    assert.deepEqual(
      requestLines(readLog(file)).map((line) => [line.path, line.status]),
      [['/v2/after-rotation/tags/list', 404]],
    );
  });
});
