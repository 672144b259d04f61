// http.ratelimit through HTTP: requests over the rate are answered 429 TOOMANYREQUESTS (OCI
// error JSON) with Retry-After, and pass again once that many seconds have gone by; a method's
// own rate limits that method only; the health probes are never limited. The assertions hold
// however slow the machine is: a burst of requests sent together must meet the limit, and
// waiting longer than Retry-After only refills the bucket more.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import * as path from 'node:path';
import { fetchAs, writeHtpasswd } from '../helpers/auth.js';
import { expectOciError } from '../helpers/http.js';
import { makeTempDir, startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const started: TestRegistry[] = [];
after(async () => {
  for (const registry of started) await registry.stop();
});

async function start(ratelimit: object, http: object = {}): Promise<TestRegistry> {
  const registry = await startTestRegistry({ http: { ratelimit, ...http } });
  started.push(registry);
  return registry;
}

/** Sends `count` requests at once; answers their responses, bodies read. */
async function burst(url: string, count: number, method = 'GET'): Promise<Response[]> {
  const responses = await Promise.all(Array.from({ length: count }, () => fetch(url, { method })));
  for (const res of responses) await res.clone().arrayBuffer();
  return responses;
}

describe('http.ratelimit', () => {
  it('answers 429 TOOMANYREQUESTS with Retry-After over the rate, and recovers after it', async () => {
    const { url } = await start({ rate: 1 });
    const responses = await burst(`${url}/v2/`, 10);
    const limited = responses.filter((res) => res.status === 429);
    assert.ok(responses.some((res) => res.status === 200), 'the first request of the burst passes');
    assert.ok(limited.length > 0, `a burst of 10 at 1 request/s meets the limit: ${responses.map((r) => r.status).join(',')}`);
    const first = limited[0]!;
    const retryAfter = Number(first.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After is whole seconds: ${first.headers.get('retry-after')}`);
    const body = await expectOciError(first, 429, 'TOOMANYREQUESTS');
    assert.match(body.errors[0]!.message, /rate limit/);

    await sleep(retryAfter * 1000 + 100);
    const again = await fetch(`${url}/v2/`);
    assert.equal(again.status, 200, 'after Retry-After seconds a request passes again');
  });

  it('limits a method by its own rate and leaves the other methods to the overall rate', async () => {
    const { url } = await start({ rate: 1000, methods: [{ method: 'GET', rate: 1 }] });
    const gets = await burst(`${url}/v2/`, 10, 'GET');
    assert.ok(gets.some((res) => res.status === 429), `GET is limited to 1/s: ${gets.map((r) => r.status).join(',')}`);
    const heads = await burst(`${url}/v2/`, 10, 'HEAD');
    assert.deepEqual(
      heads.map((res) => res.status),
      Array(10).fill(200),
      'HEAD is under the overall rate of 1000/s, with a burst of 1000',
    );
  });

  it('sets no limit with a rate of 0, overall or for a method', async () => {
    const { url } = await start({ rate: 0, methods: [{ method: 'GET', rate: 0 }] });
    for (let round = 0; round < 3; round++) {
      const responses = await burst(`${url}/v2/`, 10);
      assert.deepEqual(
        responses.map((res) => res.status),
        Array(10).fill(200),
        'a rate of 0 refuses nothing',
      );
    }
  });

  it('limits before authentication: a burst of wrong credentials meets 429, not a bcrypt check each', async () => {
    const htpasswd = writeHtpasswd(path.join(makeTempDir(), 'htpasswd'), { alice: 'alice-password' });
    const { url } = await start({ rate: 1 }, { auth: { htpasswd: { path: htpasswd } } });
    const responses = await Promise.all(Array.from({ length: 10 }, () => fetchAs('alice', 'wrong', `${url}/v2/`)));
    for (const res of responses) await res.arrayBuffer();
    const statuses = responses.map((res) => res.status);
    assert.ok(statuses.includes(401), `the first is checked and refused: ${statuses.join(',')}`);
    assert.ok(statuses.includes(429), `the rest of the burst is limited before its credentials are checked: ${statuses.join(',')}`);
  });

  it('never limits the health probes', async () => {
    const { url } = await start({ rate: 1 });
    const probes = await burst(`${url}/livez`, 10);
    assert.deepEqual(
      probes.map((res) => res.status),
      Array(10).fill(200),
    );
    const limited = await burst(`${url}/v2/`, 10);
    assert.ok(limited.some((res) => res.status === 429), 'the same client is limited on /v2/');
  });
});
