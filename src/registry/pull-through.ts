// The seam through which reads that miss locally may still be answered from elsewhere: sync's
// on-demand pulls (src/sync/on-demand.ts) implement it; the registry calls it for manifest and
// blob reads when it is there, handing it the local read to try first.
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { RegistryError } from '../oci/errors.js';
import type { ByteRange } from '../storage/driver.js';
import type { ManifestContent } from './manifest-store.js';

export interface BlobHandle {
  size: number;
  digest: string;
  /** The requested range, clipped to the blob, when one was asked for. */
  range?: ByteRange;
  open(): Promise<BlobContent>;
}

/**
 * The bytes of a blob (of its range), to send: a local file with the inclusive byte range to read
 * from it (the caller closes it), or a stream where there is no local file (S3, an upstream).
 */
export type BlobContent = { file: FileHandle; start: number; end: number } | { stream: Readable };

export type RangeFor = (size: number) => { start: number; end?: number } | undefined;

export interface BlobReadOptions {
  /** HEAD: only the size and digest are wanted, no body will be read. */
  body?: boolean;
}

export interface PullThrough {
  /** A manifest read; `local` reads the repository. */
  manifest(repo: string, reference: string, local: () => Promise<ManifestContent>): Promise<ManifestContent>;
  /** A blob read; `local` reads the repository. */
  blob(repo: string, digest: string, rangeFor: RangeFor | undefined, options: BlobReadOptions, local: () => Promise<BlobHandle>): Promise<BlobHandle>;
}

/** The byte range asked for, clipped to a blob of `size` bytes; RANGE_INVALID when outside it. */
export function clipRange(size: number, rangeFor: RangeFor | undefined): ByteRange | undefined {
  const range = rangeFor?.(size);
  if (!range) return undefined;
  const end = Math.min(range.end ?? size - 1, size - 1);
  if (range.start >= size || end < range.start) {
    throw new RegistryError('RANGE_INVALID', `range ${range.start}-${range.end ?? ''} is outside a blob of ${size} bytes`, { size });
  }
  return { start: range.start, end };
}
