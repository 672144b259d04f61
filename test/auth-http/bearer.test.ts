// Bearer tokens through HTTP: the 401 challenge names realm, service and the scope of the request
// (registry:catalog:* for the catalog); tokens from the test token server grant what their access
// claim says; expired, forged, other-service and out-of-scope tokens are 401 UNAUTHORIZED, never a
// 500; skopeo follows the challenge to push and pull. No token reaches the log or the audit file.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import jwt from 'jsonwebtoken';
import { readEvents } from '../../src/events/store.js';
import { createLogger } from '../../src/logging.js';
import { expectOciError } from '../helpers/http.js';
import { layoutImage, writeLayout } from '../helpers/layout.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeo, type Skopeo } from '../helpers/skopeo.js';
import { startTokenServer, type AccessEntry, type TokenServer } from '../helpers/token-server.js';

const SERVICE = 'zot-ts-bearer-test';

describe('bearer tokens through HTTP', () => {
  let tokens: TokenServer;
  let registry: TestRegistry;
  let client: Skopeo;
  const work = makeTempDir();
  const logFile = path.join(work, 'zot.log');
  const auditFile = path.join(work, 'audit.log');
  const issued: string[] = [];

  before(async () => {
    tokens = await startTokenServer({
      service: SERVICE,
      users: { ci: 'ci-password', reader: 'reader-password' },
      // ci may do everything it asks; reader and anonymous callers only pull.
      grant: (subject: string, asked: AccessEntry) => (subject === 'ci' ? asked.actions : asked.actions.filter((a) => a === 'pull')),
    });
    const log = { level: 'debug' as const, output: logFile, audit: auditFile };
    registry = await startTestRegistry({ log, http: { auth: { bearer: { realm: tokens.realm, service: SERVICE, cert: tokens.certFile } } } }, { logger: createLogger(log) });
    client = skopeo();
  });

  after(async () => {
    client?.close();
    await registry?.stop();
    await tokens?.close();
  });

  const host = () => registry.url.replace(/^http:\/\//, '');
  const token = (access: AccessEntry[], options: jwt.SignOptions = {}, sub = 'tester'): string => {
    const signed = tokens.sign({ access, sub }, options);
    issued.push(signed);
    return signed;
  };
  const withToken = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });

  it('answers a request without a token 401 with the challenge for what it asked', async () => {
    const cases: [string, string, string | undefined][] = [
      ['GET', '/v2/', undefined],
      ['GET', '/v2/team/app/manifests/v1', 'repository:team/app:pull'],
      ['POST', '/v2/team/app/blobs/uploads/', 'repository:team/app:pull,push'],
      ['DELETE', '/v2/team/app/manifests/sha256:' + '0'.repeat(64), 'repository:team/app:delete'],
      ['GET', '/v2/_catalog', 'registry:catalog:*'],
    ];
    for (const [method, url, scope] of cases) {
      const res = await fetch(`${registry.url}${url}`, { method });
      await expectOciError(res, 401, 'UNAUTHORIZED');
      const expected = `Bearer realm="${tokens.realm}",service="${SERVICE}"${scope ? `,scope="${scope}"` : ''}`;
      assert.equal(res.headers.get('www-authenticate'), expected, `${method} ${url}`);
    }
  });

  it('grants what the token says: push and pull on its repository, nothing on another', async () => {
    const rw = token([{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }]);
    const upload = await fetch(`${registry.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: withToken(rw) });
    assert.equal(upload.status, 202);
    await upload.arrayBuffer();
    const other = await fetch(`${registry.url}/v2/team/other/blobs/uploads/`, { method: 'POST', headers: withToken(rw) });
    await expectOciError(other, 401, 'UNAUTHORIZED');
    assert.match(other.headers.get('www-authenticate') ?? '', /scope="repository:team\/other:pull,push"/, 'the client is told which scope to fetch');
    const readOnly = token([{ type: 'repository', name: 'team/app', actions: ['pull'] }]);
    const refused = await fetch(`${registry.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: withToken(readOnly) });
    await expectOciError(refused, 401, 'UNAUTHORIZED');
    assert.equal((await fetch(`${registry.url}/v2/team/app/tags/list`, { headers: withToken(readOnly) })).status, 404, 'pull is granted: the repository is just empty');
  });

  it('refuses expired, not-yet-valid, other-service and forged tokens with 401, not 500', async () => {
    const access = [{ type: 'repository', name: 'team/app', actions: ['pull'] }];
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const bad = [
      token(access, { expiresIn: -60 }),
      token(access, { notBefore: 3600 }),
      token(access, { audience: 'some-other-registry' }),
      jwt.sign({ access }, other.privateKey, { algorithm: 'RS256', audience: SERVICE, expiresIn: 60 }),
      'garbage.token.here',
    ];
    for (const t of bad) {
      const res = await fetch(`${registry.url}/v2/team/app/tags/list`, { headers: withToken(t) });
      await expectOciError(res, 401, 'UNAUTHORIZED');
      assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm=/);
    }
  });

  it('lists the catalog only with registry:catalog:*, and only the repositories the token may pull', async () => {
    const writer = token([{ type: 'repository', name: 'cat/one', actions: ['pull', 'push'] }, { type: 'repository', name: 'cat/two', actions: ['pull', 'push'] }]);
    for (const repo of ['cat/one', 'cat/two']) {
      const res = await fetch(`${registry.url}/v2/${repo}/blobs/uploads/?digest=sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`, {
        method: 'POST',
        headers: { ...withToken(writer), 'content-type': 'application/octet-stream', 'content-length': '0' },
      });
      assert.equal(res.status, 201, `monolithic empty blob into ${repo}`);
    }
    const noCatalog = token([{ type: 'repository', name: 'cat/one', actions: ['pull'] }]);
    const refused = await fetch(`${registry.url}/v2/_catalog`, { headers: withToken(noCatalog) });
    await expectOciError(refused, 401, 'UNAUTHORIZED');
    assert.match(refused.headers.get('www-authenticate') ?? '', /scope="registry:catalog:\*"/);
    const catalog = token([{ type: 'registry', name: 'catalog', actions: ['*'] }, { type: 'repository', name: 'cat/one', actions: ['pull'] }]);
    const listed = await fetch(`${registry.url}/v2/_catalog`, { headers: withToken(catalog) });
    assert.equal(listed.status, 200);
    const { repositories } = (await listed.json()) as { repositories: string[] };
    assert.ok(repositories.includes('cat/one'));
    assert.ok(!repositories.includes('cat/two'), 'a repository the token may not pull is not listed');
  });

  it('lets skopeo push and pull through the token flow, as the token server decides', async () => {
    const source = path.join(work, 'image');
    writeLayout(source, [{ manifest: layoutImage({ layers: 2 }), tag: 'v1' }]);
    await client.ok(['copy', '--dest-tls-verify=false', '--dest-creds', 'ci:ci-password', `oci:${source}:v1`, `docker://${host()}/flow/app:v1`]);
    assert.ok(tokens.requests.some((r) => r.subject === 'ci' && r.service === SERVICE && r.scopes.includes('repository:flow/app:pull,push')), JSON.stringify(tokens.requests));
    const pushed = [...readEvents(registry.running.store.db, { repo: 'flow/app' })].find((e) => e.type === 'ManifestPushed');
    assert.equal(pushed?.identity, 'ci');
    assert.equal(pushed?.authMethod, 'bearer');
    // reader's tokens only pull: the copy out works, a push is refused.
    const out = path.join(work, 'out');
    await client.ok(['copy', '--src-tls-verify=false', '--src-creds', 'reader:reader-password', `docker://${host()}/flow/app:v1`, `oci:${out}:v1`]);
    assert.ok(fs.existsSync(path.join(out, 'index.json')));
    const denied = await client.run(['copy', '--dest-tls-verify=false', '--dest-creds', 'reader:reader-password', `oci:${source}:v1`, `docker://${host()}/flow/app:v2`]);
    assert.notEqual(denied.code, 0, 'a reader cannot push');
    // Anonymous tokens pull too.
    await client.ok(['inspect', '--tls-verify=false', '--raw', `docker://${host()}/flow/app:v1`]);
  });

  it('writes no token or password to the debug log or the audit file', async () => {
    await registry.running.actorsCaughtUp();
    registry.running.logger.flush();
    await new Promise((r) => setTimeout(r, 200));
    const logText = fs.readFileSync(logFile, 'utf8');
    const auditText = fs.readFileSync(auditFile, 'utf8');
    assert.match(logText, /"level":20/, 'the log is at debug level');
    assert.match(auditText, /"subject":"ci"/);
    for (const t of issued) {
      // A JWT's signature part alone is enough to show a token was written.
      const signature = t.split('.')[2] ?? t;
      assert.ok(!logText.includes(signature), 'the log holds a token');
      assert.ok(!auditText.includes(signature), 'the audit file holds a token');
    }
    for (const secret of ['ci-password', 'reader-password']) assert.ok(!logText.includes(secret) && !auditText.includes(secret));
  });
});
