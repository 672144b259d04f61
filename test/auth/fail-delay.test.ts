// http.auth.failDelay through HTTP: a request with failed credentials is answered after the
// delay, while requests of other clients (good credentials, none at all) are answered meanwhile.
// Ordering is asserted, not speed: the failed request is sent first and answered last.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { fetchAs, writeHtpasswd } from '../helpers/auth.js';
import { expectOciError } from '../helpers/http.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const FAIL_DELAY_S = 2;

describe('failDelay', () => {
  let registry: TestRegistry;
  let htpasswd: string;

  before(async () => {
    htpasswd = writeHtpasswd(path.join(makeTempDir('zot-ts-faildelay-'), 'htpasswd'), { alice: 'alice-secret' });
    registry = await startTestRegistry({ http: { auth: { htpasswd: { path: htpasswd }, failDelay: FAIL_DELAY_S } } });
  });

  after(async () => {
    await registry?.stop();
  });

  it('answers failed credentials after the delay while other clients are answered at once', async () => {
    const order: string[] = [];
    const started = performance.now();
    const timed = (name: string, request: Promise<Response>) =>
      request.then((res) => {
        order.push(name);
        return { res, ms: performance.now() - started };
      });
    const failed = timed('wrong password', fetchAs('alice', 'wrong', `${registry.url}/v2/`));
    // The failed request is in the registry, waiting, before the others are sent.
    await sleep(200);
    const others = await Promise.all([
      timed('good credentials', fetchAs('alice', 'alice-secret', `${registry.url}/v2/_catalog`)),
      timed('no credentials', fetch(`${registry.url}/v2/`)),
      timed('health probe', fetch(`${registry.url}/livez`)),
    ]);
    const failure = await failed;

    assert.equal(order.length, 4);
    assert.equal(order.at(-1), 'wrong password', `sent first, answered last: ${order.join(', ')}`);
    assert.ok(failure.ms >= FAIL_DELAY_S * 1000 - 5, `the failed request waited the delay (${Math.round(failure.ms)} ms)`);
    assert.equal(failure.res.headers.get('www-authenticate'), 'Basic realm="Authorization Required"');
    await expectOciError(failure.res, 401, 'UNAUTHORIZED');

    const [good, none, probe] = others;
    assert.equal(good?.res.status, 200);
    assert.equal(probe?.res.status, 200);
    assert.ok(none);
    // No credentials is not a failed login: 401 at once, as in zot.
    await expectOciError(none.res, 401, 'UNAUTHORIZED');
    assert.ok(none.ms < failure.ms);
  });

  it('delays a failed write the same way, and shutting down answers a waiting request at once', async () => {
    const waiting = await startTestRegistry({ http: { auth: { htpasswd: { path: htpasswd }, failDelay: 600 } } });
    const answered = fetchAs('alice', 'wrong', `${waiting.url}/v2/app/blobs/uploads/`, { method: 'POST' }).then((res) => res.status);
    await sleep(200);
    const outcome = await Promise.race([
      waiting.stop().then(() => 'stopped'),
      sleep(60_000, 'still waiting for failDelay'),
    ]);
    assert.equal(outcome, 'stopped', 'close() does not wait out a 600 s failDelay');
    assert.equal(await answered, 401);
  });
});
