// Building test configurations: a small valid one, changed field by field per case.

import { join } from 'node:path';

import { examplesDir } from './paths.js';

export type Json = string | number | boolean | null | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json | undefined;
}

export function baseConfig(): JsonObject {
  return {
    http: { address: '127.0.0.1', port: '5000' },
    storage: { rootDirectory: '/tmp/zot' },
  };
}

/**
 * The base configuration with `patch` merged in: objects merge key by key, any other value
 * replaces, and `undefined` removes the key.
 */
export function configWith(patch: JsonObject): JsonObject {
  return merge(baseConfig(), patch);
}

function merge(target: JsonObject, patch: JsonObject): JsonObject {
  const result: JsonObject = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    const current = result[key];
    if (value === undefined) delete result[key];
    else if (isObject(value) && current !== undefined && isObject(current)) result[key] = merge(current, value);
    else result[key] = value;
  }
  return result;
}

function isObject(value: Json): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Basic authentication, which access-control cases need so that only the rule under test fails. */
export const htpasswdAuth: JsonObject = { htpasswd: { path: join(examplesDir, 'htpasswd') } };
