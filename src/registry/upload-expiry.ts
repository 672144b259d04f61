// Idle upload sessions expire, whatever the GC setting: in a root with GC after its gcDelay (as
// its other garbage), in a root without after the fixed idle expiry of upload-limits.ts. Each
// expiry is an UploadExpired event by system:gc. A check runs every quarter of the shortest
// expiry (at most every minute), looks only at sessions the in-memory index says are old enough,
// and confirms each with its file's time before removing it.
import type { Logger } from 'pino';
import type { EventStore } from '../events/store.js';
import { SYSTEM_GC_IDENTITY } from '../events/types.js';
import { RegistryError } from '../oci/errors.js';
import { uploadPath } from '../storage/layout.js';
import type { StorageRoot, StorageRoots } from '../storage/roots.js';
import type { UploadLimits } from './upload-limits.js';
import type { UploadSessions } from './uploads.js';

const MAX_CHECK_INTERVAL_MS = 60 * 1000;
const MIN_CHECK_INTERVAL_MS = 50;

export interface UploadExpiryDeps {
  uploads: UploadSessions;
  store: EventStore;
  roots: StorageRoots;
  limits: Readonly<UploadLimits>;
  logger: Logger;
  /** Told of each expiry: the repository may now be empty, for GC to remove. */
  onExpired?: (repo: string) => void;
  /** Told how many sessions each check removed (zot_gc_deleted_total{type="uploads"}). */
  observe?: (expired: number) => void;
}

/** How long a session of the root may go without a write. */
export function idleExpiryMs(root: StorageRoot, limits: Readonly<UploadLimits>): number {
  return root.gc ? root.gcDelayMs : limits.idleExpiryMs;
}

export class UploadExpiry {
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(private readonly deps: UploadExpiryDeps) {}

  start(): void {
    const { roots, limits } = this.deps;
    const shortest = Math.min(...roots.roots.map((root) => idleExpiryMs(root, limits)));
    const every = Math.min(MAX_CHECK_INTERVAL_MS, Math.max(MIN_CHECK_INTERVAL_MS, Math.floor(shortest / 4)));
    this.timer = setInterval(() => {
      this.checking = this.checking.then(() => this.expireIdle(Date.now())).catch((err: unknown) => {
        this.deps.logger.error({ err }, 'failed to expire idle upload sessions, retrying on the next check');
      });
    }, every);
    this.timer.unref();
  }

  /** Removes every session idle for longer than its root allows at `now`; returns how many. */
  async expireIdle(now: number): Promise<number> {
    const { uploads, store, roots, limits } = this.deps;
    const cutoff = (repo: string): number => now - idleExpiryMs(roots.for(repo), limits);
    let expired = 0;
    // The sessions of earlier runs are in the index once its walk at start is over (uploads.ts).
    await uploads.indexed();
    for (const candidate of uploads.idle(cutoff)) {
      if (this.stopped) break;
      const { repo, id } = candidate;
      const info = await roots.for(repo).staging.stat(uploadPath(repo, id));
      if (!info) {
        // Gone already (its repository's files removed by hand): nothing left to expire.
        await uploads.discard(repo, id);
        continue;
      }
      if (info.modTime.getTime() > cutoff(repo)) {
        // Written since the index last heard of it (the index is fed at the end of each request).
        uploads.touch(repo, id, info.modTime.getTime());
        continue;
      }
      try {
        // Held like a request holds it: a session with a request in progress is busy, not idle.
        await uploads.exclusive(repo, id, () => uploads.discard(repo, id));
      } catch (err) {
        if (err instanceof RegistryError) continue;
        throw err;
      }
      await store.append([{ type: 'UploadExpired', repo, uploadId: id, size: info.size }], { identity: SYSTEM_GC_IDENTITY });
      this.deps.onExpired?.(repo);
      expired++;
    }
    if (expired > 0) {
      this.deps.observe?.(expired);
      this.deps.logger.info({ sessions: expired }, 'expired idle upload sessions');
    }
    return expired;
  }

  /** Stops the checks and waits for one in progress to finish its current session. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.checking;
  }
}
