// The htpasswd file format as zot accepts it: one `user:hash` entry per line, bcrypt hashes only
// (`htpasswd -B`). Blank lines and `#` comments are skipped. Anything else is a problem naming
// the line; a problem never quotes the hash (it is a secret too).
//
// Pure: it parses text and imports nothing of ours, so `zot verify` and the authenticator share it.

/** `$2a$`, `$2b$` or `$2y$`, a two-digit cost from 04 to 31, then 22 characters of salt and 31 of hash. */
const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

export interface HtpasswdEntries {
  /** user → bcrypt hash */
  readonly users: ReadonlyMap<string, string>;
  /** One message per bad line: `line N: …`. Empty when the file is usable. */
  readonly problems: readonly string[];
}

export function parseHtpasswd(text: string): HtpasswdEntries {
  const users = new Map<string, string>();
  const firstLine = new Map<string, number>();
  const problems: string[] = [];
  text.split('\n').forEach((raw, index) => {
    const lineNumber = index + 1;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon <= 0) {
      problems.push(`line ${lineNumber}: not a "user:hash" entry`);
      return;
    }
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (!BCRYPT_HASH.test(hash)) {
      problems.push(`line ${lineNumber}: the entry of user ${JSON.stringify(user)} is not a bcrypt hash (only bcrypt entries are accepted: htpasswd -B)`);
      return;
    }
    const first = firstLine.get(user);
    if (first !== undefined) {
      problems.push(`line ${lineNumber}: user ${JSON.stringify(user)} is listed again (first on line ${first})`);
      return;
    }
    firstLine.set(user, lineNumber);
    users.set(user, hash);
  });
  return { users, problems };
}
