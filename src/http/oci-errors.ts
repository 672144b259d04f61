// The one table of OCI errors: each domain error kind with the OCI code, HTTP status and
// default message it is answered with, and the one renderer of `{"errors":[...]}` bodies.
// Codes and statuses follow the distribution spec v1.1, "Error Codes":
// https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#error-codes
import type { ErrorKind } from '../oci/errors.js';

export interface OciErrorEntry {
  code: string;
  status: number;
  message: string;
}

export const OCI_ERRORS: Readonly<Record<ErrorKind, OciErrorEntry>> = {
  BLOB_UNKNOWN: { code: 'BLOB_UNKNOWN', status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { code: 'BLOB_UPLOAD_INVALID', status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { code: 'BLOB_UPLOAD_UNKNOWN', status: 404, message: 'blob upload unknown to registry' },
  BLOB_REFERENCED: {
    code: 'UNSUPPORTED',
    status: 405,
    message: 'blob is referenced by a manifest of this repository; delete the manifest first',
  },
  DIGEST_INVALID: { code: 'DIGEST_INVALID', status: 400, message: 'provided digest did not match uploaded content' },
  // 400 as in the distribution registry and zot: the request names something it has not pushed.
  MANIFEST_BLOB_UNKNOWN: {
    code: 'MANIFEST_BLOB_UNKNOWN',
    status: 400,
    message: 'manifest references a manifest or blob unknown to registry',
  },
  MANIFEST_INVALID: { code: 'MANIFEST_INVALID', status: 400, message: 'manifest invalid' },
  // As zot: a manifest an index of the repository lists stays until the index is deleted.
  MANIFEST_REFERENCED: {
    code: 'DENIED',
    status: 405,
    message: 'manifest is referenced by an index of this repository; delete the index first',
  },
  MANIFEST_TOO_LARGE: { code: 'MANIFEST_INVALID', status: 413, message: 'manifest is larger than 4 MiB' },
  MANIFEST_UNKNOWN: { code: 'MANIFEST_UNKNOWN', status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { code: 'NAME_INVALID', status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { code: 'NAME_UNKNOWN', status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { code: 'SIZE_INVALID', status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { code: 'UNAUTHORIZED', status: 401, message: 'authentication required' },
  DENIED: { code: 'DENIED', status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { code: 'UNSUPPORTED', status: 405, message: 'the operation is unsupported' },
  METHOD_UNKNOWN: { code: 'UNSUPPORTED', status: 405, message: 'method not allowed on this endpoint' },
  ROUTE_UNKNOWN: { code: 'UNSUPPORTED', status: 404, message: 'no such endpoint' },
  TOOMANYREQUESTS: { code: 'TOOMANYREQUESTS', status: 429, message: 'too many requests' },
  // storage.maxRepos, answered as zot answers it (pkg/api/quota.go): 413, not 429, so that a client
  // does not retry what waiting will not change.
  REPOSITORY_QUOTA: { code: 'TOOMANYREQUESTS', status: 413, message: 'the registry holds storage.maxRepos repositories already' },
  RANGE_INVALID: { code: 'RANGE_INVALID', status: 416, message: 'requested range is not satisfiable' },
  PAGINATION_INVALID: { code: 'PAGINATION_NUMBER_INVALID', status: 400, message: 'invalid number of results requested' },
  // Requests node's HTTP parser refuses (client-errors.ts): the spec has no code for them.
  REQUEST_MALFORMED: { code: 'UNSUPPORTED', status: 400, message: 'the request is not well-formed HTTP' },
  HEADERS_TOO_LARGE: { code: 'UNSUPPORTED', status: 431, message: 'the request headers are too large' },
  REQUEST_TIMEOUT: { code: 'UNSUPPORTED', status: 408, message: 'the request was not received in time' },
  // Sync on demand: a pull that only an upstream could answer, and no upstream URL could be reached.
  UPSTREAM_UNAVAILABLE: { code: 'UNKNOWN', status: 502, message: 'the upstream registry could not be reached' },
  // The event log failed to sync to disk: nothing more is appended until a restart (events/store.ts).
  LOG_UNWRITABLE: {
    code: 'UNKNOWN',
    status: 503,
    message: 'the registry cannot make its event log durable and refuses writes until it restarts',
  },
  INTERNAL: { code: 'UNKNOWN', status: 500, message: 'internal server error' },
};

export interface OciErrorBody {
  errors: { code: string; message: string; detail?: unknown }[];
}

export function renderOciError(kind: ErrorKind, message?: string, detail?: unknown): { status: number; body: OciErrorBody } {
  const entry = OCI_ERRORS[kind];
  const error: OciErrorBody['errors'][number] = { code: entry.code, message: message ?? entry.message };
  if (detail !== undefined) error.detail = detail;
  return { status: entry.status, body: { errors: [error] } };
}
