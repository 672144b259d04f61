// An fsync of the event log that fails (EIO) leaves the appends it covered committed but not known
// to be durable. The registry then acknowledges nothing of them, refuses every further write with
// 503 and OCI error JSON, says so once in its log, and answers 503 on /readyz and /livez so an
// orchestrator restarts it; reads go on. After the restart, writes succeed and replay is clean.
// The failure is real: strace attaches to the running `zot serve` and makes the kernel's answer
// to every fsync of the log's WAL file EIO (strace's syscall fault injection).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { eventLogFile } from '../../src/storage/layout.js';
import { eventually, expectOciError } from '../helpers/http.js';
import { pushBlob, sha256 } from '../helpers/oci.js';
import { makeTempDir, runZot, spawnRegistry } from '../helpers/registry.js';
import { straceUnavailable } from '../helpers/strace.js';

/** Attaches strace to every thread of `pid`, failing each fsync/fdatasync of `file` with EIO. */
async function failSyncsOf(pid: number, file: string): Promise<ChildProcess> {
  const strace = spawn(
    'strace',
    ['-f', '-p', String(pid), '-o', '/dev/null', '-P', file, '-e', 'trace=fsync,fdatasync', '-e', 'inject=fsync,fdatasync:error=EIO'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  strace.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  await eventually(async () => /attached/.test(stderr) || strace.exitCode !== null, 'strace attached');
  assert.equal(strace.exitCode, null, `strace could not attach: ${stderr}`);
  return strace;
}

async function detach(strace: ChildProcess): Promise<void> {
  if (strace.exitCode !== null) return;
  const exited = new Promise((resolve) => strace.once('exit', resolve));
  strace.kill('SIGINT');
  await exited;
}

const status = async (url: string): Promise<number> => (await fetch(url)).status;

describe('the event log fails to sync to disk', () => {
  it('writes get 503 and nothing is acknowledged, probes say so, reads go on; a restart mends it and replay is clean', async (t: TestContext) => {
    const cannot = straceUnavailable();
    if (cannot) {
      t.skip(cannot);
      return;
    }
    const root = path.join(makeTempDir('zot-ts-log-sync-'), 'root');
    // At info: the log says when the shutdown is over.
    const first = await spawnRegistry({ root, log: { level: 'info' } });
    let strace: ChildProcess | undefined;
    try {
      const before = Buffer.from('a blob pushed while the disk still syncs');
      assert.equal(await pushBlob(first.url, 'sync/app', before), sha256(before));

      strace = await failSyncsOf(first.child.pid as number, `${eventLogFile(root)}-wal`);
      const during = Buffer.from('a blob whose event the disk cannot sync');
      const failed = await fetch(`${first.url}/v2/sync/app/blobs/uploads/?digest=${sha256(during)}`, { method: 'POST', body: during });
      const body = await expectOciError(failed, 503, 'UNKNOWN');
      assert.match(body.errors[0]?.message ?? '', /event log/);
      // Every later write is refused the same way, without touching the disk's log again.
      const another = await fetch(`${first.url}/v2/sync/other/blobs/uploads/?digest=${sha256(Buffer.from('x'))}`, { method: 'POST', body: 'x' });
      await expectOciError(another, 503, 'UNKNOWN');

      assert.equal(await status(`${first.url}/readyz`), 503);
      assert.equal(await status(`${first.url}/livez`), 503);
      // Reads go on.
      const read = await fetch(`${first.url}/v2/sync/app/blobs/${sha256(before)}`);
      assert.equal(read.status, 200);
      assert.ok(Buffer.from(await read.arrayBuffer()).equals(before));
      const said = first.output().split('\n').filter((line) => line.includes('failed to sync the event log to disk'));
      assert.equal(said.length, 1, first.output());
      assert.match(said[0] as string, /"level":50/);
    } finally {
      if (strace) await detach(strace);
      await first.stop();
    }
    // Its shutdown ran to the end, not waiting for actors to reach events the log never published.
    assert.match(first.output(), /"msg":"registry stopped"/);

    const second = await spawnRegistry({ root });
    try {
      await eventually(async () => (await status(`${second.url}/readyz`)) === 200, 'ready after the restart');
      assert.equal(await status(`${second.url}/livez`), 200);
      const after = Buffer.from('a blob pushed after the restart');
      assert.equal(await pushBlob(second.url, 'sync/app', after), sha256(after));
      const pulled = await fetch(`${second.url}/v2/sync/app/blobs/${sha256(after)}`);
      assert.ok(Buffer.from(await pulled.arrayBuffer()).equals(after));
    } finally {
      await second.stop();
    }
    const replay = await runZot(['replay', second.configPath]);
    assert.equal(replay.code, 0, replay.stdout + replay.stderr);
  });
});
