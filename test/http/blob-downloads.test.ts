// Blob GETs from the filesystem, which go to the socket from a pool of reused read buffers
// (http/file-body.ts): concurrent downloads of different blobs each get their own bytes, blobs
// larger than a download's buffers and ranges across the reads are exact, and clients that go
// away mid-download (also one that stopped reading first) leave no blob file open and the
// registry serving the next ones whole.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../helpers/http.js';
import { pushBlob, sha256 } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const MiB = 1024 * 1024;
let registry: TestRegistry;
// Larger than one download's buffers (a few MiB), with odd tails; and one small body.
const blobs = [randomBytes(9 * MiB + 123), randomBytes(8 * MiB + 7), randomBytes(5000)];
// Larger than what the kernel's socket buffers hold for a client that stops reading.
const stalled = randomBytes(48 * MiB + 5);

before(async () => {
  registry = await startTestRegistry();
  for (const blob of [...blobs, stalled]) await pushBlob(registry.url, 'downloads', blob);
});

/** Blob files of the registry's root that this process (the registry runs in it) holds open. */
function openBlobFiles(): string[] {
  const open: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(path.join('/proc/self/fd', fd));
      if (target.startsWith(registry.root + path.sep) && target.includes(`${path.sep}blobs${path.sep}`)) open.push(target);
    } catch {
      // closed between the listing and the read
    }
  }
  return open;
}

/** Reads the first bytes of a download, stops reading (the registry waits on the socket), then drops it. */
function stallThenDrop(digest: string, afterBytes: number, whileStalled: () => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${registry.url}/v2/downloads/blobs/${digest}`, (res) => {
      let seen = 0;
      const onData = (chunk: Buffer): void => {
        seen += chunk.length;
        if (seen < afterBytes) return;
        res.off('data', onData);
        res.pause();
        whileStalled().then(
          () => {
            req.destroy();
            resolve();
          },
          (err: Error) => {
            req.destroy();
            reject(err);
          },
        );
      };
      res.on('data', onData);
    });
    req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve() : reject(err)));
  });
}
after(async () => {
  await registry.stop();
});

async function download(digest: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer }> {
  const res = await fetch(`${registry.url}/v2/downloads/blobs/${digest}`, { headers });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

/** Reads the first bytes of a download, then drops the connection. */
function abandonDownload(digest: string, afterBytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${registry.url}/v2/downloads/blobs/${digest}`, (res) => {
      let seen = 0;
      res.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen >= afterBytes) {
          req.destroy();
          resolve();
        }
      });
      res.on('end', () => resolve());
    });
    req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve() : reject(err)));
  });
}

describe('blob downloads from reused buffers', () => {
  it('serves concurrent downloads of different blobs each their own bytes', async () => {
    const results = await Promise.all([0, 1, 2, 0, 1, 2].map((i) => download(sha256(blobs[i] as Buffer)).then((r) => ({ i, ...r }))));
    for (const { i, status, body } of results) {
      assert.equal(status, 200);
      assert.equal(body.length, (blobs[i] as Buffer).length);
      assert.ok(body.equals(blobs[i] as Buffer), `download of blob ${i} has its bytes`);
    }
  });

  it('serves a range across read boundaries exactly, with its headers', async () => {
    const blob = blobs[0] as Buffer;
    const start = 4 * MiB - 10;
    const end = 8 * MiB + 10;
    const res = await fetch(`${registry.url}/v2/downloads/blobs/${sha256(blob)}`, { headers: { Range: `bytes=${start}-${end}` } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes ${start}-${end}/${blob.length}`);
    assert.equal(res.headers.get('content-length'), String(end - start + 1));
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(blob.subarray(start, end + 1)));
  });

  it('answers HEAD with the size and no body', async () => {
    const blob = blobs[1] as Buffer;
    const res = await fetch(`${registry.url}/v2/downloads/blobs/${sha256(blob)}`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), String(blob.length));
    assert.equal(res.headers.get('docker-content-digest'), sha256(blob));
  });

  it('serves a small range of a large blob, and a range that ends at the last byte', async () => {
    const blob = blobs[0] as Buffer;
    for (const [start, end] of [
      [5 * MiB + 1, 5 * MiB + 100],
      [blob.length - 70_000, blob.length - 1],
    ] as const) {
      const res = await fetch(`${registry.url}/v2/downloads/blobs/${sha256(blob)}`, { headers: { Range: `bytes=${start}-${end}` } });
      assert.equal(res.status, 206);
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(blob.subarray(start, end + 1)), `range ${start}-${end}`);
    }
  });

  it('closes the blob file when a client that stopped reading goes away', async () => {
    let openWhileStalled: string[] = [];
    await stallThenDrop(sha256(stalled), 1, async () => {
      // The registry is still sending: it holds the file while it waits on the socket.
      await eventually(async () => openBlobFiles().length > 0, 'the download to hold its file open');
      await new Promise((resolve) => setTimeout(resolve, 200));
      openWhileStalled = openBlobFiles();
    });
    assert.equal(openWhileStalled.length, 1, `one file open while the client stalls: ${openWhileStalled.join(', ')}`);
    await eventually(async () => openBlobFiles().length === 0, 'the blob file to be closed after the client went away');
    const res = await download(sha256(stalled));
    assert.equal(res.status, 200);
    assert.ok(res.body.equals(stalled), 'the blob is served whole after the dropped download');
  });

  it('keeps serving whole blobs after clients go away mid-download', async () => {
    await Promise.all(blobs.flatMap((blob) => [abandonDownload(sha256(blob), 1), abandonDownload(sha256(blob), 2 * MiB)]));
    await eventually(async () => openBlobFiles().length === 0, 'every blob file to be closed after the abandoned downloads');
    const results = await Promise.all(blobs.map((blob) => download(sha256(blob))));
    results.forEach(({ status, body }, i) => {
      assert.equal(status, 200);
      assert.ok(body.equals(blobs[i] as Buffer), `blob ${i} is served whole after abandoned downloads`);
    });
  });
});
