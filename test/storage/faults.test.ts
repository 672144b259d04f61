// Faults injected by wrapping the real filesystem driver (no mocks): a failing move into place, a
// failing sync of a staged upload (at its commit, or in the background after a PATCH), a failing
// write and a failing delete. The request fails with OCI error JSON, or succeeds when the fault
// comes after its commit point; the log and storage stay consistent (`zot replay` is clean); a
// retry succeeds once the fault is gone (after a failed sync, a new upload: the session whose
// bytes may not be on disk is discarded), and GC removes later what a failed delete left.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { StorageDriver } from '../../src/storage/driver.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { assertReplayClean, eventually, expectOciError, openSession, patchChunk, resolveLocation, sessionStatus, withDigest } from '../helpers/http.js';
import { makeImage, OCI_MANIFEST, pushBlob, pushImage, pushManifest, sha256 } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

type FaultyMethod = 'putFile' | 'putContent' | 'delete' | 'sync' | 'placeTemporary' | 'syncTemporary';

/** Which driver calls fail right now: method → how many more calls fail (Infinity: until cleared). */
class Faults {
  private readonly failing = new Map<FaultyMethod, number>();
  readonly seen = new Map<FaultyMethod, number>();

  fail(method: FaultyMethod, times = Number.POSITIVE_INFINITY): void {
    this.failing.set(method, times);
  }

  clear(): void {
    this.failing.clear();
  }

  /** The real driver, with the methods that are failing right now throwing EIO. */
  wrap<T extends StorageDriver>(driver: T): T {
    return new Proxy(driver, {
      get: (target, property, receiver) => {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function') return value;
        const method = property as FaultyMethod;
        return (...args: unknown[]) => {
          const left = this.failing.get(method);
          if (left !== undefined && left > 0) {
            this.failing.set(method, left - 1);
            this.seen.set(method, (this.seen.get(method) ?? 0) + 1);
            return Promise.reject(Object.assign(new Error(`injected fault in ${method}`), { code: 'EIO' }));
          }
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  }
}

function blobFile(root: string, repo: string, digest: string): string {
  return path.join(root, repo, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

async function headStatus(url: string): Promise<number> {
  return (await fetch(url, { method: 'HEAD' })).status;
}

describe('storage faults', () => {
  const faults = new Faults();
  const warnings: string[] = [];
  const drivers: StorageDriver[] = [];
  let registry: TestRegistry;

  before(async () => {
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    registry = await startTestRegistry(
      // gcDelay is the grace a pushed blob has before its manifest: 2 s, so a loaded machine cannot let
      // GC take test 3's blobs between their push and the manifest's.
      { storage: { dedupe: false, gc: true, gcDelay: '2s', gcInterval: '200ms' } },
      {
        logger,
        wrapDriver: (driver) => {
          drivers.push(driver);
          return faults.wrap(driver);
        },
      },
    );
  });

  /** Temporary files made ahead for the next requests (temporary-reserve.ts): empty and no request's. */
  const madeAhead = (): Set<string> => new Set(drivers.flatMap((driver) => (driver instanceof FilesystemDriver ? driver.reservedFiles() : [])));

  /** The temporary directory's files that some request made or took. */
  const temporaryFilesInUse = (): string[] => {
    const ahead = madeAhead();
    const dir = path.join(registry.root, '.zot-ts', 'tmp');
    return fs.readdirSync(dir).filter((name) => !ahead.has(path.join(dir, name)));
  };
  after(async () => {
    faults.clear();
    await registry?.stop();
  });

  // A POST ?digest= writes its body to a temporary file, synced and renamed into place.
  for (const method of ['placeTemporary', 'syncTemporary'] as const) {
    it(`a failing ${method === 'placeTemporary' ? 'move into place' : 'sync'} of a POST ?digest= body answers 500 with OCI error JSON, records nothing, leaves no file, and the retry succeeds`, async () => {
      const data = Buffer.from(`blob whose ${method} fails once`);
      const digest = sha256(data);
      faults.fail(method, 1);
      const res = await fetch(`${registry.url}/v2/faults/app/blobs/uploads/?digest=${digest}`, { method: 'POST', body: data });
      await expectOciError(res, 500, 'UNKNOWN');
      assert.equal(faults.seen.get(method), 1);
      assert.equal(await headStatus(`${registry.url}/v2/faults/app/blobs/${digest}`), 404);
      assert.ok(![...registry.running.store.read()].some((event) => event.type === 'BlobPushed' && event.digest === digest));
      assert.deepEqual(temporaryFilesInUse(), [], 'the temporary file is gone');
      // A failed sync comes after the rename: the name is taken back, as its bytes may not be on disk.
      assert.ok(!fs.existsSync(blobFile(registry.root, 'faults/app', digest)), 'no file under the digest');
      assert.equal(await pushBlob(registry.url, 'faults/app', data), digest);
      assert.equal(await headStatus(`${registry.url}/v2/faults/app/blobs/${digest}`), 200);
      await assertReplayClean(registry);
    });
  }

  // Content is renamed to its address before its sync, and a new repository's layout is written in
  // place: a crash before those syncs end can leave short files there that no event names.
  it('short files a crash left at content addresses and in the layout of a repository new to the log are replaced by the next push', async () => {
    const repo = 'faults/leftovers';
    const image = makeImage();
    const layer = image.layers[0] as Buffer;
    const dir = path.join(registry.root, ...repo.split('/'));
    fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'oci-layout'), '');
    fs.writeFileSync(path.join(dir, 'index.json'), '{"schemaVer');
    fs.writeFileSync(blobFile(registry.root, repo, sha256(layer)), layer.subarray(0, 100));
    fs.writeFileSync(blobFile(registry.root, repo, image.digest), image.manifestBytes.slice(0, 10));

    const pushed = await pushImage(registry.url, repo, 'latest', image);
    assert.equal(pushed.status, 201, await pushed.text());
    const blob = await fetch(`${registry.url}/v2/${repo}/blobs/${sha256(layer)}`);
    assert.ok(Buffer.from(await blob.arrayBuffer()).equals(layer), 'the layer is served whole');
    assert.ok(fs.readFileSync(blobFile(registry.root, repo, sha256(layer))).equals(layer), 'and stored whole');
    const manifest = await fetch(`${registry.url}/v2/${repo}/manifests/latest`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(await manifest.text(), image.manifestBytes);
    assert.equal(fs.readFileSync(blobFile(registry.root, repo, image.digest), 'utf8'), image.manifestBytes);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    await registry.running.actorsCaughtUp();
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    assert.deepEqual(index.manifests.map((m) => m.digest), [image.digest]);
    await assertReplayClean(registry);
  });

  // Without dedupe a mount copies the bytes: through a temporary file, never an upload session.
  it('a failing move into place of a mount copy answers 500 with OCI error JSON, records nothing, leaves no session or temporary file, and the retry succeeds', async () => {
    const data = Buffer.from('a blob copied by a mount whose move into place fails once');
    const digest = await pushBlob(registry.url, 'faults/mount-source', data);
    const mount = (): Promise<Response> => fetch(`${registry.url}/v2/faults/mount-target/blobs/uploads/?mount=${digest}&from=faults/mount-source`, { method: 'POST' });
    const faultsBefore = faults.seen.get('placeTemporary') ?? 0;
    faults.fail('placeTemporary', 1);
    await expectOciError(await mount(), 500, 'UNKNOWN');
    assert.equal(faults.seen.get('placeTemporary'), faultsBefore + 1, 'the copy went through a temporary file');
    assert.equal(await headStatus(`${registry.url}/v2/faults/mount-target/blobs/${digest}`), 404);
    assert.ok(![...registry.running.store.read()].some((event) => event.type === 'BlobMounted' && event.repo === 'faults/mount-target'));
    assert.ok(!fs.existsSync(blobFile(registry.root, 'faults/mount-target', digest)));
    const uploads = path.join(registry.root, 'faults', 'mount-target', '.uploads');
    assert.deepEqual(fs.existsSync(uploads) ? fs.readdirSync(uploads) : [], [], 'no upload session was staged');
    assert.deepEqual(temporaryFilesInUse(), [], 'the temporary file is gone');
    assert.equal((await mount()).status, 201);
    const copy = blobFile(registry.root, 'faults/mount-target', digest);
    assert.ok(fs.readFileSync(copy).equals(data));
    assert.notEqual(fs.statSync(copy).ino, fs.statSync(blobFile(registry.root, 'faults/mount-source', digest)).ino, 'a copy, not a link');
    await assertReplayClean(registry);
  });

  it('a mount whose source file is shorter than the log records copies nothing and answers 500 with OCI error JSON', async () => {
    const data = Buffer.from('a blob whose stored file was cut short before a mount copied it');
    const digest = await pushBlob(registry.url, 'faults/short-source', data);
    const source = blobFile(registry.root, 'faults/short-source', digest);
    fs.truncateSync(source, data.length - 5);
    try {
      const res = await fetch(`${registry.url}/v2/faults/short-target/blobs/uploads/?mount=${digest}&from=faults/short-source`, { method: 'POST' });
      await expectOciError(res, 500, 'UNKNOWN');
    } finally {
      fs.writeFileSync(source, data); // the later tests' replays compare storage with the log
    }
    assert.ok(!fs.existsSync(blobFile(registry.root, 'faults/short-target', digest)), 'no short copy under the digest');
    assert.deepEqual(temporaryFilesInUse(), [], 'the temporary file is gone');
    assert.ok(![...registry.running.store.read()].some((event) => event.type === 'BlobMounted' && event.repo === 'faults/short-target'));
  });

  it('a POST ?digest= body syncs its temporary file while it arrives; that sync failing answers 500, records nothing, leaves no file, and the retry succeeds', async () => {
    const data = randomBytes(12 * 1024 * 1024);
    const digest = sha256(data);
    const syncsBefore = faults.seen.get('syncTemporary') ?? 0;
    faults.fail('syncTemporary', 1);
    // The body is held after 10 MiB until the background sync has been seen.
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(data.subarray(0, 10 * 1024 * 1024));
        await held;
        controller.enqueue(data.subarray(10 * 1024 * 1024));
        controller.close();
      },
    });
    const answer = fetch(`${registry.url}/v2/faults/background/blobs/uploads/?digest=${digest}`, { method: 'POST', body, duplex: 'half' } as RequestInit & { duplex: 'half' });
    try {
      await eventually(async () => (faults.seen.get('syncTemporary') ?? 0) > syncsBefore, 'a sync of the temporary file before the body ends');
    } finally {
      release();
    }
    // The kernel reports a failed writeback once, to that background sync: the commit must hear of it.
    await expectOciError(await answer, 500, 'UNKNOWN');
    assert.equal(await headStatus(`${registry.url}/v2/faults/background/blobs/${digest}`), 404);
    assert.ok(![...registry.running.store.read()].some((event) => event.type === 'BlobPushed' && event.digest === digest));
    await eventually(async () => temporaryFilesInUse().length === 0, 'the temporary file gone');
    assert.equal(await pushBlob(registry.url, 'faults/background', data), digest);
    const blob = await fetch(`${registry.url}/v2/faults/background/blobs/${digest}`);
    assert.ok(Buffer.from(await blob.arrayBuffer()).equals(data));
    await assertReplayClean(registry);
  });

  it('a failing move into place during a closing PUT whose body is the whole blob leaves the session open and empty, and the retry succeeds', async () => {
    const data = Buffer.from('a blob sent whole in the closing PUT of an empty session, whose move into place fails once');
    const digest = sha256(data);
    const session = await openSession(registry.url, 'faults/whole');
    const closing = (): Promise<Response> => fetch(withDigest(session, digest), { method: 'PUT', body: data });
    const faultsBefore = faults.seen.get('placeTemporary') ?? 0;
    faults.fail('placeTemporary', 1);
    await expectOciError(await closing(), 500, 'UNKNOWN');
    assert.equal(faults.seen.get('placeTemporary'), faultsBefore + 1);
    assert.equal(await headStatus(`${registry.url}/v2/faults/whole/blobs/${digest}`), 404);
    const status = await sessionStatus(session);
    assert.equal(status.status, 204, 'the session is still open');
    assert.deepEqual(temporaryFilesInUse(), [], 'the temporary file is gone');
    assert.equal((await closing()).status, 201);
    const blob = await fetch(`${registry.url}/v2/faults/whole/blobs/${digest}`);
    assert.ok(Buffer.from(await blob.arrayBuffer()).equals(data));
    assert.equal((await sessionStatus(session)).status, 404, 'the committed session is gone');
    await assertReplayClean(registry);
  });

  it('a failing move into place during a closing PUT with a last chunk leaves the session as its PATCHes left it', async () => {
    const data = Buffer.from('a blob whose closing PUT carries its last chunk and fails to move into place');
    const digest = sha256(data);
    const session = await openSession(registry.url, 'faults/closing');
    const patched = await patchChunk(session, data.subarray(0, 20), '0-19');
    assert.equal(patched.status, 202);
    const location = resolveLocation(registry.url, patched);
    const closing = (): Promise<Response> =>
      fetch(withDigest(location, digest), { method: 'PUT', headers: { 'Content-Range': `20-${data.length - 1}` }, body: data.subarray(20) });
    const faultsBefore = faults.seen.get('putFile') ?? 0;
    faults.fail('putFile', 1);
    await expectOciError(await closing(), 500, 'UNKNOWN');
    assert.equal(faults.seen.get('putFile'), faultsBefore + 1);
    const status = await sessionStatus(location);
    assert.deepEqual([status.status, status.range], [204, '0-19'], 'the session is as the PATCH left it');
    assert.equal((await closing()).status, 201);
    const blob = await fetch(`${registry.url}/v2/faults/closing/blobs/${digest}`);
    assert.ok(Buffer.from(await blob.arrayBuffer()).equals(data));
    await assertReplayClean(registry);
  });

  it('a failing sync of the staged bytes, started while the digest is verified, fails the commit and discards the session: the blob is pushed again', async () => {
    const data = Buffer.from('a blob whose staged bytes fail to sync during its closing PUT');
    const digest = sha256(data);
    const session = await openSession(registry.url, 'faults/sync');
    const patched = await patchChunk(session, data.subarray(0, 16), '0-15');
    assert.equal(patched.status, 202);
    const location = resolveLocation(registry.url, patched);
    const closing = (): Promise<Response> =>
      fetch(withDigest(location, digest), { method: 'PUT', headers: { 'Content-Range': `16-${data.length - 1}` }, body: data.subarray(16) });
    faults.fail('sync', 1);
    // The kernel reports a failed writeback once: the sync that saw it must fail the commit.
    await expectOciError(await closing(), 500, 'UNKNOWN');
    assert.equal(faults.seen.get('sync'), 1);
    assert.equal(await headStatus(`${registry.url}/v2/faults/sync/blobs/${digest}`), 404);
    assert.ok(![...registry.running.store.read()].some((event) => event.type === 'BlobPushed' && event.digest === digest));
    // A later fsync of those pages would succeed without writing them: no retry may commit them.
    assert.equal((await sessionStatus(location)).status, 404, 'the session is gone');
    await expectOciError(await closing(), 404, 'BLOB_UPLOAD_UNKNOWN');
    const uploads = path.join(registry.root, 'faults', 'sync', '.uploads');
    assert.deepEqual(fs.existsSync(uploads) ? fs.readdirSync(uploads) : [], [], 'no session file is left');
    await pushBlob(registry.url, 'faults/sync', data);
    const blob = await fetch(`${registry.url}/v2/faults/sync/blobs/${digest}`);
    assert.ok(Buffer.from(await blob.arrayBuffer()).equals(data));
    await assertReplayClean(registry);
  });

  it('a PATCH that brings 8 MiB unsynced starts a sync of the session before it answers; that sync failing discards the session before any commit', async () => {
    const data = randomBytes(9 * 1024 * 1024);
    const digest = sha256(data);
    const session = await openSession(registry.url, 'faults/writeback');
    const syncsBefore = faults.seen.get('sync') ?? 0;
    faults.fail('sync', 1);
    const small = await patchChunk(session, data.subarray(0, 1024), '0-1023');
    assert.equal(small.status, 202);
    assert.equal(faults.seen.get('sync') ?? 0, syncsBefore, 'a small chunk starts no sync');
    const big = await patchChunk(resolveLocation(registry.url, small), data.subarray(1024), `1024-${data.length - 1}`);
    // The sync runs after the answer, in the background: its failure is not the PATCH's.
    assert.equal(big.status, 202);
    assert.equal(faults.seen.get('sync'), syncsBefore + 1, 'the chunk that brought the session to 8 MiB unsynced started a sync');
    const location = resolveLocation(registry.url, big);
    // The kernel reports a failed writeback once, to that background sync: the session goes at
    // once, before any commit, so that no restart in between can forget the failure and commit.
    await eventually(async () => (await sessionStatus(location)).status === 404, 'the session whose writeback failed to go', 5000);
    // Gone for that failure, not by idle expiry (which gcDelay would bring 2 s later).
    const uploadId = location.split('/').at(-1)?.split('?')[0];
    assert.ok(![...registry.running.store.read()].some((event) => event.type === 'UploadExpired' && event.uploadId === uploadId), 'not expired');
    assert.ok(warnings.some((line) => line.includes('a background fsync of an upload failed') && line.includes(uploadId ?? '?')), 'the failure is logged');
    const uploads = path.join(registry.root, 'faults', 'writeback', '.uploads');
    assert.deepEqual(fs.existsSync(uploads) ? fs.readdirSync(uploads) : [], [], 'its file is gone too');
    await expectOciError(await fetch(withDigest(location, digest), { method: 'PUT' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    assert.equal(await headStatus(`${registry.url}/v2/faults/writeback/blobs/${digest}`), 404);
    assert.ok(![...registry.running.store.read()].some((event) => event.type === 'BlobPushed' && event.digest === digest));
    await pushBlob(registry.url, 'faults/writeback', data);
    const blob = await fetch(`${registry.url}/v2/faults/writeback/blobs/${digest}`);
    assert.ok(Buffer.from(await blob.arrayBuffer()).equals(data));
    await assertReplayClean(registry);
  });

  it('a failing manifest write answers 500, leaves no manifest or tag, and the retry succeeds', async () => {
    const image = makeImage();
    await pushBlob(registry.url, 'faults/app', image.config);
    await pushBlob(registry.url, 'faults/app', image.layers[0]!);
    faults.fail('putContent', 1);
    await expectOciError(await pushManifest(registry.url, 'faults/app', 'v1', image.manifestBytes), 500, 'UNKNOWN');
    assert.equal(await headStatus(`${registry.url}/v2/faults/app/manifests/v1`), 404);
    assert.equal((await pushManifest(registry.url, 'faults/app', 'v1', image.manifestBytes)).status, 201);
    assert.equal(await headStatus(`${registry.url}/v2/faults/app/manifests/v1`), 200);
    await assertReplayClean(registry);
  });

  it('a failing delete after the commit point answers 202; GC removes the file later, retrying while the fault lasts', async () => {
    const data = Buffer.from('blob whose file removal fails');
    const digest = await pushBlob(registry.url, 'faults/del', data);
    const file = blobFile(registry.root, 'faults/del', digest);
    // Fails the client's delete and GC's first tries; then storage recovers.
    faults.fail('delete', 3);
    assert.equal((await fetch(`${registry.url}/v2/faults/del/blobs/${digest}`, { method: 'DELETE' })).status, 202);
    assert.equal(await headStatus(`${registry.url}/v2/faults/del/blobs/${digest}`), 404, 'the blob is gone for clients');
    assert.ok(fs.existsSync(file), 'its file is still on storage');
    assert.ok(warnings.some((line) => line.includes('failed to remove deleted content from storage')));
    await eventually(async () => !fs.existsSync(file), 'GC to remove the file once the fault is gone', 10_000);
    assert.equal(faults.seen.get('delete'), 3);
    // GC removes the file, then appends its event: with group commit the append lands a moment later.
    const orphanRemoved = () => [...registry.running.store.read()].some((event) => event.type === 'OrphanRemoved' && event.digest === digest);
    await eventually(async () => orphanRemoved(), 'the OrphanRemoved event of the file GC removed', 5_000);
    await registry.running.actorsCaughtUp();
    await assertReplayClean(registry);
  });

  // Temporary files are written through descriptors of their own, closed by the registry itself.
  it('leaves no descriptor of a temporary or placed file open after the faults above, a digest mismatch and a body written in large batches', async () => {
    const small = Buffer.from('a body whose digest does not match');
    await expectOciError(
      await fetch(`${registry.url}/v2/faults/fds/blobs/uploads/?digest=${sha256('something else')}`, { method: 'POST', body: small }),
      400,
      'DIGEST_INVALID',
    );
    const large = randomBytes(3 * 1024 * 1024 + 7);
    assert.equal(await pushBlob(registry.url, 'faults/fds', large), sha256(large));
    const open = fs
      .readdirSync('/proc/self/fd')
      .map((fd) => {
        try {
          return fs.readlinkSync(path.join('/proc/self/fd', fd));
        } catch {
          return ''; // closed between the listing and the read
        }
      })
      .filter((target) => target.startsWith(path.join(registry.root, '.zot-ts', 'tmp')) || target.includes(`${path.sep}blobs${path.sep}sha256${path.sep}`));
    // Those of the files made ahead for the next requests stay open until the registry stops.
    const ahead = madeAhead();
    assert.deepEqual(
      open.filter((target) => !ahead.has(target)),
      [],
    );
  });
});
