// kill -9 while closing PUTs are in flight: an upload session the client filled with acknowledged
// PATCHes either became the blob (served, hashing right), or is still there exactly as the PATCHes
// left it (GET 204 with the acknowledged Range) and a retried PUT then commits it. Never a 404.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { sha256 } from '../helpers/oci.js';
import { eventually, resolveLocation, withDigest } from '../helpers/http.js';
import { getFreePort, makeTempDir, spawnRegistry, type RegistryProcess } from '../helpers/registry.js';

const ROUNDS = 6;
const WORKERS = 10;

interface LastChunk {
  body: Buffer;
  /** Sent as Content-Range, or left out (a PUT body without a declared range is valid too). */
  range?: string;
}

interface TrackedSession {
  repo: string;
  data: Buffer;
  digest: string;
  /** The bytes the PATCHes were answered 202 for. */
  acknowledged: number;
  /** Where the last PATCH answer said to go on. */
  location: string;
  lastChunk?: LastChunk;
  /** 'in-flight' until the PUT answers; 'committed' once it answered 201. */
  outcome: 'in-flight' | 'committed';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function expectStatus(res: Response, status: number, what: string): Promise<void> {
  const text = await res.text();
  if (res.status !== status) throw new Error(`${what} answered ${res.status}: ${text}`);
}

function putRequest(session: TrackedSession): { url: string; init: RequestInit } {
  const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream' };
  if (session.lastChunk?.range) headers['Content-Range'] = session.lastChunk.range;
  return {
    url: withDigest(session.location, session.digest),
    init: { method: 'PUT', headers, ...(session.lastChunk ? { body: session.lastChunk.body } : {}) },
  };
}

/**
 * Opens sessions, fills them with acknowledged PATCHes and closes them with a PUT, until
 * `stopped()`. Sessions are tracked once every PATCH was acknowledged. Resolves with the first
 * failure seen before the crash, if any.
 */
async function uploadWorker(url: string, worker: number, stopped: () => boolean, sessions: TrackedSession[]): Promise<string | undefined> {
  const repo = `closing/w${worker}`;
  for (let n = 0; !stopped(); n++) {
    try {
      const data = randomBytes(64 * 1024 + Math.floor(Math.random() * 768 * 1024));
      // Half of the sessions get their last chunk with the PUT (with and without Content-Range).
      const split = n % 2 === 0 ? data.length : Math.floor(data.length * (0.3 + Math.random() * 0.4));
      const opened = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      await expectStatus(opened, 202, 'POST');
      let location = resolveLocation(url, opened);
      const middle = Math.floor(split / 2);
      for (const [start, end] of [
        [0, middle],
        [middle, split],
      ] as const) {
        const patched = await fetch(location, {
          method: 'PATCH',
          headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${start}-${end - 1}` },
          body: data.subarray(start, end),
        });
        await expectStatus(patched, 202, 'PATCH');
        location = resolveLocation(url, patched);
      }
      const session: TrackedSession = { repo, data, digest: sha256(data), acknowledged: split, location, outcome: 'in-flight' };
      if (split < data.length) {
        session.lastChunk = { body: data.subarray(split), ...(n % 4 === 1 ? { range: `${split}-${data.length - 1}` } : {}) };
      }
      sessions.push(session);
      const { url: putUrl, init } = putRequest(session);
      const put = await fetch(putUrl, init);
      await expectStatus(put, 201, 'PUT');
      session.outcome = 'committed';
    } catch (err) {
      // A refused or reset connection is the crash; anything before it is a real failure.
      if (!stopped()) return `worker ${worker}: ${(err as Error).message}`;
    }
  }
  return undefined;
}

/** The blob as the repository serves it, if it does. */
async function servedBlob(url: string, session: TrackedSession): Promise<Buffer | undefined> {
  const res = await fetch(`${url}/v2/${session.repo}/blobs/${session.digest}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  return res.status === 200 ? bytes : undefined;
}

type Found = 'blob' | 'session';
type Checked = { problem: string } | { found: Found };

/** After the restart: the blob served, or the session as acknowledged and a retried PUT that commits it. */
async function checkSession(url: string, session: TrackedSession): Promise<Checked> {
  const name = `${session.repo} ${session.digest.slice(7, 19)} (${session.acknowledged} of ${session.data.length} bytes acknowledged, ${session.lastChunk ? 'PUT with a last chunk' : 'PUT without body'})`;
  const problem = (text: string): Checked => ({ problem: `${name}: ${text}` });
  const served = await servedBlob(url, session);
  if (served) return sha256(served) === session.digest ? { found: 'blob' } : problem('the blob is served with bytes that do not hash to its digest');
  if (session.outcome === 'committed') return problem('the PUT answered 201 but the blob is not served');
  const status = await fetch(session.location);
  await status.arrayBuffer();
  if (status.status !== 204) return problem(`neither the blob nor the session is there (session GET ${status.status})`);
  const range = status.headers.get('range');
  if (range !== `0-${session.acknowledged - 1}`) return problem(`the session says Range ${range}, not 0-${session.acknowledged - 1}`);
  const { url: putUrl, init } = putRequest(session);
  let retried: Response;
  try {
    retried = await fetch(putUrl, init);
  } catch (err) {
    return problem(`the retried PUT failed: ${(err as Error).message}`);
  }
  const text = await retried.text();
  if (retried.status !== 201) return problem(`the retried PUT answered ${retried.status}: ${text}`);
  const after = await servedBlob(url, session);
  if (!after || sha256(after) !== session.digest) return problem('after the retried PUT the blob is not served right');
  return { found: 'session' };
}

describe('kill -9 while closing PUTs are in flight', () => {
  const processes = new Set<RegistryProcess>();
  after(async () => {
    for (const registry of processes) await registry.kill();
  });

  // One address across restarts, as clients see a registry: the sessions' Locations stay valid.
  const start = async (root: string, port: number): Promise<RegistryProcess> => {
    const registry = await spawnRegistry({ root, port });
    processes.add(registry);
    return registry;
  };

  it(`leaves every session the client filled either committed or as acknowledged, over ${ROUNDS} crashes`, async (t) => {
    const root = `${makeTempDir('zot-ts-upload-crash-')}/root`;
    const problems: string[] = [];
    let inFlight = 0;
    const found: Record<Found, number> = { blob: 0, session: 0 };
    const port = await getFreePort();
    let registry = await start(root, port);
    for (let round = 0; round < ROUNDS; round++) {
      const sessions: TrackedSession[] = [];
      let killed = false;
      const workers = Array.from({ length: WORKERS }, (_, worker) => uploadWorker(registry.url, worker, () => killed, sessions));
      // A random instant once PUTs are being answered (how soon depends on the disk's fsyncs).
      await eventually(async () => sessions.some((s) => s.outcome === 'committed'), `round ${round}: a first PUT answered`, 60_000);
      await sleep(Math.random() * 1500);
      killed = true;
      await registry.kill();
      processes.delete(registry);
      const failures = (await Promise.all(workers)).flatMap((failure) => (failure ? [failure] : []));
      assert.deepEqual(failures, [], 'no request failed before the crash');

      registry = await start(root, port);
      for (const session of sessions) {
        const checked = await checkSession(registry.url, session);
        if ('problem' in checked) problems.push(`round ${round}: ${checked.problem}`);
        else if (session.outcome === 'in-flight') found[checked.found]++;
        if (session.outcome === 'in-flight') inFlight++;
      }
    }
    assert.equal(await registry.stop(), 0, registry.output());
    processes.delete(registry);
    t.diagnostic(`${inFlight} PUTs in flight at the crashes: ${found.blob} blobs committed, ${found.session} sessions restored and their PUT retried`);
    assert.ok(inFlight >= ROUNDS, `the crashes hit PUTs in flight (${inFlight})`);
    assert.deepEqual(problems, [], `${problems.length} of ${inFlight} sessions whose PUT was in flight went wrong`);
  });
});
