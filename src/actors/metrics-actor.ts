// Keeps the per-repository figures of the Prometheus metrics: uploads and storage bytes from the
// event stream, downloads from the HTTP layer. Its tables are written by `writeTables`, inside the
// transaction in which the runner stores its checkpoint (actor.ts), so a restart resumes exactly
// where it stopped and the figures are loaded back, not recounted; a power loss rolls back its
// latest figures and checkpoint together, and the runner replays those events. Downloads are not
// events: they are counted in memory and added to the table every few seconds and at shutdown (a
// crash loses at most the last interval's). It writes through the actors' connection (`db`).
//
//   metrics_repos    repo → uploads, storage_bytes, downloads
//   metrics_content  repo, digest → size, held as a blob and/or as a manifest (one file on disk either
//                    way, counted once); the size of something deleted is read here, because the
//                    projection's row is gone by the time the event reaches this actor.
import type { Db } from '../events/database.js';
import { SYSTEM_IMPORT_IDENTITY, type EventType, type StoredEvent } from '../events/types.js';
import type { Actor } from './actor.js';
import type { PrometheusMetrics } from './prometheus.js';

export const METRICS_ACTOR = 'metrics';
const DOWNLOAD_FLUSH_MS = 5_000;

type Role = 'blob' | 'manifest';

interface RepoRow {
  repo: string;
  uploads: number;
  storage_bytes: number;
  downloads: number;
}

interface ContentRow {
  size: number;
  as_blob: number;
  as_manifest: number;
}

/** What one event changed, applied to the in-memory metrics once its transaction committed. */
interface Change {
  repo: string;
  uploads: number;
  bytes: number;
}

export class MetricsActor implements Actor {
  readonly name = METRICS_ACTOR;
  readonly handles: readonly EventType[] = ['BlobPushed', 'BlobMounted', 'ManifestPushed', 'BlobDeleted', 'ManifestDeleted'];

  private readonly s;
  private readonly flushInTransaction;
  private pendingDownloads = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    db: Db,
    private readonly metrics: PrometheusMetrics,
  ) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS metrics_repos (
        repo          TEXT PRIMARY KEY,
        uploads       INTEGER NOT NULL DEFAULT 0,
        storage_bytes INTEGER NOT NULL DEFAULT 0,
        downloads     INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE IF NOT EXISTS metrics_content (
        repo        TEXT    NOT NULL,
        digest      TEXT    NOT NULL,
        size        INTEGER NOT NULL,
        as_blob     INTEGER NOT NULL,
        as_manifest INTEGER NOT NULL,
        PRIMARY KEY (repo, digest)
      ) WITHOUT ROWID;
    `);
    this.s = {
      allRepos: db.prepare('SELECT repo, uploads, storage_bytes, downloads FROM metrics_repos ORDER BY repo'),
      addToRepo: db.prepare(`
        INSERT INTO metrics_repos (repo, uploads, storage_bytes, downloads) VALUES (@repo, @uploads, @bytes, @downloads)
        ON CONFLICT (repo) DO UPDATE SET uploads = uploads + @uploads, storage_bytes = storage_bytes + @bytes,
          downloads = downloads + @downloads
      `),
      content: db.prepare('SELECT size, as_blob, as_manifest FROM metrics_content WHERE repo = ? AND digest = ?'),
      insertContent: db.prepare('INSERT INTO metrics_content (repo, digest, size, as_blob, as_manifest) VALUES (?, ?, ?, ?, ?)'),
      updateRoles: db.prepare('UPDATE metrics_content SET as_blob = ?, as_manifest = ? WHERE repo = ? AND digest = ?'),
      deleteContent: db.prepare('DELETE FROM metrics_content WHERE repo = ? AND digest = ?'),
    };
    this.flushInTransaction = db.transaction((pending: Map<string, number>) => {
      for (const [repo, downloads] of pending) this.s.addToRepo.run({ repo, uploads: 0, bytes: 0, downloads });
    });
    this.load();
  }

  /** The figures stored so far go into the metrics once, before any event or request adds to them. */
  private load(): void {
    for (const row of this.s.allRepos.all() as RepoRow[]) {
      if (row.uploads > 0) this.metrics.repoUploads.inc({ repo: row.repo }, row.uploads);
      if (row.downloads > 0) this.metrics.repoDownloads.inc({ repo: row.repo }, row.downloads);
      this.metrics.repoStorageBytes.set({ repo: row.repo }, row.storage_bytes);
    }
  }

  /**
   * Runs inside the runner's checkpoint transaction, so an event is counted in the tables exactly
   * once; the in-memory metrics move only after that transaction committed.
   */
  writeTables(event: StoredEvent): () => void {
    const change = this.change(event);
    if (change.uploads !== 0 || change.bytes !== 0) {
      this.s.addToRepo.run({ repo: change.repo, uploads: change.uploads, bytes: change.bytes, downloads: 0 });
    }
    return () => {
      if (change.uploads > 0) this.metrics.repoUploads.inc({ repo: change.repo }, change.uploads);
      if (change.bytes !== 0) this.metrics.repoStorageBytes.inc({ repo: change.repo }, change.bytes);
    };
  }

  /**
   * Uploads count manifest pushes, as zot counts them (PutImageManifest); blobs only add bytes. A
   * root imported from zot brings its bytes but no uploads.
   */
  private change(event: StoredEvent): Change {
    const repo = event.repo;
    switch (event.type) {
      case 'BlobPushed':
      case 'BlobMounted':
        return { repo, uploads: 0, bytes: this.hold(repo, event.digest, event.size, 'blob') };
      case 'ManifestPushed':
        return {
          repo,
          uploads: event.identity === SYSTEM_IMPORT_IDENTITY ? 0 : 1,
          bytes: this.hold(repo, event.digest, event.size, 'manifest'),
        };
      case 'BlobDeleted':
        return { repo, uploads: 0, bytes: this.release(repo, event.digest, 'blob') };
      case 'ManifestDeleted':
        return { repo, uploads: 0, bytes: this.release(repo, event.digest, 'manifest') };
      default:
        return { repo, uploads: 0, bytes: 0 };
    }
  }

  /** Records that the repository holds the content in this role; returns the bytes it adds. */
  private hold(repo: string, digest: string, size: number, role: Role): number {
    const row = this.s.content.get(repo, digest) as ContentRow | undefined;
    if (!row) {
      this.s.insertContent.run(repo, digest, size, role === 'blob' ? 1 : 0, role === 'manifest' ? 1 : 0);
      return size;
    }
    this.s.updateRoles.run(role === 'blob' ? 1 : row.as_blob, role === 'manifest' ? 1 : row.as_manifest, repo, digest);
    return 0;
  }

  /** Drops the role; the bytes go only when the content is held in no role any more. */
  private release(repo: string, digest: string, role: Role): number {
    const row = this.s.content.get(repo, digest) as ContentRow | undefined;
    if (!row) return 0;
    const asBlob = role === 'blob' ? 0 : row.as_blob;
    const asManifest = role === 'manifest' ? 0 : row.as_manifest;
    if (asBlob === 0 && asManifest === 0) {
      this.s.deleteContent.run(repo, digest);
      return -row.size;
    }
    this.s.updateRoles.run(asBlob, asManifest, repo, digest);
    return 0;
  }

  /** A manifest was served (GET or HEAD answered 200), which zot counts as a download. */
  recordDownload(repo: string): void {
    this.metrics.repoDownloads.inc({ repo });
    this.pendingDownloads.set(repo, (this.pendingDownloads.get(repo) ?? 0) + 1);
  }

  /** Adds the downloads counted since the last flush to the table. */
  flushDownloads(): void {
    if (this.pendingDownloads.size === 0) return;
    const pending = this.pendingDownloads;
    this.pendingDownloads = new Map();
    try {
      this.flushInTransaction(pending);
    } catch (err) {
      // Kept for the next attempt rather than lost.
      for (const [repo, n] of pending) this.pendingDownloads.set(repo, (this.pendingDownloads.get(repo) ?? 0) + n);
      throw err;
    }
  }

  /** Starts the periodic download flush; `onError` hears about a failed one. */
  startFlushing(onError: (err: unknown) => void, intervalMs = DOWNLOAD_FLUSH_MS): void {
    this.timer = setInterval(() => {
      try {
        this.flushDownloads();
      } catch (err) {
        onError(err);
      }
    }, intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and writes what is pending; call before the database closes. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.flushDownloads();
  }
}
