// unbuiltFeatures for settings the examples do not cover; the examples are checked in
// examples.test.ts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { unbuiltFeatures } from '../../src/config/features.js';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { configWith, type JsonObject } from './helpers.js';

function valid(patch: JsonObject): Config {
  const { config, problems } = validateConfig(configWith(patch));
  assert.deepEqual(problems, []);
  assert.ok(config !== undefined);
  return config;
}

describe('unbuiltFeatures', () => {
  it('is empty for settings this release builds', () => {
    const config = valid({
      http: { tls: { cert: 'c', key: 'k' }, ReadOnly: true, realm: 'zot' },
      storage: { dedupe: false, gc: false, gcDelay: '2h' },
      extensions: { metrics: { enable: true, prometheus: { path: '/metrics' } } },
      log: { level: 'debug', output: '/tmp/zot.log', audit: '/tmp/zot-audit.log' },
    });
    assert.deepEqual(unbuiltFeatures(config), []);
  });

  it('names mutual TLS, not the seed forms of sync and metrics', () => {
    const config = valid({
      http: { tls: { cert: 'c', key: 'k', cacert: 'ca' } },
      log: { audit: '/tmp/audit.log' },
      sync: { registries: [{ urls: ['https://r'], pollInterval: '1h', content: [{ prefix: '**' }] }] },
      metrics: { enable: 'true' },
    });
    assert.deepEqual(unbuiltFeatures(config).sort(), ['http.tls.cacert: mutual TLS is not built yet']);
  });

  it('is empty for on-demand sync, in either form of the section', () => {
    assert.deepEqual(unbuiltFeatures(valid({ sync: { registries: [{ urls: ['https://r'], onDemand: true }] } })), []);
    assert.deepEqual(unbuiltFeatures(valid({ extensions: { sync: { registries: [{ urls: ['https://r'], onDemand: true }] } } })), []);
  });

  it('names authentication when only failDelay is set', () => {
    assert.deepEqual(unbuiltFeatures(valid({ http: { auth: { failDelay: 5 } } })), ['http.auth: authentication is not built yet']);
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

  it('is empty for periodic sync, on or switched off', () => {
    const registries = [{ urls: ['https://r'], pollInterval: '6h', content: [{ prefix: '/a/**', tags: { excludeRegex: '-rc' } }] }];
    assert.deepEqual(unbuiltFeatures(valid({ extensions: { sync: { registries } } })), []);
    assert.deepEqual(unbuiltFeatures(valid({ extensions: { sync: { enable: false, registries } } })), []);
  });
});
