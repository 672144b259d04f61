// Directories made durable: a name created in a directory survives a power cut only once that
// directory is fsynced, and a new directory is itself a name in its parent. mkdir -p alone would
// let the first blob of a new repository vanish after a power cut while its event survives.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

/** fsync(2) of a directory: the names created or removed in it survive a power cut. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
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
    creating = createLevel(dir).finally(() => inCreation.delete(dir));
    inCreation.set(dir, creating);
  }
  return creating;
}

async function createLevel(dir: string): Promise<void> {
  const parent = path.dirname(dir);
  try {
    await fsp.mkdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || parent === dir) throw err;
    await ensureDirectory(parent);
    try {
      await fsp.mkdir(dir);
    } catch (again) {
      // Another process made it meanwhile; syncing its parent is its creator's part.
      if ((again as NodeJS.ErrnoException).code === 'EEXIST') return;
      throw again;
    }
  }
  await syncDirectory(parent);
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
