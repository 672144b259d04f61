// NODE_EXTRA_CA_CERTS, read when TLS is first used instead of at every start.
//
// Node 20 reads and parses the file that NODE_EXTRA_CA_CERTS names while the process starts,
// before any script runs, whether or not the process will ever open a TLS connection. With a
// system bundle (Debian's ca-certificates.crt: some 140 certificates, set so on CI machines and in
// many corporate images) that took 40 ms of `node -e 0` (95 against 55 ms) and 55 ms of a
// `zot serve` start to its first 200 (248 against 193 ms, medians of 7 on 2 cores), and Node 20
// has no API to add certificates to its default store later. So bin/zot.js's shebang starts node
// without the variable, handing the file over under DEFERRED_ENV, and
// trustDeferredExtraCaCertificates gives the process the trust Node would have given it:
// - A context made without `ca` trusts Node's bundled roots and the file's certificates, as with
//   the variable; a context given `ca` trusts only that `ca`, as with the variable.
// - The exception is a TLS server's context (tls.Server passes sessionIdContext, clients never do),
//   which is made as without the variable: its trust store is used only to verify client
//   certificates, and `zot serve` asks for those only with http.tls.cacert, given as `ca`.
// - Nothing of this loads node:tls before something else does: a start without TLS loads none of
//   node's TLS modules, as without the variable (trustWhenTlsLoads).
// - Contexts that differ only in per-connection options share one context, so the certificates
//   are parsed once (some 45 ms for the bundle above), not at every connection.
// - A file that cannot be read or holds no certificate is ignored with a warning, as Node does.
// - The variable is set again in process.env, for child processes.
// - --use-openssl-ca (in NODE_OPTIONS) replaces the bundled roots with OpenSSL's store, which no
//   API of Node 20 lists: the deferral would trust the bundled roots instead, so with that flag
//   run `node bin/zot.js` rather than bin/zot.js itself, and node reads the variable as usual.
// Worker threads keep no TLS of their own here (the hash pool makes no connections).
// `import x = require(...)`, not `import * as x`: tsc makes the latter a copy of the module's
// names with a getter each (__importStar), some 160 KiB of what every start allocates.
import fs = require('node:fs');
import Module from 'node:module';

/** Where the shebang of bin/zot.js puts NODE_EXTRA_CA_CERTS's value; empty when it was unset. */
export const DEFERRED_ENV = 'ZOT_DEFERRED_NODE_EXTRA_CA_CERTS';

type Tls = typeof import('node:tls');
type ContextOptions = import('node:tls').SecureContextOptions;
type SecureContext = import('node:tls').SecureContext;

/**
 * The options that configure a context (Node 20's tls.createSecureContext), apart from `ca`:
 * contexts whose values of these are equal strings, numbers or booleans are interchangeable.
 * Everything else a connection passes along (host, servername, session, ...) is its own.
 */
const CONTEXT_OPTIONS = [
  'cert', 'key', 'pfx', 'passphrase', 'sigalgs', 'privateKeyIdentifier', 'privateKeyEngine', 'ciphers', 'ecdhCurve',
  'dhparam', 'crl', 'sessionIdContext', 'ticketKeys', 'sessionTimeout', 'honorCipherOrder', 'clientCertEngine',
  'minVersion', 'maxVersion', 'secureProtocol', 'secureOptions',
] as const;

/** Shared contexts are kept for this many distinct option sets; more are made each time. */
const MAX_SHARED_CONTEXTS = 16;

const CERTIFICATE_PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Applies the deferral that bin/zot.js's shebang began: when it handed a file over, TLS contexts
 * made from now on trust it. Call it before anything makes a TLS context. With `untilTlsIsLoaded`
 * the trust is put in place when node:tls is first loaded, not now (see trustWhenTlsLoads).
 */
export function trustDeferredExtraCaCertificates(env: NodeJS.ProcessEnv, options: { untilTlsIsLoaded?: boolean } = {}): void {
  const file = env[DEFERRED_ENV];
  delete env[DEFERRED_ENV];
  if (file === undefined || file === '') return;
  env.NODE_EXTRA_CA_CERTS = file;
  if (options.untilTlsIsLoaded && !tlsLoaded()) trustWhenTlsLoads(file);
  else deferTrust(require('node:tls') as Tls, file);
}

/** Names by which CommonJS code loads a module that makes TLS contexts. */
const TLS_MODULES = /^(?:node:)?(?:tls|https|http2|_tls_wrap|_tls_common)$/;

/** Whether node has loaded node:tls (when node does not say, it is taken as loaded). */
function tlsLoaded(): boolean {
  const loaded = (process as unknown as { moduleLoadList?: string[] }).moduleLoadList;
  return loaded === undefined || loaded.includes('NativeModule tls');
}

/**
 * Puts the trust in place just before node:tls first loads, sparing a start without TLS the load
 * of tls and its dependencies (5-15 ms on 2 cores, where node 20 without the variable loads none
 * of them: build/bundle.mjs). A TLS context can be made only through node:tls, node:https or
 * node:http2, which the bundle and the packages it loads (CommonJS all) require() through
 * Module._load, or through fetch (node's own undici, which loads tls internally). Code loaded as
 * ES modules does not pass Module._load: bin/zot.js asks for this only when it runs the bundle.
 */
function trustWhenTlsLoads(file: string): void {
  let trusting = false;
  const trust = (): void => {
    if (trusting) return;
    trusting = true;
    deferTrust(require('node:tls') as Tls, file);
  };
  const modules = Module as unknown as { _load(request: string, parent: unknown, isMain: boolean): unknown };
  const load = modules._load;
  modules._load = function loadTrusting(request: string, parent: unknown, isMain: boolean): unknown {
    if (!trusting && TLS_MODULES.test(request)) trust();
    return load.call(this, request, parent, isMain);
  };
  const fetch = globalThis.fetch;
  if (typeof fetch === 'function') {
    globalThis.fetch = function fetchTrusting(input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]): ReturnType<typeof fetch> {
      trust();
      return fetch(input, init);
    };
  }
}

/** Replaces tls.createSecureContext, which https, fetch and tls.connect all call through the module. */
function deferTrust(tls: Tls, file: string): void {
  const createContext = tls.createSecureContext;
  let extra: string[] | undefined;
  let trusted: string[] | undefined;
  const shared = new Map<string, SecureContext>();

  /**
   * A context trusting Node's bundled roots and the file's certificates, read at the first one.
   * A certificate that does not load leaves the file out, with Node's warning, unless the options
   * themselves fail without it too.
   */
  const trustingContext = (options: ContextOptions | undefined): SecureContext => {
    if (trusted !== undefined) return createContext({ ...options, ca: trusted });
    extra ??= readCertificates(file);
    const withFile = [...tls.rootCertificates, ...extra];
    try {
      const context = createContext({ ...options, ca: withFile });
      trusted = withFile;
      return context;
    } catch (err) {
      if (extra.length === 0) throw err;
      const rootsOnly = [...tls.rootCertificates];
      const context = createContext({ ...options, ca: rootsOnly });
      ignoreFile(file, err);
      trusted = rootsOnly;
      return context;
    }
  };

  tls.createSecureContext = function createSecureContext(options?: ContextOptions): SecureContext {
    if (options?.ca !== undefined || options?.sessionIdContext !== undefined) return createContext(options);
    const key = sharingKey(options);
    if (key === undefined) return trustingContext(options);
    let context = shared.get(key);
    if (context === undefined) {
      context = trustingContext(options);
      if (shared.size < MAX_SHARED_CONTEXTS) shared.set(key, context);
    }
    return context;
  };
}

/** The configuring options as a key, or undefined when one of them is not a plain value. */
function sharingKey(options: ContextOptions | undefined): string | undefined {
  const values: unknown[] = [];
  for (const name of CONTEXT_OPTIONS) {
    const value = options?.[name as keyof ContextOptions];
    if (value !== undefined && typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') return undefined;
    values.push(value ?? null);
  }
  return JSON.stringify(values);
}

/** The file's PEM certificates; none, with Node's warning, when it cannot be read or holds none. */
function readCertificates(file: string): string[] {
  try {
    const certificates = fs.readFileSync(file, 'latin1').match(CERTIFICATE_PEM) ?? [];
    if (certificates.length > 0) return certificates;
    ignoreFile(file, new Error('no certificate in the file'));
  } catch (err) {
    ignoreFile(file, err);
  }
  return [];
}

/** Node's own warning for a NODE_EXTRA_CA_CERTS file it cannot use. */
function ignoreFile(file: string, err: unknown): void {
  process.emitWarning(`Ignoring extra certs from \`${file}\`, load failed: ${err instanceof Error ? err.message : String(err)}`);
}
