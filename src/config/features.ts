// Features a valid configuration may ask for that this release does not build yet.
// `zot serve` refuses to start when the list is not empty, rather than silently serving
// without the authentication, sync or storage the operator configured.

import type { Config } from './types.js';

/** One message per unbuilt feature, each naming the config field that asks for it. */
export function unbuiltFeatures(config: Config): string[] {
  const found: string[] = [];
  const notBuilt = (field: string, what: string) => found.push(`${field}: ${what} is not built yet`);
  const { http } = config;

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

  return found;
}
