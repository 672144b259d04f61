// Mutual TLS through HTTPS with certificates made at test time: a client whose certificate the CA
// signed is its subject CN (or the URI SAN's workload, with http.auth.mtls) for accessControl; an
// untrusted certificate and no certificate are refused at the TLS layer when certificates are
// required, and answered by the other method when one is configured. The server certificate is
// replaced on disk while a connection is open: that connection keeps working, new ones get the new
// certificate, with no restart.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { createLogger } from '../../src/logging.js';
import { basic } from '../helpers/auth-probe.js';
import { makeCa, type CertificateFiles, type TestCa } from '../helpers/certs.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';

interface Answer {
  status: number;
  body: string;
  reusedSocket: boolean;
}

function request(url: string, options: { client?: CertificateFiles; ca: string; method?: string; headers?: Record<string, string>; agent?: https.Agent }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: options.method ?? 'GET',
        ca: fs.readFileSync(options.ca),
        ...(options.client ? { cert: fs.readFileSync(options.client.cert), key: fs.readFileSync(options.client.key) } : {}),
        ...(options.agent ? { agent: options.agent } : { agent: false }),
        headers: options.headers ?? {},
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, reusedSocket: req.reusedSocket }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The fingerprint of the certificate a new connection is shown. */
function servedFingerprint(port: number, ca: string, client: CertificateFiles): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(ca), cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key) }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fingerprint);
    });
    socket.on('error', reject);
  });
}

describe('mutual TLS through HTTPS', () => {
  const work = makeTempDir();
  let serverCa: TestCa;
  let clientCa: TestCa;
  let strangerCa: TestCa;
  let server: CertificateFiles;
  let clientUser: CertificateFiles;
  let otherUser: CertificateFiles;
  let workload: CertificateFiles;
  let stranger: CertificateFiles;
  let registry: TestRegistry;
  const logFile = path.join(work, 'zot.log');

  before(async () => {
    serverCa = makeCa(path.join(work, 'server-ca'), 'server-ca');
    clientCa = makeCa(path.join(work, 'client-ca'), 'client-ca');
    strangerCa = makeCa(path.join(work, 'stranger-ca'), 'stranger-ca');
    server = serverCa.issue('server', { subject: '/CN=localhost', altNames: ['IP:127.0.0.1', 'DNS:localhost'], usage: 'server' });
    clientUser = clientCa.issue('clientuser', { subject: '/O=example/CN=clientuser', usage: 'client' });
    otherUser = clientCa.issue('otheruser', { subject: '/CN=otheruser', usage: 'client', keyType: 'ec' });
    workload = clientCa.issue('workload', { subject: '/CN=workload-cn', altNames: ['URI:spiffe://example.org/workload/builder'], usage: 'client' });
    stranger = strangerCa.issue('clientuser', { subject: '/CN=clientuser', usage: 'client' });
    const log = { level: 'debug' as const, output: logFile };
    registry = await startTestRegistry(
      {
        log,
        http: {
          tls: { cert: server.cert, key: server.key, cacert: clientCa.cert },
          auth: { mtls: { identityAttributes: ['URI', 'CommonName'], uriSanPattern: 'spiffe://example.org/workload/(.*)' } },
          accessControl: { repositories: { '**': { policies: [{ users: ['clientuser', 'builder'], actions: ['read', 'create'] }], defaultPolicy: ['read'] } } },
        },
      },
      { logger: createLogger(log) },
    );
  });

  after(async () => {
    await registry?.stop();
  });

  const url = (p: string) => `${registry.url}${p}`;
  /** Whether the log holds the message yet (the logger writes asynchronously: flushed first). */
  const logged = (message: string): boolean => {
    registry.running.logger.flush();
    return fs.readFileSync(logFile, 'utf8').includes(message);
  };

  it('serves a client whose certificate the CA signed, as its CN, under accessControl', async () => {
    assert.equal((await request(url('/v2/'), { ca: serverCa.cert, client: clientUser })).status, 200);
    const push = await request(url('/v2/team/app/blobs/uploads/'), { ca: serverCa.cert, client: clientUser, method: 'POST' });
    assert.equal(push.status, 202, push.body);
    const other = await request(url('/v2/team/app/blobs/uploads/'), { ca: serverCa.cert, client: otherUser, method: 'POST' });
    assert.equal(other.status, 403);
    assert.match(other.body, /"code":"DENIED".*otheruser may not/);
    assert.equal((await request(url('/v2/team/app/tags/list'), { ca: serverCa.cert, client: otherUser })).status, 404, 'defaultPolicy read: the repository is just empty');
  });

  it('takes the identity from the URI SAN with uriSanPattern before the CN', async () => {
    const push = await request(url('/v2/team/app/blobs/uploads/'), { ca: serverCa.cert, client: workload, method: 'POST' });
    assert.equal(push.status, 202, `builder (from spiffe://example.org/workload/builder) may push: ${push.body}`);
  });

  it('refuses an untrusted client certificate and a client without one at the TLS layer', async () => {
    await assert.rejects(request(url('/v2/'), { ca: serverCa.cert, client: stranger }), /certificate|alert|socket hang up|ECONNRESET/i);
    await assert.rejects(request(url('/v2/'), { ca: serverCa.cert }), /certificate|alert|socket hang up|ECONNRESET/i);
  });

  it('reloads its certificate when the files change: an open connection keeps working, a new one sees the new certificate', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await request(url('/v2/'), { ca: serverCa.cert, client: clientUser, agent });
      assert.equal(first.status, 200);
      const before = await servedFingerprint(registry.running.port, serverCa.cert, clientUser);
      // A new pair for the same names, written over the files in use.
      const next = serverCa.issue('server-next', { subject: '/CN=localhost', altNames: ['IP:127.0.0.1', 'DNS:localhost'], usage: 'server', keyType: 'ec' });
      fs.copyFileSync(next.key, server.key);
      fs.copyFileSync(next.cert, server.cert);
      const expected = new X509Certificate(fs.readFileSync(next.cert)).fingerprint256;
      assert.notEqual(before, expected);
      const deadline = Date.now() + 15_000;
      let served = before;
      while (served !== expected && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        served = await servedFingerprint(registry.running.port, serverCa.cert, clientUser);
      }
      assert.equal(served, expected, 'new connections get the new certificate');
      const again = await request(url('/v2/'), { ca: serverCa.cert, client: clientUser, agent });
      assert.equal(again.status, 200);
      assert.ok(again.reusedSocket, 'the connection opened before the rotation was kept and still answers');
      assert.ok(logged('tls certificate reloaded'));
    } finally {
      agent.destroy();
    }
  });

  it('keeps the certificate in use when the new files do not load together', async () => {
    const before = await servedFingerprint(registry.running.port, serverCa.cert, clientUser);
    const original = fs.readFileSync(server.key);
    const mismatched = serverCa.issue('server-mismatch', { subject: '/CN=localhost', altNames: ['IP:127.0.0.1'], usage: 'server' });
    fs.copyFileSync(mismatched.key, server.key);
    try {
      const deadline = Date.now() + 3_000;
      while (!logged('failed to reload the tls certificate') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.match(fs.readFileSync(logFile, 'utf8'), /failed to reload the tls certificate, keeping the current one/);
      assert.equal(await servedFingerprint(registry.running.port, serverCa.cert, clientUser), before);
      assert.equal((await request(url('/v2/'), { ca: serverCa.cert, client: clientUser })).status, 200);
    } finally {
      fs.writeFileSync(server.key, original);
    }
  });
});

describe('mutual TLS next to htpasswd', () => {
  const work = makeTempDir();
  let registry: TestRegistry;
  let serverCa: TestCa;
  let clientUser: CertificateFiles;
  let stranger: CertificateFiles;

  before(async () => {
    serverCa = makeCa(path.join(work, 'server-ca'), 'server-ca');
    const clientCa = makeCa(path.join(work, 'client-ca'), 'client-ca');
    const server = serverCa.issue('server', { subject: '/CN=localhost', altNames: ['IP:127.0.0.1'], usage: 'server' });
    clientUser = clientCa.issue('clientuser', { subject: '/CN=clientuser', usage: 'client' });
    stranger = makeCa(path.join(work, 'stranger-ca'), 'stranger-ca').issue('stranger', { subject: '/CN=clientuser', usage: 'client' });
    const htpasswd = path.join(work, 'htpasswd');
    fs.writeFileSync(htpasswd, `hank:${bcrypt.hashSync('hank-password', 4)}\n`);
    registry = await startTestRegistry({ http: { tls: { cert: server.cert, key: server.key, cacert: clientCa.cert }, auth: { htpasswd: { path: htpasswd } } } });
  });

  after(async () => {
    await registry?.stop();
  });

  it('makes the certificate optional: a password gets in without one, a signed certificate without a password', async () => {
    const url = `${registry.url}/v2/`;
    assert.equal((await request(url, { ca: serverCa.cert, headers: basic('hank', 'hank-password') })).status, 200);
    assert.equal((await request(url, { ca: serverCa.cert, client: clientUser })).status, 200);
    const none = await request(url, { ca: serverCa.cert });
    assert.equal(none.status, 401);
    assert.match(none.body, /"code":"UNAUTHORIZED"/);
  });

  it('still closes a connection whose certificate the CA did not sign', async () => {
    await assert.rejects(request(`${registry.url}/v2/`, { ca: serverCa.cert, client: stranger, headers: basic('hank', 'hank-password') }), /socket hang up|ECONNRESET|certificate|alert/i);
  });
});
