// subPaths through HTTP: each prefix is its own root on disk with its own dedupe and gc; the
// longest matching prefix wins; the catalog spans every root; a repository never straddles two.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertReplayClean, eventually } from '../helpers/http.js';
import { makeImage, OCI_MANIFEST, pushBlob, pushImage, sha256 } from '../helpers/oci.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';

function blobFile(root: string, repo: string, digest: string): string {
  return path.join(root, repo, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

describe('subPaths', () => {
  const base = makeTempDir();
  const roots = { main: path.join(base, 'main'), a: path.join(base, 'a'), deep: path.join(base, 'deep'), b: path.join(base, 'b') };
  let registry: TestRegistry;

  before(async () => {
    registry = await startTestRegistry({
      root: roots.main,
      storage: {
        dedupe: true,
        gc: false,
        subPaths: {
          '/a': { rootDirectory: roots.a, dedupe: true, gc: true, gcDelay: '1s', gcInterval: '200ms' },
          '/a/deep': { rootDirectory: roots.deep, dedupe: false, gc: false },
          // gc left unset: off for a subPath, as in zot, whatever its gcDelay and gcInterval.
          '/b': { rootDirectory: roots.b, dedupe: false, gcDelay: '1s', gcInterval: '200ms' },
        },
      },
    });
  });
  after(async () => registry?.stop());

  it('stores each repository under the root of its longest matching prefix, and lists them all', async () => {
    const image = makeImage();
    const placed: [string, string][] = [
      ['top', roots.main],
      ['a', roots.main], // "a" itself is not under "/a", as zot routes it
      ['a/x', roots.a],
      ['a/deep/y', roots.deep],
      ['a/deeper', roots.a],
      ['b/z', roots.b],
    ];
    for (const [repo] of placed) assert.equal((await pushImage(registry.url, repo, 'v1', image)).status, 201, repo);
    await registry.running.actorsCaughtUp();
    for (const [repo, root] of placed) {
      assert.ok(fs.existsSync(blobFile(root, repo, image.digest)), `${repo} is in ${path.basename(root)}`);
      assert.ok(fs.existsSync(path.join(root, repo, 'index.json')), `${repo}'s index.json is in its root`);
      for (const [, other] of Object.entries(roots)) {
        if (other !== root) assert.ok(!fs.existsSync(blobFile(other, repo, image.digest)), `${repo} is only in one root`);
      }
    }
    const res = await fetch(`${registry.url}/v2/_catalog`);
    assert.deepEqual(((await res.json()) as { repositories: string[] }).repositories, placed.map(([repo]) => repo).sort());
    await assertReplayClean(registry);
  });

  it('dedupes within a root whose prefix says so, and not in one that does not', async () => {
    const image = makeImage({ layers: 1, layerBytes: 4096 });
    for (const repo of ['a/one', 'a/two', 'b/one', 'b/two']) await pushImage(registry.url, repo, 'v1', image);
    const layer = sha256(image.layers[0]!);
    const ino = (root: string, repo: string): number => fs.statSync(blobFile(root, repo, layer)).ino;
    assert.equal(ino(roots.a, 'a/one'), ino(roots.a, 'a/two'));
    assert.notEqual(ino(roots.b, 'b/one'), ino(roots.b, 'b/two'));
  });

  it('mounts across roots by copying the bytes', async () => {
    const layer = Buffer.from('crosses from the default root into /b '.repeat(100));
    const digest = await pushBlob(registry.url, 'source', layer);
    const res = await fetch(`${registry.url}/v2/b/mounted/blobs/uploads/?mount=${digest}&from=source`, { method: 'POST' });
    assert.equal(res.status, 201);
    assert.ok(fs.readFileSync(blobFile(roots.b, 'b/mounted', digest)).equals(layer));
    const pulled = Buffer.from(await (await fetch(`${registry.url}/v2/b/mounted/blobs/${digest}`)).arrayBuffer());
    assert.ok(pulled.equals(layer));
  });

  it('collects garbage only in the root with gc on', async () => {
    const inA = makeImage();
    const inMain = makeImage();
    const inB = makeImage();
    // Pushed first, so it would be due before the one under /a if its root collected garbage.
    await pushImage(registry.url, 'b/gc', inB.digest, inB);
    await pushImage(registry.url, 'a/gc', inA.digest, inA);
    await pushImage(registry.url, 'main/gc', inMain.digest, inMain);
    const manifest = (repo: string, digest: string) => fetch(`${registry.url}/v2/${repo}/manifests/${digest}`, { headers: { Accept: OCI_MANIFEST } });
    await eventually(async () => (await manifest('a/gc', inA.digest)).status === 404, 'the untagged manifest under /a to go', 8000);
    await eventually(async () => !fs.existsSync(path.join(roots.a, 'a', 'gc')), 'the emptied repository to leave its root', 8000);
    assert.equal((await manifest('main/gc', inMain.digest)).status, 200, 'the default root has gc off');
    assert.equal((await manifest('b/gc', inB.digest)).status, 200, 'a subPath that leaves gc unset has it off');
    await assertReplayClean(registry);
  });
});
