// Values zot accepts in a looser form than the one the rest of the registry reads.
// Run after schema validation; values of any other type are left for the schema to report.

import { isRecord, recordAt } from './values.js';

export function normalize(data: unknown): void {
  const http = recordAt(data, 'http');
  // zot's port is a string ("5000"); YAML and hand-written JSON often give a number.
  if (http !== undefined && Number.isInteger(http['port'])) http['port'] = String(http['port']);

  // The seed document writes `"enable": "true"`, which zot's weakly typed decoder accepts.
  normalizeEnable(recordAt(data, 'metrics'));
  normalizeEnable(recordAt(recordAt(data, 'extensions'), 'metrics'));
}

function normalizeEnable(section: unknown): void {
  if (!isRecord(section)) return;
  if (section['enable'] === 'true') section['enable'] = true;
  if (section['enable'] === 'false') section['enable'] = false;
}
