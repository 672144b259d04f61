// Files the configuration names, checked when it is loaded (`zot verify` and `zot serve` alike),
// so a missing or unusable file is reported with its config path instead of failing later.
// Relative paths are read from the working directory, as zot reads them.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import * as fs from 'node:fs';
import { createSecureContext } from 'node:tls';
import { bearerPublicKey } from '../auth/bearer-key.js';
import { parseHtpasswd } from '../auth/htpasswd-file.js';
import { parseLdapCredentials } from '../auth/ldap-credentials.js';
import { problem, type Problem } from './problems.js';

type Path = readonly (string | number)[];

/** The file's text, or the problem that keeps it from being read. */
export function readConfiguredFile(path: Path, file: string): { text: string } | { problem: Problem } {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { problem: problem(path, code === 'ENOENT' ? `no such file: ${file}` : `cannot be read: ${file} (${code ?? String(error)})`) };
  }
  if (!stat.isFile()) return { problem: problem(path, `is not a file: ${file}`) };
  try {
    return { text: fs.readFileSync(file, 'utf8') };
  } catch (error) {
    return { problem: problem(path, `cannot be read: ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)})`) };
  }
}

/** An htpasswd file must exist and hold only bcrypt entries; each bad line is a problem. */
export function htpasswdFileProblems(path: Path, file: string): Problem[] {
  const read = readConfiguredFile(path, file);
  if ('problem' in read) return [read.problem];
  return parseHtpasswd(read.text).problems.map((line) => problem(path, `${file}: ${line}`));
}

/**
 * Throws unless the key is the certificate's and the files load as a TLS context. OpenSSL alone
 * accepts a key of another type than the certificate's (it keeps one pair per key type), which
 * would leave the served certificate without its key.
 */
export function checkTlsPair(context: { cert: Buffer | string; key: Buffer | string; ca?: Buffer | string }): void {
  if (!new X509Certificate(context.cert).checkPrivateKey(createPrivateKey(context.key))) {
    throw new Error("the key is not the certificate's");
  }
  createSecureContext(context);
}

/** http.tls: each file readable, and the certificate, key and CA loading together as at start. */
export function tlsFileProblems(tls: Readonly<Record<'cert' | 'key' | 'cacert', string | undefined>>): Problem[] {
  const texts: Record<string, string> = {};
  const problems: Problem[] = [];
  for (const key of ['cert', 'key', 'cacert'] as const) {
    const file = tls[key];
    if (file === undefined) continue;
    const read = readConfiguredFile(['http', 'tls', key], file);
    if ('problem' in read) problems.push(read.problem);
    else texts[key] = read.text;
  }
  const { cert, key, cacert } = texts;
  if (problems.length > 0 || cert === undefined || key === undefined) return problems;
  try {
    checkTlsPair({ cert, key, ...(cacert !== undefined ? { ca: cacert } : {}) });
  } catch (error) {
    problems.push(problem(['http', 'tls'], `the certificate, key and CA do not load together (${error instanceof Error ? error.message : String(error)})`));
  }
  return problems;
}

/** A file whose text `check` parses; its error message (which never quotes the file) is the problem. */
export function parsedFileProblems(path: Path, file: string, check: (text: string) => unknown): Problem[] {
  const read = readConfiguredFile(path, file);
  if ('problem' in read) return [read.problem];
  try {
    check(read.text);
    return [];
  } catch (error) {
    return [problem(path, `${file} ${error instanceof Error ? error.message : String(error)}`)];
  }
}

export const bearerCertProblems = (path: Path, file: string): Problem[] => parsedFileProblems(path, file, bearerPublicKey);
export const ldapCredentialsProblems = (path: Path, file: string): Problem[] => parsedFileProblems(path, file, parseLdapCredentials);
export const readableFileProblems = (path: Path, file: string): Problem[] => parsedFileProblems(path, file, () => undefined);
