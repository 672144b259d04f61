// The release, read from package.json once: the one place the version is written.
import { readFileSync } from 'node:fs';
import { PACKAGE_JSON } from '../install-layout.js';

let cached: string | undefined;

export function version(): string {
  cached ??= (JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version: string }).version;
  return cached;
}
