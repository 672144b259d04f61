// A burst of tag PUTs into one repository: the index.json writer writes the file once per batch of
// events, not once per tag (its cost would grow with the repository: each write is the whole
// file). Each write is slowed a little by a wrapped driver, so the events of the burst pile up
// behind it as they would on a busy disk; the file ends up listing every tag.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { StorageDriver } from '../../src/storage/driver.js';
import { assertReplayClean } from '../helpers/http.js';
import { makeImage, pushImage, pushManifest } from '../helpers/oci.js';
import { startTestRegistry } from '../helpers/registry.js';

const TAGS = 300;
const CLIENTS = 16;

describe('index.json under a burst of tag PUTs', () => {
  it('is written once per batch, not once per tag, and lists every tag', async () => {
    let indexWrites = 0;
    const slowIndexWrites = <T extends StorageDriver>(driver: T): T =>
      new Proxy(driver, {
        get: (target, property, receiver) => {
          const value = Reflect.get(target, property, receiver) as unknown;
          if (property !== 'putContent' || typeof value !== 'function') return value;
          return async (file: string, content: Buffer | string) => {
            if (file.endsWith('index.json')) {
              indexWrites++;
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
            return (value as StorageDriver['putContent']).call(target, file, content);
          };
        },
      });
    const registry = await startTestRegistry({}, { wrapDriver: slowIndexWrites });
    try {
      const image = makeImage();
      assert.equal((await pushImage(registry.url, 'burst/tags', 'first', image)).status, 201);
      await registry.running.actorsCaughtUp();
      const before = indexWrites;
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
      const writes = indexWrites - before;
      assert.ok(writes < TAGS / 4, `${writes} writes of index.json for ${TAGS} tag PUTs`);
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
});
