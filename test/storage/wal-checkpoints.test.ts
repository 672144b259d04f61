// The event log's WAL is checkpointed by a thread of its own, never inside a commit on the event
// loop. SQLite checkpoints in the commit that takes the -wal file past 1000 pages, with an fsync of
// the -wal file and one of the database file: the registry's event loop waited for the disk twice
// about once in fifty small pushes. `zot serve` runs under strace while a burst of images (several
// thousand WAL pages) is pushed, and then idles past the thread's interval: the database file is
// synced, by another thread than the event loop's.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it, type TestContext } from 'node:test';
import { pino } from 'pino';
import { openDatabase } from '../../src/events/database.js';
import { WalCheckpointer } from '../../src/events/wal-checkpointer.js';
import { pushBurst } from '../helpers/oci.js';
import { makeTempDir } from '../helpers/registry.js';
import { spawnTraced, stopTraced, tracedPid } from '../helpers/strace.js';

const IMAGES = 160;
const AT_ONCE = 16;

/** fsyncs of the event log's files in an `strace -f -ttt -y` trace, by thread, up to `until` (s). */
function logSyncs(trace: readonly string[], until: number): { tid: number; file: string }[] {
  const syncs: { tid: number; file: string }[] = [];
  for (const line of trace) {
    const match = /^(\d+) +(\d+\.\d+) fsync\(\d+<([^>]*\/events\.db(?:-wal)?)>/.exec(line);
    if (match && Number(match[2]) <= until) syncs.push({ tid: Number(match[1]), file: path.basename(match[3] as string) });
  }
  return syncs;
}

describe('WAL checkpoints of the event log', () => {
  it('run on a thread of their own: the event loop never syncs the database file', async (t: TestContext) => {
    const traced = await spawnTraced(t, ['-ttt', '-y', '-e', 'trace=fsync']);
    if (!traced) return;
    const { registry, traceFile, root } = traced;
    let beforeStop: number;
    let mainThread: number;
    try {
      mainThread = tracedPid(registry.child.pid as number);
      await pushBurst(registry.url, IMAGES, AT_ONCE);
      // The thread copies a burst's pages within a second of its first commit.
      await sleep(2500);
      // The close of the last connection checkpoints what is left, on the event loop: not counted.
      beforeStop = Date.now() / 1000;
    } finally {
      await stopTraced(registry.child);
    }
    const syncs = logSyncs(fs.readFileSync(traceFile, 'utf8').split('\n'), beforeStop);
    const databaseSyncs = syncs.filter((sync) => sync.file === 'events.db');
    assert.ok(databaseSyncs.length > 0, `the database file was synced (a checkpoint ran): ${JSON.stringify(syncs.slice(0, 5))}`);
    assert.deepEqual(
      databaseSyncs.filter((sync) => sync.tid === mainThread),
      [],
      'no checkpoint on the event loop',
    );
    assert.ok(fs.existsSync(path.join(root, '.zot-ts', 'events.db')));
  });

  it('fall back to SQLite checkpointing in the commits when the thread cannot run', async () => {
    const dir = makeTempDir('zot-ts-wal-');
    const file = path.join(dir, 'events.db');
    const db = openDatabase(file, { synchronous: 'NORMAL' });
    const logged: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void logged.push(line) });
    // A module that throws as the thread loads it.
    const broken = path.join(dir, 'broken-worker.cjs');
    fs.writeFileSync(broken, "throw new Error('no checkpoints here');\n");
    const checkpointer = new WalCheckpointer(file, [db], logger, { workerFile: broken });
    try {
      assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 16_384, 'the commits leave checkpoints to the thread');
      checkpointer.committed();
      for (let i = 0; i < 200 && db.pragma('wal_autocheckpoint', { simple: true }) !== 1000; i++) await sleep(10);
      assert.equal(db.pragma('wal_autocheckpoint', { simple: true }), 1000, "the commits checkpoint again, at SQLite's default");
      assert.ok(
        logged.some((line) => line.includes('the checkpoint thread stopped') && line.includes('no checkpoints here')),
        `the fall-back is logged with its cause: ${logged.join('')}`,
      );
      checkpointer.committed(); // no second thread
      await checkpointer.stop();
    } finally {
      db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('never keeps the process alive: a process that ends without stop() exits', async () => {
    const dir = makeTempDir('zot-ts-wal-');
    // The process opens a log, commits, and returns from its script with the thread running.
    const script = `
      import { openDatabase } from ${JSON.stringify(new URL('../../src/events/database.js', import.meta.url).href)};
      import { WalCheckpointer } from ${JSON.stringify(new URL('../../src/events/wal-checkpointer.js', import.meta.url).href)};
      import { pino } from 'pino';
      const file = ${JSON.stringify(path.join(dir, 'events.db'))};
      const db = openDatabase(file, { synchronous: 'NORMAL' });
      const checkpointer = new WalCheckpointer(file, [db], pino({ level: 'silent' }), { intervalMs: 50 });
      db.exec('CREATE TABLE t (x)');
      checkpointer.committed();
      setTimeout(() => process.stdout.write('done'), 300);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: path.dirname(fileURLToPath(import.meta.url)), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    try {
      assert.equal(await exited, 0, `the process exited by itself: ${output}`);
      assert.equal(output, 'done');
    } finally {
      clearTimeout(timer);
    }
  });

  it('a checkpoint thread copies what was committed and stops with the registry', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zot-ts-wal-'));
    const file = path.join(dir, 'events.db');
    const db = openDatabase(file, { synchronous: 'NORMAL' });
    const checkpointer = new WalCheckpointer(file, [db], pino({ level: 'silent' }), { intervalMs: 50 });
    try {
      db.exec('CREATE TABLE filler (x TEXT)');
      const insert = db.prepare('INSERT INTO filler VALUES (?)');
      const sizeBefore = fs.statSync(file).size;
      for (let i = 0; i < 50; i++) {
        insert.run('x'.repeat(4000));
        checkpointer.committed();
      }
      for (let i = 0; i < 300 && checkpointer.checkpoints === 0; i++) await sleep(10);
      assert.ok(checkpointer.checkpoints > 0, 'the thread checkpointed');
      // Fewer pages than SQLite's own threshold: only the thread can have copied them.
      assert.ok(fs.statSync(file).size > sizeBefore + 50 * 4000, `the database file holds the rows (${fs.statSync(file).size} bytes)`);
      await checkpointer.stop();
      const afterStop = checkpointer.checkpoints;
      insert.run('y');
      checkpointer.committed();
      await sleep(150);
      assert.equal(checkpointer.checkpoints, afterStop, 'no checkpoint after stop');
    } finally {
      db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
