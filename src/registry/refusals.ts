// Writes the HTTP layer answered 4xx, recorded as WriteRefused events so that the audit log,
// rebuilt from the event log, holds refusals too.
//
// A client can send refused writes as fast as it likes, so they are aggregated: nothing it sends
// grows the log faster than real writes do. Per key (identity, repository, code) the first
// refusal is appended at once; the next ones are counted and appended as one event with `count`
// when the interval ends (all keys share one timer), or at stop(). A key that saw no refusal for
// a whole interval is forgotten, so its next refusal is again appended at once.
//
// Keys are bounded, so that a client cycling through repository names cannot grow memory or the
// log either: past MAX_KEYS_PER_IDENTITY keys of one identity, or MAX_KEYS in all, the identity's
// further refusals fold into its own "folded" key (repo ''), and past MAX_FOLDED_KEYS of those,
// into one key of SYSTEM_REFUSALS_IDENTITY.
import type { Logger } from 'pino';
import type { ContextualEvent, EventStore } from '../events/store.js';
import { SYSTEM_REFUSALS_IDENTITY, type EventBody, type EventContext } from '../events/types.js';
import { isValidName } from '../oci/names.js';

/** What the HTTP layer knows about a write it refused: the WriteRefused event's own fields (path without its query string). */
export type RefusedWrite = Pick<Extract<EventBody, { type: 'WriteRefused' }>, 'repo' | 'method' | 'path' | 'status' | 'code' | 'reference'>;

export interface RefusalRecorderOptions {
  /** How long refusals of one key are counted before their event is appended. */
  intervalMs?: number;
  logger?: Logger;
  /** Told of every refusal, counted or appended (the metrics). */
  onRefused?: (code: string) => void;
}

export const DEFAULT_REFUSAL_INTERVAL_MS = 10_000;
export const MAX_KEYS = 1024;
export const MAX_KEYS_PER_IDENTITY = 32;
export const MAX_FOLDED_KEYS = 256;

/** Paths and references of refused writes are cut here: a refusal must not bloat the log. */
const MAX_REFUSED_FIELD = 1024;

/** Refusals of one key since its last event. */
interface Tally {
  count: number;
  firstTime: string;
  lastTime: string;
  /** The last refusal counted: its request fields and context go into the event. */
  last: RefusedWrite;
  context: EventContext;
}

interface Key {
  id: string;
  identity: string;
  folded: boolean;
}

interface Entry {
  key: Key;
  pending: Tally | undefined;
}

export class RefusalRecorder {
  private readonly intervalMs: number;
  private readonly entries = new Map<string, Entry>();
  /** Keys of each identity's own (not folded), and their total. */
  private readonly keysOfIdentity = new Map<string, number>();
  private ownKeys = 0;
  private foldedKeys = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: EventStore,
    private readonly options: RefusalRecorderOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? DEFAULT_REFUSAL_INTERVAL_MS;
  }

  /**
   * Appends the refusal's event, or counts it when its key already has one in this interval;
   * resolves once the event, if any, is committed.
   */
  async record(refusal: RefusedWrite, context: EventContext): Promise<void> {
    this.options.onRefused?.(refusal.code);
    const write = trimmed(refusal);
    const key = this.keyFor(context.identity, write);
    const entry = this.entries.get(key.id);
    if (entry) {
      entry.pending = counted(entry.pending, write, context);
      return;
    }
    // Held at once, so the refusals that arrive before the append commits are counted on it; a
    // failed append lets the key go again, and the next refusal retries.
    this.hold(key);
    try {
      await this.store.append([refusedEvent(write, key.folded)], { ...context, identity: key.identity });
    } catch (err) {
      const held = this.entries.get(key.id);
      if (held && !held.pending) this.release(held);
      throw err;
    }
  }

  /** Appends what is counted and stops the timer; for shutdown, before the log closes. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.appendCounted();
    this.entries.clear();
    this.keysOfIdentity.clear();
    this.ownKeys = 0;
    this.foldedKeys = 0;
  }

  private hasRoomFor(identity: string): boolean {
    return this.ownKeys < MAX_KEYS && (this.keysOfIdentity.get(identity) ?? 0) < MAX_KEYS_PER_IDENTITY;
  }

  /** A refusal's own key when held or when there is room, else its identity's folded key, else the overflow. */
  private keyFor(identity: string, write: RefusedWrite): Key {
    const own = keyId(identity, write.repo, write.code);
    if (this.entries.has(own) || this.hasRoomFor(identity)) return { id: own, identity, folded: false };
    const folded = keyId(identity, FOLDED);
    if (this.entries.has(folded) || this.foldedKeys < MAX_FOLDED_KEYS) return { id: folded, identity, folded: true };
    return OVERFLOW;
  }

  private hold(key: Key): void {
    this.entries.set(key.id, { key, pending: undefined });
    // The overflow key is one, and counts against no bound.
    if (key.folded) {
      if (key !== OVERFLOW) this.foldedKeys++;
    } else {
      this.ownKeys++;
      this.keysOfIdentity.set(key.identity, (this.keysOfIdentity.get(key.identity) ?? 0) + 1);
    }
    if (!this.timer) {
      this.timer = setInterval(() => this.endInterval(), this.intervalMs);
      this.timer.unref();
    }
  }

  private release(entry: Entry): void {
    this.entries.delete(entry.key.id);
    const { key } = entry;
    if (key.folded) {
      if (key !== OVERFLOW) this.foldedKeys--;
      return;
    }
    this.ownKeys--;
    const held = (this.keysOfIdentity.get(key.identity) ?? 1) - 1;
    if (held === 0) this.keysOfIdentity.delete(key.identity);
    else this.keysOfIdentity.set(key.identity, held);
  }

  private endInterval(): void {
    for (const entry of [...this.entries.values()]) if (!entry.pending) this.release(entry);
    this.appendCounted().catch((err: unknown) => {
      // The tallies are back for the next interval (their number is bounded by the keys).
      this.options.logger?.error({ err }, 'failed to record refused writes');
    });
    if (this.entries.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /**
   * One event per key with counted refusals, all in one append. The tallies are taken at once, so
   * refusals counted while it commits start new ones; a failed append adds its tallies back.
   */
  private async appendCounted(): Promise<void> {
    const counted = [...this.entries.values()].filter((entry): entry is Entry & { pending: Tally } => entry.pending !== undefined);
    if (counted.length === 0) return;
    const taken = counted.map((entry) => ({ entry, tally: entry.pending }));
    for (const entry of counted) (entry as Entry).pending = undefined;
    const events: ContextualEvent[] = taken.map(({ entry, tally }) => ({
      body: {
        ...refusedEvent(tally.last, entry.key.folded),
        count: tally.count,
        firstTime: tally.firstTime,
        lastTime: tally.lastTime,
      },
      context: { ...tally.context, identity: entry.key.identity },
    }));
    try {
      await this.store.appendEach(events);
    } catch (err) {
      for (const { entry, tally } of taken) {
        if (!this.entries.has(entry.key.id)) this.hold(entry.key);
        const held = this.entries.get(entry.key.id) as Entry;
        held.pending = held.pending ? merged(tally, held.pending) : tally;
      }
      throw err;
    }
  }
}

const FOLDED = Symbol('folded');
const OVERFLOW: Key = { id: keyId(SYSTEM_REFUSALS_IDENTITY, FOLDED), identity: SYSTEM_REFUSALS_IDENTITY, folded: true };

function keyId(identity: string, repo: string | typeof FOLDED, code?: string): string {
  return JSON.stringify(repo === FOLDED ? [identity] : [identity, repo, code]);
}

/** The fields as recorded: the name kept only when it is a valid one, long fields cut. */
function trimmed(refusal: RefusedWrite): RefusedWrite {
  const reference = refusal.reference?.slice(0, MAX_REFUSED_FIELD);
  return {
    repo: isValidName(refusal.repo) ? refusal.repo : '',
    method: refusal.method,
    path: refusal.path.slice(0, MAX_REFUSED_FIELD),
    status: refusal.status,
    code: refusal.code,
    ...(reference ? { reference } : {}),
  };
}

function refusedEvent(write: RefusedWrite, folded: boolean): Extract<EventBody, { type: 'WriteRefused' }> {
  return { type: 'WriteRefused', ...write, ...(folded ? { repo: '', folded: true as const } : {}) };
}

/** An earlier tally and a later one of the same key, as one. */
function merged(earlier: Tally, later: Tally): Tally {
  return { count: earlier.count + later.count, firstTime: earlier.firstTime, lastTime: later.lastTime, last: later.last, context: later.context };
}

function counted(tally: Tally | undefined, write: RefusedWrite, context: EventContext): Tally {
  const now = new Date().toISOString();
  if (!tally) return { count: 1, firstTime: now, lastTime: now, last: write, context };
  tally.count++;
  tally.lastTime = now;
  tally.last = write;
  tally.context = context;
  return tally;
}
