// Synced content lands through the registry's commands with its provenance in the log: images
// copied from a real docker-registry (behind a counting proxy) into a zot-ts registry are events
// of identity `sync` naming the upstream URL, repository and digest; a second copy fetches
// nothing; a corrupted or cut-off blob leaves nothing visible; replay stays clean.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { StoredEvent } from '../../src/events/types.js';
import { BlobFetches } from '../../src/sync/blob-fetches.js';
import { ImageCopier } from '../../src/sync/image-copier.js';
import { UpstreamClient } from '../../src/sync/upstream-client.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { assertReplayClean } from '../helpers/http.js';
import { sha256 } from '../helpers/oci.js';
import { makeTempDir, runZot, startTestRegistry, writeConfig, type TestRegistry } from '../helpers/registry.js';
import { layoutImage, multiPlatformImage, pushOverHttp } from '../helpers/sync-images.js';
import { startSyncProxy, type SyncProxy } from '../helpers/sync-proxy.js';

describe('sync provenance: content through the commands of a push, named by its upstream', () => {
  let upstream: DockerRegistry;
  let proxy: SyncProxy;
  let local: TestRegistry;
  let client: UpstreamClient;
  let copier: ImageCopier;
  let auditFile: string;
  const { index, children } = multiPlatformImage();
  const signature = layoutImage({ layers: 1 });
  const plain = layoutImage({ layers: 2, fileBytes: [200_000, 300_000] });

  before(async () => {
    upstream = await startDockerRegistry();
    await pushOverHttp(upstream.url, 'team/multi', 'v1', index, children);
    await pushOverHttp(upstream.url, 'team/multi', `${index.digest.replace(':', '-')}.sig`, signature);
    await pushOverHttp(upstream.url, 'team/plain', 'v1', plain);
    proxy = await startSyncProxy(upstream.url);
    auditFile = path.join(makeTempDir('zot-ts-sync-audit-'), 'audit.log');
    local = await startTestRegistry({ log: { level: 'error', audit: auditFile } });
    client = new UpstreamClient({ urls: [proxy.url], tls: { verify: true } });
    const logger = pino({ level: 'silent' });
    const blobs = new BlobFetches(local.running.registry, local.running.queries, logger);
    copier = new ImageCopier(local.running.registry, local.running.queries, blobs, logger);
  });
  after(async () => {
    client?.close();
    await local?.stop();
    await proxy?.close();
    await upstream?.stop();
  });

  const events = (): StoredEvent[] => [...local.running.store.read()];

  it('copies an index with its platforms, blobs and cosign signature tag, each an event of identity sync naming the upstream', async () => {
    const outcome = await copier.copy({ client, upstreamRepo: 'team/multi', localRepo: 'mirror/multi', reference: 'v1' });
    assert.equal(outcome.kind, 'synced');
    assert.equal(outcome.kind === 'synced' && outcome.referrers, 1, 'the .sig tag came along');

    const res = await fetch(`${local.url}/v2/mirror/multi/manifests/v1`, { headers: { Accept: index.mediaType } });
    assert.equal(res.status, 200);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(index.bytes), 'the index keeps its upstream bytes');
    assert.equal(res.headers.get('docker-content-digest'), index.digest);
    const sigTag = `${index.digest.replace(':', '-')}.sig`;
    const tags = (await (await fetch(`${local.url}/v2/mirror/multi/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(tags.tags.sort(), [sigTag, 'v1'].sort());

    const synced = events().filter((e) => e.repo === 'mirror/multi');
    const blobDigests = [...children.flatMap((c) => c.blobs), ...signature.blobs].map(sha256);
    assert.deepEqual(
      synced.filter((e) => e.type === 'BlobPushed').map((e) => ('digest' in e ? e.digest : '')).sort(),
      [...new Set(blobDigests)].sort(),
    );
    for (const event of synced) {
      assert.equal(event.identity, 'sync', `${event.type} is by identity sync`);
      assert.equal(event.source?.url, proxy.url, `${event.type} names the upstream URL`);
      assert.equal(event.source?.repo, 'team/multi', `${event.type} names the upstream repository`);
      assert.equal(event.source?.digest, 'digest' in event ? event.digest : undefined, `${event.type} names the upstream digest`);
    }
    const tagSet = synced.find((e) => e.type === 'TagSet' && e.tag === 'v1');
    assert.equal(tagSet && 'digest' in tagSet ? tagSet.digest : undefined, index.digest);
    const last = synced.filter((e) => e.type !== 'BlobPushed');
    assert.deepEqual(
      last.map((e) => e.type),
      ['ManifestPushed', 'ManifestPushed', 'ManifestPushed', 'ManifestPushed', 'TagSet', 'ManifestPushed', 'TagSet'],
      'the platforms, then the index with its tag, then the signature with its tag',
    );

    const logged = await runZot(['events', writeConfig(local.config), '--repo', 'mirror/multi', '--type', 'TagSet']);
    assert.equal(logged.code, 0, logged.stderr);
    assert.match(logged.stdout, new RegExp(`TagSet\\s+mirror/multi\\s+v1\\s+${index.digest}\\s+sync\\s+from ${proxy.url} team/multi@${index.digest}`));
    await local.running.actorsCaughtUp();
    const audit = fs
      .readFileSync(auditFile, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line['repository'] === 'mirror/multi');
    assert.equal(audit.length, synced.length, 'one audit line per synced event');
    for (const line of audit) {
      assert.equal(line['subject'], 'sync');
      assert.equal(line['upstream'], proxy.url);
      assert.equal(line['upstreamRepository'], 'team/multi');
      assert.equal(line['upstreamDigest'], line['digest']);
    }
    await assertReplayClean(local);
  });

  it('fetches nothing again for an image it holds: no event, no manifest or blob GET upstream', async () => {
    const before = events().length;
    proxy.requests.length = 0;
    const outcome = await copier.copy({ client, upstreamRepo: 'team/multi', localRepo: 'mirror/multi', reference: 'v1' });
    assert.equal(outcome.kind, 'present');
    assert.equal(events().length, before, 'no event');
    assert.equal(proxy.count('GET', /\/blobs\//), 0, 'no blob fetched');
    assert.equal(proxy.count('GET', /\/manifests\//), 0, 'no manifest fetched');
  });

  it('refuses a corrupted upstream blob: the digest check fails, nothing is appended or left on storage', async () => {
    const layer = sha256(plain.blobs[2] as Buffer);
    proxy.corrupt(layer);
    try {
      const before = events().length;
      await assert.rejects(copier.copy({ client, upstreamRepo: 'team/plain', localRepo: 'mirror/plain', reference: 'v1' }), /DIGEST_INVALID|digest/);
      await local.running.actorsCaughtUp();
      const added = events().slice(before);
      assert.ok(!added.some((e) => 'digest' in e && e.digest === layer), 'no event names the corrupted blob');
      assert.ok(!added.some((e) => e.type === 'ManifestPushed' || e.type === 'TagSet'), 'no manifest or tag');
      const head = await fetch(`${local.url}/v2/mirror/plain/blobs/${layer}`, { method: 'HEAD' });
      assert.equal(head.status, 404);
      const uploads = path.join(local.root, 'mirror/plain/.uploads');
      assert.deepEqual(fs.existsSync(uploads) ? fs.readdirSync(uploads) : [], [], 'the upload session is gone');
      await assertReplayClean(local);
    } finally {
      proxy.corrupt(undefined);
    }
    const outcome = await copier.copy({ client, upstreamRepo: 'team/plain', localRepo: 'mirror/plain', reference: 'v1' });
    assert.equal(outcome.kind, 'synced', 'the next copy brings it once the upstream serves it whole');
  });

  it('leaves nothing visible of a blob whose upstream connection drops mid-way', async () => {
    const image = layoutImage({ layers: 1, fileBytes: [400_000] });
    await pushOverHttp(upstream.url, 'team/cut', 'v1', image);
    const layer = sha256(image.blobs[1] as Buffer);
    const hold = proxy.holdTail(layer, 1000);
    const copy = copier.copy({ client, upstreamRepo: 'team/cut', localRepo: 'mirror/cut', reference: 'v1' });
    await hold.sentAllButTail;
    proxy.refuse(true);
    try {
      await assert.rejects(copy);
    } finally {
      proxy.refuse(false);
      hold.release();
    }
    await local.running.actorsCaughtUp();
    assert.ok(!events().some((e) => e.repo === 'mirror/cut' && 'digest' in e && e.digest === layer), 'no event names the cut blob');
    assert.equal((await fetch(`${local.url}/v2/mirror/cut/manifests/v1`)).status, 404, 'no tag on a partial image');
    const uploads = path.join(local.root, 'mirror/cut/.uploads');
    assert.deepEqual(fs.existsSync(uploads) ? fs.readdirSync(uploads) : [], [], 'the upload session is gone');
    await assertReplayClean(local);
  });

  it('dedupes a synced blob with the copy another repository holds (one inode), and replay is clean', async () => {
    await copier.copy({ client, upstreamRepo: 'team/plain', localRepo: 'second/plain', reference: 'v1' });
    const layer = sha256(plain.blobs[1] as Buffer).slice('sha256:'.length);
    const first = fs.statSync(path.join(local.root, 'mirror/plain/blobs/sha256', layer));
    const second = fs.statSync(path.join(local.root, 'second/plain/blobs/sha256', layer));
    assert.equal(first.ino, second.ino, 'the second repository links the first one\'s bytes');
    await assertReplayClean(local);
  });
});
