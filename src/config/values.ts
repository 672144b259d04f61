// Narrowing helpers for walking configuration data that may not match the schema yet:
// the cross-field checks run even when the schema has already found problems, so that
// every problem is reported at once, and they must not trip over a value of the wrong type.

export type JsonRecord = Record<string, unknown>;

export function isRecord(value: unknown): value is JsonRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The object at `key`, or undefined when it is absent or not an object. */
export function recordAt(parent: unknown, key: string): JsonRecord | undefined {
  if (!isRecord(parent)) return undefined;
  const value = parent[key];
  return isRecord(value) ? value : undefined;
}

/** The array at `key`, or an empty one when it is absent or not an array. */
export function arrayAt(parent: unknown, key: string): unknown[] {
  if (!isRecord(parent)) return [];
  const value = parent[key];
  return Array.isArray(value) ? value : [];
}

/** The string at `key`, or undefined when it is absent or not a string. */
export function stringAt(parent: unknown, key: string): string | undefined {
  if (!isRecord(parent)) return undefined;
  const value = parent[key];
  return typeof value === 'string' ? value : undefined;
}
