// `zot serve` with a sync section: it starts (sync is built), and a credentials file or certDir
// that cannot be read stops the start with a message naming it, rather than syncing without them.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { makeTempDir, runZot, writeConfig } from '../helpers/registry.js';

function configWithSync(dir: string, sync: Record<string, unknown>): string {
  return writeConfig(
    {
      distSpecVersion: '1.1.0',
      http: { address: '127.0.0.1', port: '0' },
      storage: { rootDirectory: path.join(dir, 'root') },
      log: { level: 'error' },
      extensions: { sync: sync as never },
    },
    dir,
  );
}

describe('zot serve with sync', () => {
  it('refuses to start when the credentials file cannot be read, naming it', async () => {
    const dir = makeTempDir('zot-ts-sync-config-');
    const missing = path.join(dir, 'no-such-credentials.json');
    const result = await runZot(['serve', configWithSync(dir, { credentialsFile: missing, registries: [{ urls: ['http://127.0.0.1:1'], onDemand: true }] })]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`failed to read the sync credentials file ${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  });

  it('refuses to start when certDir has no ca.crt, naming it', async () => {
    const dir = makeTempDir('zot-ts-sync-config-');
    const certDir = path.join(dir, 'certs');
    fs.mkdirSync(certDir);
    const result = await runZot(['serve', configWithSync(dir, { registries: [{ urls: ['https://127.0.0.1:1'], onDemand: true, certDir }] })]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /certDir .*certs has no ca\.crt/);
  });
});
