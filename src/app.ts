// The composition root: builds the parts in order and hands each only what it needs. The CLI's
// `serve` and the tests both start the registry through startRegistry().
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ActorRunner } from './actors/actor.js';
import { AuditWriter } from './actors/audit-writer.js';
import { Checkpoints } from './actors/checkpoints.js';
import { GarbageCollector } from './actors/garbage-collector.js';
import { IndexJsonWriter } from './actors/index-json-writer.js';
import type { Config } from './config/types.js';
import { openDatabase, type Db } from './events/database.js';
import { EventStore } from './events/store.js';
import { buildHttpApp } from './http/app.js';
import { createLogger, reopenLogOutput } from './logging.js';
import { createMetrics, Health, metricsPath, type Metrics } from './monitoring.js';
import { createProjections } from './projections/index.js';
import { RegistryStateQueries } from './projections/registry-state.js';
import { RepositoryCollector } from './registry/collector.js';
import { scrubIntervalMs, startScrubSchedule, type ScrubSchedule } from './registry/scrub-schedule.js';
import { DedupePass } from './registry/dedupe-pass.js';
import { findRepositories, importStorageOnce } from './registry/import.js';
import { Registry } from './registry/registry.js';
import { eventLogFile } from './storage/layout.js';
import { storageRootsFromConfig, type StorageRootOptions } from './storage/roots.js';
import type { OnDemandOptions } from './sync/on-demand.js';
import { SyncService } from './sync/sync-service.js';
import { syncSection, syncSettings } from './sync/sync-settings.js';
import { HashPool } from './workers/pool.js';

export interface RunningRegistry {
  /** Base URL, e.g. http://127.0.0.1:5000 */
  url: string;
  port: number;
  rootDirectory: string;
  store: EventStore;
  /** The commands and queries HTTP calls, for tools and tests that drive the registry in-process. */
  registry: Registry;
  queries: RegistryStateQueries;
  logger: Logger;
  /** Resolves when dedupe's background pass over existing content has finished. */
  dedupeFinished(): Promise<void>;
  /** Sync from upstream registries, when `extensions.sync` (or `sync`) is on. */
  sync?: SyncService;
  /** Resolves when every actor has handled every event appended so far. */
  actorsCaughtUp(): Promise<void>;
  /** SIGHUP: reopens the audit log and the `log.output` file by name, after a rotation moved them. */
  reopenLogFiles(): Promise<void>;
  /** Stops accepting requests, drains in-flight ones, lets actors finish, closes the log. */
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /** Passed to the storage roots: wraps each storage driver (fault injection in tests). */
  wrapDriver?: StorageRootOptions['wrapDriver'];
  /** Bounds of on-demand sync's upstream checks (tests shorten them). */
  syncOnDemand?: OnDemandOptions;
}

export function openEventStore(db: Db): { store: EventStore; queries: RegistryStateQueries } {
  const store = new EventStore(db, createProjections());
  return { store, queries: new RegistryStateQueries(db) };
}

export async function startRegistry(config: Config, options: StartOptions = {}): Promise<RunningRegistry> {
  const logger = options.logger ?? createLogger(config.log);
  const roots = storageRootsFromConfig(config.storage, options.wrapDriver ? { wrapDriver: options.wrapDriver } : {});
  const rootDirectory = roots.defaultRoot.rootDirectory;
  await roots.clearTemporaryFiles();
  const db = openDatabase(eventLogFile(rootDirectory));
  const { store, queries } = openEventStore(db);
  // The actors' own connection: their checkpoints and tables commit without an fsync (actor.ts).
  const actorDb = openDatabase(eventLogFile(rootDirectory), { synchronous: 'NORMAL' });
  const checkpoints = new Checkpoints(actorDb);
  const hashPool = new HashPool();
  const runners: ActorRunner[] = [];
  const health = new Health(runners);
  const metricsAt = metricsPath(config);
  let metrics: Metrics | undefined;
  const auditWriter = config.log?.audit ? new AuditWriter(path.resolve(config.log.audit), store, checkpoints, logger) : undefined;
  let app: ReturnType<typeof buildHttpApp> | undefined;
  let registry: Registry | undefined;
  let garbageCollector: GarbageCollector | undefined;
  let dedupePass: DedupePass | undefined;
  let scrubSchedule: ScrubSchedule | undefined;
  let sync: SyncService | undefined;

  const shutdown = async (): Promise<void> => {
    health.markClosing();
    await app?.close();
    await sync?.stop();
    await garbageCollector?.stop();
    await dedupePass?.stop();
    await scrubSchedule?.stop();
    const head = store.head();
    await Promise.all(runners.map((runner) => runner.caughtUpOrFailing(head)));
    for (const runner of runners) runner.stop();
    try {
      metrics?.actor.stop();
    } catch (err) {
      logger.error({ err }, 'failed to store the download counts');
    }
    await auditWriter?.close();
    store.complete();
    await hashPool.close();
    roots.close();
    actorDb.close();
    db.close();
  };

  try {
    await importStorageOnce(roots, store, hashPool, logger);
    registry = new Registry({
      logger,
      roots,
      store,
      queries,
      hashPool,
      onUploadStarted: (repo) => garbageCollector?.schedule(repo, Date.now() + roots.for(repo).gcDelayMs),
      pullThrough: () => sync?.onDemand,
    });
    runners.push(new ActorRunner(new IndexJsonWriter(queries, roots), store, checkpoints, logger));
    // A read-only registry writes nothing: no GC, no dedupe pass (another instance may own the storage).
    const readOnly = config.http.ReadOnly === true;
    if (!readOnly && roots.roots.some((root) => root.gc)) {
      garbageCollector = new GarbageCollector(new RepositoryCollector(registry, queries, store, roots), roots, logger, (outcome) =>
        metrics?.observeGcRun(outcome.failed, outcome.seconds, outcome.removed ? { ...outcome.removed } : undefined),
      );
      runners.push(new ActorRunner(garbageCollector, store, checkpoints, logger));
    }
    if (metricsAt !== undefined) {
      metrics = createMetrics(config, metricsAt, actorDb, store, runners);
      metrics.actor.startFlushing((err) => logger.error({ err }, 'failed to store the download counts'));
      runners.push(new ActorRunner(metrics.actor, store, checkpoints, logger));
    }
    if (auditWriter) {
      await auditWriter.open();
      runners.push(new ActorRunner(auditWriter, store, checkpoints, logger));
    }
    for (const runner of runners) runner.start();
    if (garbageCollector) {
      // Every repository, and every directory that looks like one, is swept once after start:
      // that finds what a crash left (orphans, sessions) where no new event will point.
      const startedAt = Date.now();
      for (const repo of queries.allRepositories()) garbageCollector.schedule(repo, startedAt);
      for (const root of roots.roots) {
        for (const repo of await findRepositories(root.driver, '')) if (roots.owns(root, repo)) garbageCollector.schedule(repo, startedAt);
      }
      garbageCollector.start();
    }
    if (!readOnly) {
      dedupePass = new DedupePass(registry, queries, store, roots, logger);
      dedupePass.start();
    }
    const scrub = config.extensions?.scrub;
    if (scrub?.enable === true) {
      const { intervalMs, raised } = scrubIntervalMs(scrub.interval);
      if (raised) logger.warn({ interval: scrub.interval, intervalMs }, 'scrub interval is shorter than 2h, using 2h');
      scrubSchedule = startScrubSchedule({ roots, queries, hashPool, intervalMs, logger });
    }
    const syncConfig = syncSection(config);
    if (syncConfig !== undefined && readOnly) logger.warn('sync is off: the registry is read-only (http.ReadOnly)');
    if (syncConfig !== undefined && !readOnly) {
      sync = new SyncService(syncSettings(syncConfig), {
        registry,
        queries,
        logger,
        ...(metrics ? { promRegistry: metrics.promRegistry } : {}),
        ...(options.syncOnDemand ? { onDemand: options.syncOnDemand } : {}),
      });
      sync.start();
    }
    const headAtStart = store.head();
    health.trackStartup(Promise.all(runners.map((runner) => runner.caughtUp(headAtStart))), logger);

    const tls = config.http.tls;
    app = buildHttpApp({
      registry,
      logger,
      readOnly,
      monitoring: { probes: health, ...(metrics ? { metrics: metrics.http } : {}) },
      ...(sync?.onDemand ? { mirrorName: sync.onDemand.mirrorName.bind(sync.onDemand) } : {}),
      ...(tls?.cert && tls.key ? { https: { cert: fs.readFileSync(tls.cert), key: fs.readFileSync(tls.key) } } : {}),
    });
    await app.listen({ host: config.http.address, port: Number(config.http.port), listenTextResolver: () => 'http server listening' });
  } catch (err) {
    await shutdown().catch(() => undefined);
    throw err;
  }

  const address = app.server.address() as AddressInfo;
  const scheme = config.http.tls?.cert ? 'https' : 'http';
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  logger.info({ address: address.address, port: address.port, rootDirectory }, 'registry listening');
  return {
    url: `${scheme}://${host}:${address.port}`,
    port: address.port,
    rootDirectory,
    store,
    registry,
    queries,
    logger,
    ...(sync ? { sync } : {}),
    dedupeFinished: async () => {
      await dedupePass?.finished();
    },
    actorsCaughtUp: async () => {
      const head = store.head();
      await Promise.all(runners.map((runner) => runner.caughtUp(head)));
    },
    reopenLogFiles: async () => {
      reopenLogOutput(logger);
      await auditWriter?.reopen();
    },
    close: shutdown,
  };
}
