// The composition root: builds the parts in order and hands each only what it needs. The CLI's
// `serve` and the tests both start the registry through startRegistry().
import * as path from 'node:path';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ActorRunner } from './actors/actor.js';
import { AuditWriter } from './actors/audit-writer.js';
import { clientCertificateRequired, openAuth } from './auth/index.js';
import { GarbageCollector } from './actors/garbage-collector.js';
import { IndexJsonWriter } from './actors/index-json-writer.js';
import type { Config } from './config/types.js';
import { openDatabase, type Db } from './events/database.js';
import { EventStore } from './events/store.js';
import { buildHttpApp } from './http/app.js';
import { refuseUnverifiedClients, reloadTlsOnChange, tlsServerOptions, type TlsReloader } from './http/tls.js';
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
import { HashPool } from './workers/pool.js';

export interface RunningRegistry {
  /** Base URL, e.g. http://127.0.0.1:5000 */
  url: string;
  port: number;
  rootDirectory: string;
  store: EventStore;
  logger: Logger;
  /** Resolves when dedupe's background pass over existing content has finished. */
  dedupeFinished(): Promise<void>;
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
}

export function openEventStore(db: Db): { store: EventStore; queries: RegistryStateQueries } {
  const store = new EventStore(db, createProjections());
  return { store, queries: new RegistryStateQueries(db) };
}

export async function startRegistry(config: Config, options: StartOptions = {}): Promise<RunningRegistry> {
  const logger = options.logger ?? createLogger(config.log);
  // First: a method that cannot start (a bad htpasswd file) stops the start before anything opens.
  const auth = await openAuth(config, logger);
  const roots = storageRootsFromConfig(config.storage, options.wrapDriver ? { wrapDriver: options.wrapDriver } : {});
  const rootDirectory = roots.defaultRoot.rootDirectory;
  await roots.clearTemporaryFiles();
  const db = openDatabase(eventLogFile(rootDirectory));
  const { store, queries } = openEventStore(db);
  const hashPool = new HashPool();
  const runners: ActorRunner[] = [];
  const health = new Health();
  const metricsAt = metricsPath(config);
  let metrics: Metrics | undefined;
  const auditWriter = config.log?.audit ? new AuditWriter(path.resolve(config.log.audit), store, logger) : undefined;
  let app: ReturnType<typeof buildHttpApp> | undefined;
  let garbageCollector: GarbageCollector | undefined;
  let dedupePass: DedupePass | undefined;
  let scrubSchedule: ScrubSchedule | undefined;
  let tlsReloader: TlsReloader | undefined;

  const shutdown = async (): Promise<void> => {
    health.markClosing();
    tlsReloader?.stop();
    await app?.close();
    await garbageCollector?.stop();
    await dedupePass?.stop();
    await scrubSchedule?.stop();
    const head = store.head();
    await Promise.all(runners.map((runner) => runner.caughtUp(head)));
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
    db.close();
    await auth.close();
  };

  try {
    await importStorageOnce(roots, store, hashPool, logger);
    const registry = new Registry({
      logger,
      roots,
      store,
      queries,
      hashPool,
      onUploadStarted: (repo) => garbageCollector?.schedule(repo, Date.now() + roots.for(repo).gcDelayMs),
    });
    runners.push(new ActorRunner(new IndexJsonWriter(queries, roots), store, logger));
    // A read-only registry writes nothing: no GC, no dedupe pass (another instance may own the storage).
    const readOnly = config.http.ReadOnly === true;
    if (!readOnly && roots.roots.some((root) => root.gc)) {
      garbageCollector = new GarbageCollector(new RepositoryCollector(registry, queries, store, roots), roots, logger, (outcome) =>
        metrics?.observeGcRun(outcome.failed, outcome.seconds, outcome.removed ? { ...outcome.removed } : undefined),
      );
      runners.push(new ActorRunner(garbageCollector, store, logger));
    }
    if (metricsAt !== undefined) {
      metrics = createMetrics(config, metricsAt, db, store, runners);
      metrics.actor.startFlushing((err) => logger.error({ err }, 'failed to store the download counts'));
      runners.push(new ActorRunner(metrics.actor, store, logger));
    }
    if (auditWriter) {
      await auditWriter.open();
      runners.push(new ActorRunner(auditWriter, store, logger));
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
    const headAtStart = store.head();
    health.trackStartup(Promise.all(runners.map((runner) => runner.caughtUp(headAtStart))), logger);

    const tls = config.http.tls;
    const tlsFiles = tls?.cert && tls.key ? { cert: tls.cert, key: tls.key, ...(tls.cacert !== undefined ? { cacert: tls.cacert } : {}) } : undefined;
    const requireClientCert = clientCertificateRequired(config);
    app = buildHttpApp({
      registry,
      logger,
      readOnly,
      monitoring: { probes: health, ...(metrics ? { metrics: metrics.http } : {}) },
      auth: { authentication: auth.authentication, authorizer: auth.authorizer, failDelayMs: auth.failDelayMs },
      ...(tlsFiles ? { https: tlsServerOptions(tlsFiles, { requireClientCert }) } : {}),
    });
    await app.listen({ host: config.http.address, port: Number(config.http.port), listenTextResolver: () => 'http server listening' });
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
    logger,
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
