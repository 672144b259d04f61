// Answers given before the request body was read: a bad name refused by the registry, and requests
// node's HTTP parser refuses (a duplicate Content-Length). The client must receive the 4xx in OCI
// error JSON whatever the size of the body it is still sending and however it reads the answer:
// node's http client, curl, and a client that writes its whole request before reading. A connection
// kept alive carries the next request; one that never ends its body is cut after a bounded amount.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UNREAD_BODY_LIMITS } from '../../src/http/unread-body.js';
import { rawHttp, type RawResponse } from '../helpers/http.js';
import { sha256 } from '../helpers/oci.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let registry: TestRegistry;
let url: string;

before(async () => {
  registry = await startTestRegistry();
  url = registry.url;
});
after(async () => {
  await registry.stop();
});

const SIZES: [string, number][] = [
  ['64 KiB', 64 * 1024],
  ['1 MiB', 1024 * 1024],
  ['16 MiB', 16 * 1024 * 1024],
];
const BAD_NAME_UPLOAD = `/v2/Bad/Name/blobs/uploads/?digest=${sha256('x')}`;
const GOOD_UPLOAD = '/v2/early/answers/blobs/uploads/';

/** Asserts an OCI error answer with this status and code, as JSON. */
function expectOciAnswer(res: RawResponse, status: number, code: string): { code: string; detail?: unknown } {
  assert.equal(res.status, status, `answered ${res.status}: ${res.body}`);
  assert.match(String(res.headers['content-type']), /^application\/json\b/);
  const first = (JSON.parse(res.body) as { errors: { code: string; detail?: unknown }[] }).errors[0];
  assert.equal(first?.code, code, res.body);
  return first as { code: string; detail?: unknown };
}

/** node's http client: sends the body, reads the answer while sending, resolves with the first answer. */
function nodeRequest(method: string, target: string, body: Buffer, headers: Record<string, string> = {}): Promise<RawResponse> {
  const base = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: base.hostname, port: base.port, method, path: target, agent: false, headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(body.length), ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        res.on('error', reject);
      },
    );
    // Once the answer is in, a write cut short by the registry closing is no failure of the answer.
    req.on('error', (err) => reject(err));
    req.end(body);
  });
}

/** curl with the body from a file; extra headers as curl sends them (duplicates included). */
function curl(method: string, target: string, body: Buffer, headers: string[] = []): Promise<RawResponse & { code: number | null; stderr: string }> {
  const file = path.join(makeTempDir('zot-ts-curl-'), 'body');
  fs.writeFileSync(file, body);
  const args = ['-s', '-S', '-i', '-X', method, '-H', 'Content-Type: application/octet-stream', ...headers.flatMap((h) => ['-H', h]), '--data-binary', `@${file}`, `${url}${target}`];
  return new Promise((resolve) => {
    const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => {
      const text = Buffer.concat(out).toString('utf8');
      // The last answer (curl prints an interim "100 Continue" before it when it asked for one).
      const start = text.lastIndexOf('HTTP/1.1 ');
      const [head = '', ...rest] = text.slice(Math.max(start, 0)).split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const responseHeaders: http.IncomingHttpHeaders = {};
      for (const line of lines) responseHeaders[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim();
      resolve({ code, stderr, status: Number(statusLine.split(' ')[1] ?? 0), headers: responseHeaders, body: rest.join('\r\n\r\n') });
    });
  });
}

describe('a bad name refused before the body is read', () => {
  for (const [label, size] of SIZES) {
    const body = Buffer.alloc(size, 7);

    it(`${label} from node's http client: 400 NAME_INVALID`, async () => {
      expectOciAnswer(await nodeRequest('POST', BAD_NAME_UPLOAD, body), 400, 'NAME_INVALID');
    });

    it(`${label} from node's http client asking Connection: close: 400 NAME_INVALID`, async () => {
      expectOciAnswer(await nodeRequest('POST', BAD_NAME_UPLOAD, body, { Connection: 'close' }), 400, 'NAME_INVALID');
    });

    it(`${label} from curl: 400 NAME_INVALID`, async () => {
      const res = await curl('POST', BAD_NAME_UPLOAD, body);
      assert.equal(res.code, 0, res.stderr);
      expectOciAnswer(res, 400, 'NAME_INVALID');
    });

    it(`${label} from a client that writes the whole request before reading, with Connection: close: 400 NAME_INVALID`, async () => {
      const head = `POST ${BAD_NAME_UPLOAD} HTTP/1.1\r\nHost: registry\r\nContent-Length: ${size}\r\nConnection: close\r\n\r\n`;
      expectOciAnswer(await rawHttp(url, head, body, { readAfterSending: true }), 400, 'NAME_INVALID');
    });
  }

  it('on a connection kept alive, the next request is answered on the same connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const base = new URL(url);
    const send = (target: string, body: Buffer): Promise<{ status: number; reused: boolean; text: string }> =>
      new Promise((resolve, reject) => {
        const req = http.request({ host: base.hostname, port: base.port, method: 'POST', path: target, agent, headers: { 'Content-Length': String(body.length) } }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, text }));
        });
        req.on('error', reject);
        req.end(body);
      });
    try {
      const refused = await send(BAD_NAME_UPLOAD, Buffer.alloc(1024 * 1024, 1));
      assert.equal(refused.status, 400, refused.text);
      const next = await send('/v2/early/keep-alive/blobs/uploads/', Buffer.alloc(0));
      assert.equal(next.status, 202, next.text);
      assert.equal(next.reused, true, 'the second request went over the first connection');
    } finally {
      agent.destroy();
    }
  });
});

describe('a request with a duplicate Content-Length, refused by the HTTP parser', () => {
  for (const [label, size] of SIZES) {
    const body = Buffer.alloc(size, 7);

    it(`${label} over TCP: 400 in OCI error JSON naming the reason, and the connection closed after it`, async () => {
      const head = `POST ${GOOD_UPLOAD} HTTP/1.1\r\nHost: registry\r\nContent-Length: ${size}\r\nContent-Length: ${size}\r\n\r\n`;
      const res = await rawHttp(url, head, body);
      const error = expectOciAnswer(res, 400, 'UNSUPPORTED');
      assert.deepEqual(error.detail, { reason: 'Duplicate Content-Length' });
      assert.equal(res.headers.connection, 'close');
      assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
    });

    it(`${label} from a client that writes the whole request before reading: 400 in OCI error JSON`, async () => {
      const head = `POST ${GOOD_UPLOAD} HTTP/1.1\r\nHost: registry\r\nContent-Length: ${size}\r\nContent-Length: ${size}\r\n\r\n`;
      expectOciAnswer(await rawHttp(url, head, body, { readAfterSending: true }), 400, 'UNSUPPORTED');
    });

    it(`${label} from curl: 400 in OCI error JSON`, async () => {
      const res = await curl('POST', GOOD_UPLOAD, body, [`Content-Length: ${size}`, `Content-Length: ${size}`]);
      assert.equal(res.code, 0, res.stderr);
      expectOciAnswer(res, 400, 'UNSUPPORTED');
    });
  }

  it('the registry goes on answering, and opened no session for it', async () => {
    const res = await fetch(`${url}/v2/early/answers/tags/list`);
    assert.equal(res.status, 404, 'no repository was laid out for the refused requests');
    await res.arrayBuffer();
    assert.ok(!fs.existsSync(path.join(registry.root, 'early/answers/.uploads')) || fs.readdirSync(path.join(registry.root, 'early/answers/.uploads')).length === 0);
  });
});

describe('a body nobody reads is read only so far', () => {
  /** Sends `head`, then zeros until the registry closes the connection; the answer and the bytes sent. */
  function sendForever(head: string): Promise<{ answer: string; sent: number }> {
    const base = new URL(url);
    return new Promise((resolve) => {
      const socket = net.connect(Number(base.port), base.hostname);
      const chunk = Buffer.alloc(256 * 1024);
      let sent = 0;
      let answer = '';
      socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      const pump = (): void => {
        while (!socket.destroyed && socket.write(chunk)) sent += chunk.length;
        if (!socket.destroyed) sent += chunk.length;
      };
      socket.on('drain', pump);
      socket.on('error', () => undefined);
      socket.on('close', () => resolve({ answer, sent }));
      socket.write(head, pump);
    });
  }

  it('a chunked manifest that never ends gets 413 once past 4 MiB, then the connection is cut past the limit', { timeout: 60_000 }, async () => {
    const base = new URL(url);
    const { answer, sent } = await new Promise<{ answer: string; sent: number }>((resolve) => {
      const socket = net.connect(Number(base.port), base.hostname);
      // One chunk of the chunked coding, repeated: 256 KiB of spaces each.
      const payload = Buffer.alloc(256 * 1024, 32);
      const chunk = Buffer.concat([Buffer.from(`${payload.length.toString(16)}\r\n`), payload, Buffer.from('\r\n')]);
      let sent = 0;
      let answer = '';
      socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      const pump = (): void => {
        while (!socket.destroyed && socket.write(chunk)) sent += payload.length;
        if (!socket.destroyed) sent += payload.length;
      };
      socket.on('drain', pump);
      socket.on('error', () => undefined);
      socket.on('close', () => resolve({ answer, sent }));
      socket.write(`PUT /v2/early/manifests/manifests/endless HTTP/1.1\r\nHost: registry\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nTransfer-Encoding: chunked\r\n\r\n`, pump);
    });
    assert.match(answer, /^HTTP\/1\.1 413 /, `the answer came first: ${answer.slice(0, 200)}`);
    assert.match(answer, /"MANIFEST_INVALID"/);
    assert.ok(sent < 4 * 1024 * 1024 + UNREAD_BODY_LIMITS.bytes * 2, `the registry stopped reading (${sent} bytes sent)`);
  });

  it('a client that never ends its body gets its answer, then the connection is cut past the limit', { timeout: 60_000 }, async () => {
    const { answer, sent } = await sendForever(`POST ${BAD_NAME_UPLOAD} HTTP/1.1\r\nHost: registry\r\nContent-Length: ${2 ** 40}\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 400 /, 'the answer came first');
    assert.match(answer, /"NAME_INVALID"/);
    assert.ok(sent >= UNREAD_BODY_LIMITS.bytes, `the registry read up to its limit (${sent} bytes sent)`);
    assert.ok(sent < UNREAD_BODY_LIMITS.bytes * 2, `and stopped there (${sent} bytes sent)`);
  });
});
