// Features a valid configuration may ask for that this release does not build yet.
// `zot serve` refuses to start when the list is not empty, rather than silently serving
// without the authentication, sync or storage the operator configured.

import type { Config, SyncConfig } from './types.js';

/** One message per unbuilt feature, each naming the config field that asks for it. */
export function unbuiltFeatures(config: Config): string[] {
  const found: string[] = [];
  const notBuilt = (field: string, what: string) => found.push(`${field}: ${what} is not built yet`);
  const { http, extensions } = config;

  // Every authentication method (htpasswd, LDAP, bearer tokens, client certificates), failDelay
  // and accessControl (both forms) are built.

  if (syncWanted(config.sync)) notBuilt('sync', 'sync');
  if (syncWanted(extensions?.sync)) notBuilt('extensions.sync', 'sync');

  return found;
}

function syncWanted(sync: SyncConfig | undefined): boolean {
  return sync !== undefined && (sync.enable === true || (sync.registries?.length ?? 0) > 0);
}
