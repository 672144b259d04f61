// What startRegistry() needs for health and metrics: the probes' state, the metrics settings of
// either config form, and the metrics parts (prom-client registry, metrics actor, what the HTTP
// layer calls) built from the event store and the actor runners.
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { ActorRunner } from './actors/actor.js';
import { MetricsActor } from './actors/metrics-actor.js';
import type { PrometheusMetrics } from './actors/prometheus.js';
import type { Config } from './config/types.js';
import type { Db } from './events/database.js';
import type { EventStore } from './events/store.js';
import type { HttpMetrics, Probes } from './http/monitoring-routes.js';
import { PACKAGE_JSON } from './install-layout.js';

export const DEFAULT_METRICS_PATH = '/metrics';

/**
 * The Prometheus path when metrics are on: the seed document's top-level `metrics` or zot's
 * `extensions.metrics` (the config rules allow only one of them); a section without `enable`
 * is on, as in zot.
 */
export function metricsPath(config: Config): string | undefined {
  const section = config.extensions?.metrics ?? config.metrics;
  if (section === undefined || section.enable === false) return undefined;
  return section.prometheus?.path ?? DEFAULT_METRICS_PATH;
}

/** How long an actor may fail on one event before /readyz says not ready. */
export const STALL_BOUND_MS = 5_000;

/** An actor as the probes see it (an ActorRunner). */
/** The event log as the probes see it (the EventStore). */
export interface WatchedLog {
  /** False once the log failed to sync to disk: no write succeeds until a restart. */
  readonly writable: boolean;
}

export interface WatchedActor {
  /** How long it has been failing on one event; 0 when it is not failing. */
  stalledForMs(): number;
}

/**
 * The state behind /startupz and /readyz. Ready: start-up finished, not shutting down, and no actor
 * stalled past STALL_BOUND_MS (a side effect failing, such as the audit file or index.json that
 * cannot be written): an instance behind a load balancer then stops taking traffic until its
 * actors recover, and is ready again once they have. Liveness (/livez) ignores stalls: the
 * process still serves and its appends still commit; restarting it would not mend a disk.
 */
export class Health implements Probes {
  private caughtUp = false;
  private closing = false;

  /** `actors` is read at each probe, so runners added after construction count too. */
  constructor(
    private readonly actors: readonly WatchedActor[] = [],
    private readonly stallBoundMs = STALL_BOUND_MS,
    private readonly log: WatchedLog = { writable: true },
  ) {}

  /** Start-up finishes when `actorsCaughtUp` resolves (every actor reached the head found at start). */
  trackStartup(actorsCaughtUp: Promise<unknown>, logger: Logger): void {
    actorsCaughtUp.then(
      () => {
        this.caughtUp = true;
      },
      (err: unknown) => logger.error({ err }, 'failed to wait for the actors to catch up'),
    );
  }

  markClosing(): void {
    this.closing = true;
  }

  started(): boolean {
    return this.caughtUp;
  }

  ready(): boolean {
    return this.caughtUp && !this.closing && this.log.writable && !this.actors.some((actor) => actor.stalledForMs() > this.stallBoundMs);
  }

  /**
   * Alive unless the event log failed to sync: the process then refuses every write, and only a
   * restart (which reopens the log) can mend that, so the orchestrator should make one.
   */
  alive(): boolean {
    return this.log.writable;
  }
}

export interface Metrics {
  actor: MetricsActor;
  /** The prom-client registry /metrics renders, for parts that keep counters of their own (sync). */
  promRegistry: PrometheusMetrics['registry'];
  http: HttpMetrics;
  /** zot_gc_*: one garbage-collection sweep of a repository. */
  observeGcRun(failed: boolean, seconds: number, removed?: Record<string, number>): void;
  /** zot_refused_writes_total: one refused write. */
  observeRefusal(code: string): void;
  /** zot_gc_deleted_total{type="uploads"}: idle upload sessions expired (GC or not). */
  observeUploadsExpired(count: number): void;
}

const PACKAGE_VERSION = readPackageVersion();

function readPackageVersion(): string {
  try {
    const text = readFileSync(PACKAGE_JSON, 'utf8');
    return (JSON.parse(text) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * The metrics parts; `runners` is called at each scrape, so actors added later are included.
 * `actorDb` is the actors' connection, where the metrics actor keeps its tables. prom-client
 * (with OpenTelemetry's API, about 80 modules) is loaded only here, when metrics are on.
 */
export async function createMetrics(config: Config, path: string, actorDb: Db, store: EventStore, runners: () => readonly ActorRunner[]): Promise<Metrics> {
  const { PrometheusMetrics } = await import('./actors/prometheus.js');
  const prometheus = new PrometheusMetrics(
    { commit: '', binaryType: `zot-ts-${PACKAGE_VERSION}`, goVersion: process.version, version: config.distSpecVersion ?? '' },
    {
      // The log is append-only and its sequence has no gaps, so its head is its length (and an
      // index lookup, where COUNT(*) would scan the log at every scrape).
      length: () => store.head(),
      head: () => store.head(),
      checkpoints: () => runners().map((runner) => ({ actor: runner.name, checkpoint: runner.checkpoint })),
    },
  );
  const actor = new MetricsActor(actorDb, prometheus);
  return {
    actor,
    promRegistry: prometheus.registry,
    observeGcRun: (failed, seconds, removed) => prometheus.observeGcRun(failed, seconds, removed),
    observeRefusal: (code) => prometheus.refusedWrites.inc({ code }),
    observeUploadsExpired: (count) => prometheus.observeGcDeleted('uploads', count),
    http: {
      path,
      observeRequest: (method, code, repo, seconds) => prometheus.observeRequest(method, code, repo, seconds),
      recordDownload: (repo) => actor.recordDownload(repo),
      render: async () => ({ contentType: prometheus.contentType, body: await prometheus.render() }),
    },
  };
}
