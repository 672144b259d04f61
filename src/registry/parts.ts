// What every part of the registry is built from: the storage roots, the event log and its
// projection, the hashing pool, the locks, the repository files and the upload sessions. The
// Registry facade builds one and hands it to each part.
import type { Logger } from 'pino';
import type { EventStore } from '../events/store.js';
import type { RegistryStateQueries } from '../projections/registry-state.js';
import type { StorageRoots } from '../storage/roots.js';
import type { HashPool } from '../workers/pool.js';
import type { RegistryLocks } from './locks.js';
import type { RepositoryFiles } from './repository-files.js';
import type { UploadSessions } from './uploads.js';

export interface RegistryParts {
  logger?: Logger;
  roots: StorageRoots;
  store: EventStore;
  queries: RegistryStateQueries;
  hashPool: HashPool;
  locks: RegistryLocks;
  files: RepositoryFiles;
  uploads: UploadSessions;
}
