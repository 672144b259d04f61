// The event store: an append-only SQLite table with a global sequence, the inline projections
// updated in the same transaction as each append (the commit point of every write), and the
// RxJS stream on which committed events are published to the actors.
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
}

/**
 * A check run inside every append transaction before its events are written, on every path that
 * appends (a quota); throwing aborts the append.
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
  afterSeq?: number;
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

export class EventStore {
  private readonly published = new Subject<StoredEvent>();
  /** Committed events, in sequence order, published after their transaction commits. */
  readonly events$: Observable<StoredEvent> = this.published.asObservable();

  private readonly insert;
  private readonly appendAll;
  private readonly appendContextual;
  readonly readOnly: boolean;
  /** Read-only: the checkpoints of this process's actors. */
  /** Read-only: the last seq published on events$. */
  private lastPublished = 0;
  private readonly guards: AppendGuard[] = [];
  private mediaTypeQuery?: import('better-sqlite3').Statement<[string, string, number]>;

  constructor(
    readonly db: Db,
    private readonly projections: readonly InlineProjection[],
    options: EventStoreOptions = {},
  ) {
    this.readOnly = options.readOnly ?? false;
    if (this.readOnly) {
      this.lastPublished = this.head();
    } else {
      migrateEventTables(db);
      for (const projection of projections) projection.migrate(db);
    }
    this.insert = db.prepare(`
      INSERT INTO events (type, version, time, repo, digest, media_type, size, tag, client, request_id, identity, auth_method, data)
      VALUES (@type, @version, @time, @repo, @digest, @media_type, @size, @tag, @client, @request_id, @identity, @auth_method, @data)
    `);
    this.appendAll = db.transaction((bodies: readonly EventBody[], context: EventContext, options: AppendOptions) => {
      options.precondition?.();
      for (const guard of this.guards) guard(bodies, context);
      const time = new Date().toISOString();
      const stored: StoredEvent[] = [];
      for (const body of bodies) {
        const event = this.toStored(body, context, time);
        for (const projection of this.projections) projection.apply(event);
        stored.push(event);
      }
      options.alsoInTransaction?.();
      return stored;
    });
    this.appendContextual = db.transaction((entries: readonly ContextualEvent[]) => {
      const time = new Date().toISOString();
      return entries.map(({ body, context }) => {
        const event = this.toStored(body, context, time);
        for (const projection of this.projections) projection.apply(event);
        return event;
      });
    });
  }

  addGuard(guard: AppendGuard): void {
    this.guards.push(guard);
  }

  /**
   * Appends events atomically with their inline projections and returns them with their sequence
   * numbers. A throwing `precondition` aborts the append: it re-checks, inside the transaction,
   * what the caller checked before its awaits (a referenced blob still there, say).
   */
  append(bodies: readonly EventBody[], context: EventContext, options: AppendOptions = {}): StoredEvent[] {
    this.assertWritable();
    const stored = this.appendAll(bodies, context, options);
    for (const event of stored) this.published.next(event);
    return stored;
  }

  /** Appends events that each carry their own context, in one transaction. */
  appendEach(entries: readonly ContextualEvent[]): StoredEvent[] {
    this.assertWritable();
    const stored = this.appendContextual(entries);
    for (const event of stored) this.published.next(event);
    return stored;
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

  complete(): void {
    this.published.complete();
  }
}

/** Reads events from any database holding the events table (the live one, or a read-only copy). */
export function* readEvents(db: Db, filter: EventFilter = {}): Generator<StoredEvent> {
  const where: string[] = ['seq > @afterSeq'];
  const params: Record<string, unknown> = { afterSeq: filter.afterSeq ?? 0 };
  if (filter.repo !== undefined) {
    where.push('repo = @repo');
    params.repo = filter.repo;
  }
  if (filter.type !== undefined) {
    where.push('type = @type');
    params.type = filter.type;
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
