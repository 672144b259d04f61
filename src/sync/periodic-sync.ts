// Periodic sync of one registry (`pollInterval` with `content`): a poll lists the upstream
// catalog, keeps the repositories a content rule takes, lists their tags, filters them by the
// rule, and copies each image (image-copier.ts) into the rule's local name. The first poll starts
// with the registry, each next one `pollInterval` after the previous ended. A poll interrupted by
// a crash or a stop is simply run again: what was committed is found by digest and not fetched
// again, so the next poll resumes where the last one stopped.
//
// One log line per image: `image synced`, or `image skipped` with the reason (already synced, not
// signed, gone upstream), or `failed to sync image`; one `sync poll finished` line with the counts.
import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import { isValidName } from '../oci/names.js';
import { filterTags, localName, ruleForUpstream } from './content-rules.js';
import { eachBounded } from '../concurrency.js';
import type { ImageCopier } from './image-copier.js';
import { isReferrerTag } from './referrers.js';
import type { SyncMetrics } from './sync-metrics.js';
import type { SyncRegistrySettings } from './sync-settings.js';
import type { UpstreamClient } from './upstream-client.js';

export interface PollSummary {
  upstream: string;
  images: number;
  synced: number;
  skipped: number;
  failed: number;
  /** Blob bytes fetched for the images synced. */
  bytes: number;
  /** The catalog or a tag list could not be read. */
  listingFailed: boolean;
}

interface ImageTarget {
  upstreamRepo: string;
  localRepo: string;
  tag: string;
  tags: readonly string[];
  platforms?: readonly string[];
}

/** Images of one registry copied at once. */
const IMAGE_CONCURRENCY = 4;
/** Tag lists read at once. */
const LISTING_CONCURRENCY = 4;

export class PeriodicSync {
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<PollSummary> | undefined;
  private stopped = false;
  private readonly stopping = new AbortController();
  private firstPollEnded!: () => void;
  /** Resolves when the first poll has ended (the one the start runs, or a pollNow before it). */
  readonly firstPollDone = new Promise<void>((resolve) => (this.firstPollEnded = resolve));

  constructor(
    private readonly settings: SyncRegistrySettings & { pollIntervalMs: number },
    private readonly client: UpstreamClient,
    private readonly copier: ImageCopier,
    private readonly logger: Logger,
    private readonly metrics: SyncMetrics,
  ) {
    // Every request of a poll listens to this one signal; many run at once.
    setMaxListeners(0, this.stopping.signal);
  }

  start(): void {
    this.schedule(0);
  }

  /** Runs a poll now (after the one running, if any) and resolves with its summary. */
  async pollNow(): Promise<PollSummary> {
    await this.current?.catch(() => undefined);
    clearTimeout(this.timer);
    return this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.stopping.abort(new Error('sync is stopping'));
    await this.current?.catch(() => undefined);
    this.firstPollEnded();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.run().catch(() => undefined), delayMs);
    this.timer.unref();
  }

  private run(): Promise<PollSummary> {
    const poll = this.poll().finally(() => {
      if (this.current === poll) this.current = undefined;
      this.firstPollEnded();
      this.schedule(this.settings.pollIntervalMs);
    });
    this.current = poll;
    return poll;
  }

  private async poll(): Promise<PollSummary> {
    const upstream = this.client.name;
    const summary: PollSummary = { upstream, images: 0, synced: 0, skipped: 0, failed: 0, bytes: 0, listingFailed: false };
    const started = Date.now();
    this.logger.info({ upstream }, 'sync poll started');
    const signal = this.stopping.signal;
    const targets = await this.targets(summary, signal);
    summary.images = targets.length;
    await eachBounded(targets, IMAGE_CONCURRENCY, async (target) => {
      if (signal.aborted) return;
      const { outcome, bytes } = await this.syncImage(target, signal);
      summary[outcome]++;
      summary.bytes += bytes;
    });
    this.logger.info({ ...summary, durationMs: Date.now() - started }, 'sync poll finished');
    return summary;
  }

  /** The images the content rules take: every kept tag of every matching repository. */
  private async targets(summary: PollSummary, signal: AbortSignal): Promise<ImageTarget[]> {
    const upstream = this.client.name;
    let repositories: string[];
    try {
      repositories = await this.client.catalog({ signal });
    } catch (err) {
      if (!signal.aborted) {
        this.logger.error({ upstream, err }, 'failed to list upstream repositories');
        this.metrics.error(upstream);
      }
      summary.listingFailed = true;
      return [];
    }
    const targets: ImageTarget[] = [];
    const taken = repositories.sort().flatMap((repo) => {
      const rule = ruleForUpstream(this.settings.content, repo);
      return rule ? [{ repo, rule }] : [];
    });
    await eachBounded(taken, LISTING_CONCURRENCY, async ({ repo, rule }) => {
      const localRepo = localName(rule, repo);
      if (!isValidName(localRepo)) {
        this.logger.error({ upstream, repo, localRepo }, 'failed to map upstream repository to a valid local name, skipping it');
        return;
      }
      let tags: string[];
      try {
        tags = await this.client.tags(repo, { signal });
      } catch (err) {
        if (!signal.aborted) {
          this.logger.error({ upstream, repo, err }, 'failed to list upstream tags');
          this.metrics.error(upstream);
        }
        summary.listingFailed = true;
        return;
      }
      // Cosign's and the referrers tags come with the image they refer to, not as images.
      for (const tag of filterTags(rule, tags.filter((t) => !isReferrerTag(t)))) {
        targets.push({ upstreamRepo: repo, localRepo, tag, tags, ...(rule.platforms ? { platforms: rule.platforms } : {}) });
      }
    });
    return targets;
  }

  private async syncImage(target: ImageTarget, signal: AbortSignal): Promise<{ outcome: 'synced' | 'skipped' | 'failed'; bytes: number }> {
    const upstream = this.client.name;
    const fields = { upstream, repo: target.upstreamRepo, tag: target.tag, localRepo: target.localRepo };
    try {
      const outcome = await this.copier.copy({
        client: this.client,
        upstreamRepo: target.upstreamRepo,
        localRepo: target.localRepo,
        reference: target.tag,
        upstreamTags: target.tags,
        onlySigned: this.settings.onlySigned,
        ...(target.platforms ? { platforms: target.platforms } : {}),
        signal,
      });
      if (outcome.kind === 'synced') {
        const { digest, blobs, bytes, manifests, referrers } = outcome;
        this.logger.info({ ...fields, digest, blobs, bytes, manifests, referrers }, 'image synced');
        this.metrics.image(upstream, 'synced');
        return { outcome: 'synced', bytes };
      }
      const reason = outcome.kind === 'present' ? 'already synced' : outcome.kind === 'unsigned' ? 'not signed' : 'not found upstream';
      this.logger.info({ ...fields, ...('digest' in outcome ? { digest: outcome.digest } : {}), reason }, 'image skipped');
      this.metrics.image(upstream, 'skipped');
      return { outcome: 'skipped', bytes: 0 };
    } catch (err) {
      if (signal.aborted) return { outcome: 'failed', bytes: 0 };
      this.logger.error({ ...fields, err }, 'failed to sync image');
      this.metrics.image(upstream, 'failed');
      this.metrics.error(upstream);
      return { outcome: 'failed', bytes: 0 };
    }
  }
}
