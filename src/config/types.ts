// The configuration file, in zot's format (JSON or YAML). Field names follow zot exactly,
// including its mixed casing (`ReadOnly`, `rootDirectory`, `storageDriver.rootdirectory`).
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

export interface HttpConfig {
  address: string;
  port: string;
  realm?: string;
  tls?: TlsConfig;
  auth?: AuthConfig;
  accessControl?: AccessControlConfig;
  ReadOnly?: boolean;
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
  useDualStack?: boolean;
  usefipsendpoint?: boolean;
  accelerate?: boolean;
  [key: string]: unknown;
}

export interface SubPathConfig {
  rootDirectory: string;
  dedupe?: boolean;
  gc?: boolean;
  gcDelay?: string;
  gcInterval?: string;
  storageDriver?: StorageDriverConfig;
}

export interface StorageConfig {
  rootDirectory: string;
  dedupe?: boolean;
  gc?: boolean;
  gcDelay?: string;
  gcInterval?: string;
  subPaths?: Record<string, SubPathConfig>;
  storageDriver?: StorageDriverConfig;
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

export interface ExtensionsConfig {
  sync?: SyncConfig;
  metrics?: MetricsConfig;
  scrub?: { enable?: boolean; interval?: string };
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
