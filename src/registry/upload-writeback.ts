// Writing a chunked upload's bytes back to disk between its PATCHes. A client sends its chunks one
// request after the other, and between two of them the registry waits for the next one (a curl
// per chunk spends tens of milliseconds just starting). An fsync of the session's file started
// once a PATCH has answered uses that wait: at the closing PUT, the commit's own fsync finds
// only the last chunk still to write, instead of the whole blob.
//
// Nothing here is a promise to the client: a PATCH's 202 still says the bytes are in the session
// (they survive a crash of the process, as the page cache holds them), not that they are on disk.
// The commit syncs the file as before and waits for these syncs first. The kernel reports a failed
// writeback once, to the sync that sees it: such a failure is kept here and fails the commit.

/** Bytes a session's PATCHes add before a background sync starts: small chunks do not each cost a sync. */
const WRITEBACK_AFTER_BYTES = 8 * 1024 * 1024;

interface SessionWriteback {
  /** Bytes written since the last background sync started. */
  unsynced: number;
  running?: Promise<void>;
  /** A background sync's failure, not yet reported to a commit. */
  failure?: unknown;
}

export class UploadWriteback {
  private readonly sessions = new Map<string, SessionWriteback>();

  constructor(
    /** Whether the repository's sessions are placed from their staged file by a commit (a filesystem root). */
    private readonly placedFromStaging: (repo: string) => boolean,
  ) {}

  /**
   * A PATCH appended `bytes` to the session: once enough are unsynced, `sync` (of the session's
   * staged file) starts in the background, one at a time per session; bytes added meanwhile wait
   * for the next one or the commit.
   */
  written(repo: string, id: string, bytes: number, sync: () => Promise<void>): void {
    if (!this.placedFromStaging(repo)) return;
    const k = key(repo, id);
    let entry = this.sessions.get(k);
    if (!entry) {
      entry = { unsynced: 0 };
      this.sessions.set(k, entry);
    }
    entry.unsynced += bytes;
    if (entry.running || entry.unsynced < WRITEBACK_AFTER_BYTES) return;
    entry.unsynced = 0;
    const session = entry;
    session.running = sync().then(
      () => undefined,
      (err: unknown) => {
        session.failure ??= err ?? new Error('the background sync of the upload session failed');
      },
    );
    void session.running.finally(() => delete session.running);
  }

  /**
   * Before the commit's own sync (the caller holds the session): waits for a background sync in
   * flight and throws a failure one of them saw, once.
   */
  async settled(repo: string, id: string): Promise<void> {
    const entry = this.sessions.get(key(repo, id));
    if (!entry) return;
    await entry.running;
    const { failure } = entry;
    if (failure === undefined) return;
    delete entry.failure;
    throw failure;
  }

  /** The session is over (committed, cancelled, expired). */
  forget(repo: string, id: string): void {
    this.sessions.delete(key(repo, id));
  }
}

function key(repo: string, id: string): string {
  return `${repo}\u0000${id}`;
}
