// kill -9 during a stream of concurrent pushes, then restart on the same root: every push the
// registry acknowledged is still served with its bytes, nothing served fails to hash to its
// digest, and the event log replays without drift (orphans are only notes).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { makeImage, pushImage, sha256, type TestImage } from '../helpers/oci.js';
import { makeTempDir, runZot, spawnRegistry, type RegistryProcess } from '../helpers/registry.js';

const ROUNDS = 3;
const WORKERS = 6;

interface Acknowledged {
  repo: string;
  tag: string;
  image: TestImage;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function getBytes(url: string, accept?: string): Promise<{ status: number; bytes: Buffer; digest: string | null }> {
  const res = await fetch(url, accept ? { headers: { Accept: accept } } : {});
  const bytes = Buffer.from(await res.arrayBuffer());
  return { status: res.status, bytes, digest: res.headers.get('docker-content-digest') };
}

const ACCEPT_MANIFESTS = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/**
 * Pushes images until `stopped()`; records the pushes answered 201. Resolves (never rejects)
 * with the number of attempts and the first failure seen before the crash, if any.
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
      const res = await pushImage(url, repo, tag, image);
      await res.arrayBuffer();
      if (res.status === 201) acked.push({ repo, tag, image });
      else if (!stopped()) return { attempts, failure: `push ${repo}:${tag} answered ${res.status}` };
    } catch (err) {
      // A refused or reset connection is the crash; anything before it is a real failure.
      if (!stopped()) return { attempts, failure: `push ${repo}:${tag} failed: ${(err as Error).message}` };
    }
  }
  return { attempts };
}

/** Every repository and tag the registry lists resolves to content that hashes to its digest. */
async function assertEverythingServedIsVerified(url: string): Promise<number> {
  const catalog = (await (await fetch(`${url}/v2/_catalog`)).json()) as { repositories: string[] };
  let checked = 0;
  for (const repo of catalog.repositories) {
    const tags = (await (await fetch(`${url}/v2/${repo}/tags/list`)).json()) as { tags: string[] };
    for (const tag of tags.tags) {
      const manifest = await getBytes(`${url}/v2/${repo}/manifests/${tag}`, ACCEPT_MANIFESTS);
      assert.equal(manifest.status, 200, `${repo}:${tag} is listed, so it is served`);
      assert.equal(sha256(manifest.bytes), manifest.digest, `${repo}:${tag} hashes to its Docker-Content-Digest`);
      const body = JSON.parse(manifest.bytes.toString()) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
      for (const descriptor of [body.config, ...body.layers]) {
        const blob = await getBytes(`${url}/v2/${repo}/blobs/${descriptor.digest}`);
        assert.equal(blob.status, 200, `${repo}:${tag} blob ${descriptor.digest} is served`);
        assert.equal(blob.bytes.length, descriptor.size);
        assert.equal(sha256(blob.bytes), descriptor.digest, `${repo} blob ${descriptor.digest} hashes to its digest`);
      }
      checked++;
    }
  }
  return checked;
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
      const ackedBefore = acked.length;
      const workers = Array.from({ length: WORKERS }, (_, worker) => pushWorker(registry.url, worker, round, () => killed, acked));
      // A random instant once pushes are flowing.
      await sleep(300 + Math.random() * 900);
      killed = true;
      await registry.kill();
      processes.delete(registry);
      const results = await Promise.all(workers);
      assert.deepEqual(
        results.flatMap((r) => (r.failure ? [r.failure] : [])),
        [],
        'no push failed before the crash',
      );
      const attempts = results.reduce((sum, r) => sum + r.attempts, 0);
      assert.ok(acked.length > ackedBefore, `round ${round}: some pushes were acknowledged before the crash (${attempts} attempts)`);

      const restarted = await start(root);
      for (const { repo, tag, image } of acked) {
        const byTag = await getBytes(`${restarted.url}/v2/${repo}/manifests/${tag}`, ACCEPT_MANIFESTS);
        assert.equal(byTag.status, 200, `acknowledged ${repo}:${tag} survives the crash`);
        assert.ok(byTag.bytes.equals(Buffer.from(image.manifestBytes)), `${repo}:${tag} is served byte-identical`);
        assert.equal(byTag.digest, image.digest);
        for (const blob of [image.config, ...image.layers]) {
          const got = await getBytes(`${restarted.url}/v2/${repo}/blobs/${sha256(blob)}`);
          assert.equal(got.status, 200, `a blob of acknowledged ${repo}:${tag} survives the crash`);
          assert.ok(got.bytes.equals(blob), `a blob of ${repo}:${tag} is served byte-identical`);
        }
      }
      const served = await assertEverythingServedIsVerified(restarted.url);
      assert.ok(served >= acked.length, `every acknowledged tag is listed (${served} listed, ${acked.length} acknowledged)`);

      assert.equal(await restarted.stop(), 0, restarted.output());
      processes.delete(restarted);
      const replay = await runZot(['replay', restarted.configPath]);
      assert.equal(replay.code, 0, `round ${round}: replay found drift:\n${replay.stdout}${replay.stderr}`);
      assert.doesNotMatch(replay.stdout, /^drift:/m);
    }
  });
});
