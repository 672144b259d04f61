// Keeps each repository's index.json as zot writes it, so that zot (and any OCI layout tool)
// can read a root this registry wrote: one descriptor per tag, carrying the tag in the
// org.opencontainers.image.ref.name annotation, plus one untagged descriptor for every manifest
// that has no tag (children of an index included: zot lists them, and its GC keeps only what
// index.json lists). On a filesystem a repository's first index.json is written here too, at its
// first manifest or tag: its layout is made without one (registry/repository-files.ts).
import type { RegistryStateQueries } from '../projections/registry-state.js';
import type { StorageRoots } from '../storage/roots.js';
import { indexPath, ociLayoutPath, OCI_LAYOUT_CONTENT } from '../storage/layout.js';
import type { EventType } from '../events/types.js';
import type { Actor } from './actor.js';
import { REF_NAME_ANNOTATION } from '../oci/media-types.js';
import { eachBounded } from '../concurrency.js';
import type { RegistryLocks } from '../registry/locks.js';
import type { RepositoryFiles } from '../registry/repository-files.js';

/**
 * Repositories of one batch written side by side, at most: each write waits mostly on its two
 * fsyncs (the file, its directory), which the libuv pool runs at once, where one after the other
 * a burst into many repositories left the writer seconds behind the pushes.
 */
export const PARALLEL_INDEX_WRITES = 8;

export interface IndexDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export function buildIndex(queries: RegistryStateQueries, repo: string): { schemaVersion: 2; manifests: IndexDescriptor[] } {
  const manifests: IndexDescriptor[] = [];
  for (const row of queries.manifestsWithTags(repo)) {
    const descriptor: IndexDescriptor = { mediaType: row.media_type, digest: row.digest, size: row.size };
    if (row.tag !== null) descriptor.annotations = { [REF_NAME_ANNOTATION]: row.tag };
    manifests.push(descriptor);
  }
  return { schemaVersion: 2, manifests };
}

export class IndexJsonWriter implements Actor {
  readonly name = 'index-json-writer';
  readonly handles: readonly EventType[] = ['ManifestPushed', 'ManifestDeleted', 'TagSet', 'TagRemoved'];
  /** A repository's file is written from the projection's current state: rewriting it is harmless. */
  readonly lazyCheckpoint = true;

  /**
   * Repositories whose oci-layout this writer found on storage: checked once each, not on every
   * write. The ones this process laid out (`files`) are not checked at all.
   */
  private readonly layoutSeen = new Set<string>();

  constructor(
    private readonly queries: RegistryStateQueries,
    private readonly roots: StorageRoots,
    private readonly registry: { readonly files: RepositoryFiles; readonly locks: RegistryLocks },
  ) {}

  /**
   * Each repository the batch touches is written once: its file is the projection's current state,
   * whatever the events, so a burst of tag PUTs costs one write of it, not one per tag, and a
   * catch-up one per repository and span of the log, not one per page of events.
   */
  async handleRepositories(repos: readonly string[]): Promise<void> {
    // Each write is durable on its own (putContent syncs the file and its directory), and the
    // runner stores the checkpoint only once every write of the batch is done: a failure retries
    // the batch, rewriting the ones already written with the same content.
    await eachBounded(repos, PARALLEL_INDEX_WRITES, (repo) => this.registry.locks.inRepository(repo, () => this.write(repo)));
  }

  /** Holding the repository shared: GC cannot remove its files between the check and the write. */
  private async write(repo: string): Promise<void> {
    // A repository GC has since removed keeps no files; its next push writes them again.
    if (!this.queries.repositoryExists(repo)) {
      this.layoutSeen.delete(repo);
      return;
    }
    // Written from the projection's current state, so replaying old events is idempotent.
    const { driver } = this.roots.for(repo);
    const index = buildIndex(this.queries, repo);
    // A push lays out its repository (durably, before its event) and GC's removal forgets it: only
    // a repository this process has not laid out, one from before a restart, is looked at.
    if (!this.registry.files.isLaidOut(repo) && !this.layoutSeen.has(repo)) {
      if (!(await driver.stat(ociLayoutPath(repo)))) await driver.putContent(ociLayoutPath(repo), OCI_LAYOUT_CONTENT);
      this.layoutSeen.add(repo);
    }
    await driver.putContent(indexPath(repo), JSON.stringify(index));
  }
}
