// The YAML and TOML parsers, loaded on their first use: a JSON configuration, the usual one, never
// pays their module load at start (test/cli/start-modules.test.ts checks it).
import { createRequire } from 'node:module';

type JsYaml = typeof import('js-yaml');
type SmolToml = typeof import('smol-toml');

// Synchronous, as configuration loading is: both packages ship a CommonJS build.
const requirePackage = createRequire(import.meta.url);

let yamlParser: JsYaml | undefined;
let tomlParser: SmolToml | undefined;

export function yaml(): JsYaml {
  yamlParser ??= requirePackage('js-yaml') as JsYaml;
  return yamlParser;
}

export function toml(): SmolToml {
  tomlParser ??= requirePackage('smol-toml') as SmolToml;
  return tomlParser;
}
