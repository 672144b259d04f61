// Domain errors. Code below the HTTP layer throws these and never picks a status: the one
// table in src/http/oci-errors.ts turns each kind into an OCI error code and an HTTP status.

export type ErrorKind =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'BLOB_REFERENCED'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_REFERENCED'
  | 'MANIFEST_TOO_LARGE'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'METHOD_UNKNOWN'
  | 'ROUTE_UNKNOWN'
  | 'TOOMANYREQUESTS'
  | 'REPOSITORY_QUOTA'
  | 'RANGE_INVALID'
  | 'PAGINATION_INVALID'
  | 'REQUEST_MALFORMED'
  | 'HEADERS_TOO_LARGE'
  | 'REQUEST_TIMEOUT'
  | 'UPSTREAM_UNAVAILABLE'
  | 'LOG_UNWRITABLE'
  | 'INTERNAL';

export class RegistryError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message?: string,
    readonly detail?: unknown,
    /** The error behind it (logged, never answered). */
    options?: ErrorOptions,
  ) {
    super(message ?? kind, options);
    this.name = 'RegistryError';
  }
}

export function isRegistryError(err: unknown): err is RegistryError {
  return err instanceof RegistryError;
}
