// index.json and the audit log across kill -9: clients push images into several repositories at
// once, so that the index.json writer writes the repositories of a batch side by side, and the
// `zot serve` child is killed mid-burst. Both writers store their checkpoints lazily (actor.ts), so
// the restart redoes a tail of their work. After it each repository's index.json lists exactly the
// tags the registry serves (every acknowledged one among them) with their digests, the audit log
// holds one line per audited event, each once and in order, and `zot replay` is clean.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { eventLogFile } from '../../src/storage/layout.js';
import { eventually } from '../helpers/http.js';
import { REF_NAME } from '../helpers/layout.js';
import { makeImage, OCI_MANIFEST, pushImage } from '../helpers/oci.js';
import { makeTempDir, runZot, spawnRegistry, type RegistryProcess } from '../helpers/registry.js';

const CLIENTS = 16;
const REPOSITORIES = 8;

/** Tag → digest as the registry serves them. */
async function servedTags(url: string, repo: string): Promise<Map<string, string>> {
  const res = await fetch(`${url}/v2/${repo}/tags/list`);
  if (res.status === 404) return new Map();
  assert.equal(res.status, 200, `tags of ${repo}`);
  const { tags } = (await res.json()) as { tags: string[] | null };
  const served = new Map<string, string>();
  for (const tag of tags ?? []) {
    const head = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: 'HEAD', headers: { Accept: OCI_MANIFEST } });
    assert.equal(head.status, 200, `HEAD ${repo}:${tag}`);
    served.set(tag, head.headers.get('docker-content-digest') ?? '');
  }
  return served;
}

/** Tag → digest as the repository's index.json lists them. */
function indexTags(root: string, repo: string): Map<string, string> {
  const file = path.join(root, repo, 'index.json');
  if (!fs.existsSync(file)) return new Map();
  const index = JSON.parse(fs.readFileSync(file, 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  return new Map(index.manifests.flatMap((m) => (m.annotations?.[REF_NAME] ? [[m.annotations[REF_NAME], m.digest] as [string, string]] : [])));
}

/** Sequence numbers of the events the audit log records (all but pulls), from the event log. */
function auditedEvents(root: string): number[] {
  const db = new Database(eventLogFile(root), { readonly: true });
  try {
    return db.prepare("SELECT seq FROM events WHERE type != 'ManifestsPulled' ORDER BY seq").pluck().all() as number[];
  } finally {
    db.close();
  }
}

/** The actors' stored checkpoints and the log's head, as a crash left them. */
function storedCheckpoints(root: string): Record<string, number> {
  const db = new Database(eventLogFile(root), { readonly: true });
  try {
    const rows = db.prepare('SELECT name, seq FROM checkpoints').all() as { name: string; seq: number }[];
    const head = db.prepare('SELECT MAX(seq) FROM events').pluck().get() as number;
    return { head, ...Object.fromEntries(rows.map((row) => [row.name, row.seq])) };
  } finally {
    db.close();
  }
}

describe('index.json across kill -9', () => {
  const processes = new Set<RegistryProcess>();
  after(async () => {
    for (const registry of processes) await registry.kill();
  });

  it('lists exactly the served tags after a restart, every acknowledged one among them, audits each event once, and replays clean', async (t) => {
    const root = `${makeTempDir('zot-ts-index-crash-')}/root`;
    const audit = path.join(makeTempDir('zot-ts-index-crash-audit-'), 'audit.log');
    const log = { level: 'warn' as const, audit };
    const registry = await spawnRegistry({ root, log });
    processes.add(registry);
    const acked: { repo: string; tag: string; digest: string }[] = [];
    let killed = false;
    const client = async (id: number): Promise<string | undefined> => {
      for (let n = 0; !killed; n++) {
        const repo = `spread/r${(id + n) % REPOSITORIES}`;
        const tag = `c${id}-${n}`;
        const image = makeImage({ layers: 1, layerBytes: 64 + Math.floor(Math.random() * 256) });
        try {
          const res = await pushImage(registry.url, repo, tag, image);
          await res.arrayBuffer();
          if (res.status !== 201) return killed ? undefined : `push ${repo}:${tag} answered ${res.status}`;
          acked.push({ repo, tag, digest: image.digest });
        } catch (err) {
          if (!killed) return `push ${repo}:${tag} failed: ${(err as Error).message}`;
        }
      }
      return undefined;
    };
    const clients = Array.from({ length: CLIENTS }, (_, id) => client(id));
    await eventually(async () => acked.length >= CLIENTS * 2, 'a first rounds of acknowledged pushes', 30_000);
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 300));
    killed = true;
    await registry.kill();
    processes.delete(registry);
    assert.deepEqual((await Promise.all(clients)).filter((failure) => failure !== undefined), [], 'no push failed before the crash');
    t.diagnostic(`stored checkpoints at the crash: ${JSON.stringify(storedCheckpoints(root))}`);

    const restarted = await spawnRegistry({ root, log });
    processes.add(restarted);
    const repos = Array.from({ length: REPOSITORIES }, (_, r) => `spread/r${r}`);
    const served = new Map<string, Map<string, string>>();
    for (const repo of repos) served.set(repo, await servedTags(restarted.url, repo));
    for (const ack of acked) assert.equal(served.get(ack.repo)?.get(ack.tag), ack.digest, `acknowledged ${ack.repo}:${ack.tag} is served`);
    // The writer catches up from its checkpoint after the restart.
    const differing = (): string[] => repos.filter((repo) => JSON.stringify([...indexTags(root, repo)].sort()) !== JSON.stringify([...(served.get(repo) ?? [])].sort()));
    await eventually(async () => differing().length === 0, 'every index.json to list the served tags', 20_000).catch(() => {
      assert.deepEqual(differing(), [], 'repositories whose index.json differs from what is served');
    });

    assert.equal(await restarted.stop(), 0, restarted.output());
    processes.delete(restarted);
    const lines = fs.readFileSync(audit, 'utf8').split('\n').filter((line) => line !== '');
    const auditedSeqs = lines.map((line) => (JSON.parse(line) as { seq: number }).seq);
    assert.deepEqual(auditedSeqs, auditedEvents(root), 'one audit line per audited event, each once, in order');
    const replay = await runZot(['replay', restarted.configPath]);
    assert.equal(replay.code, 0, `replay found drift:\n${replay.stdout}${replay.stderr}`);
    assert.doesNotMatch(replay.stdout, /^drift:/m);
  });
});
