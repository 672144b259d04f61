// Problems are reported as `<path>: <message>`, the path dotted with map keys as written
// (`storage.subPaths./a.rootDirectory: required`). This module turns ajv's errors into that
// form, and sorts and deduplicates the full list so a user sees each problem once.

import type { ErrorObject } from 'ajv';

import { nearestKey } from './suggest.js';

export interface Problem {
  /** Keys and array indexes from the top of the file down to the offending value. */
  path: readonly string[];
  message: string;
}

export function problem(path: readonly (string | number)[], message: string): Problem {
  return { path: path.map(String), message };
}

export function formatPath(path: readonly string[]): string {
  return path.length === 0 ? '(root)' : path.join('.');
}

/** Formatted problems, each once, ordered by path and then by message. */
export function formatProblems(problems: readonly Problem[]): string[] {
  const sorted = [...problems].sort(
    (a, b) => comparePaths(a.path, b.path) || compareText(a.message, b.message),
  );
  return [...new Set(sorted.map((p) => `${formatPath(p.path)}: ${p.message}`))];
}

export function fromAjvErrors(errors: readonly ErrorObject[]): Problem[] {
  // An `if` error only says its `then` failed; the errors inside `then` say how.
  return errors.filter((error) => error.keyword !== 'if').map(fromAjvError);
}

function fromAjvError(error: ErrorObject): Problem {
  const path = pointerToPath(error.instancePath);
  const params: Record<string, unknown> = error.params;
  // These two concern a child key, so the path names that child.
  if (error.keyword === 'required') {
    return { path: [...path, String(params['missingProperty'])], message: 'required' };
  }
  if (error.keyword === 'additionalProperties') {
    const key = String(params['additionalProperty']);
    return { path: [...path, key], message: unknownKeyMessage(key, error.parentSchema) };
  }
  const custom: unknown = (error.parentSchema as Record<string, unknown> | undefined)?.['x-message'];
  if (typeof custom === 'string') return { path, message: custom };
  return { path, message: describe(error.keyword, params, error.message) };
}

function unknownKeyMessage(key: string, schema: unknown): string {
  const properties: unknown = (schema as Record<string, unknown> | undefined)?.['properties'];
  const known = typeof properties === 'object' && properties !== null ? Object.keys(properties) : [];
  const nearest = nearestKey(key, known);
  return nearest === undefined ? 'unknown key' : `unknown key, did you mean ${nearest}?`;
}

function describe(keyword: string, params: Record<string, unknown>, fallback?: string): string {
  switch (keyword) {
    case 'type':
      return `must be ${typeList(params['type'])}`;
    case 'enum':
      return `must be one of ${(params['allowedValues'] as unknown[]).map(String).join(', ')}`;
    case 'minimum':
      return `must be at least ${String(params['limit'])}`;
    case 'maximum':
      return `must be at most ${String(params['limit'])}`;
    case 'minLength':
      return params['limit'] === 1 ? 'must not be empty' : `must be at least ${String(params['limit'])} characters`;
    case 'format':
      return `must be a valid ${String(params['format'])}`;
    default:
      return fallback ?? 'is invalid';
  }
}

/** "a string", "an integer", "a string or integer". */
function typeList(types: unknown): string {
  const names = Array.isArray(types) ? types.map(String) : String(types).split(',');
  const first = names[0] ?? 'value';
  const article = /^[aeiou]/.test(first) ? 'an' : 'a';
  return `${article} ${names.join(' or ')}`;
}

/** JSON Pointer ("/storage/subPaths/~1a") to path segments (["storage", "subPaths", "/a"]). */
function pointerToPath(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function comparePaths(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const order = compareSegments(a[i] ?? '', b[i] ?? '');
    if (order !== 0) return order;
  }
  return a.length - b.length;
}

// Array indexes compare as numbers so registries.2 comes before registries.10.
function compareSegments(a: string, b: string): number {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return Number(a) - Number(b);
  return compareText(a, b);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
