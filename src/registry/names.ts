// Repository names, tags and digests, checked with the grammar of the distribution spec v1.1
// ("Pulling manifests": https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-manifests).
import { RegistryError } from './errors.js';

const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST_RE = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** Longest repository name accepted, as in the distribution registry. */
export const MAX_NAME_LENGTH = 255;

export type DigestAlgorithm = 'sha256' | 'sha512';
const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
  /** `algorithm:hex`, as written in manifests and URLs. */
  value: string;
}

export function isValidName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

export function assertValidName(name: string): void {
  if (!isValidName(name)) throw new RegistryError('NAME_INVALID', `invalid repository name: ${JSON.stringify(name)}`);
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
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
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    // DIGEST_INVALID (400), as the distribution registry answers: the method is allowed, the digest is not.
    throw new RegistryError('DIGEST_INVALID', `unsupported digest algorithm: ${algorithm}`);
  }
  if (hex.length !== HEX_LENGTH[algorithm] || !/^[a-f0-9]+$/.test(hex)) {
    throw new RegistryError('DIGEST_INVALID', `invalid ${algorithm} digest: ${JSON.stringify(value)}`);
  }
  return { algorithm, hex, value };
}

export type ManifestReference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: ParsedDigest };

/** A manifest reference is a tag or a digest; anything else is MANIFEST_INVALID... or, per spec, a bad tag. */
export function parseReference(reference: string): ManifestReference {
  if (looksLikeDigest(reference)) return { kind: 'digest', digest: parseDigest(reference) };
  if (!isValidTag(reference)) throw new RegistryError('MANIFEST_INVALID', `invalid tag: ${JSON.stringify(reference)}`);
  return { kind: 'tag', tag: reference };
}
