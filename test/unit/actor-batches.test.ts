// The actor runner's costs: catch-up reads the log in pages, checkpoints are stored once per
// batch (and for ignored events only now and then), the live queue stays bounded, and after a
// crash (the runner abandoned without stop()) the next one resumes without skipping or repeating
// work. Over a real SQLite file, with the registry's two connections.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { pino } from 'pino';
import { openDatabase } from '../../src/events/database.js';
import { EventStore, type EventFilter } from '../../src/events/store.js';
import type { EventBody, StoredEvent } from '../../src/events/types.js';
import { ActorRunner, BATCH_EVENTS, DEFAULT_RETRY, PAGE_SPAN_EVENTS, QUEUE_EVENTS, TRAILING_EVENTS, type Actor } from '../../src/actors/actor.js';
import { Checkpoints } from '../../src/actors/checkpoints.js';
import { RegistryStateProjection } from '../../src/projections/registry-state.js';
import { makeTempDir } from '../helpers/registry.js';

const ctx = { identity: 'anonymous' };
const silent = pino({ level: 'silent' });
const blob = (n: number): EventBody => ({ type: 'BlobPushed', repo: 'a', digest: `sha256:${n.toString(16).padStart(64, '0')}`, size: n });
const tag = (n: number): EventBody => ({ type: 'TagSet', repo: 'a', tag: `t${n}`, digest: `sha256:${'f'.repeat(64)}` });

/** A store that counts what an actor's catch-up read: the largest page, every event, the widest span. */
class CountingStore extends EventStore {
  largestRead = 0;
  eventsRead = 0;
  widestSpan = 0;
  override *read(filter: EventFilter = {}): Generator<StoredEvent> {
    if (filter.throughSeq !== undefined) this.widestSpan = Math.max(this.widestSpan, filter.throughSeq - (filter.afterSeq ?? 0));
    let n = 0;
    for (const event of super.read(filter)) {
      yield event;
      this.eventsRead++;
      this.largestRead = Math.max(this.largestRead, ++n);
    }
  }
}

class CountingCheckpoints extends Checkpoints {
  commits = 0;
  override commit<T>(name: string, seq: number, write: () => T): T {
    this.commits++;
    return super.commit(name, seq, write);
  }
}

/**
 * Records the events it acts on; `slow` makes each take a turn of the timers; `dieAt`: the process
 * dies while it handles that event (the promise never settles, the work before it not checkpointed).
 */
class Recorder implements Actor {
  readonly name = 'recorder';
  readonly seen: number[] = [];
  constructor(
    readonly handles: Actor['handles'],
    private readonly slow = false,
    private readonly dieAt?: number,
  ) {}
  async handle(event: StoredEvent): Promise<void> {
    if (this.slow) await new Promise((resolve) => setTimeout(resolve, 0));
    if (event.seq === this.dieAt) await new Promise(() => undefined);
    this.seen.push(event.seq);
  }
}

function open(file: string): { store: CountingStore; checkpoints: CountingCheckpoints } {
  return { store: new CountingStore(openDatabase(file), [new RegistryStateProjection()]), checkpoints: new CountingCheckpoints(openDatabase(file, { synchronous: 'NORMAL' })) };
}

async function appendMany(store: EventStore, bodies: EventBody[]): Promise<void> {
  for (let i = 0; i < bodies.length; i += 1000) await store.append(bodies.slice(i, i + 1000), ctx);
}

describe('actor runner costs', () => {
  it('catches up in pages and stores one checkpoint per batch', async () => {
    const file = path.join(makeTempDir(), 'events.db');
    const { store, checkpoints } = open(file);
    const total = BATCH_EVENTS * 5 + 7;
    await appendMany(store, Array.from({ length: total }, (_, i) => blob(i + 1)));
    store.largestRead = 0;
    const actor = new Recorder(['BlobPushed']);
    const runner = new ActorRunner(actor, store, checkpoints, silent);
    runner.start();
    await runner.caughtUp(total);
    runner.stop();
    assert.deepEqual(actor.seen, Array.from({ length: total }, (_, i) => i + 1), 'every event, in order');
    assert.ok(store.largestRead <= BATCH_EVENTS, `the backlog read in pages (largest ${store.largestRead})`);
    assert.ok(checkpoints.commits <= Math.ceil(total / BATCH_EVENTS) + 1, `${checkpoints.commits} checkpoint commits for ${total} events`);
    assert.equal(checkpoints.get('recorder'), total);
    store.complete();
  });

  it('keeps its live queue bounded and handles every event of a burst in order', async () => {
    const file = path.join(makeTempDir(), 'events.db');
    const { store, checkpoints } = open(file);
    const actor = new Recorder(['BlobPushed'], true);
    const runner = new ActorRunner(actor, store, checkpoints, silent);
    runner.start();
    const total = QUEUE_EVENTS * 2 + 3;
    let largestQueue = 0;
    const watch = store.events$.subscribe(() => (largestQueue = Math.max(largestQueue, runner.queued)));
    await appendMany(store, Array.from({ length: total }, (_, i) => blob(i + 1)));
    await runner.caughtUp(total);
    watch.unsubscribe();
    runner.stop();
    assert.ok(largestQueue <= QUEUE_EVENTS, `queue at most ${QUEUE_EVENTS} (was ${largestQueue})`);
    assert.equal(actor.seen.length, total);
    assert.ok(actor.seen.every((seq, i) => seq === i + 1), 'in order, none skipped or repeated');
    store.complete();
  });

  it('after a crash, repeats no handled event and skips none, with ignored events checkpointed lazily', async () => {
    const file = path.join(makeTempDir(), 'events.db');
    let { store, checkpoints } = open(file);
    const first = new Recorder(['TagSet']);
    // The stored checkpoint trails for a minute at most here: the crash comes well before.
    const runner = new ActorRunner(first, store, checkpoints, silent, DEFAULT_RETRY, 60_000);
    runner.start();
    // Ignored events, one the actor acts on, then fewer ignored ones than the lazy bound.
    await appendMany(store, Array.from({ length: 30 }, (_, i) => blob(i + 1)));
    await store.append([tag(1)], ctx);
    await appendMany(store, Array.from({ length: 20 }, (_, i) => blob(i + 100)));
    await runner.caughtUp(51);
    assert.deepEqual(first.seen, [31]);
    assert.ok(TRAILING_EVENTS > 20);
    // The crash: no stop(), the connections dropped. The stored checkpoint is at the handled event.
    assert.equal(checkpoints.get('recorder'), 31);
    store.db.close();
    checkpoints.db.close();

    ({ store, checkpoints } = open(file));
    await store.append([tag(2)], ctx);
    const second = new Recorder(['TagSet']);
    const restarted = new ActorRunner(second, store, checkpoints, silent);
    restarted.start();
    await restarted.caughtUp(52);
    restarted.stop();
    assert.deepEqual(second.seen, [52], 'the handled event is not repeated; the ignored ones are read again and ignored');
    assert.equal(checkpoints.get('recorder'), 52);
    store.complete();
  });

  it('a catch-up with synchronous work leaves the event loop turns between its batches', async () => {
    const file = path.join(makeTempDir(), 'events.db');
    const { store, checkpoints } = open(file);
    const total = BATCH_EVENTS * 20;
    await appendMany(store, Array.from({ length: total }, (_, i) => blob(i + 1)));
    const actor = new Recorder(['BlobPushed']); // resolves at once: no I/O of its own to yield on
    const runner = new ActorRunner(actor, store, checkpoints, silent);
    runner.start();
    // What an HTTP request or a timer needs: a turn of the loop. Before the fix it came only once
    // the whole backlog was handled, in one chain of microtasks.
    const seenAtNextTurn = await new Promise<number>((resolve) => setImmediate(() => resolve(actor.seen.length)));
    await runner.caughtUp(total);
    runner.stop();
    assert.ok(seenAtNextTurn < total, `the loop turned after ${seenAtNextTurn} of ${total} events`);
    assert.equal(actor.seen.length, total);
    store.complete();
  });

  it('catches up on the events of its types only, and a restart neither repeats nor skips one of them', async () => {
    const file = path.join(makeTempDir(), 'events.db');
    let { store, checkpoints } = open(file);
    // Every third event is a TagSet, the actor's one type: more of them than one page holds.
    const interleaved = (from: number, count: number): EventBody[] => Array.from({ length: count }, (_, i) => ((from + i) % 3 === 0 ? tag(from + i) : blob(from + i)));
    const tagSeqs = (after: number, through: number): number[] => Array.from({ length: through - after }, (_, i) => after + i + 1).filter((seq) => seq % 3 === 0);
    const half = BATCH_EVENTS * 6;
    await appendMany(store, interleaved(1, half));
    store.eventsRead = 0;
    const first = new Recorder(['TagSet']);
    let runner = new ActorRunner(first, store, checkpoints, silent);
    runner.start();
    await runner.caughtUp(half);
    runner.stop();
    assert.deepEqual(first.seen, tagSeqs(0, half), 'every TagSet, in order, once');
    assert.equal(store.eventsRead, half / 3, 'the catch-up read the TagSets only, not the BlobPusheds between them');
    assert.equal(checkpoints.get('recorder'), half, 'the checkpoint moved past the ignored events at the end');

    // Restarted after a clean stop, with more events: it starts after the stored checkpoint, then
    // dies while handling a TagSet in the middle of a page: the TagSets it handled before in that
    // page are not checkpointed.
    await appendMany(store, interleaved(half + 1, half));
    const dieAt = half + 3 * 20;
    const second = new Recorder(['TagSet'], false, dieAt);
    runner = new ActorRunner(second, store, checkpoints, silent);
    runner.start();
    while (second.seen.length < 19) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(second.seen[0], half + 3, 'nothing before the stored checkpoint came again');
    const storedAtCrash = checkpoints.get('recorder');
    assert.ok(storedAtCrash < half + 3, `the work of the page was not checkpointed (${storedAtCrash})`);
    store.db.close();
    checkpoints.db.close();

    ({ store, checkpoints } = open(file));
    const third = new Recorder(['TagSet']);
    runner = new ActorRunner(third, store, checkpoints, silent);
    runner.start();
    await runner.caughtUp(half * 2);
    runner.stop();
    assert.deepEqual(third.seen, tagSeqs(storedAtCrash, half * 2), 'every TagSet after the stored checkpoint, once, in order');
    assert.deepEqual(third.seen.slice(0, 19), second.seen, 'at least once: what was handled but not checkpointed comes again');
    assert.ok(store.eventsRead <= half / 3, `read ${store.eventsRead} events for ${half / 3} TagSets`);
    store.complete();
  });

  it('an actor of rare types scans the log in bounded spans and still sees every event of its type', async () => {
    const file = path.join(makeTempDir(), 'events.db');
    const { store, checkpoints } = open(file);
    const total = PAGE_SPAN_EVENTS + 5_000;
    await appendMany(store, Array.from({ length: total }, (_, i) => (i + 1 === 10 || i + 1 === total - 1 ? tag(i + 1) : blob(i + 1))));
    store.widestSpan = 0;
    const actor = new Recorder(['TagSet']);
    const runner = new ActorRunner(actor, store, checkpoints, silent);
    runner.start();
    await runner.caughtUp(total);
    runner.stop();
    assert.deepEqual(actor.seen, [10, total - 1]);
    assert.ok(store.widestSpan <= PAGE_SPAN_EVENTS, `one read spanned ${store.widestSpan} events`);
    assert.equal(checkpoints.get('recorder'), total);
    store.complete();
  });

  it('an actor that starts at the head reads no backlog, and handles what comes after its start', async () => {
    const file = path.join(makeTempDir(), 'events.db');
    const { store, checkpoints } = open(file);
    await appendMany(store, Array.from({ length: 3_000 }, (_, i) => (i % 2 === 0 ? tag(i + 1) : blob(i + 1))));
    store.eventsRead = 0;
    const actor = Object.assign(new Recorder(['TagSet']), { startsAtHead: true });
    const runner = new ActorRunner(actor, store, checkpoints, silent);
    runner.start();
    await runner.caughtUp(3_000);
    assert.equal(store.eventsRead, 0, 'the backlog was not read');
    await store.append([blob(3_001), tag(3_002)], ctx);
    await runner.caughtUp(3_002);
    runner.stop();
    assert.deepEqual(actor.seen, [3_002]);
    assert.equal(checkpoints.get('recorder'), 3_002);
    store.complete();
  });

  it('stores the checkpoint only after the actor flushed what it sent, and sends again what a failed flush did not confirm', async () => {
    const file = path.join(makeTempDir(), 'events.db');
    const { store, checkpoints } = open(file);
    await appendMany(store, Array.from({ length: 12 }, (_, i) => (i % 3 === 2 ? blob(i + 1) : tag(i + 1))));
    const tags = Array.from({ length: 12 }, (_, i) => i + 1).filter((seq) => seq % 3 !== 0);
    // Sends each event; a flush confirms what was sent since the last one. The first flush fails.
    const actor = new (class implements Actor {
      readonly name = 'sender';
      readonly handles = ['TagSet'] as const;
      sent: number[] = [];
      unconfirmed: number[] = [];
      confirmed: number[] = [];
      checkpointAtFailedFlush?: number;
      async handle(event: StoredEvent): Promise<void> {
        this.sent.push(event.seq);
        this.unconfirmed.push(event.seq);
      }
      async flush(): Promise<void> {
        const taken = this.unconfirmed;
        this.unconfirmed = [];
        if (this.checkpointAtFailedFlush === undefined) {
          this.checkpointAtFailedFlush = checkpoints.get('sender');
          throw new Error('the receiver did not answer the flush');
        }
        this.confirmed.push(...taken);
      }
    })();
    const runner = new ActorRunner(actor, store, checkpoints, silent, { firstDelayMs: 1, maxDelayMs: 10, errorAtAttempt: 5 });
    runner.start();
    await runner.caughtUp(12);
    runner.stop();
    assert.equal(actor.checkpointAtFailedFlush, 0, 'nothing was checkpointed before the flush');
    assert.deepEqual(actor.sent, [...tags, ...tags], 'what the failed flush did not confirm was sent again');
    assert.deepEqual(actor.confirmed, tags, 'each confirmed once, in order');
    assert.equal(checkpoints.get('sender'), 12);
    store.complete();
  });
  it('an actor with a lazy checkpoint stores it now and then, not per batch, and after a crash redoes only the tail past it', async () => {
    const file = path.join(makeTempDir(), 'events.db');
    let { store, checkpoints } = open(file);
    const lazyRecorder = (): Recorder => Object.assign(new Recorder(['TagSet']), { lazyCheckpoint: true });
    const first = lazyRecorder();
    const runner = new ActorRunner(first, store, checkpoints, silent, DEFAULT_RETRY, 60_000);
    runner.start();
    // One batch per event: each is handled before the next is appended.
    for (let seq = 1; seq <= 10; seq++) {
      await store.append([tag(seq)], ctx);
      await runner.caughtUp(seq);
    }
    assert.deepEqual(first.seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.equal(checkpoints.commits, 0, 'no checkpoint commit for 10 batches within the bounds');
    assert.equal(runner.checkpoint, 10, 'done in memory');
    // The crash: no stop(). The stored checkpoint trails; the next start redoes the tail past it.
    const storedAtCrash = checkpoints.get('recorder');
    store.db.close();
    checkpoints.db.close();

    ({ store, checkpoints } = open(file));
    await store.append([tag(11)], ctx);
    const second = lazyRecorder();
    const restarted = new ActorRunner(second, store, checkpoints, silent, DEFAULT_RETRY, 60_000);
    restarted.start();
    await restarted.caughtUp(11);
    restarted.stop();
    assert.deepEqual(second.seen, Array.from({ length: 11 - storedAtCrash }, (_, i) => storedAtCrash + i + 1), 'the tail again, then the new event; none skipped');
    assert.equal(checkpoints.get('recorder'), 11, 'stored at stop');
    store.complete();
  });

  it('a lazy checkpoint trails by at most TRAILING_EVENTS, and is stored once the actor is idle for the trailing time', async () => {
    const file = path.join(makeTempDir(), 'events.db');
    const { store, checkpoints } = open(file);
    const actor = Object.assign(new Recorder(['TagSet']), { lazyCheckpoint: true });
    const runner = new ActorRunner(actor, store, checkpoints, silent, DEFAULT_RETRY, 200);
    runner.start();
    const total = TRAILING_EVENTS * 2 + 300;
    let widestTrail = 0;
    const watch = store.events$.subscribe(() => (widestTrail = Math.max(widestTrail, runner.checkpoint - checkpoints.get('recorder'))));
    await appendMany(store, Array.from({ length: total }, (_, i) => tag(i + 1)));
    await runner.caughtUp(total);
    watch.unsubscribe();
    assert.ok(widestTrail < TRAILING_EVENTS, `the stored checkpoint trailed by ${widestTrail} events`);
    // Idle now: the trailing checkpoint is stored without a stop.
    while (checkpoints.get('recorder') < total) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(actor.seen.length, total);
    runner.stop();
    store.complete();
  });

  it('refuses a lazy checkpoint for an actor with table writes', () => {
    const file = path.join(makeTempDir(), 'events.db');
    const { store, checkpoints } = open(file);
    const actor = Object.assign(new Recorder(['TagSet']), { lazyCheckpoint: true, writeTables: () => undefined });
    assert.throws(() => new ActorRunner(actor, store, checkpoints, silent), /lazy checkpoint/);
    store.complete();
  });
});
