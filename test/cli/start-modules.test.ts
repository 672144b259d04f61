// What `zot serve` loads at start: the optional libraries (the S3 SDK, the LDAP client, bcrypt,
// the JWT library, prom-client) only when the configuration uses them, and not ajv's compiler
// (the schema is compiled at build time). Each costs start-up time and idle memory.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import type { AccessControlConfig } from '../../src/config/types.js';
import { writeHtpasswd } from '../helpers/auth.js';
import { makeTempDir, spawnRegistry, type TestConfigOptions } from '../helpers/registry.js';

const OPTIONAL = ['@aws-sdk/client-s3', 'ldapts', 'bcryptjs', 'jsonwebtoken', 'prom-client'];

/** The packages (under node_modules) a `zot serve` of this config imported, and the URLs. */
async function loadedAtStart(options: TestConfigOptions): Promise<{ packages: Set<string>; urls: string[] }> {
  const log = path.join(makeTempDir(), 'modules.log');
  const recorder = pathToFileURL(path.resolve(import.meta.dirname, '../helpers/module-recorder.js'));
  recorder.searchParams.set('log', log);
  const registry = await spawnRegistry(options, { runUnder: [process.execPath, '--import', recorder.href] });
  await registry.stop();
  const urls = fs.readFileSync(log, 'utf8').split('\n');
  const packages = new Set<string>();
  for (const url of urls) {
    const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (match?.[1] !== undefined) packages.add(match[1]);
  }
  return { packages, urls };
}

describe('modules loaded by zot serve', () => {
  it('loads none of the optional libraries, nor ajv, for a filesystem registry without auth or metrics', async () => {
    const { packages, urls } = await loadedAtStart({});
    assert.ok(packages.has('fastify'), 'the recorder saw the imports');
    for (const name of OPTIONAL) assert.ok(!packages.has(name), `${name} is not loaded`);
    // The compiled schema imports ajv's string length helper, not ajv's compiler.
    assert.deepEqual(urls.filter((url) => url.includes('/node_modules/ajv/')).map((url) => url.replace(/^.*\/node_modules\//, '')), ['ajv/dist/runtime/ucs2length.js']);
  });

  it('loads bcryptjs for htpasswd and prom-client for metrics when the config asks for them', async () => {
    const htpasswd = writeHtpasswd(path.join(makeTempDir(), 'htpasswd'), { alice: 'alice-secret' });
    // Anonymous read, so that /v2/ answers 200 to the readiness check.
    const accessControl: AccessControlConfig = { repositories: { '**': { anonymousPolicy: ['read'] } } };
    const { packages } = await loadedAtStart({ http: { auth: { htpasswd: { path: htpasswd } }, accessControl }, metrics: { enable: true } });
    assert.ok(packages.has('bcryptjs'));
    assert.ok(packages.has('prom-client'));
    for (const name of ['@aws-sdk/client-s3', 'ldapts', 'jsonwebtoken']) assert.ok(!packages.has(name), `${name} is not loaded`);
  });
});
