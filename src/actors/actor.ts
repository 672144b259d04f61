// Runs actors over the event stream and owns their checkpoints.
//
// Order and retries. An actor resumes from its checkpoint, then follows live events, in log
// order, in batches: whatever is waiting when it is ready, up to BATCH_EVENTS. An event whose
// handling fails is retried with a backoff (100 ms doubling up to 30 s) until it succeeds or the
// runner stops; the events after it wait behind it (the ones before it in its batch are done and
// checkpointed). An actor never skips an event: its checkpoint moves only past work that is done.
// A stall shows as the actor's lag (zot_actor_lag_events, which grows while events keep coming)
// and, past a bound, as /readyz answering 503 (src/monitoring.ts). Each failure is logged at warn
// with its attempt number, and one at error once the stall has lasted a few attempts. A failure
// stays inside the actor's own loop: the shared stream and the other actors go on.
//
// Catch-up reads only the events of the types the actor handles (a SQL filter on type), in pages
// of at most BATCH_EVENTS events and PAGE_SPAN_EVENTS sequence numbers, so its cost follows the
// events it acts on, and the log's other events are scanned by SQLite, never parsed (an actor
// whose work is per repository reads only the repositories' names: `handleRepositories`). A
// page ends at its last event when it is full, else at the end of its span: the checkpoint moves
// to the page's end, past the events of other types in it, as it does for the ones the live
// queue brings. An actor that `startsAtHead` reads no backlog at all.
//
// Memory. Catch-up reads the log in pages, never the backlog whole. Live events
// wait in a queue of at most QUEUE_EVENTS per actor; past that the queue takes no more, and the
// actor reads what it missed from the log (which holds every event anyway) once it gets there. An
// actor reads only events already published: committed and synced (src/events/store.ts).
//
// Checkpoints: one scheme for every actor. After each batch the runner stores the actor's
// checkpoint, in one SQLite transaction with the actor's own table writes for the whole batch if
// it has any (`writeTables`), so the two never disagree, even after a crash (an actor whose
// `handle` depends on what `writeTables` stores for the events before keeps that in memory until
// the commit: the event sinks' announced repositories). Side effects outside the database
// (`handle`, `handleRepositories`: files, deliveries) happen before that transaction, confirmed
// by the actor's `flush` if it has one, and must be idempotent: a crash, a failed flush or a
// failed commit between them and the checkpoint brings the same events again. A batch of events
// the actor ignores moves its checkpoint in memory, and in the database only once it trails by
// TRAILING_EVENTS events or for TRAILING_MS (or with the next batch it acts on, or at stop): a
// crash before brings those events again, and they are ignored again. An actor whose side effects
// are harmless to redo for such a tail (`lazyCheckpoint`: the index.json writer rewrites a
// repository's file from the projection, the audit writer skips the seqs its file holds) has the
// batches it acts on stored the same lazy way: a crash redoes at most that tail, and its stored
// checkpoint still never passes work that is not done. An actor with table writes stores its
// checkpoint with them, every batch it acts on. The transaction goes
// through the actors' own connection to the database file, opened with synchronous=NORMAL: no
// fsync per commit, while the log's appends keep theirs. A power loss can roll back the latest
// checkpoints, together with the table writes committed with them, never tear one; the runner
// then replays those events. The two connections live on one thread and better-sqlite3 runs each
// transaction synchronously, so their write transactions never overlap; nothing toggles a pragma
// on a connection that another part shares.
import { setTimeout as sleep } from 'node:timers/promises';
import { BehaviorSubject, Subscription, combineLatest, filter, firstValueFrom } from '../events/rx.js';
import type { Logger } from 'pino';
import type { EventStore } from '../events/store.js';
import type { EventType, StoredEvent } from '../events/types.js';
import type { Checkpoints } from './checkpoints.js';

export interface Actor {
  readonly name: string;
  /** Event types the actor acts on; every other event only moves its checkpoint. */
  readonly handles: readonly EventType[];
  /**
   * The event's side effects outside the database (files, timers). Idempotent: after a crash or a
   * failed checkpoint commit, the same event comes again.
   */
  handle?(event: StoredEvent): Promise<void>;
  /**
   * Instead of `handle`, for an actor whose work is per repository and the same whatever the
   * events (the index.json writer writes a repository's current state): once per batch, with the
   * repositories its events name, each once. Catch-up then reads only those names, over spans of
   * PAGE_SPAN_EVENTS, parsing no event. Idempotent as `handle` is; a failure retries the whole
   * batch. Such an actor has no `writeTables`.
   */
  handleRepositories?(repos: readonly string[]): Promise<void>;
  /**
   * The event's writes to the actor's own tables, run synchronously inside the transaction that
   * stores its checkpoint. Returns what to do once that transaction committed (in-memory figures).
   */
  writeTables?(event: StoredEvent): (() => void) | undefined;
  /**
   * Resolves once the side effects of the events `handle` took since the last call are done, before
   * the runner stores the checkpoint past them (an events sink: the receiver has them). A rejection
   * means they are not known to be done: they come again.
   */
  flush?(): Promise<void>;
  /**
   * The actor learns at start, from elsewhere, all that the events before then would tell it (GC:
   * every repository is due for a sweep at start): it starts at the head of the log, not at its
   * checkpoint, and reads no backlog.
   */
  readonly startsAtHead?: boolean;
  /**
   * Redoing a tail of up to TRAILING_EVENTS events (or TRAILING_MS of them) is harmless: the
   * runner stores the checkpoint of the batches it acts on lazily, as for events it ignores
   * (see the top), not one commit per batch. Not with `writeTables`.
   */
  readonly lazyCheckpoint?: boolean;
}

export interface RetryPolicy {
  firstDelayMs: number;
  maxDelayMs: number;
  /** The failed attempt logged at error (the others at warn): the stall is no passing blip. */
  errorAtAttempt: number;
}

export const DEFAULT_RETRY: RetryPolicy = { firstDelayMs: 100, maxDelayMs: 30_000, errorAtAttempt: 5 };

/** Events handled, and checkpointed, together; also the catch-up page size. */
export const BATCH_EVENTS = 500;
/** Live events waiting for one actor; past this it reads them from the log later. */
export const QUEUE_EVENTS = 10_000;
/** Events an actor ignores (or a `lazyCheckpoint` actor acts on) that its stored checkpoint may trail by. */
export const TRAILING_EVENTS = 1_000;
/** How long a stored checkpoint trails what is done, at most, while the actor is idle. */
export const TRAILING_MS = 1_000;
/**
 * Sequence numbers one catch-up page scans at most: an actor whose types are rare does not scan
 * the whole log in one synchronous read.
 */
export const PAGE_SPAN_EVENTS = 20_000;

/** Events to handle, and the last sequence number the batch covers (its other events: ignored). */
interface Batch {
  /** In log order; may hold events of types the actor ignores (those from the live queue). */
  events: readonly StoredEvent[];
  /** For `handleRepositories` in catch-up: the repositories named, read instead of the events. */
  repos?: readonly string[];
  through: number;
}

/** The event an actor is failing on. */
interface Stall {
  seq: number;
  /** When its first attempt failed (ms since the epoch). */
  since: number;
}

export class ActorRunner {
  private subscription?: Subscription;
  private readonly handles: ReadonlySet<EventType>;
  private readonly processed: BehaviorSubject<number>;
  private readonly stall = new BehaviorSubject<Stall | undefined>(undefined);
  private readonly stopping = new AbortController();
  /** Live events in log order, contiguous from the first; bounded by QUEUE_EVENTS. */
  private queue: StoredEvent[] = [];
  /** Wakes the loop when it waits for events. */
  private wake?: () => void;
  /** The checkpoint as stored in the database (the in-memory one may be ahead: see the top). */
  private storedCheckpoint: number;
  /** Stores a trailing checkpoint TRAILING_MS after it began to trail. */
  private storeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly actor: Actor,
    private readonly store: EventStore,
    private readonly checkpoints: Checkpoints,
    private readonly logger: Logger,
    private readonly retry: RetryPolicy = DEFAULT_RETRY,
    private readonly trailingMs: number = TRAILING_MS,
  ) {
    if (actor.lazyCheckpoint && actor.writeTables) throw new Error(`actor ${actor.name}: a lazy checkpoint cannot go with table writes`);
    this.handles = new Set(actor.handles);
    this.storedCheckpoint = checkpoints.get(actor.name);
    this.processed = new BehaviorSubject(this.storedCheckpoint);
  }

  get name(): string {
    return this.actor.name;
  }

  /** Sequence number of the last event this actor has finished with. */
  get checkpoint(): number {
    return this.processed.value;
  }

  /** Live events waiting in this actor's queue. */
  get queued(): number {
    return this.queue.length;
  }

  /** How long the actor has been failing on one event; 0 when it is not failing. */
  stalledForMs(now = Date.now()): number {
    const stall = this.stall.value;
    return stall === undefined ? 0 : now - stall.since;
  }

  start(): void {
    if (this.actor.startsAtHead && this.store.publishedSeq > this.checkpoint) this.processed.next(this.store.publishedSeq);
    this.logger.debug({ actor: this.actor.name, checkpoint: this.checkpoint, backlog: this.store.publishedSeq - this.checkpoint }, 'actor resuming from checkpoint');
    this.subscription = this.store.events$.subscribe((event) => this.enqueue(event));
    this.run().catch((err: unknown) => {
      // Reading the log failed (the database closing under it): the next start resumes.
      if (!this.stopping.signal.aborted) this.logger.error({ actor: this.actor.name, err }, 'failed to read the event log, actor stopped');
    });
  }

  private enqueue(event: StoredEvent): void {
    const last = this.queue[this.queue.length - 1];
    // Full, or out of step with what is queued: left to the log (the batch after the queue reads it).
    if (this.queue.length < QUEUE_EVENTS && (last === undefined || event.seq === last.seq + 1)) this.queue.push(event);
    this.wake?.();
  }

  private async run(): Promise<void> {
    this.stopping.signal.addEventListener('abort', () => this.wake?.(), { once: true });
    while (!this.stopping.signal.aborted) {
      const batch = this.nextBatch();
      if (batch === undefined) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      await this.handleUntilDone(batch);
      // A turn of the event loop between batches: an actor whose work is synchronous (metrics,
      // GC's scheduling) otherwise chains its whole catch-up in microtasks, and a big backlog kept
      // the HTTP server from listening, and every request waiting, until it was done.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /**
   * The events after the checkpoint: from the queue when it starts right there, else a page of the
   * log holding only the types the actor handles (catch-up, or what the queue missed), never past
   * what the store has published. Undefined when there is nothing after the checkpoint.
   */
  private nextBatch(): Batch | undefined {
    const after = this.checkpoint;
    while (this.queue.length > 0 && (this.queue[0] as StoredEvent).seq <= after) this.queue.shift();
    const first = this.queue[0];
    if (first !== undefined && first.seq === after + 1) {
      const events = this.queue.slice(0, BATCH_EVENTS);
      return { events, through: (events[events.length - 1] as StoredEvent).seq };
    }
    const published = this.store.publishedSeq;
    if (published <= after) return undefined;
    const spanEnd = Math.min(published, after + PAGE_SPAN_EVENTS);
    if (this.actor.handleRepositories) return { events: [], repos: this.store.repositoriesTouched(after, spanEnd, this.actor.handles), through: spanEnd };
    const events = Array.from(this.store.read({ afterSeq: after, throughSeq: spanEnd, types: this.actor.handles, limit: BATCH_EVENTS }));
    // A full page may stop short of its span: the events after its last one are not read yet.
    const through = events.length === BATCH_EVENTS ? (events[events.length - 1] as StoredEvent).seq : spanEnd;
    return { events, through };
  }

  /** Handles the batch, retrying from the failed event with backoff until done or the runner stops. */
  private async handleUntilDone(batch: Batch): Promise<void> {
    let rest = batch;
    for (let attempt = 1; !this.stopping.signal.aborted && rest.through > this.checkpoint; attempt++) {
      try {
        await this.handleOnce(rest);
        if (attempt > 1) this.logger.info({ actor: this.actor.name, seq: rest.events[0]?.seq, attempts: attempt }, 'actor handled the event it was stalled on');
        this.stall.next(undefined);
        return;
      } catch (err) {
        if (this.stopping.signal.aborted) return;
        // The events before the failed one are done and checkpointed; retry from it.
        rest = { events: rest.events.filter((event) => event.seq > this.checkpoint), through: rest.through };
        const failed = rest.events.find((event) => this.handles.has(event.type));
        const seq = failed?.seq ?? this.checkpoint + 1;
        const stall = this.stall.value;
        this.stall.next({ seq, since: stall?.seq === seq ? stall.since : Date.now() });
        const retryInMs = Math.min(this.retry.maxDelayMs, this.retry.firstDelayMs * 2 ** (attempt - 1));
        const fields = { actor: this.actor.name, seq, type: failed?.type, attempt, retryInMs, err };
        if (attempt === this.retry.errorAtAttempt) this.logger.error(fields, 'failed to handle event, actor stalled until it succeeds');
        else this.logger.warn(fields, 'failed to handle event, retrying');
        await sleep(retryInMs, undefined, { signal: this.stopping.signal }).catch(() => undefined);
      }
    }
  }

  /**
   * The side effects of the batch's events, then one checkpoint commit for all of them (after the
   * actor's `flush`). A failure in `handle` first checkpoints the events before the failed one, if
   * the flush confirms them, then throws.
   */
  private async handleOnce(batch: Batch): Promise<void> {
    const acted = batch.events.filter((event) => this.handles.has(event.type));
    const notDone = (through: number): StoredEvent[] => acted.filter((event) => event.seq > this.checkpoint && event.seq <= through);
    if (this.actor.handleRepositories) {
      const repos = batch.repos ?? [...new Set(acted.map((event) => event.repo))];
      if (repos.length > 0) await this.actor.handleRepositories(repos);
    } else if (this.actor.handle) {
      for (const event of acted) {
        try {
          await this.actor.handle(event);
        } catch (err) {
          // The events before it are checkpointed if the flush confirms them; if not, they come
          // again with it. The error logged is the event's own.
          const confirmed = event.seq - 1 > this.checkpoint && !this.stopping.signal.aborted && (await this.flushed());
          if (confirmed) this.commit(event.seq - 1, notDone(event.seq - 1));
          throw err;
        }
        if (this.stopping.signal.aborted) return;
      }
      if (acted.length > 0) await this.actor.flush?.();
    }
    // Stopped meanwhile: the database may be closing; the next start handles the events again.
    if (this.stopping.signal.aborted) return;
    if (batch.through > this.checkpoint) this.commit(batch.through, notDone(batch.through));
  }

  /** The actor's flush; false when it failed (logged: what it had taken comes again). */
  private async flushed(): Promise<boolean> {
    try {
      await this.actor.flush?.();
      return true;
    } catch (err) {
      this.logger.warn({ actor: this.actor.name, err }, 'failed to flush, the events since the last flush come again');
      return false;
    }
  }

  /**
   * Stores the checkpoint `through` with the actor's table writes for `acted`, the events it acts
   * on up to there that are not checkpointed yet (see the top).
   */
  private commit(through: number, acted: readonly StoredEvent[]): void {
    const lazy = acted.length === 0 || this.actor.lazyCheckpoint === true;
    if (lazy && through - this.storedCheckpoint < TRAILING_EVENTS) {
      this.processed.next(through);
      this.storeLater();
      return;
    }
    const afterCommits = this.checkpoints.commit(this.actor.name, through, () => acted.map((event) => this.actor.writeTables?.(event)));
    this.storedCheckpoint = through;
    this.processed.next(through);
    for (const afterCommit of afterCommits) {
      try {
        afterCommit?.();
      } catch (err) {
        // Committed: retrying would write the tables twice.
        this.logger.error({ actor: this.actor.name, seq: through, err }, 'failed to apply a committed event in memory');
      }
    }
  }

  /** Stores the trailing checkpoint TRAILING_MS from now, unless a commit stores it first. */
  private storeLater(): void {
    if (this.storeTimer !== undefined || this.stopping.signal.aborted) return;
    this.storeTimer = setTimeout(() => {
      this.storeTimer = undefined;
      this.storeTrailing();
    }, this.trailingMs);
    this.storeTimer.unref();
  }

  /**
   * Stores the checkpoint of the work done, if the stored one trails it (a lazy one, see the top):
   * what reads the database next, such as `zot replay`, then sees that work as done.
   */
  storeTrailing(): void {
    if (this.checkpoint <= this.storedCheckpoint) return;
    try {
      this.checkpoints.commit(this.actor.name, this.checkpoint, () => undefined);
      this.storedCheckpoint = this.checkpoint;
    } catch (err) {
      // The events are handled again after a crash, harmlessly (see the top).
      this.logger.warn({ actor: this.actor.name, err }, 'failed to store the checkpoint');
    }
  }

  /** Resolves once the actor has handled every event up to `seq`. */
  async caughtUp(seq: number): Promise<void> {
    await firstValueFrom(this.processed.pipe(filter((done) => done >= seq)));
  }

  /**
   * Resolves once the actor has handled every event up to `seq`, or is failing (at shutdown: a
   * stalled actor is not waited for; its checkpoint has not moved, so the next start retries).
   */
  async caughtUpOrFailing(seq: number): Promise<void> {
    await firstValueFrom(combineLatest([this.processed, this.stall]).pipe(filter(([done, stall]) => done >= seq || stall !== undefined)));
  }

  /**
   * Stops following the stream and ends a retry's wait; a batch in flight does not move the
   * checkpoint. A trailing checkpoint is stored now (the work up to it is done).
   */
  stop(): void {
    this.stopping.abort();
    this.subscription?.unsubscribe();
    this.queue = [];
    clearTimeout(this.storeTimer);
    this.storeTimer = undefined;
    this.storeTrailing();
  }
}
