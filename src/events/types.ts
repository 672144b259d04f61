// Every fact the registry records, as one discriminated union of past-tense events.
// Events are never edited: a change of shape gets a new schema version and an upcast in
// upcast.ts, so old logs keep reading.

export const EVENT_SCHEMA_VERSION = 1;

/** A descriptor-like reference from a manifest to something it needs, kept for checks and GC. */
export interface ManifestPushedData {
  mediaType: string;
  size: number;
  /** artifactType of the manifest, or its config's media type for images, for referrers. */
  artifactType?: string;
  /** Digest of the manifest this one refers to (`subject`). */
  subject?: string;
  /** Digests of the blobs (config, layers) and child manifests this manifest references. */
  blobs: string[];
  manifests: string[];
  annotations?: Record<string, string>;
}

export type EventBody =
  | { type: 'BlobPushed'; repo: string; digest: string; size: number }
  | { type: 'BlobMounted'; repo: string; digest: string; size: number; from: string }
  | { type: 'BlobDeleted'; repo: string; digest: string }
  | ({ type: 'ManifestPushed'; repo: string; digest: string } & ManifestPushedData)
  | { type: 'ManifestDeleted'; repo: string; digest: string }
  | { type: 'TagSet'; repo: string; tag: string; digest: string; previous?: string }
  | { type: 'TagRemoved'; repo: string; tag: string; digest: string }
  /**
   * A write (POST, PUT, PATCH, DELETE) answered 4xx: invalid, unknown, read-only, denied. Recorded
   * for the audit log only; projections ignore it. `repo` is '' when the name was not valid, and
   * `path` never carries the query string (tokens travel there).
   */
  | { type: 'WriteRefused'; repo: string; method: string; path: string; status: number; code: string; reference?: string };

export type EventType = EventBody['type'];

export const EVENT_TYPES: readonly EventType[] = [
  'BlobPushed',
  'BlobMounted',
  'BlobDeleted',
  'ManifestPushed',
  'ManifestDeleted',
  'TagSet',
  'TagRemoved',
  'WriteRefused',
];

/** Who caused an event and through which request; `identity` is "anonymous" until auth lands. */
export interface EventContext {
  identity: string;
  client?: string;
  requestId?: string;
}

export const SYSTEM_IMPORT_IDENTITY = 'system:import';

export type StoredEvent = EventBody &
  EventContext & {
    seq: number;
    version: number;
    /** ISO-8601 time of the append. */
    time: string;
  };

export type EventOf<T extends EventType> = Extract<StoredEvent, { type: T }>;
