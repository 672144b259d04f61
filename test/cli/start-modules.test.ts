// What `zot serve` loads at start: the optional libraries (the S3 SDK, the LDAP client, bcrypt,
// the JWT library, prom-client, the NATS client) only when the configuration uses them (and of
// prom-client, not the default metrics, which load OpenTelemetry's API), the YAML
// and TOML parsers only for a config file in that format, and neither ajv's compiler (the config
// schema is compiled at build time) nor fastify's schema compilers (no route has a schema), nor,
// from the bundle, node's TLS, HTTPS and HTTP/2 modules without TLS in the config, nor semver for
// a plain distSpecVersion. Each costs start-up time and idle memory.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { AccessControlConfig } from '../../src/config/types.js';
import { writeHtpasswd } from '../helpers/auth.js';
import { loadedAtStart } from '../helpers/loaded-modules.js';
import { pushBlob } from '../helpers/oci.js';
import { INLINE_HASH_MAX_BYTES } from '../../src/registry/upload-hashes.js';
import { makeTempDir } from '../helpers/registry.js';

const OPTIONAL = ['@aws-sdk/client-s3', 'ldapts', 'bcryptjs', 'jsonwebtoken', 'prom-client', 'nats'];
const PARSERS = ['js-yaml', 'smol-toml'];
const SCHEMA_COMPILERS = ['@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler', 'ajv-formats'];

describe('modules loaded by zot serve', () => {
  it('loads none of the optional libraries, parsers or schema compilers for a JSON config of a filesystem registry', async () => {
    const { packages, urls } = await loadedAtStart({});
    assert.ok(packages.has('better-sqlite3'), 'the recorder saw the imports');
    assert.ok(
      urls.some((url) => url.endsWith('/better_sqlite3.node')),
      "the recorder saw the require() calls from the bundle (better-sqlite3's native addon)",
    );
    for (const name of [...OPTIONAL, ...PARSERS, ...SCHEMA_COMPILERS]) assert.ok(!packages.has(name), `${name} is not loaded`);
    // The config's distSpecVersion, 1.1.0, is a plain version: checked without semver (schema-runtime.ts).
    assert.ok(!packages.has('semver'), 'semver is not loaded');
    // The compiled schema imports ajv's string length helper, not ajv's compiler.
    // (bundled into dist/bundle/ when bin/zot.js runs the bundle, so no file of ajv's at all).
    const ajvFiles = urls.filter((url) => url.includes('/node_modules/ajv/')).map((url) => url.replace(/^.*\/node_modules\//, ''));
    assert.ok(ajvFiles.every((file) => file === 'ajv/dist/runtime/ucs2length.js'), ajvFiles.join(', '));
  });

  it("loads node's tls, https and http2 modules only when the config asks for TLS", async () => {
    const { builtins } = await loadedAtStart({});
    assert.ok(builtins.has('http') && builtins.has('net'), 'the recorder saw the built-in modules');
    for (const name of ['tls', 'https', 'http2']) assert.ok(!builtins.has(name), `node:${name} is not loaded`);
  });

  it('loads piscina, the hashing pool, with the first hash and not at start', async () => {
    assert.ok(!(await loadedAtStart({})).packages.has('piscina'), 'not at start');
    // Larger than what the event loop hashes itself (upload-hashes.ts), so the pool hashes it.
    const blob = Buffer.alloc(INLINE_HASH_MAX_BYTES * 4, 7);
    const { packages } = await loadedAtStart({}, 'json', async (url) => {
      await pushBlob(url, 'pool/first', blob);
    });
    assert.ok(packages.has('piscina'), 'with the first push of a blob the pool hashes');
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
    // prom-client's metric classes, not its index, whose default metrics load OpenTelemetry's API
    // (src/actors/prom-client-core.ts).
    assert.ok(!packages.has('@opentelemetry/api'), '@opentelemetry/api is not loaded');
    for (const name of ['@aws-sdk/client-s3', 'ldapts', 'jsonwebtoken', 'nats']) assert.ok(!packages.has(name), `${name} is not loaded`);
  });

  it('loads the events sinks, NATS client included, when a sink is configured', async () => {
    // A sink nobody listens on: its delivery stalls, the start does not.
    const { packages } = await loadedAtStart({ extensions: { events: { enable: true, sinks: [{ type: 'http', address: 'http://127.0.0.1:9/events' }] } } });
    assert.ok(packages.has('nats'));
  });
});
