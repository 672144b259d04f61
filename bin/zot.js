#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS MALLOC_ARENA_MAX=2 MALLOC_TOP_PAD_=4194304 ZOT_DEFERRED_NODE_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS} node --max-semi-space-size=4 --min-semi-space-size=4 --max-old-space-size=1536 --expose-gc --enable-source-maps
// Shim over the compiled CLI; `npm ci` builds dist/ through the prepare script.
// MALLOC_ARENA_MAX=2: glibc's malloc gives each thread that allocates at once an arena of its own,
// up to 8 per core, and keeps what each arena grew to; the libuv pool (8 threads for `zot serve`),
// the hash worker and V8's helper threads then hold some 10 MiB of peak RSS in arenas. With two,
// the peak over the benchmark's figures 1-6 was 104.0 against 114.6 MiB (medians of 5), and push
// and pull throughput stayed within the noise of a busy machine. env sets it before node starts,
// when glibc reads it; to choose another value, run `node` with these flags and your own
// environment.
// MALLOC_TOP_PAD_=4194304: glibc keeps 4 MiB free at the top of each heap when it trims one. A push
// has node copy each ~64 KiB of body into a new malloc'd buffer, freed at the next young-generation
// collection; glibc trimmed the freed top each time, and the next copies faulted its pages in
// again: 1,000-7,000 page faults per 256 MiB push (15 us each on a small VM), about 200 with the
// pad. Idle RSS after start is 1.2 MiB higher. The kernel reads at most 256 bytes of the line above.
// --max-semi-space-size=4: the young generation stays at 4 MiB semi-spaces instead of 16, which
// keeps the registry's peak RSS about 20 MiB lower under load at no measurable cost in requests/s
// (the benchmark's manifest GETs and small-image pushes). Start it as `zot` or `./bin/zot.js` so
// the flags apply; `npm start` runs it so.
// --min-semi-space-size=4: and at that size from the start, instead of growing to it from 1 MiB:
// a start to its first 200 made 1 young-generation collection instead of 4 (19-20 ms of them
// instead of 27-30 ms at load 1.5 on 2 cores), and its idle RSS was no higher.
// --max-old-space-size=1536: V8 grows the old generation after each full collection by a factor
// that it caps at 4 when the heap may reach 2 GiB or more (the default here), and takes that cap
// whenever it has no collection speed yet (the first one) or many short-lived objects get
// promoted (manifest GETs at c=50): ~13 MiB live became a 56 MiB limit, reached before the next
// collection. Below 2 GiB the cap scales down (1.8 at 1536 MiB), the limit stays near live + 16
// MiB, and the peak RSS under GET load 20-30 MiB lower. 1.5 GiB of live objects is far beyond
// what the registry holds (its state is in SQLite); an operator can run `node` with other flags.
// --expose-gc: `zot serve` collects the young generation every 4 MiB of request body, so a large
// push never builds up to full collections (src/storage/young-garbage.ts).
// --enable-source-maps: stack traces name the lines of src/*.ts, through the bundle's maps.
// -u NODE_EXTRA_CA_CERTS ... ZOT_DEFERRED_NODE_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS}: node 20 parses
// that file at every start, some 40 ms for a system bundle; it is handed over under another name
// and trusted once node:tls loads instead (src/cli/deferred-ca-certificates.cts).
// CommonJS (bin/package.json): this file runs before any ES module is read, so the settings libuv
// reads once, at its first file read (UV_THREADPOOL_SIZE), are in place for `zot serve`.
'use strict';
// First: V8 has read the flags above; back at their defaults, Node's own modules load with their
// code cache (src/cli/v8-flags.cts).
require('../dist/src/cli/v8-flags.cjs').restoreSetupFlagDefaults();
require('../dist/src/cli/serve-process.cjs').prepareServeProcess(process.argv.slice(2), process.env);

const path = require('node:path');
const { pathToFileURL } = require('node:url');
const loader = require('../dist/src/cli/bundle-loader.cjs');

// The bundle when it was made from tsc's current output, else tsc's output (`tsc` alone).
const entry = loader.cliEntryPoints(path.join(__dirname, '..', 'dist'));
const runsBundle = loader.bundleIsCurrent(entry);
// The bundle loads node's TLS modules through require() only, which the deferral can watch for;
// tsc's ES modules import them, so for those the trust is in place from the start.
require('../dist/src/cli/deferred-ca-certificates.cjs').trustDeferredExtraCaCertificates(process.env, { untilTlsIsLoaded: runsBundle });
if (runsBundle) loader.runBundle(entry.bundle);
else import(pathToFileURL(entry.compiled).href);
