// A preload for `node --import` that records the URL of every module the process loads, one a
// line, in the file its own URL names (`module-recorder.js?log=<file>`): tests check which
// libraries a start loads. The ESM hooks run on node's loader thread and see each import; a
// require() (inside a CommonJS package, or through createRequire) passes no ESM hook, so the
// CommonJS cache is added to the file when the process exits, and so are node's own modules that
// the process loaded (as node:NAME; require() of a built-in passes neither hook nor cache).
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

/** node's public modules this process has loaded so far, by name (`tls`, `fs/promises`). */
function publicBuiltins(): string[] {
  const loadList = (process as unknown as { moduleLoadList: string[] }).moduleLoadList;
  return loadList.flatMap((entry) => {
    const name = /^NativeModule (.+)$/.exec(entry)?.[1];
    return name === undefined || name.startsWith('internal/') ? [] : [name];
  });
}

// Without ?log= it records nothing: `node --test dist/test/` loads every file under test/, this one too.
const log = new URL(import.meta.url).searchParams.get('log');
if (log !== null) {
  register('./module-recorder-hooks.js', import.meta.url, { data: { log } });
  const commonJsCache = createRequire(import.meta.url).cache;
  process.on('exit', () => {
    appendFileSync(log, Object.keys(commonJsCache).map((file) => `${pathToFileURL(file).href}\n`).join(''));
    appendFileSync(log, publicBuiltins().map((name) => `node:${name}\n`).join(''));
  });
}
