// Sync figures (`npm run bench -- --only sync`), each on servers of its own, all on 127.0.0.1:
//
//   S1. periodic sync: zot-ts mirrors N images (one unique layer each) from the distribution
//       registry; images/s and MB/s of its first poll, from its own `sync poll started` and
//       `sync poll finished` log lines (distribution has no periodic sync: zot-ts only);
//   S2. first pull of one big image (one layer): directly from the distribution upstream, through
//       zot-ts on demand, and through distribution in proxy mode (its pull-through cache); total
//       time, MB/s and time to the first byte of the layer; then the same pull again (cached).
//
// The pulling client GETs the manifest by tag, the config, then the layer, hashing the layer as it
// arrives (as a real client verifies it), on a keep-alive connection.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { keepAliveAgent, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, OciClient } from './client.js';
import { imageOver, runPool, sha256, writeRandomFile } from './scenarios.js';
import { startRegistry, type ServerHandle } from './servers.js';

const MiB = 1024 * 1024;

export interface PeriodicFigures {
  images: number;
  bytes: number;
  seconds: number;
  imagesPerS: number;
  mibPerS: number;
}

export interface PullFigures {
  seconds: number;
  mibPerS: number;
  /** From the layer GET to its first body byte. */
  layerTtfbMs: number;
  /** From the manifest GET to the first byte of the layer (what a client waits before data flows). */
  firstLayerByteMs: number;
}

export interface SyncBenchResult {
  sizes: { periodicImages: number; periodicLayerBytes: number; pullLayerBytes: number };
  periodic: PeriodicFigures | Error;
  pulls: Record<'direct' | 'zot' | 'proxy' | 'zotCached' | 'proxyCached', PullFigures | Error>;
}

type Log = (msg: string) => void;

export async function measureSync(quick: boolean, tmpRoot: string, repoRoot: string, log: Log): Promise<SyncBenchResult> {
  const sizes = {
    periodicImages: quick ? 40 : 200,
    periodicLayerBytes: quick ? 256 * 1024 : 1 * MiB,
    pullLayerBytes: quick ? 32 * MiB : 256 * MiB,
  };
  const periodic = await attempt(() => periodicSync(sizes.periodicImages, sizes.periodicLayerBytes, tmpRoot, repoRoot, log));
  const pulls = await firstPulls(sizes.pullLayerBytes, tmpRoot, repoRoot, log);
  return { sizes, periodic, pulls };
}

async function attempt<T>(work: () => Promise<T>): Promise<T | Error> {
  try {
    return await work();
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

// ---- S1 ------------------------------------------------------------------------------------

async function periodicSync(count: number, layerBytes: number, tmpRoot: string, repoRoot: string, log: Log): Promise<PeriodicFigures> {
  const upstream = await startRegistry({ kind: 'distribution', tmpRoot, repoRoot });
  let mirror: ServerHandle | undefined;
  try {
    log(`S1: pushing ${count} images of ${(layerBytes / 1024).toFixed(0)} KiB to distribution`);
    const client = new OciClient(upstream.baseUrl, keepAliveAgent(8));
    await runPool(count, 8, async (i) => {
      const layer = crypto.randomBytes(layerBytes);
      const layerDigest = sha256(layer);
      const image = imageOver(i, [{ data: layer, digest: layerDigest }]);
      const repo = `mirror/app${String(i).padStart(3, '0')}`;
      await pushBuffer(client, repo, layer, layerDigest);
      await pushBuffer(client, repo, image.config, image.configDigest);
      await client.putManifest(repo, 'v1', image.manifest, OCI_MANIFEST);
    });
    log('S1: zot-ts syncing them periodically');
    const sync = { enable: true, registries: [{ urls: [upstream.baseUrl], pollInterval: '24h', content: [{ prefix: 'mirror/**' }] }] };
    mirror = await startRegistry({ kind: 'zot', tmpRoot, repoRoot, zotConfig: { log: { level: 'info' }, extensions: { sync } } });
    const finished = await waitForLogLine(mirror, 'sync poll finished', 30 * 60_000);
    const { synced, failed, bytes, durationMs } = finished as { synced: number; failed: number; bytes: number; durationMs: number };
    if (synced !== count || failed !== 0) throw new Error(`the poll synced ${synced} of ${count} images (${failed} failed)`);
    const seconds = durationMs / 1000;
    return { images: synced, bytes, seconds, imagesPerS: synced / seconds, mibPerS: bytes / MiB / seconds };
  } finally {
    await mirror?.stop();
    await upstream.stop();
  }
}

/** POST, then PUT ?digest= with the bytes: distribution leaves a body sent with the POST unread. */
async function pushBuffer(client: OciClient, repo: string, data: Buffer, digest: string): Promise<void> {
  const location = await client.startUpload(repo);
  location.searchParams.set('digest', digest);
  const res = await client.request('PUT', location, { 'content-type': 'application/octet-stream' }, { kind: 'buffer', data });
  if (res.status !== 201) throw new Error(`PUT ${location.pathname} answered ${res.status}`);
}

/** The first JSON log line of the server with message `msg`, waiting for it. */
async function waitForLogLine(server: ServerHandle, msg: string, timeoutMs: number): Promise<Record<string, unknown>> {
  const deadline = performance.now() + timeoutMs;
  const logFile = path.join(server.dir, 'server.log');
  for (;;) {
    const text = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
    for (const line of text.split('\n')) {
      if (!line.includes(`"msg":"${msg}"`)) continue;
      return JSON.parse(line) as Record<string, unknown>;
    }
    const exited = server.exitStatus();
    if (exited !== undefined) throw new Error(`zot-ts ${exited} before logging ${msg}`);
    if (performance.now() > deadline) throw new Error(`no "${msg}" line within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

// ---- S2 ------------------------------------------------------------------------------------

async function firstPulls(layerBytes: number, tmpRoot: string, repoRoot: string, log: Log): Promise<SyncBenchResult['pulls']> {
  const upstream = await startRegistry({ kind: 'distribution', tmpRoot, repoRoot });
  const started: ServerHandle[] = [upstream];
  try {
    log(`S2: pushing one image with a ${layerBytes / MiB} MiB layer to distribution`);
    const layer = writeRandomFile(path.join(tmpRoot, 'sync-layer.bin'), layerBytes);
    const client = new OciClient(upstream.baseUrl, keepAliveAgent(2));
    await client.pushBlobMonolithic('big/app', layer);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] } }));
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
        layers: [{ mediaType: OCI_LAYER_GZIP, digest: layer.digest, size: layer.size }],
      }),
    );
    await client.pushSmallBlob('big/app', config, sha256(config));
    await client.putManifest('big/app', 'v1', manifest, OCI_MANIFEST);
    fs.rmSync(layer.path);
    const pull = (base: string): Promise<PullFigures | Error> => attempt(() => timedPull(base, 'big/app', 'v1', layerBytes));

    log('S2: direct pull from distribution');
    const direct = await pull(upstream.baseUrl);
    log('S2: first pull through zot-ts on demand');
    const zot = await startRegistry({
      kind: 'zot',
      tmpRoot,
      repoRoot,
      zotConfig: { extensions: { sync: { enable: true, registries: [{ urls: [upstream.baseUrl], onDemand: true }] } } },
    });
    started.push(zot);
    const zotFirst = await pull(zot.baseUrl);
    await waitUntilStored(zot.baseUrl, 'big/app', layer.digest);
    const zotCached = await pull(zot.baseUrl);
    log('S2: first pull through distribution in proxy mode');
    const proxy = await startRegistry({ kind: 'distribution', tmpRoot, repoRoot, distributionProxy: upstream.baseUrl });
    started.push(proxy);
    const proxyFirst = await pull(proxy.baseUrl);
    await sleep(2000); // distribution stores the proxied blob in the background as well
    const proxyCached = await pull(proxy.baseUrl);
    return { direct, zot: zotFirst, proxy: proxyFirst, zotCached, proxyCached };
  } finally {
    for (const server of started.reverse()) await server.stop();
  }
}

/** zot-ts has the blob on its own storage (HEAD answers once the digest is verified). */
async function waitUntilStored(base: string, repo: string, digest: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const res = await fetch(`${base}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
    if (res.status === 200) return;
    await sleep(100);
  }
  throw new Error('the pulled blob was not stored within 60 s');
}

async function timedPull(base: string, repo: string, tag: string, expectedLayerBytes: number): Promise<PullFigures> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const t0 = performance.now();
    const manifest = JSON.parse((await get(agent, `${base}/v2/${repo}/manifests/${tag}`, OCI_MANIFEST)).body.toString('utf8')) as {
      config: { digest: string };
      layers: { digest: string; size: number }[];
    };
    await get(agent, `${base}/v2/${repo}/blobs/${manifest.config.digest}`);
    const layer = manifest.layers[0];
    if (!layer) throw new Error('the image has no layer');
    const tLayer = performance.now();
    const got = await get(agent, `${base}/v2/${repo}/blobs/${layer.digest}`, undefined, true);
    const t1 = performance.now();
    if (got.bytes !== expectedLayerBytes) throw new Error(`the layer came with ${got.bytes} bytes, not ${expectedLayerBytes}`);
    if (got.digest !== layer.digest) throw new Error(`the layer hashes to ${got.digest}, not ${layer.digest}`);
    const seconds = (t1 - t0) / 1000;
    return { seconds, mibPerS: got.bytes / MiB / seconds, layerTtfbMs: (got.firstByteAt ?? t1) - tLayer, firstLayerByteMs: (got.firstByteAt ?? t1) - t0 };
  } finally {
    agent.destroy();
  }
}

interface Got {
  body: Buffer;
  bytes: number;
  digest?: string;
  firstByteAt?: number;
}

/** One GET answered 200; a streamed body is hashed and counted, a small one kept. */
function get(agent: http.Agent, url: string, accept?: string, stream = false): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers: accept ? { Accept: accept } : {}, timeout: 300_000 }, (res) => {
      const hash = crypto.createHash('sha256');
      const chunks: Buffer[] = [];
      let bytes = 0;
      let firstByteAt: number | undefined;
      res.on('data', (chunk: Buffer) => {
        firstByteAt ??= performance.now();
        bytes += chunk.length;
        if (stream) hash.update(chunk);
        else chunks.push(chunk);
      });
      res.on('end', () => {
        if (res.statusCode !== 200) {
          reject(new Error(`GET ${url} answered ${res.statusCode}: ${Buffer.concat(chunks).toString('utf8').slice(0, 300)}`));
          return;
        }
        resolve({ body: Buffer.concat(chunks), bytes, ...(stream ? { digest: `sha256:${hash.digest('hex')}` } : {}), ...(firstByteAt !== undefined ? { firstByteAt } : {}) });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} stalled`)));
    req.on('error', reject);
  });
}

// ---- the table -------------------------------------------------------------------------------

export function renderSync(result: SyncBenchResult): string {
  const { sizes, periodic, pulls } = result;
  const out: string[] = [];
  const fmt = (value: number, digits = 1): string => value.toFixed(digits);
  out.push(`S1. periodic sync of ${sizes.periodicImages} images (one ${(sizes.periodicLayerBytes / 1024).toFixed(0)} KiB layer each) from distribution, zot-ts:`);
  out.push(
    periodic instanceof Error
      ? `    failed: ${periodic.message}`
      : `    ${fmt(periodic.imagesPerS)} images/s, ${fmt(periodic.mibPerS)} MiB/s (${periodic.images} images, ${fmt(periodic.bytes / MiB)} MiB in ${fmt(periodic.seconds, 2)} s)`,
  );
  out.push('');
  out.push(`S2. pull of one image with a ${sizes.pullLayerBytes / MiB} MiB layer (manifest, config, layer; the layer hashed as it arrives):`);
  const columns: [string, PullFigures | Error][] = [
    ['direct from distribution', pulls.direct],
    ['zot-ts on demand, first', pulls.zot],
    ['distribution proxy, first', pulls.proxy],
    ['zot-ts, second (cached)', pulls.zotCached],
    ['distribution proxy, second', pulls.proxyCached],
  ];
  out.push(`    ${'pull'.padEnd(28)} ${'total s'.padStart(9)} ${'MiB/s'.padStart(8)} ${'layer TTFB ms'.padStart(14)} ${'first layer byte ms'.padStart(20)}`);
  for (const [label, figures] of columns) {
    if (figures instanceof Error) {
      out.push(`    ${label.padEnd(28)} failed: ${figures.message}`);
      continue;
    }
    out.push(
      `    ${label.padEnd(28)} ${fmt(figures.seconds, 2).padStart(9)} ${fmt(figures.mibPerS).padStart(8)} ${fmt(figures.layerTtfbMs).padStart(14)} ${fmt(figures.firstLayerByteMs).padStart(20)}`,
    );
  }
  return out.join('\n');
}
