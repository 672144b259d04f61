// Reading request bodies: manifests are read whole (bounded), blobs stay streams.
import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../oci/errors.js';

/** Whether the request carries a body at all (a declared length above zero, or chunked). */
export function hasBody(raw: IncomingMessage): boolean {
  const length = raw.headers['content-length'];
  if (length !== undefined) return Number(length) > 0;
  return raw.headers['transfer-encoding'] !== undefined;
}

/**
 * Reads the whole body, refusing (without buffering further) one larger than `limit` bytes. A
 * chunked body found too large is read to its end and dropped: leaving the loop early would stop
 * the connection's reads, and the client's next request on the kept-alive connection would hang.
 */
export async function readBodyBounded(raw: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = raw.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) throw new RegistryError('MANIFEST_TOO_LARGE');
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of raw) {
    const buffer = chunk as Buffer;
    total += buffer.length;
    if (total <= limit) chunks.push(buffer);
  }
  if (total > limit) throw new RegistryError('MANIFEST_TOO_LARGE');
  return Buffer.concat(chunks, total);
}
