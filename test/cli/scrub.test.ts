// Scrub: `zot scrub` on a live root (healthy, then with a blob corrupted, a manifest truncated and
// a blob deleted), its exit codes and --json report; scrubStorage on a driver with no local path
// and with the pool kept busy; the `extensions.scrub` schedule finding a corruption and logging it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { openDatabase, type Db } from '../../src/events/database.js';
import { RegistryStateQueries } from '../../src/projections/registry-state.js';
import { DEFAULT_SCRUB_INTERVAL_MS, MIN_SCRUB_INTERVAL_MS, scrubIntervalMs, startScrubSchedule } from '../../src/registry/scrub-schedule.js';
import { scrubStorage, type ScrubReport } from '../../src/registry/scrub.js';
import type { StorageDriver } from '../../src/storage/driver.js';
import { eventLogFile } from '../../src/storage/layout.js';
import { StorageRoots, storageRootsFromConfig } from '../../src/storage/roots.js';
import { HashPool } from '../../src/workers/pool.js';
import { eventually } from '../helpers/http.js';
import { makeImage, pushImage, sha256, type TestImage } from '../helpers/oci.js';
import { makeTempDir, runZot, startTestRegistry, testConfig, writeConfig, type TestRegistry } from '../helpers/registry.js';

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

async function pushOk(url: string, repo: string, tag: string, image: TestImage = makeImage({ layers: 2 })): Promise<TestImage> {
  const res = await pushImage(url, repo, tag, image);
  assert.equal(res.status, 201, await res.text());
  return image;
}

function blobFile(root: string, repo: string, digest: string): string {
  return path.join(root, repo, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

/** Flips one byte in the middle of a file: same size, different hash. */
function flipByte(file: string): Buffer {
  const bytes = fs.readFileSync(file);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = (bytes[at] as number) ^ 0xff;
  fs.writeFileSync(file, bytes);
  return bytes;
}

function liveQueries(root: string): { db: Db; queries: RegistryStateQueries } {
  const db = openDatabase(eventLogFile(root), { readonly: true });
  return { db, queries: new RegistryStateQueries(db) };
}

describe('zot scrub', () => {
  let registry: TestRegistry;
  let configPath: string;
  const alpha: TestImage[] = [];
  let beta: TestImage;

  before(async () => {
    registry = await startTestRegistry();
    configPath = writeConfig(testConfig({ root: registry.root }));
    alpha.push(await pushOk(registry.url, 'scrub/alpha', 'v1'), await pushOk(registry.url, 'scrub/alpha', 'v2'));
    beta = await pushOk(registry.url, 'scrub/beta', 'v1');
  });
  after(() => registry.stop());

  it('exits 0 and reports every repository ok while the registry runs', async () => {
    const result = await runZot(['scrub', configPath]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.equal(result.stderr, '');
    assert.deepEqual(lines(result.stdout).slice(0, 2), ['ok scrub/alpha: 6 blobs, 2 manifests', 'ok scrub/beta: 3 blobs, 1 manifests']);
    assert.match(result.stdout, /^scrub: 2 repositories, 9 blobs and 3 manifests intact, 0 corrupt, 0 missing \(\d+\.\d s\)$/m);
    // The scrub held no lock: the registry takes a push right after.
    await pushOk(registry.url, 'scrub/gamma', 'v1');
  });

  it('creates nothing: a subPath root that does not exist stays absent', async () => {
    const absent = path.join(makeTempDir(), 'not-created');
    const config = writeConfig(testConfig({ root: registry.root, storage: { subPaths: { '/elsewhere': { rootDirectory: absent } } } }));
    const result = await runZot(['scrub', config]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.ok(!fs.existsSync(absent), 'zot scrub made the subPath root');
  });

  it('exits 1 naming the corrupt, truncated and missing content in its repository', async () => {
    const layer = sha256(alpha[1]?.layers[0] as Buffer);
    const flipped = flipByte(blobFile(registry.root, 'scrub/alpha', layer));
    const gone = sha256(beta.layers[1] as Buffer);
    fs.rmSync(blobFile(registry.root, 'scrub/beta', gone));
    fs.truncateSync(blobFile(registry.root, 'scrub/beta', beta.digest), 10);

    const result = await runZot(['scrub', configPath]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.deepEqual(lines(result.stdout).slice(0, -1), [
      `corrupt scrub/alpha: blob ${layer}: its bytes hash to ${sha256(flipped)}`,
      `corrupt scrub/beta: manifest ${beta.digest}: 10 bytes on storage, ${Buffer.byteLength(beta.manifestBytes)} in the log`,
      `missing scrub/beta: blob ${gone}`,
      'ok scrub/gamma: 3 blobs, 1 manifests',
    ]);
    assert.match(result.stdout, /^scrub: 3 repositories, 10 blobs and 3 manifests intact, 2 corrupt, 1 missing/m);

    const json = await runZot(['scrub', configPath, '--json']);
    assert.equal(json.code, 1, json.stderr);
    assert.equal(lines(json.stdout).length, 1);
    const report = JSON.parse(json.stdout) as ScrubReport;
    assert.equal(typeof report.durationMs, 'number');
    assert.deepEqual(
      { ...report.totals, bytes: typeof report.totals.bytes },
      { repositories: 3, blobs: 10, manifests: 3, bytes: 'number', corrupt: 2, missing: 1 },
    );
    assert.deepEqual(report.repositories, [
      {
        repo: 'scrub/alpha',
        ok: { blobs: 5, manifests: 2 },
        corrupt: [{ digest: layer, kind: 'blob', size: 512, problem: 'digest-mismatch', found: sha256(flipped) }],
        missing: [],
      },
      {
        repo: 'scrub/beta',
        ok: { blobs: 2, manifests: 0 },
        corrupt: [{ digest: beta.digest, kind: 'manifest', size: Buffer.byteLength(beta.manifestBytes), problem: 'size-mismatch', found: '10' }],
        missing: [{ digest: gone, kind: 'blob', size: 512 }],
      },
      { repo: 'scrub/gamma', ok: { blobs: 3, manifests: 1 }, corrupt: [], missing: [] },
    ]);
  });

  it('exits 2 on a usage error, 1 on a configuration it cannot use or a root with no event log', async () => {
    const noArgument = await runZot(['scrub']);
    assert.equal(noArgument.code, 2);
    assert.match(noArgument.stderr, /configuration file is required/);

    const unknownOption = await runZot(['scrub', configPath, '--repair']);
    assert.equal(unknownOption.code, 2);
    assert.match(unknownOption.stderr, /--repair/);

    const extra = await runZot(['scrub', configPath, 'again']);
    assert.equal(extra.code, 2);
    assert.match(extra.stderr, /unexpected argument "again"/);

    const badConfig = path.join(makeTempDir(), 'bad.json');
    fs.writeFileSync(badConfig, JSON.stringify({ http: { port: 'eighty' }, storage: {} }));
    assert.equal((await runZot(['scrub', badConfig])).code, 1);

    const neverServed = path.join(makeTempDir(), 'never-served');
    const noLog = await runZot(['scrub', writeConfig(testConfig({ root: neverServed }))]);
    assert.equal(noLog.code, 1);
    assert.match(noLog.stderr, /no event log/);
    assert.equal(fs.existsSync(neverServed), false, 'a read-only command creates no root');
  });
});

describe('scrubStorage', () => {
  let registry: TestRegistry;
  let db: Db;
  let queries: RegistryStateQueries;
  let image: TestImage;

  before(async () => {
    registry = await startTestRegistry();
    image = await pushOk(registry.url, 'unit/app', 'v1', makeImage({ layers: 6 }));
    ({ db, queries } = liveQueries(registry.root));
  });
  after(async () => {
    db.close();
    await registry.stop();
  });

  it('streams content that has no local path (S3) on the main thread', async () => {
    const local = storageRootsFromConfig({ rootDirectory: registry.root }).defaultRoot;
    // The filesystem driver, seen as an object store: no path for the pool to read.
    const remote: StorageDriver = Object.assign(Object.create(local.driver) as StorageDriver, { localPath: () => undefined });
    const roots = new StorageRoots([{ ...local, driver: remote }]);
    const hashPool = { maxThreads: 1, hashFile: () => Promise.reject(new Error('the pool must not be used')) };

    const clean = await scrubStorage({ roots, queries, hashPool });
    assert.deepEqual(clean.repositories, [{ repo: 'unit/app', ok: { blobs: 7, manifests: 1 }, corrupt: [], missing: [] }]);

    const layer = sha256(image.layers[3] as Buffer);
    const file = blobFile(registry.root, 'unit/app', layer);
    const original = fs.readFileSync(file);
    try {
      const flipped = flipByte(file);
      const report = await scrubStorage({ roots, queries, hashPool });
      assert.deepEqual(report.repositories[0]?.corrupt, [{ digest: layer, kind: 'blob', size: 512, problem: 'digest-mismatch', found: sha256(flipped) }]);
    } finally {
      fs.writeFileSync(file, original);
    }
  });

  it('keeps two hashes queued per pool thread, never more', async () => {
    const roots = storageRootsFromConfig({ rootDirectory: registry.root });
    let inFlight = 0;
    let most = 0;
    const hashPool = {
      maxThreads: 2,
      async hashFile(task: { path: string; algorithm: 'sha256' | 'sha512' }): Promise<string> {
        most = Math.max(most, ++inFlight);
        await sleep(20);
        inFlight--;
        return createHash(task.algorithm).update(fs.readFileSync(task.path)).digest('hex');
      },
    };
    const report = await scrubStorage({ roots, queries, hashPool });
    assert.equal(report.totals.blobs + report.totals.manifests, 8);
    assert.equal(most, 4);
  });

  it('stops when its signal aborts', async () => {
    const roots = storageRootsFromConfig({ rootDirectory: registry.root });
    const hashPool = new HashPool(1);
    try {
      const abort = new AbortController();
      abort.abort(new Error('shutting down'));
      await assert.rejects(scrubStorage({ roots, queries, hashPool, signal: abort.signal }), /shutting down/);
    } finally {
      await hashPool.close();
    }
  });
});

describe('the scrub schedule', () => {
  it('reads the interval as zot does: 24h by default, at least 2h', () => {
    assert.deepEqual(scrubIntervalMs(undefined), { intervalMs: DEFAULT_SCRUB_INTERVAL_MS, raised: false });
    assert.deepEqual(scrubIntervalMs('0'), { intervalMs: DEFAULT_SCRUB_INTERVAL_MS, raised: false });
    assert.deepEqual(scrubIntervalMs('30m'), { intervalMs: MIN_SCRUB_INTERVAL_MS, raised: true });
    assert.deepEqual(scrubIntervalMs('48h'), { intervalMs: 48 * 3_600_000, raised: false });
  });

  it('scrubs after each interval, logs a corrupt blob with its repository and digest, and stops', async () => {
    const registry = await startTestRegistry();
    const { db, queries } = liveQueries(registry.root);
    const hashPool = new HashPool(1);
    const logged: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) });
    try {
      const image = await pushOk(registry.url, 'sched/app', 'v1');
      const layer = sha256(image.layers[0] as Buffer);
      const flipped = flipByte(blobFile(registry.root, 'sched/app', layer));

      const schedule = startScrubSchedule({ roots: storageRootsFromConfig({ rootDirectory: registry.root }), queries, hashPool, intervalMs: 200, logger });
      const deadline = Date.now() + 10_000;
      while (logged.filter((entry) => entry.msg === 'scrub finished').length < 2) {
        assert.ok(Date.now() < deadline, `two scrubs within 10 s: ${JSON.stringify(logged)}`);
        await sleep(50);
      }
      await schedule.stop();
      const count = logged.length;
      await sleep(400);
      assert.equal(logged.length, count, 'nothing runs after stop()');

      const corrupt = logged.find((entry) => entry.msg === 'scrub found a corrupt blob');
      assert.ok(corrupt, JSON.stringify(logged));
      assert.equal(corrupt.level, 50);
      assert.equal(corrupt.repo, 'sched/app');
      assert.equal(corrupt.digest, layer);
      assert.equal(corrupt.problem, 'digest-mismatch');
      assert.equal(corrupt.found, sha256(flipped));
      const finished = logged.find((entry) => entry.msg === 'scrub finished');
      assert.equal(finished?.corrupt, 1);
      assert.equal(finished?.missing, 0);
      assert.equal(finished?.blobs, 2);
      assert.equal(finished?.manifests, 1);
      // Never two at once: every start is followed by its finish before the next start.
      const sequence = logged.filter((entry) => entry.msg === 'scrub started' || entry.msg === 'scrub finished').map((entry) => entry.msg);
      for (let i = 0; i < sequence.length; i++) assert.equal(sequence[i], i % 2 === 0 ? 'scrub started' : 'scrub finished', sequence.join(', '));
    } finally {
      await hashPool.close();
      db.close();
      await registry.stop();
    }
  });

  it('stop() during a scrub aborts it without logging a failure', async () => {
    const registry = await startTestRegistry();
    const { db, queries } = liveQueries(registry.root);
    const logged: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) });
    // A pool whose hash never finishes until it is aborted.
    const hashPool = {
      maxThreads: 1,
      hashFile: (_task: unknown, signal?: AbortSignal) =>
        new Promise<string>((_resolve, reject) => {
          if (signal?.aborted) reject(signal.reason as Error);
          signal?.addEventListener('abort', () => reject(signal.reason as Error));
        }),
    };
    try {
      await pushOk(registry.url, 'sched/slow', 'v1');
      const schedule = startScrubSchedule({ roots: storageRootsFromConfig({ rootDirectory: registry.root }), queries, hashPool, intervalMs: 50, logger });
      await eventually(async () => logged.some((entry) => entry.msg === 'scrub started'), 'a scrub to start', 10_000);
      await schedule.stop();
      assert.deepEqual(
        logged.map((entry) => entry.msg),
        ['scrub started'],
      );
    } finally {
      db.close();
      await registry.stop();
    }
  });
});
