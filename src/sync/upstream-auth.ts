// Authentication to upstream registries: zot's credentials file (host → username and password),
// and the two schemes a registry asks for in its 401's WWW-Authenticate: Basic (the credentials
// on every request) and Bearer (the distribution token flow: a token for the scope from the
// realm, sent with the credentials when there are any, then the request again with the token).
// What an upstream asked for once is remembered, so later requests carry it from the start.
import * as fs from 'node:fs';

export interface Credentials {
  username: string;
  password: string;
}

/** zot's credentialsFile: `{"registry:5000": {"username": "...", "password": "..."}}`. */
export type CredentialsFile = Record<string, Credentials>;

export function readCredentialsFile(file: string): CredentialsFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`failed to read the sync credentials file ${file}: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`the sync credentials file ${file} must map registry hosts to {"username", "password"}`);
  }
  const credentials: CredentialsFile = {};
  for (const [host, entry] of Object.entries(parsed as Record<string, unknown>)) {
    const { username, password } = (entry ?? {}) as Record<string, unknown>;
    if (typeof username !== 'string' || typeof password !== 'string') {
      throw new Error(`the sync credentials file ${file}: ${host} needs a string username and password`);
    }
    credentials[host] = { username, password };
  }
  return credentials;
}

/** The credentials for a URL: by host and port as zot keys them, else by host name alone. */
export function credentialsFor(file: CredentialsFile, url: URL): Credentials | undefined {
  return file[url.host] ?? file[url.hostname];
}

export interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`; other schemes: undefined. */
export function parseChallenge(header: string | string[] | undefined): Challenge | undefined {
  const values = Array.isArray(header) ? header : header === undefined ? [] : [header];
  for (const value of values) {
    const match = /^\s*(\w+)\s*(.*)$/s.exec(value);
    const scheme = match?.[1]?.toLowerCase();
    if (scheme !== 'basic' && scheme !== 'bearer') continue;
    const params: Record<string, string> = {};
    const param = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
    for (const found of (match?.[2] ?? '').matchAll(param)) {
      params[(found[1] ?? '').toLowerCase()] = found[2] !== undefined ? found[2].replace(/\\(.)/g, '$1') : (found[3] ?? '');
    }
    return { scheme, params };
  }
  return undefined;
}

export function basicAuthorization(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

export interface Token {
  token: string;
  /** Lifetime in seconds, as the token server said (the spec's default: 60). */
  expiresIn: number;
}

/** Asks a token server for a token: GET realm?service=&scope= with the credentials, if any. */
export type TokenFetcher = (url: URL, authorization: string | undefined) => Promise<Token>;

type OriginScheme = { kind: 'basic' } | { kind: 'bearer'; realm: string; service: string | undefined };

/** Tokens are renewed this long before they expire, so none expires in flight. */
const TOKEN_MARGIN_MS = 10_000;

export class UpstreamAuth {
  /** What each upstream origin asked for in its last challenge. */
  private readonly schemes = new Map<string, OriginScheme>();
  private readonly tokens = new Map<string, { token: string; expiresAt: number }>();
  /** Token requests in flight, so concurrent requests of one scope share one. */
  private readonly pending = new Map<string, Promise<string>>();

  constructor(
    private readonly credentials: CredentialsFile,
    private readonly fetchToken: TokenFetcher,
  ) {}

  /** The Authorization header to send to `url` for `scope` before any challenge, if one is known. */
  async authorization(url: URL, scope: string): Promise<string | undefined> {
    const scheme = this.schemes.get(url.origin);
    const credentials = credentialsFor(this.credentials, url);
    if (scheme?.kind === 'basic') return credentials ? basicAuthorization(credentials) : undefined;
    if (scheme?.kind === 'bearer') return `Bearer ${await this.token(url, scheme, scope)}`;
    return undefined;
  }

  /**
   * Learns from a 401: returns true when the request is worth sending again (a scheme this client
   * can answer, with what it needs), after which `authorization` gives the header to send.
   */
  challenged(url: URL, header: string | string[] | undefined, scope: string, sentAuthorization: string | undefined): boolean {
    const challenge = parseChallenge(header);
    if (!challenge) return false;
    const credentials = credentialsFor(this.credentials, url);
    if (challenge.scheme === 'basic') {
      // Credentials sent and refused: sending them again changes nothing.
      if (!credentials || sentAuthorization?.startsWith('Basic ')) return false;
      this.schemes.set(url.origin, { kind: 'basic' });
      return true;
    }
    const realm = challenge.params['realm'];
    if (realm === undefined) return false;
    const scheme: OriginScheme = { kind: 'bearer', realm, service: challenge.params['service'] };
    // The token is asked for this client's scope (the one distribution's challenges name too).
    const key = tokenKey(scheme, scope);
    // A token for this scope was sent and refused: drop it and ask for a fresh one once.
    const stale = this.tokens.get(key);
    if (stale && sentAuthorization === `Bearer ${stale.token}`) {
      this.tokens.delete(key);
    } else if (sentAuthorization?.startsWith('Bearer ')) {
      return false;
    }
    this.schemes.set(url.origin, scheme);
    return true;
  }

  private token(url: URL, scheme: { realm: string; service: string | undefined }, scope: string): Promise<string> {
    const key = tokenKey(scheme, scope);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return Promise.resolve(cached.token);
    const inFlight = this.pending.get(key);
    if (inFlight) return inFlight;
    const realm = new URL(scheme.realm);
    if (scheme.service !== undefined) realm.searchParams.set('service', scheme.service);
    if (scope !== '') realm.searchParams.set('scope', scope);
    const credentials = credentialsFor(this.credentials, url);
    const request = this.fetchToken(realm, credentials ? basicAuthorization(credentials) : undefined)
      .then((token) => {
        const lifetimeMs = Math.max(token.expiresIn * 1000 - TOKEN_MARGIN_MS, 1000);
        this.tokens.set(key, { token: token.token, expiresAt: Date.now() + lifetimeMs });
        return token.token;
      })
      .finally(() => this.pending.delete(key));
    this.pending.set(key, request);
    return request;
  }
}

function tokenKey(scheme: { realm: string; service: string | undefined }, scope: string): string {
  return `${scheme.realm}\u0000${scheme.service ?? ''}\u0000${scope}`;
}

/** Reads a token server's answer: `token` or `access_token`, and `expires_in`. */
export function parseTokenAnswer(body: Buffer): Token {
  const parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  const token = typeof parsed['token'] === 'string' ? parsed['token'] : parsed['access_token'];
  if (typeof token !== 'string' || token === '') throw new Error('the token server answered no token');
  const expiresIn = typeof parsed['expires_in'] === 'number' && parsed['expires_in'] > 0 ? parsed['expires_in'] : 60;
  return { token, expiresIn };
}
