// Sync on demand into a registry whose storage is S3 (s3rver), from a real docker-registry behind
// a proxy: a blob fetched from upstream has its digest known before its body, so it goes to the
// bucket as a monolithic push with ?digest= does, straight to the blob's key (one streamed
// PutObject whose last byte waits for the digest check), with no upload session key and no copy.
// A wrong or cut upstream body leaves nothing at the blob key, no session and no multipart upload.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { StorageDriverConfig, SyncConfig } from '../../src/config/types.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { createS3Driver } from '../../src/storage/s3.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { assertReplayClean, eventually } from '../helpers/http.js';
import { sha256 } from '../helpers/oci.js';
import { startS3Server, type TestS3Server } from '../helpers/s3.js';
import { layoutImage, pushOverHttp } from '../helpers/sync-images.js';
import { startSyncProxy, type SyncProxy } from '../helpers/sync-proxy.js';
import { startSyncingRegistry, type SyncingRegistry } from '../helpers/sync-registry.js';

const MiB = 1024 * 1024;
/** The smallest part S3 takes: the layers below span several, and several streamed batches. */
const PART = 5 * MiB;
const LAYER_BYTES = 2 * PART + 4321;
const PREFIX = 'ondemand';

function driverConfig(s3: TestS3Server): StorageDriverConfig {
  return { ...s3.driverConfig(`/${PREFIX}`), chunksize: PART };
}

/** A blob's path in the registry's storage (the bucket key, under the key prefix). */
function blobPath(repo: string, digest: string): string {
  return `${repo}/blobs/sha256/${digest.slice('sha256:'.length)}`;
}

describe('sync on demand on S3', () => {
  let s3: TestS3Server;
  let bucket: StorageDriver;
  let upstream: DockerRegistry;
  let proxy: SyncProxy;
  let local: SyncingRegistry;

  before(async () => {
    s3 = await startS3Server();
    bucket = createS3Driver(driverConfig(s3));
    upstream = await startDockerRegistry();
    proxy = await startSyncProxy(upstream.url);
    const sync: SyncConfig = { enable: true, registries: [{ urls: [proxy.url], onDemand: true, content: [{ prefix: 'lib/**' }] }] };
    local = await startSyncingRegistry(sync, { storage: { dedupe: false, gc: false, storageDriver: driverConfig(s3) } });
  });
  after(async () => {
    bucket?.destroy?.();
    await local?.stop();
    await proxy?.close();
    await upstream?.stop();
    await s3?.stop();
  });

  /** An image upstream with one layer of LAYER_BYTES; the layer's bytes and digest. */
  async function upstreamLayer(repo: string): Promise<{ layer: Buffer; digest: string }> {
    const image = layoutImage({ layers: 1, fileBytes: [LAYER_BYTES] });
    await pushOverHttp(upstream.url, repo, 'v1', image);
    const layer = image.blobs[1] as Buffer;
    assert.ok(layer.length > 2 * PART, 'the layer spans parts');
    return { layer, digest: sha256(layer) };
  }

  /** The S3 requests since `mark` that write to the bucket. */
  function writesSince(mark: number): Array<{ operation: string; key: string }> {
    return s3.requests.slice(mark).filter((r) => !['HeadObject', 'GetObject', 'ListObjectsV2'].includes(r.operation));
  }

  /** What a failed fetch must leave: nothing at the blob key, no session (local or in the bucket), no upload, no event. */
  async function assertNothingLeft(repo: string, digest: string): Promise<void> {
    assert.equal(await bucket.stat(blobPath(repo, digest)), undefined, 'nothing at the blob key');
    assert.deepEqual(await bucket.list(`${repo}/.uploads`), [], 'no session key in the bucket');
    const sessions = path.join(local.root, repo, '.uploads');
    assert.deepEqual(fs.existsSync(sessions) ? fs.readdirSync(sessions) : [], [], 'no session file left');
    assert.deepEqual(await s3.multipartUploads(), [], 'no multipart upload left');
    assert.equal(local.running.queries.blobSize(repo, digest), undefined, 'not stored');
    assert.ok(![...local.running.store.read({ repo })].some((e) => 'digest' in e && e.digest === digest), 'no event names it');
  }

  /** A blob GET of a fetch that fails: the body is never whole, and the fetch is over once it logged. */
  async function pullFailing(repo: string, digest: string, length: number): Promise<void> {
    const failuresBefore = local.logs().filter((l) => l.msg === 'failed to sync blob' && l.digest === digest).length;
    const res = await fetch(`${local.url}/v2/${repo}/blobs/${digest}`);
    const body = await res.arrayBuffer().then(
      (buffer) => Buffer.from(buffer),
      () => undefined,
    );
    assert.ok(res.status !== 200 || body === undefined || body.length < length, 'never a whole body that is wrong');
    await eventually(
      async () => local.logs().filter((l) => l.msg === 'failed to sync blob' && l.digest === digest).length > failuresBefore,
      'the fetch failed',
      15_000,
    );
  }

  it('writes a blob pulled through straight to its blob key: no session key, no copy', async () => {
    const repo = 'lib/direct';
    const { layer, digest } = await upstreamLayer(repo);
    const mark = s3.requests.length;
    const res = await fetch(`${local.url}/v2/${repo}/blobs/${digest}`);
    assert.equal(res.status, 200);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(layer), 'the client gets the blob');
    await eventually(async () => local.running.queries.blobSize(repo, digest) === layer.length, 'the blob committed', 15_000);
    const writes = writesSince(mark);
    assert.deepEqual(
      writes.filter((r) => r.operation === 'CopyObject' || r.key.includes('/.uploads/')),
      [],
      `no copy, no session key: ${JSON.stringify(writes)}`,
    );
    assert.deepEqual(
      writes.filter((r) => r.key === `${PREFIX}/${blobPath(repo, digest)}`).map((r) => r.operation),
      ['PutObject'],
      'one streamed PutObject at the blob key',
    );
    assert.ok((await bucket.getContent(blobPath(repo, digest))).equals(layer), 'the blob key holds the bytes');
    assert.deepEqual(await s3.multipartUploads(), []);
    const again = await fetch(`${local.url}/v2/${repo}/blobs/${digest}`);
    assert.ok(Buffer.from(await again.arrayBuffer()).equals(layer), 'served from the bucket after');
    await assertReplayClean(local);
  });

  it('stores nothing at the blob key when the upstream sends a wrong body', async () => {
    const repo = 'lib/wrong';
    const { layer, digest } = await upstreamLayer(repo);
    const mark = s3.requests.length;
    proxy.corrupt(digest);
    try {
      await pullFailing(repo, digest, layer.length);
    } finally {
      proxy.corrupt(undefined);
    }
    assert.ok(
      s3.requests.slice(mark).some((r) => r.operation === 'PutObject' && r.key === `${PREFIX}/${blobPath(repo, digest)}`),
      'the bytes were on their way to the blob key',
    );
    await assertNothingLeft(repo, digest);
    const whole = Buffer.from(await (await fetch(`${local.url}/v2/${repo}/blobs/${digest}`)).arrayBuffer());
    assert.ok(whole.equals(layer), 'served whole once the upstream serves it right');
  });

  it('stores nothing at the blob key when the upstream cuts the body short', async () => {
    const repo = 'lib/cut';
    const { layer, digest } = await upstreamLayer(repo);
    proxy.truncate(digest);
    try {
      await pullFailing(repo, digest, layer.length);
    } finally {
      proxy.truncate(undefined);
    }
    await assertNothingLeft(repo, digest);
    const whole = Buffer.from(await (await fetch(`${local.url}/v2/${repo}/blobs/${digest}`)).arrayBuffer());
    assert.ok(whole.equals(layer), 'served whole once the upstream serves it right');
    await eventually(async () => local.running.queries.blobSize(repo, digest) === layer.length, 'the blob committed', 15_000);
    await assertReplayClean(local);
  });
});
