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

export const REPOSITORY_ACTIONS: readonly RepositoryAction[] = ['read', 'create', 'update', 'delete'];

/**
 * The key of Identity.tokenAccess that holds the catalog grant (the token scope
 * `registry:catalog:*`). No repository name contains ':', so it never names a repository.
 */
export const CATALOG_ACCESS_KEY = 'registry:catalog';

export interface Identity {
  /** The user name, the client certificate's subject CN, the token's subject; 'anonymous' without credentials. */
  readonly name: string;
  readonly method: AuthMethod;
  /** Groups the identity source reported (LDAP's userGroupAttribute); accessControl.groups adds its own. */
  readonly groups: readonly string[];
  /**
   * Bearer tokens carry their own grants (the `access` claim): repository name → actions, in the
   * token's words (`pull`, `push`, `delete`, `*`; zot's read/create/update/delete are read too),
   * and CATALOG_ACCESS_KEY for the catalog. Undefined for every other method, whose grants come
   * from accessControl; when present the authorizer honours it instead of accessControl.
   */
  readonly tokenAccess?: ReadonlyMap<string, ReadonlySet<string>>;
}

export const ANONYMOUS: Identity = Object.freeze({ name: 'anonymous', method: 'anonymous', groups: [] });

/**
 * The outcome of looking at a request's credentials:
 *   identity      the credentials were valid
 *   anonymous     the request carried none this authenticator understands
 *   failed        it carried credentials and they were wrong (failDelay applies; 401). `user` is
 *                 the name the credentials claimed, when they name one (for the log line only).
 */
export type AuthOutcome =
  | { kind: 'identity'; identity: Identity }
  | { kind: 'anonymous' }
  | { kind: 'failed'; reason: string; user?: string };

/** What a refused request asked for; a bearer challenge names it as the token scope. */
export interface AccessScope {
  /** The repository; absent for the catalog and the base endpoint. */
  readonly repo?: string;
  readonly actions: readonly RepositoryAction[];
  /** The request lists the catalog (`registry:catalog:*`). */
  readonly catalog?: boolean;
}

export interface Authenticator {
  readonly method: AuthMethod;
  /** Never throws for bad credentials (that is `failed`); an unreachable backend is `failed` too, never a 500. */
  authenticate(request: IncomingMessage): Promise<AuthOutcome>;
  /**
   * The WWW-Authenticate value this method answers a 401 with (bearer's names the realm, service
   * and scope). The chain uses the first authenticator that has one, else `Basic realm="…"`.
   */
  challenge?(scope: AccessScope | undefined): string;
  /** Releases connections and file watchers at shutdown. */
  close?(): Promise<void>;
}

export interface Authorizer {
  /** Whether the identity may do `action` on the repository. */
  allows(identity: Identity, repo: string, action: RepositoryAction): boolean;
  /**
   * Whether the identity may use the API at all (GET /v2/): every authenticated identity, and an
   * anonymous caller when no authentication is configured or some repository has an anonymousPolicy.
   */
  allowsEntry(identity: Identity): boolean;
  /** Whether the identity may list the catalog (which then shows only what it may read). */
  allowsCatalog(identity: Identity): boolean;
  /** Whether the identity may read /metrics (accessControl.metrics.users, when set). */
  allowsMetrics(identity: Identity): boolean;
}
