// The compiled schema is committed (src/config/validate-schema.generated.ts): a plain `tsc`
// build, the one every checkout runs, then has it. This test keeps it in step with schema.ts.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { compiledSchemaSource, GENERATED_VALIDATOR } from '../../src/config/compile-schema.js';
import { repoRoot } from './paths.js';

test('the committed compiled schema is what compile-schema.ts makes of schema.ts (else: npm run generate:config)', () => {
  const committed = fs.readFileSync(join(repoRoot, GENERATED_VALIDATOR), 'utf8');
  assert.ok(committed === compiledSchemaSource(), `${GENERATED_VALIDATOR} is stale: run npm run generate:config`);
});
