// Files the configuration names, checked when it is loaded (`zot verify` and `zot serve` alike),
// so a missing or unusable file is reported with its config path instead of failing later.
// Relative paths are read from the working directory, as zot reads them.
import * as fs from 'node:fs';
import { parseHtpasswd } from '../auth/htpasswd-file.js';
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
