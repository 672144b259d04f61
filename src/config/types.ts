// The configuration file, in zot's format (JSON, YAML or TOML). Field names follow zot's
// documented spelling, including its mixed casing (`ReadOnly`, `rootDirectory`,
// `storageDriver.rootdirectory`); the file may write them in any case (keys.ts).
// The JSON Schema in schema.ts is the authority on what is accepted; these types describe the
// validated, defaults-applied result that the rest of the registry reads.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface TlsConfig {
  cert?: string;
  key?: string;
  cacert?: string;
}

export interface HtpasswdConfig {
  path: string;
}

export interface LdapConfig {
  address: string;
  /** 636 for LDAPS, 389 for plain LDAP and StartTLS, when unset. */
  port?: number;
  /** Plain LDAP, no TLS at all (zot's `insecure`). */
  insecure?: boolean;
  /** Without `insecure`: StartTLS on the plain port when set, LDAPS when not. */
  startTLS?: boolean;
  baseDN: string;
  userAttribute: string;
  /** An extra LDAP filter the user's entry must match, such as (objectClass=person). */
  userFilter?: string;
  /** The attribute of the user's entry that lists their groups, such as memberOf. */
  userGroupAttribute?: string;
  bindDN?: string;
  bindPassword?: string;
  /** A JSON or YAML file holding bindDN and bindPassword, instead of the two keys above. */
  credentialsFile?: string;
  skipVerify?: boolean;
  /** CA certificates (PEM) trusted for the directory's TLS certificate, instead of the system's. */
  CACert?: string;
  subtreeSearch?: boolean;
  [key: string]: unknown;
}

export interface BearerConfig {
  realm: string;
  service: string;
  cert: string;
}

/** zot's `http.auth.mtls`: which part of a verified client certificate names the client. */
export interface MtlsConfig {
  /** Tried in order; the first one the certificate has wins. Default: CommonName. */
  identityAttributes?: string[];
  /** A regular expression whose first group is the identity taken from the URI SAN. */
  uriSanPattern?: string;
  uriSanIndex?: number;
  dnsSanIndex?: number;
  emailSanIndex?: number;
}

export interface AuthConfig {
  htpasswd?: HtpasswdConfig;
  ldap?: LdapConfig;
  bearer?: BearerConfig;
  mtls?: MtlsConfig;
  failDelay?: number;
  [key: string]: unknown;
}

export type Action = 'read' | 'create' | 'update' | 'delete';

export interface Policy {
  users?: string[];
  groups?: string[];
  actions: Action[];
}

export interface RepositoryPolicy {
  policies?: Policy[];
  defaultPolicy?: Action[];
  anonymousPolicy?: Action[];
}

export interface AccessControlConfig {
  repositories?: Record<string, RepositoryPolicy>;
  adminPolicy?: Policy;
  groups?: Record<string, { users: string[] }>;
  /** Who may read the metrics endpoint; unset: anyone who passes authentication. */
  metrics?: { users?: string[]; anonymousPolicy?: string[] };
  /** The seed's older form keeps repository patterns at this level. */
  [pattern: string]: unknown;
}

export interface RatelimitConfig {
  /** Requests per second. */
  rate?: number;
  methods?: { method: string; rate: number }[];
}

export interface HttpConfig {
  address: string;
  port: string;
  realm?: string;
  tls?: TlsConfig;
  auth?: AuthConfig;
  accessControl?: AccessControlConfig;
  ReadOnly?: boolean;
  externalUrl?: string;
  /** Comma-separated origins. */
  allowOrigin?: string;
  readTimeout?: string;
  writeTimeout?: string;
  compat?: 'docker2s2'[];
  ratelimit?: RatelimitConfig;
  [key: string]: unknown;
}

export interface StorageDriverConfig {
  name: string;
  rootdirectory?: string;
  region?: string;
  regionendpoint?: string;
  bucket?: string;
  secure?: boolean;
  skipverify?: boolean;
  accesskey?: string;
  secretkey?: string;
  forcepathstyle?: boolean;
  /** Multipart part size in bytes (distribution's default 10 MiB, at least 5 MiB). */
  chunksize?: number;
  storageclass?: string;
  objectacl?: string;
  useragent?: string;
  encrypt?: boolean;
  keyid?: string;
  usedualstack?: boolean;
  usefipsendpoint?: boolean;
  accelerate?: boolean;
  [key: string]: unknown;
}

/** Rules that keep tags or untagged manifests; one that meets any of them is kept. */
export interface KeepRules {
  pulledWithin?: string;
  pushedWithin?: string;
  mostRecentlyPushedCount?: number;
  mostRecentlyPulledCount?: number;
}

export interface KeepTagsPolicy extends KeepRules {
  /** Regular expressions (Go's syntax, unanchored); a tag matching none goes to the next entry. */
  patterns?: string[];
}

export interface RetentionPolicy {
  repositories?: string[];
  deleteReferrers?: boolean;
  deleteUntagged?: boolean;
  keepTags?: KeepTagsPolicy[];
  keepUntagged?: KeepRules;
}

export interface RetentionConfig {
  dryRun?: boolean;
  delay?: string;
  policies?: RetentionPolicy[];
}

/** What zot accepts on the default root and on every subPath alike (schema.ts storeProperties). */
export interface StoreConfig {
  rootDirectory: string;
  dedupe?: boolean;
  gc?: boolean;
  gcDelay?: string;
  gcInterval?: string;
  storageDriver?: StorageDriverConfig;
  retention?: RetentionConfig;
  commit?: boolean;
  maxRepos?: number;
  remoteCache?: boolean;
  cacheDriver?: Record<string, unknown>;
  hydrateBlobOnRead?: boolean;
}

export type SubPathConfig = StoreConfig;

export interface StorageConfig extends StoreConfig {
  subPaths?: Record<string, SubPathConfig>;
  [key: string]: unknown;
}

export interface LogConfig {
  level?: LogLevel;
  output?: string;
  audit?: string;
}

export interface MetricsConfig {
  enable?: boolean;
  prometheus?: { path?: string };
}

export interface SyncContent {
  prefix: string;
  tags?: { regex?: string; excludeRegex?: string; semver?: boolean };
  destination?: string;
  stripPrefix?: boolean;
  /** `os/architecture[/variant]` of an index's images to sync (zot-ts; zot syncs every platform). */
  platforms?: string[];
}

export interface SyncRegistryConfig {
  urls: string[];
  onDemand?: boolean;
  pollInterval?: string;
  tlsVerify?: boolean;
  certDir?: string;
  maxRetries?: number;
  retryDelay?: string;
  onlySigned?: boolean;
  content?: SyncContent[];
}

export interface SyncConfig {
  enable?: boolean;
  credentialsFile?: string;
  registries?: SyncRegistryConfig[];
}

export interface EventSinkConfig {
  type: 'http' | 'nats';
  address: string;
  channel?: string;
  timeout?: string;
  proxy?: string;
  headers?: Record<string, string>;
  credentials?: { username?: string; password?: string; file?: string; token?: string };
  tls?: { caCertFile?: string; certFile?: string; keyFile?: string };
}

export interface EventsConfig {
  enable?: boolean;
  source?: string;
  typePrefix?: string;
  sinks?: EventSinkConfig[];
}

export interface ExtensionsConfig {
  sync?: SyncConfig;
  metrics?: MetricsConfig;
  scrub?: { enable?: boolean; interval?: string };
  events?: EventsConfig;
  [key: string]: unknown;
}

export interface Config {
  distSpecVersion?: string;
  http: HttpConfig;
  storage: StorageConfig;
  log?: LogConfig;
  metrics?: MetricsConfig;
  accessControl?: AccessControlConfig;
  sync?: SyncConfig;
  extensions?: ExtensionsConfig;
}
