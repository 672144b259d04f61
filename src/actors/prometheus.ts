// The Prometheus metrics, under zot's names, label names, metric types and bucket boundaries
// (project-zot/zot pkg/extensions/monitoring), so that dashboards and alerts written for zot keep
// working; plus two of our own about the event log. One prom-client registry per running
// registry (tests run several in one process), never the global default one.
//
// Who feeds what:
//   zot_http_*                          the HTTP layer, once per answered request (src/http/monitoring-routes.ts),
//                                       kept in per-label cells (request-metrics.ts)
//   zot_repo_uploads_total, _storage_bytes
//                                       the metrics actor, from events (metrics-actor.ts)
//   zot_repo_downloads_total            the HTTP layer counts, the metrics actor persists
//   zot_event_log_length, zot_actor_lag_events
//                                       read from the log and the actors' checkpoints at each scrape
//   zot_refused_writes_total            the refusal recorder, once per refused write (its events
//                                       are aggregated; this counts each one)
//   zot_gc_*                            the garbage collector, once per repository swept (app.ts)
//   zot_scheduler_*, zot_storage_lock_latency_seconds
//                                       registered so the series exist; they stay at zero (no task
//                                       scheduler here; GC and scrub run on their own timers).
import { Counter, Gauge, Histogram, Registry, Summary } from './prom-client-core.js';
import { DEFAULT_BUCKETS, RequestMetrics } from './request-metrics.js';

/** zot's GetStorageLatencyBuckets(). */
export const STORAGE_LATENCY_BUCKETS = [0.001, 0.01, 0.1, 1, 5, 10, 15, 30, 60];
/** The repo label zot gives requests whose path names no repository. */
export const NO_REPO = 'N/A';

export interface ServerInfo {
  commit: string;
  binaryType: string;
  /** The label keeps zot's name; the value is the Node.js version we run on. */
  goVersion: string;
  /** zot puts the distribution-spec version here. */
  version: string;
}

export interface LogFigures {
  /** Events in the log. */
  length(): number;
  /** Sequence number of the last event. */
  head(): number;
  /** Each actor's checkpoint. */
  checkpoints(): { actor: string; checkpoint: number }[];
}

export class PrometheusMetrics {
  readonly registry = new Registry();

  private readonly requests: RequestMetrics;
  readonly repoUploads: Counter<'repo'>;
  readonly repoDownloads: Counter<'repo'>;
  readonly repoStorageBytes: Gauge<'repo'>;
  readonly gcRuns: Counter<'error'>;
  readonly gcDeleted: Counter<'type'>;
  readonly gcDuration: Summary;
  readonly refusedWrites: Counter<'code'>;

  constructor(info: ServerInfo, log: LogFigures) {
    const registers = [this.registry];
    this.requests = new RequestMetrics(registers);
    this.repoStorageBytes = new Gauge({
      name: 'zot_repo_storage_bytes',
      help: 'Bytes of blobs and manifests held by each repository',
      labelNames: ['repo'],
      registers,
    });
    this.repoUploads = new Counter({
      name: 'zot_repo_uploads_total',
      help: 'Manifests pushed to each repository',
      labelNames: ['repo'],
      registers,
    });
    this.repoDownloads = new Counter({
      name: 'zot_repo_downloads_total',
      help: 'Manifests fetched (GET or HEAD) from each repository',
      labelNames: ['repo'],
      registers,
    });
    const serverInfo = new Gauge({
      name: 'zot_info',
      help: 'Build information of the server, in the labels',
      labelNames: ['commit', 'binaryType', 'goVersion', 'version'],
      registers,
    });
    // zot sets it to 0 at start-up: the labels are the information.
    serverInfo.set({ ...info }, 0);

    // One GC run is one repository's sweep; `type` is what it removed.
    this.gcRuns = new Counter({ name: 'zot_gc_runs_total', help: 'Garbage collection runs, by whether they failed', labelNames: ['error'], registers });
    this.gcDeleted = new Counter({ name: 'zot_gc_deleted_total', help: 'Items garbage collection removed, by kind', labelNames: ['type'], registers });
    this.gcDuration = new Summary({ name: 'zot_gc_duration_seconds', help: 'Time a garbage collection run took', percentiles: [], registers });
    registerUnfedZotMetrics(registers);

    this.refusedWrites = new Counter({
      name: 'zot_refused_writes_total',
      help: 'Writes answered 4xx and recorded as refused, by OCI error code',
      labelNames: ['code'],
      registers,
    });

    new Gauge({
      name: 'zot_event_log_length',
      help: 'Number of events in the event log',
      registers,
      collect() {
        this.set(log.length());
      },
    });
    new Gauge({
      name: 'zot_actor_lag_events',
      help: "Events appended to the log that an actor has not handled yet (log head minus the actor's checkpoint)",
      labelNames: ['actor'],
      registers,
      collect() {
        const head = log.head();
        for (const { actor, checkpoint } of log.checkpoints()) this.set({ actor }, Math.max(0, head - checkpoint));
      },
    });
  }

  /** One answered HTTP request, as zot's session logger records it. */
  observeRequest(method: string, code: number, repo: string, seconds: number): void {
    this.requests.observe(method, code, repo, seconds);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** One GC sweep: whether it failed, how long it took, and what it removed by kind. */
  observeGcRun(failed: boolean, seconds: number, removed: Record<string, number> = {}): void {
    this.gcRuns.inc({ error: String(failed) });
    this.gcDuration.observe(seconds);
    for (const [type, count] of Object.entries(removed)) if (count > 0) this.gcDeleted.inc({ type }, count);
  }

  /** Items removed outside a GC sweep (idle upload sessions expire whatever the GC setting). */
  observeGcDeleted(type: string, count: number): void {
    if (count > 0) this.gcDeleted.inc({ type }, count);
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}

/**
 * zot's scheduler and storage-lock figures. Registered so that the series a zot dashboard queries
 * exist; they stay at zero: this registry has no task scheduler, and its locks are per digest.
 */
function registerUnfedZotMetrics(registers: Registry[]): void {
  new Histogram({
    name: 'zot_storage_lock_latency_seconds',
    help: 'Time spent waiting for a storage lock',
    labelNames: ['storageName', 'lockType'],
    buckets: STORAGE_LATENCY_BUCKETS,
    registers,
  });
  new Counter({ name: 'zot_scheduler_generators_total', help: 'Task generators registered with the scheduler', registers });
  new Gauge({
    name: 'zot_scheduler_generators_status',
    help: 'Scheduler task generators, by priority and state',
    labelNames: ['priority', 'state'],
    registers,
  });
  new Gauge({ name: 'zot_scheduler_workers_total', help: 'Scheduler workers available', registers });
  new Gauge({ name: 'zot_scheduler_workers', help: 'Scheduler workers, by state', labelNames: ['state'], registers });
  new Gauge({
    name: 'zot_scheduler_tasksqueue_length',
    help: 'Scheduler tasks waiting for a worker, by priority',
    labelNames: ['priority'],
    registers,
  });
  new Histogram({
    name: 'zot_scheduler_workers_tasks_duration_seconds',
    help: 'Time a scheduler task took, by task name',
    labelNames: ['name'],
    buckets: DEFAULT_BUCKETS,
    registers,
  });
}
