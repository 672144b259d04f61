// Bundles tsc's output of the CLI (dist/src/cli/main.js) into dist/bundle/, which bin/zot.js runs:
// one file to read and compile instead of some four hundred module files to resolve, which cuts
// the start-up CPU by about a third and the idle RSS by about 8 MiB. Run after tsc (`npm run
// build`); bin/zot.js runs tsc's output itself while the bundle is missing or older than it.
//
// - Packages that the registry loads only for some configurations stay outside, in node_modules,
//   so a start that does not use them reads nothing of them (test/cli/start-modules.test.ts):
//   dynamic imports become chunks of their own (splitting) and these packages stay imports.
// - better-sqlite3 loads its native addon by a path of its own, and piscina starts its worker
//   threads from its own files: both stay outside too.
// - fastify's require('semver') gets semver-on-demand.cjs: semver's index costs a fifth of the
//   start-up CPU and is needed only for a plugin that names a fastify version (none here).
// - The source maps follow tsc's maps back to src/*.ts; bin/zot.js runs node with
//   --enable-source-maps, so stack traces name the TypeScript lines. Node keeps the maps in memory
//   for the life of the process: source-map-own.mjs leaves in them only the mappings into our own
//   sources (about 4 MiB of idle RSS with every mapping, about 1 with ours).
import { build } from 'esbuild';
import { readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { keepOwnMappings } from './source-map-own.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/bundle`;

const external = [
  // native addon, worker threads
  'better-sqlite3',
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

rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: { main: 'dist/src/cli/main.js' },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external,
  sourcemap: 'linked',
  // Less text to read, parse and keep in memory; names stay, so stack traces and logs keep them.
  minifyWhitespace: true,
  minifySyntax: true,
  // The maps name src/*.ts through tsc's maps; the sources themselves are in the repository.
  sourcesContent: false,
  // The CommonJS packages inside call require(): an ES module has none of its own.
  banner: { js: "import { createRequire as createRequireOfBundle } from 'node:module'; const require = createRequireOfBundle(import.meta.url);" },
  plugins: [semverOnDemand],
  logLevel: 'warning',
});
for (const file of readdirSync(outdir).filter((name) => name.endsWith('.map'))) {
  keepOwnMappings(`${outdir}/${file}`, (source) => !source.includes('node_modules/'));
}
