import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseDuration } from '../../src/config/duration.js';

describe('parseDuration', () => {
  it('reads Go durations as milliseconds', () => {
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('30m'), 1_800_000);
    assert.equal(parseDuration('10s'), 10_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('1.5h'), 5_400_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('1500us'), 1.5);
    assert.equal(parseDuration('0'), 0);
  });

  it('rejects what Go rejects, and negative durations', () => {
    for (const text of ['', '1', 'h', '1d', '1 h', '1h ', '-1h', '+1h', '1h-30m', '.h']) {
      assert.equal(parseDuration(text), undefined, JSON.stringify(text));
    }
  });
});
