// LDAP through HTTP against a real slapd: skopeo pushes as an LDAP user whose memberOf group
// accessControl grants, a user in no group is denied, LDAP is asked before htpasswd, an htpasswd
// user still gets in while the directory is down while LDAP users get a 401 (not a 500), and they
// get back in when it returns. At debug level no password reaches the log or the audit file.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { readEvents } from '../../src/events/store.js';
import { createLogger } from '../../src/logging.js';
import { basic } from '../helpers/auth-probe.js';
import { expectOciError } from '../helpers/http.js';
import { layoutImage, writeLayout } from '../helpers/layout.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeo, type Skopeo } from '../helpers/skopeo.js';
import { PEOPLE_DN, SEARCHER_DN, SEARCHER_PASSWORD, groupDn, passwordOf, startSlapd, type Slapd } from '../helpers/slapd.js';

describe('LDAP authentication through HTTP', () => {
  let slapd: Slapd;
  let registry: TestRegistry;
  let client: Skopeo;
  const work = makeTempDir();
  const logFile = path.join(work, 'zot.log');
  const auditFile = path.join(work, 'audit.log');

  before(async () => {
    slapd = await startSlapd();
    const htpasswd = path.join(work, 'htpasswd');
    // alice is in both with the same password: whoever is asked first names the method.
    fs.writeFileSync(htpasswd, `hank:${bcrypt.hashSync('hank-password', 4)}\nalice:${bcrypt.hashSync(passwordOf('alice'), 4)}\n`);
    const log = { level: 'debug' as const, output: logFile, audit: auditFile };
    registry = await startTestRegistry(
      {
        log,
        http: {
          auth: {
            ldap: { address: '127.0.0.1', port: slapd.ldapPort, insecure: true, baseDN: PEOPLE_DN, userAttribute: 'uid', userGroupAttribute: 'memberOf', bindDN: SEARCHER_DN, bindPassword: SEARCHER_PASSWORD },
            htpasswd: { path: htpasswd },
          },
          accessControl: {
            repositories: {
              'team/**': { policies: [{ groups: [groupDn('devs')], actions: ['read', 'create', 'update'] }], defaultPolicy: ['read'] },
            },
          },
        },
      },
      { logger: createLogger(log) },
    );
    client = skopeo();
  });

  after(async () => {
    client?.close();
    await registry?.stop();
    await slapd?.stop();
  });

  const host = () => registry.url.replace(/^http:\/\//, '');

  it('lets an LDAP user whose group the policy names push with skopeo, recorded as an ldap identity', async () => {
    const source = path.join(work, 'image');
    writeLayout(source, [{ manifest: layoutImage({ layers: 1 }), tag: 'v1' }]);
    await client.ok(['copy', '--dest-tls-verify=false', '--dest-creds', `alice:${passwordOf('alice')}`, `oci:${source}:v1`, `docker://${host()}/team/app:v1`]);
    const pushed = [...readEvents(registry.running.store.db, { repo: 'team/app' })].filter((e) => e.type === 'ManifestPushed');
    assert.equal(pushed.length, 1);
    assert.equal(pushed[0]?.identity, 'alice');
    assert.equal(pushed[0]?.authMethod, 'ldap', 'LDAP is asked before htpasswd, which knows alice too');
    // Without credentials skopeo is refused.
    const anonymous = await client.run(['inspect', '--tls-verify=false', `docker://${host()}/team/app:v1`]);
    assert.notEqual(anonymous.code, 0);
  });

  it('denies a push to an LDAP user in no group (403), who may still read by defaultPolicy', async () => {
    const push = await fetch(`${registry.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: basic('bob', passwordOf('bob')) });
    await expectOciError(push, 403, 'DENIED');
    const read = await fetch(`${registry.url}/v2/team/app/tags/list`, { headers: basic('bob', passwordOf('bob')) });
    assert.equal(read.status, 200);
    const wrong = await fetch(`${registry.url}/v2/team/app/tags/list`, { headers: basic('bob', 'not-bobs') });
    await expectOciError(wrong, 401, 'UNAUTHORIZED');
    assert.match(wrong.headers.get('www-authenticate') ?? '', /^Basic realm=/);
  });

  it('asks htpasswd after LDAP: an htpasswd-only user gets in', async () => {
    const res = await fetch(`${registry.url}/v2/`, { headers: basic('hank', 'hank-password') });
    assert.equal(res.status, 200);
  });

  it('answers LDAP users 401 while the directory is down, htpasswd users still get in, and LDAP users again when it returns', async () => {
    await slapd.stop();
    try {
      // carol never signed in before, so no cached check answers for her.
      const down = await fetch(`${registry.url}/v2/`, { headers: basic('carol', passwordOf('carol')) });
      await expectOciError(down, 401, 'UNAUTHORIZED');
      assert.equal((await fetch(`${registry.url}/v2/`, { headers: basic('hank', 'hank-password') })).status, 200);
    } finally {
      await slapd.start();
    }
    assert.equal((await fetch(`${registry.url}/v2/`, { headers: basic('carol', passwordOf('carol')) })).status, 200);
  });

  it('serves a second registry over LDAPS with CACert and the search account in credentialsFile, searching the subtree with a userFilter', async () => {
    const credentials = path.join(work, 'ldap-credentials.json');
    fs.writeFileSync(credentials, JSON.stringify({ bindDN: SEARCHER_DN, bindPassword: SEARCHER_PASSWORD }));
    const ldaps = await startTestRegistry({
      http: {
        auth: {
          ldap: {
            address: '127.0.0.1',
            port: slapd.ldapsPort,
            baseDN: PEOPLE_DN,
            userAttribute: 'uid',
            subtreeSearch: true,
            userFilter: '(!(employeeType=disabled))',
            credentialsFile: credentials,
            CACert: slapd.ca.cert,
          },
        },
      },
    });
    try {
      assert.equal((await fetch(`${ldaps.url}/v2/`, { headers: basic('dave', passwordOf('dave')) })).status, 200, 'dave, one level down');
      await expectOciError(await fetch(`${ldaps.url}/v2/`, { headers: basic('carol', passwordOf('carol')) }), 401, 'UNAUTHORIZED');
      await expectOciError(await fetch(`${ldaps.url}/v2/`), 401, 'UNAUTHORIZED');
    } finally {
      await ldaps.stop();
    }
  });

  it('serves a registry over StartTLS with CACert, and refuses the directory without it', async () => {
    const ldap = { address: '127.0.0.1', port: slapd.ldapPort, startTLS: true, baseDN: PEOPLE_DN, userAttribute: 'uid', bindDN: SEARCHER_DN, bindPassword: SEARCHER_PASSWORD };
    const trusted = await startTestRegistry({ http: { auth: { ldap: { ...ldap, CACert: slapd.ca.cert } } } });
    const untrusted = await startTestRegistry({ http: { auth: { ldap } } });
    try {
      assert.equal((await fetch(`${trusted.url}/v2/`, { headers: basic('alice', passwordOf('alice')) })).status, 200, 'StartTLS with the CA');
      await expectOciError(await fetch(`${trusted.url}/v2/`, { headers: basic('alice', 'wrong') }), 401, 'UNAUTHORIZED');
      // The directory's CA is not among the system's: the upgrade fails, so alice is refused.
      await expectOciError(await fetch(`${untrusted.url}/v2/`, { headers: basic('alice', passwordOf('alice')) }), 401, 'UNAUTHORIZED');
    } finally {
      await trusted.stop();
      await untrusted.stop();
    }
  });

  it('writes no password or Authorization header to the debug log or the audit file', async () => {
    await registry.running.actorsCaughtUp();
    registry.running.logger.flush();
    await new Promise((r) => setTimeout(r, 200));
    const logText = fs.readFileSync(logFile, 'utf8');
    const auditText = fs.readFileSync(auditFile, 'utf8');
    assert.match(logText, /"level":20/, 'the log is at debug level');
    assert.match(logText, /failed to reach the ldap server/, 'the outage was logged');
    assert.match(auditText, /"subject":"alice"/);
    for (const secret of [SEARCHER_PASSWORD, passwordOf('alice'), passwordOf('bob'), passwordOf('carol'), 'hank-password', 'not-bobs']) {
      assert.ok(!logText.includes(secret), `the log holds ${secret}`);
      assert.ok(!auditText.includes(secret), `the audit file holds ${secret}`);
    }
    const sent = [['alice', passwordOf('alice')], ['bob', passwordOf('bob')], ['bob', 'not-bobs'], ['carol', passwordOf('carol')], ['hank', 'hank-password']];
    for (const [user, password] of sent) {
      const header = Buffer.from(`${user}:${password}`).toString('base64');
      assert.ok(!logText.includes(header) && !auditText.includes(header), `an Authorization header of ${user} was written`);
    }
  });
});
