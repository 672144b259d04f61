// `--only scale`: zot-ts with 100,000 manifests in 1,000 repositories and about 1,000,000 events
// (--quick: 10,000 in 100, about 100,000 events), next to an empty registry.
//
// The registry is generated, not pushed over HTTP (that would take hours on this machine): the
// files are written into zot's layout with their real digests (no fsync), and the events are
// appended through the registry's own event store, in batches, so that the inline projections
// are built exactly as pushes build them. The import marker is set, as a registry that received
// those pushes would have it; the actors (index.json writer, GC) start from checkpoint 0 and
// catch up on the first start, which is reported as such. Each repository holds 3 shared layers
// and per image a config, a layer and the manifest; each image moves `latest` and `stable`, and
// sets and removes two more tags (10 events per image).
//
// Reported: generation time; the first start (to GET /v2/ and to /startupz, the actors caught
// up); the first GC sweep of every repository; `zot replay`; a second start; _catalog and
// tags-list pagination; small-image push rate at that size and on an empty registry.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { openDatabase } from '../src/events/database.js';
import { EventStore } from '../src/events/store.js';
import type { EventBody } from '../src/events/types.js';
import { manifestPushedEvent } from '../src/events/manifest-pushed.js';
import { createProjections } from '../src/projections/index.js';
import { IMPORTED_META_KEY } from '../src/registry/import.js';
import { parseManifest } from '../src/oci/manifest.js';
import { parseDigest } from '../src/oci/digest.js';
import { blobPath, eventLogFile, ociLayoutPath, OCI_LAYOUT_CONTENT } from '../src/storage/layout.js';
import { OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST } from './client.js';
import { median, pushSmallImages, sizesFor, type SmallImagesResult } from './scenarios.js';
import { startRegistry, type ServerHandle } from './servers.js';

export interface ScaleSizes {
  repositories: number;
  imagesPerRepository: number;
  /** Small images pushed to measure the push rate, at size and on an empty registry. */
  pushImages: number;
}

export function scaleSizesFor(quick: boolean): ScaleSizes {
  return quick ? { repositories: 100, imagesPerRepository: 100, pushImages: 100 } : { repositories: 1000, imagesPerRepository: 100, pushImages: 300 };
}

export interface ScaleResult {
  sizes: ScaleSizes;
  manifests: number;
  events: number;
  files: number;
  generateS: number;
  firstStart: { toFirst200Ms: number; toStartupzMs: number };
  /** `sweeps` counts zot_gc_runs_total when it first reached `repositories`: with a 1 s interval
   *  and a 200 ms poll, it includes second sweeps of the repositories swept first. */
  gcSweep: { repositories: number; sweeps: number; wallS: number; meanPerRepositoryMs: number };
  replayS: number;
  replayExit: number | null;
  secondStart: { toFirst200Ms: number; toStartupzMs: number };
  catalog: { pageSize: number; pages: number; walkMs: number; medianPageMs: number; lastPageMs: number };
  tagsList: { repository: string; pageSize: number; pages: number; walkMs: number; medianPageMs: number; lastPageMs: number };
  pushAtSize: SmallImagesResult;
  pushEmpty: SmallImagesResult;
}

type Log = (message: string) => void;

const sha256 = (data: Buffer): string => `sha256:${crypto.createHash('sha256').update(data).digest('hex')}`;

/** Writes `data` at the layout path `rel` under `root`, creating its directory. */
function put(root: string, rel: string, data: Buffer | string, dirs: Set<string>): void {
  const file = path.join(root, rel);
  const dir = path.dirname(file);
  if (!dirs.has(dir)) {
    fs.mkdirSync(dir, { recursive: true });
    dirs.add(dir);
  }
  fs.writeFileSync(file, data);
}

/** Generates the registry under `root`; returns how many manifests, events and files it holds. */
export async function generate(root: string, sizes: ScaleSizes, log: Log): Promise<{ manifests: number; events: number; files: number }> {
  const db = openDatabase(eventLogFile(root));
  const store = new EventStore(db, createProjections());
  const context = { identity: 'bench' };
  const dirs = new Set<string>();
  let files = 0;
  for (let r = 0; r < sizes.repositories; r++) {
    const repo = `scale/r${r}`;
    put(root, ociLayoutPath(repo), OCI_LAYOUT_CONTENT, dirs);
    const events: EventBody[] = [];
    const blob = (data: Buffer): { digest: string; size: number } => {
      const digest = sha256(data);
      put(root, blobPath(repo, parseDigest(digest)), data, dirs);
      files++;
      events.push({ type: 'BlobPushed', repo, digest, size: data.length });
      return { digest, size: data.length };
    };
    const shared = [0, 1, 2].map(() => blob(crypto.randomBytes(256)));
    const tagAt = new Map<string, string>();
    const setTag = (tag: string, digest: string): void => {
      const previous = tagAt.get(tag);
      events.push({ type: 'TagSet', repo, tag, digest, ...(previous ? { previous } : {}) });
      tagAt.set(tag, digest);
    };
    const removeTag = (tag: string): void => {
      const digest = tagAt.get(tag) as string;
      events.push({ type: 'TagRemoved', repo, tag, digest });
      tagAt.delete(tag);
    };
    for (let i = 0; i < sizes.imagesPerRepository; i++) {
      const config = blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { repo, image: String(i), nonce: crypto.randomUUID() } } })));
      const layer = blob(crypto.randomBytes(64));
      const content = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: { mediaType: OCI_CONFIG, ...config },
          layers: [...shared, layer].map((l) => ({ mediaType: OCI_LAYER_GZIP, ...l })),
        }),
      );
      const digest = sha256(content);
      put(root, blobPath(repo, parseDigest(digest)), content, dirs);
      files++;
      events.push(manifestPushedEvent(repo, digest, content.length, parseManifest(content, OCI_MANIFEST)));
      setTag(`v${i}`, digest);
      setTag('latest', digest);
      setTag(`ci-${i}`, digest);
      removeTag(`ci-${i}`);
      setTag('stable', digest);
      setTag(`rc-${i}`, digest);
      removeTag(`rc-${i}`);
    }
    await store.append(events, context);
    if ((r + 1) % Math.max(1, Math.floor(sizes.repositories / 10)) === 0) log(`scale: generated ${r + 1}/${sizes.repositories} repositories, ${store.head()} events`);
  }
  store.setMeta(IMPORTED_META_KEY, new Date().toISOString());
  const events = store.head();
  store.complete();
  db.close();
  return { manifests: sizes.repositories * sizes.imagesPerRepository, events, files };
}

async function get(url: string): Promise<{ status: number; body: string; link: string | null; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(url);
  const body = await res.text();
  return { status: res.status, body, link: res.headers.get('link'), ms: performance.now() - t0 };
}

/** Polls `url` until it answers 200; milliseconds since `since`. */
async function until200(url: string, since: number, timeoutMs: number): Promise<number> {
  for (;;) {
    const res = await fetch(url).catch(() => undefined);
    if (res?.status === 200) return performance.now() - since;
    if (performance.now() - since > timeoutMs) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Follows the Link headers of a paginated list from `first`; every page's latency. */
async function walk(baseUrl: string, first: string): Promise<{ pages: number; walkMs: number; pageMs: number[] }> {
  const pageMs: number[] = [];
  const t0 = performance.now();
  for (let next: string | undefined = first; next !== undefined; ) {
    const page = await get(`${baseUrl}${next}`);
    if (page.status !== 200) throw new Error(`GET ${next} answered ${page.status}: ${page.body.slice(0, 200)}`);
    pageMs.push(page.ms);
    next = page.link?.match(/<([^>]+)>/)?.[1];
  }
  return { pages: pageMs.length, walkMs: performance.now() - t0, pageMs };
}

async function metric(baseUrl: string, name: string): Promise<number> {
  const text = (await get(`${baseUrl}/metrics`)).body;
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** Waits until GC has run at least `repositories` sweeps since the start; returns how many it ran. */
async function sweptAll(baseUrl: string, repositories: number): Promise<number> {
  for (;;) {
    const swept = await metric(baseUrl, 'zot_gc_runs_total');
    if (swept >= repositories) return swept;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export async function measureScale(quick: boolean, tmpRoot: string, repoRoot: string, log: Log): Promise<ScaleResult> {
  const sizes = scaleSizesFor(quick);
  const dataDir = path.join(tmpRoot, 'scale-root');
  log(`scale: generating ${sizes.repositories * sizes.imagesPerRepository} manifests in ${sizes.repositories} repositories`);
  const t0 = performance.now();
  const generated = await generate(dataDir, sizes, log);
  const generateS = (performance.now() - t0) / 1000;
  log(`scale: generated ${generated.events} events and ${generated.files} files in ${generateS.toFixed(1)} s`);

  const zotConfig = { extensions: { metrics: { enable: true, prometheus: { path: '/metrics' } } } };
  // GC on, with a delay that keeps everything: the sweep's cost is what is measured.
  const zotStorage = { gc: true, gcDelay: '24h', gcInterval: '1s' };
  const start = async (dir: string): Promise<{ server: ServerHandle; toFirst200Ms: number; toStartupzMs: number; at: number }> => {
    const at = performance.now();
    const server = await startRegistry({ kind: 'zot', tmpRoot, repoRoot, dataDir: dir, zotConfig, zotStorage, readyTimeoutMs: 600_000 });
    const toStartupzMs = await until200(`${server.baseUrl}/startupz`, at, 1_800_000);
    return { server, toFirst200Ms: server.startupMs, toStartupzMs, at };
  };

  // First start: the actors catch up on the whole log; then every repository's first GC sweep.
  const first = await start(dataDir);
  log(`scale: first start ${first.toFirst200Ms.toFixed(0)} ms to /v2/, ${first.toStartupzMs.toFixed(0)} ms to /startupz`);
  const swept = await sweptAll(first.server.baseUrl, sizes.repositories);
  const gcWallS = (performance.now() - first.at) / 1000;
  const gcSum = await metric(first.server.baseUrl, 'zot_gc_duration_seconds_sum');
  const gcCount = await metric(first.server.baseUrl, 'zot_gc_duration_seconds_count');
  const gcSweep = { repositories: sizes.repositories, sweeps: swept, wallS: gcWallS, meanPerRepositoryMs: (gcSum / Math.max(1, gcCount)) * 1000 };
  log(`scale: GC ran ${swept} sweeps over ${sizes.repositories} repositories, mean ${gcSweep.meanPerRepositoryMs.toFixed(1)} ms each`);
  await first.server.stop();

  log('scale: zot replay');
  const configPath = path.join(tmpRoot, 'scale-replay.json');
  fs.writeFileSync(configPath, JSON.stringify({ distSpecVersion: '1.1.0', http: { address: '127.0.0.1', port: '0' }, storage: { rootDirectory: dataDir } }));
  const r0 = performance.now();
  const replay = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'zot.js'), 'replay', configPath], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const replayS = (performance.now() - r0) / 1000;
  log(`scale: replay ${replayS.toFixed(1)} s, exit ${replay.status}: ${(replay.stdout ?? '').trim().split('\n').pop() ?? ''}`);

  const second = await start(dataDir);
  log(`scale: second start ${second.toFirst200Ms.toFixed(0)} ms to /v2/, ${second.toStartupzMs.toFixed(0)} ms to /startupz`);
  const base = second.server.baseUrl;
  // After the sweep every start schedules, so that the push rate is the registry's, not GC's.
  await sweptAll(base, sizes.repositories);
  const catalogWalk = await walk(base, '/v2/_catalog?n=100');
  const repository = 'scale/r0';
  const tagsWalk = await walk(base, `/v2/${repository}/tags/list?n=10`);
  const pushSizes = { ...sizesFor(quick), smallImages: sizes.pushImages };
  const pushAtSize = await pushSmallImages(base, pushSizes);
  log(`scale: push at size ${pushAtSize.imagesPerS.toFixed(1)} images/s`);
  await second.server.stop();

  const empty = await start(path.join(tmpRoot, 'scale-empty'));
  const pushEmpty = await pushSmallImages(empty.server.baseUrl, pushSizes);
  log(`scale: push on an empty registry ${pushEmpty.imagesPerS.toFixed(1)} images/s`);
  await empty.server.stop();

  const pageFigures = (w: { pages: number; walkMs: number; pageMs: number[] }) => ({ pages: w.pages, walkMs: w.walkMs, medianPageMs: median(w.pageMs), lastPageMs: w.pageMs[w.pageMs.length - 1] ?? 0 });
  return {
    sizes,
    ...generated,
    generateS,
    firstStart: { toFirst200Ms: first.toFirst200Ms, toStartupzMs: first.toStartupzMs },
    gcSweep,
    replayS,
    replayExit: replay.status,
    secondStart: { toFirst200Ms: second.toFirst200Ms, toStartupzMs: second.toStartupzMs },
    catalog: { pageSize: 100, ...pageFigures(catalogWalk) },
    tagsList: { repository, pageSize: 10, ...pageFigures(tagsWalk) },
    pushAtSize,
    pushEmpty,
  };
}

export function renderScale(r: ScaleResult): string {
  const ms = (x: number): string => `${x.toFixed(0)} ms`;
  return [
    `scale: ${r.manifests.toLocaleString('en')} manifests in ${r.sizes.repositories.toLocaleString('en')} repositories, ${r.events.toLocaleString('en')} events, ${r.files.toLocaleString('en')} files (generated in ${r.generateS.toFixed(1)} s: files written and events appended through the event store, not pushed over HTTP)`,
    `  first start (actors from checkpoint 0)   ${ms(r.firstStart.toFirst200Ms)} to GET /v2/, ${ms(r.firstStart.toStartupzMs)} to /startupz`,
    `  GC, first sweep of every repository     ${r.gcSweep.repositories} repositories swept by ${r.gcSweep.wallS.toFixed(1)} s after the spawn (${r.gcSweep.sweeps} sweeps counted), mean ${r.gcSweep.meanPerRepositoryMs.toFixed(1)} ms per sweep`,
    `  zot replay                              ${r.replayS.toFixed(1)} s (exit ${r.replayExit})`,
    `  second start                            ${ms(r.secondStart.toFirst200Ms)} to GET /v2/, ${ms(r.secondStart.toStartupzMs)} to /startupz`,
    `  _catalog, n=${r.catalog.pageSize}                         ${r.catalog.pages} pages in ${ms(r.catalog.walkMs)}; median page ${r.catalog.medianPageMs.toFixed(1)} ms, last page ${r.catalog.lastPageMs.toFixed(1)} ms`,
    `  tags list of ${r.tagsList.repository}, n=${r.tagsList.pageSize}          ${r.tagsList.pages} pages in ${ms(r.tagsList.walkMs)}; median page ${r.tagsList.medianPageMs.toFixed(1)} ms, last page ${r.tagsList.lastPageMs.toFixed(1)} ms`,
    `  push ${r.pushAtSize.images} small images, c=16            ${r.pushAtSize.imagesPerS.toFixed(1)} images/s at this size, ${r.pushEmpty.imagesPerS.toFixed(1)} on an empty registry`,
  ].join('\n');
}
