// The event log's savepoint journals stay in memory. Each append of a group commit runs in a
// savepoint, and SQLite spilled a savepoint's journal past 64 KiB to a new file in its temporary
// directory: under a burst of small pushes, one group commit in five created a file, wrote some
// fifty pages to it and removed it, on the event loop. `zot serve` runs under strace while images
// are pushed side by side, and the trace must show no such file.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { makeImage, pushImage } from '../helpers/oci.js';
import { spawnTraced, stopTraced } from '../helpers/strace.js';

const IMAGES = 240;
const AT_ONCE = 16;

describe('SQLite temporary files', () => {
  it('a burst of pushes creates none: savepoint journals stay in memory', async (t: TestContext) => {
    const traced = await spawnTraced(t, ['-e', 'trace=openat']);
    if (!traced) return;
    const { registry, traceFile } = traced;
    try {
      let next = 0;
      const pusher = async (): Promise<void> => {
        for (let i = next++; i < IMAGES; i = next++) {
          const res = await pushImage(registry.url, `burst/repo${i}`, 'latest', makeImage({ layers: 2 }));
          assert.equal(res.status, 201, await res.text());
        }
      };
      await Promise.all(Array.from({ length: AT_ONCE }, pusher));
    } finally {
      await stopTraced(registry.child);
    }
    const trace = fs.readFileSync(traceFile, 'utf8').split('\n');
    assert.ok(trace.some((line) => line.includes('events.db')), 'the trace shows the event log opened');
    // SQLite names its temporary files etilqs_* (in SQLITE_TMPDIR, TMPDIR or /var/tmp).
    const temporary = trace.filter((line) => line.includes('etilqs_'));
    assert.deepEqual(temporary.slice(0, 3), [], `${temporary.length} SQLite temporary files opened`);
  });
});
