import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { pino } from 'pino';
import { openDatabase } from '../../src/events/database.js';
import { EventStore } from '../../src/events/store.js';
import type { StoredEvent } from '../../src/events/types.js';
import { ActorRunner, type Actor } from '../../src/actors/actor.js';
import { RegistryStateProjection } from '../../src/projections/registry-state.js';
import { makeTempDir } from '../helpers/registry.js';

const d = (c: string): string => `sha256:${c.repeat(64)}`;
const ctx = { identity: 'anonymous', client: '127.0.0.1', requestId: 'req-1' };
const silent = pino({ level: 'silent' });

function openStore(file: string): EventStore {
  return new EventStore(openDatabase(file), [new RegistryStateProjection()]);
}

class RecordingActor implements Actor {
  readonly name = 'recorder';
  readonly handles = ['BlobPushed'] as const;
  readonly seen: number[] = [];
  constructor(private readonly failOn = new Set<number>()) {}
  async handle(event: StoredEvent): Promise<void> {
    await new Promise((r) => setTimeout(r, 1));
    if (this.failOn.has(event.seq)) throw new Error(`refusing ${event.seq}`);
    this.seen.push(event.seq);
  }
}

describe('event store', () => {
  it('appends with sequence numbers and reads back every field, filtered', () => {
    const store = openStore(path.join(makeTempDir(), 'events.db'));
    const stored = store.append(
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

  it('publishes only committed events, after their transaction', () => {
    const store = openStore(path.join(makeTempDir(), 'events.db'));
    const published: number[] = [];
    store.events$.subscribe((e) => published.push(e.seq));
    assert.throws(() => store.append([{ type: 'BlobPushed', repo: 'a', digest: d('1'), size: 1 }], ctx, { precondition: () => { throw new Error('x'); } }));
    store.append([{ type: 'BlobPushed', repo: 'a', digest: d('1'), size: 1 }], ctx);
    assert.deepEqual(published, [1]);
    store.db.close();
  });
});

describe('actor runner', () => {
  it('keeps going after a failing event, and resumes from its checkpoint after a restart', async () => {
    const file = path.join(makeTempDir(), 'events.db');
    let store = openStore(file);
    const first = new RecordingActor(new Set([2]));
    let runner = new ActorRunner(first, store, silent);
    runner.start();
    for (const c of ['1', '2', '3']) store.append([{ type: 'BlobPushed', repo: 'a', digest: d(c), size: 1 }], ctx);
    store.append([{ type: 'TagSet', repo: 'a', tag: 't', digest: d('1') }], ctx);
    await runner.caughtUp(4);
    assert.deepEqual(first.seen, [1, 3], 'event 2 failed, 3 still handled');
    assert.equal(store.getCheckpoint('recorder'), 4, 'unhandled types move the checkpoint too');
    runner.stop();

    // Events appended while the actor is down are replayed on the next start, and only those.
    store.append([{ type: 'BlobPushed', repo: 'a', digest: d('5'), size: 1 }], ctx);
    store.db.close();
    store = openStore(file);
    const second = new RecordingActor();
    runner = new ActorRunner(second, store, silent);
    runner.start();
    store.append([{ type: 'BlobPushed', repo: 'a', digest: d('6'), size: 1 }], ctx);
    await runner.caughtUp(6);
    assert.deepEqual(second.seen, [5, 6]);
    runner.stop();
    store.db.close();
  });
});
