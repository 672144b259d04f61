// zot's features, one row each: where a configuration asks for it, what it is, and whether this
// release builds it. Every key of zot's configuration is accepted by the schema (schema.ts), so a
// zot file is never refused as a typo; a feature that is not built is refused here by name, and
// `zot serve` does not start rather than silently serving without what the operator configured.
// `zot verify` prints the same list. Building a feature means flipping its status to 'built'.

import type { Config } from './types.js';
import { isRecord } from './values.js';

export type FeatureStatus = 'built' | 'not built yet' | 'not supported';

export interface Feature {
  /** Where a file asks for it, dotted in zot's spelling; `*` stands for any subPaths route or list item. */
  readonly paths: readonly string[];
  /** A short name. */
  readonly name: string;
  /** One line on what it is; a refusal reads `<path>: <description> is <status>`. */
  readonly description: string;
  readonly status: FeatureStatus;
  /** Whether the value found at a path asks for the feature; by default, being there at all. */
  readonly asks?: (value: unknown) => boolean;
}

/** Subtrees of storage that zot accepts on the default root and on every subPath alike. */
const everyStore = (key: string) => [`storage.${key}`, `storage.subPaths.*.${key}`];

/** zot turns an extension on when its section is there, unless `enable` is false. */
const enabled = (section: unknown) => !(isRecord(section) && section['enable'] === false);
const isTrue = (value: unknown) => value === true;
const driverNamed = (name: string) => (driver: unknown) => isRecord(driver) && driver['name'] === name;

// A section with registries syncs even when `enable` is false: it is not silently dropped.
const syncAsked = (sync: unknown) =>
  isRecord(sync) && (sync['enable'] !== false || (Array.isArray(sync['registries']) && sync['registries'].length > 0));

const AUTH_METHODS = ['htpasswd', 'ldap', 'bearer', 'openid', 'apikey', 'mtls'];

export const FEATURES: readonly Feature[] = [
  // --- built ------------------------------------------------------------------------------
  { paths: ['http.address', 'http.port'], name: 'listener', description: 'the address and port to listen on', status: 'built' },
  { paths: ['http.tls'], name: 'TLS', description: 'HTTPS with a certificate and key', status: 'built' },
  { paths: ['http.realm'], name: 'realm', description: 'the realm named in authentication challenges', status: 'built' },
  { paths: ['http.ReadOnly'], name: 'read-only', description: 'a registry that refuses every write', status: 'built' },
  { paths: ['storage.rootDirectory', 'storage.subPaths'], name: 'storage roots', description: 'the default root and per-prefix roots', status: 'built' },
  { paths: everyStore('dedupe'), name: 'dedupe', description: 'one copy of a blob per root', status: 'built' },
  { paths: [...everyStore('gc'), ...everyStore('gcDelay'), ...everyStore('gcInterval')], name: 'garbage collection', description: 'removal of what nothing references', status: 'built' },
  { paths: everyStore('storageDriver'), name: 's3 storage driver', description: 'blobs in an S3 bucket', status: 'built', asks: driverNamed('s3') },
  { paths: ['log'], name: 'logs', description: 'log level, log file and audit log', status: 'built' },
  { paths: ['extensions.metrics', 'metrics'], name: 'metrics', description: 'Prometheus metrics in zot\'s names', status: 'built' },
  { paths: ['extensions.scrub'], name: 'scrub', description: 'periodic integrity checks of stored blobs', status: 'built' },
  { paths: ['http.ratelimit'], name: 'rate limit', description: 'rate limiting of requests (429 TOOMANYREQUESTS)', status: 'built' },
  { paths: ['http.compat'], name: 'compat', description: 'compatibility with Docker media types (docker2s2)', status: 'built' },
  { paths: everyStore('commit'), name: 'commit', description: 'syncing every write to disk before acknowledging it', status: 'built', asks: isTrue },
  // Counted across every root (repository-quota.ts); a subPath's own limit is a row below.
  { paths: ['storage.maxRepos'], name: 'maxRepos', description: 'a limit on the number of repositories', status: 'built' },
  { paths: ['http.allowOrigin'], name: 'CORS', description: 'CORS (headers that let the allowed origins call the registry)', status: 'built' },
  { paths: ['http.readTimeout'], name: 'read timeout', description: 'a limit on the time to read a request', status: 'built' },
  { paths: ['http.writeTimeout'], name: 'write timeout', description: 'a limit on the time to write a response', status: 'built' },
  { paths: ['http.externalUrl'], name: 'external URL', description: 'the registry\'s public URL (for Location headers)', status: 'built' },
  { paths: ['extensions.events'], name: 'events', description: 'zot\'s events extension (CloudEvents to http and nats sinks)', status: 'built', asks: enabled },
  { paths: everyStore('retention'), name: 'retention', description: 'retention (which tags and untagged manifests garbage collection keeps)', status: 'built' },

  // --- built since the seed, and the parts of them not built yet ---------------------------
  { paths: ['http.auth.htpasswd'], name: 'htpasswd authentication', description: 'authentication', status: 'built' },
  { paths: ['http.auth.ldap'], name: 'LDAP authentication', description: 'authentication', status: 'built' },
  { paths: ['http.auth.bearer'], name: 'bearer-token authentication', description: 'authentication', status: 'built' },
  {
    // failDelay alone still asks for authentication to exist.
    paths: ['http.auth'],
    name: 'authentication',
    description: 'authentication',
    status: 'built',
    asks: (auth) => isRecord(auth) && !AUTH_METHODS.some((method) => auth[method] !== undefined),
  },
  { paths: ['http.tls.cacert', 'http.auth.mtls'], name: 'mutual TLS', description: 'mutual TLS', status: 'built' },
  { paths: ['http.accessControl', 'accessControl'], name: 'access control', description: 'access control', status: 'built' },
  { paths: ['extensions.sync', 'sync'], name: 'sync', description: 'sync', status: 'built', asks: syncAsked },
  { paths: ['storage.subPaths.*.maxRepos'], name: 'subPath maxRepos', description: 'a limit on the repositories of one subPath', status: 'not built yet' },
  { paths: ['extensions.events.sinks.*.proxy'], name: 'events proxy', description: 'delivering events through a proxy', status: 'not built yet' },
  {
    paths: ['extensions.events.sinks.*.tls'],
    name: 'events TLS',
    description: 'client certificates and private CAs for event sinks',
    status: 'not built yet',
  },
  { paths: ['extensions.events.sinks.*.credentials.file'], name: 'NATS credentials file', description: 'NATS credentials files', status: 'not built yet' },

  // --- not supported ------------------------------------------------------------------------
  {
    paths: ['extensions.search'],
    name: 'search',
    description: 'zot\'s search and UI extension (GraphQL, CVE scanning)',
    status: 'not supported',
    asks: enabled,
  },
  { paths: ['extensions.ui'], name: 'UI', description: 'zot\'s web UI', status: 'not supported', asks: enabled },
  { paths: ['extensions.lint'], name: 'lint', description: 'zot\'s lint extension (annotations a pushed manifest must have)', status: 'not supported', asks: enabled },
  { paths: ['extensions.mgmt'], name: 'mgmt', description: 'zot\'s management extension (the configuration served to clients)', status: 'not supported', asks: enabled },
  { paths: ['extensions.apikey'], name: 'API key extension', description: 'zot\'s API key extension', status: 'not supported', asks: enabled },
  { paths: ['extensions.trust'], name: 'image trust', description: 'zot\'s image trust extension (cosign and notation signature checks)', status: 'not supported', asks: enabled },
  { paths: ['http.auth.openid'], name: 'OpenID', description: 'zot\'s OpenID Connect and OAuth2 login (Google, GitHub, GitLab, dex)', status: 'not supported' },
  { paths: ['http.auth.apikey'], name: 'API keys', description: 'zot\'s API key authentication', status: 'not supported', asks: isTrue },
  {
    paths: ['http.auth.sessionKeysFile', 'http.auth.sessionDriver', 'http.auth.secureSession'],
    name: 'sessions',
    description: 'the session store of zot\'s web login',
    status: 'not supported',
  },
  { paths: ['http.auth.bearer.oidc'], name: 'OIDC bearer tokens', description: 'checking bearer tokens against an OpenID Connect issuer', status: 'not supported' },
  { paths: everyStore('remoteCache'), name: 'remote cache', description: 'a dedupe cache shared between zot instances', status: 'not supported', asks: isTrue },
  { paths: everyStore('cacheDriver'), name: 'cache driver', description: 'zot\'s cache database in DynamoDB or Redis', status: 'not supported' },
  { paths: everyStore('storageDriver'), name: 'gcs storage driver', description: 'the gcs storage driver (Google Cloud Storage)', status: 'not supported', asks: driverNamed('gcs') },
  { paths: everyStore('storageDriver'), name: 'azure storage driver', description: 'the azure storage driver (Azure Blob Storage)', status: 'not supported', asks: driverNamed('azure') },
  {
    paths: everyStore('hydrateBlobOnRead'),
    name: 'hydrateBlobOnRead',
    description: 'serving a repository a blob only another repository holds',
    status: 'not supported',
    asks: isTrue,
  },
  { paths: ['scheduler'], name: 'scheduler', description: 'the size of zot\'s background task scheduler', status: 'not supported' },
  { paths: ['cluster'], name: 'cluster', description: 'zot\'s scale-out cluster (requests proxied between members)', status: 'not supported' },
];

/** A feature the configuration asks for, at the path where it does. */
export interface AskedFeature {
  readonly path: string;
  readonly feature: Feature;
}

/** Every feature the configuration asks for, with the path of each place it does. */
export function askedFeatures(config: Config): AskedFeature[] {
  const asked: AskedFeature[] = [];
  for (const feature of FEATURES) {
    for (const pattern of feature.paths) {
      for (const [path, value] of valuesAt(config, pattern.split('.'), [])) {
        if (feature.asks === undefined || feature.asks(value)) asked.push({ path, feature });
      }
    }
  }
  return asked;
}

/** One line per feature the configuration asks for that this release does not build, by path. */
export function unbuiltFeatures(config: Config): string[] {
  const lines = askedFeatures(config)
    .filter(({ feature }) => feature.status !== 'built')
    .map(({ path, feature }) => `${path}: ${feature.description} is ${feature.status}`);
  return [...new Set(lines)].sort();
}

/** The values at a dotted pattern, each with its concrete path; `*` matches every key or index. */
function valuesAt(value: unknown, segments: readonly string[], path: readonly string[]): [string, unknown][] {
  if (value === undefined) return [];
  const [head, ...rest] = segments;
  if (head === undefined) return [[path.join('.'), value]];
  if (Array.isArray(value) && head === '*') return value.flatMap((item, index) => valuesAt(item, rest, [...path, String(index)]));
  if (!isRecord(value)) return [];
  const keys = head === '*' ? Object.keys(value) : [head];
  return keys.flatMap((key) => valuesAt(value[key], rest, [...path, key]));
}
