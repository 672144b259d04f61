// The chain of configured authenticators, asked in zot's order: LDAP, then htpasswd (the seed
// document: "LDAP authentication is given preference"), bearer tokens, then the client
// certificate. The first identity wins; failed credentials are reported only when no method
// accepted the request; an Authorization header that no method understands is failed
// credentials too (as in zot), once any method that reads that header is configured.
import type { IncomingMessage } from 'node:http';
import { authorizationHeader } from './basic.js';
import type { AccessScope, AuthOutcome, Authenticator } from './types.js';

export const DEFAULT_REALM = 'Authorization Required';

/** What the HTTP hook asks of authentication. */
export interface Authentication {
  /** Whether any method is configured: without one, every request is anonymous. */
  readonly configured: boolean;
  authenticate(request: IncomingMessage): Promise<AuthOutcome>;
  /** The WWW-Authenticate value of a 401. */
  challenge(scope: AccessScope | undefined): string;
  close(): Promise<void>;
}

export class AuthenticationChain implements Authentication {
  private readonly readsAuthorizationHeader: boolean;
  private readonly basicChallenge: string;

  constructor(
    private readonly authenticators: readonly Authenticator[],
    realm: string = DEFAULT_REALM,
  ) {
    this.readsAuthorizationHeader = authenticators.some((a) => a.method !== 'mtls');
    this.basicChallenge = `Basic realm=${JSON.stringify(realm)}`;
  }

  get configured(): boolean {
    return this.authenticators.length > 0;
  }

  async authenticate(request: IncomingMessage): Promise<AuthOutcome> {
    let failure: AuthOutcome | undefined;
    for (const authenticator of this.authenticators) {
      const outcome = await authenticator.authenticate(request);
      if (outcome.kind === 'identity') return outcome;
      if (outcome.kind === 'failed') failure ??= outcome;
    }
    if (failure !== undefined) return failure;
    if (this.readsAuthorizationHeader && authorizationHeader(request) !== undefined) {
      return { kind: 'failed', reason: 'no configured method accepts the authorization header' };
    }
    return { kind: 'anonymous' };
  }

  challenge(scope: AccessScope | undefined): string {
    for (const authenticator of this.authenticators) {
      if (authenticator.challenge) return authenticator.challenge(scope);
    }
    return this.basicChallenge;
  }

  async close(): Promise<void> {
    await Promise.all(this.authenticators.map((authenticator) => authenticator.close?.()));
  }
}
