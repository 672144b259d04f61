// The read model every GET is answered from: repositories, the blobs each holds, manifests with
// what they reference, tags, referrers (manifests by subject), and when each manifest was last
// pulled (for retention). A pure function of the event log, applied inline in the append transaction.
import type { Db } from '../events/database.js';
import type { InlineProjection } from '../events/store.js';
import type { StoredEvent } from '../events/types.js';

export const REGISTRY_STATE_TABLES = ['repositories', 'repo_blobs', 'manifests', 'manifest_refs', 'tags', 'manifest_pulls'] as const;

export interface ManifestRow {
  repo: string;
  digest: string;
  media_type: string;
  size: number;
  artifact_type: string | null;
  subject: string | null;
  annotations: string | null;
  /** When the manifest was pushed (ms since the epoch), for GC's delay. */
  added_at: number;
}

export class RegistryStateProjection implements InlineProjection {
  readonly name = 'registry-state';
  private statements?: ReturnType<typeof prepareStatements>;

  migrate(db: Db): void {
    db.exec(`
      CREATE TABLE IF NOT EXISTS repositories (
        name        TEXT PRIMARY KEY,
        created_seq INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS repo_blobs (
        repo   TEXT    NOT NULL,
        digest TEXT    NOT NULL,
        size   INTEGER NOT NULL,
        PRIMARY KEY (repo, digest)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS manifests (
        repo          TEXT    NOT NULL,
        digest        TEXT    NOT NULL,
        media_type    TEXT    NOT NULL,
        size          INTEGER NOT NULL,
        artifact_type TEXT,
        subject       TEXT,
        annotations   TEXT,
        PRIMARY KEY (repo, digest)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS manifests_by_subject ON manifests (repo, subject);
      CREATE TABLE IF NOT EXISTS manifest_refs (
        repo     TEXT NOT NULL,
        manifest TEXT NOT NULL,
        ref      TEXT NOT NULL,
        kind     TEXT NOT NULL,
        PRIMARY KEY (repo, manifest, ref)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS manifest_refs_by_ref ON manifest_refs (repo, ref);
      CREATE TABLE IF NOT EXISTS tags (
        repo   TEXT NOT NULL,
        tag    TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (repo, tag)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS tags_by_digest ON tags (repo, digest);
      CREATE TABLE IF NOT EXISTS manifest_pulls (
        repo      TEXT    NOT NULL,
        digest    TEXT    NOT NULL,
        pulled_at INTEGER NOT NULL,
        PRIMARY KEY (repo, digest)
      ) WITHOUT ROWID;
    `);
    // Columns added after the first release; a log written before them is upgraded in place and
    // `zot replay` (or a rebuild) fills them from the events.
    addColumn(db, 'repo_blobs', 'stored_in', 'TEXT');
    addColumn(db, 'repo_blobs', 'added_at', 'INTEGER NOT NULL DEFAULT 0');
    addColumn(db, 'manifests', 'added_at', 'INTEGER NOT NULL DEFAULT 0');
    if (addColumn(db, 'tags', 'set_at', 'INTEGER NOT NULL DEFAULT 0')) backfillTagTimes(db);
    // Blobs by digest (dedupe, mounts, holders): this index serves them all, its first column
    // alone included. A log from before it also had one on (digest) only: a second index to
    // update at a random leaf for every blob pushed, which no query needed; dropped on open.
    db.exec('CREATE INDEX IF NOT EXISTS repo_blobs_by_store ON repo_blobs (digest, stored_in)');
    db.exec('DROP INDEX IF EXISTS repo_blobs_by_digest');
    this.statements = prepareStatements(db);
  }

  apply(event: StoredEvent): void {
    const s = this.statements;
    if (!s) throw new Error('registry-state projection used before migrate');
    switch (event.type) {
      case 'BlobPushed':
      case 'BlobMounted':
        s.addRepository.run(event.repo, event.seq);
        s.addBlob.run(event.repo, event.digest, event.size, event.storedIn ?? null, Date.parse(event.time));
        return;
      case 'BlobDeleted':
        s.deleteBlob.run(event.repo, event.digest);
        return;
      case 'BlobRelocated':
        s.relocateBlob.run(event.storedIn ?? null, event.repo, event.digest);
        return;
      case 'RepositoryRemoved':
        s.deleteRepository.run(event.repo);
        return;
      case 'UploadExpired':
      case 'OrphanRemoved':
        // Neither was ever in the read model: sessions and orphans are storage, not state.
        return;
      case 'ManifestPushed':
        s.addRepository.run(event.repo, event.seq);
        s.upsertManifest.run({
          repo: event.repo,
          digest: event.digest,
          media_type: event.mediaType,
          size: event.size,
          artifact_type: event.artifactType ?? null,
          subject: event.subject ?? null,
          annotations: event.annotations ? JSON.stringify(event.annotations) : null,
          added_at: Date.parse(event.time),
        });
        s.deleteRefs.run(event.repo, event.digest);
        for (const blob of new Set(event.blobs)) s.addRef.run(event.repo, event.digest, blob, 'blob');
        for (const child of new Set(event.manifests)) s.addRef.run(event.repo, event.digest, child, 'manifest');
        return;
      case 'ManifestDeleted':
        s.deleteManifest.run(event.repo, event.digest);
        s.deleteRefs.run(event.repo, event.digest);
        s.deleteTagsOf.run(event.repo, event.digest);
        s.deletePulls.run(event.repo, event.digest);
        return;
      case 'ManifestsPulled':
        // Only pulls of the copy held count: a batch may name a manifest deleted since it was
        // served, or served before the copy now held was pushed.
        for (const pull of event.pulls) s.notePull.run({ repo: event.repo, digest: pull.digest, at: Date.parse(pull.time) });
        return;
      case 'TagSet':
        s.setTag.run(event.repo, event.tag, event.digest, Date.parse(event.time));
        return;
      case 'TagRemoved':
        s.deleteTag.run(event.repo, event.tag);
        return;
      case 'WriteRefused':
        // A refused write changed nothing; it is kept for the audit log.
        return;
    }
  }
}

/** Adds the column unless the table has it; true when it was added. */
function addColumn(db: Db, table: string, column: string, definition: string): boolean {
  const columns = db.prepare(`SELECT name FROM pragma_table_info(?)`).pluck().all(table) as string[];
  if (columns.includes(column)) return false;
  db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`);
  return true;
}

/**
 * A log written before tags had a time: each tag gets the time of the TagSet that set it, as a
 * rebuild from the log gives it, so retention reads push times and replay finds no drift.
 */
function backfillTagTimes(db: Db): void {
  const hasEvents = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'").get() !== undefined;
  if (!hasEvents) return;
  const tags = db.prepare('SELECT repo, tag FROM tags').all() as { repo: string; tag: string }[];
  const lastSet = db.prepare("SELECT time FROM events WHERE repo = ? AND type = 'TagSet' AND tag = ? ORDER BY seq DESC LIMIT 1").pluck();
  const update = db.prepare('UPDATE tags SET set_at = ? WHERE repo = ? AND tag = ?');
  for (const { repo, tag } of tags) {
    const time = lastSet.get(repo, tag) as string | undefined;
    if (time !== undefined) update.run(Date.parse(time), repo, tag);
  }
}

function prepareStatements(db: Db) {
  return {
    addRepository: db.prepare('INSERT OR IGNORE INTO repositories (name, created_seq) VALUES (?, ?)'),
    addBlob: db.prepare(`
      INSERT INTO repo_blobs (repo, digest, size, stored_in, added_at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT DO UPDATE SET size = excluded.size, stored_in = excluded.stored_in, added_at = excluded.added_at
    `),
    deleteBlob: db.prepare('DELETE FROM repo_blobs WHERE repo = ? AND digest = ?'),
    relocateBlob: db.prepare('UPDATE repo_blobs SET stored_in = ? WHERE repo = ? AND digest = ?'),
    deleteRepository: db.prepare('DELETE FROM repositories WHERE name = ?'),
    upsertManifest: db.prepare(`
      INSERT INTO manifests (repo, digest, media_type, size, artifact_type, subject, annotations, added_at)
      VALUES (@repo, @digest, @media_type, @size, @artifact_type, @subject, @annotations, @added_at)
      ON CONFLICT DO UPDATE SET media_type = excluded.media_type, size = excluded.size,
        artifact_type = excluded.artifact_type, subject = excluded.subject, annotations = excluded.annotations,
        added_at = excluded.added_at
    `),
    deleteManifest: db.prepare('DELETE FROM manifests WHERE repo = ? AND digest = ?'),
    deleteRefs: db.prepare('DELETE FROM manifest_refs WHERE repo = ? AND manifest = ?'),
    addRef: db.prepare('INSERT OR IGNORE INTO manifest_refs (repo, manifest, ref, kind) VALUES (?, ?, ?, ?)'),
    setTag: db.prepare(
      'INSERT INTO tags (repo, tag, digest, set_at) VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET digest = excluded.digest, set_at = excluded.set_at',
    ),
    deleteTag: db.prepare('DELETE FROM tags WHERE repo = ? AND tag = ?'),
    deleteTagsOf: db.prepare('DELETE FROM tags WHERE repo = ? AND digest = ?'),
    notePull: db.prepare(`
      INSERT INTO manifest_pulls (repo, digest, pulled_at)
      SELECT @repo, @digest, @at WHERE EXISTS (SELECT 1 FROM manifests WHERE repo = @repo AND digest = @digest AND added_at <= @at)
      ON CONFLICT DO UPDATE SET pulled_at = MAX(pulled_at, excluded.pulled_at)
    `),
    deletePulls: db.prepare('DELETE FROM manifest_pulls WHERE repo = ? AND digest = ?'),
  };
}

/**
 * A manifest `m` that nothing keeps: no tag, no manifest of the repository referencing it (an
 * index), and no subject still present (a referrer lives as long as its subject).
 */
const UNREACHABLE_MANIFEST = `
  NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo = m.repo AND t.digest = m.digest)
  AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.repo = m.repo AND r.ref = m.digest)
  AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repo = m.repo AND s.digest = m.subject))`;

export interface UnreachableManifest {
  digest: string;
  addedAt: number;
  subject: string | null;
}

/** The queries the registry answers from; read-only over the projection's tables. */
export class RegistryStateQueries {
  private readonly s;
  private readonly readTransaction: (read: () => unknown) => unknown;

  constructor(private readonly db: Db) {
    this.readTransaction = db.transaction((read: () => unknown) => read());
    this.s = {
      repoExists: db.prepare('SELECT 1 FROM repositories WHERE name = ?').pluck(),
      repositoryCount: db.prepare('SELECT COUNT(*) FROM repositories').pluck(),
      blob: db.prepare('SELECT size FROM repo_blobs WHERE repo = ? AND digest = ?').pluck(),
      blobAnywhere: db.prepare('SELECT repo FROM repo_blobs WHERE digest = ? LIMIT 1').pluck(),
      sharedDigests: db.prepare('SELECT digest FROM repo_blobs GROUP BY digest HAVING COUNT(*) > 1 ORDER BY digest').pluck(),
      blobAddedAt: db.prepare('SELECT added_at FROM repo_blobs WHERE repo = ? AND digest = ?').pluck(),
      storedIn: db.prepare('SELECT stored_in FROM repo_blobs WHERE repo = ? AND digest = ?').pluck(),
      holders: db.prepare('SELECT repo, stored_in AS storedIn FROM repo_blobs WHERE digest = ? ORDER BY repo'),
      dependents: db.prepare('SELECT repo FROM repo_blobs WHERE digest = ? AND stored_in = ? ORDER BY repo').pluck(),
      manifest: db.prepare('SELECT * FROM manifests WHERE repo = ? AND digest = ?'),
      tag: db.prepare('SELECT digest FROM tags WHERE repo = ? AND tag = ?').pluck(),
      tagsOf: db.prepare('SELECT tag FROM tags WHERE repo = ? AND digest = ? ORDER BY tag').pluck(),
      tags: db.prepare('SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?').pluck(),
      repositories: db.prepare('SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?').pluck(),
      referrers: db.prepare('SELECT * FROM manifests WHERE repo = ? AND subject = ? ORDER BY digest'),
      allRepositories: db.prepare('SELECT name FROM repositories ORDER BY name').pluck(),
      allBlobs: db.prepare('SELECT repo, digest, size FROM repo_blobs ORDER BY repo, digest'),
      allManifests: db.prepare('SELECT repo, digest, size FROM manifests ORDER BY repo, digest'),
      blobReferenced: db.prepare('SELECT 1 FROM manifest_refs WHERE repo = ? AND ref = ? LIMIT 1').pluck(),
      indexesReferencing: db
        .prepare("SELECT manifest FROM manifest_refs WHERE repo = ? AND ref = ? AND kind = 'manifest' ORDER BY manifest LIMIT ?")
        .pluck(),
      // Garbage collection's candidates in one repository, each with its age (indexed anti-joins).
      unreferencedBlobs: db.prepare(`
        SELECT b.digest, b.added_at AS addedAt FROM repo_blobs b
        WHERE b.repo = ? AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.repo = b.repo AND r.ref = b.digest)
      `),
      unreachableManifests: db.prepare(
        `SELECT m.digest, m.added_at AS addedAt, m.subject FROM manifests m WHERE m.repo = ? AND ${UNREACHABLE_MANIFEST}`,
      ),
      // Retention's view of a repository: tags with when each was set, manifests, and which
      // manifests another manifest of the repository references.
      tagsWithTimes: db.prepare('SELECT tag, digest, set_at AS setAt FROM tags WHERE repo = ? ORDER BY tag'),
      manifestsOf: db.prepare('SELECT digest, subject, added_at AS addedAt FROM manifests WHERE repo = ? ORDER BY digest'),
      lastPulls: db.prepare('SELECT digest, pulled_at AS pulledAt FROM manifest_pulls WHERE repo = ?'),
      manifestLinks: db.prepare(`
        SELECT r.manifest AS parent, r.ref AS child FROM manifest_refs r
        JOIN manifests m ON m.repo = r.repo AND m.digest = r.ref WHERE r.repo = ?
      `),
      manifestUnreachable: db.prepare(`SELECT 1 FROM manifests m WHERE m.repo = ? AND m.digest = ? AND ${UNREACHABLE_MANIFEST}`).pluck(),
      repoIsEmpty: db.prepare(`
        SELECT NOT EXISTS (SELECT 1 FROM repo_blobs WHERE repo = @repo) AND NOT EXISTS (SELECT 1 FROM manifests WHERE repo = @repo)
      `).pluck(),
      manifestsWithTags: db.prepare(`
        SELECT m.digest, m.media_type, m.size, t.tag, m.annotations
        FROM manifests m LEFT JOIN tags t ON t.repo = m.repo AND t.digest = m.digest
        WHERE m.repo = ? ORDER BY m.digest, t.tag
      `),
    };
  }

  /**
   * Runs several reads in one read transaction. In WAL mode a statement outside a transaction
   * takes and drops a read lock on the log's shared memory, two fcntl(2) calls (4 us a query
   * unloaded on a small VM, 7-17 under load against 0.3 inside one): a manifest GET's three
   * reads took a fifth of its CPU so. In a transaction already (an append's), it just reads.
   */
  together<T>(read: () => T): T {
    return this.db.inTransaction ? read() : (this.readTransaction(read) as T);
  }

  repositoryExists(repo: string): boolean {
    return this.s.repoExists.get(repo) !== undefined;
  }

  /** Repositories in every root. */
  repositoryCount(): number {
    return this.s.repositoryCount.get() as number;
  }

  blobSize(repo: string, digest: string): number | undefined {
    return this.s.blob.get(repo, digest) as number | undefined;
  }

  /** A repository that holds the blob, for linking its bytes (dedupe within one root). */
  repositoryHoldingBlob(digest: string): string | undefined {
    return this.s.blobAnywhere.get(digest) as string | undefined;
  }

  /** Digests that more than one repository holds: what dedupe's background pass looks at. */
  sharedDigests(): string[] {
    return this.s.sharedDigests.all() as string[];
  }

  /** When the repository got the blob (ms since the epoch), for GC's delay. */
  blobAddedAt(repo: string, digest: string): number | undefined {
    return this.s.blobAddedAt.get(repo, digest) as number | undefined;
  }

  /** The repository whose path holds the bytes of this repository's blob; its own when undefined. */
  blobStoredIn(repo: string, digest: string): string | undefined {
    return (this.s.storedIn.get(repo, digest) as string | null | undefined) ?? undefined;
  }

  /** Every repository holding the blob, with where each one's bytes are. */
  blobHolders(digest: string): { repo: string; storedIn: string | null }[] {
    return this.s.holders.all(digest) as { repo: string; storedIn: string | null }[];
  }

  /** Repositories whose copy of the blob is the bytes at `holder`'s path. */
  blobDependents(digest: string, holder: string): string[] {
    return this.s.dependents.all(digest, holder) as string[];
  }

  manifest(repo: string, digest: string): ManifestRow | undefined {
    return this.s.manifest.get(repo, digest) as ManifestRow | undefined;
  }

  tagDigest(repo: string, tag: string): string | undefined {
    return this.s.tag.get(repo, tag) as string | undefined;
  }

  tagsOf(repo: string, digest: string): string[] {
    return this.s.tagsOf.all(repo, digest) as string[];
  }

  /** Tags in lexical order after `last`, at most `limit`. */
  tags(repo: string, last: string, limit: number): string[] {
    return this.s.tags.all(repo, last, limit) as string[];
  }

  repositories(last: string, limit: number): string[] {
    return this.s.repositories.all(last, limit) as string[];
  }

  referrers(repo: string, subject: string): ManifestRow[] {
    return this.s.referrers.all(repo, subject) as ManifestRow[];
  }

  allRepositories(): string[] {
    return this.s.allRepositories.all() as string[];
  }

  /** Every blob and manifest that storage must hold, with its size. */
  allStoredContent(): { repo: string; digest: string; size: number; kind: 'blob' | 'manifest' }[] {
    type Row = { repo: string; digest: string; size: number };
    return [
      ...(this.s.allBlobs.all() as Row[]).map((row) => ({ ...row, kind: 'blob' as const })),
      ...(this.s.allManifests.all() as Row[]).map((row) => ({ ...row, kind: 'manifest' as const })),
    ];
  }

  isBlobReferenced(repo: string, digest: string): boolean {
    return this.s.blobReferenced.get(repo, digest) !== undefined;
  }

  /** Indexes of the repository that list the manifest, at most `limit` of them. */
  indexesReferencing(repo: string, digest: string, limit: number): string[] {
    return this.s.indexesReferencing.all(repo, digest, limit) as string[];
  }

  /** Blobs of the repository that none of its manifests references, with when each arrived (ms). */
  unreferencedBlobs(repo: string): { digest: string; addedAt: number }[] {
    return this.s.unreferencedBlobs.all(repo) as { digest: string; addedAt: number }[];
  }

  /**
   * Manifests of the repository that nothing keeps: no tag, no index or manifest of the repository
   * referencing them, and no subject still present (a referrer lives as long as its subject).
   * `subject` is set for a referrer whose subject is gone.
   */
  unreachableManifests(repo: string): UnreachableManifest[] {
    return this.s.unreachableManifests.all(repo) as UnreachableManifest[];
  }

  /** Every tag of the repository with the digest it names and when it was set to it (ms). */
  tagsWithTimes(repo: string): { tag: string; digest: string; setAt: number }[] {
    return this.s.tagsWithTimes.all(repo) as { tag: string; digest: string; setAt: number }[];
  }

  /** When each manifest of the repository that was ever pulled was last pulled (ms). */
  lastPulls(repo: string): Map<string, number> {
    const rows = this.s.lastPulls.all(repo) as { digest: string; pulledAt: number }[];
    return new Map(rows.map((row) => [row.digest, row.pulledAt]));
  }

  /** Every manifest of the repository with its subject and push time (ms). */
  manifestsOf(repo: string): { digest: string; subject: string | null; addedAt: number }[] {
    return this.s.manifestsOf.all(repo) as { digest: string; subject: string | null; addedAt: number }[];
  }

  /** Pairs of manifests of the repository where `parent` references `child` (an index and its children). */
  manifestLinks(repo: string): { parent: string; child: string }[] {
    return this.s.manifestLinks.all(repo) as { parent: string; child: string }[];
  }

  isUnreachableManifest(repo: string, digest: string): boolean {
    return this.s.manifestUnreachable.get(repo, digest) !== undefined;
  }

  /** No blob and no manifest left (a repository never seen is empty too). */
  repositoryIsEmpty(repo: string): boolean {
    return this.s.repoIsEmpty.get({ repo }) === 1;
  }

  /** Every manifest of a repository with each of its tags (one row per tag; tag null if none). */
  manifestsWithTags(repo: string): { digest: string; media_type: string; size: number; tag: string | null; annotations: string | null }[] {
    return this.s.manifestsWithTags.all(repo) as {
      digest: string;
      media_type: string;
      size: number;
      tag: string | null;
      annotations: string | null;
    }[];
  }
}
