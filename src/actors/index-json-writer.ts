// Keeps each repository's index.json as zot writes it, so that zot (and any OCI layout tool)
// can read a root this registry wrote: one descriptor per tag, carrying the tag in the
// org.opencontainers.image.ref.name annotation, plus one untagged descriptor for every manifest
// that has no tag (children of an index included: zot lists them, and its GC keeps only what
// index.json lists).
import type { RegistryStateQueries } from '../projections/registry-state.js';
import type { StorageRoots } from '../storage/roots.js';
import { indexPath, ociLayoutPath, OCI_LAYOUT_CONTENT } from '../storage/layout.js';
import type { EventType } from '../events/types.js';
import type { Actor } from './actor.js';
import { REF_NAME_ANNOTATION } from '../oci/media-types.js';

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

  constructor(
    private readonly queries: RegistryStateQueries,
    private readonly roots: StorageRoots,
  ) {}

  /**
   * Each repository the batch touches is written once: its file is the projection's current state,
   * whatever the events, so a burst of tag PUTs costs one write of it, not one per tag, and a
   * catch-up one per repository and span of the log, not one per page of events.
   */
  async handleRepositories(repos: readonly string[]): Promise<void> {
    for (const repo of repos) await this.write(repo);
  }

  private async write(repo: string): Promise<void> {
    // A repository GC has since removed keeps no files; its next push writes them again.
    if (!this.queries.repositoryExists(repo)) return;
    // Written from the projection's current state, so replaying old events is idempotent.
    const { driver } = this.roots.for(repo);
    const index = buildIndex(this.queries, repo);
    if (!(await driver.stat(ociLayoutPath(repo)))) await driver.putContent(ociLayoutPath(repo), OCI_LAYOUT_CONTENT);
    await driver.putContent(indexPath(repo), JSON.stringify(index));
  }
}
