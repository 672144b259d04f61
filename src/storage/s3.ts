// The S3 driver: placeholder until the driver lands (being written now).
import type { StorageDriverConfig } from '../config/types.js';
import type { StorageDriver } from './driver.js';

export function createS3Driver(config: StorageDriverConfig): StorageDriver {
  throw new Error(`storage driver ${config.name} is not built yet`);
}
