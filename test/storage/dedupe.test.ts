// Dedupe on the filesystem, through HTTP: one inode for the same bytes in every repository of a
// root, however they arrived; deleting any one copy keeps the others; dedupe off keeps copies
// apart; turning dedupe on for an existing root links what is already there.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { assertReplayClean } from '../helpers/http.js';
import { makeImage, pushBlob, pushImage, sha256, type TestImage } from '../helpers/oci.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';

function blobFile(root: string, repo: string, digest: string): string {
  return path.join(root, repo, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

function inode(root: string, repo: string, digest: string): number {
  return fs.statSync(blobFile(root, repo, digest)).ino;
}

/** One base image whose config and layers every repository shares, under its own tag. */
function sharedImage(): TestImage {
  return makeImage({ layers: 3, layerBytes: 64 * 1024 });
}

async function pullBlob(url: string, repo: string, digest: string): Promise<Buffer> {
  const res = await fetch(`${url}/v2/${repo}/blobs/${digest}`);
  assert.equal(res.status, 200, `GET blob ${digest} from ${repo}`);
  return Buffer.from(await res.arrayBuffer());
}

async function assertPullsIdentical(url: string, repo: string, image: TestImage): Promise<void> {
  for (const blob of [image.config, ...image.layers]) {
    const pulled = await pullBlob(url, repo, sha256(blob));
    assert.ok(pulled.equals(blob), `${repo}: blob ${sha256(blob)} pulls byte-identical`);
  }
  const res = await fetch(`${url}/v2/${repo}/manifests/${image.digest}`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), image.manifestBytes);
}

describe('dedupe on (the default): one copy of the bytes per root', () => {
  let registry: TestRegistry;
  after(async () => registry?.stop());

  it('links the same layers pushed to several repositories to one inode', async () => {
    registry = await startTestRegistry({ storage: { dedupe: true, gc: false } });
    const image = sharedImage();
    const repos = ['team/a', 'team/b', 'c'];
    for (const repo of repos) assert.equal((await pushImage(registry.url, repo, 'v1', image)).status, 201);
    for (const blob of [image.config, ...image.layers]) {
      const inodes = new Set(repos.map((repo) => inode(registry.root, repo, sha256(blob))));
      assert.equal(inodes.size, 1, `blob ${sha256(blob)} has one inode across ${repos.join(', ')}`);
      assert.equal(fs.statSync(blobFile(registry.root, 'c', sha256(blob))).nlink, repos.length);
    }
    await assertReplayClean(registry);
  });

  it('links a mounted blob too', async () => {
    const layer = Buffer.from('mounted layer bytes '.repeat(500));
    const digest = await pushBlob(registry.url, 'mount/source', layer);
    const res = await fetch(`${registry.url}/v2/mount/target/blobs/uploads/?mount=${digest}&from=mount/source`, { method: 'POST' });
    assert.equal(res.status, 201);
    assert.equal(inode(registry.root, 'mount/target', digest), inode(registry.root, 'mount/source', digest));
  });

  it('keeps every other copy when the copies are deleted one by one, in any order', async () => {
    const image = sharedImage();
    const repos = ['order/one', 'order/two', 'order/three'];
    for (const repo of repos) assert.equal((await pushImage(registry.url, repo, 'v1', image)).status, 201);
    const remaining = [...repos];
    for (const deleted of ['order/two', 'order/one']) {
      assert.equal((await fetch(`${registry.url}/v2/${deleted}/manifests/${image.digest}`, { method: 'DELETE' })).status, 202);
      for (const blob of [image.config, ...image.layers]) {
        assert.equal((await fetch(`${registry.url}/v2/${deleted}/blobs/${sha256(blob)}`, { method: 'DELETE' })).status, 202);
      }
      assert.ok(!fs.existsSync(blobFile(registry.root, deleted, sha256(image.layers[0]!))), `${deleted}'s copy is gone`);
      remaining.splice(remaining.indexOf(deleted), 1);
      for (const kept of remaining) await assertPullsIdentical(registry.url, kept, image);
    }
    await assertPullsIdentical(registry.url, 'order/three', image);
    await assertReplayClean(registry);
  });

  it('stores a new upload when the copy it would link to was deleted meanwhile', async () => {
    const layer = Buffer.from('relinked after delete '.repeat(300));
    const digest = await pushBlob(registry.url, 'gone/first', layer);
    assert.equal((await fetch(`${registry.url}/v2/gone/first/blobs/${digest}`, { method: 'DELETE' })).status, 202);
    await pushBlob(registry.url, 'gone/second', layer);
    assert.ok((await pullBlob(registry.url, 'gone/second', digest)).equals(layer));
    assert.equal((await fetch(`${registry.url}/v2/gone/first/blobs/${digest}`)).status, 404);
    await assertReplayClean(registry);
  });
});

describe('dedupe off: every repository keeps its own copy', () => {
  let registry: TestRegistry;
  after(async () => registry?.stop());

  it('stores separate files for pushes and for mounts', async () => {
    registry = await startTestRegistry({ storage: { dedupe: false, gc: false } });
    const image = sharedImage();
    await pushImage(registry.url, 'x/one', 'v1', image);
    await pushImage(registry.url, 'x/two', 'v1', image);
    const layer = sha256(image.layers[0]!);
    assert.notEqual(inode(registry.root, 'x/one', layer), inode(registry.root, 'x/two', layer));
    const res = await fetch(`${registry.url}/v2/x/three/blobs/uploads/?mount=${layer}&from=x/one`, { method: 'POST' });
    assert.equal(res.status, 201);
    assert.notEqual(inode(registry.root, 'x/three', layer), inode(registry.root, 'x/one', layer));
    assert.ok((await pullBlob(registry.url, 'x/three', layer)).equals(image.layers[0]!));
    await assertReplayClean(registry);
  });
});

describe('turning dedupe on for an existing root', () => {
  const root = path.join(makeTempDir(), 'root');
  let registry: TestRegistry | undefined;
  after(async () => registry?.stop());

  it('links existing copies in the background; requests are served meanwhile', async () => {
    const image = sharedImage();
    const repos = ['later/a', 'later/b', 'later/c'];
    const before = await startTestRegistry({ root, storage: { dedupe: false, gc: false } });
    for (const repo of repos) await pushImage(before.url, repo, 'v1', image);
    await before.stop();
    const layer = sha256(image.layers[1]!);
    assert.equal(new Set(repos.map((repo) => inode(root, repo, layer))).size, 3);

    registry = await startTestRegistry({ root, storage: { dedupe: true, gc: false } });
    // Served while the pass may still run.
    await assertPullsIdentical(registry.url, 'later/b', image);
    await registry.running.dedupeFinished();
    for (const blob of [image.config, ...image.layers]) {
      assert.equal(new Set(repos.map((repo) => inode(root, repo, sha256(blob)))).size, 1, `${sha256(blob)} linked`);
    }
    for (const repo of repos) await assertPullsIdentical(registry.url, repo, image);
    await assertReplayClean(registry);
    await registry.stop();

    // Off again: every image stays readable, and a new push gets its own copy.
    registry = await startTestRegistry({ root, storage: { dedupe: false, gc: false } });
    for (const repo of repos) await assertPullsIdentical(registry.url, repo, image);
    await pushImage(registry.url, 'later/d', 'v1', image);
    assert.notEqual(inode(root, 'later/d', layer), inode(root, 'later/a', layer));
    await assertReplayClean(registry);
  });
});
