// A repository's layout files (oci-layout, index.json) on its first write: what the log does not
// know is written afresh (its oci-layout) or goes (its index.json: on a filesystem the index.json
// writer writes that, at the repository's first manifest or tag), what it knows is kept.
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
      assert.ok(!fs.existsSync(path.join(root, 'stale', 'index.json')), 'stale/index.json, listing a manifest the log does not hold, is gone');
      assert.equal(fs.readFileSync(path.join(root, 'stale', 'oci-layout'), 'utf8'), '{"imageLayoutVersion":"1.0.0"}');
      const kept = indexOnDisk(root, 'keep/a');
      assert.deepEqual(kept.manifests.map((m) => [m.digest, m.annotations?.[REF_NAME]]), [[image.digest, 'v1']], 'keep/a/index.json is kept');
      const tags = await fetch(`${registry.url}/v2/stale/tags/list`);
      assert.deepEqual(((await tags.json()) as { tags: string[] | null }).tags ?? [], []);
      assert.equal((await pushImage(registry.url, 'stale', 'new', image)).status, 201);
      await registry.running.actorsCaughtUp();
      assert.deepEqual(
        indexOnDisk(root, 'stale').manifests.map((m) => [m.digest, m.annotations?.[REF_NAME]]),
        [[image.digest, 'new']],
        'stale/index.json, written at its first manifest, lists it',
      );
    } finally {
      await registry.stop();
    }
  });

  it('a new repository is laid out at its first blob, and gets its index.json from the index.json writer at its first manifest', async () => {
    const root = path.join(makeTempDir(), 'root');
    const repo = 'fresh/repo';
    const dir = path.join(root, ...repo.split('/'));
    const image = makeImage();
    let inode = 0;
    const registry = await startTestRegistry({ root, storage: { gc: false } });
    try {
      await pushBlob(registry.url, repo, 'the first blob');
      await registry.running.actorsCaughtUp();
      assert.equal(fs.readFileSync(path.join(dir, 'oci-layout'), 'utf8'), '{"imageLayoutVersion":"1.0.0"}');
      for (const sub of ['blobs/sha256', '.uploads']) assert.ok(fs.statSync(path.join(dir, sub)).isDirectory(), `${sub} made`);
      assert.ok(!fs.existsSync(path.join(dir, 'index.json')), 'no index.json while the repository holds no manifest');

      assert.equal((await pushImage(registry.url, repo, 'v1', image)).status, 201);
      await registry.running.actorsCaughtUp();
      assert.deepEqual(indexOnDisk(root, repo).manifests.map((m) => [m.digest, m.annotations?.[REF_NAME]]), [[image.digest, 'v1']]);
      const written = fs.statSync(path.join(dir, 'index.json'));
      assert.equal(written.nlink, 1, 'index.json is a file of its own');

      await pushBlob(registry.url, repo, 'a later blob');
      await registry.running.actorsCaughtUp();
      assert.equal(fs.statSync(path.join(dir, 'index.json')).ino, written.ino, 'a blob leaves index.json alone');
      inode = written.ino;
    } finally {
      await registry.stop();
    }
    // Known to the log after a restart: its first write keeps the file the writer wrote.
    const again = await startTestRegistry({ root, storage: { gc: false } });
    try {
      await pushBlob(again.url, repo, 'a blob after the restart');
      await again.running.actorsCaughtUp();
      assert.equal(fs.statSync(path.join(dir, 'index.json')).ino, inode, 'index.json is the one written before the restart');
      assert.deepEqual(indexOnDisk(root, repo).manifests.map((m) => m.digest), [image.digest]);
    } finally {
      await again.stop();
    }
  });
});
