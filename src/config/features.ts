// Features a valid configuration may ask for that this release does not build yet.
// `zot serve` refuses to start when the list is not empty, rather than silently serving
// without the authentication, sync or storage the operator configured.

import type { Config, SyncConfig } from './types.js';

/** One message per unbuilt feature, each naming the config field that asks for it. */
export function unbuiltFeatures(config: Config): string[] {
  const found: string[] = [];
  const notBuilt = (field: string, what: string) => found.push(`${field}: ${what} is not built yet`);
  const { http, extensions } = config;

  const auth = http.auth;
  if (auth !== undefined) {
    const methods = (['htpasswd', 'ldap', 'bearer'] as const).filter((method) => auth[method] !== undefined);
    for (const method of methods) notBuilt(`http.auth.${method}`, 'authentication');
    // failDelay alone still asks for authentication to exist.
    if (methods.length === 0) notBuilt('http.auth', 'authentication');
  }
  if (http.tls?.cacert !== undefined) notBuilt('http.tls.cacert', 'mutual TLS');
  if (http.accessControl !== undefined) notBuilt('http.accessControl', 'access control');
  if (config.accessControl !== undefined) notBuilt('accessControl', 'access control');

  if (syncWanted(config.sync)) notBuilt('sync', 'sync');
  if (syncWanted(extensions?.sync)) notBuilt('extensions.sync', 'sync');

  (extensions?.events?.sinks ?? []).forEach((sink, index) => {
    const at = `extensions.events.sinks[${index}]`;
    if (sink.proxy !== undefined) notBuilt(`${at}.proxy`, 'delivering events through a proxy');
    if (sink.tlsconfig !== undefined) notBuilt(`${at}.tlsconfig`, 'client certificates and private CAs for event sinks');
    if (sink.credentials?.file !== undefined) notBuilt(`${at}.credentials.file`, 'NATS credentials files');
  });

  return found;
}

function syncWanted(sync: SyncConfig | undefined): boolean {
  return sync !== undefined && (sync.enable === true || (sync.registries?.length ?? 0) > 0);
}
