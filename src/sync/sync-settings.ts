// The sync section of the config (`extensions.sync`, or the seed's top-level `sync`) read into
// what the sync parts run with: durations in milliseconds, the credentials file and each certDir
// read once at start (a file that cannot be read stops the start, naming it), content rules compiled.
import type { Config, SyncConfig, SyncRegistryConfig } from '../config/types.js';
import { parseDuration } from '../config/duration.js';
import { contentRules, type ContentRule } from './content-rules.js';
import { readCredentialsFile, type CredentialsFile } from './upstream-auth.js';
import { readCertDir, type TlsSettings } from './upstream-transport.js';

export interface SyncRegistrySettings {
  /** Position in `registries`, for logs. */
  index: number;
  urls: string[];
  onDemand: boolean;
  /** Periodic sync runs when both this and content are set. */
  pollIntervalMs?: number;
  tls: TlsSettings;
  credentials: CredentialsFile;
  maxRetries: number;
  retryDelayMs: number;
  onlySigned: boolean;
  content: ContentRule[];
}

/** The sync section when it is on and lists registries; undefined otherwise. */
export function syncSection(config: Config): SyncConfig | undefined {
  const section = config.extensions?.sync ?? config.sync;
  if (section === undefined || section.enable === false || (section.registries?.length ?? 0) === 0) return undefined;
  return section;
}

export function syncSettings(section: SyncConfig): SyncRegistrySettings[] {
  const credentials = section.credentialsFile !== undefined ? readCredentialsFile(section.credentialsFile) : {};
  return (section.registries ?? []).map((registry, index) => registrySettings(registry, index, credentials));
}

function registrySettings(registry: SyncRegistryConfig, index: number, credentials: CredentialsFile): SyncRegistrySettings {
  const pollIntervalMs = registry.pollInterval !== undefined ? parseDuration(registry.pollInterval) : undefined;
  return {
    index,
    urls: registry.urls,
    onDemand: registry.onDemand === true,
    ...(pollIntervalMs !== undefined && pollIntervalMs > 0 ? { pollIntervalMs } : {}),
    tls: { verify: registry.tlsVerify !== false, ...(registry.certDir !== undefined ? readCertDir(registry.certDir) : {}) },
    credentials,
    maxRetries: registry.maxRetries ?? 0,
    retryDelayMs: registry.retryDelay !== undefined ? (parseDuration(registry.retryDelay) ?? 0) : 0,
    onlySigned: registry.onlySigned === true,
    content: contentRules(registry.content),
  };
}
