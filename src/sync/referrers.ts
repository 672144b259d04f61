// What refers to an image upstream, and whether it is signed: the OCI referrers API, and the tag
// schemes that stand in for it (cosign's `sha256-<hex>.sig`, `.att`, `.sbom`; the spec's referrers
// tag `sha256-<hex>`).
import type { UpstreamClient, UpstreamDescriptor } from './upstream-client.js';

/** Artifact types of signatures, for onlySigned: cosign's and notation's. */
export const SIGNATURE_ARTIFACT_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.dev.cosign.artifact.sig.v1+json',
  'application/vnd.cncf.notary.signature',
]);

const REFERRER_TAG = /^(sha256|sha512)-[a-f0-9]{64,128}(\.(sig|att|sbom))?$/;

/** A tag that stands for something attached to another image: copied with it, not as an image. */
export function isReferrerTag(tag: string): boolean {
  return REFERRER_TAG.test(tag);
}

/** The tags that may carry what refers to `digest`, signature first. */
export function referrerTags(digest: string): { signature: string; others: string[] } {
  const base = digest.replace(':', '-');
  return { signature: `${base}.sig`, others: [`${base}.att`, `${base}.sbom`, base] };
}

export interface UpstreamReferrers {
  /** From the referrers API (none from an upstream without it). */
  descriptors: UpstreamDescriptor[];
  /** Tags of the repository that carry referrers of the digest (cosign, the referrers tag). */
  tags: string[];
}

export async function findReferrers(client: UpstreamClient, repo: string, digest: string, repoTags: readonly string[], signal?: AbortSignal): Promise<UpstreamReferrers> {
  const descriptors = await client.referrers(repo, digest, signal ? { signal } : {});
  const { signature, others } = referrerTags(digest);
  return { descriptors, tags: [signature, ...others].filter((tag) => repoTags.includes(tag)) };
}

/** A cosign signature tag, or a referrer whose artifact type is a signature's. */
export function isSigned(digest: string, referrers: UpstreamReferrers): boolean {
  if (referrers.tags.includes(referrerTags(digest).signature)) return true;
  return referrers.descriptors.some((d) => d.artifactType !== undefined && SIGNATURE_ARTIFACT_TYPES.has(d.artifactType));
}
