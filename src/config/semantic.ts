// Cross-field rules: what the schema cannot say about one value on its own. Most mirror
// checks zot makes when it loads a file (pkg/cli/server/root.go), so a file zot refuses is
// refused here too. The data may still violate the schema, so every access is guarded; the
// schema reports those violations, these rules only add what it cannot see.

import { isDuration } from './duration.js';
import { ACCESS_CONTROL_KEYWORDS } from '../auth/access-control.js';
import { globProblem } from '../auth/glob.js';
import { bearerCertProblems, htpasswdFileProblems, ldapCredentialsProblems, readableFileProblems, tlsFileProblems } from './files.js';
import { tagPatternError } from './patterns.js';
import { problem, type Problem } from './problems.js';
import { storeSettings, type StoreSettings } from './store-settings.js';
import type { SubPathConfig } from './types.js';
import { arrayAt, isRecord, recordAt, stringAt, type JsonRecord } from './values.js';

type Path = readonly (string | number)[];

export interface SemanticOptions {
  /** Read the files the config names (htpasswd, certificates, ...); off to check a file's shape alone. */
  checkFiles: boolean;
}

export function semanticProblems(data: unknown, options: SemanticOptions): Problem[] {
  if (!isRecord(data)) return [];
  return [
    ...httpProblems(data),
    ...authMethodProblems(data),
    ...(options.checkFiles ? authFileProblems(data) : []),
    ...accessControlProblems(data),
    ...storageProblems(data),
    ...syncProblems(data),
    ...eventsProblems(data),
    ...onlyOneOf(data, ['metrics'], ['extensions', 'metrics']),
  ];
}

function httpProblems(config: JsonRecord): Problem[] {
  const http = recordAt(config, 'http');
  const problems: Problem[] = [];
  const port = http?.['port'];
  if (typeof port === 'string' && !isPort(port)) {
    problems.push(problem(['http', 'port'], 'must be a port number from 0 to 65535'));
  }
  const tls = recordAt(http, 'tls');
  if (tls !== undefined) {
    const has = (key: string) => tls[key] !== undefined;
    if (has('key') && !has('cert')) problems.push(problem(['http', 'tls', 'cert'], 'required when key is set'));
    if (has('cert') && !has('key')) problems.push(problem(['http', 'tls', 'key'], 'required when cert is set'));
    // Client certificates are checked during a TLS handshake, so the server needs its own pair.
    if (has('cacert') && !(has('cert') && has('key'))) {
      problems.push(problem(['http', 'tls', 'cacert'], 'needs cert and key to be set as well'));
    }
  }
  const externalUrl = stringAt(http, 'externalUrl');
  if (externalUrl !== undefined && !isBaseUrl(externalUrl)) {
    problems.push(problem(['http', 'externalUrl'], 'must be an absolute http or https URL, such as https://registry.example.com'));
  }
  return problems;
}

/** An http(s) URL that paths can be appended to: no query, no fragment. */
function isBaseUrl(text: string): boolean {
  return isHttpUrl(text) && !text.includes('?') && !text.includes('#');
}

// --- events -------------------------------------------------------------------------------

function eventsProblems(config: JsonRecord): Problem[] {
  const problems: Problem[] = [];
  arrayAt(recordAt(recordAt(config, 'extensions'), 'events'), 'sinks').forEach((sink, index) => {
    const path = ['extensions', 'events', 'sinks', index];
    const type = stringAt(sink, 'type');
    const address = stringAt(sink, 'address');
    // NATS has no default subject: zot publishes to `channel`.
    if (type === 'nats' && !stringAt(sink, 'channel')) problems.push(problem([...path, 'channel'], 'required for a nats sink: the subject events are published on'));
    if (type === 'http' && address !== undefined && !isHttpUrl(address)) {
      problems.push(problem([...path, 'address'], 'must be an http or https URL for an http sink'));
    }
  });
  return problems;
}

// --- authentication methods -------------------------------------------------------------

/** zot's names for the parts of a client certificate that can name the client (case-insensitive). */
export const MTLS_IDENTITY_ATTRIBUTES = ['commonname', 'cn', 'subject', 'dn', 'email', 'rfc822name', 'uri', 'url', 'dnsname', 'dns'];

function authMethodProblems(config: JsonRecord): Problem[] {
  const http = recordAt(config, 'http');
  const auth = recordAt(http, 'auth');
  const problems: Problem[] = [];
  const ldap = recordAt(auth, 'ldap');
  if (ldap !== undefined) {
    const path = ['http', 'auth', 'ldap'];
    // zot reads the search account from credentialsFile; two sources would leave one ignored.
    for (const key of ['bindDN', 'bindPassword']) {
      if (ldap[key] !== undefined && ldap['credentialsFile'] !== undefined) {
        problems.push(problem([...path, key], 'cannot be set together with credentialsFile; keep one of them'));
      }
    }
    if (ldap['bindPassword'] !== undefined && ldap['bindDN'] === undefined && ldap['credentialsFile'] === undefined) {
      problems.push(problem([...path, 'bindDN'], 'required when bindPassword is set'));
    }
    const filter = stringAt(ldap, 'userFilter');
    if (filter !== undefined && !balancedFilter(filter)) {
      problems.push(problem([...path, 'userFilter'], 'must be an LDAP filter with balanced parentheses, such as (objectClass=person)'));
    }
    if (ldap['insecure'] === true && ldap['startTLS'] === true) {
      problems.push(problem([...path, 'startTLS'], 'cannot be set together with insecure (plain LDAP)'));
    }
  }
  const mtls = recordAt(auth, 'mtls');
  if (mtls !== undefined) {
    const path = ['http', 'auth', 'mtls'];
    if (recordAt(http, 'tls')?.['cacert'] === undefined) {
      problems.push(problem(path, 'needs http.tls.cacert: client certificates are verified against it'));
    }
    arrayAt(mtls, 'identityAttributes').forEach((name, i) => {
      if (typeof name === 'string' && !MTLS_IDENTITY_ATTRIBUTES.includes(name.toLowerCase())) {
        problems.push(problem([...path, 'identityAttributes', i], 'must be one of CommonName, Subject, Email, URI, DNSName'));
      }
    });
    const pattern = stringAt(mtls, 'uriSanPattern');
    const error = pattern === undefined ? undefined : regexError(pattern);
    if (error !== undefined) problems.push(problem([...path, 'uriSanPattern'], `must be a valid regular expression (${error})`));
  }
  return problems;
}

/** Parentheses open and close in order and the whole filter is one parenthesised expression. */
function balancedFilter(filter: string): boolean {
  const text = filter.trim();
  if (text === '') return false;
  if (!text.startsWith('(')) return !/[()]/.test(text);
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') i += 1;
    else if (c === '(') depth += 1;
    else if (c === ')' && --depth < 0) return false;
    if (depth === 0 && i < text.length - 1) return false;
  }
  return depth === 0;
}

function isPort(text: string): boolean {
  return /^\d{1,5}$/.test(text) && Number(text) <= 65535;
}

// --- authentication -----------------------------------------------------------------------

function authFileProblems(config: JsonRecord): Problem[] {
  const http = recordAt(config, 'http');
  const auth = recordAt(http, 'auth');
  const problems: Problem[] = [];
  const checkFile = (path: Path, file: string | undefined, check: (path: Path, file: string) => Problem[]): void => {
    if (file !== undefined) problems.push(...check(path, file));
  };
  checkFile(['http', 'auth', 'htpasswd', 'path'], stringAt(recordAt(auth, 'htpasswd'), 'path'), htpasswdFileProblems);
  checkFile(['http', 'auth', 'bearer', 'cert'], stringAt(recordAt(auth, 'bearer'), 'cert'), bearerCertProblems);
  const ldap = recordAt(auth, 'ldap');
  checkFile(['http', 'auth', 'ldap', 'CACert'], stringAt(ldap, 'CACert'), readableFileProblems);
  checkFile(['http', 'auth', 'ldap', 'credentialsFile'], stringAt(ldap, 'credentialsFile'), ldapCredentialsProblems);
  const tls = recordAt(http, 'tls');
  if (tls !== undefined) {
    problems.push(...tlsFileProblems({ cert: stringAt(tls, 'cert'), key: stringAt(tls, 'key'), cacert: stringAt(tls, 'cacert') }));
  }
  return problems;
}

// --- access control ---------------------------------------------------------------------

const MUTATING_ACTIONS = ['create', 'update', 'delete'];

function accessControlProblems(config: JsonRecord): Problem[] {
  const http = recordAt(config, 'http');
  const sections: [Path, JsonRecord][] = [];
  const underHttp = recordAt(http, 'accessControl');
  const topLevel = recordAt(config, 'accessControl');
  if (underHttp !== undefined) sections.push([['http', 'accessControl'], underHttp]);
  if (topLevel !== undefined) sections.push([['accessControl'], topLevel]);

  const problems = onlyOneOf(config, ['accessControl'], ['http', 'accessControl']);
  const authenticated = hasAuthMethod(http);
  for (const [path, accessControl] of sections) {
    problems.push(...readRuleProblems(path, accessControl));
    problems.push(...globProblems(path, accessControl));
    problems.push(...mixedFormProblems(path, accessControl));
    // zot: identities come from an auth method; without one only anonymous access can be granted.
    if (!authenticated && !grantsOnlyAnonymousAccess(accessControl)) {
      problems.push(problem(path, `needs an authentication method (${AUTH_METHODS}) unless it only sets anonymousPolicy`));
    }
  }
  return problems;
}

const AUTH_METHODS = 'http.auth htpasswd, ldap or bearer, or client certificates with http.tls.cacert';

// zot also takes OpenID logins, API keys and client certificates (http.auth.mtls) as identities.
const IDENTITY_METHODS = ['htpasswd', 'ldap', 'bearer', 'openid', 'mtls'];

function hasAuthMethod(http: JsonRecord | undefined): boolean {
  const auth = recordAt(http, 'auth');
  const mutualTls = stringAt(recordAt(http, 'tls'), 'cacert') !== undefined;
  return mutualTls || IDENTITY_METHODS.some((method) => isRecord(auth?.[method])) || auth?.['apikey'] === true;
}

// Globs as zot matches them (src/auth/glob.ts); one that cannot match is a mistake worth naming.
function globProblems(path: Path, accessControl: JsonRecord): Problem[] {
  const problems: Problem[] = [];
  for (const [globPath] of repositoryPolicies(path, accessControl)) {
    const glob = String(globPath.at(-1));
    const why = globProblem(glob);
    if (why !== undefined) problems.push(problem(globPath, `is not a valid repository glob: it ${why}`));
  }
  return problems;
}

// Globs directly under the section (the seed's form) and under `repositories` (zot's newer form)
// would compete for the longest match in ways a reader of the file cannot see.
function mixedFormProblems(path: Path, accessControl: JsonRecord): Problem[] {
  if (recordAt(accessControl, 'repositories') === undefined) return [];
  const seedGlobs = Object.keys(accessControl).filter((key) => !ACCESS_CONTROL_KEYWORDS.has(key));
  if (seedGlobs.length === 0) return [];
  return [problem([...path, 'repositories'], `cannot be used with repository globs directly under ${path.join('.')} (${seedGlobs.join(', ')}); keep one form`)];
}

/** Each repository policy with its path, from both the seed form and `repositories`. */
function repositoryPolicies(path: Path, accessControl: JsonRecord): [Path, JsonRecord][] {
  const found: [Path, JsonRecord][] = [];
  for (const [key, value] of Object.entries(accessControl)) {
    if (ACCESS_CONTROL_KEYWORDS.has(key) && key !== 'repositories') continue;
    if (key === 'repositories') {
      for (const [glob, policy] of Object.entries(recordAt(accessControl, key) ?? {})) {
        if (isRecord(policy)) found.push([[...path, key, glob], policy]);
      }
    } else if (isRecord(value)) {
      found.push([[...path, key], value]);
    }
  }
  return found;
}

// zot's documentation: "create/update/delete can not be used without 'read' action".
function readRuleProblems(path: Path, accessControl: JsonRecord): Problem[] {
  const lists: [Path, unknown[]][] = [];
  for (const [repoPath, repo] of repositoryPolicies(path, accessControl)) {
    for (const key of ['defaultPolicy', 'anonymousPolicy']) lists.push([[...repoPath, key], arrayAt(repo, key)]);
    arrayAt(repo, 'policies').forEach((policy, i) => {
      lists.push([[...repoPath, 'policies', i, 'actions'], arrayAt(policy, 'actions')]);
    });
  }
  const admin = recordAt(accessControl, 'adminPolicy');
  if (admin !== undefined) lists.push([[...path, 'adminPolicy', 'actions'], arrayAt(admin, 'actions')]);

  return lists
    .filter(([, actions]) => actions.some((a) => MUTATING_ACTIONS.includes(String(a))) && !actions.includes('read'))
    .map(([listPath]) => problem(listPath, 'must include read when it includes create, update or delete'));
}

function grantsOnlyAnonymousAccess(accessControl: JsonRecord): boolean {
  const admin = recordAt(accessControl, 'adminPolicy');
  if (arrayAt(admin, 'users').length + arrayAt(admin, 'actions').length > 0) return false;
  if (arrayAt(recordAt(accessControl, 'metrics'), 'users').length > 0) return false;
  let anonymous = false;
  for (const [, repo] of repositoryPolicies([], accessControl)) {
    if (arrayAt(repo, 'defaultPolicy').length > 0) return false;
    const granting = arrayAt(repo, 'policies').some(
      (policy) => arrayAt(policy, 'users').length + arrayAt(policy, 'actions').length > 0,
    );
    if (granting) return false;
    if (arrayAt(repo, 'anonymousPolicy').length > 0) anonymous = true;
  }
  return anonymous;
}

// --- storage ------------------------------------------------------------------------------

function storageProblems(config: JsonRecord): Problem[] {
  const storage = recordAt(config, 'storage');
  if (storage === undefined) return [];
  const problems = driverProblems(['storage', 'storageDriver'], recordAt(storage, 'storageDriver'));
  problems.push(...retentionProblems(['storage', 'retention'], recordAt(storage, 'retention')));
  const mainRoot = stringAt(storage, 'rootDirectory');
  const firstByRoot = new Map<string, [string, JsonRecord]>();

  for (const [route, subPath] of Object.entries(recordAt(storage, 'subPaths') ?? {})) {
    const path = ['storage', 'subPaths', route];
    // Routes are repository-name prefixes; "/" would shadow the main store.
    if (!route.startsWith('/') || route === '/') {
      problems.push(problem(path, 'must start with / and name a path below it, such as /a'));
    }
    if (!isRecord(subPath)) continue;
    problems.push(...driverProblems([...path, 'storageDriver'], recordAt(subPath, 'storageDriver')));
    problems.push(...retentionProblems([...path, 'retention'], recordAt(subPath, 'retention')));

    const root = stringAt(subPath, 'rootDirectory');
    if (root === undefined) continue;
    // zot compares these case-insensitively (strings.EqualFold).
    if (mainRoot !== undefined && directoryKey(root).toLowerCase() === directoryKey(mainRoot).toLowerCase()) {
      problems.push(problem([...path, 'rootDirectory'], 'must differ from storage.rootDirectory'));
    }
    const first = firstByRoot.get(directoryKey(root));
    if (first === undefined) {
      firstByRoot.set(directoryKey(root), [route, subPath]);
    } else if (!sameStoreSettings(first[1], subPath)) {
      problems.push(
        problem(
          [...path, 'rootDirectory'],
          `is shared with subPath ${first[0]}, so dedupe, gc, gcDelay and gcInterval must match it`,
        ),
      );
    }
  }
  return problems;
}

/** A directory as written, without "." segments or trailing slashes, to compare two of them. */
function directoryKey(dir: string): string {
  const segments = dir.split('/').filter((s, i) => s !== '.' && (s !== '' || i === 0));
  return segments.join('/') || '/';
}

// zot compares the settings with its defaults applied (StorageConfig.ParamsEqual).
function sameStoreSettings(a: JsonRecord, b: JsonRecord): boolean {
  const [first, second] = [settingsWithDefaults(a), settingsWithDefaults(b)];
  if (first === undefined || second === undefined) return true; // the schema reports the bad value
  return (['dedupe', 'gc', 'gcDelayMs', 'gcIntervalMs'] as const).every((key) => first[key] === second[key]);
}

function settingsWithDefaults(subPath: JsonRecord): StoreSettings | undefined {
  const { dedupe, gc, gcDelay, gcInterval } = subPath;
  const validDuration = (value: unknown) => value === undefined || (typeof value === 'string' && isDuration(value));
  const validFlag = (value: unknown) => value === undefined || typeof value === 'boolean';
  if (!validFlag(dedupe) || !validFlag(gc) || !validDuration(gcDelay) || !validDuration(gcInterval)) return undefined;
  return storeSettings(subPath as Pick<SubPathConfig, 'dedupe' | 'gc' | 'gcDelay' | 'gcInterval'>, 'subPath');
}

function driverProblems(path: Path, driver: JsonRecord | undefined): Problem[] {
  const name = stringAt(driver, 'name');
  if (driver === undefined || name === undefined) return [];
  // zot's other drivers are features this release refuses by name (features.ts).
  if (name === 'gcs' || name === 'azure') return [];
  if (name !== 's3') {
    const message = `unknown storage driver "${name}"; zot's drivers besides the filesystem are s3, gcs and azure`;
    return [problem([...path, 'name'], message)];
  }
  const problems: Problem[] = [];
  const has = (key: string) => (stringAt(driver, key) ?? '') !== '';
  if (!has('bucket')) problems.push(problem([...path, 'bucket'], 'required by the s3 driver'));
  // distribution's s3 driver skips the region check when a custom endpoint is given.
  if (!has('region') && !has('regionendpoint')) {
    problems.push(problem([...path, 'region'], 'required by the s3 driver unless regionendpoint is set'));
  }
  return problems;
}

// zot checks these when it loads a file (validateGCRules): repository globs compile, tag patterns
// are regular expressions. Durations are the schema's.
function retentionProblems(path: Path, retention: JsonRecord | undefined): Problem[] {
  const problems: Problem[] = [];
  arrayAt(retention, 'policies').forEach((policy, i) => {
    const policyPath = [...path, 'policies', i];
    arrayAt(policy, 'repositories').forEach((glob, j) => {
      const error = typeof glob === 'string' ? globProblem(glob) : undefined;
      if (error !== undefined) problems.push(problem([...policyPath, 'repositories', j], `must be a valid repository glob (${error})`));
    });
    arrayAt(policy, 'keepTags').forEach((keep, k) => {
      arrayAt(keep, 'patterns').forEach((pattern, l) => {
        const error = typeof pattern === 'string' ? tagPatternError(pattern) : undefined;
        if (error !== undefined) {
          problems.push(problem([...policyPath, 'keepTags', k, 'patterns', l], `must be a valid regular expression (${error})`));
        }
      });
    });
  });
  return problems;
}

// --- sync ---------------------------------------------------------------------------------

function syncProblems(config: JsonRecord): Problem[] {
  const problems = onlyOneOf(config, ['sync'], ['extensions', 'sync']);
  const sections: [Path, JsonRecord | undefined][] = [
    [['sync'], recordAt(config, 'sync')],
    [['extensions', 'sync'], recordAt(recordAt(config, 'extensions'), 'sync')],
  ];
  for (const [path, sync] of sections) {
    arrayAt(sync, 'registries').forEach((registry, i) => {
      if (isRecord(registry)) problems.push(...registryProblems([...path, 'registries', i], registry));
    });
  }
  return problems;
}

function registryProblems(path: Path, registry: JsonRecord): Problem[] {
  const problems: Problem[] = [];
  const urls = registry['urls'];
  if (Array.isArray(urls)) {
    if (urls.length === 0) problems.push(problem([...path, 'urls'], 'must list at least one registry URL'));
    urls.forEach((url, i) => {
      if (typeof url === 'string' && !isHttpUrl(url)) {
        problems.push(problem([...path, 'urls', i], 'must be an http or https URL'));
      }
    });
  }
  if (registry['maxRetries'] !== undefined && registry['retryDelay'] === undefined) {
    problems.push(problem([...path, 'retryDelay'], 'required when maxRetries is set'));
  }
  arrayAt(registry, 'content').forEach((content, i) => {
    if (isRecord(content)) problems.push(...contentProblems([...path, 'content', i], content));
  });
  return problems;
}

function contentProblems(path: Path, content: JsonRecord): Problem[] {
  const problems: Problem[] = [];
  for (const key of ['regex', 'excludeRegex']) {
    const regex = stringAt(recordAt(content, 'tags'), key);
    const error = regex === undefined ? undefined : regexError(regex);
    if (error !== undefined) {
      problems.push(problem([...path, 'tags', key], `must be a valid regular expression (${error})`));
    }
  }
  // zot: stripping a plain prefix into "/" would leave an empty repository name.
  const prefix = stringAt(content, 'prefix');
  const intoRoot = content['stripPrefix'] === true && content['destination'] === '/';
  if (intoRoot && prefix !== undefined && !prefix.includes('/*')) {
    problems.push(problem([...path, 'stripPrefix'], 'needs a glob prefix such as /repo/** when destination is /'));
  }
  return problems;
}

function isHttpUrl(text: string): boolean {
  try {
    const { protocol } = new URL(text);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

/** The reason a pattern does not compile as a JavaScript RegExp, or undefined if it does. */
function regexError(pattern: string): string | undefined {
  try {
    new RegExp(pattern);
    return undefined;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // "Invalid regular expression: /(/: Unterminated group" -> "Unterminated group"
    return message.slice(message.lastIndexOf(': ') + 2);
  }
}

// --- shared -------------------------------------------------------------------------------

/** The seed's old form and zot's newer one must not both be set: which one wins is unclear. */
function onlyOneOf(config: JsonRecord, older: readonly string[], newer: readonly string[]): Problem[] {
  const at = (path: readonly string[]) =>
    path.reduce<unknown>((value, key) => (isRecord(value) ? value[key] : undefined), config);
  if (at(older) === undefined || at(newer) === undefined) return [];
  return [problem(older, `cannot be set together with ${newer.join('.')}; keep one of them`)];
}
