// The client of figure 2 (chunked push), in a process of its own: one POST, a PATCH per chunk
// and the PUT ?digest=, over one kept-alive connection, as a real chunked client sends them.
// curl, the client of the other big transfers, takes one process per request: started anew for
// each of the 16 PATCHes, its starts (about 35 ms each here) were some 600 ms of every push, for
// both registries alike, and set the figure more than either registry did. node:http with a file
// stream piped in spent some 5.6 ms of CPU per MiB and was the limit itself; this client writes
// the requests on a plain socket from four reused buffers (below curl's CPU per MiB). It is
// started, and its own start awaited, before the clock runs (scenarios.ts pushChunked).
//
// Protocol on stdio: it writes "ready\n" once loaded; the parent writes one line to start the
// push; it writes one JSON line (ChunkedChildResult) and exits.
import * as fs from 'node:fs';
import * as net from 'node:net';

export interface ChunkedChildResult {
  ok: boolean;
  patches: number;
  /** CPU (user + system) of this process during the push. */
  cpuMs: number;
  error?: string;
}

const BUFFER_BYTES = 1 << 20;
/**
 * Writes handed to the socket at once. With one, each write waited for the one before to reach
 * the kernel: a 256 MiB push to zot-ts took 0.8-1.1 s from this client against 0.59-0.68 s from a
 * node:http client writing each 16 MiB chunk whole, so the client, not the registry, set figure 2.
 */
const BUFFERS_IN_FLIGHT = 4;

interface Answer {
  status: number;
  location: string | undefined;
}

/** One HTTP/1.1 connection that sends a request at a time and reads its answer. */
class Connection {
  private readonly socket: net.Socket;
  private received: Buffer = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  private failure: Error | undefined;
  /** Reused for every request's body, each free again once its write has finished. */
  private readonly buffers = Array.from({ length: BUFFERS_IN_FLIGHT }, () => Buffer.allocUnsafe(BUFFER_BYTES));

  constructor(private readonly host: string, port: number) {
    this.socket = net.connect({ host, port, noDelay: true });
    this.socket.on('data', (data: Buffer) => {
      this.received = this.received.length === 0 ? data : Buffer.concat([this.received, data]);
      this.wake();
    });
    this.socket.on('error', (err) => {
      this.failure = err;
      this.wake();
    });
    this.socket.on('close', () => {
      this.failure ??= new Error('the registry closed the connection');
      this.wake();
    });
  }

  /** Sends a request whose body is `length` bytes of `file` from `start`, and reads its answer. */
  async request(method: string, target: string, headers: Record<string, string>, file?: { fd: number; start: number; length: number }): Promise<Answer> {
    const lines = [`${method} ${target} HTTP/1.1`, `Host: ${this.host}`, `Content-Length: ${file?.length ?? 0}`];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    await this.write(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'));
    if (file !== undefined) await this.sendRange(file.fd, file.start, file.length);
    return this.answer();
  }

  close(): void {
    this.socket.destroy();
  }

  /** The range read into the connection's buffers in turn: one is read while the others are being written. */
  private async sendRange(fd: number, start: number, length: number): Promise<void> {
    const inFlight: Promise<void>[] = [];
    for (let sent = 0, turn = 0; sent < length; turn = (turn + 1) % this.buffers.length) {
      // Writes finish in order: the oldest one in flight is the one that used this buffer.
      if (inFlight.length === this.buffers.length) await inFlight.shift();
      const buffer = this.buffers[turn] as Buffer;
      const n = fs.readSync(fd, buffer, 0, Math.min(BUFFER_BYTES, length - sent), start + sent);
      if (n === 0) throw new Error(`the file ended ${length - sent} bytes early`);
      const written = this.write(buffer.subarray(0, n));
      // Awaited in turn below; a later write failing first is not an unhandled rejection meanwhile.
      written.catch(() => undefined);
      inFlight.push(written);
      sent += n;
    }
    await Promise.all(inFlight);
  }

  private write(data: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  private async answer(): Promise<Answer> {
    for (;;) {
      const end = this.received.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = this.received.subarray(0, end).toString('latin1').split('\r\n');
        const status = Number(head[0]?.split(' ')[1] ?? 0);
        const header = (name: string): string | undefined =>
          head.find((line) => line.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim();
        const bodyBytes = Number(header('content-length') ?? 0);
        if (this.received.length >= end + 4 + bodyBytes) {
          this.received = this.received.subarray(end + 4 + bodyBytes);
          return { status, location: header('location') };
        }
      }
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.();
  }
}

/** POST, a PATCH per chunk following each Location, PUT ?digest=; the number of PATCHes. */
async function pushChunked(baseUrl: string, repo: string, file: string, size: number, digest: string, chunkBytes: number): Promise<number> {
  const base = new URL(baseUrl);
  if (base.hostname !== '127.0.0.1') throw new Error(`the benchmark client only talks to 127.0.0.1, not ${base.hostname}`);
  const connection = new Connection(base.hostname, Number(base.port));
  const fd = fs.openSync(file, 'r');
  try {
    const where = (answer: Answer, what: string): URL => {
      if (answer.location === undefined) throw new Error(`${what} answered ${answer.status} without a Location`);
      return new URL(answer.location, base);
    };
    let location = where(expect(await connection.request('POST', `/v2/${repo}/blobs/uploads/`, {}), 202, 'POST'), 'POST');
    let patches = 0;
    for (let start = 0; start < size; start += chunkBytes) {
      const length = Math.min(chunkBytes, size - start);
      const answer = await connection.request(
        'PATCH',
        `${location.pathname}${location.search}`,
        { 'Content-Type': 'application/octet-stream', 'Content-Range': `${start}-${start + length - 1}` },
        { fd, start, length },
      );
      location = where(expect(answer, 202, `PATCH ${start}-${start + length - 1}`), 'PATCH');
      patches++;
    }
    location.searchParams.set('digest', digest);
    expect(await connection.request('PUT', `${location.pathname}${location.search}`, {}), 201, 'PUT ?digest=');
    return patches;
  } finally {
    fs.closeSync(fd);
    connection.close();
  }
}

function expect(answer: Answer, status: number, what: string): Answer {
  if (answer.status !== status) throw new Error(`${what} answered ${answer.status}, expected ${status}`);
  return answer;
}

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

async function main(): Promise<void> {
  const [baseUrl, repo, file, size, digest, chunkBytes] = process.argv.slice(2);
  if (baseUrl === undefined || repo === undefined || file === undefined || digest === undefined || chunkBytes === undefined) {
    throw new Error('usage: chunked-push-child <baseUrl> <repo> <file> <size> <digest> <chunkBytes>');
  }
  await new Promise<void>((resolve) => {
    process.stdin.once('data', () => resolve());
    process.stdout.write('ready\n');
  });
  process.stdin.pause();
  const cpu = process.cpuUsage();
  let result: ChunkedChildResult;
  try {
    const patches = await pushChunked(baseUrl, repo, file, Number(size), digest, Number(chunkBytes));
    result = { ok: true, patches, cpuMs: cpuMsSince(cpu) };
  } catch (err) {
    result = { ok: false, patches: 0, cpuMs: cpuMsSince(cpu), error: err instanceof Error ? err.message : String(err) };
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
