// http.readTimeout and http.writeTimeout. zot hands them to Go's http.Server, where ReadTimeout
// bounds reading the whole request and WriteTimeout the whole response: a multi-gigabyte push or
// pull that takes longer is cut off however fast it progresses (zot itself turns its write
// timeout into a rolling one for blob downloads). Here both are inactivity timeouts:
//
//   readTimeout   a request whose body is still coming is cut off when no byte of it has arrived
//                 for that long while the registry waits for one (bytes the registry has not
//                 read yet, held back by its own backpressure, are not the client's stall).
//                 The request headers are bounded by Node's headersTimeout, set to the same
//                 value when it is shorter than Node's 60 s (checked every 30 s by Node).
//   writeTimeout  a response is cut off when the client has taken none of the bytes waiting for
//                 it for that long. Time the registry spends before answering (hashing a large
//                 blob on commit) is not counted against the client.
//
// A slow client that keeps moving is never cut off. Unset, each is zot's default of 30 s;
// 0 turns it off. Checks run on one timer per server; a tick that comes late (the event loop
// was busy) blames no client for the registry's own pause.
import type { Server, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { hasBody } from '../request-body.js';

export const DEFAULT_TIMEOUT_MS = 30_000;
const NODE_HEADERS_TIMEOUT_MS = 60_000;

export interface TimeoutOptions {
  /** 0 turns the check off. */
  readTimeoutMs: number;
  writeTimeoutMs: number;
}

interface ReadProgress {
  socket: Socket;
  bytesRead: number;
  at: number;
}

interface WriteProgress {
  /** Bytes the client has taken: written out, not waiting in the socket's buffer. */
  taken: number;
  at: number;
}

/** Starts the checks on the server; returns the function that stops them. */
export function applyTimeouts(server: Server, options: TimeoutOptions, logger: Logger): () => void {
  const { readTimeoutMs, writeTimeoutMs } = options;
  if (readTimeoutMs <= 0 && writeTimeoutMs <= 0) return () => undefined;
  if (readTimeoutMs > 0 && readTimeoutMs < NODE_HEADERS_TIMEOUT_MS) server.headersTimeout = readTimeoutMs;

  const reading = new Map<IncomingMessage, ReadProgress>();
  const writing = new Map<Socket, WriteProgress>();
  const onRequest = (request: IncomingMessage): void => {
    const socket = request.socket;
    const now = Date.now();
    // A request without a body is not complete yet when 'request' is emitted, but nothing of it is
    // left to arrive: tracked, each GET and HEAD was held until the next tick (up to a second), so
    // at thousands a second they outlived two scavenges and went to the old generation.
    if (readTimeoutMs > 0 && !request.complete && hasBody(request)) reading.set(request, { socket, bytesRead: socket.bytesRead, at: now });
    if (writeTimeoutMs > 0 && !writing.has(socket)) {
      writing.set(socket, { taken: taken(socket), at: now });
      socket.once('close', () => writing.delete(socket));
    }
  };
  server.on('request', onRequest);

  const smallest = Math.min(...[readTimeoutMs, writeTimeoutMs].filter((ms) => ms > 0));
  const tickMs = Math.min(1000, Math.max(25, Math.floor(smallest / 4)));
  let lastTick = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    const late = now - lastTick > 2 * tickMs + 250;
    lastTick = now;
    for (const [request, progress] of reading) {
      if (request.complete || request.destroyed || progress.socket.destroyed) {
        reading.delete(request);
        continue;
      }
      // Bytes the registry has not taken yet are its own backpressure, not the client's stall.
      const moved = progress.socket.bytesRead !== progress.bytesRead || request.readableLength > 0;
      if (moved || late) {
        progress.bytesRead = progress.socket.bytesRead;
        progress.at = now;
      } else if (now - progress.at > readTimeoutMs) {
        reading.delete(request);
        logger.warn({ client: progress.socket.remoteAddress, readTimeoutMs }, 'request cut off: no bytes received within http.readTimeout');
        progress.socket.destroy();
      }
    }
    for (const [socket, progress] of writing) {
      const done = taken(socket);
      if (done !== progress.taken || socket.writableLength === 0 || late) {
        progress.taken = done;
        progress.at = now;
      } else if (now - progress.at > writeTimeoutMs) {
        writing.delete(socket);
        logger.warn({ client: socket.remoteAddress, writeTimeoutMs }, 'response cut off: no bytes taken by the client within http.writeTimeout');
        socket.destroy();
      }
    }
  }, tickMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    server.off('request', onRequest);
  };
}

/** Bytes written out of the socket: counted when handed to the system, minus those still pending. */
function taken(socket: Socket): number {
  return socket.bytesWritten - socket.writableLength;
}

/** A configured Go duration in ms: zot's default when unset, none when 0 or negative. */
export function timeoutMs(configured: number | undefined): number {
  if (configured === undefined) return DEFAULT_TIMEOUT_MS;
  return configured > 0 ? configured : 0;
}
