// The LDAP authenticator on its own, against a real slapd (plain, StartTLS, LDAPS), through real
// HTTP requests to a probe server: groups, userFilter, credentialsFile, one level vs subtree,
// certificate checks, and the directory going away and coming back.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LdapAuthenticator, userFilter } from '../../src/auth/ldap.js';
import type { LdapConfig } from '../../src/config/types.js';
import { basic, startAuthProbe, type AuthProbe } from '../helpers/auth-probe.js';
import { captureLog } from '../helpers/log-capture.js';
import { makeTempDir } from '../helpers/registry.js';
import { BASE_DN, PEOPLE_DN, SEARCHER_DN, SEARCHER_PASSWORD, groupDn, passwordOf, startSlapd, type Slapd } from '../helpers/slapd.js';

let slapd: Slapd;

before(async () => {
  slapd = await startSlapd();
});

after(async () => {
  await slapd?.stop();
});

function plain(extra: Partial<LdapConfig> = {}): LdapConfig {
  return {
    address: '127.0.0.1',
    port: slapd.ldapPort,
    insecure: true,
    baseDN: PEOPLE_DN,
    userAttribute: 'uid',
    bindDN: SEARCHER_DN,
    bindPassword: SEARCHER_PASSWORD,
    ...extra,
  };
}

interface ProbeOptions {
  caCert?: Buffer;
  timeouts?: { connectMs: number; operationMs: number };
  cacheTtlMs?: number;
}

// Without a cache by default: these tests look at what the directory answers each time.
async function probeFor(config: LdapConfig, options: ProbeOptions = {}) {
  const log = captureLog();
  const authenticator = new LdapAuthenticator({ config, logger: log.logger, cacheTtlMs: 0, ...options });
  const probe = await startAuthProbe(authenticator);
  return { probe, log };
}

async function withProbe(config: LdapConfig, test: (probe: AuthProbe) => Promise<void>, options: ProbeOptions = {}): Promise<void> {
  const { probe } = await probeFor(config, options);
  try {
    await test(probe);
  } finally {
    await probe.close();
  }
}

describe('ldap authenticator', () => {
  it('accepts a user with the right password and reports the memberOf groups', async () => {
    await withProbe(plain({ userGroupAttribute: 'memberOf' }), async (probe) => {
      const outcome = await probe.ask(basic('alice', passwordOf('alice')));
      assert.equal(outcome.kind, 'identity');
      assert.ok(outcome.kind === 'identity');
      assert.equal(outcome.identity.name, 'alice');
      assert.equal(outcome.identity.method, 'ldap');
      assert.deepEqual([...outcome.identity.groups].sort(), [groupDn('devs'), groupDn('ops')]);
      const bob = await probe.ask(basic('bob', passwordOf('bob')));
      assert.ok(bob.kind === 'identity');
      assert.deepEqual(bob.identity.groups, [], 'a user in no group has none');
    });
  });

  it('reports no groups when userGroupAttribute is not set', async () => {
    await withProbe(plain(), async (probe) => {
      const outcome = await probe.ask(basic('alice', passwordOf('alice')));
      assert.ok(outcome.kind === 'identity');
      assert.deepEqual(outcome.identity.groups, []);
    });
  });

  it('refuses a wrong password, an unknown user, an empty password; no credentials is anonymous', async () => {
    await withProbe(plain(), async (probe) => {
      assert.deepEqual(await probe.ask(basic('alice', 'wrong')), { kind: 'failed', reason: 'invalid credentials', user: 'alice' });
      assert.deepEqual(await probe.ask(basic('mallory', 'whatever')), { kind: 'failed', reason: 'unknown user', user: 'mallory' });
      assert.deepEqual(await probe.ask(basic('alice', '')), { kind: 'failed', reason: 'empty password', user: 'alice' });
      assert.deepEqual(await probe.ask(), { kind: 'anonymous' });
      assert.deepEqual(await probe.ask({ authorization: 'Bearer abc' }), { kind: 'anonymous' });
    });
  });

  it('escapes the user name: filter syntax in it matches nobody', async () => {
    await withProbe(plain(), async (probe) => {
      // Unescaped, `*` would match every entry and `alice)(uid=*` would widen the filter.
      assert.deepEqual(await probe.ask(basic('*', passwordOf('alice'))), { kind: 'failed', reason: 'unknown user', user: '*' });
      assert.deepEqual(await probe.ask(basic('al*', passwordOf('alice'))), { kind: 'failed', reason: 'unknown user', user: 'al*' });
    });
    assert.equal(userFilter({ userAttribute: 'uid' }, 'a*)(uid=*'), '(uid=a\\2a\\29\\28uid=\\2a)');
  });

  it('searches one level below baseDN unless subtreeSearch is set', async () => {
    await withProbe(plain(), async (probe) => {
      assert.deepEqual(await probe.ask(basic('dave', passwordOf('dave'))), { kind: 'failed', reason: 'unknown user', user: 'dave' });
    });
    await withProbe(plain({ subtreeSearch: true }), async (probe) => {
      const outcome = await probe.ask(basic('dave', passwordOf('dave')));
      assert.ok(outcome.kind === 'identity', JSON.stringify(outcome));
      assert.equal(outcome.identity.name, 'dave');
    });
    // From the top of the tree, one level finds none of the people.
    await withProbe(plain({ baseDN: BASE_DN }), async (probe) => {
      assert.equal((await probe.ask(basic('alice', passwordOf('alice')))).kind, 'failed');
    });
  });

  it('applies userFilter on top of the user attribute', async () => {
    await withProbe(plain({ userFilter: '(!(employeeType=disabled))' }), async (probe) => {
      assert.equal((await probe.ask(basic('alice', passwordOf('alice')))).kind, 'identity');
      assert.deepEqual(await probe.ask(basic('carol', passwordOf('carol'))), { kind: 'failed', reason: 'unknown user', user: 'carol' });
    });
    await withProbe(plain(), async (probe) => {
      assert.equal((await probe.ask(basic('carol', passwordOf('carol')))).kind, 'identity', 'without the filter carol is found');
    });
  });

  it('reads the search account from credentialsFile, and picks up a rotated file', async () => {
    const dir = makeTempDir();
    const file = path.join(dir, 'ldap-credentials.json');
    fs.writeFileSync(file, JSON.stringify({ bindDN: SEARCHER_DN, bindPassword: SEARCHER_PASSWORD }));
    const { bindDN: _dn, bindPassword: _pw, ...config } = plain();
    await withProbe({ ...config, credentialsFile: file }, async (probe) => {
      assert.equal((await probe.ask(basic('alice', passwordOf('alice')))).kind, 'identity');
      fs.writeFileSync(file, JSON.stringify({ bindDN: SEARCHER_DN, bindPassword: 'not-the-password' }));
      const deadline = Date.now() + 10_000;
      let outcome = await probe.ask(basic('alice', passwordOf('alice')));
      while (outcome.kind === 'identity' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        outcome = await probe.ask(basic('alice', passwordOf('alice')));
      }
      assert.deepEqual(outcome, { kind: 'failed', reason: 'ldap server unavailable', user: 'alice' }, 'a refused search account refuses everyone');
    });
  });

  it('works over StartTLS and LDAPS with CACert, and refuses an unknown CA unless skipVerify', async () => {
    const caCert = fs.readFileSync(slapd.ca.cert);
    const tls = { insecure: false, address: '127.0.0.1' };
    await withProbe(plain({ ...tls, startTLS: true }), async (probe) => {
      assert.equal((await probe.ask(basic('alice', passwordOf('alice')))).kind, 'identity', 'StartTLS');
    }, { caCert });
    await withProbe(plain({ ...tls, port: slapd.ldapsPort }), async (probe) => {
      assert.equal((await probe.ask(basic('alice', passwordOf('alice')))).kind, 'identity', 'LDAPS');
      assert.deepEqual(await probe.ask(basic('alice', 'wrong')), { kind: 'failed', reason: 'invalid credentials', user: 'alice' });
    }, { caCert });
    // The server's CA is not among the system's: without CACert the handshake fails ...
    for (const extra of [{ startTLS: true }, { port: slapd.ldapsPort }]) {
      await withProbe(plain({ ...tls, ...extra }), async (probe) => {
        assert.deepEqual(await probe.ask(basic('alice', passwordOf('alice'))), { kind: 'failed', reason: 'ldap server unavailable', user: 'alice' });
      });
      // ... and skipVerify accepts it.
      await withProbe(plain({ ...tls, ...extra, skipVerify: true }), async (probe) => {
        assert.equal((await probe.ask(basic('alice', passwordOf('alice')))).kind, 'identity');
      });
    }
    // By host name, the name is sent (SNI) and checked against the certificate's DNS SAN.
    await withProbe(plain({ ...tls, address: 'localhost', port: slapd.ldapsPort }), async (probe) => {
      assert.equal((await probe.ask(basic('alice', passwordOf('alice')))).kind, 'identity', 'localhost is in the certificate');
    }, { caCert });
  });

  it('answers within its timeouts when the directory goes away or hangs, logs the outage once, and recovers', async () => {
    const { probe, log } = await probeFor(plain(), { timeouts: { connectMs: 1_000, operationMs: 1_000 } });
    try {
      assert.equal((await probe.ask(basic('alice', passwordOf('alice')))).kind, 'identity');
      await slapd.stop();
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(await probe.ask(basic('alice', passwordOf('alice'))), { kind: 'failed', reason: 'ldap server unavailable', user: 'alice' });
      }
      await slapd.start();
      assert.equal((await probe.ask(basic('alice', passwordOf('alice')))).kind, 'identity', 'reconnects once the directory is back');

      // A hung directory (accepts connections, answers nothing) is bounded by the operation timeout.
      slapd.pause();
      try {
        const asked = Date.now();
        const outcomes = await Promise.all([1, 2, 3].map(() => probe.ask(basic('alice', passwordOf('alice')))));
        for (const outcome of outcomes) assert.deepEqual(outcome, { kind: 'failed', reason: 'ldap server unavailable', user: 'alice' });
        // Far below what an unbounded wait would be; the bound is the configured timeouts.
        assert.ok(Date.now() - asked < 10_000, `answered after ${Date.now() - asked} ms`);
      } finally {
        slapd.resume();
      }
      assert.equal((await probe.ask(basic('alice', passwordOf('alice')))).kind, 'identity');

      assert.equal(log.entries('failed to reach the ldap server, refusing ldap users until it answers').length, 2, 'one line per outage');
      assert.equal(log.entries('ldap server reachable again').length, 2);
    } finally {
      await probe.close();
    }
  });

  it('caches verified credentials for the TTL: a known user passes while the directory is away, a new one does not', async () => {
    const { probe } = await probeFor(plain({ userGroupAttribute: 'memberOf' }), { cacheTtlMs: 60_000 });
    try {
      assert.equal((await probe.ask(basic('alice', passwordOf('alice')))).kind, 'identity');
      await slapd.stop();
      const cached = await probe.ask(basic('alice', passwordOf('alice')));
      assert.ok(cached.kind === 'identity', 'answered from the cache');
      assert.equal(cached.identity.groups.length, 2, 'with the groups the directory gave');
      assert.equal((await probe.ask(basic('alice', 'wrong'))).kind, 'failed', 'another password is not the cached one');
      assert.equal((await probe.ask(basic('bob', passwordOf('bob')))).kind, 'failed', 'nobody else gets in');
    } finally {
      await slapd.start();
      await probe.close();
    }
  });

  it('never writes a password to the log, at debug level', async () => {
    const { probe, log } = await probeFor(plain());
    try {
      await probe.ask(basic('alice', passwordOf('alice')));
      await probe.ask(basic('alice', 'wrong-password-xyz'));
      await slapd.stop();
      await probe.ask(basic('alice', passwordOf('alice')));
      await slapd.start();
    } finally {
      await probe.close();
    }
    const text = log.lines().join('\n');
    assert.ok(text.includes('failed to reach the ldap server'), 'the outage was logged');
    for (const secret of [SEARCHER_PASSWORD, passwordOf('alice'), 'wrong-password-xyz']) assert.ok(!text.includes(secret), `log holds ${secret}`);
  });
});
