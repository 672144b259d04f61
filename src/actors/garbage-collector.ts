// The garbage collector: follows the event stream to learn which repositories may hold garbage
// and when (an event's time, plus gcDelay for what it added), and sweeps those repositories when
// they are due, on each gcInterval tick of their storage root. Only repositories of roots with gc
// on are swept. At start every repository is due once, which also finds what a crash left behind.
// A failed sweep is logged and retried on a later tick.
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { EventType, StoredEvent } from '../events/types.js';
import type { RemovedCounts, RepositoryCollector } from '../registry/collector.js';
import type { StorageRoot, StorageRoots } from '../storage/roots.js';
import type { Actor } from './actor.js';

/** Events after which something in the repository may have become garbage, or will once old enough. */
const GC_EVENTS: readonly EventType[] = [
  'BlobPushed',
  'BlobMounted',
  'BlobDeleted',
  'ManifestPushed',
  'ManifestDeleted',
  'TagSet',
  'TagRemoved',
];

/** One sweep's outcome, for the zot_gc_* metrics. */
export interface SweepOutcome {
  failed: boolean;
  seconds: number;
  removed?: RemovedCounts;
}

/** Events that add content: it can be garbage only once gcDelay has passed. */
const ADDING: ReadonlySet<EventType> = new Set(['BlobPushed', 'BlobMounted', 'ManifestPushed']);

export class GarbageCollector implements Actor {
  readonly name = 'garbage-collector';
  readonly handles = GC_EVENTS;
  /**
   * The events of the backlog would only make repositories due, and the registry makes every
   * repository due at start (app.ts, `schedule`): the backlog is not read at all.
   */
  readonly startsAtHead = true;
  /** Repository → when it should next be swept (ms since the epoch). */
  private readonly due = new Map<string, number>();
  private readonly timers: NodeJS.Timeout[] = [];
  private sweeping: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly collector: RepositoryCollector,
    private readonly roots: StorageRoots,
    private readonly logger: Logger,
    private readonly observe: (outcome: SweepOutcome) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  async handle(event: StoredEvent): Promise<void> {
    const root = this.roots.for(event.repo);
    if (!root.gc) return;
    const at = Date.parse(event.time);
    this.schedule(event.repo, ADDING.has(event.type) ? at + this.collector.delayAfterAdding(event.repo) : at);
  }

  /** Marks a repository for a sweep at `at` (or earlier, if it is due earlier already). */
  schedule(repo: string, at: number): void {
    if (!this.roots.for(repo).gc) return;
    const current = this.due.get(repo);
    if (current === undefined || at < current) this.due.set(repo, at);
  }

  /** Starts one timer per storage root with gc on, at that root's gcInterval. */
  start(): void {
    for (const root of this.roots.roots) {
      if (!root.gc) continue;
      const timer = setInterval(() => {
        this.sweeping = this.sweeping.then(() => this.sweepDue(root));
      }, root.gcIntervalMs);
      timer.unref();
      this.timers.push(timer);
    }
  }

  /** Sweeps every repository of the root that is due now, one after another. */
  async sweepDue(root: StorageRoot): Promise<void> {
    const now = this.now();
    const due = [...this.due].filter(([repo, at]) => at <= now && this.roots.for(repo) === root).map(([repo]) => repo);
    for (const repo of due) {
      if (this.stopped) return;
      this.due.delete(repo);
      const started = performance.now();
      try {
        const result = await this.collector.sweep(repo, now, () => this.stopped);
        this.observe({ failed: false, seconds: (performance.now() - started) / 1000, removed: result.removed });
        if (Object.values(result.removed).some((count) => count > 0)) {
          this.logger.info({ repo, ...result.removed }, 'garbage collection removed unused content');
        }
        if (result.nextDueAt !== undefined) this.schedule(repo, result.nextDueAt);
      } catch (err) {
        this.observe({ failed: true, seconds: (performance.now() - started) / 1000 });
        this.logger.error({ repo, err }, 'failed to collect garbage, retrying on a later run');
        this.schedule(repo, now + root.gcIntervalMs);
      }
    }
  }

  /** Stops the timers and waits for a sweep in progress to finish its current removal. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    await this.sweeping.catch(() => undefined);
  }
}
