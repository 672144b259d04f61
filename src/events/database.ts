// Opens the SQLite file that holds the event log and the projections.
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';

export type Db = Database.Database;

let sqliteAddon: object | undefined;

/**
 * better-sqlite3's native addon, loaded from where its install puts it (build/Release). Left to
 * itself, better-sqlite3 finds it through the `bindings` package, which locates the package by the
 * file names of a stack trace: that cannot work from inside the bundle of the CLI
 * (build/bundle.mjs), which holds better-sqlite3's JavaScript so that a start need not resolve,
 * read and compile its dozen files. An addon elsewhere (a build of its own) is still found by
 * `bindings`, from the package's own directory.
 */
function loadSqliteAddon(): object {
  if (sqliteAddon !== undefined) return sqliteAddon;
  const fromHere = createRequire(import.meta.url);
  const packageJson = fromHere.resolve('better-sqlite3/package.json');
  const packageRoot = path.dirname(packageJson);
  try {
    sqliteAddon = fromHere(path.join(packageRoot, 'build', 'Release', 'better_sqlite3.node')) as object;
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'MODULE_NOT_FOUND') throw err;
    const bindings = createRequire(packageJson)('bindings') as (options: { bindings: string; module_root: string }) => object;
    sqliteAddon = bindings({ bindings: 'better_sqlite3.node', module_root: packageRoot });
  }
  return sqliteAddon;
}

/** A better-sqlite3 connection (every one the registry opens goes through here, for the addon). */
function connect(file: string, options: Database.Options = {}): Db {
  // better-sqlite3 takes the addon object itself as nativeBinding; its types name only a path.
  return new Database(file, { ...options, nativeBinding: loadSqliteAddon() as unknown as string });
}

export interface OpenOptions {
  readonly?: boolean;
  /**
   * FULL (the default): a commit is on stable storage before it returns, as the log's appends need.
   * NORMAL: in WAL mode a commit does not wait for the disk; a power loss can roll back the last
   * commits, never tear one. For a connection whose writes can be replayed (the actors').
   * OFF: SQLite syncs nothing, not even the switch of a new file to WAL. For the event log's own
   * connection, whose EventStore syncs the log's files itself (src/events/store.ts).
   */
  synchronous?: 'FULL' | 'NORMAL' | 'OFF';
}

/** A database that lives in memory only (the metrics of a read-only registry, scratch projections). */
export function openMemoryDatabase(): Db {
  return connect(':memory:');
}

export function openDatabase(file: string, options: OpenOptions = {}): Db {
  if (!options.readonly) fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = connect(file, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
  // FULL: a committed append is on stable storage before the client hears about it. Set first: a
  // new file's switch to WAL is a commit of its own.
  db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
  // Readers never block the writer (and the CLI never blocks a running registry) in WAL mode.
  if (!options.readonly) db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  // The journal of a savepoint (each append of a group commit runs in one: src/events/store.ts)
  // stays in memory: past 64 KiB SQLite spills it to a new file in /var/tmp, which under a burst of
  // small pushes meant a file created, some fifty page writes and an unlink on the event loop for
  // one group commit in five. Nothing the registry runs builds large temporary tables (its
  // queries go through indexes), so memory holds no more than a group's changed pages.
  if (!options.readonly) db.pragma('temp_store = MEMORY');
  return db;
}
