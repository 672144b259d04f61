// zot's events extension (pkg/extensions/events) as CloudEvents 1.0, derived from our event log.
// zot emits four types; three have a source here (there is no linter, so no lint_failed):
//
//   zotregistry.repository.created  {name}                         the first BlobPushed,
//                                                                    BlobMounted or ManifestPushed
//                                                                    of a repository
//   zotregistry.image.updated       {name, reference, digest,       TagSet (reference: the tag);
//                                    mediaType, manifest}           ManifestPushed by digest
//                                                                    (reference: the digest)
//   zotregistry.image.deleted       {name, reference, digest,       TagRemoved (the tag); a delete
//                                    mediaType}                     by digest: ManifestDeleted
//
// As in zot, a push by tag is one image.updated (its ManifestPushed and TagSet are one append),
// and a delete by digest is one image.deleted (not one more per tag it removed). `data` also
// carries `actor` {name} and, for a change made through a request, `request` {addr, method,
// useragent} (the user agent is not recorded: empty). `manifest` is the manifest's JSON as a
// string, left out when the manifest is gone from storage by the time the event is delivered.
//
// Unlike zot (a random id and the time of sending), an event's `id` is the sequence number of
// the log event it comes from (with ".created" for a repository.created), and its `time` that
// event's time: a redelivery after a failure is the same event, which a receiver can drop by id.
import type { StoredEvent } from '../../events/types.js';

export const DEFAULT_SOURCE = 'zotregistry.dev';
export const DEFAULT_TYPE_PREFIX = 'zotregistry';

export interface CloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  time: string;
  datacontenttype: 'application/json';
  data: Record<string, unknown>;
}

/** What the mapping reads besides the event itself. */
export interface CloudEventLookups {
  source: string;
  typePrefix: string;
  /** The sink has been told of the repository (its repository.created was delivered). */
  isAnnounced(repo: string): boolean;
  /** The events after `seq`, in log order, read lazily. */
  following(seq: number): Iterable<StoredEvent>;
  /** The media type the manifest was pushed with (before `seq`). */
  mediaType(repo: string, digest: string, beforeSeq: number): string | undefined;
  /** The manifest's bytes, if storage still has them. */
  manifest(repo: string, digest: string): Promise<Buffer | undefined>;
}

/** The log event types the mapping reads; every other type maps to nothing. */
export const MAPPED_TYPES = ['BlobPushed', 'BlobMounted', 'ManifestPushed', 'TagSet', 'TagRemoved', 'ManifestDeleted'] as const;

const METHODS: Partial<Record<StoredEvent['type'], string>> = {
  BlobPushed: 'PUT',
  BlobMounted: 'POST',
  ManifestPushed: 'PUT',
  TagSet: 'PUT',
  TagRemoved: 'DELETE',
  ManifestDeleted: 'DELETE',
};

/** Whether the event creates its repository, for a sink that has not been told of it yet. */
export function createsRepository(event: StoredEvent, lookups: Pick<CloudEventLookups, 'isAnnounced'>): boolean {
  return (event.type === 'BlobPushed' || event.type === 'BlobMounted' || event.type === 'ManifestPushed') && !lookups.isAnnounced(event.repo);
}

/** The CloudEvents one log event stands for, in order; none for most. */
export async function cloudEventsFor(event: StoredEvent, lookups: CloudEventLookups): Promise<CloudEvent[]> {
  const out: CloudEvent[] = [];
  const build = (id: string, kind: string, data: Record<string, unknown>): CloudEvent => ({
    specversion: '1.0',
    id,
    source: lookups.source,
    type: `${lookups.typePrefix}.${kind}`,
    time: event.time,
    datacontenttype: 'application/json',
    data: { ...data, ...provenance(event) },
  });
  if (createsRepository(event, lookups)) out.push(build(`${event.seq}.created`, 'repository.created', { name: event.repo }));

  const image = async (kind: 'image.updated' | 'image.deleted', reference: string, digest: string): Promise<void> => {
    const data: Record<string, unknown> = { name: event.repo, reference, digest, mediaType: lookups.mediaType(event.repo, digest, event.seq + 1) ?? '' };
    if (kind === 'image.updated') {
      const manifest = await lookups.manifest(event.repo, digest);
      if (manifest !== undefined) data.manifest = manifest.toString('utf8');
    }
    out.push(build(String(event.seq), kind, data));
  };
  switch (event.type) {
    case 'ManifestPushed':
      if (!tagFollows(event, lookups)) await image('image.updated', event.digest, event.digest);
      break;
    case 'TagSet':
      await image('image.updated', event.tag, event.digest);
      break;
    case 'TagRemoved':
      if (!manifestDeletionFollows(event, lookups)) await image('image.deleted', event.tag, event.digest);
      break;
    case 'ManifestDeleted':
      await image('image.deleted', event.digest, event.digest);
      break;
    default:
      break;
  }
  return out;
}

function provenance(event: StoredEvent): Record<string, unknown> {
  const method = METHODS[event.type];
  return {
    actor: { name: event.identity },
    ...(event.client !== undefined && method !== undefined ? { request: { addr: event.client, method, useragent: '' } } : {}),
  };
}

/** Appended by the same request in the same transaction: one time, one request, one identity. */
function sameAppend(a: StoredEvent, b: StoredEvent): boolean {
  return a.time === b.time && a.requestId === b.requestId && a.identity === b.identity;
}

/** A push by tag: the TagSet of this manifest comes right after it, in the same append. */
function tagFollows(event: StoredEvent & { type: 'ManifestPushed' }, lookups: CloudEventLookups): boolean {
  for (const next of lookups.following(event.seq)) {
    return next.seq === event.seq + 1 && sameAppend(event, next) && next.type === 'TagSet' && next.repo === event.repo && next.digest === event.digest;
  }
  return false;
}

/** A delete by digest: its TagRemoveds come first, then its ManifestDeleted, in one append. */
function manifestDeletionFollows(event: StoredEvent & { type: 'TagRemoved' }, lookups: CloudEventLookups): boolean {
  let expected = event.seq + 1;
  for (const next of lookups.following(event.seq)) {
    if (next.seq !== expected || !sameAppend(event, next) || next.repo !== event.repo) return false;
    if (next.type === 'ManifestDeleted') return next.digest === event.digest;
    if (next.type !== 'TagRemoved' || next.digest !== event.digest) return false;
    expected++;
  }
  return false;
}
