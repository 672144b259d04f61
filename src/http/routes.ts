// The /v2/ dispatch table of the OCI distribution spec v1.1, routed once and parsed with the
// spec's endpoint patterns (repository names contain "/"):
// https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#endpoints
//
//   end-1   GET, HEAD /v2/
//   end-2   GET, HEAD /v2/<name>/blobs/<digest>                 end-10  DELETE
//   end-3   GET, HEAD /v2/<name>/manifests/<reference>          end-7   PUT   end-9 DELETE
//   end-4a  POST      /v2/<name>/blobs/uploads/                 (also ?digest=, ?mount=&from= and ?mount= alone)
//   end-5   PATCH     /v2/<name>/blobs/uploads/<reference>      end-6   PUT ?digest=
//   end-13  GET       /v2/<name>/blobs/uploads/<reference>      (status)  DELETE (cancel)
//   end-8a  GET       /v2/<name>/tags/list?n=&last=
//   end-12a GET       /v2/<name>/referrers/<digest>?artifactType=
//           GET       /v2/_catalog?n=&last=
import { RegistryError } from '../oci/errors.js';

export type Endpoint = 'base' | 'catalog' | 'uploads' | 'upload' | 'blob' | 'manifest' | 'tags' | 'referrers';

export interface Route {
  endpoint: Endpoint;
  name: string;
  /** Digest, tag or upload id: the last path segment where the endpoint has one. */
  reference: string;
}

const TABLE: readonly { pattern: RegExp; endpoint: Endpoint }[] = [
  { pattern: /^(.+)\/blobs\/uploads\/?$/, endpoint: 'uploads' },
  { pattern: /^(.+)\/blobs\/uploads\/([^/]+)$/, endpoint: 'upload' },
  { pattern: /^(.+)\/blobs\/([^/]+)$/, endpoint: 'blob' },
  { pattern: /^(.+)\/manifests\/([^/]+)$/, endpoint: 'manifest' },
  { pattern: /^(.+)\/tags\/list$/, endpoint: 'tags' },
  { pattern: /^(.+)\/referrers\/([^/]+)$/, endpoint: 'referrers' },
];

/** Methods each endpoint answers; anything else is 405. */
export const METHODS: Readonly<Record<Endpoint, readonly string[]>> = {
  base: ['GET', 'HEAD'],
  catalog: ['GET'],
  uploads: ['POST'],
  upload: ['GET', 'PATCH', 'PUT', 'DELETE'],
  blob: ['GET', 'HEAD', 'DELETE'],
  manifest: ['GET', 'HEAD', 'PUT', 'DELETE'],
  tags: ['GET'],
  referrers: ['GET'],
};

/** Resolves the path after /v2/ (still percent-encoded) to an endpoint, or ROUTE_UNKNOWN. */
export function resolveRoute(rest: string): Route {
  if (rest === '' || rest === '/') return { endpoint: 'base', name: '', reference: '' };
  if (rest === '_catalog') return { endpoint: 'catalog', name: '', reference: '' };
  for (const { pattern, endpoint } of TABLE) {
    const match = pattern.exec(rest);
    if (match) {
      return { endpoint, name: decode(match[1] ?? ''), reference: decode(match[2] ?? '') };
    }
  }
  throw new RegistryError('ROUTE_UNKNOWN', `no endpoint at /v2/${rest}`);
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new RegistryError('NAME_INVALID', `malformed percent-encoding in ${JSON.stringify(segment)}`);
  }
}
