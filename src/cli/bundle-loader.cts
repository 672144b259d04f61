// Runs the bundle of the CLI (build/bundle.mjs: dist/bundle/main.cjs) with V8's code cache for it,
// which the build records from a real `zot serve` start: V8 then reads the compiled bytecode of
// everything a start runs instead of parsing and compiling a megabyte of JavaScript first, about a
// sixth of the start-up CPU. Node 20 caches nothing for CommonJS modules itself (Node 22's
// module.enableCompileCache does), so bin/zot.js loads the bundle through vm.Script, the one API
// that takes a code cache, and gives it what require() would: module, exports, require, __filename.
//
// The cache holds the fingerprint of the bundle it was made from, and V8 checks its own version
// and flags: a cache of another bundle is never used; one of another node or other V8 flags is
// rejected by V8; either way the bundle compiles as without a cache. NODE_DEBUG=zot-bundle says
// which.
// `import x = require(...)`, not `import * as x`: tsc makes the latter a copy of the module's
// names with a getter each (__importStar), some 160 KiB of what every start allocates.
import { isAscii } from 'node:buffer';
import fs = require('node:fs');
import Module from 'node:module';
import path = require('node:path');
import { debuglog } from 'node:util';
import vm = require('node:vm');
import zlib = require('node:zlib');

const debug = debuglog('zot-bundle');

/** Where build/bundle.mjs has the cache written: the process writes it at exit when this is set. */
export const CODE_CACHE_OUT_ENV = 'ZOT_BUNDLE_CODE_CACHE_OUT';

/** The cache file of a bundle. */
export function codeCacheFile(bundle: string): string {
  return `${bundle}.cache`;
}

const FINGERPRINT_BYTES = 8;

/**
 * The bundle's length and CRC-32: a build that changes the bundle changes its CRC but for one
 * chance in four billion, and the CRC of a megabyte takes under a millisecond where a SHA-256
 * took some 7 ms and loading node:crypto some 10 more (the bundle loads it later, with its code
 * cache). Before Node 20.15 (no zlib.crc32) there is no fingerprint, and so no cache.
 */
function fingerprintOf(code: Buffer): Buffer | undefined {
  const crc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
  if (crc32 === undefined) return undefined;
  const fingerprint = Buffer.alloc(FINGERPRINT_BYTES);
  fingerprint.writeUInt32BE(code.length, 0);
  fingerprint.writeUInt32BE(crc32(code), 4);
  return fingerprint;
}

/**
 * The V8 data of the cache when it was made from exactly this bundle. Read into `spare` when it
 * fits, memory the process has touched already: each page of new memory costs a page fault, some
 * 15 us on this kind of virtual machine, and the cache is a megabyte.
 */
function readCodeCache(file: string, fingerprint: Buffer, spare: Buffer): Buffer | undefined {
  let cache: Buffer;
  try {
    cache = readInto(file, spare);
  } catch {
    debug('no code cache at %s', file);
    return undefined;
  }
  if (cache.length <= FINGERPRINT_BYTES || !cache.subarray(0, FINGERPRINT_BYTES).equals(fingerprint)) {
    debug('code cache %s was made from another bundle: not used', file);
    return undefined;
  }
  return cache.subarray(FINGERPRINT_BYTES);
}

/** The whole file, in `buffer` when it fits there, else in a new one. */
function readInto(file: string, buffer: Buffer): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const { size } = fs.fstatSync(fd);
    if (size > buffer.length) return fs.readFileSync(fd);
    let read = 0;
    while (read < size) {
      const bytes = fs.readSync(fd, buffer, read, size - read, read);
      if (bytes === 0) break;
      read += bytes;
    }
    return buffer.subarray(0, read);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The comment that names a module's source map, in two pieces: node takes the last one it finds in
 * a module's text for this module's own map, and this module has none (build/bundle.mjs SHIMS).
 */
const SOURCE_MAP_COMMENT = '//# sourceMapping' + 'URL=';

interface NodeModuleInternals {
  _nodeModulePaths(from: string): string[];
  _cache: Record<string, Module>;
}

interface ModuleInstanceInternals {
  _compile(content: string, filename: string): unknown;
}

/**
 * Gives node the bundle's source map, for the stack traces of --enable-source-maps: node reads the
 * map of what require() and import load, not of a vm.Script. A module of one comment, compiled by
 * require()'s own path under the bundle's file name, has node register the map under that name;
 * being this small, it also spares node's scan of the whole bundle for the comment. The map stays
 * registered while `owner` lives.
 */
function registerSourceMap(owner: Module, bundle: string): void {
  (owner as unknown as ModuleInstanceInternals)._compile(`${SOURCE_MAP_COMMENT}${path.basename(bundle)}.map\n`, bundle);
  debug('source map of %s registered', bundle);
}

/**
 * Registers the bundle's source map when the first stack trace is formatted, not at start: reading
 * and parsing the map is some 15 ms of every start (about a twentieth of its CPU), and a registry
 * may run for days without formatting a stack. Node formats stacks through Error.prepareStackTrace
 * (its own function there by default), so the formatter found there is wrapped until its first
 * call, which registers the map, puts the formatter back and lets it format that stack, mapped.
 * A node that has no formatter there (before 20.x) gets the map at once.
 */
function registerSourceMapOnFirstStack(owner: Module, bundle: string): void {
  const format = Error.prepareStackTrace;
  if (!process.sourceMapsEnabled || typeof format !== 'function') {
    registerSourceMap(owner, bundle);
    return;
  }
  const firstStack = (error: Error, callSites: NodeJS.CallSite[]): unknown => {
    if (Error.prepareStackTrace === firstStack) Error.prepareStackTrace = format;
    registerSourceMap(owner, bundle);
    return format(error, callSites);
  };
  Error.prepareStackTrace = firstStack;
}

/** Where bin/zot.js finds the CLI: the bundle, and tsc's entry module that it is made from. */
export interface CliEntryPoints {
  bundle: string;
  compiled: string;
}

/** The CLI's entry points under `dist`. */
export function cliEntryPoints(dist: string): CliEntryPoints {
  return { bundle: path.join(dist, 'bundle', 'main.cjs'), compiled: path.join(dist, 'src', 'cli', 'main.js') };
}

/**
 * Whether the bundle (build/bundle.mjs: one file to load instead of some four hundred) was made
 * from tsc's current output: `tsc` alone leaves it older, and bin/zot.js then runs tsc's modules.
 */
export function bundleIsCurrent(entry: CliEntryPoints): boolean {
  try {
    return fs.statSync(entry.bundle).mtimeMs >= fs.statSync(entry.compiled).mtimeMs;
  } catch {
    return false;
  }
}

/** Loads and runs the bundle as require() would run a CommonJS module, with its code cache. */
export function runBundle(bundle: string): void {
  const code = fs.readFileSync(bundle);
  const fingerprint = fingerprintOf(code);
  // An ASCII bundle (build/bundle.mjs keeps it so) reads as latin1: a copy of the bytes into a
  // one-byte string, where UTF-8 would decode and check every byte first. The bundle is the
  // function require() would wrap a module in (build/bundle.mjs), so V8 compiles this very string.
  const source = code.toString(isAscii(code) ? 'latin1' : 'utf8');
  // The bytes have their string now: their memory takes the cache.
  const cachedData = fingerprint ? readCodeCache(codeCacheFile(bundle), fingerprint, code) : undefined;
  const script = new vm.Script(source, {
    filename: bundle,
    ...(cachedData ? { cachedData } : {}),
    // Node 20.x without the constant: the bundle makes no import() of its own (build/bundle.mjs).
    ...(vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER ? { importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER } : {}),
  });
  if (cachedData) debug('code cache %s', script.cachedDataRejected === true ? 'rejected by V8 (another node or other V8 flags)' : 'accepted');

  const dirname = path.dirname(bundle);
  const internals = Module as unknown as NodeModuleInternals;
  const bundleModule = new Module(bundle, module);
  bundleModule.filename = bundle;
  bundleModule.paths = internals._nodeModulePaths(dirname);
  internals._cache[bundle] = bundleModule;
  registerSourceMapOnFirstStack(bundleModule, bundle);
  const outFile = process.env[CODE_CACHE_OUT_ENV];
  if (outFile !== undefined && fingerprint !== undefined) {
    // At exit the cache holds every function the run compiled, not only the top level.
    process.once('exit', () => fs.writeFileSync(outFile, Buffer.concat([fingerprint, script.createCachedData()])));
  }
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  wrapper.call(bundleModule.exports, bundleModule.exports, Module.createRequire(bundle), bundleModule, bundle, dirname);
  bundleModule.loaded = true;
}
