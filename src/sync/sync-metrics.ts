// Sync's Prometheus counters, per upstream (a registry's first URL): images synced, skipped or
// failed, bytes received, and errors (an upstream that could not be listed or a copy that failed).
// Registered in the running registry's own prom-client registry when metrics are on; otherwise
// every call is a no-op.
import { Counter, type Registry as PromRegistry } from '../actors/prom-client-core.js';

export type ImageOutcome = 'synced' | 'skipped' | 'failed';

export interface SyncMetrics {
  image(upstream: string, outcome: ImageOutcome): void;
  bytes(upstream: string, count: number): void;
  error(upstream: string): void;
}

export const NO_SYNC_METRICS: SyncMetrics = { image: () => undefined, bytes: () => undefined, error: () => undefined };

export function syncMetrics(registry: PromRegistry | undefined): SyncMetrics {
  if (registry === undefined) return NO_SYNC_METRICS;
  const registers = [registry];
  const images = new Counter({ name: 'zot_sync_images_total', help: 'Images synced, skipped or failed, per upstream', labelNames: ['upstream', 'outcome'], registers });
  const bytes = new Counter({ name: 'zot_sync_bytes_total', help: 'Blob bytes received from upstream', labelNames: ['upstream'], registers });
  const errors = new Counter({ name: 'zot_sync_errors_total', help: 'Failed upstream listings and image copies', labelNames: ['upstream'], registers });
  return {
    image: (upstream, outcome) => images.inc({ upstream, outcome }),
    bytes: (upstream, count) => bytes.inc({ upstream }, count),
    error: (upstream) => errors.inc({ upstream }),
  };
}
