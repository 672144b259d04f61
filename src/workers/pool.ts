// The piscina pool that hashes and verifies blobs off the event loop.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { RegistryError } from '../oci/errors.js';
import type { HashFileTask } from './hash-worker.cjs';

/** Hashes waiting for a thread; past this the registry answers 429 rather than queue without bound. */
export const MAX_QUEUED_HASHES = 1024;

export class HashPool {
  private readonly pool: Piscina;

  // One core is left to the event loop, which streams the uploads that the pool then hashes.
  constructor(readonly maxThreads = Math.max(1, availableParallelism() - 1)) {
    this.pool = new Piscina({
      filename: fileURLToPath(new URL('./hash-worker.cjs', import.meta.url)),
      // No thread at start: an idle registry keeps none (about 10 MiB and 200 ms of start-up CPU
      // each); the first hash after start or after idleTimeout starts one.
      minThreads: 0,
      maxThreads,
      maxQueue: MAX_QUEUED_HASHES,
      idleTimeout: 30_000,
      // A hashing thread holds one read buffer and little else; a small heap keeps its RSS small.
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 },
    });
  }

  hashFile(task: HashFileTask, signal?: AbortSignal): Promise<string> {
    if (this.pool.queueSize >= MAX_QUEUED_HASHES) {
      return Promise.reject(new RegistryError('TOOMANYREQUESTS', 'too many uploads are waiting for verification; retry later'));
    }
    return this.pool.run(task, { name: 'hashFile', ...(signal ? { signal } : {}) }) as Promise<string>;
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
