// The feature table and unbuiltFeatures for settings the examples do not cover; the examples are
// checked in examples.test.ts, files shaped like zot's own examples in zot-shapes.test.ts.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { FEATURES, unbuiltFeatures } from '../../src/config/features.js';
import { validateConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import type { Config } from '../../src/config/types.js';
import { configWith, type JsonObject } from './helpers.js';
import { exampleTls, examplesDir } from './paths.js';

function valid(patch: JsonObject): Config {
  const { config, problems } = validateConfig(configWith(patch), { checkFiles: false });
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

  it('is empty for mutual TLS and the seed forms of sync and metrics', () => {
    const config = valid({
      http: { tls: { ...exampleTls } },
      log: { audit: '/tmp/audit.log' },
      sync: { registries: [{ urls: ['https://r'], pollInterval: '1h', content: [{ prefix: '**' }] }] },
      metrics: { enable: 'true' },
    });
    assert.deepEqual(unbuiltFeatures(config), []);
  });

  it('is empty for on-demand sync, in either form of the section', () => {
    assert.deepEqual(unbuiltFeatures(valid({ sync: { registries: [{ urls: ['https://r'], onDemand: true }] } })), []);
    assert.deepEqual(unbuiltFeatures(valid({ extensions: { sync: { registries: [{ urls: ['https://r'], onDemand: true }] } } })), []);
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

  it('is empty for periodic sync, on or switched off', () => {
    const registries = [{ urls: ['https://r'], pollInterval: '6h', content: [{ prefix: '/a/**', tags: { excludeRegex: '-rc' } }] }];
    assert.deepEqual(unbuiltFeatures(valid({ extensions: { sync: { registries } } })), []);
    assert.deepEqual(unbuiltFeatures(valid({ extensions: { sync: { enable: false, registries } } })), []);
  });

  it('is empty for the newer http options and events sinks of zot, and names the sink settings not built', () => {
    const built = valid({
      http: {
        externalUrl: 'https://r.example.com',
        allowOrigin: '*',
        readTimeout: '1m',
        writeTimeout: '0',
        compat: ['docker2s2'],
        ratelimit: { rate: 10, methods: [{ method: 'GET', rate: 5 }] },
      },
      storage: { commit: true, maxRepos: 10 },
      extensions: { events: { sinks: [{ type: 'http', address: 'https://hooks.example.com', credentials: { username: 'u', password: 'p' } }] } },
    });
    assert.deepEqual(unbuiltFeatures(built), []);
    const notBuilt = valid({
      extensions: {
        events: {
          sinks: [
            { type: 'http', address: 'https://hooks.example.com', proxy: 'http://proxy:3128', tls: { caCertFile: '/ca.pem' } },
            { type: 'nats', address: 'nats://n:4222', channel: 'c', credentials: { file: '/user.creds' } },
          ],
        },
      },
    });
    assert.deepEqual(unbuiltFeatures(notBuilt).sort(), [
      'extensions.events.sinks.0.proxy: delivering events through a proxy is not built yet',
      'extensions.events.sinks.0.tls: client certificates and private CAs for event sinks is not built yet',
      'extensions.events.sinks.1.credentials.file: NATS credentials files is not built yet',
    ]);
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
    assert.deepEqual(unbuiltFeatures(config), []);
  });
});

/** Whether the schema declares the dotted path; `*` stands for a key of a map or an item of a list. */
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
    schema = resolve(segment === '*' ? (schema['items'] ?? schema['additionalProperties']) : properties[segment]);
  }
  return schema !== undefined;
}
