// accessControl through HTTP: a table of identities × actions × repositories, each cell checked
// with a real request, for both forms of the section (the seed's globs directly under a top-level
// `accessControl`, and zot's newer `http.accessControl.repositories`). The table is written out by
// hand from zot's rules; it covers exact, `*`, `**` and `a/**` globs, the longest match, the
// admin policy, default and anonymous policies, and groups. Then: the catalog lists only what
// each identity may read, mounts need read on the source, a tag moves only with update, and the
// configurations without accessControl or without authentication.
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Policy, RepositoryPolicy } from '../../src/config/types.js';
import { basicAuth, writeHtpasswd } from '../helpers/auth.js';
import { expectOciError } from '../helpers/http.js';
import { OCI_MANIFEST, makeImage, sha256, type TestImage } from '../helpers/oci.js';
import { makeTempDir, runZot, startTestRegistry, testConfig, writeConfig, type TestRegistry } from '../helpers/registry.js';

const USERS = ['admin', 'alice', 'bob', 'charlie', 'mallory', 'dave', 'eve'] as const;
type Who = (typeof USERS)[number] | 'anonymous';
const EVERYONE: readonly Who[] = [...USERS, 'anonymous'];
const password = (user: string): string => `${user}-secret`;

type Rights = Record<Who, string>;
const row = (admin: string, alice: string, bob: string, charlie: string, mallory: string, dave: string, eve: string, anonymous: string): Rights => ({
  admin,
  alice,
  bob,
  charlie,
  mallory,
  dave,
  eve,
  anonymous,
});

// The policies, as repository glob → policy; written into each form below.
const REPOSITORY_POLICIES: Record<string, RepositoryPolicy> = {
  '**': { policies: [{ users: ['charlie'], actions: ['read', 'create', 'update'] }], defaultPolicy: ['read'], anonymousPolicy: ['read'] },
  'tmp/**': { defaultPolicy: ['read', 'create', 'update'] },
  'infra/*': {
    policies: [
      { users: ['alice', 'bob'], actions: ['read', 'create', 'update', 'delete'] },
      { users: ['mallory'], actions: ['read', 'create'] },
    ],
    defaultPolicy: ['read'],
  },
  'repos2/repo': { policies: [{ users: ['bob'], actions: ['read', 'create'] }], defaultPolicy: ['read'] },
  'repos2/**': { defaultPolicy: ['read', 'create', 'update', 'delete'] },
  'dev/**': { policies: [{ groups: ['developers'], actions: ['read', 'create', 'update'] }] },
};
const ADMIN_POLICY: Policy = { users: ['admin'], actions: ['read', 'create', 'update', 'delete'] };
const GROUPS = { developers: { users: ['dave'] } };

// R read, C create, U update, D delete; '' nothing.
//                                  admin   alice   bob     charlie mallory dave    eve     anonymous
const MATRIX: Record<string, Rights> = {
  // `**` only: charlie's policy, the default read, the anonymous read.
  'library/app': row('RCUD', 'R', 'R', 'RCU', 'R', 'R', 'R', 'R'),
  // `tmp/**` matches `tmp` itself too (zot's doublestar); it is longer than `**`, and has no anonymousPolicy.
  tmp: row('RCUD', 'RCU', 'RCU', 'RCU', 'RCU', 'RCU', 'RCU', ''),
  'tmp/x/y': row('RCUD', 'RCU', 'RCU', 'RCU', 'RCU', 'RCU', 'RCU', ''),
  // `infra/*`: charlie's `**` policy does not apply where a longer glob matches.
  'infra/db': row('RCUD', 'RCUD', 'RCUD', 'R', 'RC', 'R', 'R', ''),
  // `*` stays within one segment, so `infra/db/deep` falls back to `**`.
  'infra/db/deep': row('RCUD', 'R', 'R', 'RCU', 'R', 'R', 'R', 'R'),
  // The exact name is longer than `repos2/**`.
  'repos2/repo': row('RCUD', 'R', 'RC', 'R', 'R', 'R', 'R', ''),
  'repos2/other': row('RCUD', 'RCUD', 'RCUD', 'RCUD', 'RCUD', 'RCUD', 'RCUD', ''),
  // Only the developers group (dave, from accessControl.groups) and the admin.
  'dev/app': row('RCUD', '', '', '', '', 'RCU', '', ''),
};
const REPOSITORIES = Object.keys(MATRIX);

/** A registry with the policies in the given form of the section. */
function startWith(form: 'seed' | 'repositories', htpasswd: string): Promise<TestRegistry> {
  const auth = { htpasswd: { path: htpasswd } };
  if (form === 'seed') return startTestRegistry({ http: { auth }, accessControl: { ...REPOSITORY_POLICIES, adminPolicy: ADMIN_POLICY, groups: GROUPS } });
  return startTestRegistry({ http: { auth, accessControl: { repositories: REPOSITORY_POLICIES, adminPolicy: ADMIN_POLICY, groups: GROUPS } } });
}

interface Client {
  request(method: string, url: string, body?: string | Buffer, contentType?: string): Promise<Response>;
}

function clientFor(registryUrl: string, who: Who): Client {
  return {
    request: (method, url, body, contentType) => {
      const headers: Record<string, string> = {};
      if (who !== 'anonymous') headers.Authorization = basicAuth(who, password(who));
      if (contentType) headers['Content-Type'] = contentType;
      return fetch(`${registryUrl}${url}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    },
  };
}

async function pushImageAs(client: Client, repo: string, image: TestImage, tags: string[]): Promise<void> {
  for (const blob of [image.config, ...image.layers]) {
    const res = await client.request('POST', `/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, blob, 'application/octet-stream');
    assert.equal(res.status, 201, `setup blob push to ${repo}: ${await res.text()}`);
  }
  for (const reference of [image.digest, ...tags]) {
    const res = await client.request('PUT', `/v2/${repo}/manifests/${reference}`, image.manifestBytes, OCI_MANIFEST);
    assert.equal(res.status, 201, `setup manifest push to ${repo}:${reference}: ${await res.text()}`);
  }
}

/** The outcome of a refused request: 401 with the challenge for anonymous, else 403 DENIED. */
async function expectRefused(res: Response, who: Who, what: string): Promise<void> {
  if (who === 'anonymous') {
    assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm="/, `${what}: the 401 carries the challenge`);
    await expectOciError(res, 401, 'UNAUTHORIZED');
  } else {
    await expectOciError(res, 403, 'DENIED');
  }
}

async function expectAllowed(res: Response, status: number, what: string): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, status, `${what}: expected ${status}, got ${res.status} ${text}`);
}

for (const form of ['seed', 'repositories'] as const) {
  describe(`accessControl (${form === 'seed' ? "the seed's top-level form" : 'http.accessControl.repositories'})`, () => {
    let registry: TestRegistry;
    const first = makeImage();
    const second = makeImage();

    before(async () => {
      const htpasswd = writeHtpasswd(path.join(makeTempDir('zot-ts-acl-'), 'htpasswd'), Object.fromEntries(USERS.map((u) => [u, password(u)])));
      registry = await startWith(form, htpasswd);
      const admin = clientFor(registry.url, 'admin');
      for (const repo of REPOSITORIES) {
        await pushImageAs(admin, repo, first, ['base', ...EVERYONE.flatMap((who) => [`upd-${who}`, `del-${who}`])]);
        await pushImageAs(admin, repo, second, []);
      }
    });

    after(async () => {
      await registry?.stop();
    });

    for (const repo of REPOSITORIES) {
      it(`enforces the table on ${repo}`, async () => {
        for (const who of EVERYONE) {
          const rights = MATRIX[repo]?.[who] ?? '';
          const client = clientFor(registry.url, who);
          const cell = (action: string) => `${who} ${action} ${repo}`;

          // read: a manifest by tag, and the tags list.
          const read = await client.request('GET', `/v2/${repo}/manifests/base`);
          const tags = await client.request('GET', `/v2/${repo}/tags/list`);
          if (rights.includes('R')) {
            await expectAllowed(read, 200, cell('read'));
            await expectAllowed(tags, 200, cell('read tags'));
          } else {
            await expectRefused(read, who, cell('read'));
            await expectRefused(tags, who, cell('read tags'));
          }

          // create: an upload session, and a tag that does not exist yet.
          const session = await client.request('POST', `/v2/${repo}/blobs/uploads/`);
          const created = await client.request('PUT', `/v2/${repo}/manifests/new-${who}`, first.manifestBytes, OCI_MANIFEST);
          if (rights.includes('C')) {
            await expectAllowed(session, 202, cell('start an upload'));
            await expectAllowed(created, 201, cell('create a tag'));
          } else {
            await expectRefused(session, who, cell('start an upload'));
            await expectRefused(created, who, cell('create a tag'));
          }

          // update: move an existing tag to another manifest.
          const moved = await client.request('PUT', `/v2/${repo}/manifests/upd-${who}`, second.manifestBytes, OCI_MANIFEST);
          if (rights.includes('U')) await expectAllowed(moved, 201, cell('move a tag'));
          else await expectRefused(moved, who, cell('move a tag'));

          // delete: a tag.
          const deleted = await client.request('DELETE', `/v2/${repo}/manifests/del-${who}`);
          if (rights.includes('D')) await expectAllowed(deleted, 202, cell('delete a tag'));
          else await expectRefused(deleted, who, cell('delete a tag'));
        }
      });
    }

    it('lists in the catalog only the repositories each identity may read', async () => {
      for (const who of EVERYONE) {
        const res = await clientFor(registry.url, who).request('GET', '/v2/_catalog');
        assert.equal(res.status, 200, `${who}'s catalog`);
        const { repositories } = (await res.json()) as { repositories: string[] };
        const readable = REPOSITORIES.filter((repo) => MATRIX[repo]?.[who].includes('R')).sort();
        assert.deepEqual(repositories, readable, `${who}'s catalog`);
      }
      // Pages hold only readable repositories, and the Link leads to the next ones.
      const eve = clientFor(registry.url, 'eve');
      const page = await eve.request('GET', '/v2/_catalog?n=2');
      assert.deepEqual(((await page.json()) as { repositories: string[] }).repositories, ['infra/db', 'infra/db/deep']);
      assert.match(page.headers.get('link') ?? '', /last=infra%2Fdb%2Fdeep/);
    });

    it('lets an anonymous caller reach /v2/ because an anonymousPolicy exists', async () => {
      assert.equal((await fetch(`${registry.url}/v2/`)).status, 200);
    });

    it('mounts a blob only from a repository the identity may read, else opens a session', async () => {
      const mallory = clientFor(registry.url, 'mallory');
      const digest = sha256(first.config);
      const fromUnreadable = await mallory.request('POST', `/v2/infra/db/blobs/uploads/?mount=${digest}&from=dev/app`);
      await expectAllowed(fromUnreadable, 202, 'a mount from dev/app (no read) falls back to a session');
      const fromReadable = await mallory.request('POST', `/v2/infra/db/blobs/uploads/?mount=${digest}&from=library/app`);
      await expectAllowed(fromReadable, 201, 'a mount from library/app (read)');
    });

    it('moves a tag only with update, even when two pushes race to create it', async () => {
      // mallory may create on infra/db, not update: of two pushes to one new tag, one creates it
      // and the other would move it.
      // Both requests are authorized (the tag does not exist yet: create) before either body is
      // sent, so the check made at authorization cannot tell them apart; the one inside the append can.
      const target = new URL(`${registry.url}/v2/infra/db/manifests/race-${form}`);
      const pushes = [first, second].map((image) => {
        const body = Buffer.from(image.manifestBytes);
        const request = http.request(target, {
          method: 'PUT',
          headers: { Authorization: basicAuth('mallory', password('mallory')), 'Content-Type': OCI_MANIFEST, 'Content-Length': String(body.length) },
        });
        const status = new Promise<number>((resolve, reject) => {
          request.on('response', (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
          request.on('error', reject);
        });
        request.flushHeaders();
        return { request, body, status };
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      for (const push of pushes) push.request.end(push.body);
      const statuses = await Promise.all(pushes.map((push) => push.status));
      assert.deepEqual([...statuses].sort(), [201, 403], 'one push creates the tag, the other is refused');
      const winner = statuses.indexOf(201);
      const tagged = await clientFor(registry.url, 'admin').request('HEAD', `/v2/infra/db/manifests/race-${form}`);
      assert.equal(tagged.headers.get('docker-content-digest'), [first, second][winner]?.digest);
    });
  });
}

describe('authentication without accessControl', () => {
  let registry: TestRegistry;

  before(async () => {
    const htpasswd = writeHtpasswd(path.join(makeTempDir('zot-ts-acl-'), 'htpasswd'), { alice: password('alice') });
    registry = await startTestRegistry({ http: { auth: { htpasswd: { path: htpasswd } } } });
  });

  after(async () => {
    await registry?.stop();
  });

  it('lets every authenticated user do everything and an anonymous caller nothing', async () => {
    const alice = clientFor(registry.url, 'alice');
    const anonymous = clientFor(registry.url, 'anonymous');
    const image = makeImage();
    await pushImageAs(alice, 'any/repo', image, ['v1']);
    await expectAllowed(await alice.request('PUT', '/v2/any/repo/manifests/v1', makeImage().manifestBytes, OCI_MANIFEST), 400, 'a manifest whose blobs are missing');
    await expectAllowed(await alice.request('GET', '/v2/any/repo/manifests/v1'), 200, 'alice reads');
    await expectAllowed(await alice.request('DELETE', '/v2/any/repo/manifests/v1'), 202, 'alice deletes');
    for (const [method, url] of [
      ['GET', '/v2/'],
      ['GET', '/v2/_catalog'],
      ['GET', `/v2/any/repo/manifests/${image.digest}`],
      ['POST', '/v2/any/repo/blobs/uploads/'],
    ] as const) {
      await expectRefused(await anonymous.request(method, url), 'anonymous', `anonymous ${method} ${url}`);
    }
  });
});

describe('anonymousPolicy without any authentication method', () => {
  let registry: TestRegistry;

  before(async () => {
    registry = await startTestRegistry({
      http: { accessControl: { repositories: { 'public/**': { anonymousPolicy: ['read'] }, 'open/**': { anonymousPolicy: ['read', 'create'] } } } },
    });
  });

  after(async () => {
    await registry?.stop();
  });

  it('gives an anonymous caller only what anonymousPolicy allows', async () => {
    const anonymous = clientFor(registry.url, 'anonymous');
    await expectAllowed(await anonymous.request('GET', '/v2/'), 200, 'the base endpoint');
    await pushImageAs(anonymous, 'open/app', makeImage(), ['v1']);
    await expectAllowed(await anonymous.request('GET', '/v2/open/app/manifests/v1'), 200, 'read open/app');
    await expectRefused(await anonymous.request('DELETE', '/v2/open/app/manifests/v1'), 'anonymous', 'delete in open/**');
    await expectRefused(await anonymous.request('PUT', '/v2/open/app/manifests/v1', makeImage().manifestBytes, OCI_MANIFEST), 'anonymous', 'move a tag in open/**');
    await expectRefused(await anonymous.request('POST', '/v2/public/app/blobs/uploads/'), 'anonymous', 'push to public/**');
    await expectRefused(await anonymous.request('GET', '/v2/private/app/tags/list'), 'anonymous', 'read outside both globs');
    const catalog = (await (await anonymous.request('GET', '/v2/_catalog')).json()) as { repositories: string[] };
    assert.deepEqual(catalog.repositories, ['open/app']);
  });
});

describe('accessControl.metrics.users', () => {
  let registry: TestRegistry;

  before(async () => {
    const htpasswd = writeHtpasswd(path.join(makeTempDir('zot-ts-acl-'), 'htpasswd'), { alice: password('alice'), bob: password('bob') });
    registry = await startTestRegistry({
      http: {
        auth: { htpasswd: { path: htpasswd } },
        accessControl: { repositories: { '**': { defaultPolicy: ['read'], anonymousPolicy: ['read'] } }, metrics: { users: ['alice'] } },
      },
      extensions: { metrics: { enable: true, prometheus: { path: '/metrics' } } },
    });
  });

  after(async () => {
    await registry?.stop();
  });

  it('serves /metrics to the listed users only: 403 for another user, 401 for anonymous', async () => {
    const alice = await clientFor(registry.url, 'alice').request('GET', '/metrics');
    assert.equal(alice.status, 200);
    assert.match(await alice.text(), /zot_http_requests_total/);
    await expectRefused(await clientFor(registry.url, 'bob').request('GET', '/metrics'), 'bob', 'bob reads /metrics');
    await expectRefused(await clientFor(registry.url, 'anonymous').request('GET', '/metrics'), 'anonymous', 'anonymous reads /metrics');
    assert.equal((await fetch(`${registry.url}/readyz`)).status, 200, 'probes stay anonymous');
  });
});

describe('accessControl.metrics.anonymousPolicy', () => {
  let registry: TestRegistry;

  before(async () => {
    const htpasswd = writeHtpasswd(path.join(makeTempDir('zot-ts-acl-'), 'htpasswd'), { alice: password('alice') });
    registry = await startTestRegistry({
      http: {
        auth: { htpasswd: { path: htpasswd } },
        accessControl: { repositories: { '**': { defaultPolicy: ['read'] } }, metrics: { users: ['alice'], anonymousPolicy: ['read'] } },
      },
      extensions: { metrics: { enable: true, prometheus: { path: '/metrics' } } },
    });
  });

  after(async () => {
    await registry?.stop();
  });

  it('lets an anonymous scraper read /metrics when anonymousPolicy grants read, and nothing else', async () => {
    const scrape = await clientFor(registry.url, 'anonymous').request('GET', '/metrics');
    assert.equal(scrape.status, 200);
    assert.match(await scrape.text(), /zot_http_requests_total/);
    await expectRefused(await clientFor(registry.url, 'anonymous').request('GET', '/v2/_catalog'), 'anonymous', 'anonymous lists the catalog');
  });
});

describe('zot verify on accessControl', () => {
  it('names every bad rule with its path and exits 1, and zot serve refuses the same file', async () => {
    const config = testConfig({
      accessControl: {
        'infra/[db': { defaultPolicy: ['read'] },
        'team/**': { policies: [{ users: ['alice'], actions: ['create'] }], anonymousPolicy: ['read', 'push' as 'read'] },
      },
    });
    const file = writeConfig(config);
    for (const command of ['verify', 'serve']) {
      const result = await runZot([command, file]);
      assert.equal(result.code, 1, `${command}: ${result.stdout}${result.stderr}`);
      for (const expected of [
        'accessControl: needs an authentication method',
        'accessControl.infra/[db: is not a valid repository glob: it has a [ at position 7 with no closing ]',
        'accessControl.team/**.anonymousPolicy.1: must be one of read, create, update, delete',
        'accessControl.team/**.policies.0.actions: must include read when it includes create, update or delete',
      ]) {
        assert.ok(result.stderr.includes(expected), `${command} reports "${expected}":\n${result.stderr}`);
      }
    }
  });
});
