// storage.maxRepos through HTTP: the push that would create one repository too many is refused
// with zot's answer (413 TOOMANYREQUESTS, detail current/projected/limit), before any bytes are
// sent; repositories that exist take pushes as before; repositories are counted across the
// default root and the subPaths; and uploads that all started while there was room, committed
// at once, create no more than the limit: the count is checked again inside the append. A
// subPath's own maxRepos is not built: serve refuses it by name rather than ignore it.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { expectOciError, openSession, withDigest } from '../helpers/http.js';
import { makeImage, pushBlob, pushImage, sha256 } from '../helpers/oci.js';
import { makeTempDir, runZot, startTestRegistry, writeConfig, type TestRegistry } from '../helpers/registry.js';
import type { Config } from '../../src/config/types.js';

const started: TestRegistry[] = [];
after(async () => {
  for (const registry of started) await registry.stop();
});

async function start(storage: object): Promise<TestRegistry> {
  const registry = await startTestRegistry({ storage });
  started.push(registry);
  return registry;
}

async function catalog(url: string): Promise<string[]> {
  return ((await (await fetch(`${url}/v2/_catalog`)).json()) as { repositories: string[] }).repositories;
}

describe('storage.maxRepos', () => {
  it('refuses the push into one repository too many, and keeps taking pushes into the others', async () => {
    const { url } = await start({ maxRepos: 2 });
    assert.equal((await pushImage(url, 'quota/a', 'v1')).status, 201);
    assert.equal((await pushImage(url, 'quota/b', 'v1')).status, 201);

    const refused = await fetch(`${url}/v2/quota/c/blobs/uploads/`, { method: 'POST' });
    const body = await expectOciError(refused, 413, 'TOOMANYREQUESTS');
    assert.deepEqual(body.errors[0]!.detail, { current: '2', projected: '3', limit: '2' });
    assert.match(body.errors[0]!.message, /maxRepos/);
    const monolithic = await fetch(`${url}/v2/quota/c/blobs/uploads/?digest=${sha256('c')}`, { method: 'POST', body: 'c' });
    await expectOciError(monolithic, 413, 'TOOMANYREQUESTS');
    const mounted = await fetch(`${url}/v2/quota/c/blobs/uploads/?mount=${sha256('never')}&from=quota/a`, { method: 'POST' });
    await expectOciError(mounted, 413, 'TOOMANYREQUESTS');

    assert.equal((await pushImage(url, 'quota/a', 'v2', makeImage())).status, 201, 'an existing repository takes more');
    assert.deepEqual(await catalog(url), ['quota/a', 'quota/b']);
  });

  it('refuses a mount into a new repository past the limit', async () => {
    const { url } = await start({ maxRepos: 1 });
    const digest = await pushBlob(url, 'mount/source', 'shared bytes');
    const mounted = await fetch(`${url}/v2/mount/target/blobs/uploads/?mount=${digest}&from=mount/source`, { method: 'POST' });
    await expectOciError(mounted, 413, 'TOOMANYREQUESTS');
    assert.deepEqual(await catalog(url), ['mount/source']);
  });

  it('counts the repositories of every root', async () => {
    const base = makeTempDir();
    const { url } = await start({
      rootDirectory: path.join(base, 'root'),
      maxRepos: 2,
      subPaths: { '/team': { rootDirectory: path.join(base, 'team') } },
    });
    await pushBlob(url, 'main/one', 'one');
    await pushBlob(url, 'team/two', 'two');
    await expectOciError(await fetch(`${url}/v2/main/three/blobs/uploads/`, { method: 'POST' }), 413, 'TOOMANYREQUESTS');
    await expectOciError(await fetch(`${url}/v2/team/three/blobs/uploads/`, { method: 'POST' }), 413, 'TOOMANYREQUESTS');
  });

  it('lets uploads committed at once create no more repositories than the limit', async () => {
    const { url } = await start({ maxRepos: 3 });
    const repos = Array.from({ length: 8 }, (_, i) => `race/r${i}`);
    // Every session opens while no repository exists, so each passes the check at its start.
    const sessions = await Promise.all(repos.map((repo) => openSession(url, repo)));
    const blobs = repos.map(() => randomBytes(256));
    const commits = await Promise.all(
      sessions.map((session, i) => fetch(withDigest(session, sha256(blobs[i]!)), { method: 'PUT', body: blobs[i]! })),
    );
    const statuses = await Promise.all(commits.map(async (res) => (await res.arrayBuffer(), res.status)));
    assert.equal(statuses.filter((status) => status === 201).length, 3, `exactly 3 commits create a repository: ${statuses.join(',')}`);
    assert.equal(statuses.filter((status) => status === 413).length, 5, `the others are refused: ${statuses.join(',')}`);
    assert.equal((await catalog(url)).length, 3);
  });

  it('is refused on a subPath by name, by verify and serve, rather than ignored', async () => {
    const base = makeTempDir();
    const file = writeConfig({
      http: { address: '127.0.0.1', port: '0' },
      storage: { rootDirectory: path.join(base, 'root'), maxRepos: 5, subPaths: { '/team': { rootDirectory: path.join(base, 'team'), maxRepos: 1 } } },
    } as Config);
    const refused = "  storage.subPaths./team.maxRepos: a limit on the repositories of one subPath is not built yet";
    const verify = await runZot(['verify', file]);
    assert.equal(verify.code, 1, verify.stdout);
    assert.ok(verify.stderr.split('\n').includes(refused), verify.stderr);
    const serve = await runZot(['serve', file]);
    assert.equal(serve.code, 1, serve.stdout);
    assert.ok(serve.stderr.split('\n').includes(refused), serve.stderr);
  });
});
