// The sync's upstream client against real upstreams: Debian's docker-registry plain, with TLS,
// a client CA and htpasswd, and with token authentication from a token server; a counting proxy
// in front of one to fail on purpose.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readCredentialsFile } from '../../src/sync/upstream-auth.js';
import { UpstreamClient, UpstreamError } from '../../src/sync/upstream-client.js';
import { readCertDir } from '../../src/sync/upstream-transport.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { getFreePort, makeTempDir } from '../helpers/registry.js';
import { skopeo, type Skopeo } from '../helpers/skopeo.js';
import { htpasswdLine, makeSyncCertificates, type SyncCertificates } from '../helpers/sync-certs.js';
import { layoutImage, pushOverHttp, pushWithSkopeo } from '../helpers/sync-images.js';
import { startSyncProxy, type SyncProxy } from '../helpers/sync-proxy.js';
import { startSyncTokenServer, type SyncTokenServer } from '../helpers/sync-token-server.js';
import { assertPullsWhole } from '../helpers/pull.js';
import { catalogWithTags, startSyncingRegistry } from '../helpers/sync-registry.js';

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('upstream client against docker-registry', () => {
  let plain: DockerRegistry;
  const image = layoutImage({ layers: 2 });

  before(async () => {
    plain = await startDockerRegistry();
    await pushOverHttp(plain.url, 'library/alpine', '3.19', image);
    await pushOverHttp(plain.url, 'library/busybox', '1', layoutImage());
    await pushOverHttp(plain.url, 'other/tool', 'v1', layoutImage());
  });
  after(async () => {
    await plain?.stop();
  });

  it('lists the catalog and tags, reads manifests by tag and digest and streams blobs', async () => {
    const client = new UpstreamClient({ urls: [plain.url], tls: { verify: true } });
    try {
      assert.deepEqual((await client.catalog()).sort(), ['library/alpine', 'library/busybox', 'other/tool']);
      assert.deepEqual(await client.tags('library/alpine'), ['3.19']);
      assert.deepEqual(await client.tags('library/missing'), [], 'an unknown repository has no tags');
      const head = await client.headManifest('library/alpine', '3.19');
      assert.equal(head?.digest, image.digest);
      assert.equal(head?.url, plain.url);
      const manifest = await client.manifest('library/alpine', image.digest);
      assert.ok(manifest?.bytes.equals(image.bytes), 'the manifest bytes are the upstream bytes');
      assert.equal(manifest?.mediaType, image.mediaType);
      assert.equal(await client.manifest('library/alpine', 'nope'), undefined);
      const layer = image.blobs[1] as Buffer;
      const blob = await client.blob('library/alpine', sha256(layer));
      assert.equal(blob?.size, layer.length);
      assert.ok((await readAll(blob!.body)).equals(layer));
      assert.equal(await client.hasBlob('library/alpine', sha256(layer)), true);
      assert.equal(await client.hasBlob('other/tool', sha256(layer)), false, 'a blob of another repository is not this one');
      assert.deepEqual(await client.referrers('library/alpine', image.digest), [], 'distribution 2.x has no referrers API');
    } finally {
      client.close();
    }
  });

  it('maps names under the path of a URL with one, as zot does (https://docker.io/library)', async () => {
    const client = new UpstreamClient({ urls: [`${plain.url}/library`], tls: { verify: true } });
    try {
      assert.deepEqual((await client.catalog()).sort(), ['alpine', 'busybox'], 'only repositories under library/, relative to it');
      assert.deepEqual(await client.tags('alpine'), ['3.19']);
      assert.equal((await client.manifest('alpine', '3.19'))?.digest, image.digest);
    } finally {
      client.close();
    }
  });

  it('tries the next URL when one is dead, then keeps asking the one that answered', async () => {
    const deadPort = await getFreePort();
    const failing = await startSyncProxy(plain.url);
    failing.failNext(1000, 503);
    const client = new UpstreamClient({ urls: [`http://127.0.0.1:${deadPort}`, failing.url, plain.url], tls: { verify: true } });
    try {
      assert.deepEqual(await client.tags('library/alpine'), ['3.19']);
      assert.equal(failing.requests.length, 1, 'the second URL was tried once and answered 503');
      assert.equal((await client.headManifest('library/alpine', '3.19'))?.url, plain.url);
      assert.equal(failing.requests.length, 1, 'the URL that answered is asked first afterwards');
    } finally {
      client.close();
      await failing.close();
    }
  });

  it('asks an upstream without the referrers API once, not for every image', async () => {
    const proxy = await startSyncProxy(plain.url);
    const client = new UpstreamClient({ urls: [proxy.url], tls: { verify: true } });
    try {
      assert.deepEqual(await client.referrers('library/alpine', image.digest), []);
      assert.deepEqual(await client.referrers('library/busybox', image.digest), []);
      assert.equal(proxy.count('GET', /\/referrers\//), 1);
    } finally {
      client.close();
      await proxy.close();
    }
  });

  it('retries temporary failures maxRetries times, retryDelay apart, then reports the upstream unavailable', async () => {
    const proxy = await startSyncProxy(plain.url);
    try {
      const patient = new UpstreamClient({ urls: [proxy.url], tls: { verify: true }, maxRetries: 2, retryDelayMs: 20 });
      proxy.failNext(2, 503);
      assert.deepEqual(await patient.tags('library/alpine'), ['3.19'], 'the third attempt succeeds');
      assert.deepEqual(
        proxy.requests.map((r) => r.status),
        [503, 503, 200],
      );
      patient.close();

      const impatient = new UpstreamClient({ urls: [proxy.url], tls: { verify: true }, maxRetries: 1, retryDelayMs: 20 });
      proxy.failNext(2, 502);
      await assert.rejects(impatient.tags('library/alpine'), (err: unknown) => err instanceof UpstreamError && err.unavailable);
      impatient.close();

      const never = new UpstreamClient({ urls: [proxy.url], tls: { verify: true }, maxRetries: 3, retryDelayMs: 20 });
      proxy.failNext(1, 404);
      assert.deepEqual(await never.tags('library/alpine'), [], 'a 404 is an answer, not a temporary failure: no retry');
      never.close();
    } finally {
      await proxy.close();
    }
  });
});

describe('upstream client with TLS, a client CA and htpasswd (certDir and credentialsFile)', () => {
  let certs: SyncCertificates;
  let secured: DockerRegistry;
  let client: Skopeo;
  let credentialsFile: string;
  const image = layoutImage();

  before(async () => {
    certs = makeSyncCertificates();
    const dir = makeTempDir('zot-ts-sync-htpasswd-');
    const htpasswd = path.join(dir, 'htpasswd');
    fs.writeFileSync(htpasswd, `${htpasswdLine('alice', 'wonderland')}\n`);
    secured = await startDockerRegistry({ tls: { cert: certs.serverCert, key: certs.serverKey, clientCa: certs.caCert }, htpasswd: { file: htpasswd } });
    credentialsFile = path.join(dir, 'credentials.json');
    fs.writeFileSync(credentialsFile, JSON.stringify({ [secured.host]: { username: 'alice', password: 'wonderland' } }));
    client = skopeo();
    await pushWithSkopeo(client, image, `docker://${secured.host}/secure/app:v1`, ['--dest-cert-dir', certs.certDir, '--dest-creds', 'alice:wonderland']);
  });
  after(async () => {
    client?.close();
    await secured?.stop();
  });

  it('reaches the upstream with the CA and client certificate of certDir and the credentials of the file', async () => {
    const upstream = new UpstreamClient({ urls: [secured.url], tls: { verify: true, ...readCertDir(certs.certDir) }, credentials: readCredentialsFile(credentialsFile) });
    try {
      assert.deepEqual(await upstream.catalog(), ['secure/app']);
      const manifest = await upstream.manifest('secure/app', 'v1');
      assert.equal(manifest?.digest, image.digest);
      const blob = await upstream.blob('secure/app', sha256(image.blobs[0] as Buffer));
      assert.ok((await readAll(blob!.body)).equals(image.blobs[0] as Buffer));
    } finally {
      upstream.close();
    }
  });

  it('fails without the CA (tlsVerify), without the client certificate, and with wrong credentials', async () => {
    const credentials = readCredentialsFile(credentialsFile);
    const noCa = new UpstreamClient({ urls: [secured.url], tls: { verify: true }, credentials });
    await assert.rejects(noCa.catalog(), (err: unknown) => err instanceof UpstreamError && err.unavailable && /certificate/i.test(err.message));
    noCa.close();

    const { ca } = readCertDir(certs.certDir);
    const noClientCert = new UpstreamClient({ urls: [secured.url], tls: { verify: true, ...(ca ? { ca } : {}) }, credentials });
    await assert.rejects(noClientCert.catalog(), (err: unknown) => err instanceof UpstreamError && err.unavailable);
    noClientCert.close();

    const unverified = new UpstreamClient({ urls: [secured.url], tls: { verify: false, ...readCertDir(certs.certDir) }, credentials });
    assert.deepEqual(await unverified.catalog(), ['secure/app'], 'tlsVerify: false accepts the certificate without the CA');
    unverified.close();

    const wrong = new UpstreamClient({
      urls: [secured.url],
      tls: { verify: true, ...readCertDir(certs.certDir) },
      credentials: { [secured.host]: { username: 'alice', password: 'nope' } },
    });
    await assert.rejects(wrong.catalog(), (err: unknown) => err instanceof UpstreamError && !err.unavailable && err.status === 401);
    wrong.close();
  });

  it('is what a zot-ts periodic sync configured with certDir and credentialsFile uses', async () => {
    const local = await startSyncingRegistry({
      credentialsFile,
      registries: [{ urls: [secured.url], certDir: certs.certDir, tlsVerify: true, pollInterval: '1h', content: [{ prefix: '**' }] }],
    });
    try {
      await local.running.sync?.firstPollsDone();
      assert.deepEqual(await catalogWithTags(local.url), { 'secure/app': ['v1'] });
    } finally {
      await local.stop();
    }
  });
});

describe('upstream client with the token flow', () => {
  let tokens: SyncTokenServer;
  let registry: DockerRegistry;
  let client: Skopeo;
  const image = layoutImage();

  before(async () => {
    tokens = await startSyncTokenServer({ bob: 'builder' });
    registry = await startDockerRegistry({ token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, certFile: tokens.certFile } });
    client = skopeo();
    await pushWithSkopeo(client, image, `docker://${registry.host}/tokened/app:v1`, ['--dest-tls-verify=false', '--dest-creds', 'bob:builder']);
  });
  after(async () => {
    client?.close();
    await registry?.stop();
    await tokens?.close();
  });

  it('answers a Bearer challenge with a token from the realm, and reuses it for its scope', async () => {
    const upstream = new UpstreamClient({ urls: [registry.url], tls: { verify: true }, credentials: { [registry.host]: { username: 'bob', password: 'builder' } } });
    try {
      tokens.requests.length = 0;
      assert.deepEqual(await upstream.catalog(), ['tokened/app']);
      assert.equal((await upstream.manifest('tokened/app', 'v1'))?.digest, image.digest);
      const blob = await upstream.blob('tokened/app', sha256(image.blobs[0] as Buffer));
      assert.ok((await readAll(blob!.body)).equals(image.blobs[0] as Buffer));
      assert.deepEqual(tokens.requests, [
        { scopes: ['registry:catalog:*'], subject: 'bob' },
        { scopes: ['repository:tokened/app:pull'], subject: 'bob' },
      ]);
    } finally {
      upstream.close();
    }
  });

  it('is what a zot-ts on-demand pull configured with credentialsFile uses, the first URL dead', async () => {
    const dir = makeTempDir('zot-ts-sync-token-creds-');
    const credentialsFile = path.join(dir, 'credentials.json');
    fs.writeFileSync(credentialsFile, JSON.stringify({ [registry.host]: { username: 'bob', password: 'builder' } }));
    const dead = `http://127.0.0.1:${await getFreePort()}`;
    const local = await startSyncingRegistry({ credentialsFile, registries: [{ urls: [dead, registry.url], onDemand: true }] });
    try {
      assert.equal((await assertPullsWhole(local.url, 'tokened/app', 'v1')).digest, image.digest);
    } finally {
      await local.stop();
    }
  });

  it('reports refused credentials without retrying them', async () => {
    const upstream = new UpstreamClient({ urls: [registry.url], tls: { verify: true }, credentials: { [registry.host]: { username: 'bob', password: 'wrong' } } });
    try {
      await assert.rejects(upstream.tags('tokened/app'), (err: unknown) => err instanceof UpstreamError && /token server/.test(err.message) && err.status === 401);
    } finally {
      upstream.close();
    }
  });
});
