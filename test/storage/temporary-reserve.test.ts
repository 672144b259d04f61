// Temporary files made ahead (src/storage/temporary-reserve.ts): the files a push writes whole are
// created by the libuv pool, not on the event loop; a registry that stops leaves none of them, nor
// their descriptors; what a crash leaves goes at the next start; a reserve that cannot create
// files hands out none and does not retry on its own.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { sha256 } from '../helpers/oci.js';
import { makeTempDir, spawnRegistry, startTestRegistry } from '../helpers/registry.js';
import { spawnTraced, stopTraced, tracedPid } from '../helpers/strace.js';
import { TEMP_DIR } from '../../src/storage/layout.js';
import { TemporaryFileReserve } from '../../src/storage/temporary-reserve.js';

/** Pushes a blob in one request (POST ?digest=) and checks it reads back whole. */
async function pushBlob(url: string, repo: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: data,
  });
  assert.equal(res.status, 201, await res.text());
  const back = await fetch(`${url}/v2/${repo}/blobs/${digest}`);
  assert.equal(back.status, 200);
  assert.ok(Buffer.from(await back.arrayBuffer()).equals(data), `${repo}@${digest} reads back as pushed`);
  return digest;
}

function temporaryFiles(root: string): string[] {
  try {
    return fs.readdirSync(path.join(root, TEMP_DIR));
  } catch {
    return [];
  }
}

/** Waits until the temporary directory holds `count` files (the reserve, full). */
async function untilTemporaryFiles(root: string, count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (temporaryFiles(root).length !== count) {
    assert.ok(Date.now() < deadline, `the temporary directory holds ${count} files: ${temporaryFiles(root).length}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** This process's descriptors open on files under `dir`. */
function descriptorsUnder(dir: string): string[] {
  return fs
    .readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return ''; // closed meanwhile (readdir's own descriptor)
      }
    })
    .filter((target) => target.startsWith(dir + path.sep));
}

const RESERVE_FILES = 16;

describe('temporary files made ahead', () => {
  it('are created off the event loop, and each push writes one of them', async (t: TestContext) => {
    const traced = await spawnTraced(t, ['-e', 'trace=openat,rename']);
    if (!traced) return;
    const { registry, traceFile, root } = traced;
    const mainThread = tracedPid(registry.child.pid as number);
    const digests: string[] = [];
    try {
      // The first body starts the reserve: its own file is opened where it is needed.
      digests.push(await pushBlob(registry.url, 'reserve/a', randomBytes(20_000)));
      await untilTemporaryFiles(root, RESERVE_FILES);
      for (let i = 0; i < 6; i++) digests.push(await pushBlob(registry.url, 'reserve/a', randomBytes(10_000 + i)));
    } finally {
      await stopTraced(registry.child);
    }
    // "TID syscall(...)": which thread created each temporary file, and where each went.
    const lines = fs.readFileSync(traceFile, 'utf8').split('\n');
    const createdBy = new Map<string, number>();
    const renamedTo = new Map<string, string>();
    for (const line of lines) {
      const created = /^(\d+)\s+openat\(AT_FDCWD, "([^"]*\.tmp)", [^)]*O_CREAT/.exec(line);
      if (created) createdBy.set(created[2] as string, Number(created[1]));
      const renamed = /^\d+\s+rename\("([^"]*)", "([^"]*)"/.exec(line);
      if (renamed) renamedTo.set(path.basename(renamed[2] as string), renamed[1] as string);
    }
    const creators = digests.slice(1).map((digest) => {
      const temp = renamedTo.get(digest.slice('sha256:'.length));
      assert.ok(temp !== undefined, `${digest} was renamed into place from a temporary file`);
      const creator = createdBy.get(temp);
      assert.ok(creator !== undefined, `${temp} was created in the trace`);
      return creator;
    });
    assert.ok(
      creators.every((tid) => tid !== mainThread),
      `every body after the first was written to a file the pool made, not the event loop (thread ${mainThread}): ${creators.join(', ')}`,
    );
  });

  it('are closed and removed when the registry stops', async () => {
    const registry = await startTestRegistry();
    const temp = path.join(registry.root, TEMP_DIR);
    try {
      await pushBlob(registry.url, 'reserve/b', randomBytes(5_000));
      await untilTemporaryFiles(registry.root, RESERVE_FILES);
      assert.equal(descriptorsUnder(temp).length, RESERVE_FILES, 'the reserve holds its files open');
    } finally {
      await registry.stop();
    }
    assert.deepEqual(temporaryFiles(registry.root), [], 'no temporary file is left');
    assert.deepEqual(descriptorsUnder(temp), [], 'no descriptor is left open');
  });

  it('left by a crash, are gone at the next start, and pushes go on', async () => {
    const root = path.join(makeTempDir('zot-ts-reserve-'), 'root');
    const first = await spawnRegistry({ root });
    const before = await pushBlob(first.url, 'reserve/c', randomBytes(5_000));
    await untilTemporaryFiles(root, RESERVE_FILES);
    await first.kill();
    assert.equal(temporaryFiles(root).length, RESERVE_FILES, 'the crash left the reserve behind');
    const second = await spawnRegistry({ root });
    try {
      assert.deepEqual(temporaryFiles(root), [], 'the start cleared them');
      const after = await pushBlob(second.url, 'reserve/c', randomBytes(6_000));
      const listed = fs.readdirSync(path.join(root, 'reserve/c/blobs/sha256')).sort();
      assert.deepEqual(listed, [before, after].map((digest) => digest.slice('sha256:'.length)).sort());
    } finally {
      await second.stop();
    }
  });

  it('hands out none while files cannot be created, and tries again only when asked', async () => {
    const missing = path.join(makeTempDir('zot-ts-reserve-'), 'gone');
    let attempts = 0;
    const reserve = new TemporaryFileReserve(async () => {
      attempts++;
      return path.join(missing, `${randomUUID()}.tmp`);
    }, 4);
    try {
      assert.equal(reserve.take(), undefined, 'nothing is ready at first');
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(attempts, 4, 'one attempt per missing file');
      assert.equal(reserve.take(), undefined, 'every creation failed');
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(attempts, 8, 'a take tries again, once per missing file');
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(attempts, 8, 'and nothing tries on its own');
      fs.mkdirSync(missing);
      reserve.take();
      await new Promise((resolve) => setTimeout(resolve, 100));
      const file = reserve.take();
      assert.ok(file !== undefined, 'once the directory is there, files are made');
      assert.equal(path.dirname(file.localPath), missing);
      assert.equal(fs.fstatSync(file.fd).size, 0);
      fs.closeSync(file.fd);
    } finally {
      reserve.destroy();
    }
    // A creation still in flight at destroy() is removed when it returns.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(fs.readdirSync(missing).length, 1, 'destroy removed all but the file taken');
  });
});
