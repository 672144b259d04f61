// Reading a configuration file, JSON, YAML or TOML as zot (viper) accepts, into a validated Config.
// Paths inside the file are returned as written: the CLI resolves relative ones against the
// process's working directory, as zot does.

import { readFileSync } from 'node:fs';
import { extname } from 'node:path';

import { toml, yaml } from './text-parsers.js';
import type { Config } from './types.js';
import { validateConfig } from './validate.js';
import { isRecord } from './values.js';

export { validateConfig, type ValidationResult } from './validate.js';

/** A configuration that cannot be used; `problems` lists every reason, one line each. */
export class ConfigError extends Error {
  readonly problems: string[];

  constructor(file: string, problems: string[]) {
    super(`invalid configuration file ${file}:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function loadConfigFile(path: string): Config {
  const { config, problems } = validateConfig(parseConfigFile(path));
  if (config === undefined) throw new ConfigError(path, problems);
  return config;
}

/** The file's data, untyped; a read or syntax error is a ConfigError naming the file. */
export function parseConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [`${path}: cannot be read (${errorMessage(error)})`]);
  }
  if (text.trim() === '') throw new ConfigError(path, [`${path}: the file is empty`]);
  // zot refuses a file without a single key:value pair (comments only, `{}`), like an empty one.
  const noSettings = new ConfigError(path, [`${path}: the file holds no settings`]);
  if (text.split('\n').every((line) => /^\s*(#.*)?$/.test(line))) throw noSettings;

  const extension = extname(path).toLowerCase();
  const result =
    extension === '.json' ? parseJson(text)
    : extension === '.yaml' || extension === '.yml' ? parseYamlText(text, path)
    : extension === '.toml' ? parseToml(text)
    : parseUnknown(text, path);
  if ('error' in result) throw new ConfigError(path, [`${path}: ${result.error}`]);
  if (result.value === null || result.value === undefined || (isRecord(result.value) && Object.keys(result.value).length === 0)) {
    throw noSettings;
  }
  return result.value;
}

type Parsed = { value: unknown } | { error: string };

// Like zot, a file without a known extension is tried as each supported format in turn, in
// viper's order; the first that reads the text as a mapping of settings wins.
function parseUnknown(text: string, path: string): Parsed {
  const attempts = [parseJson(text), parseToml(text), parseYamlText(text, path)];
  const mapping = attempts.find((parsed) => 'value' in parsed && isRecord(parsed.value));
  if (mapping !== undefined) return mapping;
  const [json, toml, yaml] = attempts as [Parsed, Parsed, Parsed];
  // Report the error of the format the text most looks like.
  if (/^\s*\{/.test(text)) return json;
  if (/^\s*(\[[^\]]+\]|[\w."-]+\s*=)/m.test(text)) return toml;
  return yaml;
}

function parseJson(text: string): Parsed {
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    return { error: `invalid JSON: ${withLineAndColumn(errorMessage(error), text)}` };
  }
}

function parseYamlText(text: string, path: string): Parsed {
  try {
    return { value: yaml().load(text, { filename: path }) };
  } catch (error) {
    if (!(error instanceof yaml().YAMLException)) return { error: `invalid YAML: ${errorMessage(error)}` };
    const where = error.mark === undefined ? '' : ` at line ${error.mark.line + 1}, column ${error.mark.column + 1}`;
    return { error: `invalid YAML: ${error.reason}${where}` };
  }
}

function parseToml(text: string): Parsed {
  try {
    return { value: toml().parse(text) };
  } catch (error) {
    if (!(error instanceof toml().TomlError)) return { error: `invalid TOML: ${errorMessage(error)}` };
    // The message carries a code excerpt after its first line; the position says the same.
    const reason = (error.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '');
    return { error: `invalid TOML: ${reason} at line ${error.line}, column ${error.column}` };
  }
}

// V8 reports a character offset ("... in JSON at position 42"); people look for lines.
function withLineAndColumn(message: string, text: string): string {
  const match = / in JSON at position (\d+)/.exec(message);
  if (match === null) return message;
  const before = text.slice(0, Number(match[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return `${message.slice(0, match.index)} at line ${line}, column ${column}`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
