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
  port?: number;
  startTLS?: boolean;
  baseDN: string;
  userAttribute: string;
  bindDN?: string;
  bindPassword?: string;
  skipVerify?: boolean;
  subtreeSearch?: boolean;
  [key: string]: unknown;
}

export interface BearerConfig {
  realm: string;
  service: string;
  cert: string;
}

export interface AuthConfig {
  htpasswd?: HtpasswdConfig;
  ldap?: LdapConfig;
  bearer?: BearerConfig;
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
  tags?: { regex?: string; semver?: boolean };
  destination?: string;
  stripPrefix?: boolean;
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
