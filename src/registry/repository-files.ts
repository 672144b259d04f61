// The files of a repository that are not content: its layout (oci-layout and index.json, written
// on first push as zot does), where its content's bytes are, and removing bytes an event has let go.
import type { Logger } from 'pino';
import type { ParsedDigest } from '../oci/digest.js';
import type { RegistryStateQueries } from '../projections/registry-state.js';
import { blobPath, blobsDir, indexPath, ociLayoutPath, OCI_LAYOUT_CONTENT, uploadsDir } from '../storage/layout.js';
import type { StorageRoots } from '../storage/roots.js';

export class RepositoryFiles {
  /** Repositories whose oci-layout and index.json are known to be on storage. */
  private readonly laidOut = new Set<string>();

  constructor(
    private readonly roots: StorageRoots,
    private readonly queries: RegistryStateQueries,
    private readonly logger?: Logger,
  ) {}

  /**
   * Writes the repository's oci-layout and an empty index.json, as zot does on first push, and on
   * a filesystem makes its blobs/sha256 and .uploads directories, as zot does too.
   */
  async ensureLayout(repo: string): Promise<void> {
    if (this.laidOut.has(repo)) return;
    const { driver, staging } = this.roots.for(repo);
    const writeIfMissing = async (path: string, content: string): Promise<void> => {
      if (!(await driver.stat(path))) await driver.putContent(path, content);
    };
    // All at once: the new names in the repository's directory then share its fsyncs, where one
    // after the other each would pay its own.
    const directories = staging === driver ? [blobsDir(repo, 'sha256'), uploadsDir(repo)] : [];
    await Promise.all([
      writeIfMissing(ociLayoutPath(repo), OCI_LAYOUT_CONTENT),
      writeIfMissing(indexPath(repo), JSON.stringify({ schemaVersion: 2, manifests: [] })),
      ...directories.map((dir) => staging.makeDirectory(dir)),
    ]);
    this.laidOut.add(repo);
  }

  /** GC removed the repository: the next write lays out its oci-layout and index.json again. */
  forget(repo: string): void {
    this.laidOut.delete(repo);
  }

  /** Whether this process laid out the repository (or found it laid out) since GC last removed it. */
  isLaidOut(repo: string): boolean {
    return this.laidOut.has(repo);
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
