// The filesystem driver against the shared driver suite, plus what only it has: file identities.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { FilesystemDriver } from '../../src/storage/filesystem.js';
import { TEMP_DIR } from '../../src/storage/layout.js';
import { describeDriverSuite, type DriverUnderTest } from './driver-suite.js';

async function makeFilesystemDriver(): Promise<DriverUnderTest> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'zot-ts-fs-driver-'));
  const root = path.join(dir, 'root');
  const stagingDir = path.join(dir, 'staging');
  await fs.mkdir(root);
  await fs.mkdir(stagingDir);
  return {
    driver: new FilesystemDriver(root, TEMP_DIR),
    stagingDir,
    linksShareBytes: true,
    cleanup: () => fs.rm(dir, { recursive: true, force: true }),
  };
}

describeDriverSuite('filesystem', makeFilesystemDriver);

describe('filesystem driver file identities', () => {
  it('gives independent files different fileIds, and a link the same one', async () => {
    const { driver, cleanup } = await makeFilesystemDriver();
    try {
      await driver.putContent('a', 'same bytes');
      await driver.putContent('b', 'same bytes');
      await driver.link('a', 'c');
      const [a, b, c] = [await driver.stat('a'), await driver.stat('b'), await driver.stat('c')];
      assert.ok(a?.fileId && b?.fileId);
      assert.notEqual(a.fileId, b.fileId);
      assert.equal(c?.fileId, a.fileId);
    } finally {
      await cleanup();
    }
  });

  it('never writes through to another name of a file: appends and truncates copy a linked file first', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'zot-ts-fs-driver-'));
    const driver = new FilesystemDriver(dir, TEMP_DIR);
    const local = (relative: string): string => driver.localPath(relative);
    try {
      // An upload staged in the root, placed by putFile (a second name), whose commit then failed.
      await driver.putContent('repo/.uploads/session', 'acknowledged');
      await driver.putFile(local('repo/.uploads/session'), 'repo/blobs/sha256/placed');
      assert.equal((await driver.stat('repo/.uploads/session'))?.fileId, (await driver.stat('repo/blobs/sha256/placed'))?.fileId);
      await driver.append('repo/.uploads/session', Readable.from([Buffer.from(' and more')]));
      assert.equal((await driver.getContent('repo/.uploads/session')).toString(), 'acknowledged and more');
      assert.equal((await driver.getContent('repo/blobs/sha256/placed')).toString(), 'acknowledged');

      await driver.putFile(local('repo/.uploads/session'), 'repo/blobs/sha256/again');
      await driver.truncate('repo/.uploads/session', 3);
      assert.equal((await driver.getContent('repo/.uploads/session')).toString(), 'ack');
      assert.equal((await driver.getContent('repo/blobs/sha256/again')).toString(), 'acknowledged and more');
      await driver.truncate('repo/.uploads/session', 1);
      assert.equal((await driver.getContent('repo/.uploads/session')).toString(), 'a');
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('reads through a local path', async () => {
    const { driver, cleanup } = await makeFilesystemDriver();
    try {
      await driver.putContent('x/y', 'local');
      const local = driver.localPath('x/y');
      assert.ok(local);
      assert.equal(await fs.readFile(local, 'utf8'), 'local');
    } finally {
      await cleanup();
    }
  });
});
