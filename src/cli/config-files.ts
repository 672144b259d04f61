// The files a configuration names, checked by `zot verify` and before `zot serve` starts: each
// problem is `<path>: <message>` naming the config field, as the schema's problems are. Schema
// validation itself never opens files; this does, relative to the working directory as zot does.
// Messages name the file, never its content: some of these files hold secrets.
import * as fs from 'node:fs';
import { readBearerPublicKey } from '../auth/bearer.js';
import { parseHtpasswd } from '../auth/htpasswd-file.js';
import { readLdapCredentials } from '../auth/ldap-credentials.js';
import type { Config } from '../config/types.js';
import { checkPair } from '../http/tls.js';

export function configFileProblems(config: Config): string[] {
  const problems: string[] = [];
  const check = (field: string, file: string | undefined, read: (file: string) => unknown): void => {
    if (file === undefined) return;
    const missing = unreadable(file);
    if (missing !== undefined) {
      problems.push(`${field}: ${missing} (${file})`);
      return;
    }
    try {
      read(file);
    } catch (err) {
      problems.push(`${field}: ${file} ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  const { tls, auth } = config.http;
  check('http.tls.cert', tls?.cert, () => undefined);
  check('http.tls.key', tls?.key, () => undefined);
  check('http.tls.cacert', tls?.cacert, () => undefined);
  // The pair loads together (PEM, key matching the certificate), and the CA parses, as at start.
  if (problems.length === 0 && tls?.cert && tls.key) {
    try {
      checkPair({ cert: fs.readFileSync(tls.cert), key: fs.readFileSync(tls.key), ...(tls.cacert ? { ca: fs.readFileSync(tls.cacert) } : {}) });
    } catch (err) {
      problems.push(`http.tls: the certificate, key and CA do not load together (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  check('http.auth.htpasswd.path', auth?.htpasswd?.path, (file) => {
    const { problems: bad } = parseHtpasswd(fs.readFileSync(file, 'utf8'));
    if (bad.length > 0) throw new Error(bad.join('; '));
  });
  check('http.auth.bearer.cert', auth?.bearer?.cert, readBearerPublicKey);
  check('http.auth.ldap.CACert', auth?.ldap?.CACert, () => undefined);
  check('http.auth.ldap.credentialsFile', auth?.ldap?.credentialsFile, readLdapCredentials);
  return problems;
}

/** Why the file cannot be read, or undefined when it can. */
function unreadable(file: string): string | undefined {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) return 'is not a file';
    fs.accessSync(file, fs.constants.R_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'file does not exist' : `cannot be read (${code ?? 'error'})`;
  }
}
