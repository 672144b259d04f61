// The feature table and unbuiltFeatures for settings the examples do not cover; the examples are
// checked in examples.test.ts, files shaped like zot's own examples in zot-shapes.test.ts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { FEATURES, unbuiltFeatures } from '../../src/config/features.js';
import { validateConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
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

  it('names mutual TLS and the seed form of sync, not the seed form of metrics', () => {
    const config = valid({
      http: { tls: { cert: 'c', key: 'k', cacert: 'ca' } },
      log: { audit: '/tmp/audit.log' },
      sync: { registries: [{ urls: ['https://r'] }] },
      metrics: { enable: 'true' },
    });
    assert.deepEqual(unbuiltFeatures(config).sort(), [
      'http.tls.cacert: mutual TLS is not built yet',
      'sync: sync is not built yet',
    ]);
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

  it('names sync that is switched off but still lists registries', () => {
    const config = valid({ extensions: { sync: { enable: false, registries: [{ urls: ['https://r'] }] } } });
    assert.deepEqual(unbuiltFeatures(config), ['extensions.sync: sync is not built yet']);
  });
});

describe('the feature table', () => {
  it('names only keys the schema declares, so no feature of zot is refused as an unknown key', () => {
    for (const feature of FEATURES) {
      for (const path of feature.paths) assert.ok(schemaDeclares(path.split('.')), `${feature.name}: ${path} is not in the schema`);
    }
  });

  it('gives every feature a name, one line of description and a status', () => {
    for (const feature of FEATURES) {
      assert.ok(feature.name.length > 0 && !feature.description.includes('\n'), feature.name);
      assert.ok(['built', 'not built yet', 'not supported'].includes(feature.status), feature.name);
    }
  });

  it('refuses a feature zot-ts does not build by its path and what it is, on the default root and on subPaths', () => {
    const config = valid({
      extensions: { search: { enable: true, cve: { updateInterval: '24h' } }, ui: { enable: true } },
      storage: {
        remoteCache: true,
        subPaths: { '/a': { rootDirectory: '/tmp/a', hydrateBlobOnRead: true, storageDriver: { name: 'gcs', bucket: 'b', credentialsFile: '/etc/gcs.json' } } },
      },
    });
    assert.deepEqual(unbuiltFeatures(config).sort(), [
      'extensions.search: zot\'s search and UI extension (GraphQL, CVE scanning) is not supported',
      'extensions.ui: zot\'s web UI is not supported',
      'storage.remoteCache: a dedupe cache shared between zot instances is not supported',
      'storage.subPaths./a.hydrateBlobOnRead: serving a repository a blob only another repository holds is not supported',
      'storage.subPaths./a.storageDriver: the gcs storage driver (Google Cloud Storage) is not supported',
    ]);
  });

  it('asks nothing of an extension switched off, nor of a switch set to false', () => {
    const config = valid({
      extensions: { search: { enable: false }, ui: { enable: false }, events: { enable: false }, trust: { enable: false, cosign: true } },
      storage: { commit: false, remoteCache: false, hydrateBlobOnRead: false },
      http: { auth: { htpasswd: { path: 'h' }, apikey: false } },
    });
    assert.deepEqual(unbuiltFeatures(config), ['http.auth.htpasswd: authentication is not built yet']);
  });
});

/** Whether the schema declares the dotted path; `*` stands for a key of a map. */
function schemaDeclares(segments: readonly string[]): boolean {
  const defs = configSchema['$defs'] as Record<string, Record<string, unknown>>;
  const resolve = (schema: unknown): Record<string, unknown> | undefined => {
    let current = schema as Record<string, unknown> | undefined;
    while (typeof current?.['$ref'] === 'string') current = defs[current['$ref'].replace('#/$defs/', '')];
    return current;
  };
  let schema = resolve(configSchema);
  for (const segment of segments) {
    if (schema === undefined) return false;
    const properties = {
      ...(schema['properties'] as Record<string, unknown> | undefined),
      ...(resolve(schema['then'])?.['properties'] as Record<string, unknown> | undefined),
    };
    schema = resolve(segment === '*' ? schema['additionalProperties'] : properties[segment]);
  }
  return schema !== undefined;
}
