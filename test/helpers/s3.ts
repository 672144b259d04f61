// A real S3 API on loopback for the tests: s3rver, listening on a free port of 127.0.0.1 and
// keeping its objects in a temporary directory, with one bucket made before it accepts requests.
// Where s3rver 3.7.1 departs from S3 on a request the registry sends, the helper makes it answer as
// S3 does (each correction below says which); it also logs the requests it receives by their S3
// names, and lists the multipart uploads in progress, for tests to observe what reached the bucket.
import crypto from 'node:crypto';
import { createWriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import S3rver, { type KoaContext } from 's3rver';
import type { StorageDriverConfig } from '../../src/config/types.js';
import type { PartedWrites, StorageDriver } from '../../src/storage/driver.js';

// The SDK warns once per process that its 2027 releases need Node 22; the tests know.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

/** s3rver's only account; it checks that a request names this key but not its V4 signature. */
export const S3RVER_KEY = 'S3RVER';

/** One request s3rver received: its S3 operation and the object key it names. */
export interface S3Request {
  operation: string;
  key: string;
  /** The part number of an UploadPart. */
  part?: number;
}

/** A multipart upload in progress on s3rver: its key and the numbers of the parts it holds. */
export interface LiveMultipartUpload {
  uploadId: string;
  key: string;
  parts: number[];
}

export interface TestS3Server {
  endpoint: string;
  bucket: string;
  accessKey: string;
  secretKey: string;
  /** A storageDriver config for this server; each test tree should take its own rootdirectory. */
  driverConfig(rootdirectory?: string): StorageDriverConfig;
  /** Every request received so far, in order of arrival. */
  readonly requests: S3Request[];
  /** The multipart uploads neither completed nor aborted. */
  multipartUploads(): Promise<LiveMultipartUpload[]>;
  /** Answers 500 InternalError to every `operation` (an S3 name) on `key` until the returned function is called. */
  failRequests(operation: string, key: string): () => void;
  stop(): Promise<void>;
}

/** The self-signed certificate of the TLS example (for 127.0.0.1 and localhost); tests run from dist/test/helpers. */
const EXAMPLE_TLS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../examples/tls');

export interface S3ServerOptions {
  /** Serve HTTPS with the example's self-signed certificate, which clients verify only when told not to. */
  tls?: boolean;
}

export async function startS3Server(options: S3ServerOptions = {}): Promise<TestS3Server> {
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'zot-ts-s3rver-'));
  const bucket = 'zot-test';
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
    ...(options.tls
      ? {
          cert: await fs.readFile(path.join(EXAMPLE_TLS_DIR, 'server.crt')),
          key: await fs.readFile(path.join(EXAMPLE_TLS_DIR, 'server.key')),
        }
      : {}),
  });
  sealContinuationTokensWithoutSingleDes();
  groupDelimitedListings(server);
  honourFirstByteRanges(server);
  storeObjectsWhole(server, directory);
  const uploadsDirectory = path.join(directory, bucket, '._S3rver_uploads');
  const requests: S3Request[] = [];
  const failing = new Set<string>();
  // First in the chain: it sees every request, and answers before s3rver's router where s3rver departs from S3.
  server.middleware.unshift(logRequests(requests), failInjected(failing), multipartUploadsAsS3(uploadsDirectory));
  const { port } = await server.run();
  const endpoint = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    accessKey: S3RVER_KEY,
    secretKey: S3RVER_KEY,
    driverConfig: (rootdirectory?: string) => ({
      name: 's3',
      region: 'us-east-1',
      regionendpoint: endpoint,
      bucket,
      accesskey: S3RVER_KEY,
      secretkey: S3RVER_KEY,
      ...(rootdirectory !== undefined ? { rootdirectory } : {}),
    }),
    requests,
    multipartUploads: () => liveMultipartUploads(uploadsDirectory),
    failRequests(operation: string, key: string) {
      const failure = `${operation} ${key}`;
      failing.add(failure);
      return () => failing.delete(failure);
    },
    async stop() {
      // Clients keep sockets alive; close() alone would wait for them.
      server.httpServer?.closeAllConnections();
      await server.close();
      await fs.rm(directory, { recursive: true, force: true });
    },
  };
}

/**
 * s3rver (3.7.1) seals the continuation token of a ListObjectsV2 answer that stops short (MaxKeys
 * reached) with single DES, which OpenSSL 3 (Node 17 and later) no longer provides: every such
 * listing, and every request that passes its token back, answers 500 InternalError. S3 pages
 * normally, and the registry relies on it (a directory's stat lists one key; listings and
 * deletions page by 1000). s3rver is given two-key triple DES instead, with the same 8-byte block
 * and IV, so its tokens keep their form; only s3rver asks this process for single DES.
 */
function sealContinuationTokensWithoutSingleDes(): void {
  const isSingleDes = (algorithm: string): boolean => ['des', 'des-cbc'].includes(algorithm.toLowerCase());
  // s3rver's 8-byte key, repeated: two-key triple DES takes 16.
  const doubled = (key: crypto.CipherKey): crypto.CipherKey => (Buffer.isBuffer(key) && key.length === 8 ? Buffer.concat([key, key]) : key);
  const { createCipheriv, createDecipheriv } = crypto;
  if ((createCipheriv as { s3rverTokens?: true }).s3rverTokens) return;
  const cipher = ((algorithm: string, key: crypto.CipherKey, iv: crypto.BinaryLike | null, options?: never) =>
    isSingleDes(algorithm) ? createCipheriv('des-ede-cbc', doubled(key), iv, options) : createCipheriv(algorithm, key, iv, options)) as typeof createCipheriv;
  const decipher = ((algorithm: string, key: crypto.CipherKey, iv: crypto.BinaryLike | null, options?: never) =>
    isSingleDes(algorithm) ? createDecipheriv('des-ede-cbc', doubled(key), iv, options) : createDecipheriv(algorithm, key, iv, options)) as typeof createDecipheriv;
  Object.assign(cipher, { s3rverTokens: true });
  crypto.createCipheriv = cipher;
  crypto.createDecipheriv = decipher;
}

/**
 * s3rver (3.7.1) answers a listing with a delimiter by walking its directory tree, and skips the
 * directories below a common prefix before it has seen an object in them: `a/b/c` alone makes no
 * `a/` under the prefix "". S3 reports that prefix, so listings with a delimiter are grouped here
 * from the full listing under the prefix instead.
 */
function groupDelimitedListings(server: S3rver): void {
  const store = server.store;
  const listObjects = store.listObjects.bind(store);
  store.listObjects = async (bucket, options) => {
    const { delimiter, maxKeys = Infinity, prefix = '' } = options;
    if (!delimiter) return listObjects(bucket, options);
    const all = await listObjects(bucket, { ...options, delimiter: undefined, maxKeys: Infinity });
    const objects: typeof all.objects = [];
    const commonPrefixes = new Set<string>();
    let isTruncated = false;
    for (const object of all.objects) {
      const at = object.key.indexOf(delimiter, prefix.length);
      if (at !== -1) commonPrefixes.add(object.key.slice(0, at + delimiter.length));
      else if (objects.length < maxKeys) objects.push(object);
      else isTruncated = true;
    }
    return { objects, commonPrefixes: [...commonPrefixes].sort(), isTruncated };
  };
}

/**
 * s3rver (3.7.1) reads the range "bytes=0-0" as "bytes=0-" (an end of 0 is falsy to it) and sends
 * the whole object. S3 sends the first byte, so such a read is cut to that byte here.
 */
function honourFirstByteRanges(server: S3rver): void {
  const store = server.store;
  const getObject = store.getObject.bind(store);
  store.getObject = async (bucket, key, options) => {
    const object = await getObject(bucket, key, options);
    if (options?.end !== 0 || !object?.range || !object.content) return object;
    const whole = object.content;
    object.range.end = 0;
    object.content = Readable.from(
      (async function* () {
        for await (const chunk of whole) {
          yield (chunk as Buffer).subarray(0, 1);
          break;
        }
      })(),
    );
    return object;
  };
}

/**
 * s3rver (3.7.1) writes an object's bytes into its file as they arrive: a PutObject cut short
 * leaves the key holding part of its body (over what was there), and a reader meanwhile sees a
 * partial object. S3 stores an object only once its request has every byte, and then at once; so
 * does this, writing each object to a file of its own and renaming it into place when complete.
 * Multipart completions go through the same write.
 */
function storeObjectsWhole(server: S3rver, directory: string): void {
  const store = server.store;
  const incoming = path.join(directory, '._S3rver_incoming');
  store.putObject = async (object) => {
    const objectPath = store.getResourcePath(object.bucket, object.key, 'object');
    await fs.mkdir(path.dirname(objectPath), { recursive: true });
    await fs.mkdir(incoming, { recursive: true });
    const temporary = path.join(incoming, crypto.randomUUID());
    const md5 = crypto.createHash('md5');
    let size = 0;
    const source = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
    const measure = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        md5.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    try {
      // A request that closes before its body ended rejects here (premature close): nothing is stored.
      await pipeline(source, measure, createWriteStream(temporary));
      await fs.rename(temporary, objectPath);
    } catch (err) {
      await fs.rm(temporary, { force: true });
      throw err;
    }
    const digest = md5.digest('hex');
    await store.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };
}

/** S3's name for a request to an object (path-style: /bucket/key). */
function operationOf(ctx: KoaContext): string {
  const has = (name: string): boolean => ctx.query[name] !== undefined;
  switch (ctx.method) {
    case 'PUT':
      if (has('uploadId')) return 'UploadPart';
      return ctx.headers['x-amz-copy-source'] !== undefined ? 'CopyObject' : 'PutObject';
    case 'POST':
      if (has('uploads')) return 'CreateMultipartUpload';
      if (has('uploadId')) return 'CompleteMultipartUpload';
      return has('delete') ? 'DeleteObjects' : 'PostObject';
    case 'DELETE':
      return has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
    case 'HEAD':
      return 'HeadObject';
    default:
      return has('list-type') ? 'ListObjectsV2' : 'GetObject';
  }
}

/** The object key of a path-style request path, decoded. */
function keyOf(ctx: KoaContext): string {
  const [, , ...key] = ctx.path.split('/');
  return decodeURIComponent(key.join('/'));
}

function logRequests(requests: S3Request[]) {
  return async (ctx: KoaContext, next: () => Promise<void>): Promise<void> => {
    const part = Number(ctx.query.partNumber);
    requests.push({ operation: operationOf(ctx), key: keyOf(ctx), ...(Number.isSafeInteger(part) && part > 0 ? { part } : {}) });
    await next();
  };
}

/** The requests a test made fail answer as S3 does when it fails inside: 500 InternalError. */
function failInjected(failing: Set<string>) {
  return async (ctx: KoaContext, next: () => Promise<void>): Promise<void> => {
    if (!failing.has(`${operationOf(ctx)} ${keyOf(ctx)}`)) return next();
    ctx.status = 500;
    ctx.type = 'application/xml';
    ctx.body =
      '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>';
  };
}

function noSuchUpload(ctx: KoaContext): void {
  ctx.status = 404;
  ctx.type = 'application/xml';
  ctx.body =
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>';
}

/**
 * s3rver (3.7.1) answers AbortMultipartUpload 405 MethodNotAllowed, keeping the upload's parts, and
 * takes parts for an upload it does not know (creating it anew, without a key, so that its
 * completion then fails with 500). S3 aborts, and answers NoSuchUpload (404) for an upload that
 * was completed or aborted: so does this, from s3rver's own directory of uploads in progress.
 */
function multipartUploadsAsS3(uploadsDirectory: string) {
  return async (ctx: KoaContext, next: () => Promise<void>): Promise<void> => {
    const uploadId = ctx.query.uploadId;
    if (typeof uploadId !== 'string' || !/^[0-9a-f]+$/.test(uploadId)) return next();
    const upload = path.join(uploadsDirectory, uploadId);
    const known = await fs.stat(path.join(upload, 'key')).then(
      () => true,
      () => false,
    );
    if (!known) return noSuchUpload(ctx);
    if (ctx.method !== 'DELETE') return next();
    await fs.rm(upload, { recursive: true, force: true });
    ctx.status = 204;
  };
}

async function liveMultipartUploads(uploadsDirectory: string): Promise<LiveMultipartUpload[]> {
  const ids = await fs.readdir(uploadsDirectory).catch(() => [] as string[]);
  const found: LiveMultipartUpload[] = [];
  for (const uploadId of ids) {
    const key = await fs.readFile(path.join(uploadsDirectory, uploadId, 'key'), 'utf8').catch(() => undefined);
    if (key === undefined) continue;
    const entries = await fs.readdir(path.join(uploadsDirectory, uploadId));
    const parts = entries.filter((name) => /^\d+$/.test(name)).map(Number).sort((a, b) => a - b);
    found.push({ uploadId, key, parts });
  }
  return found;
}

/**
 * The driver with the completion of its parted (multipart) writes failing whenever `failNow`, asked
 * with the write's path, says so: the completion's fault, injected between the registry and S3.
 */
export function withFailingCompletions<T extends StorageDriver>(driver: T, failNow: (path: string) => boolean): T {
  const writes = driver.partedWrites;
  if (!writes) return driver;
  const failing: PartedWrites = {
    partSize: writes.partSize,
    begin: (...args) => writes.begin(...args),
    putPart: (...args) => writes.putPart(...args),
    abort: (...args) => writes.abort(...args),
    complete: (path, ...rest) =>
      failNow(path) ? Promise.reject(new Error('injected fault in the completion of a multipart upload')) : writes.complete(path, ...rest),
  };
  return new Proxy(driver, {
    get: (target, property, receiver) => {
      if (property === 'partedWrites') return failing;
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
