// The files of a repository that are not content: its layout (oci-layout, blobs/sha256 and
// .uploads, made on first push as zot makes them; on a filesystem, index.json comes from the
// index.json writer), where its content's bytes are, and removing bytes an event has let go.
import type { Logger } from 'pino';
import type { ParsedDigest } from '../oci/digest.js';
import type { RegistryStateQueries } from '../projections/registry-state.js';
import { blobPath, blobsDir, indexPath, ociLayoutPath, OCI_LAYOUT_CONTENT, uploadsDir } from '../storage/layout.js';
import type { StorageRoots } from '../storage/roots.js';

export class RepositoryFiles {
  /** Repositories whose layout is known to be on storage. */
  private readonly laidOut = new Set<string>();
  /** Layouts being written, by repository. */
  private readonly layingOut = new Map<string, Promise<void>>();

  constructor(
    private readonly roots: StorageRoots,
    private readonly queries: RegistryStateQueries,
    private readonly logger?: Logger,
  ) {}

  /**
   * Writes the repository's oci-layout and, on a filesystem, makes its blobs/sha256 and .uploads
   * directories, as zot does on first push. zot writes an empty index.json then too; in a bucket
   * so does this, but on a filesystem a repository's index.json is written by the index.json
   * writer alone, at its first manifest or tag (a crash before that leaves the event after the
   * writer's checkpoint: the next start writes it). Written at the first blob and replaced by the
   * writer a moment later, the empty file freed its inode within milliseconds, and on ext4
   * without a journal every inode allocated after it (the next pushes' files and directories)
   * paid for skipping the recently freed ones: 500 small images into new repositories at c=16
   * ran 1.11-1.12x as fast without it (bench --only small-ab, two runs of 10 paired rounds).
   * Until its first manifest such a repository is no repository to zot (ValidateRepo wants
   * index.json); zot's own first write to it would make the file, as ours does.
   */
  ensureLayout(repo: string): Promise<void> {
    if (this.laidOut.has(repo)) return Promise.resolve();
    // Concurrent first writes share one layout: in a bucket, a second one's empty index.json must
    // not land after the first one's push has had its index.json written.
    let layingOut = this.layingOut.get(repo);
    if (!layingOut) {
      layingOut = this.layOut(repo).finally(() => this.layingOut.delete(repo));
      this.layingOut.set(repo, layingOut);
    }
    return layingOut;
  }

  private async layOut(repo: string): Promise<void> {
    const { driver, staging } = this.roots.for(repo);
    const known = this.queries.repositoryExists(repo);
    if (staging === driver && !known) {
      // A repository the log does not know has no files that matter (at most what a crash or an
      // interrupted GC left: its layout, an index.json of manifests removed since, which goes):
      // all of it is written at once, without looking first, and synced together. A crash before
      // its first event leaves it new to the log, so its next write lays it out again.
      await staging.createTogether([blobsDir(repo, 'sha256'), uploadsDir(repo)], [{ path: ociLayoutPath(repo), content: OCI_LAYOUT_CONTENT }], [indexPath(repo)]);
    } else {
      // A bucket, or a repository the log knows (its first write since a start, or since GC
      // removed its layout): its files are kept where they are, and written where missing. On a
      // filesystem index.json is the index.json writer's alone (see ensureLayout): an empty one
      // written here where it is missing could also land after the writer's, as both hold the
      // repository shared.
      const write = async (path: string, content: string): Promise<void> => {
        if (!known) await driver.putContent(path, content, { unnamed: true });
        else if (!(await driver.stat(path))) await driver.putContent(path, content);
      };
      const onFilesystem = staging === driver;
      await Promise.all([
        write(ociLayoutPath(repo), OCI_LAYOUT_CONTENT),
        ...(onFilesystem
          ? [blobsDir(repo, 'sha256'), uploadsDir(repo)].map((dir) => staging.makeDirectory(dir))
          : [write(indexPath(repo), JSON.stringify({ schemaVersion: 2, manifests: [] }))]),
      ]);
    }
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
