// kill -9 while whole blobs are pushed in one request: a POST ?digest= with the body, and a closing
// PUT that carries the whole blob on a session with no bytes. Their bodies go to temporary files
// renamed into place, with no session file (blob-commit.ts, commitBody). After the restart every
// blob answered 201 is served whole, the temporary directory holds nothing, a POST ?digest= left
// no session behind, an interrupted PUT's session is still open and empty (its retry commits it),
// and `zot replay` finds no drift.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { eventually, resolveLocation, sessionStatus, withDigest } from '../helpers/http.js';
import { sha256 } from '../helpers/oci.js';
import { assertAcknowledgedPull, type Acknowledged } from '../helpers/pull.js';
import { makeTempDir, runZot, spawnRegistry, type RegistryProcess } from '../helpers/registry.js';

const ROUNDS = 3;
const WORKERS = 8;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Small bodies (hashed on the event loop), larger ones (hashed by the pool, long enough to be cut by
 * the crash), and some past 8 MiB (their temporary file also synced in the background as they arrive).
 */
function body(n: number): Buffer {
  if (n % 9 === 0) return randomBytes(8 * 1024 * 1024 + Math.floor(Math.random() * 8 * 1024 * 1024));
  return randomBytes(n % 3 === 0 ? 512 * 1024 + Math.floor(Math.random() * 1024 * 1024) : 256 + Math.floor(Math.random() * 24 * 1024));
}

/** A session whose closing PUT with the whole blob was in flight at the crash. */
interface OpenPut {
  repo: string;
  location: string;
  data: Buffer;
}

/**
 * Pushes whole blobs until `stopped()`: even workers by POST ?digest=, odd ones by POST and a
 * closing PUT with the body. Resolves with the first failure seen before the crash, if any.
 */
async function pushWorker(url: string, worker: number, stopped: () => boolean, acked: Acknowledged[], openPuts: OpenPut[]): Promise<string | undefined> {
  const repo = `whole/w${worker}`;
  for (let n = 0; !stopped(); n++) {
    const data = body(n);
    const digest = sha256(data);
    let open: OpenPut | undefined;
    try {
      let res: Response;
      if (worker % 2 === 0) {
        res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: data });
      } else {
        const opened = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
        await opened.arrayBuffer();
        if (opened.status !== 202) return `worker ${worker}: POST answered ${opened.status}`;
        open = { repo, location: resolveLocation(url, opened), data };
        openPuts.push(open);
        res = await fetch(withDigest(open.location, digest), { method: 'PUT', body: data });
      }
      const text = await res.text();
      if (res.status !== 201) return stopped() ? undefined : `worker ${worker}: push answered ${res.status}: ${text}`;
      acked.push({ kind: 'blob', repo, digest, size: data.length });
      if (open) openPuts.splice(openPuts.indexOf(open), 1);
    } catch (err) {
      // A refused or reset connection is the crash; anything before it is a real failure.
      if (!stopped()) return `worker ${worker}: ${(err as Error).message}`;
    }
  }
  return undefined;
}

/** Files under the root's repositories' .uploads directories, by repository. */
function sessionFiles(root: string, repo: string): string[] {
  const dir = path.join(root, repo, '.uploads');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

describe('kill -9 while whole blobs are pushed in one request', () => {
  const processes = new Set<RegistryProcess>();
  after(async () => {
    for (const registry of processes) await registry.kill();
  });

  it(`keeps every acknowledged blob and leaves no temporary file or stray session, over ${ROUNDS} crashes`, async () => {
    const root = `${makeTempDir('zot-ts-whole-crash-')}/root`;
    const acked: Acknowledged[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const registry = await spawnRegistry({ root });
      processes.add(registry);
      let killed = false;
      const ackedBefore = acked.length;
      const openPuts: OpenPut[] = [];
      const workers = Array.from({ length: WORKERS }, (_, worker) => pushWorker(registry.url, worker, () => killed, acked, openPuts));
      await eventually(async () => acked.length > ackedBefore + WORKERS, `round ${round}: pushes acknowledged`, 30_000);
      await sleep(Math.random() * 500);
      killed = true;
      await registry.kill();
      processes.delete(registry);
      assert.deepEqual((await Promise.all(workers)).flatMap((failure) => (failure ? [failure] : [])), [], 'no push failed before the crash');

      const restarted = await spawnRegistry({ root });
      processes.add(restarted);
      await assertAcknowledgedPull(restarted.url, acked);
      const temporary = path.join(root, '.zot-ts', 'tmp');
      assert.deepEqual(fs.existsSync(temporary) ? fs.readdirSync(temporary) : [], [], 'the start cleared the temporary files');
      for (let worker = 0; worker < WORKERS; worker += 2) {
        assert.deepEqual(sessionFiles(root, `whole/w${worker}`), [], `a POST ?digest= leaves no session file (worker ${worker})`);
      }
      // A PUT cut by the crash either committed, or left its session as the POST opened it.
      for (const open of openPuts) {
        // The restarted registry listens on another port.
        const location = `${restarted.url}${new URL(open.location).pathname}`;
        const status = await sessionStatus(location);
        if (status.status === 404) {
          const served = await fetch(`${restarted.url}/v2/${open.repo}/blobs/${sha256(open.data)}`);
          await served.arrayBuffer();
          assert.equal(served.status, 200, 'a session gone after the crash was committed');
          continue;
        }
        assert.equal(status.status, 204);
        assert.equal(status.range, '0-0', 'the interrupted session holds no bytes');
        const retried = await fetch(withDigest(location, sha256(open.data)), { method: 'PUT', body: open.data });
        assert.equal(retried.status, 201, await retried.text());
      }
      assert.equal(await restarted.stop(), 0, restarted.output());
      processes.delete(restarted);
      const replay = await runZot(['replay', restarted.configPath]);
      assert.equal(replay.code, 0, `round ${round}: replay found drift:\n${replay.stdout}${replay.stderr}`);
      assert.doesNotMatch(replay.stdout, /^drift:/m);
    }
  });
});
