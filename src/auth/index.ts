// Builds authentication and authorization from the configuration, for the composition root:
// the chain of configured methods (in zot's order) and the accessControl authorizer.
import type { Logger } from 'pino';
import type { AccessControlConfig, Config } from '../config/types.js';
import { AccessControlAuthorizer } from './access-control.js';
import { AuthenticationChain, DEFAULT_REALM, type Authentication } from './chain.js';
import { HtpasswdAuthenticator } from './htpasswd.js';
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

/** Opens every configured method; a method that cannot start (a bad htpasswd file) throws, naming why. */
export async function openAuth(config: Config, logger: Logger): Promise<AuthSetup> {
  const auth = config.http.auth;
  const authenticators: Authenticator[] = [];
  try {
    // zot's order: LDAP first (the seed: "LDAP authentication is given preference"), then
    // htpasswd, bearer tokens, and the client certificate.
    if (auth?.htpasswd) authenticators.push(HtpasswdAuthenticator.open(auth.htpasswd.path, logger));
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
