// Upload sessions are bounded: open sessions are capped per repository and overall (429
// TOOMANYREQUESTS past a cap, across restarts, the sessions of earlier runs indexed once the
// registry listens), idle sessions expire whatever the GC setting (an UploadExpired event each),
// and a body that goes on past its declared length is not read forever.
import { UNREAD_BODY_LIMITS } from '../../src/http/unread-body.js';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { after, describe, it } from 'node:test';
import { DEFAULT_UPLOAD_LIMITS } from '../../src/registry/upload-limits.js';
import { eventually, expectOciError, openSession, patchChunk, resolveLocation, sessionStatus, uploadFiles, withDigest } from '../helpers/http.js';
import { makeImage, OCI_MANIFEST, pushImage, sha256 } from '../helpers/oci.js';
import { getFreePort, makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { captureLog } from '../helpers/log-capture.js';

const MIB = 1024 * 1024;

async function post(url: string, repo: string): Promise<Response> {
  return fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
}

interface EndlessAnswer {
  status: number;
  body: string;
  /** Body bytes the client had handed to its socket when the answer came. */
  sentBeforeAnswer: number;
  /** Resolves when the registry has closed the connection (the client never ends its body). */
  closed: Promise<void>;
}

/**
 * Streams a chunked body that would go on to `cap` bytes (a client that never stops), and stops
 * writing as soon as an answer arrives.
 */
function streamUntilAnswered(requestUrl: string, method: string, headers: Record<string, string>, cap = 96 * MIB): Promise<EndlessAnswer> {
  const target = new URL(requestUrl);
  const piece = Buffer.alloc(64 * 1024, 0x61);
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered: EndlessAnswer | undefined;
    const req = http.request({
      host: target.hostname,
      port: target.port,
      method,
      path: target.pathname + target.search,
      headers: { 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked', ...headers },
    });
    const closed = new Promise<void>((done) => req.on('close', done));
    req.on('response', (res) => {
      const found: EndlessAnswer = { status: res.statusCode ?? 0, body: '', sentBeforeAnswer: sent, closed };
      answered = found;
      res.setEncoding('utf8');
      res.on('data', (text: string) => (found.body += text));
      res.on('end', () => resolve(found));
    });
    // The registry closes the connection after its answer: writes past it fail, which is expected.
    req.on('error', (err) => (answered ? undefined : reject(err)));
    const pump = (): void => {
      while (!answered && sent < cap) {
        sent += piece.length;
        if (!req.write(piece)) {
          req.once('drain', pump);
          return;
        }
      }
      if (!answered) req.end();
    };
    pump();
  });
}

/**
 * The registry drops what a client still sends after an early answer for at most
 * UNREAD_BODY_LIMITS.ms, then closes the connection: well before a kept socket's keep-alive timeout.
 */
const CLOSE_WITHIN_S = UNREAD_BODY_LIMITS.ms / 1000 + 5;

/** Waits for `done`, failing after `seconds` (far below the keep-alive timeout a kept socket would wait). */
async function withinSeconds(done: Promise<void>, seconds: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), seconds * 1000);
  });
  try {
    await Promise.race([done, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe('upload session caps', () => {
  const registries: TestRegistry[] = [];
  after(async () => {
    for (const registry of registries) await registry.stop();
  });

  it('has defaults of 1,000 sessions per repository and 10,000 in all', () => {
    assert.equal(DEFAULT_UPLOAD_LIMITS.perRepository, 1_000);
    assert.equal(DEFAULT_UPLOAD_LIMITS.overall, 10_000);
  });

  it('answers 429 TOOMANYREQUESTS past the cap of a repository and past the overall cap, also after a restart', async () => {
    // One address across the restart, so the sessions' Locations stay valid.
    const root = `${makeTempDir()}/root`;
    const port = await getFreePort();
    const limits = { uploadLimits: { perRepository: 3, overall: 5 } };
    let registry = await startTestRegistry({ root, port }, limits);
    registries.push(registry);
    const first: string[] = [];
    for (let i = 0; i < 3; i++) first.push(await openSession(registry.url, 'capped/a'));
    const perRepository = await expectOciError(await post(registry.url, 'capped/a'), 429, 'TOOMANYREQUESTS');
    assert.match(perRepository.errors[0]?.message ?? '', /repository capped\/a has 3 upload sessions open/);
    // A whole blob in one POST opens a session for the request: refused the same way.
    const empty = Buffer.alloc(0);
    await expectOciError(await fetch(`${registry.url}/v2/capped/a/blobs/uploads/?digest=${sha256(empty)}`, { method: 'POST', body: empty }), 429, 'TOOMANYREQUESTS');
    await openSession(registry.url, 'capped/b');
    await openSession(registry.url, 'capped/b');
    const overall = await expectOciError(await post(registry.url, 'capped/c'), 429, 'TOOMANYREQUESTS');
    assert.match(overall.errors[0]?.message ?? '', /5 upload sessions open, its limit across all repositories/);

    // Finishing or cancelling a session frees its place.
    assert.equal((await fetch(first[0] as string, { method: 'DELETE' })).status, 204);
    const data = Buffer.from('finished');
    const patched = await patchChunk(first[1] as string, data, `0-${data.length - 1}`);
    assert.equal(patched.status, 202);
    assert.equal((await fetch(withDigest(resolveLocation(registry.url, patched), sha256(data)), { method: 'PUT' })).status, 201);
    await openSession(registry.url, 'capped/c');
    await openSession(registry.url, 'capped/a');
    await expectOciError(await post(registry.url, 'capped/d'), 429, 'TOOMANYREQUESTS');

    // The sessions on disk count after a restart.
    await registry.stop();
    registries.pop();
    registry = await startTestRegistry({ root, port }, limits);
    registries.push(registry);
    await expectOciError(await post(registry.url, 'capped/a'), 429, 'TOOMANYREQUESTS');
    await expectOciError(await post(registry.url, 'capped/e'), 429, 'TOOMANYREQUESTS');
    assert.equal((await sessionStatus(first[2] as string)).status, 204, 'the sessions themselves are still there');
  });

  it('indexes the sessions of earlier runs once it listens: a pull is answered meanwhile, a new session waits and counts them', async () => {
    const root = `${makeTempDir()}/root`;
    const port = await getFreePort();
    // No GC: its sweeps list the same directory.
    const options = { root, port, storage: { gc: false } };
    const limits = { uploadLimits: { perRepository: 2, overall: 100 } };
    let registry = await startTestRegistry(options, limits);
    registries.push(registry);
    await openSession(registry.url, 'earlier/uploads');
    await openSession(registry.url, 'earlier/uploads');
    assert.equal((await pushImage(registry.url, 'earlier/image', 'latest')).status, 201);
    await registry.stop();
    registries.pop();

    // The restart's walk is held at the listing of that repository's sessions.
    let reachedListing!: () => void;
    const listingReached = new Promise<void>((resolve) => (reachedListing = resolve));
    let releaseListing!: () => void;
    const listingReleased = new Promise<void>((resolve) => (releaseListing = resolve));
    const holdListing = beforeListing('earlier/uploads/.uploads', async () => {
      reachedListing();
      await listingReleased;
    });
    try {
      const starting = startTestRegistry(options, { ...limits, wrapDriver: holdListing });
      const startedFirst = await Promise.race([starting.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 15_000))]);
      // A start that waits for the walk is let finish, so that it is stopped after the test.
      if (!startedFirst) releaseListing();
      registry = await starting;
      registries.push(registry);
      assert.ok(startedFirst, 'the registry listens while the walk is held');
      await listingReached;
      const pulled = await fetch(`${registry.url}/v2/earlier/image/manifests/latest`, { headers: { Accept: OCI_MANIFEST } });
      assert.equal(pulled.status, 200, 'a pull is answered while the walk is held');
      assert.equal((await fetch(`${registry.url}/startupz`)).status, 503, 'not started until the sessions are indexed');
      let answered = false;
      const opening = post(registry.url, 'earlier/uploads').then((res) => {
        answered = true;
        return res;
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(answered, false, 'a new session waits for the index');
      releaseListing();
      await expectOciError(await opening, 429, 'TOOMANYREQUESTS');
      await eventually(async () => (await fetch(`${registry.url}/startupz`)).status === 200, 'the registry to have started');
    } finally {
      releaseListing();
    }
  });

  it('starts and takes sessions when the walk fails, and logs what the caps and the expiry miss', async () => {
    const root = `${makeTempDir()}/root`;
    const options = { root, storage: { gc: false } };
    const limits = { uploadLimits: { perRepository: 2, overall: 100 } };
    let registry = await startTestRegistry(options, limits);
    registries.push(registry);
    await openSession(registry.url, 'unlisted/uploads');
    await openSession(registry.url, 'unlisted/uploads');
    await registry.stop();
    registries.pop();

    const log = captureLog('error');
    const failListing = beforeListing('unlisted/uploads/.uploads', () => {
      throw Object.assign(new Error('EACCES: permission denied, scandir'), { code: 'EACCES' });
    });
    registry = await startTestRegistry(options, { ...limits, logger: log.logger, wrapDriver: failListing });
    registries.push(registry);
    await eventually(async () => (await fetch(`${registry.url}/startupz`)).status === 200, 'the registry to have started');
    const [failure] = log.entries('failed to index the upload sessions of earlier runs: the caps and the idle expiry miss those not found until the next start');
    assert.match(String((failure?.['err'] as { message?: string } | undefined)?.message), /EACCES/);
    // The two sessions the walk did not find are not counted: a third opens.
    assert.equal((await post(registry.url, 'unlisted/uploads')).status, 202);
  });
});

/** A storage wrapper that runs `action` before the listing of `dir` (and then lists it). */
function beforeListing(dir: string, action: () => Promise<void> | void) {
  return <T extends StorageDriver>(driver: T): T =>
    new Proxy(driver, {
      get: (target, property, receiver) => {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (property !== 'list' || typeof value !== 'function') return value;
        return async (listed: string) => {
          if (listed === dir) await action();
          return (value as StorageDriver['list']).call(target, listed);
        };
      },
    });
}

describe('idle upload sessions', () => {
  const registries: TestRegistry[] = [];
  after(async () => {
    for (const registry of registries) await registry.stop();
  });

  it('expire with gc off, each an UploadExpired event, while a session in use stays', async () => {
    const registry = await startTestRegistry({ storage: { gc: false } }, { uploadLimits: { idleExpiryMs: 1500 } });
    registries.push(registry);
    const idle = await openSession(registry.url, 'nogc/uploads');
    const data = Buffer.from('left behind');
    assert.equal((await patchChunk(idle, data, `0-${data.length - 1}`)).status, 202);
    let used = await openSession(registry.url, 'nogc/uploads');
    let usedSize = 0;
    await eventually(
      async () => {
        // The other session gets a chunk on every check: never idle for long.
        const res = await patchChunk(used, Buffer.from('x'), `${usedSize}-${usedSize}`);
        assert.equal(res.status, 202, 'the session in use is kept');
        usedSize++;
        used = resolveLocation(registry.url, res);
        return (await sessionStatus(idle)).status === 404;
      },
      'the idle session to expire',
      20_000,
    );
    await expectOciError(await fetch(idle), 404, 'BLOB_UPLOAD_UNKNOWN');
    assert.equal(uploadFiles(registry.root, 'nogc/uploads').length, 1, 'only the session in use is left on disk');
    const expired = [...registry.running.store.read()].filter((event) => event.type === 'UploadExpired');
    assert.deepEqual(
      expired.map((event) => [event.repo, event.type === 'UploadExpired' ? event.size : -1, event.identity]),
      [['nogc/uploads', data.length, 'system:gc']],
    );
  });
});

describe('a body past its declared length', () => {
  let registry: TestRegistry;
  after(async () => registry?.stop());

  it('is not read without end: a PATCH chunk answers 400 SIZE_INVALID and the session is unchanged', async () => {
    registry = await startTestRegistry();
    const session = await openSession(registry.url, 'endless/body');
    const answer = await streamUntilAnswered(session, 'PATCH', { 'Content-Range': '0-9' });
    assert.equal(answer.status, 400, answer.body);
    assert.equal((JSON.parse(answer.body) as { errors: { code: string }[] }).errors[0]?.code, 'SIZE_INVALID');
    assert.ok(answer.sentBeforeAnswer < 32 * MIB, `answered after ${answer.sentBeforeAnswer} bytes, not at the end of an endless body`);
    await withinSeconds(answer.closed, CLOSE_WITHIN_S, 'the registry closes the connection after its answer');
    assert.deepEqual(await sessionStatus(session).then((s) => [s.status, s.range]), [204, '0-0']);
  });

  it('is not read without end in a closing PUT either: the session stays as its PATCHes left it', async () => {
    const data = Buffer.from('acknowledged bytes');
    const session = await openSession(registry.url, 'endless/put');
    const patched = await patchChunk(session, data, `0-${data.length - 1}`);
    assert.equal(patched.status, 202);
    const location = resolveLocation(registry.url, patched);
    const answer = await streamUntilAnswered(withDigest(location, sha256(data)), 'PUT', { 'Content-Range': `${data.length}-${data.length + 9}` });
    assert.equal(answer.status, 400, answer.body);
    assert.ok(answer.sentBeforeAnswer < 32 * MIB, `answered after ${answer.sentBeforeAnswer} bytes`);
    await withinSeconds(answer.closed, CLOSE_WITHIN_S, 'the registry closes the connection after its answer');
    assert.deepEqual(await sessionStatus(location).then((s) => [s.status, s.range]), [204, `0-${data.length - 1}`]);
  });

  it('is not read without end for a manifest past 4 MiB: 413', async () => {
    const answer = await streamUntilAnswered(`${registry.url}/v2/endless/manifest/manifests/v1`, 'PUT', { 'Content-Type': OCI_MANIFEST });
    assert.equal(answer.status, 413, answer.body);
    assert.ok(answer.sentBeforeAnswer < 32 * MIB, `answered after ${answer.sentBeforeAnswer} bytes`);
    await withinSeconds(answer.closed, CLOSE_WITHIN_S, 'the registry closes the connection after its answer');
  });

  it('leaves a streamed PATCH with no declared length unbounded, as uploads of unknown size are valid', async () => {
    const image = makeImage({ layerBytes: 8 * MIB });
    const layer = image.layers[0] as Buffer;
    const session = await openSession(registry.url, 'endless/streamed');
    const target = new URL(session);
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        { host: target.hostname, port: target.port, method: 'PATCH', path: target.pathname, headers: { 'Transfer-Encoding': 'chunked' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      for (let at = 0; at < layer.length; at += MIB) req.write(layer.subarray(at, at + MIB));
      req.end();
    });
    assert.equal(status, 202);
    assert.deepEqual(await sessionStatus(session).then((s) => [s.status, s.range]), [204, `0-${layer.length - 1}`]);
  });
});
