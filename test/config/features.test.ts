// unbuiltFeatures for settings the examples do not cover; the examples are checked in
// examples.test.ts.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { unbuiltFeatures } from '../../src/config/features.js';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { configWith, type JsonObject } from './helpers.js';
import { exampleTls, examplesDir } from './paths.js';

function valid(patch: JsonObject): Config {
  const { config, problems } = validateConfig(configWith(patch));
  assert.deepEqual(problems, []);
  assert.ok(config !== undefined);
  return config;
}

describe('unbuiltFeatures', () => {
  it('is empty for settings this release builds', () => {
    const config = valid({
      http: { tls: { cert: exampleTls.cert, key: exampleTls.key }, ReadOnly: true, realm: 'zot' },
      storage: { dedupe: false, gc: false, gcDelay: '2h' },
      extensions: { metrics: { enable: true, prometheus: { path: '/metrics' } } },
      log: { level: 'debug', output: '/tmp/zot.log', audit: '/tmp/zot-audit.log' },
    });
    assert.deepEqual(unbuiltFeatures(config), []);
  });

  it('names the seed form of sync, not mutual TLS nor the seed form of metrics', () => {
    const config = valid({
      http: { tls: { ...exampleTls } },
      log: { audit: '/tmp/audit.log' },
      sync: { registries: [{ urls: ['https://r'] }] },
      metrics: { enable: 'true' },
    });
    assert.deepEqual(unbuiltFeatures(config).sort(), ['sync: sync is not built yet']);
  });

  it('is empty for htpasswd, failDelay and both forms of accessControl', () => {
    const htpasswd = { htpasswd: { path: join(examplesDir, 'htpasswd') }, failDelay: 5 };
    assert.deepEqual(unbuiltFeatures(valid({ http: { auth: htpasswd, accessControl: { repositories: { '**': { defaultPolicy: ['read'] } } } } })), []);
    assert.deepEqual(unbuiltFeatures(valid({ http: { auth: htpasswd }, accessControl: { '**': { anonymousPolicy: ['read'] } } })), []);
    assert.deepEqual(unbuiltFeatures(valid({ http: { auth: { failDelay: 5 } } })), []);
  });

  it('is empty for LDAP, bearer tokens and client certificates', () => {
    const config = valid({
      http: {
        tls: { ...exampleTls },
        auth: {
          ldap: { address: 'ldap.example.org', baseDN: 'dc=example,dc=org', userAttribute: 'uid' },
          bearer: { realm: 'https://auth', service: 's', cert: join(examplesDir, 'tls', 'token-signer.crt') },
          mtls: { identityAttributes: ['CommonName'] },
        },
      },
    });
    assert.deepEqual(unbuiltFeatures(config), []);
  });

  it('is empty for every storage option: subPaths, S3 drivers, dedupe, gc and scrub', () => {
    const config = valid({
      storage: {
        dedupe: true,
        gc: true,
        gcDelay: '1m',
        gcInterval: '5m',
        storageDriver: { name: 's3', bucket: 'a', region: 'r' },
        subPaths: { '/b': { rootDirectory: '/tmp/b', storageDriver: { name: 's3', bucket: 'b', region: 'r' } }, '/c': { rootDirectory: '/tmp/c', dedupe: false } },
      },
      extensions: { scrub: { enable: true, interval: '24h' } },
    });
    assert.deepEqual(unbuiltFeatures(config), []);
  });

  it('ignores extensions that are switched off', () => {
    const config = valid({
      extensions: { sync: { enable: false }, metrics: { enable: false }, scrub: { enable: false } },
    });
    assert.deepEqual(unbuiltFeatures(config), []);
  });

  it('names sync that is switched off but still lists registries', () => {
    const config = valid({ extensions: { sync: { enable: false, registries: [{ urls: ['https://r'] }] } } });
    assert.deepEqual(unbuiltFeatures(config), ['extensions.sync: sync is not built yet']);
  });
});
