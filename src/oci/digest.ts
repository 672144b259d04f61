// Digests: the algorithms the registry accepts and the one parser of `algorithm:hex`. Every list
// of algorithms (storage listings, GC, import, replay, the hashing worker) comes from here.
import { RegistryError } from './errors.js';

/** The algorithms a digest may name, in the order storage is listed. */
export const DIGEST_ALGORITHMS = ['sha256', 'sha512'] as const;

export type DigestAlgorithm = (typeof DIGEST_ALGORITHMS)[number];

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const DIGEST_RE = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
  /** `algorithm:hex`, as written in manifests and URLs. */
  value: string;
}

export function isDigestAlgorithm(name: string): name is DigestAlgorithm {
  return (DIGEST_ALGORITHMS as readonly string[]).includes(name);
}

export function looksLikeDigest(reference: string): boolean {
  return reference.includes(':');
}

/** Parses a digest of a supported algorithm, or throws DIGEST_INVALID. */
export function parseDigest(value: string): ParsedDigest {
  const match = DIGEST_RE.exec(value);
  if (!match) throw new RegistryError('DIGEST_INVALID', `invalid digest: ${JSON.stringify(value)}`);
  const algorithm = match[1] as string;
  const hex = match[2] as string;
  if (!isDigestAlgorithm(algorithm)) {
    // DIGEST_INVALID (400), as the distribution registry answers: the method is allowed, the digest is not.
    throw new RegistryError('DIGEST_INVALID', `unsupported digest algorithm: ${algorithm}`);
  }
  if (hex.length !== HEX_LENGTH[algorithm] || !/^[a-f0-9]+$/.test(hex)) {
    throw new RegistryError('DIGEST_INVALID', `invalid ${algorithm} digest: ${JSON.stringify(value)}`);
  }
  return { algorithm, hex, value };
}

/** The digest a file named `hex` in `blobs/<algorithm>/` stands for, or undefined for any other name. */
export function digestOfStoredName(algorithm: DigestAlgorithm, hex: string): ParsedDigest | undefined {
  try {
    return parseDigest(`${algorithm}:${hex}`);
  } catch {
    return undefined;
  }
}

/** The algorithm of digests the registry computes itself (a manifest pushed by tag). */
export const CANONICAL_DIGEST_ALGORITHM: DigestAlgorithm = 'sha256';
