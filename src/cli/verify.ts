// `zot verify <config>`: every problem with its path, exit 1; or a one-line summary, exit 0.
import { unbuiltFeatures } from '../config/index.js';
import { loadConfigOrReport } from './load.js';

export async function runVerify(args: string[]): Promise<number> {
  const file = args[0];
  const config = loadConfigOrReport(file);
  if (!config) return 1;
  const unbuilt = unbuiltFeatures(config);
  const note = unbuilt.length > 0 ? `; not built yet, serve will refuse: ${unbuilt.join('; ')}` : '';
  process.stdout.write(
    `${file}: valid configuration (listen ${config.http.address}:${config.http.port}, storage ${config.storage.rootDirectory})${note}\n`,
  );
  return 0;
}
