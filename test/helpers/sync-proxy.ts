// An HTTP proxy in front of a real upstream registry for the sync tests: it records every request
// (to count what a sync fetched), and can answer 503 a number of times, refuse connections, flip a
// byte of a blob on its way, cut a blob's body short, or hold back the end of a blob until the test
// releases it.
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ProxiedRequest {
  method: string;
  path: string;
  status: number;
}

export interface SyncProxy {
  url: string;
  host: string;
  requests: ProxiedRequest[];
  /** Requests whose method matches and whose path matches the pattern. */
  count(method: string, pattern: RegExp): number;
  /** The next `n` requests are answered `status` without reaching the upstream. */
  failNext(n: number, status?: number): void;
  /** While on, every connection is closed without an answer. */
  refuse(on: boolean): void;
  /** While on, requests are taken and never answered (an upstream that hangs). */
  stall(on: boolean): void;
  /** The bytes of GET /blobs/<digest> answers get one byte flipped in the middle. */
  corrupt(digest: string | undefined): void;
  /** GET /blobs/<digest> answers declare the whole length, send half the bytes and close the connection. */
  truncate(digest: string | undefined): void;
  /**
   * GET /blobs/<digest> answers send all but their last `tailBytes`, then wait for release();
   * `sentAllButTail` resolves when the rest has been written.
   */
  holdTail(digest: string, tailBytes: number): { sentAllButTail: Promise<void>; release(): void };
  close(): Promise<void>;
}

export async function startSyncProxy(target: string): Promise<SyncProxy> {
  const upstream = new URL(target);
  const requests: ProxiedRequest[] = [];
  let failures = 0;
  let failureStatus = 503;
  let refusing = false;
  let stalling = false;
  let corrupted: string | undefined;
  let truncated: string | undefined;
  const held = new Map<string, { tailBytes: number; gate: Promise<void>; reached: () => void }>();
  const sockets = new Set<Socket>();

  const server = http.createServer((request, response) => {
    const path = request.url ?? '/';
    const record = (status: number): void => {
      requests.push({ method: request.method ?? '', path, status });
    };
    if (refusing) {
      request.socket.destroy();
      return;
    }
    if (stalling) {
      record(0);
      return;
    }
    if (failures > 0) {
      failures--;
      record(failureStatus);
      request.resume();
      response.writeHead(failureStatus, { 'Content-Type': 'text/plain' });
      response.end('failing on purpose\n');
      return;
    }
    const headers = { ...request.headers, host: upstream.host };
    const forward = http.request({ host: upstream.hostname, port: upstream.port, path, method: request.method, headers }, (answer) => {
      record(answer.statusCode ?? 0);
      const digest = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(path.split('?')[0] ?? '')?.[1];
      const hold = digest !== undefined && request.method === 'GET' ? held.get(digest) : undefined;
      const flip = digest !== undefined && digest === corrupted && request.method === 'GET';
      const cut = digest !== undefined && digest === truncated && request.method === 'GET';
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      if (!hold && !flip && !cut) {
        answer.pipe(response);
        return;
      }
      void (async () => {
        const chunks: Buffer[] = [];
        for await (const chunk of answer) chunks.push(chunk as Buffer);
        const body = Buffer.concat(chunks);
        if (flip && body.length > 0) body.writeUInt8(body.readUInt8(body.length >> 1) ^ 0xff, body.length >> 1);
        if (cut) {
          response.write(body.subarray(0, body.length >> 1), () => response.destroy());
          return;
        }
        if (hold) {
          const cut = Math.max(0, body.length - hold.tailBytes);
          response.write(body.subarray(0, cut));
          hold.reached();
          await hold.gate;
          response.end(body.subarray(cut));
          return;
        }
        response.end(body);
      })().catch(() => response.destroy());
    });
    forward.on('error', () => {
      record(502);
      if (!response.headersSent) response.writeHead(502);
      response.end();
    });
    request.pipe(forward);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests,
    count: (method, pattern) => requests.filter((r) => r.method === method && pattern.test(r.path)).length,
    failNext: (n, status = 503) => {
      failures = n;
      failureStatus = status;
    },
    refuse: (on) => {
      refusing = on;
      if (on) for (const socket of sockets) socket.destroy();
    },
    stall: (on) => {
      stalling = on;
    },
    corrupt: (digest) => {
      corrupted = digest;
    },
    truncate: (digest) => {
      truncated = digest;
    },
    holdTail: (digest, tailBytes) => {
      let release!: () => void;
      let reached!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const sentAllButTail = new Promise<void>((resolve) => (reached = resolve));
      held.set(digest, { tailBytes, gate, reached });
      return { sentAllButTail, release };
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
