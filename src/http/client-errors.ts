// Requests that node's HTTP parser refuses before fastify sees them: a duplicate Content-Length, one
// past 2^64, bytes no request line may hold, headers over the size limit. They are answered with
// OCI error JSON like every other refusal, then the connection is closed after the answer (the
// parser cannot tell where the body ends, so nothing more can be read from it as requests).
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { ErrorKind } from '../oci/errors.js';
import { renderOciError } from './oci-errors.js';
import { closeAfterAnswer } from './unread-body.js';

interface ParserError extends Error {
  code?: string;
  /** node's words for what the parser found, e.g. "Duplicate Content-Length". */
  reason?: string;
}

function kindOf(error: ParserError): ErrorKind {
  if (error.code === 'HPE_HEADER_OVERFLOW') return 'HEADERS_TOO_LARGE';
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'REQUEST_TIMEOUT';
  return 'REQUEST_MALFORMED';
}

export interface ClientErrorHandlerOptions {
  logger: Logger;
  /** Headers every answer carries. */
  headers: Readonly<Record<string, string>>;
  /** The answer in progress on the connection, if any. */
  responseOn: (socket: Socket) => ServerResponse | undefined;
}

/** The server's 'clientError' listener (fastify's clientErrorHandler). */
export function clientErrorHandler(options: ClientErrorHandlerOptions): (error: ParserError, socket: Socket) => void {
  // The parser reports its error again for every chunk that arrives after it: answer once.
  const handled = new WeakSet<Socket>();
  return (error, socket) => {
    if (handled.has(socket)) return;
    handled.add(socket);
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const inProgress = options.responseOn(socket);
    if (inProgress && !inProgress.writableFinished) {
      // The request in progress cannot get a second answer: it ends as a disconnect, logged once
      // by the app. The end of stream in the middle of its body is just the client going away.
      if (error.code !== 'HPE_INVALID_EOF_STATE') {
        options.logger.info({ code: error.code, reason: error.reason, client: socket.remoteAddress }, 'closed a connection whose request body http could not parse');
      }
      socket.destroy();
      return;
    }
    const kind = kindOf(error);
    const { status, body } = renderOciError(kind, undefined, error.reason ? { reason: error.reason } : undefined);
    options.logger.info({ code: error.code, reason: error.reason, status, client: socket.remoteAddress }, 'refused a request http could not parse');
    const json = JSON.stringify(body);
    const headers = { ...options.headers, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(json)), Connection: 'close' };
    const head = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`, ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)];
    if (socket.writable) socket.write(`${head.join('\r\n')}\r\n\r\n${json}`);
    closeAfterAnswer(socket);
  };
}
