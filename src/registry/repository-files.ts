// The files of a repository that are not content: its layout (oci-layout and index.json, written
// on first push as zot does), where its content's bytes are, and removing bytes an event has let go.
import type { Logger } from 'pino';
import type { ParsedDigest } from '../oci/digest.js';
import type { RegistryStateQueries } from '../projections/registry-state.js';
import { blobPath, indexPath, ociLayoutPath, OCI_LAYOUT_CONTENT } from '../storage/layout.js';
import type { StorageRoots } from '../storage/roots.js';

export class RepositoryFiles {
  /** Repositories whose oci-layout and index.json are known to be on storage. */
  private readonly laidOut = new Set<string>();

  constructor(
    private readonly roots: StorageRoots,
    private readonly queries: RegistryStateQueries,
    private readonly logger?: Logger,
  ) {}

  /** Writes the repository's oci-layout and an empty index.json, as zot does on first push. */
  async ensureLayout(repo: string): Promise<void> {
    if (this.laidOut.has(repo)) return;
    const { driver } = this.roots.for(repo);
    if (!(await driver.stat(ociLayoutPath(repo)))) await driver.putContent(ociLayoutPath(repo), OCI_LAYOUT_CONTENT);
    if (!(await driver.stat(indexPath(repo)))) {
      await driver.putContent(indexPath(repo), JSON.stringify({ schemaVersion: 2, manifests: [] }));
    }
    this.laidOut.add(repo);
  }

  /** GC removed the repository: the next write lays out its oci-layout and index.json again. */
  forget(repo: string): void {
    this.laidOut.delete(repo);
  }

  /**
   * Whether an event names the bytes at the repository's own path of the digest: a manifest of the
   * repository, or a blob it holds itself (not through another repository, as with S3 dedupe).
   * Only such bytes were verified; anything else there (a corrupt file an import left out, an
   * orphan of a crash) must be replaced before an event names it.
   */
  ownPathNamed(repo: string, digest: string): boolean {
    if (this.queries.manifest(repo, digest)) return true;
    return this.queries.blobSize(repo, digest) !== undefined && this.queries.blobStoredIn(repo, digest) === undefined;
  }

  /** The path holding a repository's blob bytes: its own, or the holder's with S3 dedupe. */
  contentPath(repo: string, digest: ParsedDigest): string {
    return blobPath(this.queries.blobStoredIn(repo, digest.value) ?? repo, digest);
  }

  /**
   * Removes bytes an appended event has already let go of. A failure here is not the request's:
   * the removal is committed, and GC removes the file later as an orphan.
   */
  async removeAfterCommit(repo: string, digest: string, path: string): Promise<void> {
    try {
      await this.roots.for(repo).driver.delete(path);
    } catch (err) {
      this.logger?.warn({ repo, digest, err }, 'failed to remove deleted content from storage, leaving it to garbage collection');
    }
  }
}
