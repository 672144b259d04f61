// s3rver on 127.0.0.1 for the S3 figures, in a process of its own: its JavaScript then does not
// share the benchmark client's event loop (the client's timings stay the client's). It is the
// tests' helper (test/helpers/s3.ts), with its corrections of s3rver's listing and range quirks
// and its objects stored whole, as S3 stores them (an object appears at once when its write ends).
//
// Run as a script (`node dist/bench/s3rver.js`), it prints one JSON line with the endpoint and
// stops, removing its objects, on SIGTERM or when its stdin closes (the bench went away).
// Imported, startS3rverProcess() spawns that script and waits for the line.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { BlobFile } from './client.js';
import { trackChild } from './servers.js';

export interface S3rverEndpoint {
  endpoint: string;
  bucket: string;
  accessKey: string;
  secretKey: string;
}

export interface S3rverProcess extends S3rverEndpoint {
  pid: number;
  stop(): Promise<void>;
}

const SCRIPT = fileURLToPath(import.meta.url);

/**
 * Starts s3rver in a child process. `tmpDir` becomes the child's TMPDIR, so its objects land in the
 * bench's temp dir and go with it even if the child is killed before it cleans up.
 */
export function startS3rverProcess(tmpDir: string): Promise<S3rverProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SCRIPT], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      env: { ...process.env, TMPDIR: tmpDir },
    });
    trackChild(child);
    const exited = new Promise<void>((done) => child.on('exit', () => done()));
    let out = '';
    let err = '';
    let ready = false;
    child.stderr.on('data', (c: Buffer) => (err = (err + c.toString('utf8')).slice(-4000)));
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString('utf8');
      const nl = out.indexOf('\n');
      if (ready || nl < 0) return;
      ready = true;
      const info = JSON.parse(out.slice(0, nl)) as S3rverEndpoint;
      const pid = child.pid as number;
      resolve({
        ...info,
        pid,
        async stop() {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill('SIGTERM');
          const timer = setTimeout(() => {
            try {
              process.kill(-pid, 'SIGKILL');
            } catch {
              // already gone
            }
          }, 10_000);
          await exited;
          clearTimeout(timer);
        },
      });
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (!ready) reject(new Error(`s3rver exited (${code ?? signal}) before it listened: ${err.trim()}`));
    });
  });
}

/**
 * What s3rver itself does with the blob: one PutObject from the file and one GetObject read to the
 * end, straight from this process with the SDK zot-ts uses. The ceiling for any registry on it.
 */
export async function s3rverBaseline(s3: S3rverEndpoint, blob: BlobFile, key: string): Promise<{ putMiBPerS: number; getMiBPerS: number }> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const client = new S3Client({
    region: 'us-east-1',
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey },
    // As zot-ts's driver: s3rver stores the SDK's default aws-chunked body (trailing checksums)
    // framing and all.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  try {
    const MiB = 1024 * 1024;
    const t0 = performance.now();
    await client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: fs.createReadStream(blob.path), ContentLength: blob.size }),
    );
    const t1 = performance.now();
    const res = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    let bytes = 0;
    for await (const chunk of res.Body as Readable) bytes += (chunk as Buffer).length;
    const t2 = performance.now();
    if (bytes !== blob.size) throw new Error(`GetObject ${key} returned ${bytes} bytes, expected ${blob.size}`);
    return { putMiBPerS: blob.size / MiB / ((t1 - t0) / 1000), getMiBPerS: blob.size / MiB / ((t2 - t1) / 1000) };
  } finally {
    client.destroy();
  }
}

async function runServer(): Promise<void> {
  const { startS3Server } = await import('../test/helpers/s3.js');
  const s3 = await startS3Server();
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    s3.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
  const info: S3rverEndpoint = { endpoint: s3.endpoint, bucket: s3.bucket, accessKey: s3.accessKey, secretKey: s3.secretKey };
  process.stdout.write(`${JSON.stringify(info)}\n`);
}

if (process.argv[1] === SCRIPT) {
  runServer().catch((err: unknown) => {
    process.stderr.write(`s3rver failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
