// Every file in examples/ is a working configuration (style convention 8), and each one
// asks for exactly the unbuilt features we expect, so `zot serve` runs the ones it should.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { unbuiltFeatures } from '../../src/config/features.js';
import { loadConfigFile, parseConfigFile, validateConfig } from '../../src/config/load.js';
import { examplesDir } from './paths.js';

const exampleFiles = readdirSync(examplesDir).filter((name) => /\.(json|ya?ml|toml)$/.test(name)).sort();

const notBuilt = (field: string, what: string) => `${field}: ${what} is not built yet`;

// What each example asks for that this release does not build; empty means `zot serve` runs it.
const expectedUnbuilt: Record<string, string[]> = {
  'config-default.json': [],
  'config-minimal.json': [],
  'config-readonly.json': [],
  'config-tls.json': [],
  'config-yaml.yaml': [],
  'config-toml.toml': [],
  'config-gc.json': [],
  'config-subpaths.json': [],
  'config-s3.json': [],
  'config-s3-subpath.json': [],
  'config-htpasswd.json': [],
  'config-ldap.json': [],
  'config-ldap-credentials.json': [],
  'config-bearer.json': [],
  'config-mtls.json': [],
  'config-access-control.json': [],
  'config-access-control-repositories.json': [],
  'config-sync.json': [],
  'config-metrics.json': [],
  'config-scrub.json': [],
  'config-events.json': [],
  'config-http-options.json': [],
  'config-retention.json': [],
};

describe('examples', () => {
  it('has examples to check', () => {
    assert.ok(exampleFiles.length >= 16, `found only ${exampleFiles.length} examples`);
  });

  for (const name of exampleFiles) {
    it(`${name} validates with no problems`, () => {
      assert.deepEqual(validateConfig(parseConfigFile(join(examplesDir, name))).problems, []);
      assert.doesNotThrow(() => loadConfigFile(join(examplesDir, name)));
    });

    it(`${name} asks for the expected unbuilt features`, () => {
      const expected = expectedUnbuilt[name];
      assert.ok(expected !== undefined, `${name} is missing from the expectations table`);
      assert.deepEqual([...unbuiltFeatures(loadConfigFile(join(examplesDir, name)))].sort(), [...expected].sort());
    });
  }

  it('lists every expected example on disk', () => {
    assert.deepEqual(Object.keys(expectedUnbuilt).sort(), exampleFiles);
  });

  it('describes every example in examples/README.md', () => {
    const readme = readFileSync(join(examplesDir, 'README.md'), 'utf8');
    for (const name of exampleFiles) assert.ok(readme.includes(name), `README.md does not mention ${name}`);
  });

  it('keeps config-default.json exactly as the embedded default', () => {
    const text = readFileSync(join(examplesDir, 'config-default.json'), 'utf8');
    assert.deepEqual(JSON.parse(text), {
      distSpecVersion: '1.1.0',
      http: { address: '127.0.0.1', port: '5000' },
      storage: { rootDirectory: './data/zot', dedupe: true, gc: true },
      log: { level: 'info' },
    });
  });
});
