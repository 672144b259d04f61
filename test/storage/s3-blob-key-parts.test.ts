// A push whose digest is known before its body (a monolithic POST ?digest=, or a PUT that carries
// the whole blob) sends its bytes on S3 straight to the blob's key, where they are stored once the
// digest is verified: with a declared length as one PutObject whose last byte waits for the
// verification, else (a chunked body) as a multipart upload completed there. No copy from the
// session's key, no delete after (registry/upload-parts.ts, held-back-write.ts). Observed on
// s3rver: where the bytes went, and what a wrong digest, concurrent pushes of one digest, a
// repository that holds the blob already, a crash mid-body and a failed write leave at the blob
// key and among the multipart uploads.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StorageDriverConfig } from '../../src/config/types.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { createS3Driver } from '../../src/storage/s3.js';
import { assertReplayClean, eventually, expectOciError, openSession, sessionStatus, withDigest } from '../helpers/http.js';
import { sha256 } from '../helpers/oci.js';
import { makeTempDir, spawnRegistry, startTestRegistry, type RegistryProcess, type TestRegistry } from '../helpers/registry.js';
import { startS3Server, withFailingCompletions, type TestS3Server } from '../helpers/s3.js';

const MiB = 1024 * 1024;
/** The smallest part S3 takes: blobs of a few MiB cross parts. */
const PART = 5 * MiB;

function driverConfig(s3: TestS3Server, prefix: string): StorageDriverConfig {
  return { ...s3.driverConfig(`/${prefix}`), chunksize: PART };
}

/** The bucket key of a repository's blob, under the registry's key prefix. */
function blobKey(prefix: string, repo: string, digest: string): string {
  return `${prefix}/${repo}/blobs/sha256/${digest.slice('sha256:'.length)}`;
}

/** A monolithic POST; `chunked`: the body without a declared length (Transfer-Encoding: chunked). */
function postWithDigest(url: string, repo: string, digest: string, body: Buffer, options: { chunked?: boolean } = {}): Promise<Response> {
  const target = `${url}/v2/${repo}/blobs/uploads/?digest=${digest}`;
  if (!options.chunked) return fetch(target, { method: 'POST', body });
  return fetch(target, { method: 'POST', body: new Blob([body]).stream(), duplex: 'half' } as RequestInit);
}

async function pull(url: string, repo: string, digest: string): Promise<Buffer> {
  const res = await fetch(`${url}/v2/${repo}/blobs/${digest}`);
  assert.equal(res.status, 200, `GET ${repo} blob ${digest}`);
  return Buffer.from(await res.arrayBuffer());
}

/** The S3 operations of the requests since `mark` that name `key`, in order of arrival. */
function operationsOn(s3: TestS3Server, key: string, mark = 0): string[] {
  return s3.requests.slice(mark).filter((r) => r.key === key).map((r) => r.operation);
}

function count(operations: string[], operation: string): number {
  return operations.filter((o) => o === operation).length;
}

function partRecords(root: string): string[] {
  const dir = path.join(root, '.zot-ts', 'upload-parts');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

describe('a push whose digest is known before the body, on S3', () => {
  const prefix = 'blobkey';
  let s3: TestS3Server;
  let bucket: StorageDriver;
  let registry: TestRegistry;

  before(async () => {
    s3 = await startS3Server();
    bucket = createS3Driver(driverConfig(s3, prefix));
    registry = await startTestRegistry({ storage: { dedupe: false, gc: false, storageDriver: driverConfig(s3, prefix) } });
  });
  after(async () => {
    bucket?.destroy?.();
    await registry?.stop();
    await s3?.stop();
  });

  it('streams a monolithic POST to the blob key as one PutObject, with no copy', async () => {
    const repo = 'direct/post';
    const data = randomBytes(2 * PART + 77);
    const digest = sha256(data);
    const mark = s3.requests.length;
    const res = await postWithDigest(registry.url, repo, digest, data);
    assert.equal(res.status, 201, await res.text());
    assert.deepEqual(operationsOn(s3, blobKey(prefix, repo, digest), mark), ['PutObject']);
    assert.deepEqual(s3.requests.slice(mark).filter((r) => r.operation === 'CopyObject' || r.key.includes('/.uploads/')), [], 'no copy, no session key');
    assert.ok((await pull(registry.url, repo, digest)).equals(data));
    assert.deepEqual(await s3.multipartUploads(), []);
    await assertReplayClean(registry);
  });

  it('sends the parts of a chunked monolithic POST to the blob key and completes them there, with no copy', async () => {
    const repo = 'direct/chunked';
    const data = randomBytes(2 * PART + 77);
    const digest = sha256(data);
    const mark = s3.requests.length;
    const res = await postWithDigest(registry.url, repo, digest, data, { chunked: true });
    assert.equal(res.status, 201, await res.text());
    const onKey = operationsOn(s3, blobKey(prefix, repo, digest), mark);
    assert.equal(count(onKey, 'CreateMultipartUpload'), 1, 'the multipart upload began at the blob key');
    assert.equal(count(onKey, 'UploadPart'), 3, 'two full parts and the tail went to the blob key');
    assert.equal(onKey.at(-1), 'CompleteMultipartUpload', 'and completed there');
    assert.deepEqual(s3.requests.slice(mark).filter((r) => r.operation === 'CopyObject' || r.key.includes('/.uploads/')), [], 'no copy, no session key');
    assert.ok((await pull(registry.url, repo, digest)).equals(data));
    assert.deepEqual(await s3.multipartUploads(), []);
    assert.deepEqual(partRecords(registry.root), [], 'the record of the multipart upload is gone');
    await assertReplayClean(registry);
  });

  it('streams a PUT that carries the whole blob to the blob key', async () => {
    const repo = 'direct/put';
    const data = randomBytes(PART + 1);
    const digest = sha256(data);
    const session = await openSession(registry.url, repo);
    const mark = s3.requests.length;
    const res = await fetch(withDigest(session, digest), { method: 'PUT', body: data });
    assert.equal(res.status, 201, await res.text());
    assert.deepEqual(operationsOn(s3, blobKey(prefix, repo, digest), mark), ['PutObject']);
    assert.deepEqual(s3.requests.slice(mark).filter((r) => r.operation === 'CopyObject' || r.key.includes('/.uploads/')), []);
    assert.ok((await pull(registry.url, repo, digest)).equals(data));
  });

  for (const chunked of [false, true]) {
    it(`refuses a wrong digest${chunked ? ' of a chunked body' : ''}, storing nothing at the blob key it was sent to`, async () => {
      const repo = `direct/wrong${chunked ? '-chunked' : ''}`;
      const data = randomBytes(2 * PART + 3);
      const claimed = sha256(Buffer.from(`other bytes ${String(chunked)}`));
      const mark = s3.requests.length;
      await expectOciError(await postWithDigest(registry.url, repo, claimed, data, { chunked }), 400, 'DIGEST_INVALID');
      const onKey = operationsOn(s3, blobKey(prefix, repo, claimed), mark);
      if (chunked) {
        assert.ok(count(onKey, 'UploadPart') >= 1, `parts went to the claimed digest's key: ${onKey.join()}`);
        assert.equal(count(onKey, 'CompleteMultipartUpload'), 0, 'never completed');
        assert.equal(onKey.at(-1), 'AbortMultipartUpload', 'aborted');
      } else {
        assert.deepEqual(onKey, ['PutObject'], 'the body was streamed to the claimed digest\'s key');
      }
      assert.equal(count(onKey, 'DeleteObject'), 0, 'the blob key is never deleted');
      for (const digest of [claimed, sha256(data)]) assert.equal(await bucket.stat(`${repo}/blobs/sha256/${digest.slice(7)}`), undefined);
      assert.deepEqual(await s3.multipartUploads(), []);
      assert.deepEqual(partRecords(registry.root), []);
    });
  }

  it('sends nothing for a blob the repository holds, and a wrong body for it leaves the blob as it was', async () => {
    const repo = 'direct/held';
    const data = randomBytes(PART + 500);
    const digest = sha256(data);
    const first = await postWithDigest(registry.url, repo, digest, data);
    assert.equal(first.status, 201, await first.text());
    const mark = s3.requests.length;
    const again = await postWithDigest(registry.url, repo, digest, data);
    assert.equal(again.status, 201, await again.text());
    const forged = Buffer.from(data);
    forged.writeUInt8(forged.readUInt8(PART + 1) ^ 0xff, PART + 1);
    await expectOciError(await postWithDigest(registry.url, repo, digest, forged), 400, 'DIGEST_INVALID');
    const sent = s3.requests.slice(mark).filter((r) => r.operation !== 'HeadObject' && r.operation !== 'ListObjectsV2');
    assert.deepEqual(sent, [], 'neither push wrote to the bucket');
    assert.ok((await pull(registry.url, repo, digest)).equals(data));
  });

  for (const chunked of [false, true]) {
    it(`commits two concurrent pushes of one blob${chunked ? ' in chunked bodies' : ''}, a forged third refused, the blob key holding the right bytes`, async () => {
      const repo = `direct/race${chunked ? '-chunked' : ''}`;
      const data = randomBytes(3 * PART + 9);
      const digest = sha256(data);
      const forged = Buffer.from(data);
      forged.writeUInt8(forged.readUInt8(2 * PART) ^ 0x01, 2 * PART);
      const mark = s3.requests.length;
      const [a, b, c] = await Promise.all([
        postWithDigest(registry.url, repo, digest, data, { chunked }),
        postWithDigest(registry.url, repo, digest, data, { chunked }),
        postWithDigest(registry.url, repo, digest, forged, { chunked }),
      ]);
      assert.equal(a.status, 201, await a.text());
      assert.equal(b.status, 201, await b.text());
      await expectOciError(c, 400, 'DIGEST_INVALID');
      const onKey = operationsOn(s3, blobKey(prefix, repo, digest), mark);
      const began = count(onKey, chunked ? 'CreateMultipartUpload' : 'PutObject');
      assert.ok(began >= 2, `the pushes went to the blob key: ${onKey.join()}`);
      if (chunked) {
        assert.equal(count(onKey, 'CompleteMultipartUpload'), 1, 'one push completed, the other found the blob committed');
        assert.equal(count(onKey, 'AbortMultipartUpload'), began - 1, 'every other upload was aborted');
      }
      assert.equal(count(onKey, 'DeleteObject'), 0);
      assert.ok((await pull(registry.url, repo, digest)).equals(data));
      assert.deepEqual(await s3.multipartUploads(), []);
      assert.deepEqual(partRecords(registry.root), []);
      const pushed = [...registry.running.store.read()];
      assert.equal(pushed.filter((e) => e.type === 'BlobPushed' && e.repo === repo).length, 1, 'one BlobPushed');
      await assertReplayClean(registry);
    });
  }

  it('uploads the staged file instead when the streamed PutObject fails', async () => {
    const repo = 'direct/failed-stream';
    const data = randomBytes(2 * PART + 11);
    const digest = sha256(data);
    const key = blobKey(prefix, repo, digest);
    const heal = s3.failRequests('PutObject', key);
    const mark = s3.requests.length;
    try {
      const res = await postWithDigest(registry.url, repo, digest, data);
      assert.equal(res.status, 201, await res.text());
    } finally {
      heal();
    }
    const onKey = operationsOn(s3, key, mark);
    assert.equal(onKey[0], 'PutObject', `the body was streamed first: ${onKey.join()}`);
    assert.equal(onKey.at(-1), 'CompleteMultipartUpload', 'then the staged file uploaded in parts');
    assert.ok((await pull(registry.url, repo, digest)).equals(data));
    assert.deepEqual(await s3.multipartUploads(), []);
    await assertReplayClean(registry);
  });
});

describe('a registry killed in the middle of a PUT that carries the whole blob, on S3', () => {
  const prefix = 'blobkey-crash';
  let s3: TestS3Server;
  let killed: RegistryProcess | undefined;
  let restarted: TestRegistry | undefined;

  before(async () => {
    s3 = await startS3Server();
  });
  after(async () => {
    await killed?.kill();
    await restarted?.stop();
    await s3?.stop();
  });

  it('stores nothing at the blob key, and the session takes the PUT again after the restart', async () => {
    const root = path.join(makeTempDir(), 'root');
    const storage = { dedupe: false, gc: false, storageDriver: driverConfig(s3, prefix) };
    killed = await spawnRegistry({ root, storage });
    const repo = 'direct/crash';
    const data = randomBytes(3 * PART + 21);
    const digest = sha256(data);
    const key = blobKey(prefix, repo, digest);
    const session = await openSession(killed.url, repo);
    const id = new URL(session).pathname.split('/').pop() ?? '';
    // The body stops 21 bytes short; the registry dies with the request still open.
    const target = new URL(withDigest(session, digest));
    const req = http.request({
      host: target.hostname,
      port: target.port,
      method: 'PUT',
      path: target.pathname + target.search,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(data.length) },
    });
    req.on('error', () => undefined);
    req.write(data.subarray(0, 3 * PART));
    const staged = path.join(root, repo, '.uploads', id);
    await eventually(async () => fs.existsSync(staged) && fs.statSync(staged).size >= 2 * PART, 'the body staged', 15_000);
    await eventually(async () => s3.requests.some((r) => r.operation === 'PutObject' && r.key === key), 'the body streamed to the blob key');
    await killed.kill();
    killed = undefined;
    req.destroy();

    restarted = await startTestRegistry({ root, storage });
    const bucket = createS3Driver(driverConfig(s3, prefix));
    try {
      await eventually(async () => (await bucket.stat(`${repo}/blobs/sha256/${digest.slice(7)}`)) === undefined, 'the blob key to hold nothing');
    } finally {
      bucket.destroy?.();
    }
    assert.deepEqual(await s3.multipartUploads(), []);
    assert.deepEqual(partRecords(root), []);
    assert.ok(!s3.requests.some((r) => r.operation === 'DeleteObject' && r.key === key), 'the blob key is never deleted');
    const resumed = new URL(new URL(session).pathname, restarted.url).toString();
    assert.equal((await sessionStatus(resumed)).status, 204, 'the session is there, back where its PATCHes left it');
    const put = await fetch(withDigest(resumed, digest), { method: 'PUT', body: data });
    assert.equal(put.status, 201, await put.text());
    assert.ok((await pull(restarted.url, repo, digest)).equals(data));
    assert.deepEqual(await s3.multipartUploads(), []);
    await assertReplayClean(restarted);
  });
});

describe('a chunked push to the blob key whose multipart upload fails to complete, on S3', () => {
  const prefix = 'blobkey-fallback';
  let s3: TestS3Server;
  let registry: TestRegistry;
  /** The paths of the parted writes whose completion was made to fail. */
  const failedAt: string[] = [];
  let failingCompletions = 0;

  before(async () => {
    s3 = await startS3Server();
    registry = await startTestRegistry(
      { storage: { dedupe: false, gc: false, storageDriver: driverConfig(s3, prefix) } },
      {
        wrapDriver: (driver) =>
          withFailingCompletions(driver, (path) => {
            if (failingCompletions <= 0) return false;
            failingCompletions--;
            failedAt.push(path);
            return true;
          }),
      },
    );
  });
  after(async () => {
    await registry?.stop();
    await s3?.stop();
  });

  it('uploads the staged file to the blob key instead, then aborts the upload there without deleting the blob', async () => {
    const repo = 'direct/fallback';
    const data = randomBytes(2 * PART + 5);
    const digest = sha256(data);
    const key = blobKey(prefix, repo, digest);
    failingCompletions = 1;
    const mark = s3.requests.length;
    const res = await postWithDigest(registry.url, repo, digest, data, { chunked: true });
    assert.equal(res.status, 201, await res.text());
    assert.deepEqual(failedAt, [`${repo}/blobs/sha256/${digest.slice(7)}`], 'the completion was tried at the blob key');
    const onKey = operationsOn(s3, key, mark);
    assert.equal(count(onKey, 'DeleteObject'), 0, `the blob key is never deleted: ${onKey.join()}`);
    assert.equal(onKey.at(-1), 'AbortMultipartUpload', 'the failed upload is aborted after the blob was put');
    assert.ok((await pull(registry.url, repo, digest)).equals(data));
    assert.deepEqual(await s3.multipartUploads(), []);
    assert.deepEqual(partRecords(registry.root), []);
    await assertReplayClean(registry);
  });
});
