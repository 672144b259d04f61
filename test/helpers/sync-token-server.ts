// A minimal token server for the sync tests, after the distribution token specification: GET
// /token?service=S&scope=…(repeated) with Basic credentials answers {"token", "access_token",
// "expires_in", "issued_at"}: an RS256 JWT whose header carries its signing certificate (x5c) and
// whose `access` claim grants the scopes asked for. The distribution registry (`auth: token:`)
// verifies it against `rootcertbundle`. Named apart from the auth tests' token server.
import { createSign, randomUUID, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { makeSigningCertificate } from './sync-certs.js';
import { makeTempDir } from './registry.js';

export interface SyncTokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** The certificate the registry trusts tokens by (its rootcertbundle). */
  certFile: string;
  /** Every token request: the scopes asked and who asked ('' for no credentials, '!' for wrong ones). */
  requests: { scopes: string[]; subject: string }[];
  close(): Promise<void>;
}

const base64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

export async function startSyncTokenServer(users: Record<string, string>, service = 'zot-ts-sync-test'): Promise<SyncTokenServer> {
  const dir = makeTempDir('zot-ts-sync-token-');
  const { cert, key } = makeSigningCertificate(dir);
  const privateKey = fs.readFileSync(key, 'utf8');
  const certDer = new X509Certificate(fs.readFileSync(cert)).raw;
  const issuer = 'zot-ts-sync-test-issuer';
  const requests: SyncTokenServer['requests'] = [];

  const sign = (subject: string, scopes: string[]): string => {
    const now = Math.floor(Date.now() / 1000);
    const access = scopes.flatMap((scope) => {
      const first = scope.indexOf(':');
      const last = scope.lastIndexOf(':');
      if (first <= 0 || last === first) return [];
      return [{ type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',') }];
    });
    const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer.toString('base64')] };
    const claims = { iss: issuer, sub: subject, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access };
    const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    const signature = createSign('RSA-SHA256').update(input).sign(privateKey);
    return `${input}.${base64url(signature)}`;
  };

  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://token.invalid');
    const scopes = url.searchParams.getAll('scope');
    let subject = '';
    const authorization = request.headers.authorization;
    if (authorization !== undefined) {
      const decoded = Buffer.from(authorization.replace(/^basic\s+/i, ''), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const user = decoded.slice(0, colon);
      subject = colon > 0 && users[user] === decoded.slice(colon + 1) ? user : '!';
    }
    requests.push({ scopes, subject });
    if (url.pathname !== '/token' || subject === '' || subject === '!') {
      response.writeHead(401, { 'Content-Type': 'application/json' });
      response.end('{"details":"credentials required"}');
      return;
    }
    const token = sign(subject, scopes);
    response.writeHead(200, { 'Content-Type': 'application/json' });
    response.end(JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certFile: cert,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
