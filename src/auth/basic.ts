// HTTP Basic credentials (RFC 7617) from a request's Authorization header, shared by the methods
// that take a user name and password (htpasswd, LDAP).
import type { IncomingMessage } from 'node:http';

export interface BasicCredentials {
  user: string;
  password: string;
}

/**
 * The request's Authorization header, or undefined when it has none. `Basic Og==` (an empty user
 * and password, which some clients send before they know the realm) counts as none, as in zot.
 */
export function authorizationHeader(request: IncomingMessage): string | undefined {
  const value = request.headers.authorization;
  if (value === undefined || value.trim() === '') return undefined;
  if (value.trim().toLowerCase() === 'basic og==') return undefined;
  return value;
}

/**
 * The Basic credentials of the request: undefined when it carries no Basic header (another
 * scheme, or none), 'malformed' when the header says Basic but does not hold `user:password`.
 */
export function basicCredentials(request: IncomingMessage): BasicCredentials | 'malformed' | undefined {
  const header = authorizationHeader(request);
  if (header === undefined) return undefined;
  const match = /^\s*basic\s+(\S+)\s*$/i.exec(header);
  if (match === null) return /^\s*basic(\s|$)/i.test(header) ? 'malformed' : undefined;
  const encoded = match[1] ?? '';
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) return 'malformed';
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return 'malformed';
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
