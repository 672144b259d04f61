// The S3 driver: objects in one bucket under a key prefix (zot's `rootdirectory`), for S3 and any
// S3-compatible store. Its parameters are those of distribution's s3-aws driver, which zot passes
// its `storageDriver` map to.
//
// S3 has no directories, renames, appends or hard links, so:
//   a directory      is a key prefix with at least one object under it
//   move             is CopyObject + DeleteObject (CopyObject copies at most 5 GiB: distribution
//                    switches to a multipart copy, UploadPartCopy, which s3rver lacks; here the
//                    move of a bigger upload fails and the registry puts the staged file instead)
//   link             is a server-side CopyObject: the copies are independent (no fileId)
//   append           rewrites the object from its old content and the new stream (rarely used:
//                    the registry stages uploads on local disk)
//   parted writes    are multipart uploads the caller drives part by part (partedWrites): an
//                    upload session sends its full parts under its own key as they arrive, and
//                    its commit completes them there and moves the object to the blob's key
//                    (registry/upload-parts.ts); putFile sends a staged file in parts at once
// Every object is written by one PutObject or one multipart upload, and S3 makes an object visible
// only when that request completes, so writes are atomic and a failed write leaves nothing.
import { once } from 'node:events';
import * as fs from 'node:fs/promises';
import { Agent as HttpsAgent } from 'node:https';
import { PassThrough, type Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  type CompletedPart,
  type ObjectCannedACL,
  type S3ClientConfig,
  type ServerSideEncryption,
  type StorageClass,
} from '@aws-sdk/client-s3';
import type { StorageDriverConfig } from '../config/types.js';
import { PathNotFoundError, type ByteRange, type FileInfo, type PartedWrites, type StorageDriver, type StoredPart, type StreamedWrite } from './driver.js';
import { withinLength } from './exact-length.js';

const MIB = 1024 * 1024;
/** distribution's defaults: 10 MiB parts; S3 refuses parts below 5 MiB (but the last). */
export const DEFAULT_CHUNK_SIZE = 10 * MIB;
export const MIN_CHUNK_SIZE = 5 * MIB;
/** Parts uploading at once per object: keeps two requests busy while the next part is read. */
const PARTS_IN_FLIGHT = 2;
/** S3's largest object in one PutObject. */
const MAX_PUT_OBJECT = 5 * 1024 * MIB;
/** Bytes a streamed PutObject's body buffers before its writer waits. */
const STREAMED_BUFFER = 4 * MIB;
/** The most keys one DeleteObjects request takes. */
const DELETE_BATCH = 1000;

/** Settings applied to every object the driver writes. */
interface WriteOptions {
  StorageClass?: StorageClass;
  ServerSideEncryption?: ServerSideEncryption;
  SSEKMSKeyId?: string;
  ACL?: ObjectCannedACL;
}

export interface S3DriverOptions {
  client: S3Client;
  bucket: string;
  /** Key prefix every path lives under ('' for the bucket's top), without slashes at its ends. */
  prefix: string;
  /** Multipart part size in bytes. */
  chunkSize: number;
  write?: WriteOptions;
}

/** 404s of a missing key. NoSuchBucket is a 404 too, but a misconfiguration, not a missing path. */
function isNotFound(err: unknown): boolean {
  if (!(err instanceof S3ServiceException)) return false;
  if (err.name === 'NoSuchKey' || err.name === 'NotFound') return true;
  return err.$metadata.httpStatusCode === 404 && err.name !== 'NoSuchBucket';
}

export class S3Driver implements StorageDriver {
  readonly name = 's3';
  readonly bucket: string;
  private readonly client: S3Client;
  private readonly prefix: string;
  private readonly chunkSize: number;
  private readonly write: WriteOptions;
  readonly partedWrites: PartedWrites;
  readonly streamedWriteLimit = MAX_PUT_OBJECT;

  constructor(options: S3DriverOptions) {
    if (options.chunkSize < MIN_CHUNK_SIZE) throw new Error(`s3 chunksize must be at least ${MIN_CHUNK_SIZE} bytes`);
    this.client = options.client;
    this.bucket = options.bucket;
    this.prefix = options.prefix.replace(/^\/+|\/+$/g, '');
    this.chunkSize = options.chunkSize;
    this.write = options.write ?? {};
    this.partedWrites = this.multipartWrites();
  }

  /**
   * Parted writes as multipart uploads, with the four requests s3rver implements besides S3 (it
   * answers ListParts, ListMultipartUploads and UploadPartCopy 405 or 501): whoever writes in
   * parts keeps the upload id and the parts' ETags itself.
   */
  private multipartWrites(): PartedWrites {
    const { client, bucket } = this;
    return {
      partSize: this.chunkSize,
      begin: async (path) => {
        const key = this.key(path);
        const created = await client.send(
          new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'application/octet-stream', ...this.write }),
        );
        if (!created.UploadId) throw new Error(`no upload id in the response for ${key}`);
        return created.UploadId;
      },
      putPart: async (path, writeId, part, body) => {
        const out = await client.send(
          new UploadPartCommand({ Bucket: bucket, Key: this.key(path), UploadId: writeId, PartNumber: part, Body: body, ContentLength: body.length }),
        );
        if (!out.ETag) throw new Error(`no ETag in the response for part ${part} of ${path}`);
        return out.ETag;
      },
      complete: async (path, writeId, parts) => {
        await client.send(
          new CompleteMultipartUploadCommand({
            Bucket: bucket,
            Key: this.key(path),
            UploadId: writeId,
            MultipartUpload: { Parts: parts.map((p: StoredPart) => ({ PartNumber: p.number, ETag: p.tag })) },
          }),
        );
      },
      abort: async (path, writeId) => {
        try {
          await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: this.key(path), UploadId: writeId }));
        } catch (err) {
          // NoSuchUpload: completed or aborted already.
          if (!(err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404)) throw err;
        }
      },
    };
  }

  /** The object key of a driver path. */
  private key(path: string): string {
    const relative = path.replace(/^\/+|\/+$/g, '');
    // Paths come from layout.ts only, but "." and ".." have no meaning in a key and must not appear.
    if (relative.split('/').some((part) => part === '.' || part === '..')) {
      throw new Error(`invalid storage path: ${path}`);
    }
    if (relative === '') return this.prefix;
    return this.prefix === '' ? relative : `${this.prefix}/${relative}`;
  }

  /** The prefix of the keys inside a directory ('' for the bucket's top). */
  private dirPrefix(key: string): string {
    return key === '' ? '' : `${key}/`;
  }

  localPath(_path: string): undefined {
    return undefined;
  }

  /** Stops the client's connection pool; the driver is unusable afterwards. */
  destroy(): void {
    this.client.destroy();
  }

  async stat(path: string): Promise<FileInfo | undefined> {
    const key = this.key(path);
    if (key !== '') {
      try {
        const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
        return { size: head.ContentLength ?? 0, modTime: head.LastModified ?? new Date(0), isDirectory: false };
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    const listed = await this.client.send(
      new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.dirPrefix(key), MaxKeys: 1 }),
    );
    const first = listed.Contents?.[0];
    if (!first) return undefined;
    return { size: 0, modTime: first.LastModified ?? new Date(0), isDirectory: true };
  }

  async getContent(path: string): Promise<Buffer> {
    const body = await this.get(path);
    return Buffer.from(await body.transformToByteArray());
  }

  async putContent(path: string, content: Buffer | string): Promise<void> {
    await this.putObject(this.key(path), typeof content === 'string' ? Buffer.from(content) : content);
  }

  async reader(path: string, range?: ByteRange): Promise<Readable> {
    // In Node the SDK's body is the HTTP response itself, a Readable.
    return (await this.get(path, range)) as unknown as Readable;
  }

  async append(path: string, source: Readable, exactLength?: number): Promise<number> {
    const key = this.key(path);
    let written = 0;
    const self = this;
    // The old content, then the new bytes, held to exactLength.
    async function* appended(): AsyncGenerator<Buffer> {
      const existing = await self.get(path).catch((err: unknown) => {
        if (err instanceof PathNotFoundError) return undefined;
        throw err;
      });
      if (existing) yield* existing as unknown as AsyncIterable<Buffer>;
      for await (const buffer of withinLength(source, exactLength)) {
        written += buffer.length;
        yield buffer;
      }
    }
    await this.writeObject(key, partsOf(appended(), this.chunkSize));
    return written;
  }

  /**
   * One PutObject whose body is written as it arrives. S3 stores an object only once its request
   * has all the bytes its Content-Length declared; aborted before, the request stores nothing.
   */
  streamedWrite(path: string, length: number): StreamedWrite {
    if (length > MAX_PUT_OBJECT) throw new Error(`a single PutObject takes at most ${MAX_PUT_OBJECT} bytes, not ${length}`);
    const body = new PassThrough({ highWaterMark: STREAMED_BUFFER });
    const controller = new AbortController();
    const sending = this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: this.key(path), Body: body, ContentLength: length, ContentType: 'application/octet-stream', ...this.write }),
      { abortSignal: controller.signal },
    );
    // Rejects as soon as the request fails (or, before its last byte, answers): a writer waiting
    // for room hears of it. Seen here, so that it is never an unhandled rejection.
    const failed = sending.then(() => {
      throw new Error(`the object store answered a PutObject of ${path} before its last byte`);
    });
    failed.catch(() => undefined);
    return {
      write: async (bytes) => {
        if (!body.write(bytes)) await Promise.race([once(body, 'drain'), failed]);
      },
      end: async (last) => {
        body.end(last);
        await sending;
      },
      abort: () => {
        controller.abort();
        body.destroy();
      },
    };
  }

  /** Nothing to flush: an object is durable once the request that wrote it succeeded. */
  async sync(): Promise<void> {}

  async move(from: string, to: string): Promise<void> {
    await this.copy(from, to);
    if (this.key(from) !== this.key(to)) {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(from) }));
    }
  }

  async putFile(localFile: string, to: string): Promise<void> {
    const handle = await fs.open(localFile, 'r');
    try {
      const { size } = await handle.stat();
      await this.writeObject(this.key(to), fileParts(handle, localFile, size, this.chunkSize));
    } finally {
      await handle.close();
    }
  }

  async link(from: string, to: string): Promise<void> {
    await this.copy(from, to);
  }

  async delete(path: string): Promise<void> {
    const key = this.key(path);
    // The object at the path itself, then everything under it as a directory.
    if (key !== '') await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.dirPrefix(key),
          MaxKeys: DELETE_BATCH,
          ContinuationToken: token,
        }),
      );
      const keys = (page.Contents ?? []).flatMap((object) => (object.Key ? [{ Key: object.Key }] : []));
      if (keys.length > 0) {
        const result = await this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys, Quiet: true } }),
        );
        const failed = result.Errors?.[0];
        if (failed) throw new Error(`failed to delete ${failed.Key ?? path}: ${failed.Code ?? ''} ${failed.Message ?? ''}`);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async list(path: string): Promise<string[]> {
    const prefix = this.dirPrefix(this.key(path));
    const names = new Set<string>();
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) if (object.Key) names.add(object.Key.slice(prefix.length));
      for (const common of page.CommonPrefixes ?? []) {
        if (common.Prefix) names.add(common.Prefix.slice(prefix.length).replace(/\/$/, ''));
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    // A key ending in "/" (a directory marker some tools write) names nothing inside.
    names.delete('');
    return [...names];
  }

  /** The body of an object, or of one inclusive byte range of it. */
  private async get(path: string, range?: ByteRange) {
    try {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.key(path),
          Range: range ? `bytes=${range.start}-${range.end}` : undefined,
        }),
      );
      if (!out.Body) throw new Error(`no body in the response for ${path}`);
      return out.Body;
    } catch (err) {
      if (isNotFound(err)) throw new PathNotFoundError(path);
      throw err;
    }
  }

  /** A server-side copy; the destination gets the driver's write settings, not the source's. */
  private async copy(from: string, to: string): Promise<void> {
    const source = this.key(from);
    const target = this.key(to);
    if (source === target) {
      // S3 refuses a copy onto itself; the only thing to check is that the object exists.
      const info = await this.stat(from);
      if (!info || info.isDirectory) throw new PathNotFoundError(from);
      return;
    }
    try {
      await this.client.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: target,
          CopySource: `${this.bucket}/${source.split('/').map(encodeURIComponent).join('/')}`,
          ...this.write,
        }),
      );
    } catch (err) {
      if (isNotFound(err)) throw new PathNotFoundError(from);
      throw err;
    }
  }

  private async putObject(key: string, body: Buffer): Promise<void> {
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentLength: body.length,
        ContentType: 'application/octet-stream',
        ...this.write,
      }),
    );
  }

  /**
   * Writes an object from parts of `chunkSize` bytes (the last one shorter): one PutObject when
   * there is at most one part, else a multipart upload that is aborted on any error, including
   * one thrown by the parts' source.
   */
  private async writeObject(key: string, parts: AsyncIterable<Buffer>): Promise<void> {
    const iterator = parts[Symbol.asyncIterator]();
    try {
      const first = await iterator.next();
      if (first.done) return await this.putObject(key, Buffer.alloc(0));
      const second = await iterator.next();
      if (second.done) return await this.putObject(key, first.value);
      const upload = await MultipartUpload.start(this.client, this.bucket, key, this.write);
      try {
        await upload.add(first.value);
        await upload.add(second.value);
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) await upload.add(next.value);
        await upload.complete();
      } catch (err) {
        await upload.abort();
        throw err;
      }
    } finally {
      // Closes the source (an object being read, a request body) when the write stopped early.
      await iterator.return?.(undefined);
    }
  }
}

/** One multipart upload with at most PARTS_IN_FLIGHT parts uploading at a time. */
class MultipartUpload {
  private readonly parts: CompletedPart[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown;
  private partNumber = 0;

  private constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly key: string,
    private readonly uploadId: string,
  ) {}

  static async start(client: S3Client, bucket: string, key: string, write: WriteOptions): Promise<MultipartUpload> {
    const created = await client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'application/octet-stream', ...write }),
    );
    if (!created.UploadId) throw new Error(`no upload id in the response for ${key}`);
    return new MultipartUpload(client, bucket, key, created.UploadId);
  }

  /** Starts uploading a part; returns once fewer than PARTS_IN_FLIGHT parts are uploading. */
  async add(body: Buffer): Promise<void> {
    this.throwIfFailed();
    // S3 allows 10,000 parts: 100 GiB objects with the default 10 MiB parts.
    const PartNumber = ++this.partNumber;
    const task: Promise<void> = this.client
      .send(
        new UploadPartCommand({
          Bucket: this.bucket,
          Key: this.key,
          UploadId: this.uploadId,
          PartNumber,
          Body: body,
          ContentLength: body.length,
        }),
      )
      .then(
        (out) => {
          this.parts.push({ PartNumber, ETag: out.ETag });
        },
        // Kept for the next call to report: a rejection nobody awaits yet would be unhandled.
        (err: unknown) => {
          this.failure ??= err;
        },
      )
      .finally(() => this.inFlight.delete(task));
    this.inFlight.add(task);
    while (this.inFlight.size >= PARTS_IN_FLIGHT) await Promise.race(this.inFlight);
    this.throwIfFailed();
  }

  async complete(): Promise<void> {
    await Promise.all(this.inFlight);
    this.throwIfFailed();
    const parts = [...this.parts].sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
    await this.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: this.key,
        UploadId: this.uploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
  }

  /** Best effort: the upload already failed, and a bucket lifecycle rule can clean up after us. */
  async abort(): Promise<void> {
    await Promise.allSettled(this.inFlight);
    await this.client
      .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.key, UploadId: this.uploadId }))
      .catch(() => undefined);
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}

/** Regroups a stream's chunks into parts of exactly `partSize` bytes, the last one shorter. */
async function* partsOf(chunks: AsyncIterable<Buffer>, partSize: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of chunks) {
    pending.push(chunk);
    bytes += chunk.length;
    while (bytes >= partSize) {
      const all = Buffer.concat(pending, bytes);
      // The remainder is copied so that the part sent away does not keep `all` alive.
      const rest = Buffer.from(all.subarray(partSize));
      yield all.subarray(0, partSize);
      pending = rest.length > 0 ? [rest] : [];
      bytes = rest.length;
    }
  }
  if (bytes > 0) yield Buffer.concat(pending, bytes);
}

/** A local file as parts of `partSize` bytes, read one part at a time. */
async function* fileParts(handle: fs.FileHandle, file: string, size: number, partSize: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < size; offset += partSize) {
    const length = Math.min(partSize, size - offset);
    const part = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await handle.read(part, filled, length - filled, offset + filled);
      if (bytesRead === 0) throw new Error(`file shrank while being uploaded: ${file}`);
      filled += bytesRead;
    }
    yield part;
  }
}

/** The client a zot `storageDriver` map describes (distribution's s3-aws parameters). */
export function s3ClientConfig(config: StorageDriverConfig): S3ClientConfig {
  const endpoint = config.regionendpoint
    ? /^[a-z]+:\/\//i.test(config.regionendpoint)
      ? config.regionendpoint
      : `${config.secure === false ? 'http' : 'https'}://${config.regionendpoint}`
    : undefined;
  return {
    // A custom endpoint ignores the region, but the signature needs one.
    region: config.region ?? (endpoint ? 'us-east-1' : undefined),
    ...(endpoint ? { endpoint } : {}),
    // S3-compatible stores rarely serve virtual-hosted buckets (bucket.host); distribution and
    // zot address them by path whenever an endpoint is given.
    forcePathStyle: config.forcepathstyle ?? endpoint !== undefined,
    ...(config.secure === false && !endpoint ? { tls: false } : {}),
    // Without keys the SDK's default chain applies: environment, shared credentials file
    // (AWS_PROFILE), web identity, container and instance metadata.
    ...(config.accesskey && config.secretkey
      ? { credentials: { accessKeyId: config.accesskey, secretAccessKey: config.secretkey } }
      : {}),
    ...(config.skipverify ? { requestHandler: { httpsAgent: new HttpsAgent({ keepAlive: true, rejectUnauthorized: false }) } } : {}),
    ...(config.useragent ? { customUserAgent: config.useragent } : {}),
    ...(config.usedualstack ? { useDualstackEndpoint: true } : {}),
    ...(config.usefipsendpoint ? { useFipsEndpoint: true } : {}),
    ...(config.accelerate ? { useAccelerateEndpoint: true } : {}),
    // Checksums only where S3 demands them: many S3-compatible stores reject the SDK's default
    // (aws-chunked bodies with trailing checksums), and the registry verifies digests itself.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
}

function writeOptions(config: StorageDriverConfig): WriteOptions {
  const options: WriteOptions = {};
  // distribution's "NONE" leaves the class to the bucket's default.
  if (config.storageclass && config.storageclass !== 'NONE') options.StorageClass = config.storageclass as StorageClass;
  if (config.encrypt) {
    options.ServerSideEncryption = config.keyid ? 'aws:kms' : 'AES256';
    if (config.keyid) options.SSEKMSKeyId = config.keyid;
  }
  if (config.objectacl) options.ACL = config.objectacl as ObjectCannedACL;
  return options;
}

export function createS3Driver(config: StorageDriverConfig): StorageDriver {
  if (!config.bucket) throw new Error('the s3 storage driver needs a bucket');
  return new S3Driver({
    client: new S3Client(s3ClientConfig(config)),
    bucket: config.bucket,
    prefix: config.rootdirectory ?? '',
    chunkSize: config.chunksize ?? DEFAULT_CHUNK_SIZE,
    write: writeOptions(config),
  });
}
