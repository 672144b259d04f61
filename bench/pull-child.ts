// The client of figure 3 (pull), in a process of its own: one GET on a new connection, the body
// read into one reused buffer (net's `onread`: no allocation per read) and counted, not kept.
// curl, the client of the other big transfers, spent some 0.43–0.70 ms of CPU per MiB pulled,
// more than either registry: with both on this 2-core machine, it set the figure for both
// (1.04x), not the registries. This client spends some 0.2–0.4 ms per MiB, so the registry is
// the limit. curl's pull is still measured beside it (figure 3b).
//
// Protocol on stdio, as chunked-push-child.ts: it writes "ready\n" once loaded; the parent writes
// one line to start the GET; it writes one JSON line (PullChildResult) and exits.
import * as net from 'node:net';

export interface PullChildResult {
  ok: boolean;
  status: number;
  /** Body bytes received. */
  bytes: number;
  /** CPU (user + system) of this process during the GET. */
  cpuMs: number;
  error?: string;
}

/** Large reads: a MiB costs few wake-ups of this client. */
const READ_BUFFER_BYTES = 4 << 20;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');

/** GETs `target` and counts the body's bytes; answers once Content-Length bytes have come. */
function get(base: URL, target: string): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    let head: Buffer = Buffer.alloc(0);
    let status = 0;
    let expected = -1;
    let bytes = 0;
    let settled = false;
    const finish = (error?: Error): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (error) reject(error);
      else resolve({ status, bytes });
    };
    const onBody = (count: number): void => {
      bytes += count;
      if (bytes >= expected) finish(bytes === expected ? undefined : new Error(`got ${bytes} body bytes, expected ${expected}`));
    };
    const onHead = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf(HEAD_END);
      if (end < 0) return;
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      status = Number(lines[0]?.split(' ')[1] ?? 0);
      const length = lines.find((line) => line.toLowerCase().startsWith('content-length:'));
      if (length === undefined) return finish(new Error(`answer ${status} has no Content-Length`));
      expected = Number(length.slice('content-length:'.length).trim());
      onBody(head.length - end - HEAD_END.length);
    };
    const socket = net.connect({
      host: base.hostname,
      port: Number(base.port),
      noDelay: true,
      onread: {
        buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
        // The buffer is reused by the next read: the head is copied out, the body only counted.
        callback: (count, buffer) => {
          if (expected < 0) onHead(Buffer.from(buffer.subarray(0, count)));
          else onBody(count);
          return true;
        },
      },
    });
    socket.once('connect', () => socket.write(`GET ${target} HTTP/1.1\r\nHost: ${base.host}\r\n\r\n`, 'latin1'));
    socket.once('error', finish);
    socket.once('close', () => finish(new Error(`the registry closed the connection after ${bytes} body bytes`)));
  });
}

async function main(): Promise<void> {
  const [baseUrl, target] = process.argv.slice(2);
  if (baseUrl === undefined || target === undefined) throw new Error('usage: pull-child <baseUrl> <path>');
  const base = new URL(baseUrl);
  if (base.hostname !== '127.0.0.1') throw new Error(`the benchmark client only talks to 127.0.0.1, not ${base.hostname}`);
  await new Promise<void>((resolve) => {
    process.stdin.once('data', () => resolve());
    process.stdout.write('ready\n');
  });
  process.stdin.pause();
  const cpu = process.cpuUsage();
  const cpuMs = (): number => {
    const used = process.cpuUsage(cpu);
    return (used.user + used.system) / 1000;
  };
  let result: PullChildResult;
  try {
    const { status, bytes } = await get(base, target);
    result = { ok: true, status, bytes, cpuMs: cpuMs() };
  } catch (err) {
    result = { ok: false, status: 0, bytes: 0, cpuMs: cpuMs(), error: err instanceof Error ? err.message : String(err) };
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
