// The manifest LRU (src/registry/manifest-cache.ts): bounded in bytes, evicting the least recently
// used first, where a hit counts as a use whether or not it was already the most recent one.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManifestCache } from '../../src/registry/manifest-cache.js';

const bytes = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);

describe('ManifestCache', () => {
  it('evicts the least recently used entries once over its bytes', () => {
    const cache = new ManifestCache(300);
    cache.set('a', bytes(100, 1));
    cache.set('b', bytes(100, 2));
    cache.set('c', bytes(100, 3));
    // a is used again, twice (the second time it is already the newest): b is now the oldest.
    assert.equal(cache.get('a')?.[0], 1);
    assert.equal(cache.get('a')?.[0], 1);
    cache.set('d', bytes(100, 4));
    assert.equal(cache.get('b'), undefined, 'b, the least recently used, went');
    assert.equal(cache.get('c')?.[0], 3);
    assert.equal(cache.get('a')?.[0], 1);
    assert.equal(cache.get('d')?.[0], 4);
    // Now c is the oldest, then a, then d: an entry of 200 bytes takes the place of c and a.
    cache.set('e', bytes(200, 5));
    assert.equal(cache.get('c'), undefined);
    assert.equal(cache.get('a'), undefined);
    assert.equal(cache.get('d')?.[0], 4);
    assert.equal(cache.get('e')?.[0], 5);
  });

  it('keeps a newest entry that was set, not hit, as the newest', () => {
    const cache = new ManifestCache(200);
    cache.set('a', bytes(100, 1));
    cache.get('a');
    cache.set('b', bytes(100, 2));
    // b was set last: a hit on a moves a after it, so b is now the one to go.
    cache.get('a');
    cache.set('c', bytes(100, 3));
    assert.equal(cache.get('b'), undefined);
    assert.equal(cache.get('a')?.[0], 1);
  });

  it('takes nothing larger than its bound, and never stores a digest twice', () => {
    const cache = new ManifestCache(100);
    cache.set('big', bytes(101, 9));
    assert.equal(cache.get('big'), undefined);
    cache.set('a', bytes(60, 1));
    cache.set('a', bytes(60, 2));
    assert.equal(cache.get('a')?.[0], 1, 'the first bytes stay');
    cache.set('b', bytes(40, 3));
    assert.equal(cache.get('a')?.[0], 1, 'counted once: 100 bytes fit');
  });
});
