// The event store: an append-only SQLite table with a global sequence, the inline projections
// updated in the same transaction as each append (the commit point of every write), and the
// RxJS stream on which committed events are published to the actors.
//
// Group commit. Appends that arrive within one turn of the event loop share one SQLite
// transaction: each append is queued, and the queue is committed in a setImmediate callback,
// after the I/O callbacks of that turn have queued theirs. Inside the group each append runs in
// its own savepoint, in arrival order: its precondition, its events and their inline projections,
// then `alsoInTransaction`. An append that throws is rolled back to its savepoint and fails alone
// (its sequence numbers are not used, the log keeps no gap); the others commit.
//
// Durability. On a file in WAL mode the store makes its commits durable itself: the connection
// commits with synchronous=NORMAL (the WAL frames are written, not synced), then one fsync of
// the WAL file, on the libuv pool, covers every group committed before it started; the groups
// committed while it runs wait for the next one. So a burst of appends costs one fsync, and the
// event loop never waits for the disk. A group's events are published on events$, and its
// appends' promises settle, only once that fsync has returned: nothing is acknowledged, and no
// actor acts on an event, before it is on disk. Reads of the inline projections see a commit at
// once (a power loss before its fsync can take it back, with every later commit: WAL frames
// survive as a prefix). A connection not in WAL mode (in memory) commits with its own setting.
//
// Set-up. The schema (a new log's tables, an older log's upgrade) commits without an fsync: the
// store's first sync of the WAL also syncs the database file and the directory that holds both,
// which is where SQLite's own syncs would have made the new files durable, and no append is
// acknowledged before it. A crash before it leaves the schema in the page cache (kill -9) or, on
// a power loss, takes back the schema commit whole, which the next start makes again.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RegistryError } from '../oci/errors.js';
import { Observable, Subject } from './rx.js';
import type { Db } from './database.js';
import { upcast, type EventRow } from './upcast.js';
import { EVENT_SCHEMA_VERSION, type EventBody, type EventContext, type StoredEvent } from './types.js';

/** A read model kept in the append transaction, so a client always reads its own write. */
export interface InlineProjection {
  readonly name: string;
  /** Creates its tables; called once per open, must be idempotent. */
  migrate(db: Db): void;
  apply(event: StoredEvent): void;
}

export interface AppendOptions {
  /**
   * Runs inside the append's savepoint, before its events: re-checks what the caller checked
   * before its awaits (a referenced blob still there, say). Throwing fails this append alone.
   */
  precondition?: () => void;
  /** Runs inside the same transaction after the events (a marker such as "import done"). */
  alsoInTransaction?: () => void;
}

export interface EventStoreOptions {
  /**
   * The log of a read-only registry (http.ReadOnly), opened on a read-only connection while
   * another process may append to it: no tables are created, append() and setMeta() throw, the
   * checkpoints of this process's actors are kept in memory (the checkpoints table is the
   * writer's), and publishAppended() publishes what the writer appended.
   */
  readOnly?: boolean;
  /** Told once when an fsync of the log fails: from then on every append is refused. */
  onSyncFailure?: (err: unknown) => void;
}

/**
 * A check run inside every append transaction before its events are written, on every path that
 * appends one request's events (a quota); throwing fails that append.
 */
export type AppendGuard = (bodies: readonly EventBody[], context: EventContext) => void;

/** An event body with the context of its own request (refusals counted over many requests). */
export interface ContextualEvent {
  body: EventBody;
  context: EventContext;
}

export interface EventFilter {
  repo?: string;
  type?: string;
  /**
   * Only events of these types (an actor's catch-up reads what it acts on). Scanned along the
   * sequence, not through an index: bound the span with afterSeq and throughSeq.
   */
  types?: readonly string[];
  afterSeq?: number;
  /** The last sequence number to read (an actor reads only what the store has published). */
  throughSeq?: number;
  sinceTime?: string;
  limit?: number;
}

const COLUMNS = new Set(['type', 'repo', 'digest', 'mediaType', 'size', 'tag']);

export function migrateEventTables(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS events (
      seq        INTEGER PRIMARY KEY AUTOINCREMENT,
      type       TEXT    NOT NULL,
      version    INTEGER NOT NULL,
      time       TEXT    NOT NULL,
      repo       TEXT    NOT NULL,
      digest     TEXT,
      media_type TEXT,
      size       INTEGER,
      tag        TEXT,
      client     TEXT,
      request_id TEXT,
      identity   TEXT    NOT NULL,
      data       TEXT    NOT NULL
    );
    CREATE INDEX IF NOT EXISTS events_by_repo ON events (repo, seq);
    -- Each actor's checkpoint, written only by the actor runner (src/actors/checkpoints.ts).
    CREATE TABLE IF NOT EXISTS checkpoints (
      name TEXT PRIMARY KEY,
      seq  INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS meta (
      key   TEXT PRIMARY KEY,
      value TEXT NOT NULL
    );
  `);
  // How each event's identity authenticated; logs from before it have NULL (read as anonymous).
  const columns = db.prepare('SELECT name FROM pragma_table_info(?)').pluck().all('events') as string[];
  if (!columns.includes('auth_method')) db.exec('ALTER TABLE events ADD COLUMN auth_method TEXT');
}

/** What an append records: its events, or a function that computes them inside its savepoint. */
type Entries = readonly ContextualEvent[] | (() => readonly ContextualEvent[]);

/**
 * The events of an append, or a function computing them inside the transaction from the state
 * the append sees there (a tag's previous digest, say, which another append of the group may
 * have just moved).
 */
export type AppendedEvents = readonly EventBody[] | (() => readonly EventBody[]);

/** An append waiting for its group's transaction. */
interface QueuedAppend {
  entries: Entries;
  options: AppendOptions;
  /** The one context of an append() (its guards run), none for appendEach. */
  context?: EventContext;
  resolve(events: StoredEvent[]): void;
  reject(err: unknown): void;
}

/** A group committed to SQLite, waiting for the fsync that makes it durable. */
interface CommittedGroup {
  appends: readonly QueuedAppend[];
  outcomes: readonly AppendOutcome[];
}

/** What one append of a group came to inside the transaction. */
type AppendOutcome = { ok: true; events: StoredEvent[] } | { ok: false; error: unknown };

export class EventStore {
  private readonly published = new Subject<StoredEvent>();
  /** Committed events, in sequence order, published after their transaction commits. */
  readonly events$: Observable<StoredEvent> = this.published.asObservable();

  private readonly insert;
  /** One append in its savepoint (a transaction nested in the group's). */
  private readonly appendOne;
  /** A group of appends in one transaction; never throws for one append's failure. */
  private readonly commitGroup;
  private queue: QueuedAppend[] = [];
  private flushScheduled = false;
  /** The WAL file's descriptor, when the store syncs its commits itself (see the top). */
  private readonly walFd: number | undefined;
  /** The database file and its directory: synced once, with the first sync of the WAL (see the top). */
  private syncedOnce: number[] = [];
  /** Committed groups whose fsync has not started; they settle after the next one. */
  private unsynced: CommittedGroup[] = [];
  private syncing = false;
  private syncsDone = 0;
  /** A failed fsync of the WAL: what was committed is not known to be durable; no append follows. */
  private syncFailure: RegistryError | undefined;
  private readonly onSyncFailure: ((err: unknown) => void) | undefined;
  readonly readOnly: boolean;
  /** The last seq published on events$ (or found in the log when the store was opened). */
  private lastPublished = 0;
  private readonly guards: AppendGuard[] = [];
  private mediaTypeQuery?: import('better-sqlite3').Statement<[string, string, number]>;

  constructor(
    readonly db: Db,
    private readonly projections: readonly InlineProjection[],
    options: EventStoreOptions = {},
  ) {
    this.readOnly = options.readOnly ?? false;
    this.onSyncFailure = options.onSyncFailure;
    if (!this.readOnly) {
      // One transaction: a schema upgrade interrupted half-way is rolled back whole. Not synced
      // here on a file in WAL mode: the first sync covers it (see the top).
      const walMode = !db.memory && String(db.pragma('journal_mode', { simple: true })).toLowerCase() === 'wal';
      if (walMode) db.pragma('synchronous = OFF');
      db.transaction(() => {
        migrateEventTables(db);
        for (const projection of projections) projection.migrate(db);
      })();
    }
    this.lastPublished = this.head();
    this.walFd = this.readOnly ? undefined : openWalForSync(db);
    if (this.walFd !== undefined) this.syncedOnce = [fs.openSync(db.name, 'r'), fs.openSync(path.dirname(db.name), 'r')];
    this.insert = db.prepare(`
      INSERT INTO events (type, version, time, repo, digest, media_type, size, tag, client, request_id, identity, auth_method, data)
      VALUES (@type, @version, @time, @repo, @digest, @media_type, @size, @tag, @client, @request_id, @identity, @auth_method, @data)
    `);
    this.appendOne = db.transaction((append: QueuedAppend, time: string): StoredEvent[] => {
      const { entries, options, context } = append;
      options.precondition?.();
      const list = typeof entries === 'function' ? entries() : entries;
      if (context) for (const guard of this.guards) guard(list.map((entry) => entry.body), context);
      const stored = list.map(({ body, context }) => {
        const event = this.toStored(body, context, time);
        for (const projection of this.projections) projection.apply(event);
        return event;
      });
      options.alsoInTransaction?.();
      return stored;
    });
    this.commitGroup = db.transaction((group: readonly QueuedAppend[]): AppendOutcome[] => {
      const time = new Date().toISOString();
      return group.map((append) => {
        try {
          return { ok: true, events: this.appendOne(append, time) };
        } catch (error) {
          return { ok: false, error };
        }
      });
    });
  }

  /**
   * Appends events atomically with their inline projections; resolves with them and their
   * sequence numbers once they are committed (with the other appends of this turn: see the top of
   * this file). A throwing `precondition` fails this append alone.
   */
  append(events: AppendedEvents, context: EventContext, options: AppendOptions = {}): Promise<StoredEvent[]> {
    const withContext = (bodies: readonly EventBody[]): ContextualEvent[] => bodies.map((body) => ({ body, context }));
    return this.enqueue(typeof events === 'function' ? () => withContext(events()) : withContext(events), options, context);
  }

  /** Appends events that each carry their own context, atomically, as one append. */
  appendEach(entries: readonly ContextualEvent[]): Promise<StoredEvent[]> {
    return this.enqueue(entries, {});
  }

  addGuard(guard: AppendGuard): void {
    this.guards.push(guard);
  }

  private enqueue(entries: Entries, options: AppendOptions, context?: EventContext): Promise<StoredEvent[]> {
    if (this.readOnly) return Promise.reject(new Error('the event log is open read-only (http.ReadOnly): nothing is appended'));
    if (this.syncFailure !== undefined) return Promise.reject(this.syncFailure);
    return new Promise((resolve, reject) => {
      this.queue.push({ entries, options, ...(context ? { context } : {}), resolve, reject });
      if (this.flushScheduled) return;
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    });
  }

  /** Commits the queued appends as one group; they settle once an fsync covers the group. */
  private flush(): void {
    this.flushScheduled = false;
    const group = this.queue;
    this.queue = [];
    if (group.length === 0) return;
    let outcomes: AppendOutcome[];
    try {
      // IMMEDIATE: the write lock first, so another process's writer makes it wait (busy_timeout).
      outcomes = this.commitGroup.immediate(group);
    } catch (error) {
      // The commit itself failed: nothing of the group is in the log.
      for (const append of group) append.reject(error);
      return;
    }
    this.unsynced.push({ appends: group, outcomes });
    if (this.walFd === undefined) this.settle(this.takeUnsynced());
    else if (!this.syncing) this.syncWal(this.walFd);
  }

  /** One fsync of the WAL for every group committed so far; then the next, if more came meanwhile. */
  private syncWal(fd: number): void {
    const groups = this.takeUnsynced();
    this.syncing = true;
    const once = this.syncedOnce;
    this.syncedOnce = [];
    fsyncAll([fd, ...once], (err) => {
      for (const onceFd of once) fs.closeSync(onceFd);
      this.syncing = false;
      this.syncsDone++;
      if (err || this.syncFailure !== undefined) {
        // Committed, but not known to be durable (a retried fsync can succeed on lost pages): no
        // caller hears success, no actor sees the events, and the store takes no more appends. A
        // restart reopens the log, and what it then holds is what the actors catch up with.
        if (this.syncFailure === undefined) {
          this.syncFailure = new RegistryError('LOG_UNWRITABLE', undefined, undefined, { cause: err });
          this.onSyncFailure?.(err);
        }
        for (const { appends } of groups) for (const append of appends) append.reject(this.syncFailure);
      } else {
        this.settle(groups);
      }
      if (this.unsynced.length > 0) this.syncWal(fd);
    });
  }

  private takeUnsynced(): CommittedGroup[] {
    const groups = this.unsynced;
    this.unsynced = [];
    return groups;
  }

  /** Publishes the durable groups' events in sequence order, then settles each append. */
  private settle(groups: readonly CommittedGroup[]): void {
    for (const { outcomes } of groups) {
      for (const outcome of outcomes) {
        if (!outcome.ok) continue;
        for (const event of outcome.events) {
          this.lastPublished = event.seq;
          this.published.next(event);
        }
      }
    }
    for (const { appends, outcomes } of groups) {
      appends.forEach((append, i) => {
        const outcome = outcomes[i] as AppendOutcome;
        if (outcome.ok) append.resolve(outcome.events);
        else append.reject(outcome.error);
      });
    }
  }

  /** False once an fsync of the log failed: the store then refuses every append until a restart. */
  get writable(): boolean {
    return this.syncFailure === undefined;
  }

  /** How many fsyncs of the WAL the store has made (each covers one or more groups). */
  get syncs(): number {
    return this.syncsDone;
  }

  /** The last sequence number published on events$: every event up to it is committed. */
  get publishedSeq(): number {
    return this.lastPublished;
  }

  /**
   * Read-only: publishes on events$ the events another process appended since the last call (or
   * since the store was opened); returns how many.
   */
  publishAppended(): number {
    // Read whole before publishing: a subscriber may query this connection.
    const appended = Array.from(this.read({ afterSeq: this.lastPublished }));
    for (const event of appended) {
      this.lastPublished = event.seq;
      this.published.next(event);
    }
    return appended.length;
  }

  private assertWritable(): void {
    if (this.readOnly) throw new Error('the event log is open read-only (http.ReadOnly): nothing is appended');
  }

  private toStored(body: EventBody, context: EventContext, time: string): StoredEvent {
    const record = body as Record<string, unknown>;
    const authMethod = context.authMethod ?? 'anonymous';
    const data: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(record)) {
      if (!COLUMNS.has(key) && value !== undefined) data[key] = value;
    }
    if (context.source !== undefined) data.source = context.source;
    const result = this.insert.run({
      type: body.type,
      version: EVENT_SCHEMA_VERSION,
      time,
      repo: body.repo,
      digest: typeof record.digest === 'string' ? record.digest : null,
      media_type: typeof record.mediaType === 'string' ? record.mediaType : null,
      size: typeof record.size === 'number' ? record.size : null,
      tag: typeof record.tag === 'string' ? record.tag : null,
      client: context.client ?? null,
      request_id: context.requestId ?? null,
      identity: context.identity,
      auth_method: authMethod,
      data: JSON.stringify(data),
    });
    const event = { ...body, ...context, authMethod, seq: Number(result.lastInsertRowid), version: EVENT_SCHEMA_VERSION, time };
    return event as StoredEvent;
  }

  /** Sequence number of the last event, 0 for an empty log. */
  head(): number {
    const row = this.db.prepare('SELECT MAX(seq) AS seq FROM events').get() as { seq: number | null };
    return row.seq ?? 0;
  }

  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n;
  }

  /** Events in sequence order, read lazily. */
  *read(filter: EventFilter = {}): Generator<StoredEvent> {
    yield* readEvents(this.db, filter);
  }

  /**
   * The repositories that events of `types` after `afterSeq` through `throughSeq` name, each once,
   * read without parsing an event (an actor whose work is per repository: the index.json writer).
   */
  repositoriesTouched(afterSeq: number, throughSeq: number, types: readonly string[]): string[] {
    if (types.length === 0) return [];
    const params: Record<string, unknown> = { afterSeq, throughSeq };
    const names = types.map((type, i) => {
      params[`type${i}`] = type;
      return `@type${i}`;
    });
    const sql = `SELECT DISTINCT repo FROM events WHERE seq > @afterSeq AND seq <= @throughSeq AND type IN (${names.join(', ')})`;
    return prepared(this.db, sql).pluck().all(params) as string[];
  }

  /** The media type the latest ManifestPushed of the digest before `beforeSeq` recorded. */
  manifestMediaType(repo: string, digest: string, beforeSeq: number): string | undefined {
    this.mediaTypeQuery ??= this.db.prepare(
      "SELECT media_type FROM events WHERE repo = ? AND digest = ? AND type = 'ManifestPushed' AND seq < ? ORDER BY seq DESC LIMIT 1",
    );
    const row = this.mediaTypeQuery.get(repo, digest, beforeSeq) as { media_type: string | null } | undefined;
    return row?.media_type ?? undefined;
  }

  getMeta(key: string): string | undefined {
    const row = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value;
  }

  setMeta(key: string, value: string): void {
    this.assertWritable();
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  /**
   * Commits what is still queued and syncs it (at shutdown, before the database closes), then
   * ends events$.
   */
  complete(): void {
    this.flush();
    if (this.walFd !== undefined) {
      const groups = this.takeUnsynced();
      fs.fsyncSync(this.walFd);
      for (const fd of this.syncedOnce) {
        fs.fsyncSync(fd);
        fs.closeSync(fd);
      }
      this.syncedOnce = [];
      this.settle(groups);
      fs.closeSync(this.walFd);
    }
    this.published.complete();
  }
}

/** fsyncs the descriptors side by side; calls back once all are done, with the first error. */
function fsyncAll(fds: readonly number[], callback: (err: NodeJS.ErrnoException | null) => void): void {
  let pending = fds.length;
  let failure: NodeJS.ErrnoException | null = null;
  for (const fd of fds) {
    fs.fsync(fd, (err) => {
      failure ??= err;
      if (--pending === 0) callback(failure);
    });
  }
}

/**
 * For a log file in WAL mode: commits stop waiting for the disk (synchronous=NORMAL) and the
 * store syncs the WAL file itself, once per burst (see the top of this file). Returns its
 * descriptor; undefined for a connection not in WAL mode, which keeps its own setting.
 */
function openWalForSync(db: Db): number | undefined {
  if (db.memory || String(db.pragma('journal_mode', { simple: true })).toLowerCase() !== 'wal') return undefined;
  db.pragma('synchronous = NORMAL');
  // SQLite keeps the WAL file (same inode) while a connection is open; make sure it exists.
  db.prepare('SELECT COUNT(*) FROM meta').get();
  return fs.openSync(`${db.name}-wal`, 'r');
}

/** Reads events from any database holding the events table (the live one, or a read-only copy). */
export function* readEvents(db: Db, filter: EventFilter = {}): Generator<StoredEvent> {
  const where: string[] = ['seq > @afterSeq'];
  const params: Record<string, unknown> = { afterSeq: filter.afterSeq ?? 0 };
  if (filter.throughSeq !== undefined) {
    where.push('seq <= @throughSeq');
    params.throughSeq = filter.throughSeq;
  }
  if (filter.repo !== undefined) {
    where.push('repo = @repo');
    params.repo = filter.repo;
  }
  if (filter.type !== undefined) {
    where.push('type = @type');
    params.type = filter.type;
  }
  if (filter.types !== undefined) {
    const names = filter.types.map((type, i) => {
      params[`type${i}`] = type;
      return `@type${i}`;
    });
    where.push(names.length > 0 ? `type IN (${names.join(', ')})` : '0');
  }
  if (filter.sinceTime !== undefined) {
    where.push('time >= @sinceTime');
    params.sinceTime = filter.sinceTime;
  }
  const limit = filter.limit !== undefined ? ` LIMIT ${Math.max(0, Math.floor(filter.limit))}` : '';
  const statement = prepared(db, `SELECT * FROM events WHERE ${where.join(' AND ')} ORDER BY seq${limit}`);
  for (const row of statement.iterate(params) as IterableIterator<EventRow>) yield upcast(row);
}

// Readers such as the events sinks read a few events at a time, often: each query text is
// prepared once per connection. The texts are few (one per combination of filters and limit).
const statements = new WeakMap<Db, Map<string, ReturnType<Db['prepare']>>>();

function prepared(db: Db, sql: string): ReturnType<Db['prepare']> {
  let byText = statements.get(db);
  if (!byText) statements.set(db, (byText = new Map()));
  const cached = byText.get(sql);
  // One still iterating (a reader of the same text, not finished) cannot run again: a new one can.
  if (cached && !cached.busy) return cached;
  const statement = db.prepare(sql);
  if (!cached) byText.set(sql, statement);
  return statement;
}
