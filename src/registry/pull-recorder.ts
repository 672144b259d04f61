// Notes the manifests clients pull, for retention's pulledWithin and mostRecentlyPulledCount (zot
// keeps the same per manifest: its last pull time). A pull is a read, so it is not worth an event
// of its own: the HTTP layer notes each manifest GET here, in memory, and the notes are appended
// as ManifestsPulled events, one per repository per batch, every 30 seconds, before each
// retention sweep reads them, and at shutdown. The registry-state projection keeps the last pull
// of each manifest from them. A crash loses at most the pulls of the last interval.
//
// Memory holds at most one note per manifest served since the last batch (a GET answered 200
// names a manifest the registry holds), and the log grows by at most one event per repository
// pulled per interval (or per retention sweep, at most one each gcInterval), however many pulls.
import type { EventStore } from '../events/store.js';
import { SYSTEM_PULLS_IDENTITY, type EventBody, type ManifestPull } from '../events/types.js';

const BATCH_MS = 30_000;

interface PendingPull {
  last: number;
  count: number;
}

export class PullRecorder {
  /** Repository → digest → its pulls since the last batch. */
  private pending = new Map<string, Map<string, PendingPull>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly store: EventStore) {}

  /** A client pulled the manifest (a GET answered 200). */
  record(repo: string, digest: string, at: number = Date.now()): void {
    let pulls = this.pending.get(repo);
    if (!pulls) this.pending.set(repo, (pulls = new Map()));
    const pull = pulls.get(digest);
    if (pull) {
      pull.last = Math.max(pull.last, at);
      pull.count++;
    } else {
      pulls.set(digest, { last: at, count: 1 });
    }
  }

  /** Appends the pulls noted since the last batch, one event per repository, in one transaction. */
  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const events: EventBody[] = [...batch].map(([repo, pulls]) => ({
      type: 'ManifestsPulled',
      repo,
      pulls: [...pulls].map(([digest, pull]): ManifestPull => ({ digest, time: new Date(pull.last).toISOString(), count: pull.count })),
    }));
    try {
      await this.store.append(events, { identity: SYSTEM_PULLS_IDENTITY });
    } catch (err) {
      // Kept for the next attempt, merged with the pulls noted meanwhile.
      for (const [repo, pulls] of batch) {
        for (const [digest, pull] of pulls) {
          this.record(repo, digest, pull.last);
          const merged = this.pending.get(repo)?.get(digest) as PendingPull;
          merged.count += pull.count - 1;
        }
      }
      throw err;
    }
  }

  /** Appends a batch every interval; `onError` hears about a failed one (retried on the next). */
  startFlushing(onError: (err: unknown) => void, intervalMs = BATCH_MS): void {
    this.timer = setInterval(() => {
      this.flush().catch(onError);
    }, intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and appends what is pending; call before the event store closes. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
