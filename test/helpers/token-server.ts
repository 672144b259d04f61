// A token server for the bearer tests (and the sync tests), written here after the distribution
// token specification: GET /token?service=S&scope=repository:NAME:pull,push&scope=… answers
// {"token", "access_token", "expires_in", "issued_at"}, a JWT signed with a key pair made at test
// time, whose `access` claim holds what the policy grants of the scopes asked for. Basic
// credentials, when sent, name the subject (checked against `users`); without them the subject is
// empty (an anonymous token). The registry verifies the tokens with `certFile`.
import * as http from 'node:http';
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import jwt from 'jsonwebtoken';
import { makeSelfSigned } from './certs.js';
import { makeTempDir } from './registry.js';

export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenServerOptions {
  /** The service name tokens are issued for (their audience); the registry's `service`. */
  service: string;
  keyType?: 'rsa' | 'ec';
  /** user → password; a request with other credentials is refused 401. */
  users?: Record<string, string>;
  /** The actions of a requested scope that `subject` ('' when anonymous) is granted; default: all asked. */
  grant?(subject: string, asked: AccessEntry): string[];
  /** Token lifetime in seconds (default 300). */
  expiresIn?: number;
}

export interface TokenServer {
  /** The realm: the token endpoint's URL. */
  realm: string;
  /** The PEM certificate whose public key verifies the tokens (the registry's `cert`). */
  certFile: string;
  /** The signing key, for tests that craft tokens by hand. */
  privateKey: string;
  algorithm: jwt.Algorithm;
  /** Every request the server answered: query and subject, for assertions on the flow. */
  requests: { scopes: string[]; service: string | null; subject: string }[];
  /** Signs a token with the server's key: the claims given, audience and expiry as asked. */
  sign(claims: Record<string, unknown>, options?: jwt.SignOptions): string;
  close(): Promise<void>;
}

export function parseScope(scope: string): AccessEntry | undefined {
  // repository:NAME:ACTIONS, where NAME may hold ':' only before a port (registry:catalog:*).
  const last = scope.lastIndexOf(':');
  const first = scope.indexOf(':');
  if (first <= 0 || last === first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter(Boolean) };
}

export async function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  const dir = makeTempDir('zot-ts-token-');
  const keyType = options.keyType ?? 'rsa';
  const { cert, key } = makeSelfSigned(dir, 'token-signer', { subject: '/CN=token-signer', keyType });
  const privateKey = fs.readFileSync(key, 'utf8');
  const algorithm: jwt.Algorithm = keyType === 'ec' ? 'ES256' : 'RS256';
  const requests: TokenServer['requests'] = [];
  const sign = (claims: Record<string, unknown>, signOptions: jwt.SignOptions = {}): string =>
    jwt.sign(claims, privateKey, { algorithm, audience: options.service, expiresIn: options.expiresIn ?? 300, ...signOptions });

  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://token.invalid');
    if (url.pathname !== '/token') {
      response.statusCode = 404;
      response.end();
      return;
    }
    let subject = '';
    const header = request.headers.authorization;
    if (header !== undefined) {
      const decoded = Buffer.from(header.replace(/^basic\s+/i, ''), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const user = decoded.slice(0, colon);
      if (colon <= 0 || options.users?.[user] === undefined || options.users[user] !== decoded.slice(colon + 1)) {
        response.statusCode = 401;
        response.end('{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}');
        return;
      }
      subject = user;
    }
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
    requests.push({ scopes, service: url.searchParams.get('service'), subject });
    const access = scopes
      .map(parseScope)
      .filter((entry): entry is AccessEntry => entry !== undefined)
      .map((asked) => ({ ...asked, actions: options.grant ? options.grant(subject, asked) : asked.actions }))
      .filter((entry) => entry.actions.length > 0);
    const token = sign({ access, ...(subject ? { sub: subject } : {}) }, { issuer: 'zot-ts-test-token-server' });
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ token, access_token: token, expires_in: options.expiresIn ?? 300, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    certFile: path.resolve(cert),
    privateKey,
    algorithm,
    requests,
    sign,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
