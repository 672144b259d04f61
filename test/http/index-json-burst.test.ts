// A burst of tag PUTs into one repository: the index.json writer writes the file once per batch of
// events, not once per tag (its cost would grow with the repository: each write is the whole
// file). Each write is slowed a little by a wrapped driver, so the events of the burst pile up
// behind it as they would on a busy disk; the file ends up listing every tag. And its catch-up
// over a long log (a root whose writer starts from nothing, as after an upgrade or the scale
// bench's generated root) writes each repository once, not once per page of events.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { StorageDriver } from '../../src/storage/driver.js';
import { openDatabase } from '../../src/events/database.js';
import { BATCH_EVENTS } from '../../src/actors/actor.js';
import { eventLogFile } from '../../src/storage/layout.js';
import { assertReplayClean } from '../helpers/http.js';
import { makeImage, pushImage, pushManifest, type TestImage } from '../helpers/oci.js';
import { makeTempDir, startTestRegistry } from '../helpers/registry.js';

const TAGS = 300;
const CLIENTS = 16;

/** Counts index.json writes (by repository) and slows each a little, as a busy disk would. */
function countingIndexWrites(writes: Map<string, number>) {
  return <T extends StorageDriver>(driver: T): T =>
    new Proxy(driver, {
      get: (target, property, receiver) => {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (property !== 'putContent' || typeof value !== 'function') return value;
        return async (file: string, content: Buffer | string) => {
          if (file.endsWith('index.json')) {
            const repo = path.dirname(file);
            writes.set(repo, (writes.get(repo) ?? 0) + 1);
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          return (value as StorageDriver['putContent']).call(target, file, content);
        };
      },
    });
}

/**
 * Slows each index.json write of the writer and records the most in flight at once, and counts the
 * stats of each repository's oci-layout (by repository).
 */
function watchingIndexWrites(seen: { inFlight: number; most: number; layoutStats: Map<string, number> }) {
  return <T extends StorageDriver>(driver: T): T =>
    new Proxy(driver, {
      get: (target, property, receiver) => {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (property === 'stat' && typeof value === 'function') {
          return (file: string) => {
            if (file.endsWith('/oci-layout')) seen.layoutStats.set(path.dirname(file), (seen.layoutStats.get(path.dirname(file)) ?? 0) + 1);
            return (value as StorageDriver['stat']).call(target, file);
          };
        }
        if (property !== 'putContent' || typeof value !== 'function') return value;
        return async (file: string, content: Buffer | string) => {
          // The writer's writes only, not the empty index a new repository's layout starts with.
          if (!file.endsWith('index.json') || !String(content).includes('"digest"')) return (value as StorageDriver['putContent']).call(target, file, content);
          seen.most = Math.max(seen.most, ++seen.inFlight);
          try {
            await new Promise((resolve) => setTimeout(resolve, 30));
            return await (value as StorageDriver['putContent']).call(target, file, content);
          } finally {
            seen.inFlight--;
          }
        };
      },
    });
}

function tagsOnDisk(root: string, repo: string): string[] {
  const onDisk = JSON.parse(fs.readFileSync(path.join(root, repo, 'index.json'), 'utf8')) as { manifests: { annotations?: Record<string, string> }[] };
  return onDisk.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name'] ?? '').sort();
}

describe('index.json under a burst of tag PUTs', () => {
  it('is written once per batch, not once per tag, and lists every tag', async () => {
    const writesByRepo = new Map<string, number>();
    const indexWrites = (): number => writesByRepo.get('burst/tags') ?? 0;
    const registry = await startTestRegistry({}, { wrapDriver: countingIndexWrites(writesByRepo) });
    try {
      const image = makeImage();
      assert.equal((await pushImage(registry.url, 'burst/tags', 'first', image)).status, 201);
      await registry.running.actorsCaughtUp();
      const before = indexWrites();
      let next = 0;
      const client = async (): Promise<void> => {
        while (next < TAGS) {
          const tag = `t${next++}`;
          const res = await pushManifest(registry.url, 'burst/tags', tag, image.manifestBytes);
          await res.arrayBuffer();
          assert.equal(res.status, 201, `PUT ${tag}`);
        }
      };
      await Promise.all(Array.from({ length: CLIENTS }, client));
      await registry.running.actorsCaughtUp();
      const writes = indexWrites() - before;
      assert.ok(writes > 0 && writes < TAGS / 4, `${writes} writes of index.json for ${TAGS} tag PUTs`);
      const onDisk = JSON.parse(fs.readFileSync(path.join(registry.root, 'burst', 'tags', 'index.json'), 'utf8')) as {
        manifests: { digest: string; annotations?: Record<string, string> }[];
      };
      const tags = onDisk.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name']).sort();
      assert.deepEqual(tags, ['first', ...Array.from({ length: TAGS }, (_, i) => `t${i}`)].sort());
      assert.ok(onDisk.manifests.every((m) => m.digest === image.digest));
      await assertReplayClean(registry);
    } finally {
      await registry.stop();
    }
  });

  it('writes the repositories of a batch side by side, without looking for oci-layout on every write', async () => {
    const seen = { inFlight: 0, most: 0, layoutStats: new Map<string, number>() };
    const registry = await startTestRegistry({}, { wrapDriver: watchingIndexWrites(seen) });
    const repos = Array.from({ length: 12 }, (_, i) => `spread/r${i}`);
    const images = repos.map(() => makeImage());
    try {
      // One image into each repository at once: their events reach the writer in few batches.
      const statuses = await Promise.all(repos.map(async (repo, i) => (await pushImage(registry.url, repo, 'v0', images[i])).status));
      assert.deepEqual(statuses, repos.map(() => 201));
      await registry.running.actorsCaughtUp();
      assert.ok(seen.most > 1, `index.json writes at once: ${seen.most}`);
      // More tags, one repository at a time, each written by the writer before the next.
      for (let round = 1; round <= 3; round++) {
        for (const [i, repo] of repos.entries()) {
          const res = await pushManifest(registry.url, repo, `v${round}`, (images[i] as TestImage).manifestBytes);
          await res.arrayBuffer();
          assert.equal(res.status, 201);
          await registry.running.actorsCaughtUp();
        }
      }
      for (const [i, repo] of repos.entries()) {
        assert.deepEqual(tagsOnDisk(registry.root, repo), ['v0', 'v1', 'v2', 'v3'], `${repo}/index.json`);
        const onDisk = JSON.parse(fs.readFileSync(path.join(registry.root, repo, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
        assert.ok(onDisk.manifests.every((m) => m.digest === images[i]?.digest), `${repo}/index.json names its image`);
        assert.ok(fs.existsSync(path.join(registry.root, repo, 'oci-layout')), `${repo}/oci-layout`);
      }
      // A repository new to the log is laid out without looking; the writer never looks at one
      // this process laid out.
      assert.deepEqual(Object.fromEntries(seen.layoutStats), {});
      await assertReplayClean(registry);
    } finally {
      await registry.stop();
    }
  });

  it('catches up on a long log writing each repository once, not once per page of events', async () => {
    const root = path.join(makeTempDir(), 'root');
    const repos = ['catchup/a', 'catchup/b', 'catchup/c'];
    const perRepo = Math.ceil((BATCH_EVENTS * 3) / repos.length);
    const first = await startTestRegistry({ root });
    const image = makeImage();
    try {
      for (const repo of repos) assert.equal((await pushImage(first.url, repo, 'first', image)).status, 201);
      // Tag PUTs to the three repositories interleaved: every page of the log names all three.
      const puts = Array.from({ length: perRepo * repos.length }, (_, i) => ({ repo: repos[i % repos.length] as string, tag: `t${Math.floor(i / repos.length)}` }));
      let next = 0;
      const client = async (): Promise<void> => {
        for (let put = puts[next++]; put !== undefined; put = puts[next++]) {
          const res = await pushManifest(first.url, put.repo, put.tag, image.manifestBytes);
          await res.arrayBuffer();
          assert.equal(res.status, 201, `PUT ${put.repo}:${put.tag}`);
        }
      };
      await Promise.all(Array.from({ length: CLIENTS }, client));
      await first.running.actorsCaughtUp();
    } finally {
      await first.stop();
    }
    // The writer starts from nothing: no checkpoint, no index.json files.
    const db = openDatabase(eventLogFile(root));
    db.prepare("DELETE FROM checkpoints WHERE name = 'index-json-writer'").run();
    db.close();
    for (const repo of repos) fs.rmSync(path.join(root, repo, 'index.json'));
    // A repository from before the start is looked at once: a missing oci-layout is written again.
    fs.rmSync(path.join(root, 'catchup/a', 'oci-layout'));

    const writes = new Map<string, number>();
    const registry = await startTestRegistry({ root }, { wrapDriver: countingIndexWrites(writes) });
    try {
      await registry.running.actorsCaughtUp();
      assert.ok(registry.running.store.head() > BATCH_EVENTS * 3, 'the log spans several pages');
      assert.deepEqual(Object.fromEntries(writes), Object.fromEntries(repos.map((repo) => [repo, 1])), 'one write per repository');
      const expected = ['first', ...Array.from({ length: perRepo }, (_, i) => `t${i}`)].sort();
      for (const repo of repos) assert.deepEqual(tagsOnDisk(root, repo), expected, `${repo}/index.json lists every tag`);
      assert.equal(fs.readFileSync(path.join(root, 'catchup/a', 'oci-layout'), 'utf8'), '{"imageLayoutVersion":"1.0.0"}');
    } finally {
      await registry.stop();
    }
  });
});
