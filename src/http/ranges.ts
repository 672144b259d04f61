// Parsing of the two range headers of the API: `Range: bytes=a-b` on blob GETs (RFC 9110) and
// `Content-Range: a-b` on upload chunks (distribution spec; "bytes " prefix tolerated).
import { RegistryError } from '../oci/errors.js';
import type { ChunkRange } from '../registry/uploads.js';

/**
 * A single byte range, or undefined when the header is absent, asks for several ranges, or counts
 * in a unit other than bytes (the whole blob is then sent with 200: RFC 9110 section 14.2 allows
 * the first and requires the last). `size` is the blob's, for suffix ranges `-N`.
 */
export function parseRangeHeader(header: string | undefined, size: number): { start: number; end?: number } | undefined {
  if (header === undefined) return undefined;
  if (!/^\s*bytes=/i.test(header)) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) {
    if (/^bytes=.*,/.test(header)) return undefined;
    throw new RegistryError('RANGE_INVALID', `unsupported Range header: ${header}`);
  }
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') throw new RegistryError('RANGE_INVALID', `unsupported Range header: ${header}`);
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0) throw new RegistryError('RANGE_INVALID', 'empty suffix range', { size });
    return { start: Math.max(0, size - suffix) };
  }
  const start = Number(first);
  if (last === '') return { start };
  const end = Number(last);
  if (end < start) throw new RegistryError('RANGE_INVALID', `range end ${end} is before its start ${start}`);
  return { start, end };
}

export function parseContentRange(header: string | undefined): ChunkRange | undefined {
  if (header === undefined) return undefined;
  const match = /^(?:bytes )?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!match) throw new RegistryError('RANGE_INVALID', `malformed Content-Range: ${header}`);
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) throw new RegistryError('RANGE_INVALID', `malformed Content-Range: ${header}`);
  return { start, end };
}
