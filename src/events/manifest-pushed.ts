// The one builder of a ManifestPushed event, from a parsed manifest: the push path and the import
// of a zot root record manifests the same way.
import type { ParsedManifest } from '../oci/manifest.js';
import type { EventBody } from './types.js';

/** The event that records a parsed manifest of `size` bytes under `digest` in `repo`. */
export function manifestPushedEvent(repo: string, digest: string, size: number, parsed: ParsedManifest): EventBody {
  return {
    type: 'ManifestPushed',
    repo,
    digest,
    mediaType: parsed.mediaType,
    size,
    blobs: parsed.blobs,
    manifests: parsed.manifests,
    ...(parsed.artifactType !== undefined ? { artifactType: parsed.artifactType } : {}),
    ...(parsed.subject ? { subject: parsed.subject.digest } : {}),
    ...(parsed.annotations ? { annotations: parsed.annotations } : {}),
  };
}
