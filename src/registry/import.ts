// Imports a storage root written by zot (or any OCI-layout writer) into an empty event log, once:
// every blob whose bytes hash to its name, every manifest listed in index.json (and the child
// manifests of indexes) whose references are present, and every tag. Anything that fails those
// checks is logged and left out, so nothing unverified is ever served. A read that fails (the store
// answering an error, not a missing or corrupt file) stops the start-up with an error naming the
// path: the import runs once, and leaving out what could not be read would lose it for good.
import type { Logger } from 'pino';
import type { EventStore } from '../events/store.js';
import { SYSTEM_IMPORT_IDENTITY, type EventBody } from '../events/types.js';
import { PathNotFoundError, type StorageDriver } from '../storage/driver.js';
import type { StorageRoots } from '../storage/roots.js';
import { blobPath, blobsDir, indexPath, isLayoutEntry, isRepositoryMarker } from '../storage/layout.js';
import type { HashPool } from '../workers/pool.js';
import { manifestPushedEvent } from '../events/manifest-pushed.js';
import { DIGEST_ALGORITHMS, digestOfStoredName, parseDigest } from '../oci/digest.js';
import { parseManifest } from '../oci/manifest.js';
import { REF_NAME_ANNOTATION } from '../oci/media-types.js';
import { isValidName, isValidTag } from '../oci/names.js';
import { hashStoredContent } from './content-hash.js';

export const IMPORTED_META_KEY = 'storage-imported';

interface IndexEntry {
  mediaType?: string;
  digest?: string;
  annotations?: Record<string, string>;
}

export interface ImportResult {
  repositories: number;
  events: number;
  skipped: number;
}

/**
 * Runs the import when the log has never seen these roots; returns undefined when not needed.
 * Each root contributes the repositories that route to it.
 */
export async function importStorageOnce(roots: StorageRoots, store: EventStore, hashPool: HashPool, logger: Logger): Promise<ImportResult | undefined> {
  if (store.getMeta(IMPORTED_META_KEY) !== undefined) return undefined;
  if (store.head() > 0) {
    store.setMeta(IMPORTED_META_KEY, new Date().toISOString());
    return undefined;
  }
  const repos: string[] = [];
  const events: EventBody[] = [];
  let skipped = 0;
  try {
    for (const root of roots.roots) {
      for (const repo of await findRepositories(root.driver, '')) {
        if (!roots.owns(root, repo)) continue;
        repos.push(repo);
        const result = await importRepository(root.driver, hashPool, logger, repo);
        events.push(...result.events);
        skipped += result.skipped;
      }
    }
  } catch (err) {
    // Nothing is recorded yet: the next start imports again from the beginning.
    if (err instanceof StorageReadError) throw new Error(`failed to import the existing storage into the event log: ${err.message}`, { cause: err });
    throw err;
  }
  if (repos.length === 0) {
    // Nothing to import (a new root): the marker alone, without an append that waits for a sync
    // before the registry answers. The first append's sync covers it; lost to a power loss before
    // that, it is set again by the next start, which looks at the storage again.
    store.setMeta(IMPORTED_META_KEY, new Date().toISOString());
    return { repositories: 0, events: 0, skipped };
  }
  await store.append(events, { identity: SYSTEM_IMPORT_IDENTITY }, { alsoInTransaction: () => store.setMeta(IMPORTED_META_KEY, new Date().toISOString()) });
  if (repos.length > 0) logger.info({ repositories: repos.length, events: events.length, skipped }, 'imported existing storage into the event log');
  return { repositories: repos.length, events: events.length, skipped };
}

/** A read of the storage that failed for another reason than a missing path: it stops the import. */
export class StorageReadError extends Error {
  constructor(readonly path: string, storage: string, cause: unknown) {
    const reason = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
    super(`failed to read ${path || 'the storage root'} from the ${storage} storage: ${reason}`, { cause });
    this.name = 'StorageReadError';
  }
}

/** Runs one storage read of the import; its failure names the path it was reading. */
async function reading<T>(driver: StorageDriver, path: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof PathNotFoundError || err instanceof StorageReadError) throw err;
    throw new StorageReadError(path, driver.name, err);
  }
}

export async function findRepositories(driver: StorageDriver, dir: string): Promise<string[]> {
  const entries = await reading(driver, dir, () => driver.list(dir));
  const found: string[] = [];
  if (dir !== '' && entries.some(isRepositoryMarker) && isValidName(dir)) found.push(dir);
  for (const entry of entries.sort()) {
    if (isLayoutEntry(entry)) continue;
    const child = dir === '' ? entry : `${dir}/${entry}`;
    if ((await reading(driver, child, () => driver.stat(child)))?.isDirectory) found.push(...(await findRepositories(driver, child)));
  }
  return found;
}

async function importRepository(driver: StorageDriver, hashPool: HashPool, logger: Logger, repo: string): Promise<{ events: EventBody[]; skipped: number }> {
  let skipped = 0;
  // Verified blobs of the repository: digest → size.
  const verified = new Map<string, number>();
  for (const algorithm of DIGEST_ALGORITHMS) {
    const dir = blobsDir(repo, algorithm);
    for (const hex of await reading(driver, dir, () => driver.list(dir))) {
      const digest = digestOfStoredName(algorithm, hex);
      if (!digest) continue;
      const path = blobPath(repo, digest);
      const info = await reading(driver, path, () => driver.stat(path));
      if (!info || info.isDirectory) continue;
      const actual = await reading(driver, path, () => hashStoredContent(driver, path, algorithm, hashPool));
      if (actual !== hex) {
        logger.warn({ repo, digest: digest.value }, 'failed to verify blob during import, leaving it out');
        skipped++;
        continue;
      }
      verified.set(digest.value, info.size);
    }
  }

  let entries: IndexEntry[] = [];
  try {
    const index = JSON.parse((await reading(driver, indexPath(repo), () => driver.getContent(indexPath(repo)))).toString('utf8')) as { manifests?: IndexEntry[] };
    entries = Array.isArray(index.manifests) ? index.manifests : [];
  } catch (err) {
    // Missing or not JSON: the repository's tags are lost either way, so there is nothing to retry.
    if (err instanceof StorageReadError) throw err;
    logger.warn({ repo }, 'failed to read index.json during import');
  }

  const manifestEvents: EventBody[] = [];
  const imported = new Set<string>();
  const visiting = new Set<string>();
  // Children first, so every ManifestPushed finds what it references already recorded.
  const importManifest = async (digest: string, mediaType: string | undefined): Promise<boolean> => {
    if (imported.has(digest)) return true;
    const size = verified.get(digest);
    if (size === undefined || visiting.has(digest)) return false;
    visiting.add(digest);
    try {
      const path = blobPath(repo, parseDigest(digest));
      const content = await reading(driver, path, () => driver.getContent(path));
      const parsed = parseManifest(content, mediaType);
      for (const child of parsed.manifests) {
        if (!(await importManifest(child, undefined))) throw new Error(`child manifest ${child} is missing or invalid`);
      }
      const missing = parsed.blobs.find((b) => !verified.has(b));
      if (missing) throw new Error(`blob ${missing} is missing or corrupt`);
      manifestEvents.push(manifestPushedEvent(repo, digest, size, parsed));
      imported.add(digest);
      return true;
    } catch (err) {
      // A manifest that could not be read is not an invalid one: stop rather than leave it out.
      if (err instanceof StorageReadError) throw err;
      logger.warn({ repo, digest, reason: (err as Error).message }, 'failed to import manifest, leaving it out');
      skipped++;
      return false;
    } finally {
      visiting.delete(digest);
    }
  };

  const tagEvents: EventBody[] = [];
  for (const entry of entries) {
    if (typeof entry.digest !== 'string') continue;
    if (!(await importManifest(entry.digest, entry.mediaType))) continue;
    const tag = entry.annotations?.[REF_NAME_ANNOTATION];
    if (tag !== undefined && isValidTag(tag)) tagEvents.push({ type: 'TagSet', repo, tag, digest: entry.digest });
  }

  // Manifests are blobs on disk too; only the other blobs are recorded as blobs.
  const blobEvents: EventBody[] = [...verified]
    .filter(([digest]) => !imported.has(digest))
    .map(([digest, size]) => ({ type: 'BlobPushed', repo, digest, size }));
  return { events: [...blobEvents, ...manifestEvents, ...tagEvents], skipped };
}
