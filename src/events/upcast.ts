// Turns a stored row of any schema version into the current event shape. Optional fields added
// to an event later (WriteRefused's count, firstTime, lastTime, folded; the reason and policy of a
// TagRemoved or ManifestDeleted) keep the version: a row without them reads as it was written, and
// readers default them (a count of 1; no reason).
import { EVENT_SCHEMA_VERSION, type StoredEvent } from './types.js';

export interface EventRow {
  seq: number;
  type: string;
  version: number;
  time: string;
  repo: string;
  digest: string | null;
  media_type: string | null;
  size: number | null;
  tag: string | null;
  client: string | null;
  request_id: string | null;
  identity: string;
  /** Absent from logs written before it was recorded. */
  auth_method?: string | null;
  data: string;
}

export function upcast(row: EventRow): StoredEvent {
  if (row.version > EVENT_SCHEMA_VERSION) {
    throw new Error(`event ${row.seq} has schema version ${row.version}, newer than this registry (${EVENT_SCHEMA_VERSION})`);
  }
  const data = JSON.parse(row.data) as Record<string, unknown>;
  const event: Record<string, unknown> = {
    ...data,
    seq: row.seq,
    version: row.version,
    time: row.time,
    type: row.type,
    repo: row.repo,
    identity: row.identity,
    authMethod: row.auth_method ?? 'anonymous',
  };
  if (row.digest !== null) event.digest = row.digest;
  if (row.media_type !== null) event.mediaType = row.media_type;
  if (row.size !== null) event.size = row.size;
  if (row.tag !== null) event.tag = row.tag;
  if (row.client !== null) event.client = row.client;
  if (row.request_id !== null) event.requestId = row.request_id;
  return event as unknown as StoredEvent;
}
