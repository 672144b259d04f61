// One actor per events sink (extensions.events.sinks), fed from the event log through the actor
// runner (actor.ts): it turns each log event into zot's CloudEvents (cloud-event.ts) and delivers
// them, in log order, before its checkpoint moves past the event.
//
// Delivery is at least once, in order, per sink. A sink that is down or refuses an event stalls
// this actor only (each sink has its own checkpoint): the runner retries the event with its
// backoff, the later events wait, and when the sink is back it receives every event it missed,
// in order. zot drops them. The events of a batch are sent one after another, then the sink is
// flushed once (NATS: one round trip for the batch), then the checkpoint moves past them in one
// commit. An event is delivered again only when the sink took it and the checkpoint did not
// follow: a crash between the two (up to a batch), a failed flush (the events since the last
// one), a failed checkpoint commit, or a power loss within the last commits of the actors'
// connection (which commits without an fsync); each redelivery has the same `id`. An event with
// two CloudEvents (repository.created, then the image event) sends both again if the second
// failed.
//
// A sink seen for the first time starts at the log's head: it receives what happens from then
// on, not the registry's history. The repositories it has been told of are in the actor's own
// table, written with its checkpoint, so repository.created is sent once per repository (again
// after GC removed the repository and a push creates it anew). Until the batch's commit, what
// the events sent so far announced or forgot is kept in memory (`pending`), dropped on any
// failure: the retry starts again from the table.
import type { Logger } from 'pino';
import type { Db } from '../../events/database.js';
import type { EventStore } from '../../events/store.js';
import type { EventType, StoredEvent } from '../../events/types.js';
import type { Actor } from '../actor.js';
import type { Checkpoints } from '../checkpoints.js';
import { MAPPED_TYPES, cloudEventsFor, createsRepository, type CloudEventLookups } from './cloud-event.js';
import type { EventSink } from './sink.js';

export interface SinkActorDeps {
  db: Db;
  store: EventStore;
  checkpoints: Checkpoints;
  logger: Logger;
  source: string;
  typePrefix: string;
  /** Repositories in the registry now, for a sink seen for the first time. */
  repositories(): string[];
  manifest(repo: string, digest: string): Promise<Buffer | undefined>;
}

export function migrateSinkTables(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS event_sink_repositories (
      sink TEXT NOT NULL,
      repo TEXT NOT NULL,
      PRIMARY KEY (sink, repo)
    ) WITHOUT ROWID;
  `);
}

export class EventSinkActor implements Actor {
  readonly handles: readonly EventType[] = [...MAPPED_TYPES, 'RepositoryRemoved'];
  private readonly lookups: CloudEventLookups;
  private readonly statements;
  /** Repository → announced, as the events sent since the last commit left it. */
  private readonly pending = new Map<string, boolean>();
  /** Whether the table, alone, says the sink was told of the repository (inside the commit). */
  private readonly announcedInTable: (repo: string) => boolean;

  constructor(
    readonly name: string,
    readonly sink: EventSink,
    private readonly deps: SinkActorDeps,
  ) {
    migrateSinkTables(deps.db);
    this.statements = {
      announced: deps.db.prepare('SELECT 1 FROM event_sink_repositories WHERE sink = ? AND repo = ?').pluck(),
      announce: deps.db.prepare('INSERT OR IGNORE INTO event_sink_repositories (sink, repo) VALUES (?, ?)'),
      forget: deps.db.prepare('DELETE FROM event_sink_repositories WHERE sink = ? AND repo = ?'),
    };
    this.announcedInTable = (repo) => this.statements.announced.get(name, repo) !== undefined;
    this.lookups = {
      source: deps.source,
      typePrefix: deps.typePrefix,
      isAnnounced: (repo) => this.pending.get(repo) ?? this.announcedInTable(repo),
      following: (seq) => deps.store.read({ afterSeq: seq }),
      mediaType: (repo, digest, beforeSeq) => deps.store.manifestMediaType(repo, digest, beforeSeq),
      manifest: (repo, digest) => deps.manifest(repo, digest),
    };
    this.startAtHeadIfNew();
  }

  /** A new sink starts at the head, knowing of every repository there is. */
  private startAtHeadIfNew(): void {
    const { checkpoints, store } = this.deps;
    if (checkpoints.has(this.name)) return;
    checkpoints.commit(this.name, store.head(), () => {
      for (const repo of this.deps.repositories()) this.statements.announce.run(this.name, repo);
    });
  }

  async handle(event: StoredEvent): Promise<void> {
    try {
      for (const cloudEvent of await cloudEventsFor(event, this.lookups)) await this.sink.send(cloudEvent);
    } catch (err) {
      this.pending.clear();
      throw err;
    }
    if (event.type === 'RepositoryRemoved') this.pending.set(event.repo, false);
    else if (createsRepository(event, this.lookups)) this.pending.set(event.repo, true);
  }

  async flush(): Promise<void> {
    try {
      await this.sink.flush();
    } catch (err) {
      this.pending.clear();
      throw err;
    }
  }

  /**
   * Runs in the commit, event after event: the table then holds what the events before wrote. Once
   * committed, the table says what `pending` said of the repository.
   */
  writeTables(event: StoredEvent): () => void {
    if (event.type === 'RepositoryRemoved') this.statements.forget.run(this.name, event.repo);
    else if (createsRepository(event, { isAnnounced: this.announcedInTable })) this.statements.announce.run(this.name, event.repo);
    return () => this.pending.delete(event.repo);
  }
}
