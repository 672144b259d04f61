// `zot scrub <config>`: re-hashes every blob and manifest the event log names and reports, per
// repository, what is intact and what is corrupt or missing. Reads the log through a read-only
// connection, so a running registry is not blocked; hashes with one pool thread per core.
// Exit codes as every command's (usage.ts): 0 all intact, 1 something corrupt or missing (or an
// invalid configuration, or no event log to read), 2 a usage error.
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { RegistryStateQueries } from '../projections/registry-state.js';
import { scrubFoundProblems, scrubStorage, type RepositoryScrub, type ScrubReport } from '../registry/scrub.js';
import { openStorageRoots, type StorageRoots } from '../storage/roots.js';
import { HashPool } from '../workers/pool.js';
import { openLiveLog } from './events.js';
import { loadConfigOrReport } from './load.js';
import { configArgument, EXIT } from './usage.js';

function repositoryLines(entry: RepositoryScrub): string[] {
  if (entry.corrupt.length === 0 && entry.missing.length === 0) {
    return [`ok ${entry.repo}: ${entry.ok.blobs} blobs, ${entry.ok.manifests} manifests`];
  }
  return [
    ...entry.corrupt.map((item) => {
      const found =
        item.problem === 'digest-mismatch'
          ? `its bytes hash to ${item.found}`
          : item.problem === 'size-mismatch'
            ? `${item.found} bytes on storage, ${item.size} in the log`
            : `unreadable: ${item.found}`;
      return `corrupt ${entry.repo}: ${item.kind} ${item.digest}: ${found}`;
    }),
    ...entry.missing.map((item) => `missing ${entry.repo}: ${item.kind} ${item.digest}`),
  ];
}

function summary(report: ScrubReport): string {
  const { repositories, blobs, manifests, corrupt, missing } = report.totals;
  const seconds = (report.durationMs / 1000).toFixed(1);
  return `scrub: ${repositories} repositories, ${blobs} blobs and ${manifests} manifests intact, ${corrupt} corrupt, ${missing} missing (${seconds} s)`;
}

export async function runScrub(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean', default: false } } });
  const config = loadConfigOrReport(configArgument(positionals));
  if (!config) return EXIT.problem;
  // The log first: a root the registry never ran on is reported, not created.
  const live = openLiveLog(config.storage.rootDirectory);
  if (!live) return EXIT.problem;
  let roots: StorageRoots;
  try {
    // Read-only: a root directory that is missing is not made (it holds nothing to check).
    roots = await openStorageRoots(config.storage, { createDirectories: false });
  } catch (err) {
    live.close();
    process.stderr.write(`zot scrub: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.problem;
  }
  // Every core hashes: unlike `serve`, no event loop here has requests to answer.
  const hashPool = new HashPool(availableParallelism());
  try {
    const report = await scrubStorage({ roots, queries: new RegistryStateQueries(live), hashPool });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } else {
      for (const entry of report.repositories) for (const line of repositoryLines(entry)) process.stdout.write(`${line}\n`);
      process.stdout.write(`${summary(report)}\n`);
    }
    return scrubFoundProblems(report) ? EXIT.problem : EXIT.ok;
  } finally {
    await hashPool.close();
    live.close();
  }
}
