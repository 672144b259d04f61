// Runs actors over the event stream and owns their checkpoints.
//
// Order and retries. An actor resumes from its checkpoint (replaying the log it missed), then
// follows live events, one at a time in log order (concatMap). An event whose handling fails is
// retried with a backoff (100 ms doubling up to 30 s) until it succeeds or the runner stops; the
// events after it wait behind it. An actor never skips an event: its checkpoint moves only past
// work that is done. A stall shows as the actor's lag (zot_actor_lag_events, which grows while
// events keep coming) and, past a bound, as /readyz answering 503 (src/monitoring.ts). Each failure
// is logged at warn with its attempt number, and one at error once the stall has lasted a few
// attempts. A failure stays inside the actor's own inner observable: the shared stream and the
// other actors go on (as nestjs/cqrs does).
//
// Checkpoints: one scheme for every actor. After each event the runner stores the actor's
// checkpoint, in one SQLite transaction with the actor's own table writes if it has any
// (`writeTables`), so the two never disagree, even after a crash. Side effects outside the
// database (`handle`: files) happen before that transaction and must be idempotent: a crash or a
// failed commit between them and the checkpoint brings the same event again. The transaction goes
// through the actors' own connection to the database file, opened with synchronous=NORMAL: no
// fsync per event, while the log's appends keep theirs on the main connection. A power loss can
// roll back the latest checkpoints, together with the table writes committed with them, never
// tear one; the runner then replays those events. The two connections live on one thread and
// better-sqlite3 runs each transaction synchronously, so their write transactions never overlap;
// nothing toggles a pragma on a connection that another part shares.
import { setTimeout as sleep } from 'node:timers/promises';
import { BehaviorSubject, Subscription, combineLatest, concat, concatMap, defer, filter, firstValueFrom, from } from '../events/rx.js';
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
   * The event's writes to the actor's own tables, run synchronously inside the transaction that
   * stores its checkpoint. Returns what to do once that transaction committed (in-memory figures).
   */
  writeTables?(event: StoredEvent): (() => void) | undefined;
}

export interface RetryPolicy {
  firstDelayMs: number;
  maxDelayMs: number;
  /** The failed attempt logged at error (the others at warn): the stall is no passing blip. */
  errorAtAttempt: number;
}

export const DEFAULT_RETRY: RetryPolicy = { firstDelayMs: 100, maxDelayMs: 30_000, errorAtAttempt: 5 };

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

  constructor(
    private readonly actor: Actor,
    private readonly store: EventStore,
    private readonly checkpoints: Checkpoints,
    private readonly logger: Logger,
    private readonly retry: RetryPolicy = DEFAULT_RETRY,
  ) {
    this.handles = new Set(actor.handles);
    this.processed = new BehaviorSubject(checkpoints.get(actor.name));
  }

  get name(): string {
    return this.actor.name;
  }

  /** Sequence number of the last event this actor has finished with. */
  get checkpoint(): number {
    return this.processed.value;
  }

  /** How long the actor has been failing on one event; 0 when it is not failing. */
  stalledForMs(now = Date.now()): number {
    const stall = this.stall.value;
    return stall === undefined ? 0 : now - stall.since;
  }

  start(): void {
    // The backlog is read and the live stream subscribed in one synchronous step, so no event
    // falls between them; `seq` filtering drops any overlap.
    const backlog = Array.from(this.store.read({ afterSeq: this.checkpoint }));
    this.logger.debug({ actor: this.actor.name, checkpoint: this.checkpoint, backlog: backlog.length }, 'actor resuming from checkpoint');
    this.subscription = concat(from(backlog), this.store.events$)
      .pipe(
        filter((event) => event.seq > this.checkpoint),
        concatMap((event) => defer(() => this.handleUntilDone(event))),
      )
      .subscribe();
  }

  /** Handles the event, retrying with backoff until it succeeds or the runner stops. */
  private async handleUntilDone(event: StoredEvent): Promise<void> {
    for (let attempt = 1; !this.stopping.signal.aborted; attempt++) {
      try {
        await this.handleOnce(event);
        if (attempt > 1) this.logger.info({ actor: this.actor.name, seq: event.seq, attempts: attempt }, 'actor handled the event it was stalled on');
        this.stall.next(undefined);
        return;
      } catch (err) {
        if (this.stopping.signal.aborted) return;
        this.stall.next({ seq: event.seq, since: this.stall.value?.since ?? Date.now() });
        const retryInMs = Math.min(this.retry.maxDelayMs, this.retry.firstDelayMs * 2 ** (attempt - 1));
        const fields = { actor: this.actor.name, seq: event.seq, type: event.type, attempt, retryInMs, err };
        if (attempt === this.retry.errorAtAttempt) this.logger.error(fields, 'failed to handle event, actor stalled until it succeeds');
        else this.logger.warn(fields, 'failed to handle event, retrying');
        await sleep(retryInMs, undefined, { signal: this.stopping.signal }).catch(() => undefined);
      }
    }
  }

  private async handleOnce(event: StoredEvent): Promise<void> {
    const acts = this.handles.has(event.type);
    if (acts) await this.actor.handle?.(event);
    // Stopped meanwhile: the database may be closing; the next start handles the event again.
    if (this.stopping.signal.aborted) return;
    const afterCommit = this.checkpoints.commit(this.actor.name, event.seq, () => (acts ? this.actor.writeTables?.(event) : undefined));
    this.processed.next(event.seq);
    try {
      afterCommit?.();
    } catch (err) {
      // Committed: retrying would write the tables twice.
      this.logger.error({ actor: this.actor.name, seq: event.seq, err }, 'failed to apply a committed event in memory');
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

  /** Stops following the stream and ends a retry's wait; an event in flight does not move the checkpoint. */
  stop(): void {
    this.stopping.abort();
    this.subscription?.unsubscribe();
  }
}
