// The composition root: builds the parts in order and hands each only what it needs. The CLI's
// `serve` and the tests both start the registry through startRegistry().
//
// A read-only registry (http.ReadOnly) serves the root of a writing registry, which may run at
// the same time, and writes nothing to that root: it clears no temporary files (they may be the
// writer's uploads in flight), imports nothing, opens the event log on a read-only connection,
// appends no event (refused writes included), and runs no actor that writes: no index.json
// writer, no GC, no dedupe pass, no audit writer (it records no event, so it has no line to
// write: the writer's audit log holds every action on the root). Its metrics actor keeps its
// figures in memory, replayed from the whole log at start; a LogFollower polls the log for what
// the writer appends. Its reads query the writer's projection tables and so stay current.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ActorRunner } from './actors/actor.js';
import { AuditWriter } from './actors/audit-writer.js';
import { Checkpoints } from './actors/checkpoints.js';
import type { EventSinks } from './actors/cloudevents/sinks.js';
import { clientCertificateRequired, openAuth } from './auth/index.js';
import { GarbageCollector } from './actors/garbage-collector.js';
import { IndexJsonWriter } from './actors/index-json-writer.js';
import type { Config } from './config/types.js';
import { openDatabase, openMemoryDatabase, type Db } from './events/database.js';
import { LogFollower } from './events/log-follower.js';
import { EventStore, migrateEventTables, type EventStoreOptions } from './events/store.js';
import { buildHttpApp } from './http/app.js';
import { httpOptionsFromConfig } from './http/options/index.js';
import { refuseUnverifiedClients, reloadTlsOnChange, tlsServerOptions, type TlsReloader } from './http/tls.js';
import { createLogger, reopenLogOutput } from './logging.js';
import { createMetrics, Health, metricsPath, type Metrics } from './monitoring.js';
import { createProjections } from './projections/index.js';
import { RegistryStateQueries } from './projections/registry-state.js';
import { RepositoryCollector } from './registry/collector.js';
import { PullRecorder } from './registry/pull-recorder.js';
import { Retention } from './registry/retention.js';
import { scrubIntervalMs, startScrubSchedule, type ScrubSchedule } from './registry/scrub-schedule.js';
import { DedupePass } from './registry/dedupe-pass.js';
import { findRepositories, importStorageOnce } from './registry/import.js';
import { RefusalRecorder } from './registry/refusals.js';
import { RepositoryQuota } from './registry/repository-quota.js';
import { Registry } from './registry/registry.js';
import { UploadExpiry } from './registry/upload-expiry.js';
import type { UploadLimits } from './registry/upload-limits.js';
import { eventLogFile } from './storage/layout.js';
import { ensureDirectorySync } from './storage/directories.js';
import { openStorageRoots, type StorageRootOptions, type StorageRoots } from './storage/roots.js';
import type { OnDemandOptions } from './sync/on-demand.js';
import type { SyncService } from './sync/sync-service.js';
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
  /** Resolves when every actor has handled every event appended so far, its checkpoint stored. */
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
  /** How long refused writes of one key are counted before their event (10 s; tests shorten it). */
  refusalIntervalMs?: number;
  /** Upload session caps and idle expiry other than upload-limits.ts's defaults (tests). */
  uploadLimits?: Partial<UploadLimits>;
  /** Bounds of on-demand sync's upstream checks (tests shorten them). */
  syncOnDemand?: OnDemandOptions;
  /** The hashing pool, made here otherwise (tests hold its readiness); the registry closes it. */
  hashPool?: HashPool;
}

/** Schedules a GC sweep of every directory that looks like a repository, recorded or not. */
async function scheduleUnrecordedRepositories(garbageCollector: GarbageCollector, roots: StorageRoots, logger: Logger): Promise<void> {
  const startedAt = Date.now();
  try {
    for (const root of roots.roots) {
      for (const repo of await findRepositories(root.driver, '')) if (roots.owns(root, repo)) garbageCollector.schedule(repo, startedAt);
    }
  } catch (err) {
    logger.error({ err }, 'failed to look for repositories in storage to sweep');
  }
}

export function openEventStore(db: Db, options: EventStoreOptions = {}): { store: EventStore; queries: RegistryStateQueries } {
  const store = new EventStore(db, createProjections(), options);
  return { store, queries: new RegistryStateQueries(db) };
}

/** The event log of the default root; read-only, it must exist (a writing registry made it). */
function openEventLog(rootDirectory: string, readOnly: boolean): Db {
  const file = eventLogFile(rootDirectory);
  if (!readOnly) {
    // The log's directory durably in the root: the store syncs the log's files and their directory.
    ensureDirectorySync(path.dirname(file));
    // OFF: a new log's schema costs no fsync before the registry answers; the store's first sync
    // covers it (src/events/store.ts).
    return openDatabase(file, { synchronous: 'OFF' });
  }
  if (!fs.existsSync(file)) {
    throw new Error(
      `no event log at ${file}: a registry with http.ReadOnly serves the log of a writing registry on the same root; start one without http.ReadOnly first (it imports a zot root)`,
    );
  }
  return openDatabase(file, { readonly: true });
}

export async function startRegistry(config: Config, options: StartOptions = {}): Promise<RunningRegistry> {
  const logger = options.logger ?? createLogger(config.log);
  // First: a method that cannot start (a bad htpasswd file) stops the start before anything opens.
  const auth = await openAuth(config, logger);
  const readOnly = config.http.ReadOnly === true;
  const roots = await openStorageRoots(config.storage, {
    ...(options.wrapDriver ? { wrapDriver: options.wrapDriver } : {}),
    createDirectories: !readOnly,
  });
  const rootDirectory = roots.defaultRoot.rootDirectory;
  let db: Db;
  try {
    db = openEventLog(rootDirectory, readOnly);
  } catch (err) {
    roots.close();
    throw err;
  }
  // Only a writer clears them, and only before its first write; the lone writer of the root is
  // the only one whose files they can be.
  if (!readOnly) await roots.clearTemporaryFiles();
  const { store, queries } = openEventStore(db, {
    readOnly,
    onSyncFailure: (err) =>
      logger.error({ err, eventLog: eventLogFile(rootDirectory) }, 'failed to sync the event log to disk: every write is refused until the registry restarts'),
  });
  // The actors' own connection: their checkpoints and tables commit without an fsync (actor.ts).
  // A read-only registry's actors keep theirs in memory: it writes nothing to the shared log.
  const actorDb = readOnly ? openMemoryDatabase() : openDatabase(eventLogFile(rootDirectory), { synchronous: 'NORMAL' });
  if (readOnly) migrateEventTables(actorDb);
  const checkpoints = new Checkpoints(actorDb);
  const follower = readOnly ? new LogFollower(store, logger) : undefined;
  // Pull times for retention, noted by the HTTP layer. A read-only registry notes none: it appends
  // nothing to the log, so the writer's retention does not see its pulls.
  const pulls = readOnly ? undefined : new PullRecorder(store);
  const hashPool = options.hashPool ?? new HashPool();
  const runners: ActorRunner[] = [];
  const health = new Health(runners, undefined, store);
  const metricsAt = metricsPath(config);
  let metrics: Metrics | undefined;
  const auditWriter = config.log?.audit && !readOnly ? new AuditWriter(path.resolve(config.log.audit), store, checkpoints, logger) : undefined;
  if (config.log?.audit && readOnly) logger.warn({ audit: config.log.audit }, 'audit log not written by a read-only registry: it records no events');
  let app: ReturnType<typeof buildHttpApp> | undefined;
  let registry: Registry | undefined;
  let garbageCollector: GarbageCollector | undefined;
  let dedupePass: DedupePass | undefined;
  let scrubSchedule: ScrubSchedule | undefined;
  // The events sinks' actors, apart from `runners`: a sink that is down stalls its own delivery,
  // never the registry's start-up or readiness.
  let eventSinks: EventSinks | undefined;
  const refusals = readOnly
    ? undefined
    : new RefusalRecorder(store, {
        logger,
        onRefused: (code) => metrics?.observeRefusal(code),
        ...(options.refusalIntervalMs !== undefined ? { intervalMs: options.refusalIntervalMs } : {}),
      });
  let uploadExpiry: UploadExpiry | undefined;
  let tlsReloader: TlsReloader | undefined;
  let sync: SyncService | undefined;
  let repositoryWalk: Promise<void> | undefined;
  let uploadsIndexed: Promise<void> | undefined;

  const shutdown = async (): Promise<void> => {
    health.markClosing();
    tlsReloader?.stop();
    await app?.close();
    await sync?.stop();
    await repositoryWalk;
    await uploadsIndexed;
    await garbageCollector?.stop();
    await uploadExpiry?.stop();
    await registry?.uploads.settle();
    await dedupePass?.stop();
    await scrubSchedule?.stop();
    follower?.stop();
    // After the last request: the refusals counted since their interval began become events.
    try {
      await refusals?.stop();
    } catch (err) {
      logger.error({ err }, 'failed to record refused writes');
    }
    // The pulls noted since the last batch, likewise.
    try {
      await pulls?.stop();
    } catch (err) {
      logger.error({ err }, 'failed to append the pulls');
    }
    // A read-only registry's actors keep nothing that outlives it: there is nothing to finish.
    // The actors follow what the store published: after a failed sync of the log, events it
    // committed are never published, and the shutdown waited for them until the process ended
    // with nothing closed.
    if (!readOnly) {
      const published = store.publishedSeq;
      await Promise.all(runners.map((runner) => runner.caughtUpOrFailing(published)));
    }
    for (const runner of runners) runner.stop();
    await eventSinks?.stop();
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
    await auth.close();
  };

  try {
    if (!readOnly) await importStorageOnce(roots, store, hashPool, logger);
    const maxRepos = config.storage.maxRepos ?? 0;
    const quota = maxRepos > 0 ? new RepositoryQuota(queries, maxRepos) : undefined;
    if (quota) store.addGuard(quota.guard);
    registry = new Registry({
      logger,
      roots,
      store,
      queries,
      hashPool,
      ...(refusals ? { refusals } : {}),
      ...(quota ? { quota } : {}),
      onUploadStarted: (repo) => garbageCollector?.schedule(repo, Date.now() + roots.for(repo).gcDelayMs),
      ...(options.uploadLimits ? { uploadLimits: options.uploadLimits } : {}),
      pullThrough: () => sync?.onDemand,
    });
    if (!readOnly) runners.push(new ActorRunner(new IndexJsonWriter(queries, roots, registry), store, checkpoints, logger));
    if (!readOnly) {
      const restored = await registry.loadUploadSessions();
      if (restored > 0) logger.info({ sessions: restored }, 'restored upload sessions that an interrupted commit had extended');
      // A walk of every repository's directory, which the first answer need not wait for: it goes
      // on while the registry starts and listens, and only requests on upload sessions wait for it.
      uploadsIndexed = registry.indexUploadSessions().catch((err: unknown) =>
        logger.error({ err }, 'failed to index the upload sessions of earlier runs: the caps and the idle expiry miss those not found until the next start'),
      );
      // Idle sessions expire whatever the GC setting; an expiry may leave a repository empty for GC.
      uploadExpiry = new UploadExpiry({
        uploads: registry.uploads,
        store,
        roots,
        limits: registry.uploadLimits,
        logger,
        onExpired: (repo) => garbageCollector?.schedule(repo, Date.now()),
        observe: (expired) => metrics?.observeUploadsExpired(expired),
      });
      uploadExpiry.start();
    }
    pulls?.startFlushing((err) => logger.error({ err }, 'failed to append the pulls'));
    const retention = readOnly ? undefined : new Retention({ storage: config.storage, roots, queries, store, logger, ...(pulls ? { pulls } : {}) });
    if (retention && roots.roots.some((root) => root.gc)) {
      garbageCollector = new GarbageCollector(new RepositoryCollector(registry, queries, store, roots, retention, logger), roots, logger, (outcome) =>
        metrics?.observeGcRun(outcome.failed, outcome.seconds, outcome.removed ? { ...outcome.removed } : undefined),
      );
      runners.push(new ActorRunner(garbageCollector, store, checkpoints, logger));
    }
    if (metricsAt !== undefined) {
      metrics = await createMetrics(config, metricsAt, actorDb, store, () => [...runners, ...(eventSinks?.runners ?? [])]);
      metrics.actor.startFlushing((err) => logger.error({ err }, 'failed to store the download counts'));
      runners.push(new ActorRunner(metrics.actor, store, checkpoints, logger));
    }
    if (auditWriter) {
      await auditWriter.open();
      runners.push(new ActorRunner(auditWriter, store, checkpoints, logger));
    }
    for (const runner of runners) runner.start();
    follower?.start();
    const events = config.extensions?.events;
    if (events?.enable !== false && (events?.sinks?.length ?? 0) > 0) {
      if (readOnly) logger.warn('events not delivered by a read-only registry: the writing registry delivers them');
      else {
        // Loaded only when sinks are configured: the NATS client alone is some fifty modules.
        const { startEventSinks } = await import('./actors/cloudevents/sinks.js');
        eventSinks = startEventSinks(events ?? {}, { db: actorDb, store, checkpoints, logger, queries, registry });
      }
    }
    if (garbageCollector) {
      // Every repository the log knows is swept once after start: that finds what a crash left
      // (orphans, sessions) where no new event will point. Directories that only look like
      // repositories are found by a walk of the storage tree once the registry listens (below).
      const startedAt = Date.now();
      for (const repo of queries.allRepositories()) garbageCollector.schedule(repo, startedAt);
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
      // Loaded only when sync is configured, as are S3, LDAP, bearer tokens and metrics.
      const { SyncService } = await import('./sync/sync-service.js');
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
    // Started: the actors have caught up with the log, and the sessions of earlier runs are indexed.
    health.trackStartup(Promise.all([...runners.map((runner) => runner.caughtUp(headAtStart)), uploadsIndexed]), logger);

    const tls = config.http.tls;
    const tlsFiles = tls?.cert && tls.key ? { cert: tls.cert, key: tls.key, ...(tls.cacert !== undefined ? { cacert: tls.cacert } : {}) } : undefined;
    const requireClientCert = clientCertificateRequired(config);
    app = buildHttpApp({
      registry,
      logger,
      readOnly,
      monitoring: { probes: health, ...(metrics ? { metrics: metrics.http } : {}) },
      httpOptions: httpOptionsFromConfig(config.http),
      ...(pulls ? { pulls } : {}),
      auth: { authentication: auth.authentication, authorizer: auth.authorizer, failDelayMs: auth.failDelayMs },
      ...(tlsFiles ? { https: tlsServerOptions(tlsFiles, { requireClientCert }) } : {}),
      ...(sync?.onDemand ? { mirrorName: sync.onDemand.mirrorName.bind(sync.onDemand) } : {}),
    });
    await app.listen({ host: config.http.address, port: Number(config.http.port), listenTextResolver: () => 'http server listening' });
    // After listen: the walk lists every directory of every root, which the first answer need not
    // wait for.
    if (garbageCollector) repositoryWalk = scheduleUnrecordedRepositories(garbageCollector, roots, logger);
    if (tlsFiles) {
      const server = app.server as HttpsServer;
      if (tlsFiles.cacert !== undefined && !requireClientCert) refuseUnverifiedClients(server, logger);
      tlsReloader = reloadTlsOnChange(server, tlsFiles, logger);
    }
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
      // zot replay compares index.json files only once the writer's stored checkpoint is at the head.
      for (const runner of runners) runner.storeTrailing();
    },
    reopenLogFiles: async () => {
      reopenLogOutput(logger);
      await auditWriter?.reopen();
    },
    close: shutdown,
  };
}
