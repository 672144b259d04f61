// Automatic cross-repository mount (the conformance suite's "automatic content discovery"): a
// POST ?mount=<digest> without `from`, for a blob the repository's root already holds, answers
// 201 with the blob mounted and records the same BlobMounted event as a mount with `from`; only
// from a repository the caller may read, and only within the root. Otherwise a session (202),
// with nothing in the answer that tells a held blob from an unknown one.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basicAuth, writeHtpasswd } from '../helpers/auth.js';
import { assertReplayClean } from '../helpers/http.js';
import { pushBlob, sha256 } from '../helpers/oci.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';

function blobFile(root: string, repo: string, digest: string): string {
  return path.join(root, repo, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

function mountsOf(registry: TestRegistry, repo: string): { from: string; digest: string }[] {
  return [...registry.running.store.read({ repo, type: 'BlobMounted' })].map((event) => {
    assert.equal(event.type, 'BlobMounted');
    return { from: event.type === 'BlobMounted' ? event.from : '', digest: event.type === 'BlobMounted' ? event.digest : '' };
  });
}

/** The parts of an answer that could tell a held blob from an unknown one, the session id aside. */
async function sessionShape(res: Response): Promise<Record<string, unknown>> {
  return {
    status: res.status,
    location: res.headers.get('location')?.replace(/[^/]+$/, '<id>'),
    range: res.headers.get('range'),
    digest: res.headers.get('docker-content-digest'),
    body: await res.text(),
  };
}

describe('automatic cross-repository mount, anonymous registry', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry();
  });
  after(async () => registry?.stop());

  it('mounts a blob the root holds without `from`: 201, Location of the blob, its digest, a BlobMounted event', async () => {
    const layer = Buffer.from('a layer that library/base holds '.repeat(64));
    const digest = await pushBlob(registry.url, 'library/base', layer);
    const res = await fetch(`${registry.url}/v2/team/app/blobs/uploads/?mount=${digest}`, { method: 'POST' });
    assert.equal(res.status, 201, await res.clone().text());
    assert.equal(res.headers.get('location'), `/v2/team/app/blobs/${digest}`);
    assert.equal(res.headers.get('docker-content-digest'), digest);
    const pulled = await fetch(`${registry.url}/v2/team/app/blobs/${digest}`);
    assert.equal(pulled.status, 200);
    assert.ok(Buffer.from(await pulled.arrayBuffer()).equals(layer));
    assert.deepEqual(
      mountsOf(registry, 'team/app').map(({ from, digest: mounted }) => ({ from, digest: mounted })),
      [{ from: 'library/base', digest }],
    );
    assert.ok(fs.existsSync(blobFile(registry.root, 'team/app', digest)));
    await assertReplayClean(registry);
  });

  it('answers 201 without a new event when the repository already holds the blob', async () => {
    const digest = await pushBlob(registry.url, 'self/held', 'held by the target itself');
    const res = await fetch(`${registry.url}/v2/self/held/blobs/uploads/?mount=${digest}`, { method: 'POST' });
    assert.equal(res.status, 201);
    assert.equal(mountsOf(registry, 'self/held').length, 0);
  });

  it('opens a session (202) for a digest no repository holds, and for one that is not a digest', async () => {
    for (const mount of [sha256('nobody pushed this'), 'sha256:not-a-digest']) {
      const res = await fetch(`${registry.url}/v2/team/other/blobs/uploads/?mount=${mount}`, { method: 'POST' });
      assert.equal(res.status, 202, mount);
      assert.match(res.headers.get('location') ?? '', /^\/v2\/team\/other\/blobs\/uploads\/./);
      await res.arrayBuffer();
    }
  });
});

describe('automatic cross-repository mount with htpasswd and accessControl', () => {
  const users = { alice: 'alice-secret', bob: 'bob-secret' };
  let registry: TestRegistry;
  before(async () => {
    const htpasswd = writeHtpasswd(path.join(makeTempDir(), 'htpasswd'), users);
    registry = await startTestRegistry({
      http: {
        auth: { htpasswd: { path: htpasswd } },
        accessControl: {
          repositories: {
            // alice reads and writes her own repositories; bob writes his and reads nothing else.
            'alice/**': { policies: [{ users: ['alice'], actions: ['read', 'create'] }] },
            'bob/**': { policies: [{ users: ['bob'], actions: ['read', 'create'] }] },
            'shared/**': { policies: [{ users: ['alice', 'bob'], actions: ['read', 'create'] }] },
          },
        },
      },
    });
  });
  after(async () => registry?.stop());

  const post = (user: keyof typeof users, repo: string, mount: string): Promise<Response> =>
    fetch(`${registry.url}/v2/${repo}/blobs/uploads/?mount=${mount}`, { method: 'POST', headers: { Authorization: basicAuth(user, users[user]) } });

  const push = async (user: keyof typeof users, repo: string, data: string): Promise<string> => {
    const digest = sha256(data);
    const res = await fetch(`${registry.url}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { Authorization: basicAuth(user, users[user]), 'Content-Type': 'application/octet-stream' },
      body: data,
    });
    assert.equal(res.status, 201, await res.text());
    return digest;
  };

  it('does not mount from a repository the caller may not read, and the answer matches an unknown digest', async () => {
    const secret = await push('alice', 'alice/private', 'only alice may read this layer');
    const held = await sessionShape(await post('bob', 'bob/app', secret));
    const unknown = await sessionShape(await post('bob', 'bob/app', sha256('no repository holds this')));
    assert.equal(held.status, 202);
    assert.deepEqual(held, unknown);
    assert.equal((await fetch(`${registry.url}/v2/bob/app/blobs/${secret}`, { headers: { Authorization: basicAuth('bob', users.bob) } })).status, 404);
    assert.equal(mountsOf(registry, 'bob/app').length, 0);
  });

  it('mounts from a repository the caller may read, even when an unreadable one holds the blob too', async () => {
    const data = 'alice pushed this layer to her repository and to the shared one';
    const digest = await push('alice', 'alice/first', data);
    await push('alice', 'shared/base', data);
    const res = await post('bob', 'bob/tool', digest);
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('docker-content-digest'), digest);
    assert.deepEqual(
      mountsOf(registry, 'bob/tool').map((event) => event.from),
      ['shared/base'],
    );
    await assertReplayClean(registry);
  });
});

describe('automatic cross-repository mount with subPaths', () => {
  const base = makeTempDir();
  const roots = { main: path.join(base, 'main'), a: path.join(base, 'a') };
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry({ root: roots.main, storage: { dedupe: true, subPaths: { '/a': { rootDirectory: roots.a, dedupe: true } } } });
  });
  after(async () => registry?.stop());

  it('does not mount a blob that only another root holds, and mounts within one root', async () => {
    const digest = await pushBlob(registry.url, 'top/holder', 'a layer in the default root');
    const across = await fetch(`${registry.url}/v2/a/app/blobs/uploads/?mount=${digest}`, { method: 'POST' });
    assert.equal(across.status, 202);
    await across.arrayBuffer();
    assert.ok(!fs.existsSync(blobFile(roots.a, 'a/app', digest)));
    assert.equal(mountsOf(registry, 'a/app').length, 0);

    const inA = await pushBlob(registry.url, 'a/holder', 'a layer in the root of /a');
    const within = await fetch(`${registry.url}/v2/a/app/blobs/uploads/?mount=${inA}`, { method: 'POST' });
    assert.equal(within.status, 201);
    assert.equal(fs.statSync(blobFile(roots.a, 'a/app', inA)).ino, fs.statSync(blobFile(roots.a, 'a/holder', inA)).ino);
  });
});
