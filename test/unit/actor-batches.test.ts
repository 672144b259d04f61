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
import { ActorRunner, BATCH_EVENTS, IGNORED_EVENTS_PER_COMMIT, QUEUE_EVENTS, type Actor } from '../../src/actors/actor.js';
import { Checkpoints } from '../../src/actors/checkpoints.js';
import { RegistryStateProjection } from '../../src/projections/registry-state.js';
import { makeTempDir } from '../helpers/registry.js';

const ctx = { identity: 'anonymous' };
const silent = pino({ level: 'silent' });
const blob = (n: number): EventBody => ({ type: 'BlobPushed', repo: 'a', digest: `sha256:${n.toString(16).padStart(64, '0')}`, size: n });
const tag = (n: number): EventBody => ({ type: 'TagSet', repo: 'a', tag: `t${n}`, digest: `sha256:${'f'.repeat(64)}` });

/** A store that counts the largest page an actor's catch-up read. */
class CountingStore extends EventStore {
  largestRead = 0;
  override *read(filter: EventFilter = {}): Generator<StoredEvent> {
    let n = 0;
    for (const event of super.read(filter)) {
      yield event;
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

/** Records the events it acts on; `slow` makes each take a turn of the timers. */
class Recorder implements Actor {
  readonly name = 'recorder';
  readonly seen: number[] = [];
  constructor(
    readonly handles: Actor['handles'],
    private readonly slow = false,
  ) {}
  async handle(event: StoredEvent): Promise<void> {
    if (this.slow) await new Promise((resolve) => setTimeout(resolve, 0));
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
    const runner = new ActorRunner(first, store, checkpoints, silent);
    runner.start();
    // Ignored events, one the actor acts on, then fewer ignored ones than the lazy bound.
    await appendMany(store, Array.from({ length: 30 }, (_, i) => blob(i + 1)));
    await store.append([tag(1)], ctx);
    await appendMany(store, Array.from({ length: 20 }, (_, i) => blob(i + 100)));
    await runner.caughtUp(51);
    assert.deepEqual(first.seen, [31]);
    assert.ok(IGNORED_EVENTS_PER_COMMIT > 20);
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
});
