// Bearer tokens (`http.auth.bearer`), the token flow of the distribution token specification: an
// unauthenticated request is answered 401 with
//   WWW-Authenticate: Bearer realm="<token server>",service="<service>",scope="repository:NAME:pull,push"
// the client fetches a JWT for that scope from the realm and sends it back as `Authorization:
// Bearer <jwt>`. The token is verified against the public key of the certificate in `cert`
// (signature with an algorithm that key allows, exp, nbf, audience = service), and its `access`
// claim is what it grants: Identity.tokenAccess, honoured by the authorizer instead of accessControl.
import type { KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import jwt from 'jsonwebtoken';
import type { BearerConfig } from '../config/types.js';
import { BearerKeyError } from './bearer-key.js';
import { CATALOG_ACCESS_KEY, type AccessScope, type AuthOutcome, type Authenticator, type RepositoryAction } from './types.js';

/** Tolerated clock difference between the token server and the registry, for exp and nbf. */
const CLOCK_TOLERANCE_SECONDS = 10;

/** The token scope word that asks for each registry action. */
const SCOPE_WORD: Readonly<Record<RepositoryAction, string>> = { read: 'pull', create: 'push', update: 'push', delete: 'delete' };

/**
 * The signing algorithms a key can verify. Never HS* (the public key would become an HMAC secret
 * anyone can use) and never `none`.
 */
export function algorithmsFor(key: KeyObject): jwt.Algorithm[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1') return ['ES256'];
      if (curve === 'secp384r1') return ['ES384'];
      if (curve === 'secp521r1') return ['ES512'];
      return [];
    }
    default:
      return [];
  }
}

interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
  exp?: number;
}

export interface BearerAuthenticatorOptions {
  config: BearerConfig;
  publicKey: KeyObject;
}

export class BearerAuthenticator implements Authenticator {
  readonly method = 'bearer' as const;
  private readonly config: BearerConfig;
  private readonly key: KeyObject;
  private readonly algorithms: jwt.Algorithm[];

  constructor(options: BearerAuthenticatorOptions) {
    this.config = options.config;
    this.key = options.publicKey;
    this.algorithms = algorithmsFor(this.key);
    if (this.algorithms.length === 0) throw new BearerKeyError(`holds a ${this.key.asymmetricKeyType ?? 'unknown'} key, which no supported token algorithm uses`);
  }

  async authenticate(request: IncomingMessage): Promise<AuthOutcome> {
    const header = request.headers.authorization;
    const match = header === undefined ? null : /^\s*bearer\s+(\S+)\s*$/i.exec(header);
    if (match === null) return { kind: 'anonymous' };
    let claims: jwt.JwtPayload;
    try {
      const verified = jwt.verify(match[1] ?? '', this.key, {
        algorithms: this.algorithms,
        audience: this.config.service,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      });
      if (typeof verified === 'string') return { kind: 'failed', reason: 'token payload is not a JSON object' };
      claims = verified;
    } catch (err) {
      return { kind: 'failed', reason: rejection(err) };
    }
    const subject = typeof claims.sub === 'string' && claims.sub !== '' ? claims.sub : 'anonymous';
    return { kind: 'identity', identity: { name: subject, method: 'bearer', groups: [], tokenAccess: grantsOf(claims['access']) } };
  }

  challenge(scope: AccessScope | undefined): string {
    const params = [`realm=${quote(this.config.realm)}`, `service=${quote(this.config.service)}`];
    const asked = scope === undefined ? undefined : scopeText(scope);
    if (asked !== undefined) params.push(`scope=${quote(asked)}`);
    return `Bearer ${params.join(',')}`;
  }
}

/** `repository:NAME:pull,push` for a repository, `registry:catalog:*` for the catalog. */
export function scopeText(scope: AccessScope): string | undefined {
  if (scope.catalog) return 'registry:catalog:*';
  if (scope.repo === undefined) return undefined;
  const words = new Set(scope.actions.map((action) => SCOPE_WORD[action]));
  // A push reads too (existing blobs, the manifest it replaces): clients ask for both.
  if (words.has('push')) words.add('pull');
  const ordered = ['pull', 'push', 'delete'].filter((word) => words.has(word));
  return `repository:${scope.repo}:${ordered.join(',')}`;
}

/**
 * The `access` claim as Identity.tokenAccess: repository name → the token's words for it
 * (pull, push, delete, *), and CATALOG_ACCESS_KEY when it grants `registry:catalog:*`. Entries of
 * another shape grant nothing; an entry with its own `exp` (zot's extension) only until then.
 */
export function grantsOf(access: unknown, nowSeconds = Date.now() / 1000): Map<string, Set<string>> {
  const grants = new Map<string, Set<string>>();
  if (!Array.isArray(access)) return grants;
  for (const entry of access.filter(isAccessEntry)) {
    if (entry.exp !== undefined && entry.exp < nowSeconds) continue;
    // No repository name has a ':'; such a name must not pass for the catalog key.
    if (entry.type === 'repository' && !entry.name.includes(':')) {
      const words = grants.get(entry.name) ?? new Set<string>();
      for (const action of entry.actions) words.add(action);
      grants.set(entry.name, words);
    } else if (entry.type === 'registry' && entry.name === 'catalog' && entry.actions.includes('*')) {
      grants.set(CATALOG_ACCESS_KEY, new Set(['*']));
    }
  }
  return grants;
}

function isAccessEntry(value: unknown): value is AccessEntry {
  if (value === null || typeof value !== 'object') return false;
  const entry = value as Record<string, unknown>;
  return (
    typeof entry['type'] === 'string' &&
    typeof entry['name'] === 'string' &&
    Array.isArray(entry['actions']) &&
    entry['actions'].every((action) => typeof action === 'string') &&
    (entry['exp'] === undefined || typeof entry['exp'] === 'number')
  );
}

/** Why a token was refused, in words that never repeat the token. */
function rejection(err: unknown): string {
  if (err instanceof jwt.TokenExpiredError) return 'token expired';
  if (err instanceof jwt.NotBeforeError) return 'token not yet valid';
  if (err instanceof jwt.JsonWebTokenError) {
    if (err.message.startsWith('jwt audience invalid')) return 'token is for another service';
    if (err.message === 'invalid signature') return 'token signature does not verify';
    if (err.message === 'invalid algorithm') return 'token algorithm not allowed for the key';
    return 'malformed token';
  }
  return 'malformed token';
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}
