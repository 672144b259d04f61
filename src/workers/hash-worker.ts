// Worker-thread tasks of the piscina pool. Each task gets a path, never the bytes, so the main
// thread only moves file names around.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export interface HashFileTask {
  path: string;
  algorithm: 'sha256' | 'sha512';
}

const READ_BUFFER_BYTES = 1024 * 1024;

/** Hex digest of the whole file. */
export async function hashFile(task: HashFileTask): Promise<string> {
  const hash = createHash(task.algorithm);
  for await (const chunk of createReadStream(task.path, { highWaterMark: READ_BUFFER_BYTES })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}
