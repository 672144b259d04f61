// bin/zot.js runs the bundle of the CLI (build/bundle.mjs, dist/bundle/) when it was made from
// tsc's current output, and tsc's output otherwise; the bundle's stack traces name src/*.ts lines;
// it compiles from the code cache the build recorded (src/cli/bundle-loader.cts) when that cache
// was made from this very bundle under bin/zot.js's node flags, and without it otherwise.
import assert from 'node:assert/strict';
import { isAscii } from 'node:buffer';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { SourceMap } from 'node:module';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeCa } from '../helpers/certs.js';
import { loadedAtStart } from '../helpers/loaded-modules.js';
import { pushImage } from '../helpers/oci.js';
import { stopTraced, straceUnavailable } from '../helpers/strace.js';
import { bundleIsCurrent, cliEntryPoints } from '../../src/cli/bundle-loader.cjs';
import { getFreePort, makeTempDir, REPO_ROOT, spawnRegistry, spawnZot, testConfig, writeConfig, ZOT_BIN } from '../helpers/registry.js';

const ENTRY = cliEntryPoints(path.join(REPO_ROOT, 'dist'));
const BUNDLE = ENTRY.bundle;
const CODE_CACHE = `${BUNDLE}.cache`;

/** Bundles tsc's output unless the bundle is already newer (`npm run build` made both). */
function ensureCurrentBundle(): void {
  if (bundleIsCurrent(ENTRY)) return;
  const run = spawnSync(process.execPath, [path.join(REPO_ROOT, 'build', 'bundle.mjs')], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
}

describe('the bundled CLI', () => {
  before(ensureCurrentBundle);

  it('is what zot serve runs, and it serves /v2/', async () => {
    const { urls, packages } = await loadedAtStart({});
    assert.ok(urls.some((url) => url.endsWith('/dist/bundle/main.cjs')), 'the bundle was loaded');
    assert.ok(!urls.some((url) => url.endsWith('/dist/src/cli/main.js')), 'not the compiled CLI');
    assert.ok(!packages.has('fastify'), 'fastify is inside the bundle');
    // better-sqlite3's JavaScript is inside too; its native addon is loaded by path, without `bindings`.
    assert.ok(!urls.some((url) => /\/node_modules\/better-sqlite3\/lib\//.test(url)), 'better-sqlite3 is inside the bundle');
    assert.ok(urls.some((url) => url.endsWith('/node_modules/better-sqlite3/build/Release/better_sqlite3.node')), 'its native addon was loaded');
    assert.ok(!packages.has('bindings'), 'bindings was not loaded');
  });

  it('leaves out of the bundle what only some configurations load', () => {
    const map = JSON.parse(fs.readFileSync(`${BUNDLE}.map`, 'utf8')) as { sources: string[] };
    const packages = new Set(map.sources.map((source) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(source)?.[1]).filter((name) => name !== undefined));
    for (const name of ['@aws-sdk/client-s3', 'ldapts', 'bcryptjs', 'jsonwebtoken', 'prom-client', 'nats', 'js-yaml', 'smol-toml', '@fastify/ajv-compiler', 'bindings', 'piscina']) {
      assert.ok(!packages.has(name), `${name} is not in the bundle`);
    }
    // better-sqlite3's JavaScript is, its native addon is not (src/events/database.ts).
    assert.ok(packages.has('better-sqlite3'), 'better-sqlite3 is in the bundle');
    // fastify's require('semver') gets the three functions it calls, loaded on first call.
    for (const file of ['semver/index.js', 'semver/ranges/subset.js']) assert.ok(!map.sources.some((source) => source.endsWith(`node_modules/${file}`)), `${file} is not in the bundle`);
    assert.ok(map.sources.some((source) => source.endsWith('src/cli/main.ts')), 'the map names the TypeScript sources');
  });

  it('is loaded by modules that name no source map, which node would read and parse at every start', () => {
    const required = [...fs.readFileSync(ZOT_BIN, 'utf8').matchAll(/require\('\.\.\/(dist\/src\/cli\/[\w-]+\.cjs)'\)/g)].map((match) => match[1] ?? '');
    assert.deepEqual(required.map((file) => path.basename(file, '.cjs')), ['v8-flags', 'serve-process', 'bundle-loader', 'deferred-ca-certificates']);
    for (const relative of required) {
      const file = path.join(REPO_ROOT, relative);
      // node's own pattern for the comment (internal/source_map/source_map_cache.js).
      assert.doesNotMatch(fs.readFileSync(file, 'utf8'), /\/[*/]#\s+sourceMappingURL=/, file);
      assert.ok(!fs.existsSync(`${file}.map`), `${file}.map`);
    }
  });

  it('is ASCII, which node reads fastest, and names the file of the license comments it leaves out', () => {
    const bundle = fs.readFileSync(BUNDLE);
    assert.ok(isAscii(bundle), 'ASCII');
    assert.ok(bundle.includes('main.cjs.LEGAL.txt'));
    assert.match(fs.readFileSync(path.join(path.dirname(BUNDLE), 'main.cjs.LEGAL.txt'), 'utf8'), /MIT/);
  });

  it("keeps in its source map only the mappings into the project's sources, which node holds in memory", () => {
    const map = new SourceMap(JSON.parse(fs.readFileSync(`${BUNDLE}.map`, 'utf8')) as ConstructorParameters<typeof SourceMap>[0]);
    const lines = fs.readFileSync(BUNDLE, 'utf8').split('\n');
    const mapped = new Set<string>();
    lines.forEach((line, lineNumber) => {
      for (let column = 0; column < line.length; column += 97) {
        const entry = map.findEntry(lineNumber, column) as { originalSource?: string };
        if (entry.originalSource !== undefined) mapped.add(entry.originalSource);
      }
    });
    assert.ok([...mapped].some((source) => source.endsWith('src/app.ts')), 'the registry code is mapped');
    assert.deepEqual([...mapped].filter((source) => source.includes('node_modules/')), []);
  });

  describe('a stack trace logged by the bundle', () => {
    let sink: Server;
    before(async () => {
      // An events sink that refuses every event: the sink actor logs the error it throws.
      sink = createServer((req, res) => {
        req.resume();
        res.writeHead(500).end('no');
      });
      await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    });
    after(() => sink.close());

    it('names the TypeScript file and line', async () => {
      const address = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/events`;
      const registry = await spawnRegistry({ extensions: { events: { enable: true, sinks: [{ type: 'http', address }] } } });
      try {
        // A push also proves the hash worker is found from the bundle.
        assert.equal((await pushImage(registry.url, 'stack/trace', 'v1')).status, 201);
        const deadline = Date.now() + 10_000;
        while (!registry.output().includes('failed to handle event') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        const line = registry.output().split('\n').find((l) => l.includes('failed to handle event'));
        assert.ok(line !== undefined, registry.output());
        const stack = (JSON.parse(line) as { err: { stack: string } }).err.stack;
        assert.match(stack, /src\/actors\/cloudevents\/http-sink\.ts:\d+:\d+/);
      } finally {
        await registry.stop();
      }
    });

    it('reads the source map only when the first stack is formatted, after the start, and maps that stack and the later ones', async (t) => {
      const cannot = straceUnavailable();
      if (cannot) return t.skip(cannot);
      const traceFile = path.join(makeTempDir('zot-ts-strace-'), 'trace.txt');
      const address = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/events`;
      const registry = await spawnRegistry(
        { extensions: { events: { enable: true, sinks: [{ type: 'http', address }] } } },
        { runUnder: ['strace', '-f', '-e', 'trace=openat,accept4', '-o', traceFile] },
      );
      const failures = (): string[] => registry.output().split('\n').filter((l) => l.includes('failed to handle event'));
      try {
        assert.equal((await pushImage(registry.url, 'stack/lazy', 'v1')).status, 201);
        // The sink refuses every event: the actor retries after 100 ms, 200 ms, ... and logs each error.
        const deadline = Date.now() + 10_000;
        while (failures().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      } finally {
        await stopTraced(registry.child);
      }
      const stacks = failures().map((line) => (JSON.parse(line) as { err: { stack: string } }).err.stack);
      assert.ok(stacks.length >= 2, registry.output());
      for (const stack of stacks) assert.match(stack, /src\/actors\/cloudevents\/http-sink\.ts:\d+:\d+/);
      const trace = fs.readFileSync(traceFile, 'utf8').split('\n');
      const firstAccept = trace.findIndex((l) => l.includes('accept4') && /= \d+$/.test(l));
      const mapReads = trace.flatMap((l, i) => (l.includes(`${path.basename(BUNDLE)}.map"`) && !l.includes('ENOENT') ? [i] : []));
      assert.ok(firstAccept >= 0, 'the registry accepted a connection');
      assert.equal(mapReads.length, 1, `the map is read once: ${mapReads.map((i) => trace[i]).join('\n')}`);
      assert.ok((mapReads[0] ?? -1) > firstAccept, `read after the first connection was accepted, not during the start: ${trace[mapReads[0] ?? 0]}`);
    });
  });

  it('serves HTTPS and knows client certificates: node:tls and node:https, loaded on first use, work', async () => {
    const ca = makeCa(makeTempDir());
    const server = ca.issue('server', { subject: '/CN=registry', altNames: ['IP:127.0.0.1'], usage: 'server' });
    const client = ca.issue('alice', { subject: '/CN=alice', usage: 'client' });
    const port = await getFreePort();
    const config = testConfig({ port, http: { tls: { cert: server.cert, key: server.key, cacert: ca.cert }, accessControl: { repositories: { '**': { policies: [{ users: ['alice'], actions: ['read', 'create'] }] } } } } });
    const zot = spawnZot(['serve', writeConfig(config)]);
    /** A request with alice's certificate: its status, 0 while the registry does not listen. */
    const send = (method: string, urlPath: string): Promise<number> =>
      new Promise((resolve) => {
        const req = httpsRequest(
          { method, host: '127.0.0.1', port, path: urlPath, ca: fs.readFileSync(ca.cert), cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key), agent: false },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', () => resolve(0));
        req.end();
      });
    try {
      let status = 0;
      for (const deadline = Date.now() + 15_000; status === 0 && zot.child.exitCode === null && Date.now() < deadline; ) {
        status = await send('GET', '/v2/');
        if (status === 0) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(status, 200, zot.stderr());
      // Only alice may push: the registry took her name from her certificate.
      assert.equal(await send('POST', '/v2/team/app/blobs/uploads/'), 202, zot.stderr());
    } finally {
      zot.child.kill('SIGTERM');
      await zot.exited;
    }
  });

  describe('its code cache', () => {
    /** `zot --version` with node's debug output of the bundle loader. */
    const version = (command: string[]): SpawnSyncReturns<string> =>
      spawnSync(command[0] ?? ZOT_BIN, [...command.slice(1), '--version'], { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, NODE_DEBUG: 'zot-bundle' } });

    it('is there after the build, and a start through bin/zot.js compiles from it', () => {
      assert.ok(fs.existsSync(CODE_CACHE), 'the build recorded the code cache');
      const run = version([ZOT_BIN]);
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /^zot-ts /);
      assert.match(run.stderr, /code cache accepted/);
    });

    it('is left to V8 to refuse under other V8 flags, and the CLI runs without it', () => {
      const run = version([process.execPath, '--no-opt', ZOT_BIN]);
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /^zot-ts /);
      assert.match(run.stderr, /code cache rejected by V8/);
    });

    it("is taken by a node run without the shebang's flags too: those only size the heap (src/cli/v8-flags.cts)", () => {
      const run = version([process.execPath, ZOT_BIN]);
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stderr, /code cache accepted/);
    });

    it('is not used for a bundle of the same length with other bytes', () => {
      const code = fs.readFileSync(BUNDLE);
      // The bundle is the function require() would wrap a module in (build/bundle.mjs).
      const [wrapper = '', second = ''] = code.toString('latin1').split('\n', 2);
      assert.equal(wrapper, '(function (exports, require, module, __filename, __dirname) {');
      assert.match(second, /^const importMetaUrlOfBundle = /);
      // Another bundle, as long as this one, that still runs: `let  ` for `const`.
      const at = wrapper.length + 1;
      fs.writeFileSync(BUNDLE, Buffer.concat([code.subarray(0, at), Buffer.from('let  ', 'latin1'), code.subarray(at + 'const'.length)]));
      try {
        const run = version([ZOT_BIN]);
        assert.equal(run.status, 0, run.stderr);
        assert.match(run.stdout, /^zot-ts /);
        assert.match(run.stderr, /made from another bundle: not used/);
      } finally {
        fs.writeFileSync(BUNDLE, code);
      }
    });

    it('is not used for another bundle, and zot serve then starts without it', async () => {
      const cache = fs.readFileSync(CODE_CACHE);
      const other = Buffer.from(cache);
      other[0] = (other[0] ?? 0) ^ 0xff; // the fingerprint of some other bundle
      fs.writeFileSync(CODE_CACHE, other);
      try {
        const registry = await spawnRegistry({}, { env: { ...process.env, NODE_DEBUG: 'zot-bundle' } });
        try {
          assert.equal((await fetch(`${registry.url}/v2/`)).status, 200);
          assert.match(registry.output(), /made from another bundle: not used/);
          assert.doesNotMatch(registry.output(), /code cache accepted/);
        } finally {
          await registry.stop();
        }
      } finally {
        fs.writeFileSync(CODE_CACHE, cache);
      }
    });
  });

  it('is not run when tsc built after it: bin/zot.js runs the compiled CLI then', async () => {
    const bundleTime = fs.statSync(BUNDLE).mtime;
    fs.utimesSync(BUNDLE, new Date(0), new Date(0));
    try {
      const { urls } = await loadedAtStart({});
      assert.ok(urls.some((url) => url.endsWith('/dist/src/cli/main.js')), 'the compiled CLI was loaded');
      assert.ok(!urls.some((url) => url.includes('/dist/bundle/')), 'not the bundle');
    } finally {
      fs.utimesSync(BUNDLE, bundleTime, bundleTime);
    }
  });
});
