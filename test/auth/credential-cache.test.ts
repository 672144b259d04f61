// The cache of verified credentials: one check for many concurrent requests, only successes kept,
// for the TTL only, dropped by clear() (also while a check runs), bounded, and never holding a
// password.
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { CredentialCache } from '../../src/auth/credential-cache.js';

function counted<T>(value: T | undefined): { check: () => Promise<T | undefined>; calls: () => number } {
  let calls = 0;
  return {
    check: async () => {
      calls++;
      await new Promise((resolve) => setTimeout(resolve, 10));
      return value;
    },
    calls: () => calls,
  };
}

describe('credential cache', () => {
  it('checks concurrent requests with the same credentials once, and keeps the answer', async () => {
    const cache = new CredentialCache<string>();
    const ok = counted('alice');
    const answers = await Promise.all(Array.from({ length: 20 }, () => cache.verify('alice', 'pw', ok.check)));
    assert.deepEqual(new Set(answers), new Set(['alice']));
    assert.equal(ok.calls(), 1);
    assert.equal(await cache.verify('alice', 'pw', ok.check), 'alice');
    assert.equal(ok.calls(), 1, 'the second request is answered from the cache');
  });

  it('keeps no failure and tells passwords and users apart', async () => {
    const cache = new CredentialCache<string>();
    const wrong = counted<string>(undefined);
    assert.equal(await cache.verify('alice', 'bad', wrong.check), undefined);
    assert.equal(await cache.verify('alice', 'bad', wrong.check), undefined);
    assert.equal(wrong.calls(), 2, 'a failure is checked each time');
    const ok = counted('x');
    await cache.verify('alice', 'pw', ok.check);
    await cache.verify('alice', 'pw2', ok.check);
    await cache.verify('bob', 'pw', ok.check);
    // "a:b" + "c" and "a" + "b:c" must not share an entry either.
    await cache.verify('a:b', 'c', ok.check);
    await cache.verify('a', 'b:c', ok.check);
    assert.equal(ok.calls(), 5);
  });

  it('forgets an entry after the TTL', async () => {
    let now = 1_000;
    const cache = new CredentialCache<string>({ ttlMs: 100, now: () => now });
    const ok = counted('alice');
    await cache.verify('alice', 'pw', ok.check);
    now += 99;
    await cache.verify('alice', 'pw', ok.check);
    assert.equal(ok.calls(), 1);
    now += 2;
    await cache.verify('alice', 'pw', ok.check);
    assert.equal(ok.calls(), 2);
  });

  it('drops everything on clear(), and does not keep a check that ran across it', async () => {
    const cache = new CredentialCache<string>();
    const ok = counted('alice');
    await cache.verify('alice', 'pw', ok.check);
    cache.clear();
    await cache.verify('alice', 'pw', ok.check);
    assert.equal(ok.calls(), 2);
    const running = cache.verify('bob', 'pw', ok.check);
    cache.clear();
    assert.equal(await running, 'alice', 'the running check is still answered');
    await cache.verify('bob', 'pw', ok.check);
    assert.equal(ok.calls(), 4, 'but its answer was not kept');
  });

  it('holds at most maxEntries, dropping the oldest', async () => {
    const cache = new CredentialCache<string>({ maxEntries: 2 });
    const ok = counted('x');
    for (const user of ['a', 'b', 'c']) await cache.verify(user, 'pw', ok.check);
    assert.equal(cache.size, 2);
    await cache.verify('c', 'pw', ok.check);
    assert.equal(ok.calls(), 3, 'the newest is kept');
    await cache.verify('a', 'pw', ok.check);
    assert.equal(ok.calls(), 4, 'the oldest was dropped');
  });

  it('never holds the password', async () => {
    const cache = new CredentialCache<string>();
    const password = 'correct-horse-battery-staple';
    await cache.verify('alice', password, counted('alice').check);
    const dump = inspect(cache, { depth: Infinity, showHidden: true, maxArrayLength: Infinity, maxStringLength: Infinity });
    assert.ok(dump.includes('alice'), 'the dump shows the entry');
    assert.ok(!dump.includes(password) && !dump.includes(Buffer.from(password).toString('base64')), dump);
  });
});
