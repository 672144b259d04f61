// Directories made durable: a name created in a directory survives a power cut only once that
// directory is fsynced, and a new directory is itself a name in its parent. mkdir -p alone would
// let the first blob of a new repository vanish after a power cut while its event survives.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

/**
 * fsync(2) of a directory: the names created or removed in it before the call survive a power cut.
 * Calls for one directory share fsyncs, as the event log's appends do: a call joins the next fsync
 * of that directory if it has not started yet; the next one starts a turn of the event loop later
 * (so the calls of one turn share it) and never while another runs (the calls made meanwhile wait
 * and share the one after it). New repositories side by side (`ns/a`, `ns/b`) then sync `ns` once
 * together, and the files of one new directory once.
 */
export function syncDirectory(dir: string): Promise<void> {
  let syncs = directorySyncs.get(dir);
  if (!syncs) {
    syncs = { running: undefined, next: undefined };
    directorySyncs.set(dir, syncs);
  }
  if (syncs.next) return syncs.next;
  const state = syncs;
  const after = state.running ?? Promise.resolve();
  const next = after
    .catch(() => undefined)
    .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
    .then(() => {
      // Started: later calls wait for the one after this.
      state.next = undefined;
      state.running = next;
      return fsyncDirectory(dir);
    })
    .finally(() => {
      if (state.running === next) state.running = undefined;
      if (state.running === undefined && state.next === undefined && directorySyncs.get(dir) === state) directorySyncs.delete(dir);
    });
  state.next = next;
  return next;
}

/** Per directory: the fsync under way, and the one that calls made meanwhile wait for. */
interface DirectorySyncs {
  running: Promise<void> | undefined;
  next: Promise<void> | undefined;
}

const directorySyncs = new Map<string, DirectorySyncs>();

/**
 * Only the fsync, which waits for the disk, goes to the libuv pool. The open and the close run on
 * the event loop: a directory just written in is in the kernel's caches, so each takes
 * microseconds, where as a pool job each cost two thread switches (~8 directory syncs per small
 * image pushed into a new repository).
 */
async function fsyncDirectory(dir: string): Promise<void> {
  const fd = fs.openSync(dir, 'r');
  try {
    await fsyncDescriptor(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Directories being created, by absolute path: a second caller waits for the first one's parent
 * fsync instead of going on (EEXIST) before the new name is durable. One map for the process, as
 * two drivers may share a tree (a subPath inside the default root).
 */
const inCreation = new Map<string, Promise<void>>();

/**
 * Makes `dir` (absolute) exist durably: each missing level is created, outermost first, and its
 * parent fsynced before the next level. A directory that exists already costs one mkdir(2) and no fsync.
 */
export function ensureDirectory(dir: string): Promise<void> {
  let creating = inCreation.get(dir);
  if (!creating) {
    creating = (undurable.size > 0 ? syncUndurableLevels([dir]).then(() => createLevel(dir)) : createLevel(dir)).finally(() => inCreation.delete(dir));
    inCreation.set(dir, creating);
  }
  return creating;
}

/**
 * Levels this process made whose parent it could not sync: the fsync failed, or never ran because
 * the rest of the creation failed first (a full disk, an I/O error). They exist, so the next mkdir
 * finds them (EEXIST) and would go on as if their creator had made them durable, and a blob
 * written beneath one would lose its path at a power cut while its event survives. The next
 * creation or write at or beneath such a level syncs its parent first (syncUndurableLevels).
 * Kept for the life of the process: after a restart, the kernel has long written such entries.
 */
const undurable = new Set<string>();

/**
 * Syncs the parent of every level in `undurable` that is one of `dirs` or above one, so the
 * caller's new name has a durable path. Costs one Set lookup per level while nothing failed.
 */
async function syncUndurableLevels(dirs: readonly string[]): Promise<void> {
  await syncParentsOf(undurableAtOrAbove(dirs));
}

/** Syncs each level's parent, side by side; the level is then no longer undurable. */
async function syncParentsOf(levels: readonly string[]): Promise<void> {
  await settleAll(
    levels.map(async (level) => {
      try {
        await syncDirectory(path.dirname(level));
      } catch (err) {
        // Its parent is gone (GC removed both): a new creation makes and syncs them afresh.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      undurable.delete(level);
    }),
  );
}

/** The levels in `undurable` that are one of `dirs` or above one. */
function undurableAtOrAbove(dirs: readonly string[]): string[] {
  if (undurable.size === 0) return [];
  return [...new Set(levelsAtOrAbove(dirs))].filter((level) => undurable.has(level));
}

/** Each of `dirs` and every directory above it, up to the filesystem's root. */
function* levelsAtOrAbove(dirs: readonly string[]): Generator<string> {
  for (const dir of dirs) {
    for (let level = dir; ; level = path.dirname(level)) {
      yield level;
      if (path.dirname(level) === level) break;
    }
  }
}

/** Notes levels made by a creation that failed before their parents were all synced. */
function madeUndurably(levels: readonly string[]): void {
  for (const level of levels) undurable.add(level);
}

/**
 * Runs `write`, which makes a name in `dir` (absolute), with `dir` durable as ensureDirectory
 * would leave it, but without its mkdir(2) when `dir` is there, as it nearly always is: a `dir`
 * being created is waited for (its parent's fsync), and only a write that finds it missing
 * (ENOENT) makes it and runs again. `write` must be safe to run again after an ENOENT.
 */
export async function inDirectory<T>(dir: string, write: () => Promise<T>): Promise<T> {
  const creating = inCreation.get(dir);
  if (creating) await creating;
  if (undurable.size > 0) await syncUndurableLevels([dir]);
  try {
    return await write();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await ensureDirectory(dir);
  return write();
}

/** A small file for createTogether: its absolute path and content. */
export interface NewFile {
  path: string;
  content: Buffer | string;
}

/**
 * Makes directories and small files that no event names yet (a new repository's layout) exist
 * durably with one wait for the disk, where ensureDirectory and a durable write would wait level
 * after level: every missing level is made, every file written in place and every path of
 * `absent` (a file an earlier layout left) removed, on the event loop (metadata and a few bytes
 * into the kernel's caches), then the files and the directories of every name made or removed
 * are synced side by side. Meanwhile the levels made count as being created, so inDirectory and
 * ensureDirectory callers wait for their syncs and GC leaves their parents. A crash before the
 * syncs end may leave some of it, possibly a short file: its owner writes it all again (the
 * repository is still new to the log).
 */
export async function createTogether(dirs: readonly string[], files: readonly NewFile[], absent: readonly string[] = []): Promise<void> {
  // The directories that get a name written or removed, beside the levels to make.
  const holders = [...files.map((file) => file.path), ...absent].map((name) => path.dirname(name));
  const paths = [...dirs, ...holders];
  // Another creation of one of these levels or above them goes first: its syncs are its own. Then
  // the levels a failed creation left (one of those, possibly): their parents synced before
  // anything goes beneath them.
  for (;;) {
    const pending = creationsAtOrAbove(paths);
    if (pending.length > 0) {
      await Promise.allSettled(pending);
      continue;
    }
    const undurableLevels = undurableAtOrAbove(paths);
    if (undurableLevels.length === 0) break;
    await syncParentsOf(undurableLevels);
  }
  // From here to the registration below nothing yields: no other creation can start in between.
  const made: string[] = [];
  const descriptors: number[] = [];
  try {
    for (const dir of dirs) makeLevels(dir, made);
    for (const file of files) {
      const fd = fs.openSync(file.path, 'w');
      descriptors.push(fd);
      fs.writeFileSync(fd, file.content);
    }
    for (const file of absent) removeIfThere(file);
  } catch (err) {
    for (const fd of descriptors) fs.closeSync(fd);
    madeUndurably(made);
    throw err;
  }
  const parents = new Set([...made.map((level) => path.dirname(level)), ...holders]);
  const durable = settleAll([...descriptors.map(fsyncDescriptor), ...[...parents].map(syncDirectory)])
    .catch((err: unknown) => {
      madeUndurably(made);
      throw err;
    })
    .finally(() => {
      for (const fd of descriptors) fs.closeSync(fd);
      for (const level of made) if (inCreation.get(level) === durable) inCreation.delete(level);
    });
  for (const level of made) inCreation.set(level, durable);
  await durable;
}

/**
 * unlink(2) of a file that is usually not there, looked for first: a failed unlinkSync costs an
 * Error with its stack, some ten times the lookup.
 */
function removeIfThere(file: string): void {
  if (!fs.existsSync(file)) return;
  try {
    fs.unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** The creations under way of any of `dirs` or of a directory above one. */
function creationsAtOrAbove(dirs: readonly string[]): Promise<void>[] {
  const found = new Set<Promise<void>>();
  for (const level of levelsAtOrAbove(dirs)) {
    const creating = inCreation.get(level);
    if (creating) found.add(creating);
  }
  return [...found];
}

/**
 * mkdir -p of `dir`, synchronously, level by level: each level made is added to `made`, outermost
 * first, as soon as it exists, so a creation that fails part-way knows what it left.
 */
function makeLevels(dir: string, made: string[]): void {
  const parent = path.dirname(dir);
  for (let attempt = 1; ; attempt++) {
    try {
      fs.mkdirSync(dir);
      made.push(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return;
      // A missing parent is made first; one that GC removed (from the pool's threads) between
      // two steps is made again, as createLevel does.
      if (code !== 'ENOENT' || parent === dir || attempt === CREATE_ATTEMPTS) throw err;
      makeLevels(parent, made);
    }
  }
}

/** fsync(2) in the pool of a descriptor opened on the event loop. */
export function fsyncDescriptor(fd: number): Promise<void> {
  return new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
}

/** Waits for every promise to settle, then rejects with the first failure, if any. */
export async function settleAll(work: readonly Promise<void>[]): Promise<void> {
  const failed = (await Promise.allSettled(work)).find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}

/**
 * How often a level is tried when its parent vanishes between being made and being used: GC
 * removes an empty parent shared with another repository (`ns` of `ns/a` and `ns/b`), and a removal
 * already under way when this creation began can still land (later ones wait, see
 * removeEmptyDirectory).
 */
const CREATE_ATTEMPTS = 4;

async function createLevel(dir: string): Promise<void> {
  const parent = path.dirname(dir);
  for (let attempt = 1; ; attempt++) {
    try {
      await fsp.mkdir(dir);
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Another caller or process made it meanwhile; syncing its parent is its creator's part.
      if (code === 'EEXIST') return;
      if (code !== 'ENOENT' || parent === dir || attempt === CREATE_ATTEMPTS) throw err;
      await ensureDirectory(parent);
    }
  }
  try {
    await syncDirectory(parent);
  } catch (err) {
    madeUndurably([dir]);
    throw err;
  }
}

/**
 * rmdir(2) of `dir` (absolute) if it is empty; false when it is not, or when a directory beneath
 * it is being created in this process (removing the parent would pull the ground from under it).
 */
export async function removeEmptyDirectory(dir: string): Promise<boolean> {
  const beneath = dir + path.sep;
  for (const creating of inCreation.keys()) if (creating.startsWith(beneath)) return false;
  try {
    await fsp.rmdir(dir);
    undurable.delete(dir);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      undurable.delete(dir);
      return true;
    }
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
    throw err;
  }
}

/** ensureDirectory for start-up, before anything runs concurrently. */
export function ensureDirectorySync(dir: string): void {
  const parent = path.dirname(dir);
  try {
    fs.mkdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || parent === dir) throw err;
    ensureDirectorySync(parent);
    fs.mkdirSync(dir);
  }
  const fd = fs.openSync(parent, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
