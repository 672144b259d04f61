// Repository files seen from a compiled test: this module runs as dist/test/config/paths.js,
// so the repository root is three directories up.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const examplesDir = join(repoRoot, 'examples');
