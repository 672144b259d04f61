// extensions.events: one sink and one actor runner per configured sink, started together and
// stopped together. At shutdown each sink gets a few seconds to take what is left; what it has
// not taken by then stays behind its checkpoint and is delivered after the next start.
import type { Logger } from 'pino';
import type { EventsConfig } from '../../config/types.js';
import type { Db } from '../../events/database.js';
import type { EventStore } from '../../events/store.js';
import type { RegistryStateQueries } from '../../projections/registry-state.js';
import type { Registry } from '../../registry/registry.js';
import { ActorRunner } from '../actor.js';
import type { Checkpoints } from '../checkpoints.js';
import { DEFAULT_SOURCE, DEFAULT_TYPE_PREFIX } from './cloud-event.js';
import { EventSinkActor } from './sink-actor.js';
import { createSink, type EventSink } from './sink.js';

const SHUTDOWN_GRACE_MS = 5_000;

export interface EventSinks {
  readonly runners: readonly ActorRunner[];
  stop(): Promise<void>;
}

export interface EventSinksDeps {
  db: Db;
  store: EventStore;
  checkpoints: Checkpoints;
  logger: Logger;
  queries: RegistryStateQueries;
  registry: Registry;
}

export function startEventSinks(config: EventsConfig, deps: EventSinksDeps): EventSinks {
  const { db, store, checkpoints, logger, queries, registry } = deps;
  const sinks: EventSink[] = [];
  const runners: ActorRunner[] = [];
  const names = new Set<string>();
  for (const sinkConfig of config.sinks ?? []) {
    const sink = createSink(sinkConfig);
    // The checkpoint is keyed by what the sink is, so it survives reordering the list.
    let name = `events ${sink.description}`;
    for (let n = 2; names.has(name); n++) name = `events ${sink.description} #${n}`;
    names.add(name);
    const actor = new EventSinkActor(name, sink, {
      db,
      store,
      checkpoints,
      logger,
      source: config.source || DEFAULT_SOURCE,
      typePrefix: config.typePrefix || DEFAULT_TYPE_PREFIX,
      repositories: () => queries.allRepositories(),
      manifest: async (repo, digest) => {
        try {
          return (await registry.manifest(repo, digest)).content;
        } catch {
          return undefined;
        }
      },
    });
    sinks.push(sink);
    runners.push(new ActorRunner(actor, store, checkpoints, logger));
    logger.info({ sink: sink.description }, 'events sink started');
  }
  for (const runner of runners) runner.start();
  return {
    runners,
    stop: async () => {
      const head = store.head();
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_GRACE_MS)));
      await Promise.race([Promise.all(runners.map((runner) => runner.caughtUpOrFailing(head))), grace]);
      clearTimeout(timer);
      for (const runner of runners) runner.stop();
      await Promise.all(sinks.map((sink) => sink.close()));
    },
  };
}
