// The one test suite every storage driver passes (as distribution's driver/testsuites): each
// method's contract from src/storage/driver.ts, on the paths the registry really uses.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { PathNotFoundError, SizeMismatchError, type StorageDriver } from '../../src/storage/driver.js';

const MIB = 1024 * 1024;
/** One more than S3's 1000 keys per listing, so that listings and deletions take two pages. */
const PAGE_PLUS_ONE = 1001;

export interface DriverUnderTest {
  driver: StorageDriver;
  /** A local directory for the files handed to putFile (an upload's staging area). */
  stagingDir: string;
  /** Whether `link` shares one copy (a hard link, same fileId) rather than copying. */
  linksShareBytes: boolean;
  cleanup(): Promise<void>;
}

export interface DriverSuiteOptions {
  /** Size of the file that putFile must send in several parts (S3: more than one chunksize). */
  multipartBytes?: number;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A stream of `data` in chunks of `chunk` bytes, as a request body arrives. */
function streamOf(data: Buffer, chunk = 64 * 1024): Readable {
  const pieces: Buffer[] = [];
  for (let at = 0; at < data.length; at += chunk) pieces.push(data.subarray(at, at + chunk));
  return Readable.from(pieces);
}

/** A stream that sends `data` and then fails, as a client that disconnects. */
function failingStreamOf(data: Buffer): Readable {
  return Readable.from(
    (async function* () {
      yield data;
      throw new Error('client went away');
    })(),
  );
}

const isPathNotFound = (err: unknown): boolean => err instanceof PathNotFoundError;
const isSizeMismatch = (err: unknown): boolean => err instanceof SizeMismatchError;

export function describeDriverSuite(
  name: string,
  makeDriver: () => Promise<DriverUnderTest>,
  options: DriverSuiteOptions = {},
): void {
  const multipartBytes = options.multipartBytes ?? 12 * MIB;

  describe(`storage driver suite: ${name}`, () => {
    let subject: DriverUnderTest;
    let driver: StorageDriver;
    let staged = 0;

    before(async () => {
      subject = await makeDriver();
      driver = subject.driver;
    });
    after(async () => {
      await subject.cleanup();
    });

    /** `count` small files directly in `dir`, written a few at a time; returns their names. */
    async function putMany(dir: string, count: number): Promise<string[]> {
      const names = Array.from({ length: count }, (_, i) => `f${String(i).padStart(5, '0')}`);
      for (let at = 0; at < names.length; at += 16) {
        await Promise.all(names.slice(at, at + 16).map((name) => driver.putContent(`${dir}/${name}`, name)));
      }
      return names;
    }

    /** A local file with `data`, as an upload staged on disk. */
    async function stage(data: Buffer): Promise<string> {
      const file = path.join(subject.stagingDir, `upload-${++staged}`);
      await fs.writeFile(file, data);
      return file;
    }

    describe('stat', () => {
      it('is undefined for a missing path', async () => {
        assert.equal(await driver.stat('stat/missing'), undefined);
      });
      it('gives the size and kind of a file', async () => {
        await driver.putContent('stat/file', Buffer.alloc(123, 1));
        const info = await driver.stat('stat/file');
        assert.ok(info);
        assert.equal(info.size, 123);
        assert.equal(info.isDirectory, false);
        assert.ok(info.modTime instanceof Date && !Number.isNaN(info.modTime.getTime()));
        assert.ok(Math.abs(info.modTime.getTime() - Date.now()) < 5 * 60 * 1000, 'modTime is about now');
      });
      it('sees a directory where files live below a path', async () => {
        await driver.putContent('stat/dir/sub/file', 'x');
        assert.equal((await driver.stat('stat/dir'))?.isDirectory, true);
        assert.equal((await driver.stat('stat/dir/sub'))?.isDirectory, true);
      });
      it('sees a directory that holds many files (S3: a listing cut short after one key)', async () => {
        for (const file of ['oci-layout', 'index.json', 'blobs/sha256/a', 'blobs/sha256/b']) await driver.putContent(`stat/repo/${file}`, 'x');
        assert.equal((await driver.stat('stat/repo'))?.isDirectory, true);
        assert.equal((await driver.stat('stat/repo/blobs'))?.isDirectory, true);
      });
      it('does not take a prefix of a name for a directory', async () => {
        await driver.putContent('stat/prefix-of/file', 'x');
        assert.equal(await driver.stat('stat/prefix'), undefined);
        assert.equal(await driver.stat('stat/prefix-of/fi'), undefined);
      });
    });

    describe('getContent and putContent', () => {
      it('round-trips bytes and strings', async () => {
        const bytes = randomBytes(4096);
        await driver.putContent('content/bytes', bytes);
        assert.deepEqual(await driver.getContent('content/bytes'), bytes);
        await driver.putContent('content/text', '{"imageLayoutVersion":"1.0.0"}');
        assert.equal((await driver.getContent('content/text')).toString(), '{"imageLayoutVersion":"1.0.0"}');
      });
      it('replaces what is there, longer or shorter', async () => {
        await driver.putContent('content/over', 'a much longer first version');
        await driver.putContent('content/over', 'short');
        assert.equal((await driver.getContent('content/over')).toString(), 'short');
        assert.equal((await driver.stat('content/over'))?.size, 5);
      });
      it('writes an empty file', async () => {
        await driver.putContent('content/empty', Buffer.alloc(0));
        assert.equal((await driver.getContent('content/empty')).length, 0);
        assert.equal((await driver.stat('content/empty'))?.size, 0);
      });
      it('throws PathNotFoundError for a missing file', async () => {
        await assert.rejects(driver.getContent('content/missing'), isPathNotFound);
      });
    });

    describe('reader', () => {
      const data = randomBytes(100_000);
      before(async () => {
        await driver.putContent('reader/file', data);
      });
      it('streams the whole file', async () => {
        assert.deepEqual(await readAll(await driver.reader('reader/file')), data);
      });
      it('streams the first byte', async () => {
        assert.deepEqual(await readAll(await driver.reader('reader/file', { start: 0, end: 0 })), data.subarray(0, 1));
      });
      it('streams the last byte', async () => {
        const last = data.length - 1;
        assert.deepEqual(await readAll(await driver.reader('reader/file', { start: last, end: last })), data.subarray(last));
      });
      it('streams a range in the middle, both ends inclusive', async () => {
        const range = { start: 4_321, end: 65_000 };
        assert.deepEqual(await readAll(await driver.reader('reader/file', range)), data.subarray(range.start, range.end + 1));
      });
      it('throws PathNotFoundError for a missing file, with or without a range', async () => {
        await assert.rejects(driver.reader('reader/missing'), isPathNotFound);
        await assert.rejects(driver.reader('reader/missing', { start: 0, end: 9 }), isPathNotFound);
      });
    });

    describe('append', () => {
      it('creates a file and returns the bytes written', async () => {
        const data = randomBytes(200_000);
        assert.equal(await driver.append('append/new', streamOf(data)), data.length);
        assert.deepEqual(await driver.getContent('append/new'), data);
      });
      it('appends to an existing file', async () => {
        const first = randomBytes(1000);
        const second = randomBytes(3000);
        await driver.putContent('append/existing', first);
        assert.equal(await driver.append('append/existing', streamOf(second, 700), second.length), second.length);
        assert.deepEqual(await driver.getContent('append/existing'), Buffer.concat([first, second]));
      });
      it('appends across several parts', async () => {
        const first = randomBytes(6 * MIB);
        const second = randomBytes(6 * MIB + 5);
        await driver.putContent('append/large', first);
        assert.equal(await driver.append('append/large', streamOf(second, 256 * 1024)), second.length);
        const content = await readAll(await driver.reader('append/large'));
        assert.equal(sha256(content), sha256(Buffer.concat([first, second])));
      });
      it('fails a stream shorter than exactLength and leaves the file as it was', async () => {
        await driver.putContent('append/short', 'before');
        await assert.rejects(driver.append('append/short', streamOf(Buffer.from('abc')), 4), (err: unknown) => {
          return isSizeMismatch(err) && (err as SizeMismatchError).expected === 4 && (err as SizeMismatchError).actual === 3;
        });
        assert.equal((await driver.getContent('append/short')).toString(), 'before');
      });
      it('fails a stream longer than exactLength and leaves the file as it was', async () => {
        await driver.putContent('append/long', 'before');
        await assert.rejects(driver.append('append/long', streamOf(Buffer.from('abcdef'), 2), 4), isSizeMismatch);
        assert.equal((await driver.getContent('append/long')).toString(), 'before');
      });
      it('leaves the file as it was when the stream fails', async () => {
        await driver.putContent('append/broken', 'before');
        await assert.rejects(driver.append('append/broken', failingStreamOf(randomBytes(1000))), /client went away/);
        assert.equal((await driver.getContent('append/broken')).toString(), 'before');
      });
      it('leaves the file as it was when the stream fails after several parts', async () => {
        await driver.putContent('append/broken-large', 'before');
        await assert.rejects(driver.append('append/broken-large', failingStreamOf(randomBytes(11 * MIB))), /client went away/);
        assert.equal((await driver.getContent('append/broken-large')).toString(), 'before');
      });
      it('leaves no bytes behind when a new file fails', async () => {
        await assert.rejects(driver.append('append/never', streamOf(Buffer.from('abc')), 10), isSizeMismatch);
        assert.equal((await driver.stat('append/never'))?.size ?? 0, 0);
      });
    });

    describe('sync', () => {
      it('succeeds on a written file', async () => {
        await driver.putContent('sync/file', 'x');
        await driver.sync('sync/file');
      });
    });

    describe('putFile', () => {
      it('puts a small local file in place and leaves the local file as it was', async () => {
        const data = randomBytes(10_000);
        const local = await stage(data);
        await driver.putFile(local, 'putfile/small');
        assert.deepEqual(await driver.getContent('putfile/small'), data);
        assert.deepEqual(await fs.readFile(local), data);
      });
      it(`puts a ${Math.round(multipartBytes / MIB)} MiB file byte for byte`, async () => {
        const data = randomBytes(multipartBytes);
        const local = await stage(data);
        await driver.putFile(local, 'library/alpine/blobs/sha256/large');
        assert.equal((await driver.stat('library/alpine/blobs/sha256/large'))?.size, data.length);
        assert.equal(sha256(await readAll(await driver.reader('library/alpine/blobs/sha256/large'))), sha256(data));
        assert.equal((await fs.stat(local)).size, data.length);
      });
      it('puts an empty file', async () => {
        const local = await stage(Buffer.alloc(0));
        await driver.putFile(local, 'putfile/empty');
        assert.equal((await driver.stat('putfile/empty'))?.size, 0);
      });
      it('replaces what is there', async () => {
        await driver.putContent('putfile/over', 'old content');
        await driver.putFile(await stage(Buffer.from('new')), 'putfile/over');
        assert.equal((await driver.getContent('putfile/over')).toString(), 'new');
      });
      it('fails for a missing local file and writes nothing', async () => {
        await assert.rejects(driver.putFile(path.join(subject.stagingDir, 'no-such-upload'), 'putfile/none'));
        assert.equal(await driver.stat('putfile/none'), undefined);
      });
    });

    describe('move', () => {
      it('moves a file, replacing the target', async () => {
        await driver.putContent('move/from', 'moved');
        await driver.putContent('move/to', 'replaced');
        await driver.move('move/from', 'move/to');
        assert.equal(await driver.stat('move/from'), undefined);
        assert.equal((await driver.getContent('move/to')).toString(), 'moved');
      });
      it('creates the directories of the target', async () => {
        await driver.putContent('move/a', 'x');
        await driver.move('move/a', 'move/deep/er/b');
        assert.equal((await driver.getContent('move/deep/er/b')).toString(), 'x');
      });
      it('fails for a missing source', async () => {
        await assert.rejects(driver.move('move/missing', 'move/target'));
        assert.equal(await driver.stat('move/target'), undefined);
      });
    });

    describe('link', () => {
      it('makes the target hold the same bytes', async () => {
        const data = randomBytes(5000);
        await driver.putContent('link/source', data);
        await driver.link('link/source', 'link/other/target');
        assert.deepEqual(await driver.getContent('link/other/target'), data);
        assert.deepEqual(await driver.getContent('link/source'), data);
        const [source, target] = [await driver.stat('link/source'), await driver.stat('link/other/target')];
        if (subject.linksShareBytes) {
          assert.ok(source?.fileId);
          assert.equal(target?.fileId, source.fileId);
        }
      });
      it('keeps either name when the other is deleted', async () => {
        await driver.putContent('link/keep', 'kept');
        await driver.link('link/keep', 'link/copy');
        await driver.delete('link/keep');
        assert.equal((await driver.getContent('link/copy')).toString(), 'kept');
        await driver.link('link/copy', 'link/keep');
        await driver.delete('link/copy');
        assert.equal((await driver.getContent('link/keep')).toString(), 'kept');
      });
      it('replaces what is at the target', async () => {
        await driver.putContent('link/new', 'new');
        await driver.putContent('link/old', 'old');
        await driver.link('link/new', 'link/old');
        assert.equal((await driver.getContent('link/old')).toString(), 'new');
      });
      it('throws PathNotFoundError for a missing source', async () => {
        await assert.rejects(driver.link('link/missing', 'link/target'), isPathNotFound);
        assert.equal(await driver.stat('link/target'), undefined);
      });
    });

    describe('delete', () => {
      it('removes a file', async () => {
        await driver.putContent('delete/file', 'x');
        await driver.delete('delete/file');
        assert.equal(await driver.stat('delete/file'), undefined);
      });
      it('removes a whole tree and nothing beside it', async () => {
        const hex = 'a'.repeat(64);
        for (const file of ['oci-layout', 'index.json', `blobs/sha256/${hex}`, 'nested/repo/oci-layout']) {
          await driver.putContent(`delete/library/alpine/${file}`, 'x');
        }
        await driver.putContent('delete/library/alpine2/oci-layout', 'sibling');
        await driver.putContent('delete/library/alpine.json', 'sibling');
        await driver.delete('delete/library/alpine');
        assert.equal(await driver.stat('delete/library/alpine'), undefined);
        assert.equal(await driver.stat(`delete/library/alpine/blobs/sha256/${hex}`), undefined);
        assert.deepEqual((await driver.list('delete/library')).sort(), ['alpine.json', 'alpine2']);
        assert.equal((await driver.getContent('delete/library/alpine2/oci-layout')).toString(), 'sibling');
      });
      it(`removes a tree of more than one listing page (${PAGE_PLUS_ONE} files)`, async () => {
        await putMany('delete/many', PAGE_PLUS_ONE);
        await driver.delete('delete/many');
        assert.equal(await driver.stat('delete/many'), undefined);
        assert.deepEqual(await driver.list('delete/many'), []);
      });
      it('accepts a path where nothing is', async () => {
        await driver.delete('delete/nothing/here');
        await driver.delete('delete/nothing');
      });
    });

    describe('list', () => {
      it('names the files and directories directly inside', async () => {
        for (const file of ['a', 'b/c', 'd/e/f', 'd/g']) await driver.putContent(`list/dir/${file}`, 'x');
        assert.deepEqual((await driver.list('list/dir')).sort(), ['a', 'b', 'd']);
        assert.deepEqual((await driver.list('list/dir/d')).sort(), ['e', 'g']);
      });
      it(`names every entry of a directory of more than one listing page (${PAGE_PLUS_ONE} files)`, async () => {
        const names = await putMany('list/many', PAGE_PLUS_ONE);
        assert.deepEqual((await driver.list('list/many')).sort(), names.sort());
      });
      it('is empty for a missing directory or a file', async () => {
        assert.deepEqual(await driver.list('list/missing'), []);
        await driver.putContent('list/file', 'x');
        assert.deepEqual(await driver.list('list/file'), []);
      });
      it('walks nested repository names down to their blobs', async () => {
        const hex = createHash('sha256').update('alpine').digest('hex');
        await driver.putContent(`list/library/alpine/blobs/sha256/${hex}`, 'alpine');
        await driver.putContent('list/library/alpine/oci-layout', '{}');
        await driver.putContent('list/library/alpine/sub/oci-layout', '{}');
        assert.deepEqual(await driver.list('list/library'), ['alpine']);
        assert.deepEqual((await driver.list('list/library/alpine')).sort(), ['blobs', 'oci-layout', 'sub']);
        assert.deepEqual(await driver.list('list/library/alpine/blobs/sha256'), [hex]);
        assert.equal((await driver.getContent(`list/library/alpine/blobs/sha256/${hex}`)).toString(), 'alpine');
      });
    });
  });
}
