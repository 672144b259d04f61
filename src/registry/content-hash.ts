// Hashes bytes already in storage: in the worker pool when the driver has a local path, else
// (S3) by streaming them through node:crypto, which hashes in native code.
import { createHash } from 'node:crypto';
import type { DigestAlgorithm } from '../oci/digest.js';
import type { StorageDriver } from '../storage/driver.js';
import type { HashPool } from '../workers/pool.js';

export async function hashStoredContent(driver: StorageDriver, path: string, algorithm: DigestAlgorithm, pool: HashPool): Promise<string> {
  const local = driver.localPath(path);
  if (local !== undefined) return pool.hashFile({ path: local, algorithm });
  const hash = createHash(algorithm);
  for await (const chunk of await driver.reader(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
