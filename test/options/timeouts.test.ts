// http.readTimeout and http.writeTimeout through real sockets: a client that stops sending the
// body it announced is cut off, and so is one that stops reading a download; a slow upload and
// a slow download that keep moving run to the end, well past the timeout. No assertion is about
// speed: the slow transfers are built to outlast the timeout, and the stalled ones are waited
// for with a generous bound.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { openSession } from '../helpers/http.js';
import { pushBlob, sha256 } from '../helpers/oci.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const READ_TIMEOUT_MS = 2000;
const WRITE_TIMEOUT_MS = 1000;
const GIVE_UP_MS = 30_000;
const BLOB = randomBytes(16 * 1024 * 1024);

let registry: TestRegistry;
const logLines: { msg?: string }[] = [];

before(async () => {
  const logger = pino(
    { level: 'warn' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) logLines.push(JSON.parse(line) as { msg?: string });
        done();
      },
    }),
  );
  registry = await startTestRegistry({ http: { readTimeout: `${READ_TIMEOUT_MS}ms`, writeTimeout: `${WRITE_TIMEOUT_MS}ms` } }, { logger });
  await pushBlob(registry.url, 'slow/blob', BLOB);
});
after(async () => {
  await registry.stop();
});

function connect(): Promise<net.Socket> {
  const { port } = new URL(registry.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Resolves when the socket closes; rejects after GIVE_UP_MS. */
function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the registry kept the socket open for ${GIVE_UP_MS} ms`)), GIVE_UP_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

describe('http.readTimeout', () => {
  it('cuts off a client that stops sending the body it announced', async () => {
    const session = new URL(await openSession(registry.url, 'slow/stalled'));
    const socket = await connect();
    socket.on('error', () => undefined);
    socket.write(
      `PATCH ${session.pathname}${session.search} HTTP/1.1\r\nHost: ${session.host}\r\n` +
        'Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n' +
        'x'.repeat(10),
    );
    await closed(socket);
    assert.ok(
      logLines.some((line) => line.msg === 'request cut off: no bytes received within http.readTimeout'),
      'the cut is logged',
    );
  });

  it('cuts off a client that stops sending a chunked body', async () => {
    const session = new URL(await openSession(registry.url, 'slow/stalled-chunked'));
    const socket = await connect();
    socket.on('error', () => undefined);
    const before = logLines.length;
    socket.write(
      `PATCH ${session.pathname}${session.search} HTTP/1.1\r\nHost: ${session.host}\r\n` +
        'Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n' +
        'a\r\n0123456789\r\n',
    );
    // Closed here if the registry failed to: the registry's stop waits for its connections.
    await closed(socket).finally(() => socket.destroy());
    assert.ok(
      logLines.slice(before).some((line) => line.msg === 'request cut off: no bytes received within http.readTimeout'),
      'the cut is logged',
    );
  });

  it('lets a slow upload that keeps sending run past the timeout', async () => {
    const chunks = Array.from({ length: 12 }, () => randomBytes(1024));
    const whole = Buffer.concat(chunks);
    const session = await openSession(registry.url, 'slow/upload');
    // One chunk every quarter second: three seconds in all, each gap an eighth of the timeout.
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        for (const chunk of chunks) {
          controller.enqueue(chunk);
          await sleep(READ_TIMEOUT_MS / 8);
        }
        controller.close();
      },
    });
    const res = await fetch(session, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream' },
      body,
      duplex: 'half',
    } as RequestInit);
    assert.equal(res.status, 202, await res.clone().text());
    assert.equal(res.headers.get('range'), `0-${whole.length - 1}`);
    const location = new URL(res.headers.get('location') ?? '', registry.url);
    location.searchParams.set('digest', sha256(whole));
    assert.equal((await fetch(location, { method: 'PUT' })).status, 201);
  });
});

describe('http.writeTimeout', () => {
  it('cuts off a client that stops reading a download', async () => {
    const socket = await connect();
    socket.on('error', () => undefined);
    socket.write(`GET /v2/slow/blob/blobs/${sha256(BLOB)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    // Read the first bytes, then stop: the socket's buffers fill and the registry's writes wait.
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.pause();
    const deadline = Date.now() + GIVE_UP_MS;
    const cut = () => logLines.some((line) => line.msg === 'response cut off: no bytes taken by the client within http.writeTimeout');
    while (!cut() && Date.now() < deadline) await sleep(100);
    assert.ok(cut(), 'the cut is logged');
    let received = 0;
    socket.on('data', (data: Buffer) => (received += data.length));
    socket.resume();
    await closed(socket);
    assert.ok(received < BLOB.length, `the download was cut short (${received} of ${BLOB.length} bytes after the pause)`);
  });

  it('lets a slow download that keeps reading run past the timeout', async () => {
    const res = await fetch(`${registry.url}/v2/slow/blob/blobs/${sha256(BLOB)}`);
    assert.equal(res.status, 200);
    const parts: Buffer[] = [];
    let reads = 0;
    // 10 ms per chunk of at most 64 KiB: 16 MiB take 256 reads or more, well past the timeout.
    const slowReader = new WritableStream<Uint8Array>({
      async write(chunk) {
        parts.push(Buffer.from(chunk));
        reads++;
        await sleep(10);
      },
    });
    await res.body!.pipeTo(slowReader);
    assert.ok(reads * 10 > WRITE_TIMEOUT_MS, `the download took ${reads} paced reads`);
    assert.equal(sha256(Buffer.concat(parts)), sha256(BLOB), 'the whole blob arrived');
  });
});
