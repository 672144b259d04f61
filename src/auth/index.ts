// Builds authentication and authorization from the configuration, for the composition root:
// the chain of configured methods (in zot's order) and the accessControl authorizer.
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import type { AccessControlConfig, Config } from '../config/types.js';
import { AccessControlAuthorizer, repositoryPolicies } from './access-control.js';
import { readBearerPublicKey } from './bearer-key.js';
import { AuthenticationChain, DEFAULT_REALM, type Authentication } from './chain.js';
import { MtlsAuthenticator } from './mtls.js';
import type { Authenticator, Authorizer } from './types.js';

export interface AuthSetup {
  authentication: Authentication;
  authorizer: Authorizer;
  /** http.auth.failDelay: how long a request with failed credentials waits for its 401. */
  failDelayMs: number;
  close(): Promise<void>;
}

/** The accessControl section in force: zot's `http.accessControl`, or the seed's top-level one. */
export function accessControlOf(config: Config): AccessControlConfig | undefined {
  return config.http.accessControl ?? config.accessControl;
}

/**
 * Opens every configured method; a method that cannot start (a bad htpasswd file) throws, naming
 * why. Each method's module (and its library: ldapts, bcryptjs, jsonwebtoken) is loaded only when
 * the configuration uses it, which keeps them out of a registry's start-up time and memory.
 */
export async function openAuth(config: Config, logger: Logger): Promise<AuthSetup> {
  const auth = config.http.auth;
  const authenticators: Authenticator[] = [];
  try {
    // zot's order: LDAP first (the seed: "LDAP authentication is given preference"), then
    // htpasswd, bearer tokens, and the client certificate.
    if (auth?.ldap) {
      const caCert = auth.ldap.CACert !== undefined ? fs.readFileSync(auth.ldap.CACert) : undefined;
      const { LdapAuthenticator } = await import('./ldap.js');
      authenticators.push(new LdapAuthenticator({ config: auth.ldap, logger, ...(caCert ? { caCert } : {}) }));
    }
    if (auth?.htpasswd) {
      const { HtpasswdAuthenticator } = await import('./htpasswd.js');
      authenticators.push(HtpasswdAuthenticator.open(auth.htpasswd.path, logger));
    }
    if (auth?.bearer) {
      const { BearerAuthenticator } = await import('./bearer.js');
      authenticators.push(new BearerAuthenticator({ config: auth.bearer, publicKey: readBearerPublicKey(auth.bearer.cert) }));
    }
    if (config.http.tls?.cacert !== undefined) authenticators.push(new MtlsAuthenticator(auth?.mtls));
  } catch (err) {
    await Promise.all(authenticators.map((authenticator) => authenticator.close?.()));
    throw err;
  }
  const authentication = new AuthenticationChain(authenticators, config.http.realm || DEFAULT_REALM);
  const authorizer = new AccessControlAuthorizer(accessControlOf(config), { authenticationConfigured: authentication.configured });
  return {
    authentication,
    authorizer,
    failDelayMs: (auth?.failDelay ?? 0) * 1000,
    close: () => authentication.close(),
  };
}

/**
 * Whether every TLS client must present a certificate the CA signed (zot's rule): yes, unless
 * another way in exists, a method reading the Authorization header or an anonymousPolicy.
 */
export function clientCertificateRequired(config: Config): boolean {
  const auth = config.http.auth;
  if (auth?.htpasswd !== undefined || auth?.ldap !== undefined || auth?.bearer !== undefined) return false;
  const section = accessControlOf(config);
  return !(section !== undefined && repositoryPolicies(section).some(([, policy]) => (policy.anonymousPolicy?.length ?? 0) > 0));
}
