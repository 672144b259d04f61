// The bearer authenticator on its own: tokens from the test token server (RS256 and ES256) and
// tokens crafted to be expired, early, for another service, forged, or signed with HS256 using the
// public key; the access claim as tokenAccess; the challenge's scope.
import assert from 'node:assert/strict';
import { generateKeyPairSync, createPublicKey } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import jwt from 'jsonwebtoken';
import { BearerAuthenticator, algorithmsFor, scopeText } from '../../src/auth/bearer.js';
import { BearerKeyError, bearerPublicKey, readBearerPublicKey } from '../../src/auth/bearer-key.js';
import { CATALOG_ACCESS_KEY } from '../../src/auth/types.js';
import { startAuthProbe, type AuthProbe } from '../helpers/auth-probe.js';
import { makeTempDir } from '../helpers/registry.js';
import { startTokenServer, type TokenServer } from '../helpers/token-server.js';

const SERVICE = 'zot-ts-test';

async function fetchToken(server: TokenServer, scopes: string[]): Promise<string> {
  const url = new URL(server.realm);
  url.searchParams.set('service', SERVICE);
  for (const scope of scopes) url.searchParams.append('scope', scope);
  const body = (await (await fetch(url)).json()) as { token: string };
  return body.token;
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

for (const keyType of ['rsa', 'ec'] as const) {
  describe(`bearer authenticator (${keyType} key)`, () => {
    let server: TokenServer;
    let probe: AuthProbe;
    let authenticator: BearerAuthenticator;

    before(async () => {
      server = await startTokenServer({ service: SERVICE, keyType });
      authenticator = new BearerAuthenticator({
        config: { realm: server.realm, service: SERVICE, cert: server.certFile },
        publicKey: readBearerPublicKey(server.certFile),
      });
      probe = await startAuthProbe(authenticator);
    });

    after(async () => {
      await probe?.close();
      await server?.close();
    });

    it('accepts a token from the token server and turns its access claim into tokenAccess', async () => {
      const token = await fetchToken(server, ['repository:team/app:pull,push', 'repository:other:pull', 'registry:catalog:*']);
      const outcome = await probe.ask(bearer(token));
      assert.ok(outcome.kind === 'identity', JSON.stringify(outcome));
      assert.equal(outcome.identity.method, 'bearer');
      assert.equal(outcome.identity.name, 'anonymous', 'a token without sub');
      assert.deepEqual(outcome.identity.tokenAccess, { 'team/app': ['pull', 'push'], other: ['pull'], [CATALOG_ACCESS_KEY]: ['*'] });
    });

    it('names the identity after the token subject', async () => {
      const outcome = await probe.ask(bearer(server.sign({ sub: 'ci-bot', access: [] })));
      assert.ok(outcome.kind === 'identity');
      assert.equal(outcome.identity.name, 'ci-bot');
      assert.deepEqual(outcome.identity.tokenAccess, {});
    });

    it('refuses expired, not-yet-valid, other-service, forged and malformed tokens', async () => {
      const access = [{ type: 'repository', name: 'a', actions: ['pull'] }];
      assert.deepEqual(await probe.ask(bearer(server.sign({ access }, { expiresIn: -3600 }))), {
        kind: 'failed',
        reason: 'token expired',
      });
      assert.deepEqual(await probe.ask(bearer(server.sign({ access }, { notBefore: 3600 }))), { kind: 'failed', reason: 'token not yet valid' });
      assert.deepEqual(await probe.ask(bearer(server.sign({ access }, { audience: 'another-registry' }))), {
        kind: 'failed',
        reason: 'token is for another service',
      });
      assert.deepEqual(await probe.ask(bearer(jwt.sign({ access }, 'x', { algorithm: 'none' } as jwt.SignOptions))), {
        kind: 'failed',
        reason: 'malformed token',
      });
      // Signed by a key the registry does not know.
      const other = keyType === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
      const forged = jwt.sign({ access }, other.privateKey, { algorithm: server.algorithm, audience: SERVICE, expiresIn: 60 });
      assert.deepEqual(await probe.ask(bearer(forged)), { kind: 'failed', reason: 'token signature does not verify' });
      // The public key used as an HMAC secret: the algorithm is not one the key allows.
      const publicPem = readBearerPublicKey(server.certFile).export({ type: 'spki', format: 'pem' }).toString();
      const confused = jwt.sign({ access }, publicPem, { algorithm: 'HS256', audience: SERVICE, expiresIn: 60 });
      assert.deepEqual(await probe.ask(bearer(confused)), { kind: 'failed', reason: 'token algorithm not allowed for the key' });
      // A valid token with one byte of its payload changed.
      const valid = server.sign({ access });
      const [head, payload, signature] = valid.split('.');
      const tampered = `${head}.${Buffer.from(JSON.stringify({ access: [{ type: 'repository', name: '*', actions: ['*'] }], aud: SERVICE })).toString('base64url')}.${signature}`;
      assert.notEqual(payload, tampered.split('.')[1]);
      assert.deepEqual(await probe.ask(bearer(tampered)), { kind: 'failed', reason: 'token signature does not verify' });
      assert.deepEqual(await probe.ask(bearer('not-a-jwt')), { kind: 'failed', reason: 'malformed token' });
    });

    it('treats a request without a bearer token as anonymous', async () => {
      assert.deepEqual(await probe.ask(), { kind: 'anonymous' });
      assert.deepEqual(await probe.ask({ authorization: 'Basic YWxpY2U6cHc=' }), { kind: 'anonymous' });
    });

    it('drops access entries past their own exp and entries of the wrong shape', async () => {
      const now = Math.floor(Date.now() / 1000);
      const token = server.sign({
        access: [
          { type: 'repository', name: 'old', actions: ['pull'], exp: now - 10 },
          { type: 'repository', name: 'fresh', actions: ['pull'], exp: now + 600 },
          { type: 'repository', name: 'registry:catalog', actions: ['*'] },
          { type: 'repository', name: 'bad', actions: 'pull' },
          { type: 'registry', name: 'catalog', actions: ['pull'] },
        ],
      });
      const outcome = await probe.ask(bearer(token));
      assert.ok(outcome.kind === 'identity');
      assert.deepEqual(outcome.identity.tokenAccess, { fresh: ['pull'] });
    });
  });
}

describe('bearer challenge and key', () => {
  const authenticator = new BearerAuthenticator({
    config: { realm: 'https://auth.example/token', service: 'registry.example', cert: 'unused' },
    publicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
  });

  it('names realm, service and the scope of what was asked', () => {
    assert.equal(authenticator.challenge(undefined), 'Bearer realm="https://auth.example/token",service="registry.example"');
    assert.equal(
      authenticator.challenge({ repo: 'team/app', actions: ['create'] }),
      'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:team/app:pull,push"',
    );
    assert.equal(scopeText({ repo: 'a', actions: ['read'] }), 'repository:a:pull');
    assert.equal(scopeText({ repo: 'a', actions: ['update'] }), 'repository:a:pull,push');
    assert.equal(scopeText({ repo: 'a', actions: ['delete'] }), 'repository:a:delete');
    assert.equal(scopeText({ actions: ['read'], catalog: true }), 'registry:catalog:*');
  });

  it('reads a certificate or a public key, and allows only the algorithms of that key', () => {
    const dir = makeTempDir();
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const file = path.join(dir, 'key.pem');
    fs.writeFileSync(file, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
    assert.deepEqual(algorithmsFor(readBearerPublicKey(file)), ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']);
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey;
    assert.deepEqual(algorithmsFor(createPublicKey(p384.export({ type: 'spki', format: 'pem' }))), ['ES384']);
    assert.throws(() => bearerPublicKey('hello'), BearerKeyError);
    assert.throws(() => bearerPublicKey('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), BearerKeyError);
    const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    assert.throws(() => new BearerAuthenticator({ config: { realm: 'r', service: 's', cert: 'c' }, publicKey: bearerPublicKey(ed) }), BearerKeyError);
  });
});
