// Files that the running code reads from its own installation, by URL. tsc compiles this module
// to dist/src/, and the bundle of `zot` (build/bundle.mjs) lives in dist/bundle/, one directory at
// the same depth: in the bundle import.meta.url names the bundle's file, so every path below is
// written relative to a directory directly under dist/ and holds in both forms.

/** The package's package.json: its version is the release's. */
export const PACKAGE_JSON = new URL('../../package.json', import.meta.url);

/** The piscina pool's worker module, always loaded by the thread from tsc's output. */
export const HASH_WORKER = new URL('../src/workers/hash-worker.cjs', import.meta.url);
