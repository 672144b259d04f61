// The piscina pool that hashes and verifies blobs off the event loop.
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { HashFileTask } from './hash-worker.js';

export class HashPool {
  private readonly pool: Piscina;

  constructor(maxThreads = Math.max(1, availableParallelism())) {
    this.pool = new Piscina({
      filename: new URL('./hash-worker.js', import.meta.url).href,
      minThreads: 1,
      maxThreads,
      // Bounded: past this, callers wait in their own request rather than queueing without limit.
      maxQueue: 'auto',
      idleTimeout: 30_000,
    });
  }

  hashFile(task: HashFileTask, signal?: AbortSignal): Promise<string> {
    return this.pool.run(task, { name: 'hashFile', ...(signal ? { signal } : {}) }) as Promise<string>;
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
