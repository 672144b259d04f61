// Sync's composition: one upstream client per configured registry, the shared blob fetches and
// image copier, and a periodic sync per registry with `pollInterval` and `content`. Built by
// startRegistry() after the registry; stopped before the event log closes.
import type { Logger } from 'pino';
import type { Registry as PromRegistry } from 'prom-client';
import type { RegistryStateQueries } from '../projections/registry-state.js';
import type { Registry } from '../registry/registry.js';
import { BlobFetches } from './blob-fetches.js';
import { ImageCopier } from './image-copier.js';
import { OnDemand, type OnDemandOptions } from './on-demand.js';
import { PeriodicSync, type PollSummary } from './periodic-sync.js';
import { syncMetrics } from './sync-metrics.js';
import type { SyncRegistrySettings } from './sync-settings.js';
import { UpstreamClient } from './upstream-client.js';

export interface SyncDeps {
  registry: Registry;
  queries: RegistryStateQueries;
  logger: Logger;
  /** The running registry's prom-client registry, when metrics are on. */
  promRegistry?: PromRegistry;
  onDemand?: OnDemandOptions;
}

export class SyncService {
  private readonly clients: UpstreamClient[];
  private readonly periodic: PeriodicSync[] = [];
  /** Answers reads that miss locally, when a registry has `onDemand`. */
  readonly onDemand: OnDemand | undefined;

  constructor(settings: readonly SyncRegistrySettings[], deps: SyncDeps) {
    const logger = deps.logger.child({ component: 'sync' });
    const metrics = syncMetrics(deps.promRegistry);
    this.clients = settings.map(
      (registry) =>
        new UpstreamClient({
          urls: registry.urls,
          tls: registry.tls,
          credentials: registry.credentials,
          maxRetries: registry.maxRetries,
          retryDelayMs: registry.retryDelayMs,
          logger,
        }),
    );
    const blobs = new BlobFetches(deps.registry, deps.queries, logger, { bytes: (upstream, count) => metrics.bytes(upstream, count) });
    const copier = new ImageCopier(deps.registry, deps.queries, blobs, logger);
    const onDemand = settings.flatMap((registry, i) => (registry.onDemand ? [{ settings: registry, client: this.clients[i] as UpstreamClient }] : []));
    this.onDemand = onDemand.length > 0 ? new OnDemand(onDemand, copier, blobs, logger, metrics, deps.onDemand) : undefined;
    settings.forEach((registry, i) => {
      const client = this.clients[i] as UpstreamClient;
      if (registry.pollIntervalMs !== undefined && registry.content.length > 0) {
        this.periodic.push(new PeriodicSync({ ...registry, pollIntervalMs: registry.pollIntervalMs }, client, copier, logger, metrics));
      }
    });
  }

  start(): void {
    for (const periodic of this.periodic) periodic.start();
  }

  /** Polls every periodic registry now; resolves with their summaries. */
  pollNow(): Promise<PollSummary[]> {
    return Promise.all(this.periodic.map((periodic) => periodic.pollNow()));
  }

  /** Resolves when every periodic registry has ended its first poll. */
  async firstPollsDone(): Promise<void> {
    await Promise.all(this.periodic.map((periodic) => periodic.firstPollDone));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.periodic.map((periodic) => periodic.stop()), this.onDemand?.stop()]);
    for (const client of this.clients) client.close();
  }
}
