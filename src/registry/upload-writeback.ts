// Writing an upload's bytes back to disk before its commit. A client sends its chunks one request
// after the other, and between two of them the registry waits for the next one (a curl per chunk
// spends tens of milliseconds just starting). An fsync of the session's file started once a PATCH
// has answered uses that wait: at the closing PUT, the commit's own fsync finds only the last
// chunk still to write, instead of the whole blob. A body that is the whole blob (written to a
// temporary file, uploads.ts stageBody) is synced the same way while it still arrives: the disk
// writes its first megabytes while the network brings the rest, instead of all of them after the
// last byte.
//
// Nothing here is a promise to the client: a PATCH's 202 still says the bytes are in the session
// (they survive a crash of the process, as the page cache holds them), not that they are on disk.
// The commit syncs the file as before and waits for these syncs first. The kernel reports a failed
// writeback once, to the sync that sees it: such a failure is kept here and fails the commit, which
// then discards the session (blob-commit.ts StagedSyncFailed): a later fsync would succeed without
// writing the lost pages. A session's failure between its requests discards it at once, when no
// request holds it (uploads.ts discardWhenIdle): kept in memory only, a restart would forget it.

/** Bytes written to a file before a background sync starts: small writes do not each cost a sync. */
const WRITEBACK_AFTER_BYTES = 8 * 1024 * 1024;

/** The background syncs of one file: one at a time, each started once enough bytes are unsynced. */
export class BackgroundSync {
  /** Bytes written since the last background sync started. */
  private unsynced = 0;
  private running: Promise<void> | undefined;
  /** A background sync's failure, not yet reported to a commit. */
  private failure: unknown;

  /** `onFailure` hears of each background sync that fails, as it fails. */
  constructor(private readonly onFailure?: (err: unknown) => void) {}

  /**
   * `bytes` more were written to the file: once enough are unsynced, `sync` starts in the
   * background, unless one runs already; bytes added meanwhile wait for the next one or the commit.
   */
  written(bytes: number, sync: () => Promise<void>): void {
    this.unsynced += bytes;
    if (this.running || this.unsynced < WRITEBACK_AFTER_BYTES) return;
    this.unsynced = 0;
    const running = sync().then(
      () => undefined,
      (err: unknown) => {
        this.failure ??= err ?? new Error('the background sync of the upload failed');
        this.onFailure?.(this.failure);
      },
    );
    this.running = running;
    void running.finally(() => {
      if (this.running === running) this.running = undefined;
    });
  }

  /**
   * Before the commit's own sync: waits for a background sync in flight and throws a failure one
   * of them saw, once.
   */
  async settled(): Promise<void> {
    await this.running;
    const { failure } = this;
    if (failure === undefined) return;
    this.failure = undefined;
    throw failure;
  }
}

export class UploadWriteback {
  private readonly sessions = new Map<string, BackgroundSync>();

  constructor(
    /** Whether the repository's sessions are placed from their staged file by a commit (a filesystem root). */
    private readonly placedFromStaging: (repo: string) => boolean,
    /**
     * Hears of a session's background sync failing, as it fails: the session is then discarded
     * (uploads.ts discardWhenIdle) rather than kept, in memory only, for its commit to hear of.
     */
    private readonly onFailure?: (repo: string, id: string, err: unknown) => void,
  ) {}

  /**
   * A PATCH appended `bytes` to the session: `sync` (of the session's staged file) starts in the
   * background once enough are unsynced (BackgroundSync).
   */
  written(repo: string, id: string, bytes: number, sync: () => Promise<void>): void {
    if (!this.placedFromStaging(repo)) return;
    const k = key(repo, id);
    let session = this.sessions.get(k);
    if (!session) {
      session = new BackgroundSync((err) => this.onFailure?.(repo, id, err));
      this.sessions.set(k, session);
    }
    session.written(bytes, sync);
  }

  /**
   * Before the commit's own sync (the caller holds the session): waits for a background sync in
   * flight and throws a failure one of them saw, once.
   */
  async settled(repo: string, id: string): Promise<void> {
    await this.sessions.get(key(repo, id))?.settled();
  }

  /** The session is over (committed, cancelled, expired). */
  forget(repo: string, id: string): void {
    this.sessions.delete(key(repo, id));
  }
}

function key(repo: string, id: string): string {
  return `${repo}\u0000${id}`;
}
