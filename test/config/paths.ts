// Repository files seen from a compiled test: this module runs as dist/test/config/paths.js,
// so the repository root is three directories up.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const examplesDir = join(repoRoot, 'examples');

/** Real TLS files of examples/tls, for configurations whose files validation opens. */
export const exampleTls = {
  cert: join(examplesDir, 'tls', 'server.crt'),
  key: join(examplesDir, 'tls', 'server.key'),
  cacert: join(examplesDir, 'tls', 'client-ca.crt'),
};
