// `zot replay <config> [--rehash]`: rebuilds the projections from the event log into a scratch
// database, compares them with the live ones and with storage, and exits 1 on any drift. Storage
// is compared by presence and size; --rehash also re-hashes every blob and manifest the log names.
import type { Db } from '../events/database.js';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { ScratchProjections } from '../projections/index.js';
import { buildIndex } from '../actors/index-json-writer.js';
import { readEvents } from '../events/store.js';
import { REGISTRY_STATE_TABLES, RegistryStateQueries } from '../projections/registry-state.js';
import { openStorageRoots } from '../storage/roots.js';
import { compareStorage, recheckMissing } from '../registry/storage-check.js';
import { HashPool } from '../workers/pool.js';
import { loadConfigOrReport } from './load.js';
import { openLiveLog } from './events.js';
import { configArgument, EXIT } from './usage.js';

type Row = Record<string, unknown>;

function tableRows(db: Db, table: string): string[] {
  return (db.prepare(`SELECT * FROM ${table}`).all() as Row[]).map((row) => JSON.stringify(row, Object.keys(row).sort())).sort();
}

/** Rows only in one side, as readable lines. */
function diffRows(table: string, live: string[], rebuilt: string[]): string[] {
  const liveSet = new Set(live);
  const rebuiltSet = new Set(rebuilt);
  return [
    ...live.filter((row) => !rebuiltSet.has(row)).map((row) => `${table}: live only ${row}`),
    ...rebuilt.filter((row) => !liveSet.has(row)).map((row) => `${table}: replay only ${row}`),
  ];
}

export async function runReplay(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false }, rehash: { type: 'boolean', default: false } },
  });
  const config = loadConfigOrReport(configArgument(positionals));
  if (!config) return EXIT.problem;
  const live = openLiveLog(config.storage.rootDirectory);
  if (!live) return EXIT.problem;
  const scratch = new ScratchProjections();
  // Every core hashes: no event loop here has requests to answer.
  const hashPool = values.rehash ? new HashPool(availableParallelism()) : undefined;
  try {
    // One read transaction: the events and the live tables are the same snapshot even while a
    // registry keeps appending.
    live.exec('BEGIN');
    let events = 0;
    for (const event of readEvents(live)) {
      scratch.apply(event);
      events++;
    }
    const drift: string[] = [];
    for (const table of REGISTRY_STATE_TABLES) drift.push(...diffRows(table, tableRows(live, table), tableRows(scratch.db, table)));

    // A check writes nothing: a subPath root that does not exist is reported, not created.
    const roots = await openStorageRoots(config.storage, { createDirectories: false });
    const liveQueries = new RegistryStateQueries(live);
    const head = (live.prepare('SELECT MAX(seq) AS seq FROM events').get() as { seq: number | null }).seq ?? 0;
    const indexCheckpoint = (live.prepare("SELECT seq FROM checkpoints WHERE name = 'index-json-writer'").get() as { seq: number } | undefined)?.seq ?? 0;
    const storage = await compareStorage(roots, liveQueries, (repo) => buildIndex(liveQueries, repo), indexCheckpoint >= head, hashPool);
    live.exec('COMMIT');
    // Outside the snapshot: removals a running registry committed since explain missing files and
    // repositories.
    const rechecked = await recheckMissing(roots, liveQueries, storage.missing, storage.missingIndexes);
    drift.push(...storage.drift, ...rechecked.drift);
    const notes = [...storage.notes, ...rechecked.notes];

    const report = { events, tables: REGISTRY_STATE_TABLES.length, drift, notes };
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } else {
      for (const line of drift) process.stdout.write(`drift: ${line}\n`);
      for (const line of notes) process.stdout.write(`note: ${line}\n`);
      process.stdout.write(
        drift.length === 0
          ? `replay: ${events} events; ${REGISTRY_STATE_TABLES.length} projection tables and storage match\n`
          : `replay: ${events} events; ${drift.length} difference(s) found\n`,
      );
    }
    return drift.length === 0 ? EXIT.ok : EXIT.problem;
  } finally {
    await hashPool?.close();
    scratch.close();
    live.close();
  }
}
