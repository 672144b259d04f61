#!/usr/bin/env -S node --max-semi-space-size=4 --expose-gc
// Shim over the compiled CLI; `npm ci` builds dist/ through the prepare script.
// --max-semi-space-size=4: the young generation stays at 4 MiB semi-spaces instead of 16, which
// keeps the registry's peak RSS about 20 MiB lower under load at no measurable cost in requests/s
// (the benchmark's manifest GETs and small-image pushes). Start it as `zot` or `./bin/zot.js` so
// the flag applies; `npm start` passes it too.
// CommonJS (bin/package.json): this file runs before any ES module is read, so the settings libuv
// reads once, at its first file read (UV_THREADPOOL_SIZE), are in place for `zot serve`.
'use strict';
require('../dist/src/cli/serve-process.cjs').prepareServeProcess(process.argv.slice(2), process.env);
import('../dist/src/cli/main.js');
