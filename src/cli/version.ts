// The release, read from package.json once: the one place the version is written.
import { readFileSync } from 'node:fs';

let cached: string | undefined;

export function version(): string {
  // This module runs as dist/src/cli/version.js; package.json is three directories up.
  cached ??= (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  return cached;
}
