// s3rver ships no types; this declares the part of its API the tests use.
declare module 's3rver' {
  import type { Server } from 'node:http';
  import type { AddressInfo } from 'node:net';
  import type { Readable } from 'node:stream';

  interface S3rverOptions {
    address?: string;
    port?: number;
    silent?: boolean;
    directory?: string;
    resetOnClose?: boolean;
    allowMismatchedSignatures?: boolean;
    vhostBuckets?: boolean;
    configureBuckets?: Array<{ name: string; configs?: Array<string | Buffer> }>;
    cert?: Buffer;
    key?: Buffer;
  }

  interface ListOptions {
    delimiter?: string;
    prefix?: string;
    startAfter?: string;
    maxKeys?: number;
  }

  interface ListResult {
    objects: Array<{ key: string }>;
    commonPrefixes: string[];
    isTruncated: boolean;
  }

  interface StoredObject {
    content: Readable | null;
    range?: { start: number; end: number };
  }

  /** An object being stored: its body as the request's stream (or a buffer) and its metadata. */
  interface NewObject {
    bucket: string;
    key: string;
    content: Readable | Buffer;
    metadata: Record<string, string>;
  }

  /** The part of a Koa context the helper's middleware reads and writes (s3rver is a Koa app). */
  interface KoaContext {
    method: string;
    path: string;
    query: Record<string, string | string[] | undefined>;
    headers: Record<string, string | string[] | undefined>;
    status: number;
    body: unknown;
    type: string;
  }

  export default class S3rver {
    constructor(options?: S3rverOptions);
    httpServer?: Server;
    /** Koa's middleware list, composed when the server starts listening. */
    middleware: Array<(ctx: KoaContext, next: () => Promise<void>) => Promise<void>>;
    store: {
      listObjects(bucket: string, options: ListOptions): Promise<ListResult>;
      getObject(bucket: string, key: string, options?: { start?: number; end?: number }): Promise<StoredObject | null>;
      putObject(object: NewObject): Promise<{ size: number; md5: string }>;
      putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5: string): Promise<void>;
      getResourcePath(bucket: string, key: string, resource: string): string;
    };
    run(): Promise<AddressInfo>;
    close(): Promise<void>;
  }
}
