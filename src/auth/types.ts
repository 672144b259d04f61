// The seam between the HTTP layer and authentication/authorization. http/ calls the authenticator
// once per request (one hook) and the authorizer once per repository action; events record the
// identity that comes out of it.
//
//   request ──Authenticator──▶ Identity ──Authorizer(identity, repo, action)──▶ allow | deny
//
// Authenticators (htpasswd, LDAP, bearer tokens, client certificates) each turn the credentials
// they understand into an Identity; the chain asks them in zot's order (LDAP before htpasswd).
import type { IncomingMessage } from 'node:http';

/** How a request proved who it is. */
export type AuthMethod = 'anonymous' | 'htpasswd' | 'ldap' | 'bearer' | 'mtls';

/** zot's repository actions (accessControl); `read` covers GET/HEAD of manifests, blobs, tags, referrers. */
export type RepositoryAction = 'read' | 'create' | 'update' | 'delete';

export interface Identity {
  /** The user name, the client certificate's subject CN, the token's subject; 'anonymous' without credentials. */
  readonly name: string;
  readonly method: AuthMethod;
  /** Groups the identity source reported (LDAP's userGroupAttribute); accessControl.groups adds its own. */
  readonly groups: readonly string[];
  /**
   * Bearer tokens carry their own grants (the `access` claim): repository name → actions.
   * Undefined for every other method, whose grants come from accessControl.
   */
  readonly tokenAccess?: ReadonlyMap<string, ReadonlySet<string>>;
}

export const ANONYMOUS: Identity = Object.freeze({ name: 'anonymous', method: 'anonymous', groups: [] });

/**
 * The outcome of looking at a request's credentials:
 *   identity      the credentials were valid
 *   anonymous     the request carried none this authenticator understands
 *   failed        it carried credentials and they were wrong (failDelay applies; 401)
 */
export type AuthOutcome = { kind: 'identity'; identity: Identity } | { kind: 'anonymous' } | { kind: 'failed'; reason: string };

export interface Authenticator {
  readonly method: AuthMethod;
  /** Never throws for bad credentials (that is `failed`); an unreachable backend is `failed` too, never a 500. */
  authenticate(request: IncomingMessage): Promise<AuthOutcome>;
  /** Releases connections and file watchers at shutdown. */
  close?(): Promise<void>;
}

export interface Authorizer {
  /** Whether the identity may do `action` on the repository. */
  allows(identity: Identity, repo: string, action: RepositoryAction): boolean;
  /** Whether the identity may read /metrics (accessControl.metrics.users, when set). */
  allowsMetrics(identity: Identity): boolean;
}
