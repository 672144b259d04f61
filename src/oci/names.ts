// Repository names, tags and references, checked with the grammar of the distribution spec v1.1
// ("Pulling manifests": https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-manifests).
import { parseDigest, looksLikeDigest, type ParsedDigest } from './digest.js';
import { RegistryError } from './errors.js';

const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** Longest repository name accepted, as in the distribution registry. */
export const MAX_NAME_LENGTH = 255;

/** The entries of an OCI image layout (image-spec `image-layout.md`), which zot keeps per repository. */
export const IMAGE_LAYOUT_ENTRIES = { blobs: 'blobs', index: 'index.json', ociLayout: 'oci-layout' } as const;

const LAYOUT_ENTRY_NAMES: ReadonlySet<string> = new Set(Object.values(IMAGE_LAYOUT_ENTRIES));

/**
 * Why a name is refused, or undefined for a valid one. Each component is a directory of the storage
 * root, beside the layout entries of the repository above it: one named like an entry (`a/blobs`,
 * `a/index.json`) would land inside that repository's layout, so it is refused whichever of the two
 * comes first, and at every depth, so the rule needs no knowledge of which repositories exist.
 * (`.uploads` and `.zot-ts` cannot match the grammar.)
 */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the name is empty';
  if (name.length > MAX_NAME_LENGTH) return `the name is longer than ${MAX_NAME_LENGTH} characters`;
  if (!NAME_RE.test(name)) return 'the name does not match the distribution spec grammar';
  const entry = name.split('/').find((component) => LAYOUT_ENTRY_NAMES.has(component));
  if (entry !== undefined) return `the component ${JSON.stringify(entry)} is an entry of the storage layout of a repository`;
  return undefined;
}

export function isValidName(name: string): boolean {
  return nameProblem(name) === undefined;
}

export function assertValidName(name: string): void {
  const problem = nameProblem(name);
  if (problem !== undefined) throw new RegistryError('NAME_INVALID', `invalid repository name ${JSON.stringify(name)}: ${problem}`);
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export type ManifestReference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: ParsedDigest };

/** A manifest reference is a tag or a digest; anything else is MANIFEST_INVALID... or, per spec, a bad tag. */
export function parseReference(reference: string): ManifestReference {
  if (looksLikeDigest(reference)) return { kind: 'digest', digest: parseDigest(reference) };
  if (!isValidTag(reference)) throw new RegistryError('MANIFEST_INVALID', `invalid tag: ${JSON.stringify(reference)}`);
  return { kind: 'tag', tag: reference };
}
