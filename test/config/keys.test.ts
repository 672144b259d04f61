// Keys match without regard to case, at every level, as zot (viper) reads them; the loaded
// configuration and every message use zot's documented spelling, and user-data map keys
// (subPaths routes, repository globs, group names) stay as written.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { loadConfigFile, validateConfig } from '../../src/config/load.js';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'zot-keys-test-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('configuration keys', () => {
  it('loads a YAML file written in lower case, as zot\'s config-example.yaml is', () => {
    const path = join(dir, 'lower.yaml');
    writeFileSync(
      path,
      [
        'distspecversion: 1.1.0',
        'http:',
        '  address: 127.0.0.1',
        '  port: 8080',
        '  realm: zot',
        '  readonly: true',
        '  auth:',
        '    faildelay: 5',
        '    ldap:',
        '      address: ldap.example.org',
        '      basedn: ou=Users,dc=example,dc=org',
        '      userattribute: uid',
        '      binddn: cn=reader,dc=example,dc=org',
        '      skipverify: false',
        '      starttls: false',
        '      subtreesearch: true',
        'log:',
        '  level: debug',
        'storage:',
        '  rootdirectory: /tmp/zot',
        '  gcdelay: 2h',
        '',
      ].join('\n'),
    );
    const config = loadConfigFile(path);
    assert.equal(config.distSpecVersion, '1.1.0');
    assert.equal(config.storage.rootDirectory, '/tmp/zot');
    assert.equal(config.storage.gcDelay, '2h');
    assert.equal(config.http.ReadOnly, true);
    assert.equal(config.http.auth?.failDelay, 5);
    assert.equal(config.http.auth?.ldap?.baseDN, 'ou=Users,dc=example,dc=org');
    assert.equal(config.http.auth?.ldap?.userAttribute, 'uid');
    assert.equal(config.http.auth?.ldap?.skipVerify, false);
    assert.equal(config.http.auth?.ldap?.subtreeSearch, true);
  });

  it('matches any case at every level, and keeps subPaths routes and repository globs as written', () => {
    const { config, problems } = validateConfig({
      HTTP: { Address: '127.0.0.1', PORT: '5000', TLS: { Cert: 'c', KEY: 'k' } },
      Storage: {
        RootDirectory: '/tmp/zot',
        DEDUPE: false,
        SubPaths: { '/Team': { ROOTDIRECTORY: '/tmp/team', GcInterval: '10m', StorageDriver: { Name: 's3', Bucket: 'b', Region: 'r', useDualStack: true } } },
      },
      Extensions: { Metrics: { Enable: true, Prometheus: { Path: '/metrics' } }, SCRUB: { Interval: '24h' } },
      AccessControl: { Repositories: { 'Team/**': { AnonymousPolicy: ['read'] } } },
    }, { checkFiles: false });
    assert.deepEqual(problems, []);
    assert.equal(config?.http.port, '5000');
    assert.deepEqual(config?.http.tls, { cert: 'c', key: 'k' });
    assert.equal(config?.storage.dedupe, false);
    assert.deepEqual(Object.keys(config?.storage.subPaths ?? {}), ['/Team']);
    const team = config?.storage.subPaths?.['/Team'];
    assert.equal(team?.rootDirectory, '/tmp/team');
    assert.equal(team?.gcInterval, '10m');
    assert.equal(team?.storageDriver?.bucket, 'b');
    assert.equal(team?.storageDriver?.usedualstack, true);
    assert.equal(config?.extensions?.metrics?.prometheus?.path, '/metrics');
    assert.equal(config?.extensions?.scrub?.interval, '24h');
    assert.deepEqual(Object.keys(config?.accessControl?.repositories ?? {}), ['Team/**']);
  });

  it('names a key in zot\'s documented spelling in every message', () => {
    const result = validateConfig({
      http: { address: '127.0.0.1', port: '5000' },
      storage: { rootdirectory: '/tmp/zot', gcdelay: 'soon', subpaths: { '/a': { dedupe: true } } },
      log: { LEVEL: 'loud' },
    });
    assert.deepEqual(result.problems, [
      'log.level: must be one of debug, info, warn, error',
      'storage.gcDelay: must be a duration such as 1h, 30m or 10s',
      'storage.subPaths./a.rootDirectory: required',
    ]);
  });

  it('refuses one setting written twice in different cases, naming both spellings', () => {
    const result = validateConfig({
      http: { address: '127.0.0.1', port: '5000' },
      storage: { rootDirectory: '/tmp/zot', rootdirectory: '/tmp/other' },
    });
    assert.deepEqual(result.problems, ['storage.rootDirectory: is set twice, as rootDirectory and rootdirectory; keep one']);
  });

  it('keeps an unknown key as the file spells it', () => {
    const result = validateConfig({ http: { address: '127.0.0.1', port: '5000' }, storage: { rootDirectory: '/tmp/zot', DeDup: true } });
    assert.equal(result.problems.length, 1);
    assert.match(result.problems[0] ?? '', /^storage\.DeDup: unknown key/);
  });
});
