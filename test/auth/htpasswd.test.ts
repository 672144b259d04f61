// htpasswd authentication through HTTP against real registries: the 401 challenge, right and
// wrong credentials, skopeo with --creds and after `skopeo login` (plain HTTP and TLS), the file
// re-read when it changes on disk, and a bad file at start naming its line.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basicAuth, fetchAs, writeHtpasswd } from '../helpers/auth.js';
import { eventually, expectOciError } from '../helpers/http.js';
import { layoutImage, writeLayout } from '../helpers/layout.js';
import { REPO_ROOT, makeTempDir, runZot, startTestRegistry, writeConfig, testConfig, type TestRegistry } from '../helpers/registry.js';
import { skopeo, type Skopeo } from '../helpers/skopeo.js';

const TLS_CERT = path.join(REPO_ROOT, 'examples', 'tls', 'server.crt');
const TLS_KEY = path.join(REPO_ROOT, 'examples', 'tls', 'server.key');

describe('htpasswd authentication', () => {
  let registry: TestRegistry;
  let tlsRegistry: TestRegistry;
  let htpasswd: string;
  let client: Skopeo;
  let work: string;

  before(async () => {
    work = makeTempDir('zot-ts-htpasswd-');
    htpasswd = writeHtpasswd(path.join(work, 'htpasswd'), { alice: 'alice-secret', bob: 'bob-secret' });
    const auth = { htpasswd: { path: htpasswd } };
    registry = await startTestRegistry({ http: { realm: 'zot-test', auth } });
    tlsRegistry = await startTestRegistry({ http: { auth, tls: { cert: TLS_CERT, key: TLS_KEY } } });
    client = skopeo();
  });

  after(async () => {
    client?.close();
    await registry?.stop();
    await tlsRegistry?.stop();
  });

  const v2 = (suffix = ''): string => `${registry.url}/v2/${suffix}`;

  it('answers a request without credentials 401 UNAUTHORIZED with the Basic challenge of http.realm', async () => {
    for (const url of [v2(), v2('_catalog'), v2('team/app/manifests/v1'), v2('team/app/tags/list')]) {
      const res = await fetch(url);
      assert.equal(res.headers.get('www-authenticate'), 'Basic realm="zot-test"', url);
      await expectOciError(res, 401, 'UNAUTHORIZED');
    }
    const push = await fetch(v2('team/app/blobs/uploads/'), { method: 'POST' });
    assert.equal(push.headers.get('www-authenticate'), 'Basic realm="zot-test"');
    await expectOciError(push, 401, 'UNAUTHORIZED');
    // An empty user and password (`Basic Og==`, sent by some clients first) is no credentials.
    await expectOciError(await fetch(v2(), { headers: { Authorization: 'Basic Og==' } }), 401, 'UNAUTHORIZED');
  });

  it('keeps the health probes anonymous', async () => {
    for (const probe of ['/livez', '/readyz', '/startupz']) {
      assert.equal((await fetch(`${registry.url}${probe}`)).status, 200, probe);
    }
  });

  it('uses "Authorization Required" as the realm when http.realm is unset', async () => {
    const plain = await startTestRegistry({ http: { auth: { htpasswd: { path: htpasswd } } } });
    try {
      const unauthenticated = await fetch(`${plain.url}/v2/`);
      assert.equal(unauthenticated.headers.get('www-authenticate'), 'Basic realm="Authorization Required"');
      await expectOciError(unauthenticated, 401, 'UNAUTHORIZED');
    } finally {
      await plain.stop();
    }
  });

  it('accepts the right password and refuses a wrong one, an unknown user and malformed credentials', async () => {
    const ok = await fetchAs('alice', 'alice-secret', v2());
    assert.equal(ok.status, 200, await ok.text());
    const catalog = await fetchAs('bob', 'bob-secret', v2('_catalog'));
    assert.equal(catalog.status, 200);

    const cases: [string, string][] = [
      ['wrong password', basicAuth('alice', 'bob-secret')],
      ['unknown user', basicAuth('mallory', 'alice-secret')],
      ['empty password', basicAuth('alice', '')],
      ['no colon', `Basic ${Buffer.from('alice').toString('base64')}`],
      ['not base64', 'Basic !!!'],
      ['another scheme', 'Bearer abc.def.ghi'],
    ];
    for (const [name, header] of cases) {
      const res = await fetch(v2(), { headers: { Authorization: header } });
      assert.equal(res.headers.get('www-authenticate'), 'Basic realm="zot-test"', name);
      await expectOciError(res, 401, 'UNAUTHORIZED');
    }
  });

  it('pushes and pulls with skopeo --creds, and skopeo without credentials is refused', async () => {
    const host = new URL(registry.url).host;
    const source = path.join(work, 'image');
    const image = layoutImage({ layers: 2 });
    writeLayout(source, [{ manifest: image, tag: 'v1' }]);

    const refused = await client.run(['copy', '--dest-tls-verify=false', `oci:${source}:v1`, `docker://${host}/creds/app:v1`]);
    assert.notEqual(refused.code, 0, 'a push without credentials fails');
    assert.match(refused.stderr, /unauthorized|authentication required/i);
    const wrong = await client.run(['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:wrong', `oci:${source}:v1`, `docker://${host}/creds/app:v1`]);
    assert.notEqual(wrong.code, 0, 'a push with a wrong password fails');

    await client.ok(['copy', '--preserve-digests', '--dest-tls-verify=false', '--dest-creds', 'alice:alice-secret', `oci:${source}:v1`, `docker://${host}/creds/app:v1`]);
    const pulled = path.join(work, 'pulled');
    await client.ok(['copy', '--src-tls-verify=false', '--src-creds', 'bob:bob-secret', `docker://${host}/creds/app:v1`, `oci:${pulled}:v1`]);
    assert.ok(fs.existsSync(path.join(pulled, 'index.json')));
    const inspected = await client.ok(['inspect', '--raw', '--tls-verify=false', '--creds', 'bob:bob-secret', `docker://${host}/creds/app:v1`]);
    assert.equal(inspected.stdout, image.bytes.toString('utf8'));

    const anonymousPull = await client.run(['inspect', '--raw', '--tls-verify=false', `docker://${host}/creds/app:v1`]);
    assert.notEqual(anonymousPull.code, 0, 'a pull without credentials fails');
  });

  it('pushes and pulls after skopeo login, on plain HTTP and on TLS', async () => {
    const source = path.join(work, 'login-image');
    const image = layoutImage({ layers: 1 });
    writeLayout(source, [{ manifest: image, tag: 'v1' }]);
    for (const target of [registry, tlsRegistry]) {
      const host = new URL(target.url).host;
      const badLogin = await client.run(['login', '--tls-verify=false', '-u', 'alice', '-p', 'nope', host]);
      assert.notEqual(badLogin.code, 0, `login with a wrong password fails on ${target.url}`);
      await client.ok(['login', '--tls-verify=false', '-u', 'alice', '-p', 'alice-secret', host]);
      await client.ok(['copy', '--preserve-digests', '--dest-tls-verify=false', `oci:${source}:v1`, `docker://${host}/login/app:v1`]);
      const tags = await client.ok(['list-tags', '--tls-verify=false', `docker://${host}/login/app`]);
      assert.deepEqual((JSON.parse(tags.stdout) as { Tags: string[] }).Tags, ['v1']);
      await client.ok(['logout', host]);
      const afterLogout = await client.run(['list-tags', '--tls-verify=false', `docker://${host}/login/app`]);
      assert.notEqual(afterLogout.code, 0, 'after logout the registry refuses the client again');
    }
  });

  it('re-reads the file when it changes: a new user gets in, a changed password stops working at once, a bad file keeps the last users', async () => {
    assert.equal((await fetchAs('carol', 'carol-secret', v2())).status, 401);
    // Warm the credential cache with alice's current password.
    assert.equal((await fetchAs('alice', 'alice-secret', v2())).status, 200);

    writeHtpasswd(htpasswd, { alice: 'alice-new', bob: 'bob-secret', carol: 'carol-secret' });
    await eventually(async () => (await fetchAs('carol', 'carol-secret', v2())).status === 200, 'carol to be accepted after the file changed');
    assert.equal((await fetchAs('alice', 'alice-secret', v2())).status, 401, "alice's old password no longer works, cached or not");
    assert.equal((await fetchAs('alice', 'alice-new', v2())).status, 200);

    // A file that does not parse: the users last loaded stay.
    fs.writeFileSync(htpasswd, 'carol:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n');
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal((await fetchAs('carol', 'carol-secret', v2())).status, 200, 'a bad file keeps the last good users');
    assert.equal((await fetchAs('bob', 'bob-secret', v2())).status, 200);

    // Fixed again: the new content applies.
    writeHtpasswd(htpasswd, { alice: 'alice-secret', bob: 'bob-secret' });
    await eventually(async () => (await fetchAs('carol', 'carol-secret', v2())).status === 401, 'carol to be refused after removal');
    assert.equal((await fetchAs('alice', 'alice-secret', v2())).status, 200);
  });
});

describe('a bad htpasswd file at start', () => {
  it('stops zot serve and zot verify, naming the file and the line', async () => {
    const dir = makeTempDir('zot-ts-htpasswd-bad-');
    const file = path.join(dir, 'htpasswd');
    writeHtpasswd(file, { alice: 'alice-secret' });
    fs.appendFileSync(file, 'bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n');
    const config = writeConfig(testConfig({ http: { auth: { htpasswd: { path: file } } } }), dir);
    for (const command of ['serve', 'verify']) {
      const result = await runZot([command, config]);
      assert.equal(result.code, 1, `${command}: ${result.stdout}${result.stderr}`);
      assert.ok(
        result.stderr.includes(`http.auth.htpasswd.path: ${file}: line 2: the entry of user "bob" is not a bcrypt hash`),
        `${command} names the file and line:\n${result.stderr}`,
      );
      assert.ok(!result.stderr.includes('W6ph5Mm5Pz8GgiULbPgzG37mj9g'), 'the hash is not printed');
    }
    const missing = await runZot(['verify', writeConfig(testConfig({ http: { auth: { htpasswd: { path: path.join(dir, 'gone') } } } }), makeTempDir())]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /http\.auth\.htpasswd\.path: no such file: .*gone/);
  });
});
