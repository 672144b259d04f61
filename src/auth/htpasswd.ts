// htpasswd authentication (`http.auth.htpasswd.path`): HTTP Basic credentials checked against the
// bcrypt entries of a file, on TLS and on plain HTTP alike.
//
// The file is read at start (a bad entry stops the start, naming the file and line) and again
// whenever it changes on disk, without a restart: a watch on its directory (which also sees a
// file replaced by rename) and a periodic stat, since watches miss changes on some filesystems.
// A changed file that does not parse keeps the users last loaded, and says why in the log.
//
// bcrypt is slow on purpose, so verified credentials are cached for a short time (see
// credential-cache.ts); the cache is emptied when the file changes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import bcrypt from 'bcryptjs';
import type { Logger } from 'pino';
import { basicCredentials } from './basic.js';
import { CredentialCache } from './credential-cache.js';
import { parseHtpasswd } from './htpasswd-file.js';
import type { AuthOutcome, Authenticator, Identity } from './types.js';
import type { IncomingMessage } from 'node:http';

/** How often the file is stat'ed, besides the watch. */
export const HTPASSWD_POLL_INTERVAL_MS = 2_000;
/** Changes that come in a burst (an editor writing in steps) are read once. */
const SETTLE_MS = 50;

/**
 * The bcrypt hash (cost 10) of a random password nobody kept: an unknown user is checked
 * against it, so the time of an answer does not tell which user names exist.
 */
const UNKNOWN_USER_HASH = '$2b$10$KNdGHxqcojP5njzVTagZp.K1XJiUxnwfIxr6GGLczjQuOfvvd0uJ6';

/** The file cannot be used: every message names the file and, for a bad entry, the line. */
export class HtpasswdFileError extends Error {
  constructor(readonly file: string, readonly problems: readonly string[]) {
    super(`htpasswd file ${file}: ${problems.join('; ')}`);
    this.name = 'HtpasswdFileError';
  }
}

interface FileStamp {
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

export interface HtpasswdOptions {
  pollIntervalMs?: number;
}

export class HtpasswdAuthenticator implements Authenticator {
  readonly method = 'htpasswd';
  private users: ReadonlyMap<string, string>;
  private stamp: FileStamp | undefined;
  private readonly cache = new CredentialCache<Identity>();
  private watcher: fs.FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private settle: NodeJS.Timeout | undefined;
  /** One look at the file at a time; a change seen meanwhile asks for one more. */
  private looking: Promise<void> | undefined;
  private lookAgain = false;
  private missingLogged = false;

  /** Reads the file now (throws HtpasswdFileError) and follows its changes. */
  static open(file: string, logger: Logger, options: HtpasswdOptions = {}): HtpasswdAuthenticator {
    const authenticator = new HtpasswdAuthenticator(file, logger, readUsers(file));
    authenticator.follow(options.pollIntervalMs ?? HTPASSWD_POLL_INTERVAL_MS);
    return authenticator;
  }

  private constructor(
    readonly file: string,
    private readonly logger: Logger,
    loaded: { users: ReadonlyMap<string, string>; stamp: FileStamp },
  ) {
    this.users = loaded.users;
    this.stamp = loaded.stamp;
    logger.info({ file, users: loaded.users.size }, 'htpasswd file loaded');
  }

  async authenticate(request: IncomingMessage): Promise<AuthOutcome> {
    const credentials = basicCredentials(request);
    if (credentials === undefined) return { kind: 'anonymous' };
    if (credentials === 'malformed') return { kind: 'failed', reason: 'malformed basic credentials' };
    const { user, password } = credentials;
    const identity = await this.cache.verify(user, password, () => this.check(user, password));
    if (identity === undefined) return { kind: 'failed', reason: 'wrong user name or password', user };
    return { kind: 'identity', identity };
  }

  async close(): Promise<void> {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.poller) clearInterval(this.poller);
    if (this.settle) clearTimeout(this.settle);
    this.poller = undefined;
    this.settle = undefined;
    await this.looking;
  }

  private async check(user: string, password: string): Promise<Identity | undefined> {
    const hash = this.users.get(user);
    const matches = await bcrypt.compare(password, hash ?? UNKNOWN_USER_HASH);
    if (!matches || hash === undefined) return undefined;
    return Object.freeze({ name: user, method: 'htpasswd' as const, groups: [] });
  }

  private follow(pollIntervalMs: number): void {
    const name = path.basename(this.file);
    try {
      this.watcher = fs.watch(path.dirname(this.file), { persistent: false }, (_event, changed) => {
        if (changed === null || changed === name) this.changed();
      });
      this.watcher.on('error', (err) => this.logger.warn({ err, file: this.file }, 'failed to watch htpasswd file, polling it'));
    } catch (err) {
      this.logger.warn({ err, file: this.file }, 'failed to watch htpasswd file, polling it');
    }
    this.poller = setInterval(() => this.changed(), pollIntervalMs);
    this.poller.unref();
  }

  private changed(): void {
    if (this.settle) clearTimeout(this.settle);
    this.settle = setTimeout(() => {
      this.settle = undefined;
      this.look();
    }, SETTLE_MS);
    this.settle.unref();
  }

  private look(): void {
    if (this.looking) {
      this.lookAgain = true;
      return;
    }
    this.looking = this.reloadIfChanged()
      .catch((err: unknown) => this.logger.error({ err, file: this.file }, 'failed to reload htpasswd file, keeping the users last loaded'))
      .finally(() => {
        this.looking = undefined;
        if (this.lookAgain) {
          this.lookAgain = false;
          this.look();
        }
      });
  }

  private async reloadIfChanged(): Promise<void> {
    let stamp: FileStamp;
    try {
      stamp = stampOf(await fs.promises.stat(this.file, { bigint: true }));
    } catch {
      if (!this.missingLogged) this.logger.error({ file: this.file }, 'htpasswd file is missing, keeping the users last loaded');
      this.missingLogged = true;
      this.stamp = undefined;
      return;
    }
    this.missingLogged = false;
    if (this.stamp !== undefined && sameStamp(stamp, this.stamp)) return;
    // Taken before reading: a bad file is reported once, and read again when it changes again.
    this.stamp = stamp;
    const parsed = parseHtpasswd(await fs.promises.readFile(this.file, 'utf8'));
    if (parsed.problems.length > 0) {
      this.logger.error({ file: this.file, problems: parsed.problems }, 'failed to reload htpasswd file, keeping the users last loaded');
      return;
    }
    this.users = parsed.users;
    this.cache.clear();
    this.logger.info({ file: this.file, users: parsed.users.size }, 'htpasswd file reloaded');
  }
}

function readUsers(file: string): { users: ReadonlyMap<string, string>; stamp: FileStamp } {
  let text: string;
  let stamp: FileStamp;
  try {
    stamp = stampOf(fs.statSync(file, { bigint: true }));
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new HtpasswdFileError(file, [`cannot be read (${err instanceof Error ? err.message : String(err)})`]);
  }
  const parsed = parseHtpasswd(text);
  if (parsed.problems.length > 0) throw new HtpasswdFileError(file, parsed.problems);
  return { users: parsed.users, stamp };
}

function stampOf(stat: fs.BigIntStats): FileStamp {
  return { ino: stat.ino, size: stat.size, mtimeNs: stat.mtimeNs, ctimeNs: stat.ctimeNs };
}

function sameStamp(a: FileStamp, b: FileStamp): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}
