// Reading a configuration file, JSON or YAML as zot accepts, into a validated Config.
// Paths inside the file are returned as written: the CLI resolves relative ones against the
// process's working directory, as zot does.

import { readFileSync } from 'node:fs';
import { extname } from 'node:path';

import { load as parseYaml, YAMLException } from 'js-yaml';

import type { Config } from './types.js';
import { validateConfig } from './validate.js';

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

  const extension = extname(path).toLowerCase();
  const result =
    extension === '.json' ? parseJson(text)
    : extension === '.yaml' || extension === '.yml' ? parseYamlText(text, path)
    : parseUnknown(text, path);
  if ('error' in result) throw new ConfigError(path, [`${path}: ${result.error}`]);
  return result.value;
}

type Parsed = { value: unknown } | { error: string };

// Like zot, a file without a known extension is tried as each supported format in turn.
function parseUnknown(text: string, path: string): Parsed {
  const json = parseJson(text);
  if (!('error' in json)) return json;
  const yaml = parseYamlText(text, path);
  if (!('error' in yaml)) return yaml;
  // Report the error of the format the text most looks like.
  return /^\s*[{[]/.test(text) ? json : yaml;
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
    return { value: parseYaml(text, { filename: path }) };
  } catch (error) {
    if (!(error instanceof YAMLException)) return { error: `invalid YAML: ${errorMessage(error)}` };
    const where = error.mark === undefined ? '' : ` at line ${error.mark.line + 1}, column ${error.mark.column + 1}`;
    return { error: `invalid YAML: ${error.reason}${where}` };
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
