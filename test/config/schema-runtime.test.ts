// The semver format of the compiled config schema (schema-runtime.ts) answers plain versions
// itself, without loading semver: its answers must be semver's own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import valid from 'semver/functions/valid.js';

import { isSemver } from '../../src/config/schema-runtime.js';

const VERSIONS = [
  '1.1.0', '0.0.0', '1.0.0', '10.20.30', '1.1.0-rc.1', '1.0.0+build.5', '1.0.0-alpha+001', 'v1.1.0', '=1.1.0', ' 1.1.0 ',
  '01.1.0', '1.01.0', '1.1.01', '1.1', '1', '', '1.1.0.0', 'a.b.c', '1.1.0-', '1.1.0+', '-1.1.0', '1..0',
  '9007199254740991.0.0', '9007199254740992.0.0', '1.9007199254740992.0', '12345678901234567.0.0', '1.1.0\n',
];

test('isSemver answers as semver.valid does, plain versions included', () => {
  for (const version of VERSIONS) assert.equal(isSemver(version), valid(version) !== null, JSON.stringify(version));
});

test('isSemver takes a plain version and refuses a leading zero or a missing part', () => {
  assert.equal(isSemver('1.1.0'), true);
  assert.equal(isSemver('01.1.0'), false);
  assert.equal(isSemver('1.1'), false);
});
