// Reading request bodies: manifests are read whole (bounded), blobs stay streams.
import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../oci/errors.js';

/** Whether the request carries a body at all (a declared length above zero, or chunked). */
export function hasBody(raw: IncomingMessage): boolean {
  const length = raw.headers['content-length'];
  if (length !== undefined) return Number(length) > 0;
  return raw.headers['transfer-encoding'] !== undefined;
}

/** The body's declared length (Content-Length), when the request declares one. */
export function declaredLength(raw: IncomingMessage): number | undefined {
  const length = raw.headers['content-length'];
  if (length === undefined || !/^\d+$/.test(length)) return undefined;
  const value = Number(length);
  return Number.isSafeInteger(value) ? value : undefined;
}

/**
 * Reads the whole body, refusing one larger than `limit` bytes as soon as it is known: by its
 * declared length before any byte is read, or (chunked) once `limit` is passed. The stream is then
 * left paused, not destroyed, so the answer still reaches the client; what it still sends is
 * dropped within bounds before the connection is reused or closed (unread-body.ts).
 */
export function readBodyBounded(raw: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = raw.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(new RegistryError('MANIFEST_TOO_LARGE'));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const stop = (): void => {
      raw.off('data', onData);
      raw.off('end', onEnd);
      raw.off('error', onError);
      raw.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > limit) {
        stop();
        raw.pause();
        reject(new RegistryError('MANIFEST_TOO_LARGE'));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      stop();
      resolve(Buffer.concat(chunks, total));
    };
    const onError = (err: Error): void => {
      stop();
      reject(err);
    };
    // Closed with neither an end nor an error: the body was cut short all the same.
    const onClose = (): void => onError(Object.assign(new Error('the request closed before its body ended'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    raw.on('data', onData);
    raw.once('end', onEnd);
    raw.once('error', onError);
    raw.once('close', onClose);
  });
}
