// What `zot serve` loads at start: the optional libraries (the S3 SDK, the LDAP client, bcrypt,
// the JWT library, prom-client, the NATS client) only when the configuration uses them, the YAML
// and TOML parsers only for a config file in that format, and neither ajv's compiler (the config
// schema is compiled at build time) nor fastify's schema compilers (no route has a schema). Each
// costs start-up time and idle memory.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import type { AccessControlConfig } from '../../src/config/types.js';
import { writeHtpasswd } from '../helpers/auth.js';
import { makeTempDir, spawnRegistry, type ConfigFormat, type TestConfigOptions } from '../helpers/registry.js';

const OPTIONAL = ['@aws-sdk/client-s3', 'ldapts', 'bcryptjs', 'jsonwebtoken', 'prom-client', 'nats'];
const PARSERS = ['js-yaml', 'smol-toml'];
const SCHEMA_COMPILERS = ['@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler', 'ajv-formats'];

/** The packages (under node_modules) a `zot serve` of this config loaded, and the module URLs. */
async function loadedAtStart(options: TestConfigOptions, configFormat: ConfigFormat = 'json'): Promise<{ packages: Set<string>; urls: string[] }> {
  const log = path.join(makeTempDir(), 'modules.log');
  const recorder = pathToFileURL(path.resolve(import.meta.dirname, '../helpers/module-recorder.js'));
  recorder.searchParams.set('log', log);
  // spawnRegistry returns once GET /v2/ answered 200: the config was read and the registry serves.
  const registry = await spawnRegistry(options, { runUnder: [process.execPath, '--import', recorder.href], configFormat });
  assert.equal(await registry.stop(), 0, registry.output());
  const urls = [...new Set(fs.readFileSync(log, 'utf8').split('\n').filter((url) => url !== ''))];
  const packages = new Set<string>();
  for (const url of urls) {
    const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (match?.[1] !== undefined) packages.add(match[1]);
  }
  return { packages, urls };
}

describe('modules loaded by zot serve', () => {
  it('loads none of the optional libraries, parsers or schema compilers for a JSON config of a filesystem registry', async () => {
    const { packages, urls } = await loadedAtStart({});
    assert.ok(packages.has('fastify'), 'the recorder saw the imports');
    assert.ok(packages.has('semver'), 'the recorder saw the require() calls inside packages');
    for (const name of [...OPTIONAL, ...PARSERS, ...SCHEMA_COMPILERS]) assert.ok(!packages.has(name), `${name} is not loaded`);
    // The compiled schema imports ajv's string length helper, not ajv's compiler.
    assert.deepEqual(urls.filter((url) => url.includes('/node_modules/ajv/')).map((url) => url.replace(/^.*\/node_modules\//, '')), ['ajv/dist/runtime/ucs2length.js']);
  });

  it('loads js-yaml, and not smol-toml, for a YAML config', async () => {
    const { packages } = await loadedAtStart({}, 'yaml');
    assert.ok(packages.has('js-yaml'));
    assert.ok(!packages.has('smol-toml'));
  });

  it('loads smol-toml, and not js-yaml, for a TOML config', async () => {
    const { packages } = await loadedAtStart({}, 'toml');
    assert.ok(packages.has('smol-toml'));
    assert.ok(!packages.has('js-yaml'));
  });

  it('loads bcryptjs for htpasswd and prom-client for metrics when the config asks for them', async () => {
    const htpasswd = writeHtpasswd(path.join(makeTempDir(), 'htpasswd'), { alice: 'alice-secret' });
    // Anonymous read, so that /v2/ answers 200 to the readiness check.
    const accessControl: AccessControlConfig = { repositories: { '**': { anonymousPolicy: ['read'] } } };
    const { packages } = await loadedAtStart({ http: { auth: { htpasswd: { path: htpasswd } }, accessControl }, metrics: { enable: true } });
    assert.ok(packages.has('bcryptjs'));
    assert.ok(packages.has('prom-client'));
    for (const name of ['@aws-sdk/client-s3', 'ldapts', 'jsonwebtoken', 'nats']) assert.ok(!packages.has(name), `${name} is not loaded`);
  });

  it('loads the events sinks, NATS client included, when a sink is configured', async () => {
    // A sink nobody listens on: its delivery stalls, the start does not.
    const { packages } = await loadedAtStart({ extensions: { events: { enable: true, sinks: [{ type: 'http', address: 'http://127.0.0.1:9/events' }] } } });
    assert.ok(packages.has('nats'));
  });
});
