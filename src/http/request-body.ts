// Reading request bodies: manifests are read whole (bounded), blobs stay streams.
import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../oci/errors.js';

/**
 * The most bytes of a too-large body read and dropped past its limit: a body a little too large is
 * read to its end, so the client gets the answer; one that goes on is not read further (Node then
 * closes the connection after the answer, as the request was not read to its end).
 */
export const OVERSIZED_BODY_DRAIN_BYTES = 1024 * 1024;

/** Whether the request carries a body at all (a declared length above zero, or chunked). */
export function hasBody(raw: IncomingMessage): boolean {
  const length = raw.headers['content-length'];
  if (length !== undefined) return Number(length) > 0;
  return raw.headers['transfer-encoding'] !== undefined;
}

/**
 * Reads the whole body, refusing (without buffering further) one larger than `limit` bytes. A
 * chunked body found too large is read on, and dropped, up to OVERSIZED_BODY_DRAIN_BYTES: leaving
 * a small excess unread would stop the connection's reads, and the client's next request on the
 * kept-alive connection would hang.
 */
export async function readBodyBounded(raw: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = raw.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) throw new RegistryError('MANIFEST_TOO_LARGE');
  const chunks: Buffer[] = [];
  let total = 0;
  // Leaving the loop early must not destroy the request: that would reset the connection before
  // the answer is written.
  for await (const chunk of raw.iterator({ destroyOnReturn: false })) {
    const buffer = chunk as Buffer;
    total += buffer.length;
    if (total <= limit) chunks.push(buffer);
    else if (total > limit + OVERSIZED_BODY_DRAIN_BYTES) break;
  }
  if (total > limit) throw new RegistryError('MANIFEST_TOO_LARGE');
  return Buffer.concat(chunks, total);
}
