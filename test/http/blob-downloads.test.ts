// Blob GETs from the filesystem, which go to the socket from a pool of reused read buffers
// (http/file-body.ts): concurrent downloads of different blobs each get their own bytes, ranges
// across the 1 MiB reads are exact, and clients that go away mid-download leave the registry
// serving the next ones whole.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { pushBlob, sha256 } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const MiB = 1024 * 1024;
let registry: TestRegistry;
const blobs = [randomBytes(6 * MiB + 123), randomBytes(5 * MiB + 7)];

before(async () => {
  registry = await startTestRegistry();
  for (const blob of blobs) await pushBlob(registry.url, 'downloads', blob);
});
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
    const results = await Promise.all([0, 1, 0, 1, 0, 1].map((i) => download(sha256(blobs[i] as Buffer)).then((r) => ({ i, ...r }))));
    for (const { i, status, body } of results) {
      assert.equal(status, 200);
      assert.equal(body.length, (blobs[i] as Buffer).length);
      assert.ok(body.equals(blobs[i] as Buffer), `download of blob ${i} has its bytes`);
    }
  });

  it('serves a range across read boundaries exactly, with its headers', async () => {
    const blob = blobs[0] as Buffer;
    const start = MiB - 10;
    const end = 3 * MiB + 10;
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

  it('keeps serving whole blobs after clients go away mid-download', async () => {
    await Promise.all(blobs.flatMap((blob) => [abandonDownload(sha256(blob), 1), abandonDownload(sha256(blob), 2 * MiB)]));
    const results = await Promise.all(blobs.map((blob) => download(sha256(blob))));
    results.forEach(({ status, body }, i) => {
      assert.equal(status, 200);
      assert.ok(body.equals(blobs[i] as Buffer), `blob ${i} is served whole after abandoned downloads`);
    });
  });
});
