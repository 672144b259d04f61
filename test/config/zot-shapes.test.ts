// Configuration files shaped like zot's own examples (project-zot/zot, examples/config-*.json and
// config-example.yaml), one per feature area, written for this project in JSON, YAML (lower and
// capitalised keys included) and TOML. Each loads with no problem and is either served or refused
// by the names of the features it asks for: no key of zot's is ever an unknown key.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { unbuiltFeatures } from '../../src/config/features.js';
import { parseConfigFile, validateConfig } from '../../src/config/load.js';
import { repoRoot } from './paths.js';

const fixturesDir = join(repoRoot, 'test', 'config', 'fixtures');

const notBuilt = (path: string, what: string) => `${path}: ${what} is not built yet`;
const notSupported = (path: string, what: string) => `${path}: ${what} is not supported`;

const SEARCH = "zot's search and UI extension (GraphQL, CVE scanning)";
const UI = "zot's web UI";
const CACHE_DRIVER = "zot's cache database in DynamoDB or Redis";
const SESSIONS = "the session store of zot's web login";

/** Fixture → what `zot serve` refuses in it (empty: it serves it); the zot examples it stands for. */
const expected: Record<string, string[]> = {
  // config-minimal, config-test, config-bench, config-conformance, config-autoport
  'minimal.json': [],
  // config-tls
  'tls.toml': [],
  // config-gc, config-gc-periodic, config-gc-bench
  'gc-subpaths.yaml': [],
  // config-multiple, config-boltdb
  'multiple.toml': [],
  // config-s3, config-sync-ecr-credential-helper's storage
  's3.json': [],
  // config-example.yaml (lower case), config-example.json, config-ldap
  'example-lower-case.yaml': [],
  // config-all-remote, config-dynamodb, config-sync-cloud-storage
  'remote-cache.json': [
    notSupported('storage.remoteCache', 'a dedupe cache shared between zot instances'),
    notSupported('storage.cacheDriver', CACHE_DRIVER),
  ],
  // config-redis, config-redis-cluster, config-redis-all-options, config-sync-multireplica
  'redis-ui.yaml': [notSupported('extensions.search', SEARCH), notSupported('extensions.ui', UI), notSupported('storage.cacheDriver', CACHE_DRIVER)],
  // config-gcs, config-azure
  'cloud-drivers.json': [
    notSupported('storage.storageDriver', 'the gcs storage driver (Google Cloud Storage)'),
    notSupported('storage.subPaths./b.storageDriver', 'the azure storage driver (Azure Blob Storage)'),
  ],
  // config-hydrate-blob-on-read
  'hydrate.json': [notSupported('storage.hydrateBlobOnRead', 'serving a repository a blob only another repository holds')],
  // config-retention
  'retention.json': [],
  // config-ratelimit
  'ratelimit.yaml': [],
  // config-docker-compat, config-commit
  'compat-commit.toml': [],
  // config-openid's externalUrl, config-sync-streaming's writeTimeout
  'http-options.yaml': [],
  // config-events
  'events.yaml': [],
  // config-cve, config-cve-trivy, config-sbom-trivy, config-multiple-cve, config-search
  'search-cve.json': [notSupported('extensions.search', SEARCH)],
  // config-ui, config-ui-no-cve
  'ui-no-cve.yaml': [notSupported('extensions.search', SEARCH), notSupported('extensions.ui', UI)],
  // config-lint
  'lint.json': [notSupported('extensions.lint', "zot's lint extension (annotations a pushed manifest must have)")],
  // config-allextensions, config-metricsbug
  'all-extensions.json': [
    notSupported('extensions.mgmt', "zot's management extension (the configuration served to clients)"),
    notSupported('extensions.search', SEARCH),
    notSupported('extensions.ui', UI),
  ],
  'trust-apikey.json': [
    notSupported('extensions.apikey', "zot's API key extension"),
    notSupported('extensions.trust', "zot's image trust extension (cosign and notation signature checks)"),
  ],
  // config-openid, config-openid-claim-mapping
  'openid.json': [
    notSupported('http.auth.apikey', "zot's API key authentication"),
    notSupported('http.auth.openid', "zot's OpenID Connect and OAuth2 login (Google, GitHub, GitLab, dex)"),
    notSupported('http.auth.sessionKeysFile', SESSIONS),
  ],
  // config-bearer-auth, config-bearer-oidc-workload
  'bearer-oidc.yaml': [
    notSupported('http.auth.bearer.oidc', 'checking bearer tokens against an OpenID Connect issuer'),
  ],
  // config-mtls, config-mtls-spiffe
  'mtls.toml': [],
  // config-policy, config-metrics-authz, config-metrics-authn-anonymous-access, config-user-namespaces
  'access-control.json': [],
  // config-anonymous-authz, config-default-authz
  'anonymous-seed-form.yaml': [],
  // config-sync, -architectures, -platforms, -localhost, -ecr/-gcp/-oauth2 helpers, config-docker-compat-sync, config-popular-registries
  'sync.json': [],
  // config-remote-session-store-redis
  'session-redis.yaml': [
    notSupported('extensions.search', SEARCH),
    notSupported('extensions.ui', UI),
    notSupported('http.auth.sessionDriver', SESSIONS),
  ],
  // config-scheduler
  'scheduler-cluster.toml': [
    notSupported('cluster', "zot's scale-out cluster (requests proxied between members)"),
    notSupported('scheduler', "the size of zot's background task scheduler"),
  ],
};

const fixtures = readdirSync(fixturesDir).sort();

describe('files shaped like zot\'s examples', () => {
  it('come in JSON, YAML and TOML', () => {
    for (const extension of ['.json', '.yaml', '.toml']) assert.ok(fixtures.some((name) => name.endsWith(extension)), extension);
  });

  it('are each in the expectations table', () => {
    assert.deepEqual(Object.keys(expected).sort(), fixtures);
  });

  for (const name of fixtures) {
    it(`${name} loads, and serve refuses exactly the features it asks for that are not built`, () => {
      const { config, problems } = validateConfig(parseConfigFile(join(fixturesDir, name)), { checkFiles: false });
      assert.deepEqual(problems, []);
      assert.ok(config !== undefined);
      assert.deepEqual(unbuiltFeatures(config).sort(), [...(expected[name] ?? ['missing from the table'])].sort());
    });
  }
});
