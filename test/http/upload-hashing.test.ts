// The running hash of upload sessions (registry/upload-hashes.ts): chunks are hashed as they
// arrive, so a commit reads nothing again; after a restart the hash is rebuilt by one re-read of
// what the session held; a chunk the client abandons half-way leaves nothing in the hash; and the
// digest is still checked before any commit. Re-reads are visible in the registry's log
// ("rebuilt the running hash of an upload session from its file", with the bytes read). A session
// that begins while no hashing thread is online is hashed on the event loop until one is.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { disconnectMidBody, eventually, expectOciError, openSession, patchChunk, resolveLocation, sessionStatus, withDigest } from '../helpers/http.js';
import { sha256 } from '../helpers/oci.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import type { UploadHashResult, UploadHashTask } from '../../src/workers/hash-worker.cjs';
import { HashPool } from '../../src/workers/pool.js';

const MiB = 1024 * 1024;
const REBUILT = 'rebuilt the running hash of an upload session from its file';

interface LogLine {
  msg: string;
  bytes?: number;
  uploadId?: string;
}

/**
 * The registry's own pool, whose threads hash as ever, but which says no thread is online while
 * `held` (as in the ~100 ms a thread takes to start). Counts the session hashes sent to its threads.
 */
class HeldReadiness extends HashPool {
  held = true;
  sessionTasks = 0;

  override threadReady(): boolean {
    return !this.held && super.threadReady();
  }

  /** A thread is online, whatever `held` says. */
  threadOnline(): boolean {
    return super.threadReady();
  }

  override hashUpload(task: UploadHashTask): Promise<UploadHashResult> {
    this.sessionTasks++;
    return super.hashUpload(task);
  }
}

/** A registry whose info log lines the test reads. */
async function startLogged(root: string, hashPool?: HashPool): Promise<{ registry: TestRegistry; lines: LogLine[] }> {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  const registry = await startTestRegistry({ root }, { logger: pino({ level: 'info' }, sink), ...(hashPool ? { hashPool } : {}) });
  return { registry, lines };
}

const rebuilds = (lines: LogLine[]): LogLine[] => lines.filter((l) => l.msg === REBUILT);

/** PATCHes the chunks in order with Content-Range; returns where to go on. */
async function patchAll(sessionUrl: string, chunks: Buffer[], offset = 0): Promise<string> {
  let location = sessionUrl;
  for (const chunk of chunks) {
    const res = await patchChunk(location, chunk, `${offset}-${offset + chunk.length - 1}`);
    assert.equal(res.status, 202, `PATCH answered ${res.status}: ${await res.clone().text()}`);
    await res.arrayBuffer();
    offset += chunk.length;
    assert.equal(res.headers.get('range'), `0-${offset - 1}`);
    location = resolveLocation(sessionUrl, res);
  }
  return location;
}

/** A monolithic POST ?digest= of the whole blob. */
function postWhole(url: string, repo: string, data: Buffer, digest = sha256(data)): Promise<Response> {
  return fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: data });
}

async function assertServed(url: string, repo: string, data: Buffer): Promise<void> {
  const res = await fetch(`${url}/v2/${repo}/blobs/${sha256(data)}`);
  assert.equal(res.status, 200);
  const body = Buffer.from(await res.arrayBuffer());
  assert.equal(body.length, data.length);
  assert.equal(sha256(body), sha256(data), 'the served bytes hash to the digest');
}

describe('running hash of upload sessions', () => {
  const running: TestRegistry[] = [];
  after(async () => {
    for (const r of running) await r.stop().catch(() => undefined);
  });

  it('hashes chunks of any size as they arrive: the commit re-reads nothing, and still checks the digest', async () => {
    const { registry, lines } = await startLogged(`${makeTempDir()}/root`);
    running.push(registry);
    // Sizes across the 1 MiB write batches: smaller, larger, one byte, several MiB.
    const chunks = [700 * 1024, 1.3 * MiB, 1, 3 * MiB + 17, 64 * 1024].map((n) => randomBytes(Math.floor(n)));
    const last = randomBytes(1.5 * MiB);
    const data = Buffer.concat([...chunks, last]);

    const location = await patchAll(await openSession(registry.url, 'hashing/streamed'), chunks);
    const put = await fetch(withDigest(location, sha256(data)), {
      method: 'PUT',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${data.length - last.length}-${data.length - 1}` },
      body: last,
    });
    assert.equal(put.status, 201, await put.text());
    await assertServed(registry.url, 'hashing/streamed', data);
    assert.deepEqual(rebuilds(lines), [], 'no session was hashed twice');

    // A monolithic POST is hashed as it arrives too.
    const whole = randomBytes(5 * MiB + 3);
    const post = await postWhole(registry.url, 'hashing/monolithic', whole);
    assert.equal(post.status, 201, await post.text());
    await assertServed(registry.url, 'hashing/monolithic', whole);

    // The digest is checked before the commit: content that does not hash to it is refused and not served.
    const other = randomBytes(2 * MiB);
    const wrongAt = await patchAll(await openSession(registry.url, 'hashing/streamed'), [other]);
    const claimed = sha256(randomBytes(16));
    await expectOciError(await fetch(withDigest(wrongAt, claimed), { method: 'PUT' }), 400, 'DIGEST_INVALID');
    assert.equal((await fetch(`${registry.url}/v2/hashing/streamed/blobs/${claimed}`, { method: 'HEAD' })).status, 404);
    assert.deepEqual(rebuilds(lines), []);
  });

  it('hashes small sessions from the bytes as they arrive, and one that outgrows them from its start, checking every digest', async () => {
    const { registry, lines } = await startLogged(`${makeTempDir()}/root`);
    running.push(registry);
    const post = (repo: string, data: Buffer, digest?: string): Promise<Response> => postWhole(registry.url, repo, data, digest);

    // Small monolithic POSTs (a config, a small layer, one byte): stored and served as sent.
    for (const size of [1, 300, 9 * 1024, 16 * 1024]) {
      const data = randomBytes(size);
      const res = await post('hashing/small', data);
      assert.equal(res.status, 201, `${size} bytes: ${await res.text()}`);
      await assertServed(registry.url, 'hashing/small', data);
    }
    // A small body that does not hash to its digest is refused and not served.
    const claimed = sha256(randomBytes(16));
    await expectOciError(await post('hashing/small', randomBytes(2048), claimed), 400, 'DIGEST_INVALID');
    assert.equal((await fetch(`${registry.url}/v2/hashing/small/blobs/${claimed}`, { method: 'HEAD' })).status, 404);

    // Small chunks, then one that takes the session past the small size: the digest is of all of them.
    const chunks = [randomBytes(3000), randomBytes(5000), randomBytes(40 * 1024), randomBytes(10)];
    const data = Buffer.concat(chunks);
    const end = await patchAll(await openSession(registry.url, 'hashing/outgrown'), chunks);
    await expectOciError(await fetch(withDigest(end, sha256(Buffer.concat(chunks.slice(0, 2)))), { method: 'PUT' }), 400, 'DIGEST_INVALID');
    const again = await patchAll(await openSession(registry.url, 'hashing/outgrown'), chunks);
    const put = await fetch(withDigest(again, sha256(data)), { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    await assertServed(registry.url, 'hashing/outgrown', data);
    assert.deepEqual(rebuilds(lines), [], 'no session was hashed twice');
  });

  it('hashes a session on the event loop while no hashing thread is online, still checking its digest', async () => {
    const pool = new HeldReadiness();
    const { registry, lines } = await startLogged(`${makeTempDir()}/root`, pool);
    running.push(registry);

    // A monolithic POST of several write batches.
    const whole = randomBytes(3 * MiB + 7);
    const post = await postWhole(registry.url, 'hashing/cold', whole);
    assert.equal(post.status, 201, await post.text());
    await assertServed(registry.url, 'hashing/cold', whole);

    // Chunks across PATCHes: a digest of other bytes is refused, the right one taken.
    const chunks = [randomBytes(1.5 * MiB), randomBytes(2 * MiB + 1)];
    const data = Buffer.concat(chunks);
    const wrong = await patchAll(await openSession(registry.url, 'hashing/cold'), chunks);
    const claimed = sha256(Buffer.concat([chunks[0] as Buffer, randomBytes(16)]));
    await expectOciError(await fetch(withDigest(wrong, claimed), { method: 'PUT' }), 400, 'DIGEST_INVALID');
    assert.equal((await fetch(`${registry.url}/v2/hashing/cold/blobs/${claimed}`, { method: 'HEAD' })).status, 404);
    const right = await patchAll(await openSession(registry.url, 'hashing/cold'), chunks);
    const put = await fetch(withDigest(right, sha256(data)), { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    await assertServed(registry.url, 'hashing/cold', data);

    assert.equal(pool.sessionTasks, 0, 'no session waited for a thread');
    assert.deepEqual(rebuilds(lines), []);
    // The first large write started a thread for what comes next.
    await eventually(async () => pool.threadOnline(), 'the hashing thread the first write started');
  });

  it('hands a session begun without a thread over to one once it is online, which hashes it from the start', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning);
    process.on('warning', onWarning);
    after(() => process.off('warning', onWarning));
    const pool = new HeldReadiness();
    const { registry, lines } = await startLogged(`${makeTempDir()}/root`, pool);
    running.push(registry);
    const first = randomBytes(2 * MiB + 3);
    const location = await patchAll(await openSession(registry.url, 'hashing/handover'), [first]);
    assert.equal(pool.sessionTasks, 0, 'hashed on the event loop so far');

    pool.held = false;
    await eventually(async () => pool.threadOnline(), 'a hashing thread');
    // A task for every 4 MiB: more than the 10 listeners an emitter takes before it warns.
    const rest = [randomBytes(3 * MiB), ...Array.from({ length: 12 }, () => randomBytes(4 * MiB)), randomBytes(2 * MiB + 9)];
    const end = await patchAll(location, rest, first.length);
    assert.ok(pool.sessionTasks >= 12, `the session went to the thread (${pool.sessionTasks} tasks)`);
    const data = Buffer.concat([first, ...rest]);
    const put = await fetch(withDigest(end, sha256(data)), { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    await assertServed(registry.url, 'hashing/handover', data);
    assert.deepEqual(rebuilds(lines), [], 'the thread read from the start what it never had: no re-read');
    // Those tasks each used the pool: its listeners were added once.
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      warnings.map((w) => w.message),
      [],
    );
  });

  it('after a restart in the middle of a chunked upload, rebuilds the hash by one re-read of what the session held', async () => {
    const root = `${makeTempDir()}/root`;
    const first = await startLogged(root);
    running.push(first.registry);
    const before = [randomBytes(1.5 * MiB), randomBytes(MiB + 5)];
    const held = before.reduce((n, c) => n + c.length, 0);
    const location = await patchAll(await openSession(first.registry.url, 'hashing/restart'), before);
    await first.registry.stop();

    const second = await startLogged(root);
    running.push(second.registry);
    // The session's URL names the old port: go on at the same path on the new one.
    const resumed = new URL(new URL(location).pathname + new URL(location).search, second.registry.url).toString();
    assert.equal((await sessionStatus(resumed)).range, `0-${held - 1}`);
    const afterRestart = [randomBytes(2 * MiB), randomBytes(300 * 1024)];
    const end = await patchAll(resumed, afterRestart, held);
    const data = Buffer.concat([...before, ...afterRestart]);
    const put = await fetch(withDigest(end, sha256(data)), { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    await assertServed(second.registry.url, 'hashing/restart', data);

    const reread = rebuilds(second.lines);
    assert.equal(reread.length, 1, 'one re-read');
    assert.equal(reread[0]?.bytes, held, 'of exactly what the session held before the restart');
  });

  it('leaves nothing of a chunk whose client disconnected half-way in the hash', async () => {
    const { registry } = await startLogged(`${makeTempDir()}/root`);
    running.push(registry);
    const repo = 'hashing/disconnect';
    const first = randomBytes(MiB + 100);
    const location = await patchAll(await openSession(registry.url, repo), [first]);

    // A 4 MiB chunk of which 2.5 MiB arrive (past a 1 MiB write, so some of it was hashed) before the client goes.
    const abandoned = randomBytes(4 * MiB);
    const declared = `${first.length}-${first.length + abandoned.length - 1}`;
    await disconnectMidBody(location, 'PATCH', abandoned.length, abandoned.subarray(0, 2.5 * MiB), { 'Content-Range': declared });
    await eventually(async () => (await sessionStatus(location)).range === `0-${first.length - 1}`, 'the session to go back to its first chunk');

    // The same range again, other bytes: the commit's digest is of these.
    const retried = randomBytes(4 * MiB);
    const end = await patchAll(location, [retried], first.length);
    const data = Buffer.concat([first, retried]);
    const stale = sha256(Buffer.concat([first, abandoned]));
    assert.notEqual(stale, sha256(data));
    const put = await fetch(withDigest(end, sha256(data)), { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    await assertServed(registry.url, repo, data);
  });
});
