// Dedupe on the filesystem, through HTTP: one inode for the same bytes in every repository of a
// root, however they arrived; deleting any one copy keeps the others; dedupe off keeps copies
// apart; turning dedupe on for an existing root links what is already there; the bytes a push
// does not keep are unlinked after its answer, and before the registry stops.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { StorageDriver } from '../../src/storage/driver.js';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { CLOSING_UPLOADS_DIR, TEMP_DIR } from '../../src/storage/layout.js';
import { assertReplayClean, openSession, patchChunk, resolveLocation, sessionStatus, uploadFiles, withDigest } from '../helpers/http.js';
import { makeImage, pushBlob, pushImage, sha256, type TestImage } from '../helpers/oci.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';

function blobFile(root: string, repo: string, digest: string): string {
  return path.join(root, repo, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

function inode(root: string, repo: string, digest: string): number {
  return fs.statSync(blobFile(root, repo, digest)).ino;
}

/** One base image whose config and layers every repository shares, under its own tag. */
function sharedImage(): TestImage {
  return makeImage({ layers: 3, layerBytes: 64 * 1024 });
}

async function pullBlob(url: string, repo: string, digest: string): Promise<Buffer> {
  const res = await fetch(`${url}/v2/${repo}/blobs/${digest}`);
  assert.equal(res.status, 200, `GET blob ${digest} from ${repo}`);
  return Buffer.from(await res.arrayBuffer());
}

async function assertPullsIdentical(url: string, repo: string, image: TestImage): Promise<void> {
  for (const blob of [image.config, ...image.layers]) {
    const pulled = await pullBlob(url, repo, sha256(blob));
    assert.ok(pulled.equals(blob), `${repo}: blob ${sha256(blob)} pulls byte-identical`);
  }
  const res = await fetch(`${url}/v2/${repo}/manifests/${image.digest}`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), image.manifestBytes);
}

/** The CommonJS face of node:fs/promises, whose properties syncBuiltinESMExports copies to every ES import of it. */
const fsPromises = createRequire(import.meta.url)('node:fs/promises') as { unlink: (file: fs.PathLike) => Promise<void> };

/**
 * Holds every unlink of a file under `dir` (the registry's fs.unlink) until released, then lets it
 * run, or fail with `failure`: the unlink of a large file takes tens of milliseconds on ext4, too
 * short to tell in a test whether an answer waited for it, while a held one would hold such an
 * answer for good.
 */
function holdUnlinks(dir: string): { held: () => string[]; release: (failure?: Error) => void } {
  const real = fsPromises.unlink;
  const held: string[] = [];
  let open: (failure: Error | undefined) => void = () => undefined;
  const gate = new Promise<Error | undefined>((resolve) => (open = resolve));
  fsPromises.unlink = async (file) => {
    if (String(file).startsWith(dir + path.sep)) {
      held.push(String(file));
      const failure = await gate;
      if (failure) throw failure;
    }
    return real(file);
  };
  syncBuiltinESMExports();
  return {
    held: () => [...held],
    release: (failure) => {
      fsPromises.unlink = real;
      syncBuiltinESMExports();
      open(failure);
    },
  };
}

/** The request's answer, or undefined when it takes longer than `ms` (an answer waiting for a held unlink). */
async function answerWithin(request: Promise<Response>, ms = 5000): Promise<Response | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([request, late]);
  } finally {
    clearTimeout(timer);
  }
}

function postWhole(url: string, repo: string, data: Buffer): Promise<Response> {
  return fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: data });
}

describe('dedupe on (the default): one copy of the bytes per root', () => {
  let registry: TestRegistry;
  after(async () => registry?.stop());

  it('links the same layers pushed to several repositories to one inode', async () => {
    registry = await startTestRegistry({ storage: { dedupe: true, gc: false } });
    const image = sharedImage();
    const repos = ['team/a', 'team/b', 'c'];
    for (const repo of repos) assert.equal((await pushImage(registry.url, repo, 'v1', image)).status, 201);
    for (const blob of [image.config, ...image.layers]) {
      const inodes = new Set(repos.map((repo) => inode(registry.root, repo, sha256(blob))));
      assert.equal(inodes.size, 1, `blob ${sha256(blob)} has one inode across ${repos.join(', ')}`);
      assert.equal(fs.statSync(blobFile(registry.root, 'c', sha256(blob))).nlink, repos.length);
    }
    await assertReplayClean(registry);
  });

  it('links a mounted blob too', async () => {
    const layer = Buffer.from('mounted layer bytes '.repeat(500));
    const digest = await pushBlob(registry.url, 'mount/source', layer);
    const res = await fetch(`${registry.url}/v2/mount/target/blobs/uploads/?mount=${digest}&from=mount/source`, { method: 'POST' });
    assert.equal(res.status, 201);
    assert.equal(inode(registry.root, 'mount/target', digest), inode(registry.root, 'mount/source', digest));
  });

  it('keeps every other copy when the copies are deleted one by one, in any order', async () => {
    const image = sharedImage();
    const repos = ['order/one', 'order/two', 'order/three'];
    for (const repo of repos) assert.equal((await pushImage(registry.url, repo, 'v1', image)).status, 201);
    const remaining = [...repos];
    for (const deleted of ['order/two', 'order/one']) {
      assert.equal((await fetch(`${registry.url}/v2/${deleted}/manifests/${image.digest}`, { method: 'DELETE' })).status, 202);
      for (const blob of [image.config, ...image.layers]) {
        assert.equal((await fetch(`${registry.url}/v2/${deleted}/blobs/${sha256(blob)}`, { method: 'DELETE' })).status, 202);
      }
      assert.ok(!fs.existsSync(blobFile(registry.root, deleted, sha256(image.layers[0]!))), `${deleted}'s copy is gone`);
      remaining.splice(remaining.indexOf(deleted), 1);
      for (const kept of remaining) await assertPullsIdentical(registry.url, kept, image);
    }
    await assertPullsIdentical(registry.url, 'order/three', image);
    await assertReplayClean(registry);
  });

  it('stores a new upload when the copy it would link to was deleted meanwhile', async () => {
    const layer = Buffer.from('relinked after delete '.repeat(300));
    const digest = await pushBlob(registry.url, 'gone/first', layer);
    assert.equal((await fetch(`${registry.url}/v2/gone/first/blobs/${digest}`, { method: 'DELETE' })).status, 202);
    await pushBlob(registry.url, 'gone/second', layer);
    assert.ok((await pullBlob(registry.url, 'gone/second', digest)).equals(layer));
    assert.equal((await fetch(`${registry.url}/v2/gone/first/blobs/${digest}`)).status, 404);
    await assertReplayClean(registry);
  });
});

describe('dedupe off: every repository keeps its own copy', () => {
  let registry: TestRegistry;
  after(async () => registry?.stop());

  it('stores separate files for pushes and for mounts', async () => {
    registry = await startTestRegistry({ storage: { dedupe: false, gc: false } });
    const image = sharedImage();
    await pushImage(registry.url, 'x/one', 'v1', image);
    await pushImage(registry.url, 'x/two', 'v1', image);
    const layer = sha256(image.layers[0]!);
    assert.notEqual(inode(registry.root, 'x/one', layer), inode(registry.root, 'x/two', layer));
    const res = await fetch(`${registry.url}/v2/x/three/blobs/uploads/?mount=${layer}&from=x/one`, { method: 'POST' });
    assert.equal(res.status, 201);
    assert.notEqual(inode(registry.root, 'x/three', layer), inode(registry.root, 'x/one', layer));
    assert.ok((await pullBlob(registry.url, 'x/three', layer)).equals(image.layers[0]!));
    await assertReplayClean(registry);
  });
});

describe('turning dedupe on for an existing root', () => {
  const root = path.join(makeTempDir(), 'root');
  let registry: TestRegistry | undefined;
  after(async () => registry?.stop());

  it('links existing copies in the background; requests are served meanwhile', async () => {
    const image = sharedImage();
    const repos = ['later/a', 'later/b', 'later/c'];
    const before = await startTestRegistry({ root, storage: { dedupe: false, gc: false } });
    for (const repo of repos) await pushImage(before.url, repo, 'v1', image);
    await before.stop();
    const layer = sha256(image.layers[1]!);
    assert.equal(new Set(repos.map((repo) => inode(root, repo, layer))).size, 3);

    registry = await startTestRegistry({ root, storage: { dedupe: true, gc: false } });
    // Served while the pass may still run.
    await assertPullsIdentical(registry.url, 'later/b', image);
    await registry.running.dedupeFinished();
    for (const blob of [image.config, ...image.layers]) {
      assert.equal(new Set(repos.map((repo) => inode(root, repo, sha256(blob)))).size, 1, `${sha256(blob)} linked`);
    }
    for (const repo of repos) await assertPullsIdentical(registry.url, repo, image);
    await assertReplayClean(registry);
    await registry.stop();

    // Off again: every image stays readable, and a new push gets its own copy.
    registry = await startTestRegistry({ root, storage: { dedupe: false, gc: false } });
    for (const repo of repos) await assertPullsIdentical(registry.url, repo, image);
    await pushImage(registry.url, 'later/d', 'v1', image);
    assert.notEqual(inode(root, 'later/d', layer), inode(root, 'later/a', layer));
    await assertReplayClean(registry);
  });
});

describe('dedupe on: the bytes a push does not keep are unlinked after its answer', () => {
  const drivers: StorageDriver[] = [];
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry(
      { storage: { dedupe: true, gc: false } },
      {
        wrapDriver: (driver) => {
          drivers.push(driver);
          return driver;
        },
      },
    );
  });
  after(async () => registry?.stop());

  const staging = (): FilesystemDriver => {
    const driver = drivers.find((candidate) => candidate instanceof FilesystemDriver);
    assert.ok(driver, 'the root has a filesystem staging driver');
    return driver;
  };
  const temporaryDirectory = (): string => path.join(registry.root, TEMP_DIR);
  /** The temporary directory's files, but for those made ahead for the next requests (temporary-reserve.ts). */
  const temporaryFilesInUse = (): string[] => {
    const ahead = new Set(staging().reservedFiles());
    return fs.readdirSync(temporaryDirectory()).filter((name) => !ahead.has(path.join(temporaryDirectory(), name)));
  };
  const closingMarkers = (): string[] => {
    const dir = path.join(registry.root, CLOSING_UPLOADS_DIR);
    return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  };

  it('a POST ?digest= of a digest another repository holds answers 201 while its temporary file is still to unlink; the file goes afterwards', async () => {
    const data = randomBytes(2 * 1024 * 1024);
    const digest = await pushBlob(registry.url, 'unneeded/holder', data);
    const hold = holdUnlinks(temporaryDirectory());
    try {
      const answer = await answerWithin(postWhole(registry.url, 'unneeded/linked', data));
      assert.ok(answer, 'the answer did not wait for the unlink of the temporary file');
      assert.equal(answer.status, 201, await answer.text());
      assert.equal(hold.held().length, 1, 'the unlink of the temporary file was started');
    } finally {
      hold.release();
    }
    await staging().removalsSettled();
    assert.deepEqual(temporaryFilesInUse(), [], 'no file is left in the temporary directory');
    assert.deepEqual(uploadFiles(registry.root, 'unneeded/linked'), [], 'nor in .uploads');
    assert.equal(inode(registry.root, 'unneeded/linked', digest), inode(registry.root, 'unneeded/holder', digest), 'the push linked the copy the root held');
    for (const repo of ['unneeded/holder', 'unneeded/linked']) {
      assert.ok((await pullBlob(registry.url, repo, digest)).equals(data), `${repo} serves the blob whole`);
    }
    await assertReplayClean(registry);
  });

  for (const holder of ['the repository', 'another repository'] as const) {
    it(`a chunked session closing on a digest ${holder} holds is gone from .uploads at its answer, and from the temporary directory once unlinked`, async () => {
      const data = randomBytes(2 * 1024 * 1024);
      const repo = holder === 'the repository' ? 'unneeded/same' : 'unneeded/other';
      const digest = await pushBlob(registry.url, holder === 'the repository' ? repo : 'unneeded/other-holder', data);
      const split = 1024 * 1024;
      const patched = await patchChunk(await openSession(registry.url, repo), data.subarray(0, split), `0-${split - 1}`);
      assert.equal(patched.status, 202);
      const location = resolveLocation(registry.url, patched);
      assert.equal(uploadFiles(registry.root, repo).length, 1, 'the session has its file');
      const hold = holdUnlinks(temporaryDirectory());
      try {
        const closing = fetch(withDigest(location, digest), { method: 'PUT', headers: { 'Content-Range': `${split}-${data.length - 1}` }, body: data.subarray(split) });
        const answer = await answerWithin(closing);
        assert.ok(answer, 'the answer did not wait for the unlink of the session file');
        assert.equal(answer.status, 201, await answer.text());
        assert.deepEqual(uploadFiles(registry.root, repo), [], 'the session file left .uploads before the answer');
        assert.deepEqual(closingMarkers(), [], 'and its closing marker went');
        assert.equal(hold.held().length, 1, 'its unlink was started');
        assert.deepEqual(temporaryFilesInUse(), hold.held().map((file) => path.basename(file)), 'the session file waits for it in the temporary directory');
      } finally {
        hold.release();
      }
      await staging().removalsSettled();
      assert.deepEqual(temporaryFilesInUse(), [], 'no file is left in the temporary directory');
      assert.equal((await sessionStatus(location)).status, 404, 'the session is over');
      assert.ok((await pullBlob(registry.url, repo, digest)).equals(data), `${repo} serves the blob whole`);
      await assertReplayClean(registry);
    });
  }
});

describe('shutdown with an unneeded file still to unlink', () => {
  it('waits for the unlink: the temporary directory is empty once the registry has stopped', async () => {
    const registry = await startTestRegistry({ storage: { dedupe: true, gc: false } });
    const temporaryDirectory = path.join(registry.root, TEMP_DIR);
    const data = randomBytes(2 * 1024 * 1024);
    const order: string[] = [];
    let stopped: Promise<void> | undefined;
    const hold = holdUnlinks(temporaryDirectory);
    try {
      await pushBlob(registry.url, 'stopping/holder', data);
      const answer = await answerWithin(postWhole(registry.url, 'stopping/linked', data));
      assert.equal(answer?.status, 201);
      assert.equal(hold.held().length, 1, 'the unlink of the temporary file was started');
      stopped = registry.stop().then(() => void order.push('stopped'));
      // Far longer than a stop takes with nothing to wait for.
      await new Promise((resolve) => setTimeout(resolve, 500));
      order.push('unlink released');
    } finally {
      hold.release();
      await (stopped ?? registry.stop());
    }
    assert.deepEqual(order, ['unlink released', 'stopped'], 'the stop waited for the held unlink');
    assert.deepEqual(fs.readdirSync(temporaryDirectory), [], 'no file is left in the temporary directory');
  });
});

describe('an unneeded file whose unlink fails', () => {
  it('is logged as a warning, leaves the answer a 201, and goes at the next start', async () => {
    const root = path.join(makeTempDir(), 'root');
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    const registry = await startTestRegistry({ root, storage: { dedupe: true, gc: false } }, { logger });
    const temporaryDirectory = path.join(root, TEMP_DIR);
    const data = randomBytes(64 * 1024);
    let left: string[] = [];
    let running = true;
    try {
      const digest = await pushBlob(registry.url, 'failing/holder', data);
      const hold = holdUnlinks(temporaryDirectory);
      try {
        const answer = await answerWithin(postWhole(registry.url, 'failing/linked', data));
        assert.equal(answer?.status, 201);
        left = hold.held();
        assert.equal(left.length, 1, 'the unlink of the temporary file was started');
      } finally {
        hold.release(Object.assign(new Error('injected unlink failure'), { code: 'EIO' }));
      }
      running = false;
      await registry.stop();
      assert.ok(
        warnings.some((line) => line.includes('failed to remove an unneeded upload file in the background') && line.includes(path.basename(left[0] ?? '?'))),
        'the failure is logged with the file',
      );
      assert.ok(fs.existsSync(left[0] ?? ''), 'the file is left in the temporary directory');
      const restarted = await startTestRegistry({ root, storage: { dedupe: true, gc: false } });
      try {
        assert.ok(!fs.existsSync(left[0] ?? ''), 'the start cleared it');
        assert.ok((await pullBlob(restarted.url, 'failing/linked', digest)).equals(data));
      } finally {
        await restarted.stop();
      }
    } finally {
      if (running) await registry.stop();
    }
  });
});
