// /livez, /startupz and /readyz through start-up: not ready while an actor is behind the log head
// found at start, ready once every actor caught up, not ready again while closing; not ready while
// an actor has been failing past the stall bound, ready again once it recovers.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import Fastify from 'fastify';
import { pino } from 'pino';
import { ActorRunner, type Actor } from '../../src/actors/actor.js';
import { Checkpoints } from '../../src/actors/checkpoints.js';
import { PrometheusMetrics } from '../../src/actors/prometheus.js';
import { EventStore } from '../../src/events/store.js';
import type { EventType, StoredEvent } from '../../src/events/types.js';
import { registerMonitoringRoutes } from '../../src/http/monitoring-routes.js';
import { Health } from '../../src/monitoring.js';
import { RegistryStateProjection } from '../../src/projections/registry-state.js';
import { eventually } from '../helpers/http.js';
import { makeImage, pushImage } from '../helpers/oci.js';
import { byLabel, parsePrometheusText, scrape } from '../helpers/prometheus.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const d = (c: string): string => `sha256:${c.repeat(64)}`;

/** An actor that handles nothing until the test opens its gate. */
class GatedActor implements Actor {
  readonly name = 'gated';
  readonly handles: readonly EventType[] = ['BlobPushed'];
  private open!: () => void;
  private readonly gate = new Promise<void>((resolve) => (this.open = resolve));
  async handle(_event: StoredEvent): Promise<void> {
    await this.gate;
  }
  release(): void {
    this.open();
  }
}

const running: TestRegistry[] = [];
after(async () => {
  for (const registry of running.splice(0)) await registry.stop();
});

describe('health', () => {
  it('answers not started and not ready until every actor reached the log head found at start', async () => {
    const db = new Database(':memory:');
    const store = new EventStore(db, [new RegistryStateProjection()]);
    await store.append(
      [
        { type: 'BlobPushed', repo: 'a', digest: d('1'), size: 1 },
        { type: 'BlobPushed', repo: 'a', digest: d('2'), size: 2 },
      ],
      { identity: 'anonymous' },
    );
    const actor = new GatedActor();
    const runner = new ActorRunner(actor, store, new Checkpoints(db), pino({ level: 'silent' }));
    runner.start();
    const health = new Health();
    const head = store.head();
    health.trackStartup(runner.caughtUp(head), pino({ level: 'silent' }));
    const metrics = new PrometheusMetrics(
      { commit: '', binaryType: 'test', goVersion: process.version, version: '1.1.0' },
      { length: () => store.head(), head: () => store.head(), checkpoints: () => [{ actor: runner.name, checkpoint: runner.checkpoint }] },
    );

    const app = Fastify();
    registerMonitoringRoutes(app, { probes: health });
    const status = async (path: string): Promise<number> => (await app.inject({ method: 'GET', url: path })).statusCode;
    try {
      assert.equal(await status('/livez'), 200);
      assert.equal(await status('/startupz'), 503);
      assert.equal(await status('/readyz'), 503);
      const behind = parsePrometheusText(await metrics.render());
      assert.deepEqual(byLabel(behind, 'zot_actor_lag_events', 'actor'), { gated: 2 });

      actor.release();
      await runner.caughtUp(head);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(await status('/startupz'), 200);
      assert.equal(await status('/readyz'), 200);
      assert.equal(await status('/livez'), 200);
      assert.deepEqual(byLabel(parsePrometheusText(await metrics.render()), 'zot_actor_lag_events', 'actor'), { gated: 0 });

      // A registry shutting down stops being ready; it did start.
      health.markClosing();
      assert.equal(await status('/readyz'), 503);
      assert.equal(await status('/startupz'), 200);
    } finally {
      runner.stop();
      await app.close();
      db.close();
    }
  });

  it('answers not ready while an actor is stalled past the bound, and ready again once it recovers; /livez stays 200', async () => {
    const db = new Database(':memory:');
    const store = new EventStore(db, [new RegistryStateProjection()]);
    let failing = true;
    const flaky: Actor = {
      name: 'flaky',
      handles: ['BlobPushed'],
      handle: async () => {
        if (failing) throw new Error('injected failure');
      },
    };
    const runner = new ActorRunner(flaky, store, new Checkpoints(db), pino({ level: 'silent' }), { firstDelayMs: 5, maxDelayMs: 20, errorAtAttempt: 3 });
    runner.start();
    const health = new Health([runner], 100);
    health.trackStartup(runner.caughtUp(0), pino({ level: 'silent' }));
    const app = Fastify();
    registerMonitoringRoutes(app, { probes: health });
    const status = async (path: string): Promise<number> => (await app.inject({ method: 'GET', url: path })).statusCode;
    try {
      await eventually(async () => (await status('/readyz')) === 200, 'ready after start-up');
      await store.append([{ type: 'BlobPushed', repo: 'a', digest: d('1'), size: 1 }], { identity: 'anonymous' });
      await eventually(async () => (await status('/readyz')) === 503, 'not ready once stalled past the bound');
      assert.ok(runner.stalledForMs() > 100);
      assert.equal(runner.checkpoint, 0);
      assert.equal(await status('/livez'), 200);
      assert.equal(await status('/startupz'), 200);
      failing = false;
      await runner.caughtUp(1);
      assert.equal(runner.stalledForMs(), 0);
      assert.equal(await status('/readyz'), 200);
    } finally {
      runner.stop();
      await app.close();
      db.close();
    }
  });

  it('answers 200 on all three probes once a registry has started, with metrics off as well', async () => {
    const registry = await startTestRegistry();
    running.push(registry);
    for (const path of ['/livez', '/startupz', '/readyz']) {
      await eventually(async () => (await fetch(`${registry.url}${path}`)).status === 200, `${path} to answer 200`);
      const res = await fetch(`${registry.url}${path}`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), '');
    }
  });

  it('never says ready while an actor is behind the log head found at start', async () => {
    // A log the metrics actor has never read: it replays all of it when metrics are turned on.
    const first = await startTestRegistry();
    for (let i = 0; i < 20; i++) assert.equal((await pushImage(first.url, `health/r${i % 4}`, `t${i}`, makeImage({ layers: 2 }))).status, 201);
    await first.stop();

    const registry = await startTestRegistry({ root: first.root, extensions: { metrics: { enable: true } } });
    running.push(registry);
    const head = registry.running.store.head();
    let sawReady = false;
    await eventually(async () => {
      const ready = (await fetch(`${registry.url}/readyz`)).status;
      assert.ok(ready === 200 || ready === 503, `/readyz answered ${ready}`);
      if (ready !== 200) return false;
      // Ready: no actor is behind the head it had to reach (nothing was appended since).
      const lag = byLabel(await scrape(`${registry.url}/metrics`), 'zot_actor_lag_events', 'actor');
      assert.deepEqual(lag, { 'garbage-collector': 0, 'index-json-writer': 0, metrics: 0 });
      assert.equal(registry.running.store.head(), head);
      sawReady = true;
      return true;
    }, '/readyz to answer 200');
    assert.ok(sawReady);
    assert.equal((await fetch(`${registry.url}/startupz`)).status, 200);
  });
});
