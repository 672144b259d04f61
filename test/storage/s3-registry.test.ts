// The registry on S3 (s3rver on loopback), through HTTP and through skopeo: blobs and manifests
// land in the bucket, dedupe keeps one object per root from our own reference projection,
// deleting the holder keeps the others readable, GC removes objects, and a per-subPath S3 driver
// works beside a filesystem root.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createS3Driver } from '../../src/storage/s3.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { assertReplayClean, eventually, expectOciError, openSession, patchChunk, pushChunked, resolveLocation, sessionStatus, uploadFiles, withDigest } from '../helpers/http.js';
import { readLayoutBlobs, taggedDigest, layoutImage, writeLayout } from '../helpers/layout.js';
import { makeImage, OCI_MANIFEST, pushBlob, pushImage, sha256 } from '../helpers/oci.js';
import { makeTempDir, runZot, spawnRegistry, startTestRegistry, writeConfig, type RegistryProcess, type TestRegistry } from '../helpers/registry.js';
import { startS3Server, type TestS3Server } from '../helpers/s3.js';
import { skopeo, type Skopeo } from '../helpers/skopeo.js';

function objectKey(repo: string, digest: string): string {
  return `${repo}/blobs/sha256/${digest.slice('sha256:'.length)}`;
}

async function pull(url: string, repo: string, digest: string): Promise<Buffer> {
  const res = await fetch(`${url}/v2/${repo}/blobs/${digest}`);
  assert.equal(res.status, 200, `GET ${repo} blob ${digest}`);
  return Buffer.from(await res.arrayBuffer());
}

describe('registry on S3', () => {
  let s3: TestS3Server;
  let bucket: StorageDriver;
  let registry: TestRegistry;

  before(async () => {
    s3 = await startS3Server();
    bucket = createS3Driver(s3.driverConfig('/zot'));
    registry = await startTestRegistry({ storage: { dedupe: true, gc: false, storageDriver: s3.driverConfig('/zot') } });
  });
  after(async () => {
    await registry?.stop();
    await s3?.stop();
  });

  it('stores pushed blobs and manifests in the bucket and serves them back byte-identical', async () => {
    const image = makeImage({ layers: 2, layerBytes: 256 * 1024 });
    assert.equal((await pushImage(registry.url, 's3/app', 'v1', image)).status, 201);
    const big = Buffer.alloc(12 * 1024 * 1024 + 17, 7);
    big.write('chunked upload across parts', 0);
    const bigDigest = await pushChunked(registry.url, 's3/app', big, 5 * 1024 * 1024);
    for (const blob of [image.config, ...image.layers]) {
      assert.ok((await pull(registry.url, 's3/app', sha256(blob))).equals(blob));
      assert.equal((await bucket.stat(objectKey('s3/app', sha256(blob))))?.size, blob.length, 'the object is in the bucket');
    }
    assert.equal((await bucket.stat(objectKey('s3/app', image.digest)))?.size, Buffer.byteLength(image.manifestBytes));
    assert.ok((await pull(registry.url, 's3/app', bigDigest)).equals(big));
    const ranged = await fetch(`${registry.url}/v2/s3/app/blobs/${bigDigest}`, { headers: { Range: 'bytes=5-30' } });
    assert.equal(ranged.status, 206);
    assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(big.subarray(5, 31)));
    // The local root keeps the event log and staging, never the blobs.
    assert.ok(!fs.existsSync(path.join(registry.root, 's3', 'app', 'blobs')));
    await registry.running.actorsCaughtUp();
    assert.ok((await bucket.stat('s3/app/index.json'))?.size, 'index.json is written to the bucket');
    await assertReplayClean(registry);
  });

  it('dedupes: a second repository gets no object of its own, and keeps its bytes when the holder deletes them', async () => {
    const layer = Buffer.from('one object for many repositories '.repeat(2000));
    const digest = await pushBlob(registry.url, 'dd/first', layer);
    await pushBlob(registry.url, 'dd/second', layer);
    const mounted = await fetch(`${registry.url}/v2/dd/third/blobs/uploads/?mount=${digest}&from=dd/second`, { method: 'POST' });
    assert.equal(mounted.status, 201);
    assert.ok(await bucket.stat(objectKey('dd/first', digest)));
    assert.equal(await bucket.stat(objectKey('dd/second', digest)), undefined, 'no second copy');
    assert.equal(await bucket.stat(objectKey('dd/third', digest)), undefined, 'no third copy');
    for (const repo of ['dd/second', 'dd/third']) assert.ok((await pull(registry.url, repo, digest)).equals(layer));

    assert.equal((await fetch(`${registry.url}/v2/dd/first/blobs/${digest}`, { method: 'DELETE' })).status, 202);
    assert.equal(await bucket.stat(objectKey('dd/first', digest)), undefined, "the holder's object is gone");
    for (const repo of ['dd/second', 'dd/third']) assert.ok((await pull(registry.url, repo, digest)).equals(layer), `${repo} still pulls`);
    assert.equal((await fetch(`${registry.url}/v2/dd/second/blobs/${digest}`, { method: 'DELETE' })).status, 202);
    assert.ok((await pull(registry.url, 'dd/third', digest)).equals(layer), 'the last one still pulls');
    await assertReplayClean(registry);
  });
});

describe('zot scrub on S3', () => {
  let s3: TestS3Server;
  let registry: TestRegistry;
  after(async () => {
    await registry?.stop();
    await s3?.stop();
  });

  it('checks deduped blobs at their holder, and reports a corrupted object in every repository that reads it', async () => {
    s3 = await startS3Server();
    const bucket = createS3Driver(s3.driverConfig('/scrub'));
    registry = await startTestRegistry({ storage: { gc: false, storageDriver: s3.driverConfig('/scrub') } });
    const layer = Buffer.from('scrubbed through the bucket '.repeat(500));
    const digest = await pushBlob(registry.url, 'sc/one', layer);
    await pushBlob(registry.url, 'sc/two', layer);
    const configPath = writeConfig(registry.config);
    const clean = await runZot(['scrub', configPath]);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    assert.match(clean.stdout, /ok sc\/one: 1 blobs/);
    assert.match(clean.stdout, /ok sc\/two: 1 blobs/);

    const corrupted = Buffer.from(layer);
    corrupted[10] = corrupted[10]! ^ 0xff;
    await bucket.putContent(objectKey('sc/one', digest), corrupted);
    const dirty = await runZot(['scrub', configPath, '--json']);
    assert.equal(dirty.code, 1, dirty.stdout + dirty.stderr);
    const report = JSON.parse(dirty.stdout) as { repositories: { repo: string; corrupt: { digest: string; problem: string }[] }[] };
    for (const repo of ['sc/one', 'sc/two']) {
      const entry = report.repositories.find((r) => r.repo === repo);
      assert.deepEqual(entry?.corrupt.map((c) => [c.digest, c.problem]), [[digest, 'digest-mismatch']], repo);
    }
  });
});

describe('turning dedupe on for an existing S3 root', () => {
  let s3: TestS3Server;
  let registry: TestRegistry | undefined;
  after(async () => {
    await registry?.stop();
    await s3?.stop();
  });

  it('drops the duplicate objects in the background and every repository still pulls', async () => {
    s3 = await startS3Server();
    const bucket = createS3Driver(s3.driverConfig('/later'));
    const root = path.join(makeTempDir(), 'root');
    const storage = { gc: false, storageDriver: s3.driverConfig('/later') };
    const layer = Buffer.from('stored twice before dedupe was on '.repeat(1000));
    const repos = ['later/a', 'later/b', 'later/c'];
    const first = await startTestRegistry({ root, storage: { ...storage, dedupe: false } });
    let digest = '';
    for (const repo of repos) digest = await pushBlob(first.url, repo, layer);
    await first.stop();
    for (const repo of repos) assert.ok(await bucket.stat(objectKey(repo, digest)), `${repo} has its own object`);

    registry = await startTestRegistry({ root, storage: { ...storage, dedupe: true } });
    await registry.running.dedupeFinished();
    const left = [];
    for (const repo of repos) if (await bucket.stat(objectKey(repo, digest))) left.push(repo);
    assert.equal(left.length, 1, `one object is left, found ${left.join(', ')}`);
    for (const repo of repos) assert.ok((await pull(registry.url, repo, digest)).equals(layer), `${repo} pulls`);
    await assertReplayClean(registry);
  });
});

describe('garbage collection on S3', () => {
  let s3: TestS3Server;
  let registry: TestRegistry;
  after(async () => {
    await registry?.stop();
    await s3?.stop();
  });

  it('removes an untagged image and its objects', async () => {
    s3 = await startS3Server();
    const bucket = createS3Driver(s3.driverConfig('/gc'));
    registry = await startTestRegistry({ storage: { gc: true, gcDelay: '1s', gcInterval: '200ms', storageDriver: s3.driverConfig('/gc') } });
    const kept = makeImage();
    const dropped = makeImage();
    await pushImage(registry.url, 'gc/s3', 'v1', kept);
    await pushImage(registry.url, 'gc/s3', dropped.digest, dropped);
    await eventually(async () => (await bucket.stat(objectKey('gc/s3', sha256(dropped.layers[0]!)))) === undefined, 'the dropped layer object to go', 8000);
    assert.equal(await bucket.stat(objectKey('gc/s3', dropped.digest)), undefined);
    assert.ok((await pull(registry.url, 'gc/s3', sha256(kept.layers[0]!))).equals(kept.layers[0]!));
    const res = await fetch(`${registry.url}/v2/gc/s3/manifests/v1`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(res.status, 200);
    await assertReplayClean(registry);
  });
});

describe('skopeo round trips on S3', () => {
  let s3: TestS3Server;
  let client: Skopeo;
  let registry: RegistryProcess | undefined;
  const work = makeTempDir('zot-ts-s3-skopeo-');

  before(async () => {
    s3 = await startS3Server();
    client = skopeo();
  });
  after(async () => {
    client?.close();
    await registry?.kill();
    await s3?.stop();
  });

  const roundTrip = async (host: string, repo: string): Promise<string> => {
    const source = path.join(work, repo.replace(/\//g, '_'));
    const image = layoutImage({ layers: 2 });
    writeLayout(source, [{ manifest: image, tag: 'v1' }]);
    await client.ok(['copy', '--preserve-digests', '--dest-tls-verify=false', `oci:${source}:v1`, `docker://${host}/${repo}:v1`]);
    const out = `${source}-out`;
    await client.ok(['copy', '--preserve-digests', '--src-tls-verify=false', `docker://${host}/${repo}:v1`, `oci:${out}:v1`]);
    assert.equal(taggedDigest(out, 'v1'), image.digest);
    const want = readLayoutBlobs(source);
    const got = readLayoutBlobs(out);
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
    for (const [digest, bytes] of got) assert.ok(bytes.equals(want.get(digest) as Buffer), `${digest} byte-identical`);
    return image.digest;
  };

  it('copies an image into an S3-backed registry and back out unchanged, with no credential in its debug log', async () => {
    // s3rver checks the access key only, so the secret can be one no log line may show.
    const secret = 'zot-ts-secret-that-must-not-be-logged';
    registry = await spawnRegistry({ storage: { storageDriver: { ...s3.driverConfig('/skopeo'), secretkey: secret } }, log: { level: 'debug' } });
    const digest = await roundTrip(new URL(registry.url).host, 'cloud/app');
    const bucket = createS3Driver(s3.driverConfig('/skopeo'));
    assert.ok(await bucket.stat(objectKey('cloud/app', digest)));
    assert.ok(registry.output().includes('"level":20'), 'debug lines were written');
    assert.ok(!registry.output().includes(secret), 'the secret key is in no log line');
    await registry.stop();
    registry = undefined;
  });

  it('serves a per-subPath S3 driver beside a filesystem root', async () => {
    const localRoot = path.join(makeTempDir(), 'root');
    registry = await spawnRegistry({
      root: localRoot,
      storage: { subPaths: { '/cloud': { rootDirectory: path.join(makeTempDir(), 'cloud'), storageDriver: s3.driverConfig('/mixed') } } },
    });
    const host = new URL(registry.url).host;
    const inCloud = await roundTrip(host, 'cloud/app');
    const onDisk = await roundTrip(host, 'local/app');
    const bucket = createS3Driver(s3.driverConfig('/mixed'));
    assert.ok(await bucket.stat(objectKey('cloud/app', inCloud)), 'cloud/app is in the bucket');
    assert.equal(await bucket.stat(objectKey('local/app', onDisk)), undefined, 'local/app is not');
    assert.ok(fs.existsSync(path.join(localRoot, 'local', 'app', 'blobs', 'sha256', onDisk.slice('sha256:'.length))), 'local/app is on disk');
    assert.ok(!fs.existsSync(path.join(localRoot, 'cloud', 'app', 'blobs')), 'cloud/app is not on disk');
  });
});

describe('a closing PUT on S3 whose upload to the bucket fails', () => {
  let s3: TestS3Server;
  let registry: TestRegistry;
  /** How many more putFile calls to the bucket fail. */
  let failingUploads = 0;

  before(async () => {
    s3 = await startS3Server();
    registry = await startTestRegistry(
      { storage: { dedupe: false, gc: false, storageDriver: s3.driverConfig('/closing') } },
      {
        // The bucket's driver with putFile failing on demand (the staging driver stays as it is).
        wrapDriver: (driver) =>
          driver.name !== 's3'
            ? driver
            : new Proxy(driver, {
                get: (target, property, receiver) => {
                  const value = Reflect.get(target, property, receiver) as unknown;
                  if (property !== 'putFile' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
                  return (...args: unknown[]) => {
                    if (failingUploads > 0) {
                      failingUploads--;
                      return Promise.reject(new Error('injected fault in the upload to the bucket'));
                    }
                    return (value as (...a: unknown[]) => Promise<void>).apply(target, args);
                  };
                },
              }),
      },
    );
  });
  after(async () => {
    await registry?.stop();
    await s3?.stop();
  });

  it('leaves the staged session as its PATCHes left it, and the retry lands in the bucket', async () => {
    const data = Buffer.from('staged locally, moved to the bucket when the closing PUT commits');
    const digest = sha256(data);
    const session = await openSession(registry.url, 's3/closing');
    const patched = await patchChunk(session, data.subarray(0, 16), '0-15');
    assert.equal(patched.status, 202);
    const location = resolveLocation(registry.url, patched);
    const closing = (): Promise<Response> => fetch(withDigest(location, digest), { method: 'PUT', body: data.subarray(16) });
    failingUploads = 1;
    await expectOciError(await closing(), 500, 'UNKNOWN');
    assert.equal(failingUploads, 0, 'the upload to the bucket was tried');
    const status = await sessionStatus(location);
    assert.deepEqual([status.status, status.range], [204, '0-15'], 'the session is as the PATCH left it');
    assert.equal((await closing()).status, 201);
    assert.ok((await pull(registry.url, 's3/closing', digest)).equals(data));
    assert.equal(uploadFiles(registry.root, 's3/closing').length, 0, 'the committed session is gone from staging');
    await assertReplayClean(registry);
  });
});
