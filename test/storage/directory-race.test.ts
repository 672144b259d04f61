// GC removes an emptied repository's directories, and then its parent if that became empty too.
// Repositories under one namespace share that parent (`race` of `race/gone` and `race/new`), and a
// push into a new sibling creates its directories level by level: if the parent vanished between
// the push making it and making the level below, the push used to fail with ENOENT (a 500 seen once
// in the faults test). A creation now retries a vanished parent, and a removal leaves a directory
// alone while something beneath it is being created in this process.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDirectory, removeEmptyDirectory } from '../../src/storage/directories.js';
import { assertReplayClean, eventually } from '../helpers/http.js';
import { pushBlob, sha256 } from '../helpers/oci.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('directories created while GC removes their empty parent', () => {
  it('every creation succeeds while a remover takes the shared parent whenever it is empty', async () => {
    const shared = path.join(makeTempDir(), 'ns');
    let removing = true;
    let removals = 0;
    // What GC does to a namespace whose last repository went: rmdir it, again and again here.
    const remover = (async () => {
      while (removing) {
        if (await removeEmptyDirectory(shared)) removals++;
        await nextTurn();
      }
    })();
    const failures: string[] = [];
    for (let i = 0; i < 300; i++) {
      const leaf = path.join(shared, `repo${i}`, '.uploads');
      try {
        await ensureDirectory(leaf);
        assert.ok(fs.statSync(leaf).isDirectory());
        fs.rmdirSync(leaf);
        fs.rmdirSync(path.dirname(leaf));
        await nextTurn(); // the remover's turn: the shared parent is empty now
      } catch (err) {
        failures.push(`${leaf}: ${(err as Error).message}`);
      }
    }
    removing = false;
    await remover;
    assert.deepEqual(failures, []);
    // The remover really raced the creations: it removed the emptied parent over and over.
    assert.ok(removals > 10, `the shared parent was removed ${removals} times`);
  });

  it('a removal leaves a directory alone while a level beneath it is being created', async () => {
    const shared = path.join(makeTempDir(), 'ns');
    fs.mkdirSync(shared);
    const creating = ensureDirectory(path.join(shared, 'repo', 'blobs', 'sha256'));
    assert.equal(await removeEmptyDirectory(shared), false);
    await creating;
    assert.ok(fs.statSync(path.join(shared, 'repo', 'blobs', 'sha256')).isDirectory());
  });

  describe('through HTTP, with GC sweeping every 20 ms', () => {
    let registry: TestRegistry;
    before(async () => {
      registry = await startTestRegistry({ storage: { dedupe: false, gc: true, gcDelay: '1ms', gcInterval: '20ms' } });
    });
    after(async () => {
      await registry?.stop();
    });

    it('pushes into new sibling repositories all succeed while GC removes emptied ones and their parent', async () => {
      const failed: string[] = [];
      const push = async (repo: string, data: Buffer): Promise<void> => {
        const res = await fetch(`${registry.url}/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, { method: 'POST', body: data });
        if (res.status !== 201) failed.push(`${repo}: ${res.status} ${await res.text()}`);
      };
      for (let round = 0; round < 40; round++) {
        // Nothing references these blobs: GC takes each after 1 ms, then its repository, then race/
        // when no sibling is left, while the next round's pushes lay out new siblings under race/.
        await push('race/gone', Buffer.from(`blob of a repository GC empties in round ${round}`));
        await Promise.all(Array.from({ length: 4 }, (_, k) => push(`race/new${round}x${k}`, Buffer.from(`round ${round} sibling ${k}`))));
        await new Promise((resolve) => setTimeout(resolve, 5 * (round % 5)));
      }
      assert.deepEqual(failed, []);
      const removed = [...registry.running.store.read()].filter((event) => event.type === 'RepositoryRemoved').length;
      assert.ok(removed > 0, 'GC removed emptied repositories while the pushes ran');
      // Every blob here is an orphan, and GC removes an orphan's file before it appends its
      // OrphanRemoved event: a replay during the last rounds' sweeps saw files gone that the log
      // still held (4 of 160 once, under load). Once GC has taken race/ itself, the last sweep's
      // events are in: a blob lost for real would still show as drift.
      await eventually(async () => !fs.existsSync(path.join(registry.root, 'race')), 'GC to remove race/ once the pushes are over', 30_000);
      await assertReplayClean(registry);
    });
  });
});
