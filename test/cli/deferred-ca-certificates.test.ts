// NODE_EXTRA_CA_CERTS, deferred by bin/zot.js's shebang to the first use of TLS
// (src/cli/deferred-ca-certificates.cts): node starts without the variable, and the registry
// still trusts the file's certificates where Node would have, and only there.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFERRED_ENV } from '../../src/cli/deferred-ca-certificates.cjs';
import type { SyncConfig } from '../../src/config/types.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { ACCEPT_MANIFESTS } from '../helpers/pull.js';
import { makeTempDir, REPO_ROOT, spawnRegistry } from '../helpers/registry.js';
import { skopeo, type Skopeo } from '../helpers/skopeo.js';
import { makeSyncCertificates, type SyncCertificates } from '../helpers/sync-certs.js';
import { layoutImage, pushWithSkopeo } from '../helpers/sync-images.js';

const MODULE = path.join(REPO_ROOT, 'dist', 'src', 'cli', 'deferred-ca-certificates.cjs');

/** The environment of a running process, from /proc. */
function environmentOf(pid: number): Map<string, string> {
  const entries = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter((entry) => entry.includes('='));
  return new Map(entries.map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]));
}

describe('NODE_EXTRA_CA_CERTS for `zot serve`, read when TLS is first used', { skip: !fs.existsSync('/proc/self/environ') }, () => {
  let certs: SyncCertificates;
  let upstream: DockerRegistry;
  let client: Skopeo;
  const image = layoutImage();

  before(async () => {
    certs = makeSyncCertificates();
    upstream = await startDockerRegistry({ tls: { cert: certs.serverCert, key: certs.serverKey } });
    client = skopeo();
    await pushWithSkopeo(client, image, `docker://${upstream.host}/lib/app:v1`, ['--dest-cert-dir', certs.certDir]);
  });
  after(async () => {
    client?.close();
    await upstream?.stop();
  });

  /** Syncs lib/app:v1 on demand from the TLS upstream, with no certDir: only the process's own trust. */
  async function pullThrough(env: NodeJS.ProcessEnv): Promise<{ status: number; digest: string | null; body: string; environment: Map<string, string>; output: string }> {
    const sync: SyncConfig = { enable: true, registries: [{ urls: [upstream.url], onDemand: true, tlsVerify: true, maxRetries: 0, retryDelay: '1s', content: [{ prefix: 'lib/**' }] }] };
    const registry = await spawnRegistry({ extensions: { sync } }, { env });
    try {
      const environment = environmentOf(registry.child.pid as number);
      const res = await fetch(`${registry.url}/v2/lib/app/manifests/v1`, { headers: { accept: ACCEPT_MANIFESTS } });
      const body = await res.text();
      return { status: res.status, digest: res.headers.get('docker-content-digest'), body, environment, output: registry.output() };
    } finally {
      await registry.stop();
    }
  }

  it('starts node without the variable, then trusts its file for an upstream that only it vouches for', async () => {
    const pulled = await pullThrough({ ...process.env, NODE_EXTRA_CA_CERTS: certs.caCert });
    assert.equal(pulled.environment.has('NODE_EXTRA_CA_CERTS'), false, 'node was started with NODE_EXTRA_CA_CERTS: it parsed the file at start');
    assert.equal(pulled.environment.get(DEFERRED_ENV), certs.caCert);
    assert.equal(pulled.status, 200, pulled.output);
    assert.equal(pulled.digest, image.digest);
  });

  it('does not reach that upstream without the variable (the file is what made it trusted)', async () => {
    const env = { ...process.env };
    delete env.NODE_EXTRA_CA_CERTS;
    const pulled = await pullThrough(env);
    assert.equal(pulled.environment.get(DEFERRED_ENV), '');
    // The upstream is unavailable to it: its certificate's issuer is unknown.
    assert.equal(pulled.status, 502, pulled.output);
    assert.match(`${pulled.body} ${pulled.output}`, /certificate/i);
  });
});

describe('deferred extra CA certificates, in a node process of their own', () => {
  let certs: SyncCertificates;
  let server: https.Server;
  let url: string;
  let dir: string;

  before(async () => {
    certs = makeSyncCertificates();
    dir = makeTempDir('zot-ts-deferred-ca-');
    server = https.createServer({ cert: fs.readFileSync(certs.serverCert), key: fs.readFileSync(certs.serverKey) }, (_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /**
   * Runs `body` (an async function's body, given `url`, `tls`, `https`, `original` (tls's own
   * createSecureContext), `outcome(promise)`, which resolves 'ok' or the error's code, and
   * `get(options)`, an https GET of `url`'s outcome) in a node without NODE_EXTRA_CA_CERTS, after the
   * module took `deferred` as the shebang hands it over; returns what the body printed as JSON.
   * With `untilTlsIsLoaded`, nothing loads node's TLS modules before the module, and the body gets
   * `outcome`, `tlsLoaded()` and `require` only.
   */
  async function run(deferred: string | undefined, body: string, untilTlsIsLoaded = false): Promise<{ result: unknown; stderr: string }> {
    const script = path.join(dir, 'probe.cjs');
    const tlsFirst = `const tls = require('node:tls');
const https = require('node:https');
const original = tls.createSecureContext;
const get = (options) => outcome(new Promise((resolve, reject) => https.get(${JSON.stringify(url)}, { agent: false, ...options }, (res) => res.resume().on('end', resolve)).on('error', reject)));
`;
    fs.writeFileSync(
      script,
      `const outcome = (p) => p.then(() => 'ok', (err) => err.cause?.code ?? err.code ?? err.message);
const tlsLoaded = () => process.moduleLoadList.includes('NativeModule tls');
${untilTlsIsLoaded ? '' : tlsFirst}require(${JSON.stringify(MODULE)}).trustDeferredExtraCaCertificates(process.env, { untilTlsIsLoaded: ${untilTlsIsLoaded} });
(async (url) => { ${body} })(${JSON.stringify(url)}).then((result) => { process.stdout.write(JSON.stringify(result)); process.exit(0); });
`,
    );
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_EXTRA_CA_CERTS;
    if (deferred !== undefined) env[DEFERRED_ENV] = deferred;
    // Asynchronously: the https server answering the probe runs in this process.
    const child = spawn(process.execPath, [script], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(status, 0, stderr);
    return { result: JSON.parse(stdout) as unknown, stderr };
  }

  it('with untilTlsIsLoaded, loads no TLS module itself and trusts the file from the first fetch or require() of one', async () => {
    const viaFetch = await run(certs.caCert, `const before = tlsLoaded(); const fetched = await outcome(fetch(url)); return { before, fetched, after: tlsLoaded() };`, true);
    assert.deepEqual(viaFetch.result, { before: false, fetched: 'ok', after: true });
    const viaHttps = await run(
      certs.caCert,
      `const before = tlsLoaded();
       const https = require('node:https');
       const got = await outcome(new Promise((resolve, reject) => https.get(url, { agent: false }, (res) => res.resume().on('end', resolve)).on('error', reject)));
       return { before, got };`,
      true,
    );
    assert.deepEqual(viaHttps.result, { before: false, got: 'ok' });
    const viaTls = await run(
      certs.caCert,
      `const tls = require('node:tls');
       return { connected: await outcome(new Promise((resolve, reject) => { const s = tls.connect({ host: '127.0.0.1', port: Number(new URL(url).port) }, () => { s.end(); resolve(); }); s.on('error', reject); })) };`,
      true,
    );
    assert.deepEqual(viaTls.result, { connected: 'ok' });
  });

  it('trusts the file for https, fetch and tls.connect, and sets NODE_EXTRA_CA_CERTS again for child processes', async () => {
    const { result } = await run(
      certs.caCert,
      `const connect = outcome(new Promise((resolve, reject) => { const s = tls.connect({ host: '127.0.0.1', port: Number(new URL(url).port) }, () => { s.end(); resolve(); }); s.on('error', reject); }));
       return { https: await get({}), fetch: await outcome(fetch(url)), connect: await connect, env: process.env.NODE_EXTRA_CA_CERTS ?? null, deferred: process.env.${DEFERRED_ENV} ?? null };`,
    );
    assert.deepEqual(result, { https: 'ok', fetch: 'ok', connect: 'ok', env: certs.caCert, deferred: null });
  });

  it('trusts only the given `ca` where one is given, as Node does with the variable', async () => {
    const other = path.join(dir, 'other-ca.crt');
    fs.writeFileSync(other, tlsRootCertificate());
    const { result } = await run(certs.caCert, `return { givenOther: await get({ ca: require('node:fs').readFileSync(${JSON.stringify(other)}) }), givenOwn: await get({ ca: require('node:fs').readFileSync(${JSON.stringify(certs.caCert)}) }) };`);
    assert.deepEqual(result, { givenOther: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', givenOwn: 'ok' });
  });

  it('makes one context for connections that differ only in per-connection options, and another for other settings', async () => {
    const { result } = await run(
      certs.caCert,
      `const a = tls.createSecureContext({ servername: 'a', rejectUnauthorized: true });
       const b = tls.createSecureContext({ servername: 'b' });
       const c = tls.createSecureContext({ minVersion: 'TLSv1.3' });
       return { sameForConnections: a === b, otherForSettings: a !== c, twiceOk: [await get({}), await get({})] };`,
    );
    assert.deepEqual(result, { sameForConnections: true, otherForSettings: true, twiceOk: ['ok', 'ok'] });
  });

  it('warns as Node does and trusts only the bundled roots when the file cannot be read or holds no certificate', async () => {
    const empty = path.join(dir, 'empty.pem');
    fs.writeFileSync(empty, 'not a certificate\n');
    for (const file of [path.join(dir, 'missing.pem'), empty]) {
      const { result, stderr } = await run(file, `return { https: await get({}) };`);
      assert.deepEqual(result, { https: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
      assert.match(stderr, new RegExp(`Ignoring extra certs from \`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\`, load failed`));
    }
  });

  it('changes nothing when the shebang handed no file over (the variable was unset)', async () => {
    const { result } = await run('', `return { https: await get({}), replaced: tls.createSecureContext !== original, env: process.env.NODE_EXTRA_CA_CERTS ?? null, deferred: process.env.${DEFERRED_ENV} ?? null };`);
    assert.deepEqual(result, { https: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', replaced: false, env: null, deferred: null });
  });
});

/** Some CA certificate other than the test CA: the first of Node's bundled roots. */
function tlsRootCertificate(): string {
  const child = spawnSync(process.execPath, ['-e', "process.stdout.write(require('node:tls').rootCertificates[0])"], { encoding: 'utf8' });
  return child.stdout;
}
