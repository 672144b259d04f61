// /metrics as a Prometheus server scrapes it: zot's metric names, labels and types, figures that
// equal exactly what the test did, and the per-repository figures still equal after a restart on
// the same root (they come from the event log and the metrics actor's table, not from memory).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import { startRegistry } from '../../src/app.js';
import { pino } from 'pino';
import { eventually, expectOciError } from '../helpers/http.js';
import { makeImage, pushBlob, pushImage, sha256, type TestImage } from '../helpers/oci.js';
import { byLabel, sampleValue, samplesOf, scrape, type Exposition } from '../helpers/prometheus.js';
import { makeTempDir, startTestRegistry, testConfig, type TestRegistry } from '../helpers/registry.js';

const METRICS_ON = { extensions: { metrics: { enable: true, prometheus: { path: '/metrics' } } } };

const running: TestRegistry[] = [];
async function start(options: Parameters<typeof startTestRegistry>[0] = {}): Promise<TestRegistry> {
  const registry = await startTestRegistry({ ...METRICS_ON, ...options });
  running.push(registry);
  return registry;
}
async function stop(registry: TestRegistry): Promise<void> {
  running.splice(running.indexOf(registry), 1);
  await registry.stop();
}
after(async () => {
  for (const registry of running.splice(0)) await registry.stop();
});

/** Bytes the repository holds: its blobs and manifests, each once. */
function imageBytes(image: TestImage): number {
  return image.config.length + image.layers.reduce((n, layer) => n + layer.length, 0) + Buffer.byteLength(image.manifestBytes);
}

async function request(url: string, method: string, expected: number): Promise<void> {
  const res = await fetch(url, { method });
  assert.equal(res.status, expected, `${method} ${url}`);
  await res.arrayBuffer();
}

async function scrapeAfterActors(registry: TestRegistry): Promise<Exposition> {
  await registry.running.actorsCaughtUp();
  return scrape(`${registry.url}/metrics`);
}

/**
 * A client can read the whole answer before the server has run its onResponse hook, where a
 * request is counted: scrape until `settled` holds (or fail after a while).
 */
async function scrapeWhen(registry: TestRegistry, settled: (e: Exposition) => boolean): Promise<Exposition> {
  let last: Exposition | undefined;
  await eventually(async () => {
    last = await scrapeAfterActors(registry);
    return settled(last);
  }, 'the last requests to be counted');
  return last as Exposition;
}

describe('metrics', () => {
  it('count pushes, pulls, storage and requests exactly, keep them across a restart, and lower storage on deletes', async () => {
    const registry = await start();
    const { url } = registry;
    const one = makeImage({ layers: 1, layerBytes: 700 });
    const two = makeImage({ layers: 2, layerBytes: 300 });

    assert.equal((await pushImage(url, 'obs/one', 'v1', one)).status, 201);
    assert.equal((await pushImage(url, 'obs/two', 'v1', two)).status, 201);
    // A cross-repository mount adds the layer's bytes to the target, not an upload.
    const mount = await fetch(`${url}/v2/obs/three/blobs/uploads/?mount=${sha256(one.layers[0] as Buffer)}&from=obs/one`, { method: 'POST' });
    assert.equal(mount.status, 201);

    // Downloads as zot counts them: every manifest GET and HEAD answered 200.
    for (let i = 0; i < 3; i++) await request(`${url}/v2/obs/one/manifests/v1`, 'GET', 200);
    await request(`${url}/v2/obs/one/manifests/v1`, 'HEAD', 200);
    await request(`${url}/v2/obs/two/manifests/${two.digest}`, 'GET', 200);
    await request(`${url}/v2/obs/two/manifests/${two.digest}`, 'GET', 200);
    // Not downloads: a missing manifest, a blob.
    await request(`${url}/v2/obs/one/manifests/missing`, 'GET', 404);
    await request(`${url}/v2/obs/one/blobs/${sha256(one.config)}`, 'GET', 200);

    // Every request the test made, by method and status; scrapes are not counted (as in zot).
    const requests = { 'GET 200': 6, 'GET 404': 1, 'HEAD 200': 1, 'POST 201': 6, 'PUT 201': 2 };
    const counted = (e: Exposition): Record<string, number> =>
      Object.fromEntries(samplesOf(e, 'zot_http_requests_total').map((s) => [`${s.labels.method} ${s.labels.code}`, s.value]));
    const total = Object.values(requests).reduce((a, b) => a + b, 0);
    const first = await scrapeWhen(registry, (e) => Object.values(counted(e)).reduce((a, b) => a + b, 0) >= total);
    assert.deepEqual(counted(first), requests);
    assert.deepEqual(counted(await scrape(`${url}/metrics`)), requests);

    assert.deepEqual(byLabel(first, 'zot_repo_uploads_total', 'repo'), { 'obs/one': 1, 'obs/two': 1 });
    assert.deepEqual(byLabel(first, 'zot_repo_downloads_total', 'repo'), { 'obs/one': 4, 'obs/two': 2 });
    const storage = { 'obs/one': imageBytes(one), 'obs/two': imageBytes(two), 'obs/three': (one.layers[0] as Buffer).length };
    assert.deepEqual(byLabel(first, 'zot_repo_storage_bytes', 'repo'), storage);

    // The latency histogram has zot's buckets and one observation per request.
    const getBuckets = samplesOf(first, 'zot_http_method_latency_seconds_bucket', { method: 'GET' }).map((s) => s.labels.le);
    assert.deepEqual(getBuckets, ['0.05', '0.5', '1', '5', '30', '60', '600', '+Inf']);
    assert.equal(sampleValue(first, 'zot_http_method_latency_seconds_count', { method: 'GET' }), 7);
    assert.equal(sampleValue(first, 'zot_http_method_latency_seconds_bucket', { method: 'GET', le: '+Inf' }), 7);
    // By repository, as zot labels paths: /v2/<name>/(blobs|tags|manifests)/… (the mount and the
    // uploads are under blobs/), the rest "N/A".
    assert.deepEqual(byLabel(first, 'zot_http_repo_latency_seconds_count', 'repo'), { 'obs/one': 9, 'obs/two': 6, 'obs/three': 1 });
    assert.equal(samplesOf(first, 'zot_http_repo_latency_seconds', {}).length, 0, 'zot summaries have no quantiles');

    // Our own figures: the log's length, and no actor behind it once caught up.
    assert.equal(sampleValue(first, 'zot_event_log_length'), registry.running.store.count());
    assert.deepEqual(byLabel(first, 'zot_actor_lag_events', 'actor'), { 'garbage-collector': 0, 'index-json-writer': 0, metrics: 0 });

    // Restart on the same root: the per-repository figures are the same; the request counters,
    // process figures in zot too, start again.
    await stop(registry);
    const again = await start({ root: registry.root });
    const second = await scrapeAfterActors(again);
    assert.deepEqual(byLabel(second, 'zot_repo_uploads_total', 'repo'), { 'obs/one': 1, 'obs/two': 1 });
    assert.deepEqual(byLabel(second, 'zot_repo_downloads_total', 'repo'), { 'obs/one': 4, 'obs/two': 2 });
    assert.deepEqual(byLabel(second, 'zot_repo_storage_bytes', 'repo'), storage);
    assert.deepEqual(counted(second), {});

    // Deletes lower the storage: the manifest, then a layer nothing references any more.
    await request(`${again.url}/v2/obs/two/manifests/${two.digest}`, 'DELETE', 202);
    await request(`${again.url}/v2/obs/two/blobs/${sha256(two.layers[0] as Buffer)}`, 'DELETE', 202);
    const third = await scrapeAfterActors(again);
    const left = (two.layers[1] as Buffer).length + two.config.length;
    assert.equal(sampleValue(third, 'zot_repo_storage_bytes', { repo: 'obs/two' }), left);
    assert.equal(sampleValue(third, 'zot_repo_uploads_total', { repo: 'obs/two' }), 1, 'a delete does not undo an upload');

    // And the lower figure is what the next start loads.
    await stop(again);
    const last = await start({ root: registry.root });
    assert.equal(sampleValue(await scrapeAfterActors(last), 'zot_repo_storage_bytes', { repo: 'obs/two' }), left);
  });

  it('count a manifest pushed again under another tag once, and a blob pushed twice once in storage', async () => {
    const registry = await start();
    const image = makeImage();
    assert.equal((await pushImage(registry.url, 'obs/again', 'a', image)).status, 201);
    assert.equal((await pushImage(registry.url, 'obs/again', 'b', image)).status, 201);
    await pushBlob(registry.url, 'obs/again', image.config);
    const exposition = await scrapeAfterActors(registry);
    assert.equal(sampleValue(exposition, 'zot_repo_uploads_total', { repo: 'obs/again' }), 1);
    assert.equal(sampleValue(exposition, 'zot_repo_storage_bytes', { repo: 'obs/again' }), imageBytes(image));
  });

  it("have zot's types, and register the GC, scheduler and storage-lock series at zero", async () => {
    const registry = await start();
    const exposition = await scrape(`${registry.url}/metrics`);
    const expected: Record<string, string> = {
      zot_info: 'gauge',
      zot_http_requests_total: 'counter',
      zot_http_method_latency_seconds: 'histogram',
      zot_http_repo_latency_seconds: 'summary',
      zot_repo_downloads_total: 'counter',
      zot_repo_uploads_total: 'counter',
      zot_repo_storage_bytes: 'gauge',
      zot_storage_lock_latency_seconds: 'histogram',
      zot_gc_runs_total: 'counter',
      zot_gc_deleted_total: 'counter',
      zot_gc_duration_seconds: 'summary',
      zot_scheduler_generators_total: 'counter',
      zot_scheduler_generators_status: 'gauge',
      zot_scheduler_workers_total: 'gauge',
      zot_scheduler_workers: 'gauge',
      zot_scheduler_tasksqueue_length: 'gauge',
      zot_scheduler_workers_tasks_duration_seconds: 'histogram',
      zot_event_log_length: 'gauge',
      zot_actor_lag_events: 'gauge',
    };
    for (const [name, type] of Object.entries(expected)) assert.equal(exposition.types.get(name), type, name);
    assert.equal(sampleValue(exposition, 'zot_gc_duration_seconds_count'), 0);
    assert.equal(sampleValue(exposition, 'zot_scheduler_generators_total'), 0);
    const info = samplesOf(exposition, 'zot_info');
    assert.equal(info.length, 1);
    assert.deepEqual(Object.keys(info[0]?.labels ?? {}).sort(), ['binaryType', 'commit', 'goVersion', 'version']);
    assert.equal(info[0]?.labels.version, '1.1.0');
  });

  it('are off by default and when disabled: the path answers 404 like any unknown route', async () => {
    const off = await startTestRegistry();
    running.push(off);
    await expectOciError(await fetch(`${off.url}/metrics`), 404, 'UNSUPPORTED');
    const disabled = await start({ extensions: { metrics: { enable: false } } });
    await expectOciError(await fetch(`${disabled.url}/metrics`), 404, 'UNSUPPORTED');
    // Still routed normally otherwise.
    assert.equal((await fetch(`${disabled.url}/v2/`)).status, 200);
  });

  it("are served by the seed document's top-level form, on its path, from a config file's text", async () => {
    // As a config file written for the seed document reads: `"enable": "true"`, a string.
    const { config, problems } = validateConfig({
      ...testConfig({ root: `${makeTempDir()}/root` }),
      metrics: { enable: 'true', prometheus: { path: '/prom/metrics' } },
    });
    assert.deepEqual(problems, []);
    assert.ok(config);
    const app = await startRegistry(config, { logger: pino({ level: 'silent' }) });
    try {
      const exposition = await scrape(`${app.url}/prom/metrics`);
      assert.ok(exposition.types.has('zot_repo_uploads_total'));
      await expectOciError(await fetch(`${app.url}/metrics`), 404, 'UNSUPPORTED');
    } finally {
      await app.close();
    }
  });

  it("are served at /metrics by an extensions section without a path or enable, as zot's defaults", async () => {
    const registry = await start({ extensions: { metrics: {} } });
    assert.ok((await scrape(`${registry.url}/metrics`)).types.has('zot_info'));
  });
});
