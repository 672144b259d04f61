// Group commit under kill -9: many clients push small images at once into a few shared
// repositories, each moving a shared tag as well as its own, so that appends arrive in the same
// turn and share transactions and fsyncs (src/events/store.ts). The `zot serve` child is killed
// mid-burst. After a restart every push the registry acknowledged is served whole, every
// acknowledged tag of its own is listed, and `zot replay` finds the log and the projections equal.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { eventually } from '../helpers/http.js';
import { makeImage, pushManifest, sha256 } from '../helpers/oci.js';
import { assertAcknowledgedPull, assertListedPullWhole, type Acknowledged } from '../helpers/pull.js';
import { makeTempDir, runZot, spawnRegistry, type RegistryProcess } from '../helpers/registry.js';

const CLIENTS = 24;
const REPOSITORIES = 3;

async function pushBlob(url: string, repo: string, data: Buffer): Promise<number> {
  const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: data });
  await res.arrayBuffer();
  return res.status;
}

/** Pushes images until `stopped()`; records what was answered 201; returns a failure seen before the crash. */
async function client(url: string, id: number, stopped: () => boolean, acked: Acknowledged[]): Promise<string | undefined> {
  const repo = `burst/r${id % REPOSITORIES}`;
  for (let n = 0; !stopped(); n++) {
    const image = makeImage({ layers: 1, layerBytes: 64 + Math.floor(Math.random() * 512) });
    try {
      for (const blob of [image.config, ...image.layers]) {
        const status = await pushBlob(url, repo, blob);
        if (status !== 201) return stopped() ? undefined : `blob push to ${repo} answered ${status}`;
        acked.push({ kind: 'blob', repo, digest: sha256(blob), size: blob.length });
      }
      // Its own tag, then the tag every client of the repository moves.
      for (const tag of [`c${id}-${n}`, 'latest']) {
        const res = await pushManifest(url, repo, tag, image.manifestBytes);
        await res.arrayBuffer();
        if (res.status !== 201) return stopped() ? undefined : `push ${repo}:${tag} answered ${res.status}`;
        acked.push({ kind: 'manifest', repo, digest: image.digest, ...(tag === 'latest' ? {} : { tag }) });
      }
    } catch (err) {
      if (!stopped()) return `push to ${repo} failed: ${(err as Error).message}`;
    }
  }
  return undefined;
}

describe('group commit across kill -9', () => {
  const processes = new Set<RegistryProcess>();
  after(async () => {
    for (const registry of processes) await registry.kill();
  });

  it('keeps every acknowledged push of a burst of concurrent clients, and replays clean', async () => {
    const root = `${makeTempDir('zot-ts-group-')}/root`;
    const registry = await spawnRegistry({ root });
    processes.add(registry);
    const acked: Acknowledged[] = [];
    let killed = false;
    const clients = Array.from({ length: CLIENTS }, (_, id) => client(registry.url, id, () => killed, acked));
    await eventually(async () => acked.filter((ack) => ack.kind === 'manifest').length >= CLIENTS, 'a first round of acknowledged pushes', 20_000);
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 500));
    killed = true;
    await registry.kill();
    processes.delete(registry);
    assert.deepEqual((await Promise.all(clients)).filter((failure) => failure !== undefined), [], 'no push failed before the crash');

    const restarted = await spawnRegistry({ root });
    processes.add(restarted);
    await assertAcknowledgedPull(restarted.url, acked);
    const listed = new Set(await assertListedPullWhole(restarted.url));
    const unlisted = acked.flatMap((ack) => (ack.kind === 'manifest' && ack.tag && !listed.has(`${ack.repo}:${ack.tag}`) ? [`${ack.repo}:${ack.tag}`] : []));
    assert.deepEqual(unlisted, [], 'every acknowledged tag is listed');
    for (let r = 0; r < REPOSITORIES; r++) assert.ok(listed.has(`burst/r${r}:latest`), `burst/r${r}:latest survives`);

    assert.equal(await restarted.stop(), 0, restarted.output());
    processes.delete(restarted);
    const replay = await runZot(['replay', restarted.configPath]);
    assert.equal(replay.code, 0, `replay found drift:\n${replay.stdout}${replay.stderr}`);
    assert.doesNotMatch(replay.stdout, /^drift:/m);
  });
});
