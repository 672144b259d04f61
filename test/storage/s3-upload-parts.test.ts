// Upload sessions on S3 send their full parts to a multipart upload as they arrive (registry/
// upload-parts.ts), observed on s3rver through the requests it receives and the multipart uploads
// it holds: parts reach the bucket before the closing PUT, under the session's key
// (REPO/.uploads/ID); the commit completes and moves them to the blob's key; blobs pull back
// byte-identical whatever the chunk sizes; a refused digest, a cancelled, expired or vanished
// session leaves no object and no multipart upload; a restart continues the same upload.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StorageDriverConfig } from '../../src/config/types.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { createS3Driver } from '../../src/storage/s3.js';
import { assertReplayClean, eventually, expectOciError, openSession, patchChunk, resolveLocation, sessionStatus, withDigest } from '../helpers/http.js';
import { sha256 } from '../helpers/oci.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { startS3Server, withFailingCompletions, type TestS3Server } from '../helpers/s3.js';

const MiB = 1024 * 1024;
/** The smallest part S3 takes: the tests' blobs cross parts with a few MiB. */
const PART = 5 * MiB;
/** The key prefix of the first describe's registry; each registry tree of the second has its own. */
const PREFIX = 'parts';

function driverConfig(s3: TestS3Server, prefix = PREFIX): StorageDriverConfig {
  return { ...s3.driverConfig(`/${prefix}`), chunksize: PART };
}

function uploadIdOf(sessionUrl: string): string {
  const id = new URL(sessionUrl).pathname.split('/').pop();
  assert.ok(id, `an upload id in ${sessionUrl}`);
  return id;
}

function sessionKey(repo: string, id: string, prefix = PREFIX): string {
  return `${prefix}/${repo}/.uploads/${id}`;
}

function blobKey(repo: string, digest: string): string {
  return `${repo}/blobs/sha256/${digest.slice('sha256:'.length)}`;
}

async function pull(url: string, repo: string, digest: string): Promise<Buffer> {
  const res = await fetch(`${url}/v2/${repo}/blobs/${digest}`);
  assert.equal(res.status, 200, `GET ${repo} blob ${digest}`);
  return Buffer.from(await res.arrayBuffer());
}

/** PATCHes the chunks in order with Content-Range from `offset`; returns where to go on. */
async function patchAll(sessionUrl: string, chunks: Buffer[], offset = 0): Promise<string> {
  let location = sessionUrl;
  let at = offset;
  for (const chunk of chunks) {
    const res = await patchChunk(location, chunk, `${at}-${at + chunk.length - 1}`);
    assert.equal(res.status, 202, await res.text());
    location = resolveLocation(location, res);
    at += chunk.length;
  }
  return location;
}

/** The numbers of the parts s3rver received for one session's key, in order (parts go two at a time). */
function partsSent(s3: TestS3Server, key: string): number[] {
  return s3.requests
    .filter((r) => r.operation === 'UploadPart' && r.key === key)
    .map((r) => r.part ?? 0)
    .sort((a, b) => a - b);
}

/** The same path on another registry (the session's URL names the old port). */
function on(registry: TestRegistry, sessionUrl: string): string {
  const u = new URL(sessionUrl);
  return new URL(u.pathname + u.search, registry.url).toString();
}

function partRecords(root: string): string[] {
  const dir = path.join(root, '.zot-ts', 'upload-parts');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

/** The part numbers a session's record names. */
function recordedParts(root: string, id: string): number[] {
  const file = path.join(root, '.zot-ts', 'upload-parts', id);
  if (!fs.existsSync(file)) return [];
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { parts: { number: number }[] }).parts.map((p) => p.number);
}

/** Objects under a session's key or any other .uploads key: none may outlive a commit. */
async function uploadObjects(bucket: StorageDriver, repo: string): Promise<string[]> {
  return bucket.list(`${repo}/.uploads`);
}

describe('upload sessions on S3 send their parts as they arrive', () => {
  let s3: TestS3Server;
  let bucket: StorageDriver;
  let registry: TestRegistry;

  before(async () => {
    s3 = await startS3Server();
    bucket = createS3Driver(driverConfig(s3));
    registry = await startTestRegistry({ storage: { dedupe: false, gc: false, storageDriver: driverConfig(s3) } });
  });
  after(async () => {
    await registry?.stop();
    await s3?.stop();
  });

  it('sends full parts to the session key before the closing PUT, then completes and moves them to the blob', async () => {
    const repo = 'parts/early';
    const data = randomBytes(2 * PART + 123);
    const session = await openSession(registry.url, repo);
    const id = uploadIdOf(session);
    const key = sessionKey(repo, id);
    const location = await patchAll(session, [data]);
    // Before the closing PUT: the two full parts are in the bucket, under the session's key.
    await eventually(async () => (await s3.multipartUploads()).some((u) => u.key === key && u.parts.join() === '1,2'), 'two parts stored before the PUT');
    assert.deepEqual(partsSent(s3, key), [1, 2], 'one UploadPart per full part, before the PUT');
    assert.deepEqual(partRecords(registry.root), [id], 'the multipart upload is recorded beside the session');

    const digest = sha256(data);
    const put = await fetch(withDigest(location, digest), { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    assert.deepEqual(partsSent(s3, key), [1, 2, 3], 'only the tail went at the commit');
    const atCommit = s3.requests.filter((r) => r.key === key).map((r) => r.operation);
    assert.deepEqual(atCommit.slice(-3), ['UploadPart', 'CompleteMultipartUpload', 'DeleteObject'], 'the tail, the completion, the delete after the move');
    assert.ok(
      s3.requests.some((r) => r.operation === 'CopyObject' && r.key === `${PREFIX}/${blobKey(repo, digest)}`),
      'the completed upload is copied to the blob key',
    );
    assert.ok((await pull(registry.url, repo, digest)).equals(data));
    assert.deepEqual(await s3.multipartUploads(), [], 'no multipart upload left');
    assert.deepEqual(await uploadObjects(bucket, repo), [], 'nothing left under the session key');
    assert.deepEqual(partRecords(registry.root), [], 'the record is gone');
    await assertReplayClean(registry);
  });

  it('pulls back byte-identical what chunks of odd sizes crossing part boundaries pushed', async () => {
    const repo = 'parts/odd';
    const sizes = [3 * MiB + 7, 4 * MiB + 1, 1, PART - 9, 2 * PART + 3, 11];
    const chunks = sizes.map((n) => randomBytes(n));
    const data = Buffer.concat(chunks);
    const session = await openSession(registry.url, repo);
    const key = sessionKey(repo, uploadIdOf(session));
    const location = await patchAll(session, chunks);
    const digest = sha256(data);
    const put = await fetch(withDigest(location, digest), { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    const full = Math.floor(data.length / PART);
    assert.deepEqual(
      partsSent(s3, key),
      Array.from({ length: full + 1 }, (_, i) => i + 1),
      'every full part and the tail went to the multipart upload',
    );
    assert.ok((await pull(registry.url, repo, digest)).equals(data));
    assert.equal((await bucket.stat(blobKey(repo, digest)))?.size, data.length);
    assert.deepEqual(await s3.multipartUploads(), []);
  });

  it('pulls back byte-identical a monolithic POST and a monolithic PUT, streamed to the blob key', async () => {
    const repo = 'parts/mono';
    const posted = randomBytes(PART * 2 + 77);
    const post = await fetch(`${registry.url}/v2/${repo}/blobs/uploads/?digest=${sha256(posted)}`, { method: 'POST', body: posted });
    assert.equal(post.status, 201, await post.text());
    const put = randomBytes(PART + 1);
    const session = await openSession(registry.url, repo);
    const done = await fetch(withDigest(session, sha256(put)), { method: 'PUT', body: put });
    assert.equal(done.status, 201, await done.text());
    // The digest and length came before the body: it went where the blob is (s3-blob-key-parts.test.ts).
    for (const data of [posted, put]) {
      const onKey = s3.requests.filter((r) => r.key === `${PREFIX}/${blobKey(repo, sha256(data))}`).map((r) => r.operation);
      assert.deepEqual(onKey, ['PutObject'], 'one PutObject streamed to the blob key');
    }
    for (const data of [posted, put]) assert.ok((await pull(registry.url, repo, sha256(data))).equals(data));
    const repoParts = s3.requests.filter((r) => r.operation === 'UploadPart' && r.key.startsWith(`${PREFIX}/${repo}/.uploads/`));
    assert.equal(repoParts.length, 0, 'no part under a session key');
    assert.deepEqual(await s3.multipartUploads(), []);
    assert.deepEqual(await uploadObjects(bucket, repo), []);
  });

  it('refuses a wrong digest at commit with DIGEST_INVALID, leaving no object and no multipart upload', async () => {
    const repo = 'parts/wrong';
    const data = randomBytes(PART + 5);
    const session = await openSession(registry.url, repo);
    const key = sessionKey(repo, uploadIdOf(session));
    const location = await patchAll(session, [data]);
    await eventually(async () => (await s3.multipartUploads()).some((u) => u.key === key), 'a part stored');
    const claimed = sha256(Buffer.from('something else'));
    await expectOciError(await fetch(withDigest(location, claimed), { method: 'PUT' }), 400, 'DIGEST_INVALID');
    for (const digest of [claimed, sha256(data)]) assert.equal(await bucket.stat(blobKey(repo, digest)), undefined, `no object for ${digest}`);
    assert.deepEqual(await s3.multipartUploads(), [], 'the multipart upload is aborted');
    assert.ok(s3.requests.some((r) => r.operation === 'AbortMultipartUpload' && r.key === key));
    assert.deepEqual(await uploadObjects(bucket, repo), []);
    assert.deepEqual(partRecords(registry.root), []);
    assert.equal((await sessionStatus(location)).status, 404, 'the session is gone');
  });

  it('aborts the multipart upload of a cancelled session', async () => {
    const repo = 'parts/cancel';
    const session = await openSession(registry.url, repo);
    const key = sessionKey(repo, uploadIdOf(session));
    const location = await patchAll(session, [randomBytes(PART + 1)]);
    await eventually(async () => (await s3.multipartUploads()).some((u) => u.key === key), 'a part stored');
    assert.equal((await fetch(location, { method: 'DELETE' })).status, 204);
    assert.deepEqual(await s3.multipartUploads(), [], 'aborted');
    assert.deepEqual(partRecords(registry.root), []);
  });
});

describe('upload sessions on S3 across a restart', () => {
  let s3: TestS3Server;
  const running = new Set<TestRegistry>();
  before(async () => {
    s3 = await startS3Server();
  });
  after(async () => {
    for (const registry of running) await registry.stop();
    await s3?.stop();
  });

  /** A registry on `root`, its objects under the key prefix `prefix` (one per registry tree). */
  async function start(root: string, prefix: string, uploadLimits?: { idleExpiryMs: number }): Promise<TestRegistry> {
    const registry = await startTestRegistry(
      { root, storage: { dedupe: false, gc: false, storageDriver: driverConfig(s3, prefix) } },
      uploadLimits ? { uploadLimits } : {},
    );
    running.add(registry);
    return registry;
  }

  async function stop(registry: TestRegistry): Promise<void> {
    running.delete(registry);
    await registry.stop();
  }

  it('continues the same multipart upload after a restart mid-chunked-upload, and commits the right digest', async () => {
    const root = path.join(makeTempDir(), 'root');
    const prefix = 'restart';
    const first = await start(root, prefix);
    const repo = 'parts/restart';
    const before = [randomBytes(3 * MiB), randomBytes(4 * MiB + 11)];
    const session = await openSession(first.url, repo);
    const id = uploadIdOf(session);
    const key = sessionKey(repo, id, prefix);
    const location = await patchAll(session, before);
    await eventually(async () => recordedParts(root, id).join() === '1', 'part 1 stored and recorded');
    await stop(first);

    const second = await start(root, prefix);
    const resumed = on(second, location);
    const held = before.reduce((n, c) => n + c.length, 0);
    assert.equal((await sessionStatus(resumed)).range, `0-${held - 1}`);
    const afterRestart = [randomBytes(PART + 3), randomBytes(2 * MiB)];
    const end = await patchAll(resumed, afterRestart, held);
    const data = Buffer.concat([...before, ...afterRestart]);
    const put = await fetch(withDigest(end, sha256(data)), { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    assert.ok((await pull(second.url, repo, sha256(data))).equals(data));
    assert.equal(s3.requests.filter((r) => r.operation === 'CreateMultipartUpload' && r.key === key).length, 1, 'one multipart upload, continued');
    assert.deepEqual(partsSent(s3, key), [1, 2, 3], 'part 1 was not sent again; part 2 and the tail went after the restart');
    assert.deepEqual(await s3.multipartUploads(), []);
    assert.deepEqual(partRecords(root), []);
    await assertReplayClean(second);
  });

  it('aborts at start the multipart upload of a session that went while the registry was down', async () => {
    const root = path.join(makeTempDir(), 'root');
    const prefix = 'vanished';
    const first = await start(root, prefix);
    const repo = 'parts/vanished';
    const session = await openSession(first.url, repo);
    const id = uploadIdOf(session);
    await patchAll(session, [randomBytes(PART + 2)]);
    await eventually(async () => recordedParts(root, id).join() === '1', 'part 1 stored and recorded');
    assert.equal((await s3.multipartUploads()).filter((u) => u.key === sessionKey(repo, id, prefix)).length, 1);
    await stop(first);
    // As a crash between the removal of the session's file and that of its record leaves it.
    fs.rmSync(path.join(root, repo, '.uploads', id));

    await start(root, prefix);
    assert.deepEqual(await s3.multipartUploads(), [], 'aborted at start');
    assert.deepEqual(partRecords(root), []);
  });

  it('aborts the multipart upload of a session that expires idle', async () => {
    const root = path.join(makeTempDir(), 'root');
    const prefix = 'expired';
    // Long enough that a loaded machine sends the PATCH before the session is idle that long.
    const registry = await start(root, prefix, { idleExpiryMs: 2_000 });
    const repo = 'parts/expired';
    const session = await openSession(registry.url, repo);
    const key = sessionKey(repo, uploadIdOf(session), prefix);
    const location = await patchAll(session, [randomBytes(PART + 2)]);
    await eventually(async () => (await sessionStatus(location)).status === 404, 'the session to expire', 20_000);
    assert.ok(s3.requests.some((r) => r.operation === 'UploadPart' && r.key === key), 'a part had gone');
    assert.deepEqual(await s3.multipartUploads(), [], 'aborted');
    assert.deepEqual(partRecords(root), []);
  });
});

describe('an S3 commit whose multipart upload fails to complete', () => {
  let s3: TestS3Server;
  let registry: TestRegistry;
  /** How many more completions of a parted write fail. */
  let failingCompletions = 0;

  before(async () => {
    s3 = await startS3Server();
    registry = await startTestRegistry(
      { storage: { dedupe: false, gc: false, storageDriver: driverConfig(s3, 'fallback') } },
      {
        // The bucket's driver with its parted writes' completion failing on demand.
        wrapDriver: (driver) =>
          withFailingCompletions(driver, () => {
            if (failingCompletions <= 0) return false;
            failingCompletions--;
            return true;
          }),
      },
    );
  });
  after(async () => {
    await registry?.stop();
    await s3?.stop();
  });

  it('uploads the staged file whole instead, and aborts the multipart upload', async () => {
    const repo = 'parts/fallback';
    const data = randomBytes(PART + 99);
    const session = await openSession(registry.url, repo);
    const key = sessionKey(repo, uploadIdOf(session), 'fallback');
    const location = await patchAll(session, [data]);
    await eventually(async () => (await s3.multipartUploads()).some((u) => u.key === key), 'a part stored');
    failingCompletions = 1;
    const put = await fetch(withDigest(location, sha256(data)), { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    assert.equal(failingCompletions, 0, 'the completion was tried');
    assert.ok((await pull(registry.url, repo, sha256(data))).equals(data));
    assert.deepEqual(await s3.multipartUploads(), [], 'the failed multipart upload is aborted');
    assert.deepEqual(partRecords(registry.root), []);
    await assertReplayClean(registry);
  });
});
