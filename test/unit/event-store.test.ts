import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { pino } from 'pino';
import { openDatabase } from '../../src/events/database.js';
import { EventStore } from '../../src/events/store.js';
import type { StoredEvent } from '../../src/events/types.js';
import { ActorRunner, type Actor, type RetryPolicy } from '../../src/actors/actor.js';
import { Checkpoints } from '../../src/actors/checkpoints.js';
import { RegistryStateProjection } from '../../src/projections/registry-state.js';
import { makeTempDir } from '../helpers/registry.js';

const d = (c: string): string => `sha256:${c.repeat(64)}`;
const ctx = { identity: 'anonymous', client: '127.0.0.1', requestId: 'req-1' };
const silent = pino({ level: 'silent' });

function openStore(file: string): EventStore {
  return new EventStore(openDatabase(file), [new RegistryStateProjection()]);
}

/** Records the events it handled; fails an event's first attempts as `failures` (seq → count) says. */
class RecordingActor implements Actor {
  readonly name = 'recorder';
  readonly handles = ['BlobPushed'] as const;
  readonly seen: number[] = [];
  readonly attempts: number[] = [];
  constructor(private readonly failures = new Map<number, number>()) {}
  async handle(event: StoredEvent): Promise<void> {
    // Counted when called: a call in flight at stop() is one the runner made before it.
    this.attempts.push(event.seq);
    await new Promise((r) => setTimeout(r, 1));
    const left = this.failures.get(event.seq) ?? 0;
    if (left > 0) {
      this.failures.set(event.seq, left - 1);
      throw new Error(`refusing ${event.seq}`);
    }
    this.seen.push(event.seq);
  }
}

/** The runner as the registry builds it: checkpoints through a second, non-fsyncing connection. */
function runnerFor(actor: Actor, store: EventStore, file: string): { runner: ActorRunner; checkpoints: Checkpoints } {
  const checkpoints = new Checkpoints(openDatabase(file, { synchronous: 'NORMAL' }));
  return { runner: new ActorRunner(actor, store, checkpoints, silent, FAST_RETRY), checkpoints };
}
const FAST_RETRY: RetryPolicy = { firstDelayMs: 5, maxDelayMs: 20, errorAtAttempt: 3 };

describe('event store', () => {
  it('appends with sequence numbers and reads back every field, filtered', async () => {
    const store = openStore(path.join(makeTempDir(), 'events.db'));
    const stored = await store.append(
      [
        { type: 'BlobPushed', repo: 'a', digest: d('1'), size: 3 },
        { type: 'TagSet', repo: 'b', tag: 'v1', digest: d('2'), previous: d('3') },
      ],
      ctx,
    );
    assert.deepEqual(stored.map((e) => e.seq), [1, 2]);
    const all = [...store.read()];
    assert.equal(all.length, 2);
    const tag = all[1];
    assert.ok(tag && tag.type === 'TagSet');
    assert.equal(tag.tag, 'v1');
    assert.equal(tag.previous, d('3'));
    assert.equal(tag.identity, 'anonymous');
    assert.equal(tag.client, '127.0.0.1');
    assert.equal(tag.requestId, 'req-1');
    assert.equal(tag.version, 1);
    assert.ok(!Number.isNaN(Date.parse(tag.time)));
    assert.deepEqual([...store.read({ repo: 'a' })].map((e) => e.seq), [1]);
    assert.deepEqual([...store.read({ type: 'TagSet' })].map((e) => e.seq), [2]);
    assert.deepEqual([...store.read({ afterSeq: 1 })].map((e) => e.seq), [2]);
    store.db.close();
  });

  it('publishes only committed events, after their transaction', async () => {
    const store = openStore(path.join(makeTempDir(), 'events.db'));
    const published: number[] = [];
    store.events$.subscribe((e) => published.push(e.seq));
    await assert.rejects(store.append([{ type: 'BlobPushed', repo: 'a', digest: d('1'), size: 1 }], ctx, { precondition: () => { throw new Error('x'); } }));
    await store.append([{ type: 'BlobPushed', repo: 'a', digest: d('1'), size: 1 }], ctx);
    assert.deepEqual(published, [1]);
    store.db.close();
  });

  it('commits the appends of one turn in one transaction and one fsync; a failing one fails alone', async () => {
    const store = openStore(path.join(makeTempDir(), 'events.db'));
    const published: number[] = [];
    store.events$.subscribe((e) => published.push(e.seq));
    const syncsBefore = store.syncs;
    const appends = Array.from({ length: 20 }, (_, i) =>
      store.append([{ type: 'BlobPushed', repo: 'a', digest: d((i % 16).toString(16)), size: i }], ctx, {
        precondition: () => {
          if (i === 6) throw new Error('refused');
        },
      }),
    );
    const outcomes = await Promise.allSettled(appends);
    assert.equal(store.syncs - syncsBefore, 1, 'one fsync of the log for the whole group');
    assert.equal(outcomes[6]?.status, 'rejected');
    const seqs = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? outcome.value.map((e) => e.seq) : []));
    assert.deepEqual(seqs, Array.from({ length: 19 }, (_, i) => i + 1), 'arrival order, no gap where the refused one was');
    assert.deepEqual(published, seqs);
    assert.equal(store.head(), 19);
    store.complete();
    store.db.close();
  });
});

describe('actor runner', () => {
  it('retries a failing event until it succeeds, in order, and resumes from its checkpoint after a restart', async () => {
    const file = path.join(makeTempDir(), 'events.db');
    let store = openStore(file);
    const first = new RecordingActor(new Map([[2, 3]]));
    let { runner, checkpoints } = runnerFor(first, store, file);
    runner.start();
    for (const c of ['1', '2', '3']) await store.append([{ type: 'BlobPushed', repo: 'a', digest: d(c), size: 1 }], ctx);
    await store.append([{ type: 'TagSet', repo: 'a', tag: 't', digest: d('1') }], ctx);
    await runner.caughtUp(4);
    assert.deepEqual(first.attempts, [1, 2, 2, 2, 2, 3], 'event 2 failed three times and was retried; 3 waited behind it');
    assert.deepEqual(first.seen, [1, 2, 3]);
    assert.equal(runner.stalledForMs(), 0, 'no longer failing');
    // A batch of ignored events moves the stored checkpoint lazily (actor.ts), at the latest at
    // stop: event 4 alone in its batch (no longer sharing one with 3) was stored only then.
    runner.stop();
    assert.equal(checkpoints.get('recorder'), 4, 'unhandled types move the checkpoint too');
    checkpoints.db.close();

    // Events appended while the actor is down are replayed on the next start, and only those.
    await store.append([{ type: 'BlobPushed', repo: 'a', digest: d('5'), size: 1 }], ctx);
    store.db.close();
    store = openStore(file);
    const second = new RecordingActor();
    ({ runner, checkpoints } = runnerFor(second, store, file));
    runner.start();
    await store.append([{ type: 'BlobPushed', repo: 'a', digest: d('6'), size: 1 }], ctx);
    await runner.caughtUp(6);
    assert.deepEqual(second.seen, [5, 6]);
    runner.stop();
    checkpoints.db.close();
    store.db.close();
  });

  it('stopped while an event fails, leaves the checkpoint before it; the next start handles it', async () => {
    const file = path.join(makeTempDir(), 'events.db');
    let store = openStore(file);
    const failing = new RecordingActor(new Map([[2, Number.POSITIVE_INFINITY]]));
    let { runner, checkpoints } = runnerFor(failing, store, file);
    runner.start();
    for (const c of ['1', '2', '3']) await store.append([{ type: 'BlobPushed', repo: 'a', digest: d(c), size: 1 }], ctx);
    await runner.caughtUpOrFailing(3);
    assert.ok(failing.attempts.includes(2), 'event 2 was tried');
    assert.deepEqual(failing.seen, [1], 'event 3 waits behind the failing one');
    assert.equal(runner.checkpoint, 1);
    runner.stop();
    const attempts = failing.attempts.length;
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(failing.attempts.length, attempts, 'no retry after stop');
    assert.equal(checkpoints.get('recorder'), 1, 'the checkpoint stays before the failing event');
    checkpoints.db.close();
    store.db.close();

    store = openStore(file);
    const again = new RecordingActor();
    ({ runner, checkpoints } = runnerFor(again, store, file));
    runner.start();
    await runner.caughtUp(3);
    assert.deepEqual(again.seen, [2, 3]);
    runner.stop();
    checkpoints.db.close();
    store.db.close();
  });
});
