// Every fact the registry records, as one discriminated union of past-tense events.
// Events are never edited: a change of shape gets a new schema version and an upcast in
// upcast.ts, so old logs keep reading.
import type { AuthMethod } from '../auth/types.js';

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

/**
 * Why garbage collection or retention removed a tag or a manifest (optional fields added without a
 * new schema version: events written before them have neither). `reason` names the retention
 * setting that decided: `keepTags` (a tag no keepTags entry kept), `deleteUntagged` (an untagged
 * manifest, zot's default when no policy matches), `deleteReferrers` (a referrer whose subject is
 * gone). `policy` is the path of the policy in the configuration, such as
 * `storage.retention.policies.0` or `storage.subPaths./a.retention.policies.1`.
 */
export interface RemovalCause {
  reason: RemovalReason;
  policy?: string;
}

export type RemovalReason = 'keepTags' | 'deleteUntagged' | 'deleteReferrers';

/** One manifest's pulls within a ManifestsPulled batch. */
export interface ManifestPull {
  digest: string;
  /** ISO-8601 time of the last pull in the batch. */
  time: string;
  count: number;
}

export type EventBody =
  /**
   * `storedIn`: with dedupe on a driver without hard links (S3), the repository whose path holds
   * the bytes; absent when the repository's own path holds them.
   */
  | { type: 'BlobPushed'; repo: string; digest: string; size: number; storedIn?: string }
  | { type: 'BlobMounted'; repo: string; digest: string; size: number; from: string; storedIn?: string }
  | { type: 'BlobDeleted'; repo: string; digest: string }
  /**
   * The repository's copy of the blob now lives at `storedIn`'s path (absent: at its own path).
   * Appended when the holder of shared bytes is deleted (the bytes were copied to this repository
   * first), when dedupe drops a duplicate copy, and when turning dedupe off restores a copy.
   */
  | { type: 'BlobRelocated'; repo: string; digest: string; storedIn?: string }
  | ({ type: 'ManifestPushed'; repo: string; digest: string } & ManifestPushedData)
  /** `reason` (and `policy`, when one matched) when garbage collection removed it: see RemovalCause. */
  | ({ type: 'ManifestDeleted'; repo: string; digest: string } & Partial<RemovalCause>)
  | { type: 'TagSet'; repo: string; tag: string; digest: string; previous?: string }
  /** `reason` and `policy` when retention removed it (identity system:retention). */
  | ({ type: 'TagRemoved'; repo: string; tag: string; digest: string } & Partial<RemovalCause>)
  /**
   * Clients pulled (GET, answered 200) these manifests of the repository. Pulls are noted in memory
   * and appended in batches (registry/pull-recorder.ts): one event per repository per batch, each
   * manifest once with the time of its last pull in the batch and how many pulls it stands for.
   */
  | { type: 'ManifestsPulled'; repo: string; pulls: ManifestPull[] }
  /** GC removed an upload session that saw no write for gcDelay. */
  | { type: 'UploadExpired'; repo: string; uploadId: string; size: number }
  /** GC removed bytes that no event named (a crash between writing them and the append). */
  | { type: 'OrphanRemoved'; repo: string; digest: string; size: number }
  /** GC removed a repository left with no manifests, blobs or uploads; it leaves the catalog. */
  | { type: 'RepositoryRemoved'; repo: string }
  /**
   * A write (POST, PUT, PATCH, DELETE) answered 4xx: invalid, unknown, read-only, denied. Recorded
   * for the audit log only; projections ignore it. `repo` is '' when the name was not valid, and
   * `path` never carries the query string (tokens travel there).
   *
   * Refusals are aggregated (src/registry/refusals.ts): `count` is how many refusals the event
   * stands for, between `firstTime` and `lastTime`, with the request fields of the last one; all
   * three are absent for a single refusal (as in every event written before they existed, so the
   * schema version stays). `folded`: refusals of one identity past the bound of keys, across
   * repositories and codes; `repo` is then ''.
   */
  | {
      type: 'WriteRefused';
      repo: string;
      method: string;
      path: string;
      status: number;
      code: string;
      reference?: string;
      count?: number;
      firstTime?: string;
      lastTime?: string;
      folded?: true;
    };

export type EventType = EventBody['type'];

export const EVENT_TYPES: readonly EventType[] = [
  'BlobPushed',
  'BlobMounted',
  'BlobDeleted',
  'ManifestPushed',
  'ManifestDeleted',
  'TagSet',
  'TagRemoved',
  'BlobRelocated',
  'UploadExpired',
  'OrphanRemoved',
  'RepositoryRemoved',
  'WriteRefused',
  'ManifestsPulled',
];

/** Where synced content came from: the upstream URL that served it, its repository and digest there. */
export interface EventSource {
  url: string;
  repo: string;
  digest: string;
}

/**
 * Who caused an event and through which request: `identity` is the user name, the certificate's
 * CN, the token's subject, "anonymous", "sync", or a system identity (system:gc, …); `authMethod`
 * is how the request authenticated (a request's events always name it; events written before it
 * was recorded, and system events, read as "anonymous"). Named apart from WriteRefused's `method`,
 * the HTTP method. `source` names the upstream of content that sync brought in (identity `sync`);
 * it is kept with each event of the append.
 */
export interface EventContext {
  identity: string;
  authMethod?: AuthMethod;
  client?: string;
  requestId?: string;
  source?: EventSource;
}

export const SYSTEM_IMPORT_IDENTITY = 'system:import';
/** The identity of removals made by garbage collection. */
export const SYSTEM_GC_IDENTITY = 'system:gc';
/** The identity of tag removals decided by a retention policy (storage.retention). */
export const SYSTEM_RETENTION_IDENTITY = 'system:retention';
/** The identity of a batch of pulls, which may come from many clients. */
export const SYSTEM_PULLS_IDENTITY = 'system:pulls';
/** The identity of relocations made by dedupe's background pass. */
export const SYSTEM_DEDUPE_IDENTITY = 'system:dedupe';
/** The identity of refusals counted together because too many identities were refused at once. */
export const SYSTEM_REFUSALS_IDENTITY = 'system:refusals';
/** The identity of content brought in from upstream registries (src/sync). */
export const SYNC_IDENTITY = 'sync';

export type StoredEvent = EventBody &
  EventContext & {
    seq: number;
    version: number;
    /** ISO-8601 time of the append. */
    time: string;
  };

export type EventOf<T extends EventType> = Extract<StoredEvent, { type: T }>;
