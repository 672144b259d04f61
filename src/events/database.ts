// Opens the SQLite file that holds the event log and the projections.
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';

export type Db = Database.Database;

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
  return new Database(':memory:');
}

export function openDatabase(file: string, options: OpenOptions = {}): Db {
  if (!options.readonly) fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
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
