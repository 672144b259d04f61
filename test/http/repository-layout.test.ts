// A repository's layout files (oci-layout, index.json) on its first write: what the log does not
// know is written afresh, what it knows is kept.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { REF_NAME } from '../helpers/layout.js';
import { makeImage, pushBlob, pushImage } from '../helpers/oci.js';
import { makeTempDir, startTestRegistry } from '../helpers/registry.js';

function indexOnDisk(root: string, repo: string): { schemaVersion: number; manifests: { digest: string; annotations?: Record<string, string> }[] } {
  return JSON.parse(fs.readFileSync(path.join(root, repo, 'index.json'), 'utf8'));
}

describe('repository layout on first write', () => {
  it('replaces the layout files a repository unknown to the log left behind, and keeps a known one\'s', async () => {
    const root = path.join(makeTempDir(), 'root');
    const storage = { gc: false };
    const image = makeImage();
    const first = await startTestRegistry({ root, storage });
    try {
      assert.equal((await pushImage(first.url, 'keep/a', 'v1', image)).status, 201);
      await first.running.actorsCaughtUp();
    } finally {
      await first.stop();
    }
    // What a GC interrupted after its RepositoryRemoved leaves: the layout, listing a manifest gone.
    fs.mkdirSync(path.join(root, 'stale'), { recursive: true });
    fs.writeFileSync(path.join(root, 'stale', 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    const gone = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'a'.repeat(64)}`, size: 10, annotations: { [REF_NAME]: 'old' } };
    fs.writeFileSync(path.join(root, 'stale', 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [gone] }));

    const registry = await startTestRegistry({ root, storage });
    try {
      await pushBlob(registry.url, 'stale', 'a blob');
      await pushBlob(registry.url, 'keep/a', 'another blob');
      await registry.running.actorsCaughtUp();
      assert.deepEqual(indexOnDisk(root, 'stale'), { schemaVersion: 2, manifests: [] }, 'stale/index.json lists what the log holds: nothing');
      assert.equal(fs.readFileSync(path.join(root, 'stale', 'oci-layout'), 'utf8'), '{"imageLayoutVersion":"1.0.0"}');
      const kept = indexOnDisk(root, 'keep/a');
      assert.deepEqual(kept.manifests.map((m) => [m.digest, m.annotations?.[REF_NAME]]), [[image.digest, 'v1']], 'keep/a/index.json is kept');
      const tags = await fetch(`${registry.url}/v2/stale/tags/list`);
      assert.deepEqual(((await tags.json()) as { tags: string[] | null }).tags ?? [], []);
    } finally {
      await registry.stop();
    }
  });
});
