// Writes the audit log (`log.audit`): one JSON line per action that changed the registry, or
// that a client tried and was refused, from the event stream. Pulls (ManifestsPulled) are reads
// and are not audited, as in zot. A line is a pure function of its
// event, so `zot audit --rebuild-audit-log` regenerates the same bytes from the event log.
//
// The fields are zot's where zot has them (pkg/log `NewAuditLogger`, pkg/api `SessionAuditLogger`:
// level, clientIP, subject, action, object, status, time, message), plus ours: seq, event,
// repository, digest, tag, reference, outcome, code, requestId, the reason and policy of a removal
// by GC or retention, and for a refusal its `count`
// (refusals are aggregated: one event, and line, may stand for many; its clientIP, requestId,
// action and object are the last one's) with firstTime, lastTime and folded. zot writes the request's method
// and path; an event knows what changed, so `action` and `object` are the request that makes
// that change (PUT /v2/REPO/manifests/TAG for a tag set). Actions that no request makes (sync, GC)
// carry the event type as `action`.
//
// One write per batch: `handle` only renders an event's line, and `flush`, which the runner calls
// once the batch's events are handled and before it stores their checkpoint (actor.ts), appends
// the batch's lines in one write. Under many small pushes that is one stat and one write for
// the events of a batch instead of one of each per event.
//
// Rotation: before each write the file is stat'ed by name, and a moved or replaced file is
// reopened; SIGHUP (reopen()) does the same at once. Nothing is lost or written twice: the lines
// are written before the checkpoint moves, and on every open the last seq in the file tells which
// events it already holds. A replacement file that holds fewer lines than were written (the
// rebuild command renamed its file over ours) is first filled in from the event log.
//
// A failed write throws: the runner hands the same events again (the file reopened first) until
// the write succeeds, and the lines after them wait, so the file never has a gap (see actor.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { EventStore } from '../events/store.js';
import { EVENT_TYPES, type EventType, type StoredEvent } from '../events/types.js';
import type { Actor } from './actor.js';
import type { Checkpoints } from './checkpoints.js';

export const AUDIT_MESSAGE = 'HTTP API Audit';

export interface AuditRecord {
  level: 'info';
  clientIP: string;
  subject: string;
  /** How the subject authenticated; absent for anonymous and system actions. */
  authMethod?: string;
  action: string;
  object: string;
  status?: number;
  seq: number;
  event: string;
  repository: string;
  digest?: string;
  tag?: string;
  reference?: string;
  from?: string;
  previous?: string;
  size?: number;
  code?: string;
  /** Refusals the line stands for (1 for one); firstTime and lastTime when more than one. */
  count?: number;
  firstTime?: string;
  lastTime?: string;
  /** Refusals of one identity across repositories and codes (past the recorder's bound of keys). */
  folded?: boolean;
  /** What removed a tag or manifest for GC or retention, and the policy's path (events.RemovalCause). */
  reason?: string;
  policy?: string;
  outcome: 'success' | 'refused';
  requestId?: string;
  /** Synced content: the upstream URL, repository and digest it came from. */
  upstream?: string;
  upstreamRepository?: string;
  upstreamDigest?: string;
  time: string;
  message: typeof AUDIT_MESSAGE;
}

interface Request {
  action: string;
  object: string;
  status?: number;
}

/** The event types the audit log records: all but the reads. */
export const AUDITED_TYPES: readonly EventType[] = EVENT_TYPES.filter((type) => type !== 'ManifestsPulled');
const AUDITED: ReadonlySet<string> = new Set(AUDITED_TYPES);

export function isAudited(event: StoredEvent): boolean {
  return AUDITED.has(event.type);
}

/** The request that makes the change an event records, as zot's audit line names it. */
function requestOf(event: StoredEvent): Request {
  const v2 = `/v2/${event.repo}`;
  switch (event.type) {
    case 'BlobPushed':
      return { action: 'PUT', object: `${v2}/blobs/${event.digest}`, status: 201 };
    case 'BlobMounted':
      return { action: 'POST', object: `${v2}/blobs/uploads/?mount=${event.digest}&from=${event.from}`, status: 201 };
    case 'BlobDeleted':
      return { action: 'DELETE', object: `${v2}/blobs/${event.digest}`, status: 202 };
    case 'ManifestPushed':
      return { action: 'PUT', object: `${v2}/manifests/${event.digest}`, status: 201 };
    case 'ManifestDeleted':
      return { action: 'DELETE', object: `${v2}/manifests/${event.digest}`, status: 202 };
    case 'TagSet':
      return { action: 'PUT', object: `${v2}/manifests/${event.tag}`, status: 201 };
    case 'TagRemoved':
      return { action: 'DELETE', object: `${v2}/manifests/${event.tag}`, status: 202 };
    case 'WriteRefused':
      return { action: event.method, object: event.path, status: event.status };
    default: {
      // A type this version does not list (sync, GC, ...): the event type is the action.
      const other = event as { type: string; repo: string };
      return { action: other.type, object: other.repo === '' ? '' : `/v2/${other.repo}` };
    }
  }
}

function stringField(event: StoredEvent, key: string): string | undefined {
  const value = (event as unknown as Record<string, unknown>)[key];
  return typeof value === 'string' ? value : undefined;
}

/** The audit record of an event: a pure function of it (no clock, no state). */
export function auditRecord(event: StoredEvent): AuditRecord {
  const request = requestOf(event);
  const size = (event as unknown as Record<string, unknown>).size;
  const refused = event.type === 'WriteRefused';
  return {
    level: 'info',
    clientIP: event.client ?? '',
    subject: event.identity,
    ...(event.authMethod !== undefined && event.authMethod !== 'anonymous' ? { authMethod: event.authMethod } : {}),
    action: request.action,
    object: request.object,
    ...(request.status !== undefined ? { status: request.status } : {}),
    seq: event.seq,
    event: event.type,
    repository: event.repo,
    ...optional('digest', stringField(event, 'digest')),
    ...optional('tag', stringField(event, 'tag')),
    ...optional('reference', stringField(event, 'reference')),
    ...optional('from', stringField(event, 'from')),
    ...optional('previous', stringField(event, 'previous')),
    ...(typeof size === 'number' ? { size } : {}),
    ...optional('code', refused ? event.code : undefined),
    ...(refused ? { count: event.count ?? 1 } : {}),
    ...optional('firstTime', refused ? event.firstTime : undefined),
    ...optional('lastTime', refused ? event.lastTime : undefined),
    ...(refused && event.folded ? { folded: true } : {}),
    ...optional('reason', stringField(event, 'reason')),
    ...optional('policy', stringField(event, 'policy')),
    outcome: refused ? 'refused' : 'success',
    ...optional('requestId', event.requestId),
    ...optional('upstream', event.source?.url),
    ...optional('upstreamRepository', event.source?.repo),
    ...optional('upstreamDigest', event.source?.digest),
    time: event.time,
    message: AUDIT_MESSAGE,
  };
}

function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: string };
}

/** The line written for an event, newline included. */
export function auditLine(event: StoredEvent): string {
  return `${JSON.stringify(auditRecord(event))}\n`;
}

/** How much of a file's end is read to find the last seq it holds. */
const TAIL_BYTES = 64 * 1024;

export interface AuditFileTail {
  /** seq of the last complete line that has one; undefined for an empty or foreign file. */
  lastSeq?: number;
  /** The file ends in the middle of a line (a crash while writing): start the next on a new one. */
  partialLine: boolean;
}

export async function readAuditTail(handle: fs.promises.FileHandle, size: number): Promise<AuditFileTail> {
  if (size === 0) return { partialLine: false };
  const length = Math.min(size, TAIL_BYTES);
  const buffer = Buffer.alloc(length);
  await handle.read(buffer, 0, length, size - length);
  const text = buffer.toString('utf8');
  const partialLine = !text.endsWith('\n');
  const lines = text.split('\n');
  // The last piece is a partial line (or '' after the final newline); the first may be cut.
  for (let i = lines.length - 2; i >= 0; i--) {
    try {
      const seq = (JSON.parse(lines[i] ?? '') as { seq?: unknown }).seq;
      if (typeof seq === 'number') return { lastSeq: seq, partialLine };
    } catch {
      // not one of our lines
    }
  }
  return { partialLine };
}

export class AuditWriter implements Actor {
  readonly name = 'audit-writer';
  /** Every change is an action to audit, including types added after this file was written. */
  readonly handles: readonly EventType[] = AUDITED_TYPES;
  /**
   * Events handled again are not written again: the file's last seq, read at every open, tells
   * which lines it holds (`lastWritten`).
   */
  readonly lazyCheckpoint = true;

  private handle_?: fs.promises.FileHandle;
  private identity?: { dev: number; ino: number };
  private reopenRequested = false;
  private partialLine = false;
  /** Highest seq known to be in the file (or handled before this process started). */
  private lastWritten: number;
  /** Lines of the batch in hand, in log order, written by the next flush. */
  private pending: { seq: number; line: string }[] = [];
  /** File operations run one at a time: handle(), reopen() and close() come from different places. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly file: string,
    private readonly store: EventStore,
    checkpoints: Checkpoints,
    private readonly logger: Logger,
  ) {
    this.lastWritten = checkpoints.get(this.name);
  }

  /** Renders the event's line; `flush` writes it, with the rest of the batch. */
  handle(event: StoredEvent): Promise<void> {
    const last = this.pending.at(-1)?.seq ?? this.lastWritten;
    if (event.seq > last) this.pending.push({ seq: event.seq, line: auditLine(event) });
    return Promise.resolve();
  }

  /** Appends the lines `handle` rendered since the last flush, in one write. */
  flush(): Promise<void> {
    const lines = this.pending;
    this.pending = [];
    if (lines.length === 0) return Promise.resolve();
    return this.serially(() => this.write(lines));
  }

  /** Opens the file at start, so a path that cannot be written stops the registry from starting. */
  open(): Promise<void> {
    return this.serially(() => this.ensureOpen());
  }

  /** SIGHUP: reopen the file by name now (a rotation moved it away). */
  reopen(): Promise<void> {
    this.reopenRequested = true;
    return this.serially(() => this.ensureOpen()).catch((err: unknown) => {
      this.logger.error({ err, file: this.file }, 'failed to reopen audit log');
    });
  }

  /**
   * Syncs and closes the file. Lines not flushed are dropped: their checkpoint was not stored, so
   * the next start hands their events again.
   */
  close(): Promise<void> {
    this.pending = [];
    return this.serially(async () => {
      const handle = this.handle_;
      this.handle_ = undefined;
      if (!handle) return;
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    });
  }

  private serially<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async write(lines: readonly { seq: number; line: string }[]): Promise<void> {
    try {
      await this.ensureOpen();
      // The file (or what it was filled in with when opened) may hold some of them already.
      const fresh = lines.filter(({ seq }) => seq > this.lastWritten);
      const last = fresh.at(-1);
      if (last === undefined) return;
      await this.append(fresh.map(({ line }) => line).join(''));
      this.lastWritten = last.seq;
    } catch (err) {
      // The runner retries; the next attempt starts from a fresh open (and the file's last seq).
      this.reopenRequested = true;
      throw err;
    }
  }

  private async append(text: string): Promise<void> {
    const handle = this.handle_;
    if (!handle) throw new Error('audit log is not open');
    await handle.appendFile(this.partialLine ? `\n${text}` : text);
    this.partialLine = false;
  }

  /** Opens the file if it is not open, was asked to reopen, or was moved or replaced by name. */
  private async ensureOpen(): Promise<void> {
    if (this.handle_ && !this.reopenRequested && (await this.sameFile())) return;
    this.reopenRequested = false;
    const previous = this.handle_;
    this.handle_ = undefined;
    await previous?.close().catch(() => undefined);

    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const handle = await fs.promises.open(this.file, 'a+', 0o600);
    try {
      const stat = await handle.stat();
      const tail = await readAuditTail(handle, stat.size);
      this.handle_ = handle;
      this.identity = { dev: stat.dev, ino: stat.ino };
      this.partialLine = tail.partialLine;
      this.logger.debug({ file: this.file, lastSeq: tail.lastSeq ?? null, lastWritten: this.lastWritten }, 'audit log opened');
      if (tail.lastSeq === undefined) return;
      // A file holding fewer of our lines than we wrote replaced ours: fill it in from the log.
      if (tail.lastSeq < this.lastWritten) await this.backfill(tail.lastSeq, this.lastWritten);
      this.lastWritten = Math.max(this.lastWritten, tail.lastSeq);
    } catch (err) {
      this.handle_ = undefined;
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  private async sameFile(): Promise<boolean> {
    try {
      const stat = await fs.promises.stat(this.file);
      return stat.ino === this.identity?.ino && stat.dev === this.identity.dev;
    } catch {
      return false;
    }
  }

  private async backfill(afterSeq: number, throughSeq: number): Promise<void> {
    // Read synchronously into memory: a statement left open across an await would keep the
    // connection busy for the appends.
    const events = Array.from(this.store.read({ afterSeq, limit: throughSeq - afterSeq })).filter((event) => event.seq <= throughSeq && isAudited(event));
    if (events.length === 0) return;
    await this.append(events.map(auditLine).join(''));
    this.logger.info({ file: this.file, afterSeq, throughSeq, lines: events.length }, 'audit log filled in from the event log');
  }
}
