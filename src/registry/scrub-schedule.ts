// `extensions.scrub`: a scrub of the whole registry after every interval, in the registry's own
// hash pool. The next interval starts when a scrub ends, so two never overlap; stop() aborts the
// one running and waits for it. Problems are logged, never repaired.
import type { Logger } from 'pino';
import { parseDuration } from '../config/duration.js';
import type { RegistryStateQueries } from '../projections/registry-state.js';
import type { StorageRoots } from '../storage/roots.js';
import type { HashPool } from '../workers/pool.js';
import { scrubStorage, type ContentKind } from './scrub.js';

/** zot's default interval, and the least it accepts (it raises a shorter one, with a warning). */
export const DEFAULT_SCRUB_INTERVAL_MS = 24 * 60 * 60 * 1000;
export const MIN_SCRUB_INTERVAL_MS = 2 * 60 * 60 * 1000;

/**
 * The interval `extensions.scrub.interval` asks for, as zot reads it: unset or "0" is 24h, and
 * anything under 2h becomes 2h (`raised` then says so, for a warning).
 */
export function scrubIntervalMs(interval: string | undefined): { intervalMs: number; raised: boolean } {
  const asked = interval === undefined ? 0 : parseDuration(interval);
  if (asked === undefined) throw new Error(`invalid duration ${interval}: the config should have been validated`);
  if (asked === 0) return { intervalMs: DEFAULT_SCRUB_INTERVAL_MS, raised: false };
  return asked < MIN_SCRUB_INTERVAL_MS ? { intervalMs: MIN_SCRUB_INTERVAL_MS, raised: true } : { intervalMs: asked, raised: false };
}

export interface ScrubScheduleDeps {
  roots: StorageRoots;
  queries: RegistryStateQueries;
  hashPool: Pick<HashPool, 'hashFile' | 'maxThreads'>;
  intervalMs: number;
  logger: Logger;
}

export interface ScrubSchedule {
  stop(): Promise<void>;
}

const MESSAGES: Record<ContentKind, { corrupt: string; missing: string }> = {
  blob: { corrupt: 'scrub found a corrupt blob', missing: 'scrub found a missing blob' },
  manifest: { corrupt: 'scrub found a corrupt manifest', missing: 'scrub found a missing manifest' },
};

export function startScrubSchedule(deps: ScrubScheduleDeps): ScrubSchedule {
  const { roots, queries, hashPool, intervalMs, logger } = deps;
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  const runOnce = async (): Promise<void> => {
    logger.info('scrub started');
    try {
      // One pool task at a time: the pool's other threads stay free for uploads' verification.
      const report = await scrubStorage({ roots, queries, hashPool, signal: abort.signal, poolConcurrency: 1 });
      for (const repo of report.repositories) {
        for (const item of repo.corrupt) {
          logger.error({ repo: repo.repo, digest: item.digest, size: item.size, problem: item.problem, found: item.found }, MESSAGES[item.kind].corrupt);
        }
        for (const item of repo.missing) logger.error({ repo: repo.repo, digest: item.digest, size: item.size }, MESSAGES[item.kind].missing);
      }
      logger.info({ ...report.totals, durationMs: report.durationMs }, 'scrub finished');
    } catch (err) {
      if (abort.signal.aborted) return;
      logger.error({ err }, 'failed to scrub storage');
    }
  };

  const schedule = (): void => {
    if (abort.signal.aborted) return;
    timer = setTimeout(() => {
      timer = undefined;
      running = runOnce().finally(() => {
        running = undefined;
        schedule();
      });
    }, intervalMs);
    // The server keeps the process alive; a forgotten schedule must not.
    timer.unref();
  };

  schedule();
  return {
    async stop() {
      abort.abort();
      if (timer) clearTimeout(timer);
      timer = undefined;
      await running;
    },
  };
}
