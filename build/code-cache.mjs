// Records V8's code cache of the bundle (src/cli/bundle-loader.cts) from one real start: a
// `zot serve` on a temporary root answers GET /v2/ once and stops; at exit it writes the compiled
// code of everything it ran. It runs with the node flags (and environment) of bin/zot.js's first
// line, the ones every start of `zot` has, because V8 rejects a cache made under other flags.
// A start that fails leaves no cache, with a warning: the registry runs as well without one, only
// its start-up is slower.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const zotBin = path.join(root, 'bin', 'zot.js');
// Kept in step with CODE_CACHE_OUT_ENV in src/cli/bundle-loader.cts.
const CODE_CACHE_OUT_ENV = 'ZOT_BUNDLE_CODE_CACHE_OUT';
const START_TIMEOUT_MS = 60_000;

/**
 * What bin/zot.js's `#!/usr/bin/env -S NAME=VALUE … node …` line sets: the environment it adds
 * and the node flags.
 */
function shebang() {
  const first = readFileSync(zotBin, 'utf8').split('\n', 1)[0] ?? '';
  const words = first.replace(/^#!\S*\s*(-S\s+)?/, '').split(/\s+/).filter(Boolean);
  const node = words.indexOf('node');
  const env = Object.fromEntries(words.slice(0, node).map((word) => [word.slice(0, word.indexOf('=')), word.slice(word.indexOf('=') + 1)]));
  return { env, flags: words.slice(node + 1) };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function getStatus(port) {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/v2/', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

async function startAnswerStop(cacheOut) {
  const dir = mkdtempSync(path.join(tmpdir(), 'zot-code-cache-'));
  try {
    const port = await freePort();
    const config = path.join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ http: { address: '127.0.0.1', port: String(port) }, storage: { rootDirectory: path.join(dir, 'root') }, log: { level: 'warn' } }));
    const { env, flags } = shebang();
    const child = spawn(process.execPath, [...flags, zotBin, 'serve', config], {
      cwd: root,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...env, [CODE_CACHE_OUT_ENV]: cacheOut },
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
    const deadline = Date.now() + START_TIMEOUT_MS;
    while ((await getStatus(port)) !== 200) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`zot serve did not answer GET /v2/ (${await exited}): ${stderr.trim()}`);
      }
      await sleep(20);
    }
    child.kill('SIGTERM');
    const status = await exited;
    if (status !== 0) throw new Error(`zot serve stopped with ${status}: ${stderr.trim()}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes `${bundle}.cache`, or warns and leaves none. */
export async function recordCodeCache(bundle) {
  const cacheFile = `${bundle}.cache`;
  const partial = `${cacheFile}.partial`;
  try {
    await startAnswerStop(partial);
    renameSync(partial, cacheFile);
  } catch (err) {
    rmSync(partial, { force: true });
    process.stderr.write(`build: warning: no code cache for the bundle, zot starts slower: ${err instanceof Error ? err.message : String(err)}\n`);
  }
}
