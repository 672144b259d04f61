// `zot verify` on the authentication methods' settings: each problem names the config field, and
// for a file, the file: a missing bearer cert, TLS certificate, key or CA, an unusable LDAP
// credentials file, an LDAP block without baseDN or userAttribute. No secret of a file is printed.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { makeCa, makeSelfSigned } from '../helpers/certs.js';
import { makeTempDir, runZot } from '../helpers/registry.js';

const ldap = { address: 'ldap.example.org', baseDN: 'dc=example,dc=org', userAttribute: 'uid' };

async function verify(http: Record<string, unknown>): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const dir = makeTempDir();
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify({ http: { address: '127.0.0.1', port: '5000', ...http }, storage: { rootDirectory: path.join(dir, 'root') } }));
  return runZot(['verify', file]);
}

describe('zot verify: authentication settings', () => {
  const dir = makeTempDir();
  const ca = makeCa(path.join(dir, 'ca'));
  const server = ca.issue('server', { subject: '/CN=localhost', altNames: ['IP:127.0.0.1'], usage: 'server' });
  const signer = makeSelfSigned(dir, 'signer', { subject: '/CN=signer' });
  const missing = path.join(dir, 'missing.pem');

  it('accepts LDAP, bearer and mutual TLS settings whose files exist', async () => {
    const credentials = path.join(dir, 'credentials.json');
    fs.writeFileSync(credentials, JSON.stringify({ bindDN: 'cn=s,dc=example,dc=org', bindPassword: 'pw-secret' }));
    const result = await verify({
      tls: { cert: server.cert, key: server.key, cacert: ca.cert },
      auth: { ldap: { ...ldap, credentialsFile: credentials, CACert: ca.cert, userGroupAttribute: 'memberOf', userFilter: '(objectClass=person)' }, bearer: { realm: 'https://a/token', service: 's', cert: signer.cert }, mtls: { identityAttributes: ['CN'] } },
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /valid configuration/);
    assert.doesNotMatch(result.stdout, /not built yet/);
  });

  it('names a missing bearer cert, a cert that is no key, and missing TLS files', async () => {
    const notAKey = path.join(dir, 'not-a-key.pem');
    fs.writeFileSync(notAKey, 'hello\n');
    let result = await verify({ auth: { bearer: { realm: 'https://a/token', service: 's', cert: missing } } });
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`http\\.auth\\.bearer\\.cert: no such file: ${missing.replace(/[.]/g, '\\.')}`));
    result = await verify({ auth: { bearer: { realm: 'https://a/token', service: 's', cert: notAKey } } });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /http\.auth\.bearer\.cert: .*must hold a PEM certificate or public key/);
    for (const field of ['cert', 'key', 'cacert'] as const) {
      const tls = { cert: server.cert, key: server.key, cacert: ca.cert, [field]: missing };
      result = await verify({ tls });
      assert.equal(result.code, 1, field);
      assert.match(result.stderr, new RegExp(`http\\.tls\\.${field}: no such file`), field);
    }
    // A key that is not the certificate's, of the same type and of another type (which OpenSSL
    // alone would accept, keeping one pair per key type).
    const ecKey = ca.issue('ec-server', { subject: '/CN=ec', usage: 'server', keyType: 'ec' }).key;
    for (const key of [signer.key, ecKey]) {
      result = await verify({ tls: { cert: server.cert, key } });
      assert.equal(result.code, 1, key);
      assert.match(result.stderr, /http\.tls: the certificate, key and CA do not load together/);
    }
  });

  it('names an LDAP block without baseDN or userAttribute, a missing CACert and a bad credentials file, never its password', async () => {
    for (const key of ['baseDN', 'userAttribute'] as const) {
      const { [key]: _dropped, ...rest } = ldap;
      const result = await verify({ auth: { ldap: rest } });
      assert.equal(result.code, 1);
      assert.match(result.stderr, new RegExp(`http\\.auth\\.ldap\\.${key}: required`));
    }
    let result = await verify({ auth: { ldap: { ...ldap, CACert: missing } } });
    assert.match(result.stderr, /http\.auth\.ldap\.CACert: no such file/);
    result = await verify({ auth: { ldap: { ...ldap, credentialsFile: missing } } });
    assert.match(result.stderr, /http\.auth\.ldap\.credentialsFile: no such file/);
    const bad = path.join(dir, 'bad-credentials.json');
    fs.writeFileSync(bad, JSON.stringify({ bindDN: 'cn=s', bindPassword: 'very-secret-pw', extra: 1 }));
    result = await verify({ auth: { ldap: { ...ldap, credentialsFile: bad } } });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /http\.auth\.ldap\.credentialsFile: .* has unknown keys: extra/);
    fs.writeFileSync(bad, '{"bindDN": "cn=s", "bindPassword": "very-secret-pw"');
    result = await verify({ auth: { ldap: { ...ldap, credentialsFile: bad } } });
    assert.match(result.stderr, /http\.auth\.ldap\.credentialsFile: .* must be a JSON or YAML object/);
    assert.doesNotMatch(result.stderr, /very-secret-pw/);
    result = await verify({ auth: { ldap: { ...ldap, bindDN: 'cn=s', credentialsFile: bad } } });
    assert.match(result.stderr, /http\.auth\.ldap\.bindDN: cannot be set together with credentialsFile/);
    result = await verify({ auth: { ldap: { ...ldap, userFilter: '(objectClass=person' } } });
    assert.match(result.stderr, /http\.auth\.ldap\.userFilter: must be an LDAP filter with balanced parentheses/);
  });

  it('names mtls settings without a CA, an unknown identity attribute and a bad uriSanPattern', async () => {
    const result = await verify({ tls: { cert: server.cert, key: server.key }, auth: { mtls: { identityAttributes: ['CommonName', 'Serial'], uriSanPattern: '(' } } });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /http\.auth\.mtls: needs http\.tls\.cacert/);
    assert.match(result.stderr, /http\.auth\.mtls\.identityAttributes\.1: must be one of CommonName, Subject, Email, URI, DNSName/);
    assert.match(result.stderr, /http\.auth\.mtls\.uriSanPattern: must be a valid regular expression/);
  });
});
