// `zot audit` against a log made by the test, read while the registry keeps running: the listing
// and its filters, --at (a tag moved between two pushes), --history, and --follow.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectOciError, instantAfter } from '../helpers/http.js';
import { makeImage, pushBlob, pushImage, pushManifest, type TestImage } from '../helpers/oci.js';
import { makeTempDir, runZot, spawnZot, startTestRegistry, testConfig, writeConfig, type TestRegistry } from '../helpers/registry.js';

interface AuditLine {
  seq: number;
  time: string;
  event: string;
  repository: string;
  subject: string;
  outcome: string;
  digest?: string;
  tag?: string;
  code?: string;
}

interface TagChange {
  seq: number;
  time: string;
  change: string;
  digest?: string;
  previous?: string;
  identity: string;
  client?: string;
  code?: string;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

async function pushOk(url: string, repo: string, tag: string, image: TestImage = makeImage()): Promise<TestImage> {
  const res = await pushImage(url, repo, tag, image);
  assert.equal(res.status, 201, await res.text());
  return image;
}

describe('zot audit', () => {
  let registry: TestRegistry;
  let configPath: string;
  let auditFile: string;
  let first: TestImage;
  let second: TestImage;
  let seqAfterFirst = 0;
  let betweenPushes = '';
  const followers = new Set<ChildProcess>();

  async function audit(...args: string[]): Promise<AuditLine[]> {
    const result = await runZot(['audit', configPath, '--json', ...args]);
    assert.equal(result.code, 0, result.stderr);
    return lines(result.stdout).map((line) => JSON.parse(line) as AuditLine);
  }

  before(async () => {
    auditFile = path.join(makeTempDir(), 'audit.log');
    const log = { level: 'error' as const, audit: auditFile };
    registry = await startTestRegistry({ log });
    configPath = writeConfig(testConfig({ root: registry.root, log }));
    const { url } = registry;
    first = await pushOk(url, 'team/app', 'v1');
    seqAfterFirst = registry.running.store.head();
    betweenPushes = await instantAfter(Date.now());
    await instantAfter(Date.parse(betweenPushes));
    second = await pushOk(url, 'team/app', 'v1');
    await pushOk(url, 'team/lib', 'x');
    await pushOk(url, 'other/thing', 'y');
    // A refused attempt on the tag: its manifest names a blob the repository does not hold.
    const stray = makeImage();
    await pushBlob(url, 'team/app', stray.config);
    await expectOciError(await pushManifest(url, 'team/app', 'v1', stray.manifestBytes), 400, 'MANIFEST_BLOB_UNKNOWN');
    assert.equal((await fetch(`${url}/v2/team/app/manifests/v1`, { method: 'DELETE' })).status, 202);
    await registry.running.actorsCaughtUp();
  });

  after(async () => {
    for (const child of followers) child.kill('SIGKILL');
    await registry.stop();
  });

  it('--json prints the lines of the audit file', async () => {
    const result = await runZot(['audit', configPath, '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, fs.readFileSync(auditFile, 'utf8'));
  });

  it('prints a table with one line per action', async () => {
    const all = await audit();
    const result = await runZot(['audit', configPath]);
    assert.equal(result.code, 0, result.stderr);
    const table = lines(result.stdout);
    assert.equal(table.length, all.length);
    table.forEach((line, i) => {
      const record = all[i] as AuditLine;
      const fields = line.trim().split(/\s+/);
      assert.deepEqual(fields.slice(0, 5), [String(record.seq), record.time, record.event, record.outcome, record.subject], line);
    });
    assert.ok(table.some((line) => /WriteRefused\s+refused\s+anonymous\s+\S+\s+PUT \/v2\/team\/app\/manifests\/v1\s+400\s+MANIFEST_BLOB_UNKNOWN/.test(line)), table.join('\n'));
  });

  it('filters by repository glob, identity, type and seq or time range', async () => {
    const all = await audit();
    assert.equal(all.length, registry.running.store.head());

    const team = await audit('--repo', 'team/*');
    assert.deepEqual(team, all.filter((line) => line.repository.startsWith('team/')));
    assert.ok(team.some((line) => line.repository === 'team/lib'));
    assert.deepEqual(await audit('--repo', 'team/app'), all.filter((line) => line.repository === 'team/app'));
    assert.deepEqual(await audit('--repo', '**'), all);

    assert.deepEqual(await audit('--identity', 'anonymous'), all);
    assert.deepEqual(await audit('--identity', 'mallory'), []);

    const tags = await audit('--type', 'TagSet,TagRemoved');
    assert.deepEqual(
      tags.map((line) => [line.event, line.repository, line.tag]),
      [
        ['TagSet', 'team/app', 'v1'],
        ['TagSet', 'team/app', 'v1'],
        ['TagSet', 'team/lib', 'x'],
        ['TagSet', 'other/thing', 'y'],
        ['TagRemoved', 'team/app', 'v1'],
      ],
    );
    const refused = await audit('--type', 'WriteRefused');
    assert.deepEqual(
      refused.map((line) => [line.outcome, line.code]),
      [['refused', 'MANIFEST_BLOB_UNKNOWN']],
    );

    assert.deepEqual(await audit('--since', '3', '--until', '6'), all.filter((line) => line.seq >= 3 && line.seq <= 6));
    assert.deepEqual(await audit('--until', betweenPushes), all.filter((line) => line.seq <= seqAfterFirst));
    assert.deepEqual(await audit('--since', betweenPushes, '--repo', 'team/app', '--type', 'ManifestPushed'), [
      all.find((line) => line.event === 'ManifestPushed' && line.digest === second.digest),
    ]);

    // A bad option value is a usage error: exit 2, as for every command.
    const badType = await runZot(['audit', configPath, '--type', 'TagMoved']);
    assert.equal(badType.code, 2);
    assert.match(badType.stderr, /unknown action type TagMoved/);
    const badTime = await runZot(['audit', configPath, '--until', 'last tuesday']);
    assert.equal(badTime.code, 2);
    assert.match(badTime.stderr, /--until/);
  });

  it('--at shows the tags as they were: the old digest before the tag moved, the new one after', async () => {
    const atFirst = await runZot(['audit', configPath, '--json', '--at', String(seqAfterFirst), 'team/app']);
    assert.equal(atFirst.code, 0, atFirst.stderr);
    const then = JSON.parse(atFirst.stdout) as { repository: string; seq: number; tags: { tag: string; digest: string }[]; manifests: string[] };
    assert.deepEqual(then.tags, [{ tag: 'v1', digest: first.digest }]);
    assert.deepEqual(then.manifests, [first.digest]);
    assert.equal(then.seq, seqAfterFirst);

    const byTime = await runZot(['audit', configPath, '--json', '--at', betweenPushes, 'team/app']);
    assert.equal(byTime.code, 0, byTime.stderr);
    assert.deepEqual((JSON.parse(byTime.stdout) as typeof then).tags, [{ tag: 'v1', digest: first.digest }]);

    const moved = registry.running.store.head() - 1;
    const later = await runZot(['audit', configPath, '--at', String(moved), 'team/app']);
    assert.equal(later.code, 0, later.stderr);
    assert.match(later.stdout, /^team\/app at seq \d+ .*1 tag\(s\), 2 manifest\(s\)\n/);
    assert.match(later.stdout, new RegExp(`\\n  v1  ${second.digest}\\n$`));

    // After the tag was deleted the repository has no tags, and before its first push it did not exist.
    const now = await runZot(['audit', configPath, '--json', '--at', new Date().toISOString(), 'team/app']);
    assert.deepEqual((JSON.parse(now.stdout) as typeof then).tags, []);
    const before = await runZot(['audit', configPath, '--at', '0', 'team/app']);
    assert.equal(before.code, 1);
    assert.match(before.stderr, /did not exist at seq 0/);
    const noRepo = await runZot(['audit', configPath, '--at', '5']);
    assert.equal(noRepo.code, 2);
    assert.match(noRepo.stderr, /needs a repository/);
  });

  it('--history shows every digest the tag pointed to, who moved it and when', async () => {
    const result = await runZot(['audit', configPath, '--json', '--history', 'team/app:v1']);
    assert.equal(result.code, 0, result.stderr);
    const changes = lines(result.stdout).map((line) => JSON.parse(line) as TagChange);
    assert.deepEqual(
      changes.map((change) => [change.change, change.digest, change.previous, change.code, change.identity]),
      [
        ['set', first.digest, undefined, undefined, 'anonymous'],
        ['moved', second.digest, first.digest, undefined, 'anonymous'],
        ['refused', undefined, undefined, 'MANIFEST_BLOB_UNKNOWN', 'anonymous'],
        ['removed', second.digest, undefined, undefined, 'anonymous'],
      ],
    );
    for (const change of changes) {
      assert.match(change.client ?? '', /127\.0\.0\.1$/);
      assert.ok(!Number.isNaN(Date.parse(change.time)));
    }
    assert.deepEqual(
      changes.map((change) => change.seq),
      [...changes.map((change) => change.seq)].sort((a, b) => a - b),
    );

    const table = await runZot(['audit', configPath, '--history', 'team/app:v1']);
    assert.equal(table.code, 0, table.stderr);
    assert.equal(lines(table.stdout).length, 4);
    assert.ok(table.stdout.includes(`moved    ${second.digest}  (was ${first.digest})  anonymous`), table.stdout);

    const never = await runZot(['audit', configPath, '--history', 'team/app:never']);
    assert.equal(never.code, 1);
    assert.match(never.stderr, /team\/app:never was never set/);
    const malformed = await runZot(['audit', configPath, '--history', 'team/app']);
    assert.equal(malformed.code, 2);
    assert.match(malformed.stderr, /<repo>:<tag>/);
  });

  it('--follow prints actions made after it started, filtered, and stops on SIGTERM', async () => {
    const head = registry.running.store.head();
    // From the last existing action: printing it shows the follower has read the log once.
    const run = spawnZot(['audit', configPath, '--follow', '--json', '--since', String(head), '--type', 'TagRemoved,TagSet,WriteRefused']);
    const follower = run.child;
    followers.add(follower);
    const deadline = Date.now() + 10_000;
    while (!run.stdout().includes('\n') && Date.now() < deadline) await sleep(20);
    assert.deepEqual(
      lines(run.stdout()).map((line) => (JSON.parse(line) as AuditLine).seq),
      [head],
      run.stderr(),
    );

    const image = await pushOk(registry.url, 'team/followed', 'live');
    await expectOciError(await fetch(`${registry.url}/v2/team/followed/manifests/gone`, { method: 'DELETE' }), 404, 'MANIFEST_UNKNOWN');
    while (!run.stdout().includes('"WriteRefused"') && Date.now() < deadline) await sleep(50);
    assert.deepEqual(
      lines(run.stdout())
        .slice(1)
        .map((line) => JSON.parse(line) as AuditLine)
        .map((line) => [line.event, line.repository, line.digest ?? line.code]),
      [
        ['TagSet', 'team/followed', image.digest],
        ['WriteRefused', 'team/followed', 'MANIFEST_UNKNOWN'],
      ],
      run.stderr(),
    );
    follower.kill('SIGTERM');
    const code = await Promise.race([run.exited, sleep(5_000).then(() => 'timeout')]);
    assert.equal(code, 0, run.stderr());
    followers.delete(follower);
  });

  it('needs an event log and one command at a time', async () => {
    const result = await runZot(['audit', writeConfig(testConfig())]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no event log/);
    const both = await runZot(['audit', configPath, '--history', 'team/app:v1', '--rebuild-audit-log']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /give one/);
  });
});
