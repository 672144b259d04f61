// Credentials for the authentication tests: htpasswd files written with real bcrypt hashes, and
// HTTP Basic headers.
import * as fs from 'node:fs';
import * as path from 'node:path';
import bcrypt from 'bcryptjs';

/** bcrypt's lowest cost: the tests check the logic, not the hash's strength. */
export const TEST_BCRYPT_COST = 4;

/** Writes `user:bcrypt(password)` lines (atomically, by rename) and returns the file's path. */
export function writeHtpasswd(file: string, users: Record<string, string>, cost = TEST_BCRYPT_COST): string {
  const text = Object.entries(users)
    .map(([user, password]) => `${user}:${bcrypt.hashSync(password, cost)}\n`)
    .join('');
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(temporary, text);
  fs.renameSync(temporary, file);
  return file;
}

/** The Authorization header value of HTTP Basic credentials. */
export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** fetch with Basic credentials when a user is given. */
export function fetchAs(user: string | undefined, password: string | undefined, url: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (user !== undefined) headers.set('Authorization', basicAuth(user, password ?? ''));
  return fetch(url, { ...init, headers });
}
