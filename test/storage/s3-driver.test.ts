// The S3 driver against the shared driver suite on s3rver (a real S3 API on loopback), plus what
// only it has: zot's configuration keys, the key prefix and the SDK's credential chain.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import type { StorageDriverConfig } from '../../src/config/types.js';
import { S3Driver, createS3Driver, s3ClientConfig } from '../../src/storage/s3.js';
import { startS3Server, type TestS3Server } from '../helpers/s3.js';
import { describeDriverSuite } from './driver-suite.js';

const MIB = 1024 * 1024;

describe('s3 driver', () => {
  let s3: TestS3Server;
  before(async () => {
    s3 = await startS3Server();
  });
  after(async () => {
    await s3.stop();
  });

  // Each driver gets a tree of its own in the one bucket; parts of 5 MiB, S3's smallest, so
  // that 12 MiB takes three.
  const makeS3Driver = async () => {
    const stagingDir = await fs.mkdtemp(path.join(os.tmpdir(), 'zot-ts-s3-staging-'));
    const driver = createS3Driver({ ...s3.driverConfig(`/zot-${randomUUID()}`), chunksize: 5 * MIB }) as S3Driver;
    return {
      driver,
      stagingDir,
      linksShareBytes: false,
      async cleanup() {
        driver.destroy();
        await fs.rm(stagingDir, { recursive: true, force: true });
      },
    };
  };

  describeDriverSuite('s3', makeS3Driver, { multipartBytes: 12 * MIB });

  describe('streamed writes', () => {
    it('stores the object only once its last byte is written, and nothing when aborted before', async () => {
      const driver = createS3Driver({ ...s3.driverConfig(`/streamed-${randomUUID()}`), chunksize: 5 * MIB }) as S3Driver;
      try {
        const data = Buffer.alloc(3 * MIB + 5, 7);
        const kept = driver.streamedWrite('kept', data.length);
        await kept.write(data.subarray(0, data.length - 1));
        assert.equal(await driver.stat('kept'), undefined, 'nothing before the last byte');
        await kept.end(data.subarray(data.length - 1));
        assert.ok((await driver.getContent('kept')).equals(data));

        const dropped = driver.streamedWrite('kept', data.length);
        await dropped.write(Buffer.alloc(data.length - 1, 9));
        dropped.abort();
        await dropped.end(Buffer.alloc(1)).catch(() => undefined);
        // An aborted write leaves what was there: S3 stores nothing from a request cut short.
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.ok((await driver.getContent('kept')).equals(data));
      } finally {
        driver.destroy();
      }
    });
  });

  describe('keys and configuration', () => {
    it('keeps every object under rootdirectory', async () => {
      const root = `tree-${randomUUID()}`;
      const inner = createS3Driver(s3.driverConfig(`/${root}/`)) as S3Driver;
      const outer = createS3Driver(s3.driverConfig()) as S3Driver;
      try {
        await inner.putContent('library/alpine/oci-layout', '{}');
        assert.equal((await outer.getContent(`${root}/library/alpine/oci-layout`)).toString(), '{}');
        assert.deepEqual(await inner.list(''), ['library']);
        assert.ok((await outer.list('')).includes(root));
        assert.equal((await inner.stat(''))?.isDirectory, true);
        await inner.delete('');
        assert.equal(await outer.stat(root), undefined);
      } finally {
        inner.destroy();
        outer.destroy();
      }
    });

    it('has no local path and no file identity', async () => {
      const driver = createS3Driver(s3.driverConfig(`/zot-${randomUUID()}`)) as S3Driver;
      try {
        assert.equal(driver.name, 's3');
        assert.equal(driver.localPath('a'), undefined);
        await driver.putContent('a', 'x');
        assert.equal((await driver.stat('a'))?.fileId, undefined);
      } finally {
        driver.destroy();
      }
    });

    it('refuses parts below 5 MiB and a config without a bucket', () => {
      assert.throws(() => createS3Driver({ ...s3.driverConfig(), chunksize: MIB }), /chunksize/);
      assert.throws(() => createS3Driver({ name: 's3', region: 'us-east-1' }), /bucket/);
    });

    it('maps zot keys onto the client', async () => {
      const plain = s3ClientConfig({ name: 's3', regionendpoint: 'minio:9000', secure: false, bucket: 'b' });
      assert.equal(plain.endpoint, 'http://minio:9000');
      assert.equal(plain.forcePathStyle, true);
      assert.equal(plain.region, 'us-east-1');
      assert.equal(plain.credentials, undefined);
      const secure = s3ClientConfig({ name: 's3', regionendpoint: 'minio:9000', bucket: 'b' });
      assert.equal(secure.endpoint, 'https://minio:9000');
      const aws = s3ClientConfig({ name: 's3', region: 'eu-west-1', bucket: 'b', accesskey: 'k', secretkey: 's', useragent: 'zot' });
      assert.equal(aws.endpoint, undefined);
      assert.equal(aws.forcePathStyle, false);
      assert.equal(aws.region, 'eu-west-1');
      assert.deepEqual(aws.credentials, { accessKeyId: 'k', secretAccessKey: 's' });
      assert.equal(aws.customUserAgent, 'zot');
      assert.equal(s3ClientConfig({ name: 's3', bucket: 'b', regionendpoint: 'http://h', forcepathstyle: false }).forcePathStyle, false);
    });

    it('uploads a large file in chunksize parts, two at a time', async () => {
      const client = new S3Client(s3ClientConfig(s3.driverConfig()));
      const sizes: number[] = [];
      let uploading = 0;
      let most = 0;
      client.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName !== 'UploadPartCommand') return next(args);
          sizes.push((args.input as { ContentLength: number }).ContentLength);
          most = Math.max(most, ++uploading);
          try {
            return await next(args);
          } finally {
            uploading--;
          }
        },
        { step: 'initialize', name: 'countParts' },
      );
      const driver = new S3Driver({ client, bucket: s3.bucket, prefix: `zot-${randomUUID()}`, chunkSize: 5 * MIB });
      const stagingDir = await fs.mkdtemp(path.join(os.tmpdir(), 'zot-ts-s3-staging-'));
      const local = path.join(stagingDir, 'upload');
      await fs.writeFile(local, Buffer.alloc(26 * MIB, 1));
      try {
        await driver.putFile(local, 'blob');
        assert.deepEqual(sizes, [5, 5, 5, 5, 5, 1].map((n) => n * MIB));
        assert.equal(most, 2);
        assert.equal((await driver.stat('blob'))?.size, 26 * MIB);
      } finally {
        driver.destroy();
        await fs.rm(stagingDir, { recursive: true, force: true });
      }
    });

    it('aborts a multipart upload whose part fails and keeps the local file', async () => {
      const config = { ...s3.driverConfig(), chunksize: 5 * MIB };
      const client = new S3Client(s3ClientConfig(config));
      const sent: string[] = [];
      // The fault is injected into a real client on its way to a real server: part 2 fails.
      client.middlewareStack.add(
        (next, context) => async (args) => {
          sent.push(context.commandName ?? '');
          if (context.commandName === 'UploadPartCommand' && (args.input as { PartNumber?: number }).PartNumber === 2) {
            throw new Error('injected part failure');
          }
          return next(args);
        },
        { step: 'initialize', name: 'injectPartFailure' },
      );
      const driver = new S3Driver({ client, bucket: s3.bucket, prefix: `zot-${randomUUID()}`, chunkSize: 5 * MIB });
      const stagingDir = await fs.mkdtemp(path.join(os.tmpdir(), 'zot-ts-s3-staging-'));
      const local = path.join(stagingDir, 'upload');
      await fs.writeFile(local, Buffer.alloc(16 * MIB, 7));
      try {
        await assert.rejects(driver.putFile(local, 'blob'), /injected part failure/);
        assert.equal(await driver.stat('blob'), undefined);
        await fs.access(local);
        assert.ok(sent.includes('CreateMultipartUploadCommand'));
        assert.ok(sent.includes('AbortMultipartUploadCommand'));
        assert.ok(!sent.includes('CompleteMultipartUploadCommand'));
      } finally {
        driver.destroy();
        await fs.rm(stagingDir, { recursive: true, force: true });
      }
    });
  });

  describe('endpoints', () => {
    let tls: TestS3Server;
    before(async () => {
      tls = await startS3Server({ tls: true });
    });
    after(async () => {
      await tls.stop();
    });

    async function roundTrip(config: StorageDriverConfig): Promise<void> {
      const driver = createS3Driver({ ...config, rootdirectory: `/endpoint-${randomUUID()}` }) as S3Driver;
      try {
        await driver.putContent('probe', 'ok');
        assert.equal((await driver.getContent('probe')).toString(), 'ok');
      } finally {
        driver.destroy();
      }
    }

    it('speaks plain HTTP to an endpoint without a scheme when secure is false', async () => {
      await roundTrip({ ...s3.driverConfig(), regionendpoint: new URL(s3.endpoint).host, secure: false });
    });

    it('speaks HTTPS to an endpoint without a scheme, verifying its certificate unless skipverify', async () => {
      const host = new URL(tls.endpoint).host;
      await roundTrip({ ...tls.driverConfig(), regionendpoint: host, skipverify: true });
      await assert.rejects(roundTrip({ ...tls.driverConfig(), regionendpoint: host }), /self[- ]signed|unable to verify/i);
    });
  });

  describe('credentials from the default chain', () => {
    const saved = new Map<string, string | undefined>();
    const variables = [
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_SESSION_TOKEN',
      'AWS_PROFILE',
      'AWS_SHARED_CREDENTIALS_FILE',
      'AWS_CONFIG_FILE',
      'AWS_EC2_METADATA_DISABLED',
    ];
    let dir: string;

    before(async () => {
      for (const name of variables) saved.set(name, process.env[name]);
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'zot-ts-aws-'));
    });
    after(async () => {
      for (const [name, value] of saved) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      await fs.rm(dir, { recursive: true, force: true });
    });

    /** Only the variables a test sets; no instance metadata lookups (they would leave loopback). */
    function environment(values: Record<string, string>): void {
      for (const name of variables) delete process.env[name];
      process.env.AWS_EC2_METADATA_DISABLED = 'true';
      process.env.AWS_CONFIG_FILE = path.join(dir, 'no-config');
      process.env.AWS_SHARED_CREDENTIALS_FILE = path.join(dir, 'no-credentials');
      Object.assign(process.env, values);
    }

    /** A driver config with no keys of its own. */
    function keyless(): StorageDriverConfig {
      const { accesskey: _a, secretkey: _s, ...config } = s3.driverConfig(`/creds-${randomUUID()}`);
      return config;
    }

    async function roundTrip(config: StorageDriverConfig): Promise<void> {
      const driver = createS3Driver(config) as S3Driver;
      try {
        await driver.putContent('probe', 'ok');
        assert.equal((await driver.getContent('probe')).toString(), 'ok');
      } finally {
        driver.destroy();
      }
    }

    it('takes AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY', async () => {
      environment({ AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey });
      await roundTrip(keyless());
      // s3rver checks the key id (not the V4 signature): a wrong one proves the variable is read.
      environment({ AWS_ACCESS_KEY_ID: 'NOT-A-KEY', AWS_SECRET_ACCESS_KEY: s3.secretKey });
      await assert.rejects(roundTrip(keyless()), { name: 'InvalidAccessKeyId' });
    });

    it('takes the profile AWS_PROFILE names in AWS_SHARED_CREDENTIALS_FILE', async () => {
      const file = path.join(dir, 'credentials');
      await fs.writeFile(
        file,
        `[default]\naws_access_key_id = NOT-A-KEY\naws_secret_access_key = x\n\n` +
          `[zot-test]\naws_access_key_id = ${s3.accessKey}\naws_secret_access_key = ${s3.secretKey}\n`,
      );
      environment({ AWS_PROFILE: 'zot-test', AWS_SHARED_CREDENTIALS_FILE: file });
      await roundTrip(keyless());
      environment({ AWS_PROFILE: 'default', AWS_SHARED_CREDENTIALS_FILE: file });
      await assert.rejects(roundTrip(keyless()), { name: 'InvalidAccessKeyId' });
    });

    it('prefers accesskey and secretkey from the config', async () => {
      environment({ AWS_ACCESS_KEY_ID: 'NOT-A-KEY', AWS_SECRET_ACCESS_KEY: 'x' });
      await roundTrip(s3.driverConfig(`/creds-${randomUUID()}`));
    });
  });
});
