// zot's `http.auth.ldap.credentialsFile`: the search account's bindDN and bindPassword kept out of
// the configuration file, as a JSON (or YAML) object with exactly those two keys, e.g.
//   {"bindDN": "cn=ldap-searcher,ou=Users,dc=example,dc=org", "bindPassword": "…"}
// Messages name the file and the key, never the file's text: it holds a password.
import { readFileSync } from 'node:fs';
import { yaml } from '../config/text-parsers.js';

export interface LdapBindCredentials {
  readonly bindDN: string;
  readonly bindPassword: string;
}

const KEYS = ['bindDN', 'bindPassword'] as const;

export class LdapCredentialsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LdapCredentialsError';
  }
}

/** The file's credentials; throws LdapCredentialsError saying what is wrong with it. */
export function readLdapCredentials(file: string): LdapBindCredentials {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new LdapCredentialsError(code === 'ENOENT' ? 'file does not exist' : `cannot be read (${code ?? 'error'})`);
  }
  return parseLdapCredentials(text);
}

/** Credentials from the file's text; throws LdapCredentialsError saying what is wrong with it. */
export function parseLdapCredentials(text: string): LdapBindCredentials {
  const data = parseObject(text);
  if (data === undefined) throw new LdapCredentialsError('must be a JSON or YAML object with bindDN and bindPassword');
  const unknown = Object.keys(data).filter((key) => !(KEYS as readonly string[]).includes(key));
  if (unknown.length > 0) throw new LdapCredentialsError(`has unknown keys: ${unknown.join(', ')}`);
  for (const key of KEYS) {
    if (typeof data[key] !== 'string' || data[key] === '') throw new LdapCredentialsError(`${key} must be a non-empty string`);
  }
  return { bindDN: data['bindDN'] as string, bindPassword: data['bindPassword'] as string };
}

function parseObject(text: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    // YAML is a superset of JSON, so one parser reads both forms zot accepts.
    value = yaml().load(text);
  } catch {
    return undefined;
  }
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}
