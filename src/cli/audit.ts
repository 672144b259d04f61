// `zot audit <config>`: what operators reach for after an incident. Everything is read from the
// event log through a read-only connection (WAL: a running registry is never blocked), and each
// action is shown as the audit writer writes it (auditRecord), so the listing, the audit file and
// its rebuild agree.
//
//   zot audit <config> [--repo GLOB] [--identity ID] [--type T[,T]] [--since P] [--until P] [--json] [--follow]
//   zot audit <config> --at <SEQ|ISO-TIME> <repo>      the repository's tags as they were then
//   zot audit <config> --history <repo>:<tag>          every digest a tag pointed to, who moved it, when
//   zot audit <config> --rebuild-audit-log             regenerate log.audit from the event log
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { minimatch } from 'minimatch';
import { ScratchProjections } from '../projections/index.js';
import { followUntilSignal } from './follow.js';
import { AUDITED_TYPES, auditLine, auditRecord, isAudited, type AuditRecord } from '../actors/audit-writer.js';
import type { Config } from '../config/types.js';
import type { Db } from '../events/database.js';
import { readEvents } from '../events/store.js';
import type { StoredEvent } from '../events/types.js';
import { RegistryStateQueries } from '../projections/registry-state.js';
import { openLiveLog } from './events.js';
import { loadConfigOrReport } from './load.js';
import { configArgument, EXIT, UsageError } from './usage.js';


/** A point in the log: a sequence number, or an ISO-8601 time. */
export type LogPoint = { seq: number } | { time: string };

export function parsePoint(option: string, value: string): LogPoint {
  if (/^\d+$/.test(value)) return { seq: Number(value) };
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) throw new UsageError(`${option} takes a sequence number or an ISO-8601 time, not ${JSON.stringify(value)}`);
  return { time: time.toISOString() };
}

function after(event: StoredEvent, point: LogPoint): boolean {
  return 'seq' in point ? event.seq > point.seq : event.time > point.time;
}

function before(event: StoredEvent, point: LogPoint): boolean {
  return 'seq' in point ? event.seq < point.seq : event.time < point.time;
}

export interface AuditFilter {
  repo?: string;
  identity?: string;
  types?: ReadonlySet<string>;
  since?: LogPoint;
  until?: LogPoint;
}

export function matchesFilter(event: StoredEvent, filter: AuditFilter): boolean {
  if (filter.repo !== undefined && !minimatch(event.repo, filter.repo)) return false;
  if (filter.identity !== undefined && event.identity !== filter.identity) return false;
  if (filter.types !== undefined && !filter.types.has(event.type)) return false;
  if (filter.since !== undefined && before(event, filter.since)) return false;
  if (filter.until !== undefined && after(event, filter.until)) return false;
  return true;
}

function parseTypes(value: string | undefined): ReadonlySet<string> | undefined {
  if (value === undefined) return undefined;
  const types = value.split(',').map((type) => type.trim()).filter((type) => type !== '');
  const known = new Set<string>(AUDITED_TYPES);
  const unknown = types.filter((type) => !known.has(type));
  if (unknown.length > 0) throw new UsageError(`--type: unknown action type ${unknown.join(', ')} (one of ${AUDITED_TYPES.join(', ')})`);
  return new Set(types);
}

function referenceOf(record: AuditRecord): string {
  return record.tag ?? record.digest ?? record.reference ?? '';
}

export function formatAuditRecord(record: AuditRecord): string {
  return [
    String(record.seq).padStart(6),
    record.time,
    record.event.padEnd(15),
    record.outcome.padEnd(7),
    record.subject,
    record.clientIP || '-',
    `${record.action} ${record.object}`,
    ...(record.status !== undefined ? [String(record.status)] : []),
    ...(record.code !== undefined ? [record.code] : []),
    // An aggregated refusal: how many it stands for, and whether it spans repositories.
    ...(record.count !== undefined && record.count > 1 ? [`count=${record.count}`] : []),
    ...(record.folded ? ['folded'] : []),
  ].join('  ');
}

export async function runAudit(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      repo: { type: 'string' },
      identity: { type: 'string' },
      type: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      json: { type: 'boolean', default: false },
      follow: { type: 'boolean', default: false },
      at: { type: 'string' },
      history: { type: 'string' },
      'rebuild-audit-log': { type: 'boolean', default: false },
    },
  });
  const modes = [values.at !== undefined, values.history !== undefined, values['rebuild-audit-log']].filter(Boolean).length;
  if (modes > 1) throw new UsageError('--at, --history and --rebuild-audit-log are separate commands: give one');
  const file = configArgument(positionals, values.at !== undefined ? 1 : 0);
  // The command line is checked whole before anything is read.
  const at = values.at === undefined ? undefined : parsePoint('--at', values.at);
  const repo = positionals[1];
  if (at !== undefined && repo === undefined) throw new UsageError('--at <seq|time> needs a repository: zot audit <config> --at <seq|time> <repo>');
  const history = values.history === undefined ? undefined : parseTagTarget(values.history);
  const filter: AuditFilter = {
    ...(values.repo !== undefined ? { repo: values.repo } : {}),
    ...(values.identity !== undefined ? { identity: values.identity } : {}),
    ...(values.type !== undefined ? { types: parseTypes(values.type) } : {}),
    ...(values.since !== undefined ? { since: parsePoint('--since', values.since) } : {}),
    ...(values.until !== undefined ? { until: parsePoint('--until', values.until) } : {}),
  };
  const config = loadConfigOrReport(file);
  if (!config) return EXIT.problem;
  const live = openLiveLog(config.storage.rootDirectory);
  if (!live) return EXIT.problem;
  try {
    if (values['rebuild-audit-log']) return rebuildAuditLog(config, live);
    if (at !== undefined && repo !== undefined) return repositoryAt(live, repo, at, values.json);
    if (history !== undefined) return tagHistory(live, history, values.json);
    return await listActions(live, filter, values.json, values.follow);
  } finally {
    live.close();
  }
}

async function listActions(live: Db, filter: AuditFilter, json: boolean, follow: boolean): Promise<number> {
  const since = filter.since;
  let last = since !== undefined && 'seq' in since ? Math.max(0, since.seq - 1) : 0;
  const drain = (): void => {
    let out = '';
    for (const event of readEvents(live, { afterSeq: last })) {
      last = event.seq;
      if (!isAudited(event) || !matchesFilter(event, filter)) continue;
      out += json ? auditLine(event) : `${formatAuditRecord(auditRecord(event))}\n`;
    }
    if (out !== '') process.stdout.write(out);
  };
  drain();
  if (!follow) return 0;
  await followUntilSignal(drain);
  return 0;
}

/**
 * The repository as it was at `point`: its events folded, up to that point, through the same
 * projection the registry serves from, applied to an in-memory database.
 */
function repositoryAt(live: Db, repo: string, point: LogPoint, json: boolean): number {
  const scratch = new ScratchProjections();
  try {
    let last: StoredEvent | undefined;
    for (const event of readEvents(live, { repo })) {
      if (after(event, point)) break;
      scratch.apply(event);
      last = event;
    }
    const queries = new RegistryStateQueries(scratch.db);
    if (!last || !queries.repositoryExists(repo)) {
      process.stderr.write(`zot: repository ${repo} did not exist at ${describePoint(point)}\n`);
      return 1;
    }
    const rows = queries.manifestsWithTags(repo);
    const tags = rows
      .filter((row): row is typeof row & { tag: string } => row.tag !== null)
      .map((row) => ({ tag: row.tag, digest: row.digest }))
      .sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
    const manifests = [...new Set(rows.map((row) => row.digest))];
    if (json) {
      process.stdout.write(`${JSON.stringify({ repository: repo, at: point, seq: last.seq, time: last.time, tags, manifests })}\n`);
      return 0;
    }
    let out = `${repo} at ${describePoint(point)} (last change: seq ${last.seq}, ${last.time}): ${tags.length} tag(s), ${manifests.length} manifest(s)\n`;
    const width = Math.max(0, ...tags.map((entry) => entry.tag.length));
    for (const entry of tags) out += `  ${entry.tag.padEnd(width)}  ${entry.digest}\n`;
    process.stdout.write(out);
    return 0;
  } finally {
    scratch.close();
  }
}

function describePoint(point: LogPoint): string {
  return 'seq' in point ? `seq ${point.seq}` : point.time;
}

export interface TagChange {
  seq: number;
  time: string;
  change: 'set' | 'moved' | 'removed' | 'refused';
  digest?: string;
  previous?: string;
  identity: string;
  client?: string;
  requestId?: string;
  code?: string;
  /** Refused attempts the change stands for, when more than one (aggregated refusals). */
  count?: number;
}

function parseTagTarget(target: string): { repo: string; tag: string } {
  const colon = target.lastIndexOf(':');
  if (colon <= 0 || colon === target.length - 1) throw new UsageError(`--history takes <repo>:<tag>, not ${JSON.stringify(target)}`);
  return { repo: target.slice(0, colon), tag: target.slice(colon + 1) };
}

/** Every change of one tag, refused attempts included, in log order. */
function tagHistory(live: Db, { repo, tag }: { repo: string; tag: string }, json: boolean): number {
  const changes: TagChange[] = [];
  for (const event of readEvents(live, { repo })) {
    const who = {
      seq: event.seq,
      time: event.time,
      identity: event.identity,
      ...(event.client !== undefined ? { client: event.client } : {}),
      ...(event.requestId !== undefined ? { requestId: event.requestId } : {}),
    };
    if (event.type === 'TagSet' && event.tag === tag) {
      changes.push({ ...who, change: event.previous ? 'moved' : 'set', digest: event.digest, ...(event.previous ? { previous: event.previous } : {}) });
    } else if (event.type === 'TagRemoved' && event.tag === tag) {
      changes.push({ ...who, change: 'removed', digest: event.digest });
    } else if (event.type === 'WriteRefused' && event.reference === tag && event.path.endsWith(`/manifests/${tag}`)) {
      changes.push({ ...who, change: 'refused', code: event.code, ...(event.count !== undefined && event.count > 1 ? { count: event.count } : {}) });
    }
  }
  if (changes.length === 0) {
    process.stderr.write(`zot: ${repo}:${tag} was never set\n`);
    return 1;
  }
  let out = '';
  for (const change of changes) {
    out += json
      ? `${JSON.stringify(change)}\n`
      : `${[
          String(change.seq).padStart(6),
          change.time,
          change.change.padEnd(7),
          change.digest ?? change.code ?? '',
          ...(change.previous ? [`(was ${change.previous})`] : []),
          ...(change.count !== undefined ? [`count=${change.count}`] : []),
          change.identity,
          change.client ?? '-',
        ].join('  ')}\n`;
  }
  process.stdout.write(out);
  return 0;
}

const REBUILD_CHUNK = 1 << 20;

/**
 * Regenerates the audit file from the event log: written to a temporary file next to it, synced,
 * then renamed over it. A running registry's audit writer sees the new file by name before its
 * next line and fills in any line it wrote after this read.
 */
function rebuildAuditLog(config: Config, live: Db): number {
  if (!config.log?.audit) {
    process.stderr.write('zot: log.audit is not set in this configuration: there is no audit file to rebuild\n');
    return 1;
  }
  const file = path.resolve(config.log.audit);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.rebuild-${process.pid}`);
  const fd = fs.openSync(temp, 'w', 0o600);
  let lines = 0;
  let last = 0;
  try {
    let chunk = '';
    for (const event of readEvents(live)) {
      if (!isAudited(event)) continue;
      chunk += auditLine(event);
      lines++;
      last = event.seq;
      if (chunk.length >= REBUILD_CHUNK) {
        writeAll(fd, chunk);
        chunk = '';
      }
    }
    writeAll(fd, chunk);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(temp, file);
  process.stdout.write(`rebuilt ${file}: ${lines} line(s), through seq ${last}\n`);
  return 0;
}

function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text);
  for (let offset = 0; offset < bytes.length; ) offset += fs.writeSync(fd, bytes, offset);
}
