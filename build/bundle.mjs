// Bundles tsc's output of the CLI (dist/src/cli/main.js) into one CommonJS file,
// dist/bundle/main.cjs, which bin/zot.js runs: one file to read and compile instead of some four
// hundred module files to resolve, which cuts the start-up CPU by about a third and the idle RSS by
// about 8 MiB. Then records V8's code cache of it from one `zot serve` start (code-cache.mjs).
// Run after tsc (`npm run build`); bin/zot.js runs tsc's output itself while the bundle is missing
// or older than it.
//
// - CommonJS, one file: V8 takes a code cache only for a script (src/cli/bundle-loader.cts), not
//   for an ES module. The modules the registry imports only for some configurations (S3, LDAP,
//   sync, the events sinks) are inside but run only when imported: esbuild makes each a function
//   that runs on its first import(), and V8 compiles a function only when it first runs.
// - Packages that the registry loads only for some configurations stay outside, in node_modules,
//   so a start that does not use them reads nothing of them (test/cli/start-modules.test.ts).
// - better-sqlite3's JavaScript is inside (a dozen files fewer to resolve, read and compile at each
//   start), its native addon outside: src/events/database.ts loads it by its path and hands it
//   over, so `bindings`, which finds it from a stack trace's file names, stays outside and unused.
//   piscina starts its worker threads from its own files: it stays outside.
// - fastify's require('semver') gets semver-on-demand.cjs: semver's index costs a fifth of the
//   start-up CPU and is needed only for a plugin that names a fastify version (none here).
// - node:tls, node:https and node:http2 load on first use (builtinsOnDemand): fastify requires
//   all three at start for the servers it may create, and the registry's TLS checks import tls;
//   compiling them is about a tenth of the start-up CPU, and a registry without TLS needs none.
//   (Not dns, which fastify requires too: node's listen() loads it anyway, through cluster.)
// - node:fs, node:fs/promises and node:path, which many of our modules import whole, get one
//   namespace object each (sharedBuiltins), not one per importing module: 0.7 MiB less to
//   allocate before the first answer.
// - The source maps follow tsc's maps back to src/*.ts; bin/zot.js runs node with
//   --enable-source-maps, so stack traces name the TypeScript lines. Node keeps the maps in memory
//   for the life of the process: source-map-own.mjs leaves in them only the mappings into our own
//   sources (about 4 MiB of idle RSS with every mapping, about 1 with ours).
// - The modules bin/zot.js requires before the bundle name no source map (SHIMS below).
import { build } from 'esbuild';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { recordCodeCache } from './code-cache.mjs';
import { keepOwnMappings } from './source-map-own.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const builtinRequire = createRequire(import.meta.url);
const outdir = `${root}dist/bundle`;

const external = [
  // better-sqlite3's finder of its native addon; worker threads
  'bindings',
  'piscina',
  // loaded only when the configuration asks for them
  '@aws-sdk/*',
  'ldapts',
  'bcryptjs',
  'jsonwebtoken',
  'prom-client',
  'nats',
  'js-yaml',
  'smol-toml',
  // fastify requires these only for a route with a schema, and the registry's routes have none
  '@fastify/ajv-compiler',
  '@fastify/fast-json-stringify-compiler',
];

/** require('semver') (fastify's, the only one) resolves to semver-on-demand.cjs; subpaths stay. */
const semverOnDemand = {
  name: 'semver-on-demand',
  setup(bundler) {
    bundler.onResolve({ filter: /^semver$/ }, () => ({ path: fileURLToPath(new URL('semver-on-demand.cjs', import.meta.url)) }));
  },
};

/** Node's modules that a start without TLS never uses, bundled as objects that load them on first use. */
const ON_DEMAND_BUILTINS = /^(node:)?(tls|https|http2)$/;

/**
 * Each import of those modules gets an object of getters, one for each name the module exports,
 * that require the module at the first read: a call, `instanceof X`, or esbuild's own copy of an
 * imported module's names (which copies getters, and reads nothing).
 */
const builtinsOnDemand = {
  name: 'builtins-on-demand',
  setup(bundler) {
    bundler.onResolve({ filter: ON_DEMAND_BUILTINS }, (args) =>
      args.namespace === 'builtin-on-demand' ? undefined : { path: args.path.replace(/^node:/, ''), namespace: 'builtin-on-demand' },
    );
    bundler.onLoad({ filter: /.*/, namespace: 'builtin-on-demand' }, (args) => ({
      loader: 'js',
      contents: `'use strict';
let loaded;
const load = () => (loaded ??= require('node:${args.path}'));
for (const key of ${JSON.stringify(Object.keys(builtinRequire(`node:${args.path}`)))}) {
  Object.defineProperty(exports, key, { enumerable: true, get: () => load()[key] });
}
`,
    }));
  },
};

/** Node's modules that many of our modules import whole (`import * as fs`), or by default. */
const SHARED_BUILTINS = /^(node:)?(fs|fs\/promises|path)$/;

/**
 * One namespace object for each of those modules, shared by every module that imports it. esbuild
 * gives each `import * as fs from 'node:fs'` of a CommonJS format bundle an object of its own, with
 * a getter for each of the module's names (its __toESM): 13 imports of node:fs, 12 of node:path and
 * 6 of node:fs/promises made some 2,500 getters, 0.7 MiB of what a start allocates before its
 * first answer. Inside the bundle these modules become ES modules that re-export the builtin's
 * names, so esbuild makes their namespace once. The getters read the builtin's own properties at
 * each use, as before.
 */
const sharedBuiltins = {
  name: 'shared-builtins',
  setup(bundler) {
    // A package's require() gets the builtin itself, as before: through the namespace it would
    // get a copy of it (esbuild's __toCommonJS) at each require.
    bundler.onResolve({ filter: SHARED_BUILTINS }, (args) =>
      args.namespace === 'shared-builtin' || args.kind === 'require-call'
        ? { path: args.path, external: true }
        : { path: args.path.replace(/^node:/, ''), namespace: 'shared-builtin' },
    );
    bundler.onLoad({ filter: /.*/, namespace: 'shared-builtin' }, (args) => ({
      loader: 'js',
      contents: `export * from 'node:${args.path}';\nconst builtin = require('node:${args.path}');\nexport default builtin;\n`,
    }));
  },
};

/**
 * tsc's output of the CommonJS modules bin/zot.js requires before the bundle (src/cli/*.cts), as
 * its require() calls name them. Each names its source map in a last-line comment, which
 * --enable-source-maps has node follow as the module loads: it reads and parses the map and, for
 * the first one, sets up its cache of maps, while bin/zot.js's V8 flags still keep node's own
 * modules from their code cache. Measured over 15 alternating starts: 7-12 ms to the first 200,
 * some 15 ms of CPU and 250 page faults each. The comments and maps go: these short files' stack
 * traces name their own lines.
 */
const SHIMS = [...readFileSync(`${root}bin/zot.js`, 'utf8').matchAll(/require\('\.\.\/(dist\/src\/cli\/[\w-]+\.cjs)'\)/g)].map((match) => `${root}${match[1]}`);

function dropSourceMapComments(files) {
  for (const file of files) {
    const code = readFileSync(file, 'utf8');
    writeFileSync(file, code.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n'));
    rmSync(`${file}.map`, { force: true });
  }
}

dropSourceMapComments(SHIMS);
rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: { main: 'dist/src/cli/main.js' },
  outdir,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external,
  sourcemap: 'linked',
  // Less text to read, parse and keep in memory; names stay, so stack traces and logs keep them.
  minifyWhitespace: true,
  minifySyntax: true,
  // The maps name src/*.ts through tsc's maps; the sources themselves are in the repository.
  sourcesContent: false,
  // The packages' license comments go to main.cjs.LEGAL.txt, which the bundle names: some are not
  // ASCII, and an ASCII bundle is read faster (src/cli/bundle-loader.cts).
  legalComments: 'linked',
  // Our modules name files of the installation relative to import.meta.url (install-layout.ts):
  // in the bundle that is the bundle's own URL.
  define: { 'import.meta.url': 'importMetaUrlOfBundle' },
  // The bundle is the function that require() would wrap a module in, written out here, and
  // src/cli/bundle-loader.cts calls it so. The loader compiles the file's own text: a wrapper
  // added there made V8 copy a megabyte of text into one flat string (some 300 page faults, about
  // 5 ms of each start). The file is no module to require() on its own.
  banner: { js: "(function (exports, require, module, __filename, __dirname) {\nconst importMetaUrlOfBundle = require('node:url').pathToFileURL(__filename).href;" },
  footer: { js: '})' },
  plugins: [semverOnDemand, builtinsOnDemand, sharedBuiltins],
  logLevel: 'warning',
});
keepOwnMappings(`${outdir}/main.cjs.map`, (source) => !source.includes('node_modules/'));
await recordCodeCache(`${outdir}/main.cjs`);
