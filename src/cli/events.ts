// `zot events <config>`: prints the event log, filtered, as a table or JSON lines; --follow
// keeps printing new events. Reads a read-only connection, so a running registry is not blocked.
import { parseArgs } from 'node:util';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openDatabase, type Db } from '../events/database.js';
import { readEvents, type EventFilter } from '../events/store.js';
import type { StoredEvent } from '../events/types.js';
import { eventLogFile } from '../storage/layout.js';
import { followUntilSignal } from './follow.js';
import { loadConfigOrReport } from './load.js';
import { configArgument, EXIT, UsageError } from './usage.js';

export function openLiveLog(rootDirectory: string): Db | undefined {
  const file = eventLogFile(path.resolve(rootDirectory));
  if (!fs.existsSync(file)) {
    process.stderr.write(`zot: no event log at ${file}: the registry has not run on this root yet\n`);
    return undefined;
  }
  return openDatabase(file, { readonly: true });
}

/** `--since` takes a sequence number or an ISO-8601 time. */
export function sinceFilter(value: string | undefined): Pick<EventFilter, 'afterSeq' | 'sinceTime'> {
  if (value === undefined) return {};
  if (/^\d+$/.test(value)) return { afterSeq: Math.max(0, Number(value) - 1) };
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) throw new UsageError(`--since must be a sequence number or an ISO-8601 time, not ${JSON.stringify(value)}`);
  return { sinceTime: time.toISOString() };
}

function reference(event: StoredEvent): string {
  if ('tag' in event) return event.tag;
  return '';
}

export function formatEvent(event: StoredEvent): string {
  const digest = 'digest' in event ? event.digest : '';
  const source = event.source ? `from ${event.source.url} ${event.source.repo}@${event.source.digest}` : '';
  return [String(event.seq).padStart(6), event.time, event.type.padEnd(15), event.repo, reference(event), digest, event.identity, event.client ?? '', source]
    .filter((field, i) => field !== '' || i < 4)
    .join('  ');
}

export async function runEvents(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      repo: { type: 'string' },
      type: { type: 'string' },
      since: { type: 'string' },
      follow: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const since = sinceFilter(values.since);
  const config = loadConfigOrReport(configArgument(positionals));
  if (!config) return EXIT.problem;
  const db = openLiveLog(config.storage.rootDirectory);
  if (!db) return EXIT.problem;
  const filter: EventFilter = {
    ...since,
    ...(values.repo !== undefined ? { repo: values.repo } : {}),
    ...(values.type !== undefined ? { type: values.type } : {}),
  };
  const print = (event: StoredEvent): void => {
    process.stdout.write(values.json ? `${JSON.stringify(event)}\n` : `${formatEvent(event)}\n`);
  };
  let last = filter.afterSeq ?? 0;
  const drain = (): void => {
    for (const event of readEvents(db, { ...filter, afterSeq: last })) {
      print(event);
      last = event.seq;
    }
  };
  try {
    drain();
    if (!values.follow) return EXIT.ok;
    await followUntilSignal(drain);
    return EXIT.ok;
  } finally {
    db.close();
  }
}
