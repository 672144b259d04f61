// The command line as an operator uses it: `zot verify`, `zot serve` (refusals and a graceful
// SIGTERM), `zot events` with its filters and --follow, and `zot replay` on healthy and
// tampered roots. Every command runs as a real child process.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { after, afterEach, before, describe, it } from 'node:test';
import { eventually, instantAfter } from '../helpers/http.js';
import { makeImage, pushBlob, pushImage, sha256, type TestImage } from '../helpers/oci.js';
import { makeTempDir, runZot, spawnRegistry, spawnZot, testConfig, writeConfig, type RegistryProcess } from '../helpers/registry.js';
import type { Config } from '../../src/config/types.js';

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

interface JsonEvent {
  seq: number;
  type: string;
  repo: string;
  digest?: string;
  tag?: string;
  time: string;
  identity: string;
  client?: string;
  requestId?: string;
}

async function eventsJson(configPath: string, ...args: string[]): Promise<JsonEvent[]> {
  const result = await runZot(['events', configPath, '--json', ...args]);
  assert.equal(result.code, 0, result.stderr);
  return lines(result.stdout).map((line) => JSON.parse(line) as JsonEvent);
}

async function pushOk(url: string, repo: string, tag: string, image: TestImage = makeImage()): Promise<TestImage> {
  const res = await pushImage(url, repo, tag, image);
  assert.equal(res.status, 201, await res.text());
  return image;
}

/** Registries started by a test, killed after it if it did not stop them itself. */
function registries(): { start: typeof spawnRegistry; cleanup: () => Promise<void> } {
  const started = new Set<RegistryProcess>();
  return {
    start: async (options) => {
      const registry = await spawnRegistry(options);
      started.add(registry);
      return registry;
    },
    cleanup: async () => {
      for (const registry of started) await registry.kill();
      started.clear();
    },
  };
}

describe('zot verify', () => {
  it('accepts a good example, printing what serve will listen on and the storage it will use', async () => {
    const result = await runZot(['verify', 'examples/config-default.json']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    assert.deepEqual(lines(result.stdout), [
      'examples/config-default.json: valid configuration',
      '  listen: http://127.0.0.1:5000',
      '  storage: ./data/zot (filesystem, dedupe on, gc on (delay 1h, every 1h))',
    ]);
  });

  it('rejects a bad config, naming every problem with its path', async () => {
    const file = path.join(makeTempDir(), 'bad.json');
    fs.writeFileSync(
      file,
      JSON.stringify({ distSpecVersion: '1.1.0', http: { address: '127.0.0.1', port: 'eighty', colour: 'blue' }, storage: {}, log: { level: 'loud' } }),
    );
    const result = await runZot(['verify', file]);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    const problems = lines(result.stderr);
    for (const field of ['http.port', 'http.colour', 'storage.rootDirectory', 'log.level']) {
      assert.ok(
        problems.some((line) => line.trim().startsWith(`${field}:`)),
        `stderr names ${field}:\n${result.stderr}`,
      );
    }
  });
});

describe('zot serve', () => {
  const { start, cleanup } = registries();
  const agents = new Set<http.Agent>();
  afterEach(async () => {
    for (const agent of agents) agent.destroy();
    agents.clear();
    await cleanup();
  });

  it('refuses a config asking for a feature it does not build, naming it', async () => {
    const file = writeConfig({ ...testConfig({ root: path.join(makeTempDir(), 'never-served') }), extensions: { search: { enable: true } } } as Config);
    const result = await runZot(['serve', file]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /refusing to start/);
    assert.match(result.stderr, /^\s*extensions\.search: zot's search and UI extension \(GraphQL, CVE scanning\) is not supported$/m);
  });

  it('drains an in-flight chunked upload on SIGTERM, then exits 0 with a clean event log', async () => {
    const registry = await start();
    const repo = 'drain/upload';
    const started = await fetch(`${registry.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    assert.equal(started.status, 202);
    const location = started.headers.get('location');
    assert.ok(location);
    const uploadId = location.split('/').at(-1) as string;

    const data = randomBytes(256 * 1024);
    const half = data.length / 2;
    const target = new URL(location, registry.url);
    const agent = new http.Agent({ keepAlive: true });
    agents.add(agent);
    // A keep-alive agent, as registry clients use: once drained, the connection must not hold
    // the process open.
    const answered = new Promise<{ status: number; range: string | undefined; body: string }>((resolve, reject) => {
      const request = http.request(
        target,
        { method: 'PATCH', headers: { 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked' }, agent },
        (response) => {
          let body = '';
          response.on('data', (d: Buffer) => (body += d.toString()));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, range: response.headers.range, body }));
          response.on('error', reject);
        },
      );
      request.on('error', reject);
      request.write(data.subarray(0, half));
      // Time for the first half to reach the registry: nothing outside it shows a request in flight.
      sleep(400)
        .then(async () => {
          const exited = registry.child.exitCode;
          assert.equal(exited, null, 'the registry is still running before SIGTERM');
          registry.child.kill('SIGTERM');
          await refusesNewWork(registry);
          // Draining: it takes no new work, yet the upload in flight keeps the process alive.
          if (registry.child.exitCode !== null) throw new Error(`zot serve exited ${registry.child.exitCode} with an upload in flight`);
          request.end(data.subarray(half));
        })
        .catch(reject);
    });
    const exitCode = new Promise<number | null>((resolve) => {
      if (registry.child.exitCode !== null) resolve(registry.child.exitCode);
      else registry.child.once('exit', (code) => resolve(code));
    });

    const response = await answered;
    assert.equal(response.status, 202, response.body);
    assert.equal(response.range, `0-${data.length - 1}`);
    assert.equal(await withTimeout(exitCode, 10_000, 'zot serve did not exit after the drain'), 0, registry.output());
    const uploaded = fs.readFileSync(path.join(registry.root, repo, '.uploads', uploadId));
    assert.equal(sha256(uploaded), sha256(data), 'the drained chunk reached storage whole');

    const replay = await runZot(['replay', registry.configPath]);
    assert.equal(replay.code, 0, replay.stdout + replay.stderr);
    // A clean close checkpoints the WAL into the database file.
    const wal = path.join(registry.root, '.zot-ts', 'events.db-wal');
    assert.ok(!fs.existsSync(wal) || fs.statSync(wal).size === 0, 'the event log was closed cleanly (WAL checkpointed)');
  });

  it('finishes a blob download already streaming on SIGTERM, then exits 0 promptly', async () => {
    const registry = await start();
    const blob = randomBytes(8 * 1024 * 1024);
    const digest = await pushBlob(registry.url, 'drain/download', blob);
    const agent = new http.Agent({ keepAlive: true });
    agents.add(agent);
    const exitCode = new Promise<number | null>((resolve) => registry.child.once('exit', (code) => resolve(code)));

    const downloaded = await new Promise<Buffer>((resolve, reject) => {
      const request = http.get(new URL(`/v2/drain/download/blobs/${digest}`, registry.url), { agent }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (d: Buffer) => chunks.push(d));
        response.on('end', () => resolve(Buffer.concat(chunks)));
        response.on('error', reject);
        // A slow reader: the response is mid-stream, its headers sent, when SIGTERM comes.
        response.pause();
        registry.child.kill('SIGTERM');
        refusesNewWork(registry)
          .then(() => {
            if (registry.child.exitCode !== null) reject(new Error(`zot serve exited ${registry.child.exitCode} with a download in flight`));
            response.resume();
          })
          .catch(reject);
      });
      request.on('error', reject);
    });
    assert.equal(downloaded.length, blob.length);
    assert.equal(sha256(downloaded), digest);
    // The client keeps its connection for reuse; the registry must not wait for it to time out.
    assert.equal(await withTimeout(exitCode, 10_000, 'zot serve did not exit after the download finished'), 0, registry.output());
  });
});

/** Waits (bounded) until the registry answers a new request with 503 or refuses the connection. */
async function refusesNewWork(registry: RegistryProcess): Promise<void> {
  await eventually(async () => {
    const answer = await fetch(`${registry.url}/v2/`).then(
      async (res) => {
        await res.arrayBuffer();
        return res.status;
      },
      () => 'connection refused',
    );
    assert.ok(answer === 200 || answer === 503 || answer === 'connection refused', `a new request while draining answered ${answer}`);
    return answer !== 200;
  }, 'the registry to refuse new work after SIGTERM', 10_000);
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe('zot events', () => {
  let registry: RegistryProcess;
  const { start, cleanup } = registries();
  const followers = new Set<ChildProcess>();
  let pushed: { repo: string; tag: string; image: TestImage }[] = [];
  let betweenPushes = '';

  before(async () => {
    registry = await start();
    pushed = [];
    for (const [repo, tag] of [
      ['events/one', 'a'],
      ['events/one', 'b'],
    ] as const) {
      pushed.push({ repo, tag, image: await pushOk(registry.url, repo, tag) });
    }
    betweenPushes = await instantAfter(Date.now());
    await instantAfter(Date.parse(betweenPushes));
    pushed.push({ repo: 'events/two', tag: 'c', image: await pushOk(registry.url, 'events/two', 'c') });
  });

  after(async () => {
    for (const child of followers) child.kill('SIGKILL');
    await cleanup();
  });

  /** The four events of pushing one single-layer image: config, layer, manifest, tag. */
  const expectedFor = ({ repo, tag, image }: { repo: string; tag: string; image: TestImage }) => [
    { type: 'BlobPushed', repo, digest: sha256(image.config) },
    { type: 'BlobPushed', repo, digest: sha256(image.layers[0] as Buffer) },
    { type: 'ManifestPushed', repo, digest: image.digest },
    { type: 'TagSet', repo, digest: image.digest, tag },
  ];

  it('prints every event as a JSON line with who, from where and which request', async () => {
    const events = await eventsJson(registry.configPath);
    assert.deepEqual(
      events.map((e) => ({ type: e.type, repo: e.repo, digest: e.digest, ...(e.tag !== undefined ? { tag: e.tag } : {}) })),
      pushed.flatMap(expectedFor),
    );
    assert.deepEqual(
      events.map((e) => e.seq),
      events.map((_, i) => i + 1),
    );
    for (const event of events) {
      assert.equal(event.identity, 'anonymous');
      assert.match(event.client ?? '', /127\.0\.0\.1$/);
      assert.equal(typeof event.requestId, 'string');
      assert.ok((event.requestId ?? '').length > 0);
      assert.ok(!Number.isNaN(Date.parse(event.time)));
    }
    // Each request has its own id; the manifest and the tag it set share one.
    assert.equal(events[2]?.requestId, events[3]?.requestId);
    assert.notEqual(events[0]?.requestId, events[1]?.requestId);
  });

  it('prints a table with one line per event', async () => {
    const events = await eventsJson(registry.configPath);
    const result = await runZot(['events', registry.configPath]);
    assert.equal(result.code, 0, result.stderr);
    const table = lines(result.stdout);
    assert.equal(table.length, events.length);
    table.forEach((line, i) => {
      const event = events[i] as JsonEvent;
      const fields = line.trim().split(/\s+/);
      assert.equal(fields[0], String(event.seq));
      assert.equal(fields[1], event.time);
      assert.equal(fields[2], event.type);
      assert.equal(fields[3], event.repo);
      if (event.digest) assert.ok(fields.includes(event.digest), line);
      if (event.tag) assert.ok(fields.includes(event.tag), line);
      assert.ok(fields.includes('anonymous'), line);
    });
  });

  it('filters by --repo, --type and --since (sequence number or ISO time)', async () => {
    const all = await eventsJson(registry.configPath);

    const two = await eventsJson(registry.configPath, '--repo', 'events/two');
    assert.deepEqual(two, all.filter((e) => e.repo === 'events/two'));
    assert.equal(two.length, 4);

    const tags = await eventsJson(registry.configPath, '--type', 'TagSet');
    assert.deepEqual(tags, all.filter((e) => e.type === 'TagSet'));
    assert.equal(tags.length, 3);

    const both = await eventsJson(registry.configPath, '--repo', 'events/one', '--type', 'ManifestPushed');
    assert.deepEqual(
      both.map((e) => e.digest),
      [pushed[0]?.image.digest, pushed[1]?.image.digest],
    );

    const fromSeq = await eventsJson(registry.configPath, '--since', '6');
    assert.deepEqual(fromSeq, all.filter((e) => e.seq >= 6));
    assert.equal(fromSeq[0]?.seq, 6);

    const fromTime = await eventsJson(registry.configPath, '--since', betweenPushes);
    assert.deepEqual(fromTime, all.filter((e) => e.repo === 'events/two'));

    const bad = await runZot(['events', registry.configPath, '--since', 'yesterday-ish']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--since/);
  });

  it('--follow prints an event pushed after it started, and stops on SIGTERM', async () => {
    const head = (await eventsJson(registry.configPath)).length;
    // From the last existing event: printing it shows the follower has read the log once.
    const run = spawnZot(['events', registry.configPath, '--follow', '--json', '--since', String(head)]);
    const follower = run.child;
    followers.add(follower);

    const deadline = Date.now() + 10_000;
    while (!run.stdout().includes('\n') && Date.now() < deadline) await sleep(20);
    assert.deepEqual(
      lines(run.stdout()).map((line) => (JSON.parse(line) as JsonEvent).seq),
      [head],
      run.stderr(),
    );
    const image = await pushOk(registry.url, 'events/followed', 'live');
    while (!run.stdout().includes(`"tag":"live"`) && Date.now() < deadline) await sleep(50);
    const followed = lines(run.stdout())
      .slice(1)
      .map((line) => JSON.parse(line) as JsonEvent);
    assert.deepEqual(
      followed.map((e) => [e.type, e.repo, e.digest]),
      [
        ['BlobPushed', 'events/followed', sha256(image.config)],
        ['BlobPushed', 'events/followed', sha256(image.layers[0] as Buffer)],
        ['ManifestPushed', 'events/followed', image.digest],
        ['TagSet', 'events/followed', image.digest],
      ],
      run.stderr(),
    );

    follower.kill('SIGTERM');
    assert.equal(await withTimeout(run.exited, 5_000, 'zot events --follow did not stop on SIGTERM'), 0, run.stderr());
    followers.delete(follower);
  });
});

describe('zot events and zot replay on a root the registry never ran on', () => {
  it('say there is no event log and exit 1', async () => {
    const configPath = writeConfig(testConfig({ root: path.join(makeTempDir(), 'never-served') }));
    for (const command of ['events', 'replay']) {
      const result = await runZot([command, configPath]);
      assert.equal(result.code, 1, `${command}: ${result.stdout}`);
      assert.match(result.stderr, /no event log/, command);
    }
  });
});

describe('zot replay', () => {
  const { start, cleanup } = registries();
  after(cleanup);

  it('exits 0 on a healthy root and 1 with a drift: line after storage or a projection is tampered with', async () => {
    const registry = await start();
    const image = await pushOk(registry.url, 'replay/app', 'v1', makeImage({ layers: 2 }));
    await pushOk(registry.url, 'replay/app', 'v2');
    assert.equal(await registry.stop(), 0, registry.output());

    const replay = () => runZot(['replay', registry.configPath]);
    const healthy = await replay();
    assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr);
    assert.doesNotMatch(healthy.stdout, /^drift:/m);
    assert.match(healthy.stdout, /^replay: \d+ events; .*match$/m);

    const layerDigest = sha256(image.layers[1] as Buffer);
    const layerFile = path.join(registry.root, 'replay/app/blobs/sha256', layerDigest.slice('sha256:'.length));
    const original = fs.readFileSync(layerFile);

    // A blob of a tagged image deleted from storage.
    fs.rmSync(layerFile);
    const deleted = await replay();
    assert.equal(deleted.code, 1, deleted.stdout);
    assert.match(deleted.stdout, new RegExp(`^drift: .*${layerDigest}.*missing`, 'm'));
    fs.writeFileSync(layerFile, original);
    assert.equal((await replay()).code, 0, 'restoring the file removes the drift');

    // The same blob truncated.
    fs.truncateSync(layerFile, 10);
    const truncated = await replay();
    assert.equal(truncated.code, 1, truncated.stdout);
    assert.match(truncated.stdout, new RegExp(`^drift: .*${layerDigest}.*10 bytes`, 'm'));
    fs.writeFileSync(layerFile, original);
    assert.equal((await replay()).code, 0);

    // A projection row removed behind the log's back.
    const db = new Database(path.join(registry.root, '.zot-ts', 'events.db'));
    try {
      const removed = db.prepare("DELETE FROM tags WHERE repo = 'replay/app' AND tag = 'v1'").run();
      assert.equal(removed.changes, 1);
    } finally {
      db.close();
    }
    const altered = await replay();
    assert.equal(altered.code, 1, altered.stdout);
    assert.match(altered.stdout, /^drift: tags: replay only .*"tag":"v1"/m);
  });

  it('creates nothing: a subPath root that does not exist stays absent', async () => {
    const registry = await start();
    await pushOk(registry.url, 'replay/app', 'v1');
    assert.equal(await registry.stop(), 0, registry.output());
    const absent = path.join(makeTempDir(), 'not-created');
    const config = JSON.parse(fs.readFileSync(registry.configPath, 'utf8')) as Config;
    config.storage.subPaths = { '/elsewhere': { rootDirectory: absent } };
    const result = await runZot(['replay', writeConfig(config)]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.ok(!fs.existsSync(absent), 'zot replay made the subPath root');
  });

  it('--rehash exits 1 naming a blob or manifest whose bytes changed in place, which plain replay does not notice', async () => {
    const registry = await start();
    const image = await pushOk(registry.url, 'rehash/app', 'v1', makeImage({ layers: 2 }));
    assert.equal(await registry.stop(), 0, registry.output());

    const replay = (...options: string[]) => runZot(['replay', registry.configPath, ...options]);
    const healthy = await replay('--rehash');
    assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr);
    assert.match(healthy.stdout, /^replay: \d+ events; .*match$/m);

    const fileOf = (digest: string) => path.join(registry.root, 'rehash/app/blobs/sha256', digest.slice('sha256:'.length));
    /** Flips one bit of the file: same size, other bytes. */
    const flipBit = (file: string): Buffer => {
      const original = fs.readFileSync(file);
      const flipped = Buffer.from(original);
      flipped[flipped.length >> 1] = (flipped[flipped.length >> 1] as number) ^ 0x01;
      fs.writeFileSync(file, flipped);
      return original;
    };

    for (const [kind, digest] of [
      ['blob', sha256(image.layers[1] as Buffer)],
      ['manifest', image.digest],
    ] as const) {
      const original = flipBit(fileOf(digest));
      const plain = await replay();
      assert.equal(plain.code, 0, `plain replay compares sizes only: ${plain.stdout}`);
      const rehashed = await replay('--rehash');
      assert.equal(rehashed.code, 1, rehashed.stdout + rehashed.stderr);
      assert.match(rehashed.stdout, new RegExp(`^drift: rehash/app: ${kind} ${digest} has bytes on storage that hash to sha256:[0-9a-f]{64}$`, 'm'));
      assert.equal(rehashed.stdout.split('\n').filter((line) => line.startsWith('drift:')).length, 1, rehashed.stdout);
      const json = await replay('--rehash', '--json');
      assert.equal(json.code, 1);
      assert.equal((JSON.parse(json.stdout) as { drift: string[] }).drift.length, 1, json.stdout);
      fs.writeFileSync(fileOf(digest), original);
      assert.equal((await replay('--rehash')).code, 0, `restoring the ${kind} removes the drift`);
    }
  });
});
