// Runs `zot serve` under the module recorder (module-recorder.ts) and reports what it loaded.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { makeTempDir, spawnRegistry, type ConfigFormat, type TestConfigOptions } from './registry.js';

export interface LoadedModules {
  /** The packages under node_modules, by name (`fastify`, `@aws-sdk/client-s3`). */
  packages: Set<string>;
  /** Every module URL, once each. */
  urls: string[];
  /** node's own public modules (`tls`, `http2`), by name. */
  builtins: Set<string>;
}

/**
 * What a `zot serve` of this config loaded until it answered GET /v2/ (and `whileRunning` did its
 * requests) and then stopped.
 */
export async function loadedAtStart(options: TestConfigOptions, configFormat: ConfigFormat = 'json', whileRunning?: (url: string) => Promise<void>): Promise<LoadedModules> {
  const log = path.join(makeTempDir(), 'modules.log');
  const recorder = pathToFileURL(path.resolve(import.meta.dirname, 'module-recorder.js'));
  recorder.searchParams.set('log', log);
  // spawnRegistry returns once GET /v2/ answered 200: the config was read and the registry serves.
  const registry = await spawnRegistry(options, { runUnder: [process.execPath, '--import', recorder.href], configFormat });
  await whileRunning?.(registry.url);
  assert.equal(await registry.stop(), 0, registry.output());
  const urls = [...new Set(fs.readFileSync(log, 'utf8').split('\n').filter((url) => url !== ''))];
  const packages = new Set<string>();
  const builtins = new Set(urls.filter((url) => url.startsWith('node:')).map((url) => url.slice('node:'.length)));
  for (const url of urls) {
    const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (match?.[1] !== undefined) packages.add(match[1]);
  }
  return { packages, urls, builtins };
}
