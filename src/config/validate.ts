// Validation of parsed configuration data: keys matched without regard to case, the JSON Schema
// (with zot's defaults applied), normalisation of zot's loose forms, then the cross-field rules,
// all reported together.

import type { ValidateFunction } from 'ajv';

import { canonicalizeKeys } from './keys.js';
import { normalize } from './normalize.js';
import { formatProblems, fromAjvErrors } from './problems.js';
import { configSchema } from './schema.js';
import { semanticProblems } from './semantic.js';
import type { Config } from './types.js';
import { validate as compiledSchema } from './validate-schema.generated.js';

// The schema compiled at build time (compile-schema.ts): ajv's options there are allErrors,
// useDefaults (zot's defaults written into the data), strict and verbose errors.
const matchesSchema = compiledSchema as unknown as ValidateFunction;

export interface ValidationResult {
  /** The validated configuration with defaults applied; present only when there are no problems. */
  config?: Config;
  /** Every problem found, as `<path>: <message>`, sorted by path. */
  problems: string[];
}

export interface ValidationOptions {
  /** Also check the files the config names, as verify and serve do (default true). */
  checkFiles?: boolean;
}

export function validateConfig(raw: unknown, options: ValidationOptions = {}): ValidationResult {
  // ajv writes defaults into the value it checks; work on a copy so the caller's is untouched.
  const { data, problems } = canonicalizeKeys(structuredClone(raw), configSchema);
  if (!matchesSchema(data)) problems.push(...fromAjvErrors(matchesSchema.errors ?? []));
  normalize(data);
  problems.push(...semanticProblems(data, { checkFiles: options.checkFiles ?? true }));

  const formatted = formatProblems(problems);
  // The schema and the rules above have accepted every field that Config declares.
  return formatted.length === 0 ? { config: data as Config, problems: [] } : { problems: formatted };
}
