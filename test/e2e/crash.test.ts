// kill -9 during a stream of concurrent pushes, then restart on the same root. Checked from the
// client's side (test/helpers/pull.ts, sharing no code with the registry): every blob and manifest
// the registry acknowledged is served whole, by digest and by tag, and everything listed pulls
// whole. Then `zot replay`: the event log replays without drift (orphans are only notes).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { eventually } from '../helpers/http.js';
import { makeImage, pushManifest, sha256 } from '../helpers/oci.js';
import { assertAcknowledgedPull, assertListedPullWhole, type Acknowledged } from '../helpers/pull.js';
import { makeTempDir, runZot, spawnRegistry, type RegistryProcess } from '../helpers/registry.js';

const ROUNDS = 3;
const WORKERS = 6;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Monolithic blob upload, answering its status (a dropped connection throws). */
async function pushBlobAcknowledged(url: string, repo: string, data: Buffer): Promise<{ status: number }> {
  const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: data,
  });
  await res.arrayBuffer();
  return { status: res.status };
}

/**
 * Pushes images until `stopped()`, recording every blob and manifest answered 201. Resolves (never
 * rejects) with the number of attempts and the first failure seen before the crash, if any.
 */
async function pushWorker(
  url: string,
  worker: number,
  round: number,
  stopped: () => boolean,
  acked: Acknowledged[],
): Promise<{ attempts: number; failure?: string }> {
  const repo = `crash/worker-${worker}`;
  let attempts = 0;
  for (let n = 0; !stopped(); n++) {
    const tag = `r${round}-${n}`;
    const image = makeImage({ layers: 1 + (n % 3), layerBytes: 256 + Math.floor(Math.random() * 4096) });
    attempts++;
    try {
      for (const blob of [image.config, ...image.layers]) {
        const { status } = await pushBlobAcknowledged(url, repo, blob);
        if (status === 201) acked.push({ kind: 'blob', repo, digest: sha256(blob), size: blob.length });
        else if (!stopped()) return { attempts, failure: `blob push to ${repo} answered ${status}` };
        else return { attempts };
      }
      const res = await pushManifest(url, repo, tag, image.manifestBytes);
      await res.arrayBuffer();
      if (res.status === 201) acked.push({ kind: 'manifest', repo, digest: image.digest, tag });
      else if (!stopped()) return { attempts, failure: `push ${repo}:${tag} answered ${res.status}` };
    } catch (err) {
      // A refused or reset connection is the crash; anything before it is a real failure.
      if (!stopped()) return { attempts, failure: `push ${repo}:${tag} failed: ${(err as Error).message}` };
    }
  }
  return { attempts };
}

describe('kill -9 during concurrent pushes', () => {
  const processes = new Set<RegistryProcess>();
  after(async () => {
    for (const registry of processes) await registry.kill();
  });

  const start = async (root?: string): Promise<RegistryProcess> => {
    const registry = await spawnRegistry(root ? { root } : {});
    processes.add(registry);
    return registry;
  };

  it(`keeps every acknowledged push and serves nothing unverified over ${ROUNDS} crashes`, async () => {
    const root = `${makeTempDir('zot-ts-crash-')}/root`;
    const acked: Acknowledged[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const registry = await start(root);
      let killed = false;
      const ackedBefore = acked.filter((ack) => ack.kind === 'manifest').length;
      const workers = Array.from({ length: WORKERS }, (_, worker) => pushWorker(registry.url, worker, round, () => killed, acked));
      // Once this round's first manifest is acknowledged, a random instant.
      await eventually(async () => acked.filter((ack) => ack.kind === 'manifest').length > ackedBefore, `round ${round}: a first acknowledged push`, 15_000);
      await sleep(Math.random() * 900);
      killed = true;
      await registry.kill();
      processes.delete(registry);
      const results = await Promise.all(workers);
      assert.deepEqual(
        results.flatMap((r) => (r.failure ? [r.failure] : [])),
        [],
        'no push failed before the crash',
      );

      const restarted = await start(root);
      await assertAcknowledgedPull(restarted.url, acked);
      const listed = new Set(await assertListedPullWhole(restarted.url));
      const unlisted = acked.flatMap((ack) => (ack.kind === 'manifest' && !listed.has(`${ack.repo}:${ack.tag}`) ? [`${ack.repo}:${ack.tag}`] : []));
      assert.deepEqual(unlisted, [], 'every acknowledged tag is listed');

      assert.equal(await restarted.stop(), 0, restarted.output());
      processes.delete(restarted);
      const replay = await runZot(['replay', restarted.configPath]);
      assert.equal(replay.code, 0, `round ${round}: replay found drift:\n${replay.stdout}${replay.stderr}`);
      assert.doesNotMatch(replay.stdout, /^drift:/m);
    }
  });
});
