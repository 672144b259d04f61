// A read-only registry (http.ReadOnly) next to a writing one on the same root: it writes nothing
// to the root (no temporary files cleared, no checkpoints, no index.json, no event appended, the
// event log's bytes and its WAL unchanged), follows what the writer appends, and refuses writes
// with 405 UNSUPPORTED without recording them.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually, expectOciError } from '../helpers/http.js';
import { makeImage, pushImage, pushManifest, sha256, type TestImage } from '../helpers/oci.js';
import { sampleValue, scrape } from '../helpers/prometheus.js';
import { makeTempDir, spawnRegistry, startTestRegistry, type RegistryProcess, type TestRegistry } from '../helpers/registry.js';

interface FileState {
  kind: 'file' | 'directory';
  size: number;
  mtimeMs: number;
  sha256?: string;
}

/**
 * Every file and directory under the root with its size and mtime, and every file's checksum
 * (the event log and its WAL included). SQLite's -shm is left out: it is the shared-memory index
 * every reader of a WAL database maps and marks, not data.
 */
function snapshot(root: string): Record<string, FileState> {
  const state: Record<string, FileState> = {};
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      const relative = path.relative(root, full);
      if (relative.endsWith('.db-shm')) continue;
      const stat = fs.statSync(full);
      if (entry.isDirectory()) {
        state[relative] = { kind: 'directory', size: 0, mtimeMs: stat.mtimeMs };
        walk(full);
      } else {
        state[relative] = { kind: 'file', size: stat.size, mtimeMs: stat.mtimeMs, sha256: createHash('sha256').update(fs.readFileSync(full)).digest('hex') };
      }
    }
  };
  walk(root);
  return state;
}

async function status(url: string, method = 'GET'): Promise<number> {
  const res = await fetch(url, { method });
  await res.arrayBuffer();
  return res.status;
}

describe('a read-only registry next to a writer on the same root', () => {
  let writer: TestRegistry;
  let readOnly: RegistryProcess | undefined;
  let root = '';
  let auditFile = '';
  let image: TestImage;
  let inFlight = '';
  let before_: Record<string, FileState> = {};
  let headBefore = 0;

  before(async () => {
    writer = await startTestRegistry({ storage: { gc: false } });
    root = writer.root;
    image = makeImage();
    assert.equal((await pushImage(writer.url, 'ro/app', 'v1', image)).status, 201);
    await writer.running.actorsCaughtUp();
    // A file the writer is writing (an upload being placed): another instance must leave it.
    inFlight = path.join(root, '.zot-ts', 'tmp', 'in-flight.tmp');
    fs.mkdirSync(path.dirname(inFlight), { recursive: true });
    fs.writeFileSync(inFlight, 'bytes on their way');
    headBefore = writer.running.store.head();
    before_ = snapshot(root);
    auditFile = path.join(makeTempDir(), 'ro-audit.log');
    readOnly = await spawnRegistry({
      root,
      http: { ReadOnly: true },
      log: { level: 'warn', audit: auditFile },
      extensions: { metrics: { enable: true, prometheus: { path: '/metrics' } } },
    });
  });

  after(async () => {
    await readOnly?.kill();
    await writer.stop();
  });

  it('serves what the writer pushed', async () => {
    const ro = readOnly as RegistryProcess;
    const manifest = await fetch(`${ro.url}/v2/ro/app/manifests/v1`);
    assert.equal(manifest.status, 200);
    assert.equal(await manifest.text(), image.manifestBytes);
    assert.deepEqual(Buffer.from(await (await fetch(`${ro.url}/v2/ro/app/blobs/${sha256(image.config)}`)).arrayBuffer()), image.config);
    assert.equal(await status(`${ro.url}/v2/ro/app/blobs/${sha256(image.layers[0] as Buffer)}`, 'HEAD'), 200);
    assert.deepEqual(await (await fetch(`${ro.url}/v2/_catalog`)).json(), { repositories: ['ro/app'] });
    assert.deepEqual(await (await fetch(`${ro.url}/v2/ro/app/tags/list`)).json(), { name: 'ro/app', tags: ['v1'] });
    assert.equal(await status(`${ro.url}/v2/ro/app/referrers/${image.digest}`), 200);
    assert.equal(await status(`${ro.url}/metrics`), 200);
  });

  it('refuses writes with 405 UNSUPPORTED and records no event', async () => {
    const ro = readOnly as RegistryProcess;
    await expectOciError(await fetch(`${ro.url}/v2/ro/app/blobs/uploads/`, { method: 'POST' }), 405, 'UNSUPPORTED');
    await expectOciError(await pushManifest(ro.url, 'ro/app', 'v2', image.manifestBytes), 405, 'UNSUPPORTED');
    await expectOciError(await fetch(`${ro.url}/v2/ro/app/manifests/v1`, { method: 'DELETE' }), 405, 'UNSUPPORTED');
    assert.equal(writer.running.store.head(), headBefore);
  });

  it('has changed nothing under the root: files, sizes, mtimes, the event log and its WAL; the in-flight file is there', () => {
    assert.deepEqual(snapshot(root), before_);
    assert.equal(fs.readFileSync(inFlight, 'utf8'), 'bytes on their way');
    assert.ok(!fs.existsSync(auditFile), 'a read-only registry records no event, so it writes no audit line');
  });

  it('follows the writer: an image pushed afterwards is served, and its metrics count it', async () => {
    const ro = readOnly as RegistryProcess;
    const later = makeImage();
    assert.equal((await pushImage(writer.url, 'ro/later', 'v1', later)).status, 201);
    const manifest = await fetch(`${ro.url}/v2/ro/later/manifests/v1`);
    assert.equal(manifest.status, 200);
    assert.equal(await manifest.text(), later.manifestBytes);
    assert.deepEqual(Buffer.from(await (await fetch(`${ro.url}/v2/ro/later/blobs/${sha256(later.layers[0] as Buffer)}`)).arrayBuffer()), later.layers[0]);
    assert.deepEqual(await (await fetch(`${ro.url}/v2/_catalog`)).json(), { repositories: ['ro/app', 'ro/later'] });
    // The metrics are the read-only registry's own, in memory, from the events it follows.
    await eventually(async () => sampleValue(await scrape(`${ro.url}/metrics`), 'zot_repo_uploads_total', { repo: 'ro/later' }) === 1, 'the push in the metrics');
    const metrics = await scrape(`${ro.url}/metrics`);
    assert.equal(sampleValue(metrics, 'zot_repo_uploads_total', { repo: 'ro/app' }), 1);
    assert.equal(sampleValue(metrics, 'zot_event_log_length'), writer.running.store.head());
  });

  it('still writes nothing, after serving and after stopping', async () => {
    const ro = readOnly as RegistryProcess;
    await writer.running.actorsCaughtUp();
    const head = writer.running.store.head();
    const current = snapshot(root);
    await expectOciError(await pushManifest(ro.url, 'ro/later', 'v2', image.manifestBytes), 405, 'UNSUPPORTED');
    assert.equal(await status(`${ro.url}/v2/ro/later/manifests/v1`), 200);
    assert.equal(await ro.stop(), 0, ro.output());
    readOnly = undefined;
    assert.deepEqual(snapshot(root), current);
    assert.equal(writer.running.store.head(), head);
    assert.ok(fs.existsSync(inFlight));
  });
});

describe('a read-only registry on a root with no event log', () => {
  it('refuses to start, naming why, and creates nothing', async () => {
    const root = path.join(makeTempDir(), 'never-written');
    await assert.rejects(startTestRegistry({ root, http: { ReadOnly: true } }), /no event log .*http\.ReadOnly/);
    assert.ok(!fs.existsSync(root), 'the root was not created');
  });
});

describe('a read-only registry after the writer stopped', () => {
  let readOnly: TestRegistry | undefined;
  after(async () => readOnly?.stop());

  it('serves the log as the writer left it and leaves its bytes alone', async () => {
    const root = path.join(makeTempDir(), 'root');
    const writer = await startTestRegistry({ root });
    const image = makeImage();
    assert.equal((await pushImage(writer.url, 'left/app', 'v1', image)).status, 201);
    await writer.stop();
    const log = path.join(root, '.zot-ts', 'events.db');
    const logBytes = fs.readFileSync(log);
    readOnly = await startTestRegistry({ root, http: { ReadOnly: true } });
    assert.equal(await status(`${readOnly.url}/v2/left/app/manifests/v1`), 200);
    await readOnly.stop();
    readOnly = undefined;
    assert.ok(fs.readFileSync(log).equals(logBytes), 'the event log is byte for byte the same');
  });
});
