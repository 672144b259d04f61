// LDAP authentication (`http.auth.ldap`), as zot does it: search the user under baseDN by
// userAttribute (one level, or the whole subtree with subtreeSearch) as the bindDN account, then
// bind as the entry found with the request's password. The user's groups come from
// userGroupAttribute (such as memberOf), values as the directory holds them.
//
// Transport, as in zot: `insecure` is plain LDAP; otherwise StartTLS when `startTLS` is set, and
// LDAPS when it is not. `skipVerify` turns certificate checks off; `CACert` names the CA bundle
// trusted instead of the system's.
//
// Verified credentials are cached for a short time (credential-cache.ts, as htpasswd does), so a
// user's requests do not each cost a round trip; failures are asked again every time.
//
// Every attempt uses its own connection (bind changes a connection's identity, so concurrent
// attempts cannot share one) with connect and operation timeouts, so a directory that is down or
// hung costs a request a bounded wait and a 401, never a 500. An outage is logged once when it
// starts and once when the directory answers again.
import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { ConnectionOptions } from 'node:tls';
import { Client, Filter, InvalidCredentialsError, ResultCodeError } from 'ldapts';
import type { Logger } from 'pino';
import type { LdapConfig } from '../config/types.js';
import { basicCredentials, type BasicCredentials } from './basic.js';
import { CredentialCache } from './credential-cache.js';
import { readLdapCredentials, type LdapBindCredentials } from './ldap-credentials.js';
import type { AuthOutcome, Authenticator } from './types.js';

export interface LdapTimeouts {
  /** Waiting for the TCP (and TLS) connection. */
  connectMs: number;
  /** Waiting for each LDAP operation's answer (bind, StartTLS, search). */
  operationMs: number;
}

export const DEFAULT_LDAP_TIMEOUTS: LdapTimeouts = { connectMs: 5_000, operationMs: 5_000 };

/** Attempts in flight at once; more wait their turn, so a burst cannot flood the directory. */
const MAX_CONCURRENT_ATTEMPTS = 16;

export interface LdapAuthenticatorOptions {
  config: LdapConfig;
  logger: Logger;
  /** The CA bundle named by `CACert`, read by the caller. */
  caCert?: Buffer;
  timeouts?: LdapTimeouts;
  /** How long verified credentials are trusted without asking the directory (credential-cache.ts's default). */
  cacheTtlMs?: number;
}

type AttemptResult = { kind: 'identity'; groups: string[] } | { kind: 'rejected'; reason: string };

/** The directory could not be asked (down, hung, TLS refused, search account refused). */
class DirectoryUnavailable extends Error {}

export class LdapAuthenticator implements Authenticator {
  readonly method = 'ldap' as const;
  private readonly config: LdapConfig;
  private readonly logger: Logger;
  private readonly url: string;
  private readonly tlsOptions: ConnectionOptions | undefined;
  private readonly timeouts: LdapTimeouts;
  private readonly credentials: () => LdapBindCredentials | undefined;
  private readonly cache: CredentialCache<readonly string[]>;
  private readonly failureReasons = new Map<string, string>();
  private available = true;
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(options: LdapAuthenticatorOptions) {
    const { config } = options;
    this.config = config;
    this.logger = options.logger.child({ component: 'ldap' });
    this.timeouts = options.timeouts ?? DEFAULT_LDAP_TIMEOUTS;
    this.cache = new CredentialCache(options.cacheTtlMs !== undefined ? { ttlMs: options.cacheTtlMs } : {});
    const secure = config.insecure !== true && config.startTLS !== true;
    const port = config.port ?? (secure ? 636 : 389);
    const host = isIP(config.address) === 6 ? `[${config.address}]` : config.address;
    this.url = `${secure ? 'ldaps' : 'ldap'}://${host}:${port}`;
    this.tlsOptions =
      config.insecure === true
        ? undefined
        : {
            rejectUnauthorized: config.skipVerify !== true,
            ...(options.caCert ? { ca: options.caCert } : {}),
            // SNI and the name check take a host name; an IP address is checked against the IP SANs.
            ...(isIP(config.address) === 0 ? { servername: config.address } : {}),
          };
    this.credentials = bindCredentialsOf(config);
  }

  async authenticate(request: IncomingMessage): Promise<AuthOutcome> {
    const presented = basicCredentials(request);
    if (presented === undefined) return { kind: 'anonymous' };
    if (presented === 'malformed') return { kind: 'failed', reason: 'malformed basic credentials' };
    const { user } = presented;
    // An empty password is an unauthenticated bind, which servers accept (RFC 4513 5.1.2).
    if (presented.password === '') return { kind: 'failed', reason: 'empty password', user };
    const groups = await this.cache.verify(user, presented.password, async () => {
      const result = await this.withTurn(() => this.attempt(presented));
      if (result?.kind === 'identity') return result.groups;
      // Concurrent requests with the same credentials share this check, so the reason is kept
      // where each of them can read it.
      if (this.failureReasons.size >= 10_000) this.failureReasons.clear();
      this.failureReasons.set(user, result === undefined ? 'ldap server busy' : result.reason);
      return undefined;
    });
    if (groups === undefined) return { kind: 'failed', reason: this.failureReasons.get(user) ?? 'invalid credentials', user };
    return { kind: 'identity', identity: { name: user, method: 'ldap', groups } };
  }

  async close(): Promise<void> {
    // Nothing stays open between attempts.
  }

  private async attempt(presented: BasicCredentials): Promise<AttemptResult> {
    const client = new Client({
      url: this.url,
      connectTimeout: this.timeouts.connectMs,
      timeout: this.timeouts.operationMs,
      ...(this.tlsOptions && this.url.startsWith('ldaps:') ? { tlsOptions: this.tlsOptions } : {}),
    });
    try {
      const entry = await this.findUser(client, presented.user);
      if (entry === undefined) {
        this.markAvailable();
        return { kind: 'rejected', reason: 'unknown user' };
      }
      try {
        await client.bind(entry.dn, presented.password);
      } catch (err) {
        if (err instanceof InvalidCredentialsError) {
          this.markAvailable();
          return { kind: 'rejected', reason: 'invalid credentials' };
        }
        throw err;
      }
      this.markAvailable();
      return { kind: 'identity', groups: entry.groups };
    } catch (err) {
      this.markUnavailable(err);
      return { kind: 'rejected', reason: 'ldap server unavailable' };
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }

  /** Connects as the search account and looks the user up; undefined unless exactly one entry matches. */
  private async findUser(client: Client, username: string): Promise<{ dn: string; groups: string[] } | undefined> {
    if (this.config.startTLS === true && this.config.insecure !== true) await client.startTLS(this.tlsOptions);
    const account = this.credentials();
    if (account !== undefined) {
      try {
        await client.bind(account.bindDN, account.bindPassword);
      } catch (err) {
        // The search account itself was refused: the directory cannot be used until that is fixed.
        if (err instanceof InvalidCredentialsError) throw new DirectoryUnavailable('search account refused');
        throw err;
      }
    }
    const groupAttribute = this.config.userGroupAttribute;
    const { searchEntries } = await client.search(this.config.baseDN, {
      scope: this.config.subtreeSearch === true ? 'sub' : 'one',
      filter: userFilter(this.config, username),
      attributes: groupAttribute ? [groupAttribute] : ['1.1'],
      // Two are enough to tell an ambiguous name from a unique one.
      sizeLimit: 2,
    });
    if (searchEntries.length !== 1) {
      if (searchEntries.length > 1) this.logger.warn({ username }, 'more than one ldap entry matches the user, refusing');
      return undefined;
    }
    const entry = searchEntries[0]!;
    return { dn: entry.dn, groups: groupAttribute ? attributeValues(entry, groupAttribute) : [] };
  }

  private markAvailable(): void {
    if (this.available) return;
    this.available = true;
    this.logger.info({ url: this.url }, 'ldap server reachable again');
  }

  private markUnavailable(err: unknown): void {
    if (!this.available) return;
    this.available = false;
    this.logger.error({ url: this.url, error: describe(err) }, 'failed to reach the ldap server, refusing ldap users until it answers');
  }

  /** Runs the attempt when fewer than MAX_CONCURRENT_ATTEMPTS are in flight; undefined if no turn came in time. */
  private async withTurn<T>(work: () => Promise<T>): Promise<T | undefined> {
    if (this.running >= MAX_CONCURRENT_ATTEMPTS) {
      const gotTurn = await new Promise<boolean>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          resolve(true);
        };
        // Waiting is bounded too: a hung directory must not queue requests behind it for ever.
        const timer = setTimeout(() => {
          this.waiting.splice(this.waiting.indexOf(wake), 1);
          resolve(false);
        }, this.timeouts.operationMs);
        this.waiting.push(wake);
      });
      if (!gotTurn) return undefined;
      // The attempt that finished handed its slot over: `running` already counts this one.
    } else {
      this.running += 1;
    }
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running -= 1;
    }
  }
}

/** `(&(userAttribute=NAME)userFilter)`, the name escaped so it cannot change the filter. */
export function userFilter(config: Pick<LdapConfig, 'userAttribute' | 'userFilter'>, username: string): string {
  const byName = `(${config.userAttribute}=${Filter.escape(username)})`;
  const extra = config.userFilter?.trim();
  if (!extra) return byName;
  return `(&${byName}${extra.startsWith('(') ? extra : `(${extra})`})`;
}

/**
 * The search account: from credentialsFile (re-read when it changes, so a rotated password is
 * picked up without a restart), else bindDN/bindPassword inline, else none (anonymous search).
 */
function bindCredentialsOf(config: LdapConfig): () => LdapBindCredentials | undefined {
  const file = config.credentialsFile;
  if (file !== undefined) {
    let current = readLdapCredentials(file);
    let lastChecked = Date.now();
    return () => {
      // A stat per attempt at most once a second is cheap next to an LDAP round trip.
      if (Date.now() - lastChecked > 1_000) {
        lastChecked = Date.now();
        try {
          current = readLdapCredentials(file);
        } catch {
          // Keep the last good credentials; verify reports a broken file.
        }
      }
      return current;
    };
  }
  if (config.bindDN !== undefined && config.bindDN !== '') {
    const account = { bindDN: config.bindDN, bindPassword: config.bindPassword ?? '' };
    return () => account;
  }
  return () => undefined;
}

function attributeValues(entry: Record<string, unknown>, attribute: string): string[] {
  // Attribute names are case-insensitive; ldapts keys them as the server spelt them.
  const key = Object.keys(entry).find((name) => name.toLowerCase() === attribute.toLowerCase());
  const value = key === undefined ? undefined : entry[key];
  const values = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return values.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v))).filter((v) => v !== '');
}

function describe(err: unknown): string {
  if (err instanceof ResultCodeError) return `ldap result ${err.code}: ${err.message}`;
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.message;
  return String(err);
}
