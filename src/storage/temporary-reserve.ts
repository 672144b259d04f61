// New, empty temporary files made ahead of need by the libuv pool, for the event loop to take
// without an open(2) of its own. Each body a push writes whole (a layer, a config, a manifest, an
// index.json) starts as a new file in the one temporary directory, and on ext4 without a journal,
// as on the benchmark's machines, the inode allocator skips every recently freed inode of the
// directory's block group one by one (ext4 recently_deleted()): after deletions nearby, such an
// open(2) took a median of 330 µs on the event loop (strace -T, 500 small images at c=16, 4 per
// image), against under 100 µs for new files in other directories. A file created 2 s after
// 20,000 were deleted in its directory took a median of 247 µs there, and 8 µs on a journaled
// ext4 (a loop image on the same disk), which has no such check. Made ahead by the pool, the cost
// is still paid, but beside the event loop instead of on it.
//
// A taken file is the caller's, as one it opened itself would be: written, then renamed into the
// layout or removed. What a crash leaves of the reserve goes with the temporary directory at the
// next start, as any temporary file does.
import { open, closeSync, unlinkSync } from 'node:fs';

/** A new, empty file in the temporary directory, open for writing. */
export interface ReservedFile {
  readonly localPath: string;
  readonly fd: number;
}

/** Files kept ready: a burst of 16 concurrent small pushes takes about this many at once. */
const RESERVE_FILES = 16;

export class TemporaryFileReserve {
  private readonly ready: ReservedFile[] = [];
  private creating = 0;
  /** Paths being created by the pool. */
  private readonly beingCreated = new Set<string>();
  /** Set by a failed creation (a full disk, a vanished directory): refills wait for the next take. */
  private failed = false;
  private stopped = false;

  /** `newPath` gives a new file's absolute path, once its directory exists durably. */
  constructor(
    private readonly newPath: () => Promise<string>,
    private readonly capacity = RESERVE_FILES,
  ) {}

  /** A ready file, or undefined when none is (the caller opens its own); either way, refills. */
  take(): ReservedFile | undefined {
    const file = this.ready.pop();
    this.failed = false;
    this.refill();
    return file;
  }

  /** The files ready to be taken or being made (absolute paths): empty, and no caller's. */
  files(): string[] {
    return [...this.ready.map((file) => file.localPath), ...this.beingCreated];
  }

  /** Closes and removes the files still in reserve; later takes find none. */
  destroy(): void {
    this.stopped = true;
    for (const file of this.ready.splice(0)) release(file);
  }

  private refill(): void {
    while (!this.stopped && !this.failed && this.ready.length + this.creating < this.capacity) {
      this.creating++;
      void this.createOne()
        .catch(() => {
          // The caller's own open meets the same failure and reports it.
          this.failed = true;
        })
        .finally(() => {
          this.creating--;
          this.refill();
        });
    }
  }

  /** Creates a file and puts it in reserve (or removes it, once destroyed); listed by files() throughout. */
  private async createOne(): Promise<void> {
    const localPath = await this.newPath();
    this.beingCreated.add(localPath);
    try {
      const fd = await new Promise<number>((resolve, reject) => open(localPath, 'wx', (err, fd) => (err ? reject(err) : resolve(fd))));
      if (this.stopped) release({ localPath, fd });
      else this.ready.push({ localPath, fd });
    } finally {
      this.beingCreated.delete(localPath);
    }
  }
}

function release(file: ReservedFile): void {
  try {
    closeSync(file.fd);
  } catch {
    // Already closed: nothing to release.
  }
  try {
    unlinkSync(file.localPath);
  } catch {
    // Gone with its directory: nothing to remove.
  }
}
