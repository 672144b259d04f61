// The user name and password of an `Authorization: Basic …` header (RFC 7617), for the methods
// that check a password (htpasswd, LDAP). Anything else in the header is not Basic credentials.
import type { IncomingMessage } from 'node:http';

export interface BasicCredentials {
  readonly username: string;
  readonly password: string;
}

/** The request's Basic credentials; undefined when it sends none or another scheme. */
export function basicCredentials(request: IncomingMessage): BasicCredentials | undefined {
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  const match = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (match === null) return undefined;
  const decoded = Buffer.from(match[1] ?? '', 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
