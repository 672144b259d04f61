// curl as the client of the big transfers (figures 1–3 and the push of figure 6): one process per
// request, its body sent from a file and its answer discarded, so the figure measures the registry
// and not a node:http client on the bench's event loop (which capped both registries at about the
// same rate). Each call reports the CPU the curl process used, read from its rusage when it exits.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { ticksPerSecond } from './servers.js';

export interface CurlResult {
  status: number;
  /** The Location header of the answer, when it had one. */
  location?: string;
  /** Body bytes received (downloads). */
  downloaded: number;
  /** CPU seconds (user + system) of the curl process. */
  cpuS: number;
}

/** CPU seconds of the reaped children of this process so far (each curl, once it has exited). */
export function childrenCpuS(): number {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  // Fields after the ")" that closes the command name, from field 3 on: cutime is 16, cstime 17.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13] ?? 0) + Number(fields[14] ?? 0)) / ticksPerSecond();
}

/**
 * Runs one curl request: `method` on `url`, the body uploaded from `upload` (a whole file) if
 * given, the answer's body to /dev/null. Only one curl runs at a time per caller, so the change in
 * this process's reaped-children CPU is this curl's (the caller must not run two at once).
 */
export function curl(method: string, url: string, headers: Record<string, string>, upload?: string): Promise<CurlResult> {
  const args = ['--silent', '--show-error', '--output', '/dev/null', '--request', method, '--write-out', '%{http_code} %{size_download} %header{location}'];
  for (const [name, value] of Object.entries(headers)) args.push('--header', `${name}: ${value}`);
  // No "Expect: 100-continue" round trip: the registries under test read the body right away.
  if (upload !== undefined) args.push('--upload-file', upload, '--header', 'Expect:');
  args.push(url);
  return new Promise((resolve, reject) => {
    const before = childrenCpuS();
    const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => {
      const cpuS = childrenCpuS() - before;
      if (code !== 0) {
        reject(new Error(`curl ${method} ${new URL(url).pathname} exited with ${code}: ${err.trim()}`));
        return;
      }
      const [status = '0', downloaded = '0', location = ''] = out.trim().split(' ');
      resolve({ status: Number(status), downloaded: Number(downloaded), cpuS, ...(location !== '' ? { location } : {}) });
    });
  });
}
