// Worker-thread tasks of the piscina pool. Each task gets a path, never the bytes, so the main
// thread only moves file names around. CommonJS on purpose: the thread then loads it with a
// synchronous require(), never through Node 20's ESM loader, which can abort the whole process
// when a pool is destroyed while a thread is still instantiating an ES module.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { setPriority } from 'node:os';
import type { DigestAlgorithm } from '../oci/digest.js';

// On Linux a priority set with pid 0 applies to the calling thread only: hashing yields the CPU
// to the event loop, so requests keep their latency while a large blob is verified.
try {
  setPriority(0, 10);
} catch {
  // Not permitted or not supported: hash at normal priority.
}

export interface HashFileTask {
  path: string;
  algorithm: DigestAlgorithm;
}

const READ_BUFFER_BYTES = 1024 * 1024;
/** One read buffer per worker thread, reused: hashing a large blob makes no garbage. */
const buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);

/** Hex digest of the whole file. */
export async function hashFile(task: HashFileTask): Promise<string> {
  const hash = createHash(task.algorithm);
  const handle = await open(task.path, 'r');
  try {
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}
