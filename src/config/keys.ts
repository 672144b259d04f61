// Keys are matched the way zot matches them: zot reads its file with viper, which ignores case
// at every level, so `rootdirectory`, `RootDirectory` and `rootDirectory` are one key. Before
// validation every key the schema declares is rewritten to the schema's spelling (zot's
// documented one), so the rest of the registry and every message see one name.
//
// Only keys of objects that declare `properties` are rewritten. Maps keyed by user data (subPaths
// routes, repository globs, group names) keep their keys as written: they are names, not settings.
// Two keys of one object that name the same setting are reported, naming both spellings.

import type { SchemaObject } from 'ajv';

import { problem, type Problem } from './problems.js';
import { isRecord, type JsonRecord } from './values.js';

type Path = readonly (string | number)[];

export interface CanonicalKeys {
  /** A copy of the data with declared keys in the schema's spelling. */
  data: unknown;
  problems: Problem[];
}

export function canonicalizeKeys(data: unknown, schema: SchemaObject): CanonicalKeys {
  const problems: Problem[] = [];
  const walker = new KeyWalker(schema, problems);
  return { data: walker.walk(data, schema, []), problems };
}

class KeyWalker {
  constructor(
    private readonly root: SchemaObject,
    private readonly problems: Problem[],
  ) {}

  walk(value: unknown, schema: unknown, path: Path): unknown {
    const resolved = this.resolve(schema);
    if (resolved === undefined) return value;
    if (Array.isArray(value)) {
      const items: unknown = resolved['items'];
      return items === undefined ? value : value.map((item, i) => this.walk(item, items, [...path, i]));
    }
    if (!isRecord(value)) return value;

    const declared = this.declaredProperties(resolved);
    const byLowerCase = new Map(Object.keys(declared).map((key) => [key.toLowerCase(), key]));
    const mapValues: unknown = resolved['additionalProperties'];
    const firstSpelling = new Map<string, string>();
    const result: JsonRecord = {};
    for (const [key, child] of Object.entries(value)) {
      const canonical = byLowerCase.get(key.toLowerCase());
      if (canonical === undefined) {
        // A map key (user data) or an unknown key, which the schema reports: kept as written.
        define(result, key, isRecord(mapValues) ? this.walk(child, mapValues, [...path, key]) : child);
        continue;
      }
      const earlier = firstSpelling.get(canonical);
      if (earlier !== undefined) {
        this.problems.push(problem([...path, canonical], `is set twice, as ${earlier} and ${key}; keep one`));
        continue;
      }
      firstSpelling.set(canonical, key);
      define(result, canonical, this.walk(child, declared[canonical], [...path, canonical]));
    }
    return result;
  }

  /** `properties` of the schema and of the branches that may apply to the same value. */
  private declaredProperties(schema: JsonRecord): JsonRecord {
    const declared: JsonRecord = { ...(isRecord(schema['properties']) ? schema['properties'] : {}) };
    const branches = [schema['then'], schema['else'], ...(Array.isArray(schema['allOf']) ? schema['allOf'] : [])];
    for (const branch of branches) {
      const resolved = this.resolve(branch);
      if (resolved !== undefined && isRecord(resolved['properties'])) {
        for (const [key, child] of Object.entries(resolved['properties'])) declared[key] ??= child;
      }
    }
    return declared;
  }

  /** The schema object, with a local `$ref` (`#/$defs/name`) followed. */
  private resolve(schema: unknown): JsonRecord | undefined {
    let current = schema;
    for (let hops = 0; isRecord(current) && typeof current['$ref'] === 'string'; hops++) {
      if (hops > 16) return undefined;
      const name = current['$ref'].replace(/^#\/\$defs\//, '');
      const defs: unknown = this.root['$defs'];
      current = isRecord(defs) ? defs[name] : undefined;
    }
    return isRecord(current) ? current : undefined;
  }
}

// A key such as "__proto__" from JSON.parse is data: plain assignment would set the prototype.
function define(target: JsonRecord, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
