// kill -9 of `zot serve` in the middle of a periodic sync: after the restart the next poll resumes
// (what was committed is not fetched again), every image ends complete and byte-exact, and
// `zot replay` finds no drift.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Config } from '../../src/config/types.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { eventually } from '../helpers/http.js';
import { sha256 } from '../helpers/oci.js';
import { makeTempDir, runZot, spawnRegistry, writeConfig, type RegistryProcess } from '../helpers/registry.js';
import { layoutImage, pushOverHttp, type LayoutManifest } from '../helpers/sync-images.js';
import { startSyncProxy, type SyncProxy } from '../helpers/sync-proxy.js';

interface JsonEvent {
  type: string;
  repo: string;
  digest?: string;
}

describe('a crash in the middle of a periodic sync', () => {
  let upstream: DockerRegistry;
  let proxy: SyncProxy;
  let registry: RegistryProcess | undefined;
  const images: LayoutManifest[] = Array.from({ length: 8 }, () => layoutImage({ layers: 2, fileBytes: [300_000, 500_000] }));

  before(async () => {
    upstream = await startDockerRegistry();
    for (const [i, image] of images.entries()) await pushOverHttp(upstream.url, `crash/app${i}`, 'v1', image);
    proxy = await startSyncProxy(upstream.url);
  });
  after(async () => {
    await registry?.kill();
    await proxy?.close();
    await upstream?.stop();
  });

  it('resumes after restart without fetching committed blobs again; every image is whole and replay is clean', async () => {
    const root = path.join(makeTempDir('zot-ts-sync-crash-'), 'root');
    const extensions: Config['extensions'] = { sync: { enable: true, registries: [{ urls: [proxy.url], pollInterval: '1h', content: [{ prefix: 'crash/**' }] }] } };
    // One layer of the last image is held mid-way: the poll is still running when the process dies.
    const held = images[7] as LayoutManifest;
    const heldLayer = sha256(held.blobs[2] as Buffer);
    const hold = proxy.holdTail(heldLayer, 4096);
    registry = await spawnRegistry({ root, extensions });
    await hold.sentAllButTail;
    await registry.kill();
    proxy.refuse(true);
    proxy.refuse(false);
    hold.release();

    const configPath = writeConfig({ distSpecVersion: '1.1.0', http: { address: '127.0.0.1', port: '0' }, storage: { rootDirectory: root }, extensions });
    const logged = await runZot(['events', configPath, '--type', 'BlobPushed', '--json']);
    assert.equal(logged.code, 0, logged.stderr);
    const committed = logged.stdout
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as JsonEvent);
    assert.ok(!committed.some((e) => e.digest === heldLayer), 'the blob cut by the crash was never committed');

    proxy.requests.length = 0;
    registry = await spawnRegistry({ root, extensions });
    const url = registry.url;
    await eventually(
      async () => {
        for (const [i, image] of images.entries()) {
          const res = await fetch(`${url}/v2/crash/app${i}/manifests/v1`, { method: 'HEAD', headers: { Accept: image.mediaType } });
          if (res.headers.get('docker-content-digest') !== image.digest) return false;
        }
        return true;
      },
      'every image synced after the restart',
      30_000,
    );

    for (const event of committed) {
      const fetched = proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/crash/${event.repo.split('/')[1]}/blobs/${event.digest}`));
      assert.equal(fetched.length, 0, `${event.repo} ${event.digest} was committed before the crash and not fetched again`);
    }
    for (const [i, image] of images.entries()) {
      for (const blob of image.blobs) {
        const res = await fetch(`${url}/v2/crash/app${i}/blobs/${sha256(blob)}`);
        assert.equal(res.status, 200);
        assert.equal(sha256(Buffer.from(await res.arrayBuffer())), sha256(blob), 'byte-exact after the restart');
      }
    }
    assert.equal(await registry.stop(), 0);
    registry = undefined;
    const replay = await runZot(['replay', configPath]);
    assert.equal(replay.code, 0, `zot replay found drift:\n${replay.stdout}${replay.stderr}`);
  });
});
