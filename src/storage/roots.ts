// Storage roots: the default root and one per subPath, each with its own directory, driver,
// dedupe and GC settings. A repository lives in exactly one root: the subPath with the longest
// route that is a path prefix of its name, else the default root.
//
//   storage.rootDirectory          default root: the event log lives here, under .zot-ts/
//   storage.subPaths["/a"]         repositories a/... (not "a" itself, as zot routes them)
//   storage.subPaths["/a/b"]       repositories a/b/... (the longer route wins)
//
// For an S3 root, rootDirectory stays a local directory: upload sessions are staged there (their
// full parts also go to the bucket as they arrive) and land in the bucket when they commit.
import * as path from 'node:path';
import type { StorageConfig, StorageDriverConfig, SubPathConfig } from '../config/types.js';
import { storeSettings, type StoreKind } from '../config/store-settings.js';
import { ensureDirectorySync } from './directories.js';
import type { StorageDriver } from './driver.js';
import { FilesystemDriver } from './filesystem.js';
import { TEMP_DIR } from './layout.js';

export interface StorageRoot {
  /** '' for the default root, else the subPath route without its slashes, e.g. "a/b". */
  readonly route: string;
  /** The local directory of this root (absolute). */
  readonly rootDirectory: string;
  /** Where repositories' layouts live: blobs, manifests, index.json, oci-layout. */
  readonly driver: StorageDriver;
  /** Where upload sessions live: always a local filesystem. The same object as `driver` when that is one. */
  readonly staging: FilesystemDriver;
  readonly dedupe: boolean;
  readonly gc: boolean;
  readonly gcDelayMs: number;
  readonly gcIntervalMs: number;
  /**
   * Whether a second name for bytes is a hard link to the same copy (filesystem), so any one name
   * can be deleted alone; on an object store a second name would be a second copy.
   */
  readonly hardLinks: boolean;
}

export class StorageRoots {
  private readonly byLongestRoute: StorageRoot[];

  constructor(readonly roots: readonly StorageRoot[]) {
    if (!roots.some((root) => root.route === '')) throw new Error('storage roots need a default root');
    this.byLongestRoute = [...roots].sort((a, b) => b.route.length - a.route.length);
  }

  get defaultRoot(): StorageRoot {
    return this.roots.find((root) => root.route === '') as StorageRoot;
  }

  /** The root a repository lives in. */
  for(repo: string): StorageRoot {
    return this.byLongestRoute.find((root) => root.route === '' || repo.startsWith(`${root.route}/`)) as StorageRoot;
  }

  /** Whether a repository's name routes to this root (a root's tree may hold names of others). */
  owns(root: StorageRoot, repo: string): boolean {
    return this.for(repo) === root;
  }

  /** Releases what drivers hold open (an S3 client's sockets, temporary files made ahead). */
  close(): void {
    for (const root of this.roots) {
      root.driver.destroy?.();
      if (root.staging !== root.driver) root.staging.destroy();
    }
  }

  /** Clears what a crash left in every staging directory; only before any write starts. */
  async clearTemporaryFiles(): Promise<void> {
    const seen = new Set<FilesystemDriver>();
    for (const root of this.roots) {
      if (seen.has(root.staging)) continue;
      seen.add(root.staging);
      await root.staging.clearTemporaryFiles();
    }
  }
}

export function linksShareBytes(root: StorageRoot): boolean {
  return root.hardLinks;
}

export interface StorageRootOptions {
  makeS3?: (config: StorageDriverConfig) => StorageDriver;
  /**
   * Wraps every driver a root uses (tests inject faults this way, around the real driver). It
   * must keep the driver's type: a filesystem driver stays usable as a root's staging.
   */
  wrapDriver?: <T extends StorageDriver>(driver: T, route: string) => T;
  /** Create each root's local directory when missing (a read-only registry creates nothing). */
  createDirectories?: boolean;
}

/**
 * The roots a validated storage config describes, as storageRootsFromConfig builds them. The S3
 * driver's module (and the AWS SDK under it, the largest library we have) is loaded only when a
 * root uses it.
 */
export async function openStorageRoots(storage: StorageConfig, options: StorageRootOptions = {}): Promise<StorageRoots> {
  const usesS3 = [storage, ...Object.values(storage.subPaths ?? {})].some((settings) => settings.storageDriver !== undefined);
  if (options.makeS3 !== undefined || !usesS3) return storageRootsFromConfig(storage, options);
  const { createS3Driver } = await import('./s3.js');
  return storageRootsFromConfig(storage, { ...options, makeS3: createS3Driver });
}

/**
 * Builds the roots a validated storage config describes, creating their local directories unless
 * told not to. A config with an S3 root needs options.makeS3 (openStorageRoots provides it).
 */
export function storageRootsFromConfig(storage: StorageConfig, options: StorageRootOptions = {}): StorageRoots {
  const makeS3 =
    options.makeS3 ??
    ((): StorageDriver => {
      throw new Error('an S3 storage root needs the S3 driver: open the roots with openStorageRoots');
    });
  const wrap = options.wrapDriver ?? (<T extends StorageDriver>(driver: T) => driver);
  const stagingByDirectory = new Map<string, FilesystemDriver>();
  // A subPath takes zot's subPath defaults for what it leaves out, not the default root's settings.
  const build = (route: string, settings: SubPathConfig, kind: StoreKind): StorageRoot => {
    const rootDirectory = path.resolve(settings.rootDirectory);
    if (options.createDirectories !== false) ensureDirectorySync(rootDirectory);
    let staging = stagingByDirectory.get(rootDirectory);
    if (!staging) {
      staging = wrap(new FilesystemDriver(rootDirectory, TEMP_DIR), route);
      stagingByDirectory.set(rootDirectory, staging);
    }
    const driver = settings.storageDriver ? wrap(makeS3(settings.storageDriver), route) : staging;
    return {
      route,
      rootDirectory,
      driver,
      staging,
      ...storeSettings(settings, kind),
      hardLinks: settings.storageDriver === undefined,
    };
  };
  const main = build('', storage, 'default root');
  const subRoots = Object.entries(storage.subPaths ?? {}).map(([route, sub]) => build(subPathRoute(route), sub, 'subPath'));
  return new StorageRoots([main, ...subRoots]);
}

/** A subPaths key ("/a/b/") as the route it names ("a/b"). */
export function subPathRoute(key: string): string {
  return key.replace(/^\/+|\/+$/g, '');
}
