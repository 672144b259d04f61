// Runs actors over the event stream. An actor resumes from its checkpoint (replaying the log it
// missed), then follows live events in order. Each event is handled inside its own inner
// observable with catchError, so one failing event never stops the stream (as nestjs/cqrs does).
import { EMPTY, Subscription, concat, concatMap, defer, filter, from, catchError, tap, BehaviorSubject, firstValueFrom } from 'rxjs';
import type { Logger } from 'pino';
import type { EventStore } from '../events/store.js';
import type { EventType, StoredEvent } from '../events/types.js';

export interface Actor {
  readonly name: string;
  /** Event types the actor acts on; every other event only moves its checkpoint. */
  readonly handles: readonly EventType[];
  /**
   * The actor stores its checkpoint itself, in the transaction of its own writes (so the two never
   * disagree after a crash); the runner then keeps it in memory only.
   */
  readonly storesCheckpoint?: boolean;
  handle(event: StoredEvent): Promise<void>;
}

export class ActorRunner {
  private subscription?: Subscription;
  private readonly processed: BehaviorSubject<number>;

  constructor(
    private readonly actor: Actor,
    private readonly store: EventStore,
    private readonly logger: Logger,
  ) {
    this.processed = new BehaviorSubject(store.getCheckpoint(actor.name));
  }

  get name(): string {
    return this.actor.name;
  }

  /** Sequence number of the last event this actor has finished with. */
  get checkpoint(): number {
    return this.processed.value;
  }

  start(): void {
    const handles = new Set<EventType>(this.actor.handles);
    // The backlog is read and the live stream subscribed in one synchronous step, so no event
    // falls between them; `seq` filtering drops any overlap.
    const backlog = Array.from(this.store.read({ afterSeq: this.checkpoint }));
    this.logger.debug({ actor: this.actor.name, checkpoint: this.checkpoint, backlog: backlog.length }, 'actor resuming from checkpoint');
    this.subscription = concat(from(backlog), this.store.events$)
      .pipe(
        filter((event) => event.seq > this.checkpoint),
        concatMap((event) =>
          defer(() => (handles.has(event.type) ? this.actor.handle(event) : Promise.resolve())).pipe(
            catchError((err: unknown) => {
              this.logger.error({ actor: this.actor.name, seq: event.seq, type: event.type, err }, 'failed to handle event');
              return EMPTY;
            }),
            // Runs after success and after a logged failure alike: the checkpoint moves on.
            tap({ finalize: () => this.advance(event.seq) }),
          ),
        ),
      )
      .subscribe();
  }

  private advance(seq: number): void {
    if (seq <= this.processed.value) return;
    if (!this.actor.storesCheckpoint) this.store.setCheckpoint(this.actor.name, seq);
    this.processed.next(seq);
  }

  /** Resolves once the actor has handled every event up to `seq`. */
  async caughtUp(seq: number): Promise<void> {
    await firstValueFrom(this.processed.pipe(filter((done) => done >= seq)));
  }

  stop(): void {
    this.subscription?.unsubscribe();
  }
}
