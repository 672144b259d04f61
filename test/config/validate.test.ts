// validateConfig: one problem per bad configuration, with the exact path and message a user
// sees; several problems reported together; zot's defaults and loose forms normalised.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { validateConfig } from '../../src/config/load.js';
import { exampleTls } from './paths.js';
import { configWith, htpasswdAuth, type JsonObject } from './helpers.js';

const DURATION = 'must be a duration such as 1h, 30m or 10s';
const NEEDS_READ = 'must include read when it includes create, update or delete';
const NEEDS_AUTH =
  'needs an authentication method (http.auth htpasswd, ldap or bearer, or client certificates with http.tls.cacert) unless it only sets anonymousPolicy';

// htpasswd files for the file cases: one with an entry that is not bcrypt (an Apache MD5 hash).
const fixtures = mkdtempSync(join(tmpdir(), 'zot-ts-validate-'));
process.on('exit', () => rmSync(fixtures, { recursive: true, force: true }));
const md5Htpasswd = join(fixtures, 'htpasswd-md5');
const BCRYPT = '$2b$10$KNdGHxqcojP5njzVTagZp.K1XJiUxnwfIxr6GGLczjQuOfvvd0uJ6';
writeFileSync(md5Htpasswd, `alice:${BCRYPT}\nbob:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n`);

const syncWith = (registry: JsonObject): JsonObject => ({ extensions: { sync: { registries: [registry] } } });

const badConfigs: { name: string; config: unknown; problem: string }[] = [
  // unknown keys, at several depths
  { name: 'unknown top-level key', config: configWith({ search: {} }), problem: 'search: unknown key' },
  { name: 'misspelt storage key', config: configWith({ storage: { dedup: true } }), problem: 'storage.dedup: unknown key, did you mean dedupe?' },
  {
    name: 'abbreviated key',
    config: configWith({ storage: { rootDir: '/tmp/a' } }),
    problem: 'storage.rootDir: unknown key, did you mean rootDirectory?',
  },
  {
    name: 'unknown tls key',
    config: configWith({ http: { tls: { cert: exampleTls.cert, key: exampleTls.key, ca: 'x' } } }),
    problem: 'http.tls.ca: unknown key',
  },
  {
    name: 'unknown key deep in sync content',
    config: configWith(syncWith({ urls: ['https://r'], content: [{ prefix: '/a', tags: { regexp: '.*' } }] })),
    problem: 'extensions.sync.registries.0.content.0.tags.regexp: unknown key, did you mean regex?',
  },
  {
    name: 'unknown extension',
    config: configWith({ extensions: { serach: { enable: true } } }),
    problem: 'extensions.serach: unknown key, did you mean search?',
  },
  { name: 'unknown key far from any known one', config: configWith({ log: { colour: true } }), problem: 'log.colour: unknown key' },
  {
    name: 'unknown s3 parameter',
    config: configWith({ storage: { storageDriver: { name: 's3', bucket: 'b', region: 'r', bukket: 'x' } } }),
    problem: 'storage.storageDriver.bukket: unknown key, did you mean bucket?',
  },
  {
    name: 'unknown key in a seed-form repository policy',
    config: configWith({ http: { auth: htpasswdAuth }, accessControl: { '**': { defaultPolicy: ['read'], users: [] } } }),
    problem: 'accessControl.**.users: unknown key',
  },
  // required keys
  {
    name: 'missing storage root',
    config: configWith({ storage: { rootDirectory: undefined } }),
    problem: 'storage.rootDirectory: required',
  },
  { name: 'empty storage root', config: configWith({ storage: { rootDirectory: '' } }), problem: 'storage.rootDirectory: must not be empty' },
  {
    name: 'missing subPath rootDirectory',
    config: configWith({ storage: { subPaths: { '/a': { dedupe: true } } } }),
    problem: 'storage.subPaths./a.rootDirectory: required',
  },
  {
    name: 'ldap without baseDN',
    config: configWith({ http: { auth: { ldap: { address: 'ldap.example.org', userAttribute: 'uid' } } } }),
    problem: 'http.auth.ldap.baseDN: required',
  },
  {
    name: 'sync registry without urls',
    config: configWith(syncWith({ onDemand: true })),
    problem: 'extensions.sync.registries.0.urls: required',
  },
  // wrong values
  { name: 'not an object', config: ['http'], problem: '(root): must be an object' },
  { name: 'bad log level', config: configWith({ log: { level: 'trace' } }), problem: 'log.level: must be one of debug, info, warn, error' },
  { name: 'bad duration', config: configWith({ storage: { gcDelay: '1 hour' } }), problem: `storage.gcDelay: ${DURATION}` },
  { name: 'day is no Go unit', config: configWith({ storage: { gcInterval: '1d' } }), problem: `storage.gcInterval: ${DURATION}` },
  { name: 'duration as a number', config: configWith({ storage: { gcDelay: 3600 } }), problem: `storage.gcDelay: ${DURATION}` },
  {
    name: 'bad subPath duration',
    config: configWith({ storage: { subPaths: { '/a': { rootDirectory: '/tmp/a', gcInterval: '-1h' } } } }),
    problem: `storage.subPaths./a.gcInterval: ${DURATION}`,
  },
  { name: 'bad port type', config: configWith({ http: { port: true } }), problem: 'http.port: must be a string or integer' },
  { name: 'port out of range', config: configWith({ http: { port: '70000' } }), problem: 'http.port: must be a port number from 0 to 65535' },
  { name: 'port not a number', config: configWith({ http: { port: 'http' } }), problem: 'http.port: must be a port number from 0 to 65535' },
  { name: 'ReadOnly as a string', config: configWith({ http: { ReadOnly: 'yes' } }), problem: 'http.ReadOnly: must be a boolean' },
  {
    name: 'an S3 part size under 5 MiB',
    config: configWith({ storage: { storageDriver: { name: 's3', bucket: 'b', region: 'r', chunksize: 1000 } } }),
    problem: 'storage.storageDriver.chunksize: must be at least 5242880',
  },
  { name: 'bad metrics enable', config: configWith({ metrics: { enable: 'yes' } }), problem: 'metrics.enable: must be true or false' },
  { name: 'bad distSpecVersion', config: configWith({ distSpecVersion: 'v1' }), problem: 'distSpecVersion: must be a version such as 1.1.0' },
  {
    name: 'unknown action',
    config: configWith({ http: { auth: htpasswdAuth, accessControl: { repositories: { '**': { defaultPolicy: ['write'] } } } } }),
    problem: 'http.accessControl.repositories.**.defaultPolicy.0: must be one of read, create, update, delete',
  },
  { name: 'negative failDelay', config: configWith({ http: { auth: { ...htpasswdAuth, failDelay: -1 } } }), problem: 'http.auth.failDelay: must be at least 0' },
  // retention rules, on the default root and on subPaths
  {
    name: 'retention repository glob with an unclosed class',
    config: configWith({ storage: { retention: { policies: [{ repositories: ['**', 'infra/[ab'] }] } } }),
    problem: 'storage.retention.policies.0.repositories.1: must be a valid repository glob (has a [ at position 7 with no closing ])',
  },
  {
    name: 'retention repository glob with an unclosed alternative, on a subPath',
    config: configWith({ storage: { subPaths: { '/a': { rootDirectory: '/tmp/a', retention: { policies: [{ repositories: ['a/{x,y'] }] } } } } }),
    problem: 'storage.subPaths./a.retention.policies.0.repositories.0: must be a valid repository glob (has a { with no closing })',
  },
  {
    name: 'retention tag pattern that is no regular expression',
    config: configWith({ storage: { retention: { policies: [{ repositories: ['**'], keepTags: [{ patterns: ['.*'] }, { patterns: ['v1', 'v2.('] }] }] } } }),
    problem: 'storage.retention.policies.0.keepTags.1.patterns.1: must be a valid regular expression (Unterminated group)',
  },
  {
    name: 'retention tag pattern with a Go flag JavaScript lacks',
    config: configWith({ storage: { retention: { policies: [{ repositories: ['**'], keepTags: [{ patterns: ['(?U)v.*'] }] }] } } }),
    problem: 'storage.retention.policies.0.keepTags.0.patterns.0: must be a valid regular expression (flag U is not supported (i, m and s are))',
  },
  {
    name: 'retention delay that is no duration',
    config: configWith({ storage: { retention: { delay: '1 day' } } }),
    problem: `storage.retention.delay: ${DURATION}`,
  },
  {
    name: 'retention pulledWithin that is no duration',
    config: configWith({ storage: { retention: { policies: [{ repositories: ['**'], keepTags: [{ pulledWithin: '7d' }] }] } } }),
    problem: `storage.retention.policies.0.keepTags.0.pulledWithin: ${DURATION}`,
  },
  {
    name: 'retention keepUntagged with a negative count, on a subPath',
    config: configWith({ storage: { subPaths: { '/a': { rootDirectory: '/tmp/a', retention: { policies: [{ repositories: ['a/**'], keepUntagged: { mostRecentlyPushedCount: -1 } }] } } } } }),
    problem: 'storage.subPaths./a.retention.policies.0.keepUntagged.mostRecentlyPushedCount: must be at least 0',
  },
  {
    name: 'unknown keepUntagged rule',
    config: configWith({ storage: { retention: { policies: [{ repositories: ['**'], keepUntagged: { patterns: ['v1'] } }] } } }),
    problem: 'storage.retention.policies.0.keepUntagged.patterns: unknown key',
  },
  // sync rules
  {
    name: 'bad tag regex',
    config: configWith(syncWith({ urls: ['https://r'], content: [{ prefix: '/a', tags: { regex: '4.(' } }] })),
    problem: 'extensions.sync.registries.0.content.0.tags.regex: must be a valid regular expression (Unterminated group)',
  },
  {
    name: 'bad tag exclusion regex',
    config: configWith(syncWith({ urls: ['https://r'], content: [{ prefix: '/a', tags: { excludeRegex: '(' } }] })),
    problem: 'extensions.sync.registries.0.content.0.tags.excludeRegex: must be a valid regular expression (Unterminated group)',
  },
  {
    name: 'bad tag excludeRegex',
    config: configWith(syncWith({ urls: ['https://r'], content: [{ prefix: '/a', tags: { excludeRegex: '*rc' } }] })),
    problem: 'extensions.sync.registries.0.content.0.tags.excludeRegex: must be a valid regular expression (Nothing to repeat)',
  },
  {
    name: 'sync platform that is not os/architecture',
    config: configWith(syncWith({ urls: ['https://r'], content: [{ prefix: '/a', platforms: ['linux/amd64', 'amd64'] }] })),
    problem: 'extensions.sync.registries.0.content.0.platforms.1: must be os/architecture or os/architecture/variant, such as linux/arm64/v8',
  },
  {
    name: 'maxRetries without retryDelay',
    config: configWith(syncWith({ urls: ['https://r'], maxRetries: 3 })),
    problem: 'extensions.sync.registries.0.retryDelay: required when maxRetries is set',
  },
  {
    name: 'sync url that is not http',
    config: configWith(syncWith({ urls: ['https://r', 'ftp://registry'] })),
    problem: 'extensions.sync.registries.0.urls.1: must be an http or https URL',
  },
  {
    name: 'sync url that is no url',
    config: configWith({ sync: { registries: [{ urls: ['registry:5000/x'] }] } }),
    problem: 'sync.registries.0.urls.0: must be an http or https URL',
  },
  { name: 'sync without urls', config: configWith(syncWith({ urls: [] })), problem: 'extensions.sync.registries.0.urls: must list at least one registry URL' },
  {
    name: 'stripPrefix into / without a glob',
    config: configWith(syncWith({ urls: ['https://r'], content: [{ prefix: '/a', destination: '/', stripPrefix: true }] })),
    problem: 'extensions.sync.registries.0.content.0.stripPrefix: needs a glob prefix such as /repo/** when destination is /',
  },
  {
    name: 'both sync forms',
    config: configWith({ sync: { registries: [] }, extensions: { sync: { registries: [] } } }),
    problem: 'sync: cannot be set together with extensions.sync; keep one of them',
  },
  {
    name: 'both metrics forms',
    config: configWith({ metrics: { enable: true }, extensions: { metrics: { enable: true } } }),
    problem: 'metrics: cannot be set together with extensions.metrics; keep one of them',
  },
  // access control: create/update/delete without read, in each place a policy can be
  {
    name: 'defaultPolicy without read',
    config: configWith({ http: { auth: htpasswdAuth, accessControl: { repositories: { '**': { defaultPolicy: ['create'] } } } } }),
    problem: `http.accessControl.repositories.**.defaultPolicy: ${NEEDS_READ}`,
  },
  {
    name: 'anonymousPolicy without read',
    config: configWith({ http: { auth: htpasswdAuth }, accessControl: { 'tmp/**': { anonymousPolicy: ['update'] } } }),
    problem: `accessControl.tmp/**.anonymousPolicy: ${NEEDS_READ}`,
  },
  {
    name: 'user policy without read',
    config: configWith({
      http: {
        auth: htpasswdAuth,
        accessControl: { 'infra/*': { policies: [{ users: ['a'], actions: ['read'] }, { users: ['b'], actions: ['create', 'delete'] }] } },
      },
    }),
    problem: `http.accessControl.infra/*.policies.1.actions: ${NEEDS_READ}`,
  },
  {
    name: 'adminPolicy without read',
    config: configWith({ http: { auth: htpasswdAuth, accessControl: { adminPolicy: { users: ['admin'], actions: ['delete'] } } } }),
    problem: `http.accessControl.adminPolicy.actions: ${NEEDS_READ}`,
  },
  {
    name: 'access control without authentication',
    config: configWith({ http: { accessControl: { repositories: { '**': { defaultPolicy: ['read'] } } } } }),
    problem: `http.accessControl: ${NEEDS_AUTH}`,
  },
  {
    name: 'metrics users without authentication',
    config: configWith({ http: { accessControl: { repositories: { '**': { anonymousPolicy: ['read'] } }, metrics: { users: ['ops'] } } } }),
    problem: `http.accessControl: ${NEEDS_AUTH}`,
  },
  {
    name: 'unknown key in accessControl.metrics',
    config: configWith({ http: { auth: htpasswdAuth, accessControl: { metrics: { users: ['ops'], groups: ['ops'] } } } }),
    problem: 'http.accessControl.metrics.groups: unknown key',
  },
  {
    name: 'unknown action in a user policy',
    config: configWith({ http: { auth: htpasswdAuth, accessControl: { repositories: { 'a/*': { policies: [{ users: ['u'], actions: ['read', 'push'] }] } } } } }),
    problem: 'http.accessControl.repositories.a/*.policies.0.actions.1: must be one of read, create, update, delete',
  },
  {
    name: 'unclosed character class in a seed-form glob',
    config: configWith({ http: { auth: htpasswdAuth }, accessControl: { 'infra/[ab': { defaultPolicy: ['read'] } } }),
    problem: 'accessControl.infra/[ab: is not a valid repository glob: it has a [ at position 7 with no closing ]',
  },
  {
    name: 'unclosed brace in a repositories glob',
    config: configWith({ http: { auth: htpasswdAuth, accessControl: { repositories: { '{a,b/**': { defaultPolicy: ['read'] } } } } }),
    problem: 'http.accessControl.repositories.{a,b/**: is not a valid repository glob: it has a { with no closing }',
  },
  {
    name: 'glob with a leading slash',
    config: configWith({ http: { auth: htpasswdAuth, accessControl: { repositories: { '/infra/**': { defaultPolicy: ['read'] } } } } }),
    problem: 'http.accessControl.repositories./infra/**: is not a valid repository glob: it starts with /, which no repository name does',
  },
  {
    name: 'glob with an empty segment',
    config: configWith({ http: { auth: htpasswdAuth }, accessControl: { 'a//b': { defaultPolicy: ['read'] } } }),
    problem: 'accessControl.a//b: is not a valid repository glob: it has an empty path segment (//)',
  },
  {
    name: 'glob ending in an escape',
    config: configWith({ http: { auth: htpasswdAuth }, accessControl: { 'a\\': { defaultPolicy: ['read'] } } }),
    problem: 'accessControl.a\\: is not a valid repository glob: it ends with an escape character (\\)',
  },
  {
    name: 'both forms of repository globs in one section',
    config: configWith({
      http: { auth: htpasswdAuth, accessControl: { repositories: { '**': { defaultPolicy: ['read'] } }, 'infra/*': { defaultPolicy: ['read'] } } },
    }),
    problem: 'http.accessControl.repositories: cannot be used with repository globs directly under http.accessControl (infra/*); keep one form',
  },
  // authentication files
  {
    name: 'missing htpasswd file',
    config: configWith({ http: { auth: { htpasswd: { path: '/nonexistent/zot-ts/htpasswd' } } } }),
    problem: 'http.auth.htpasswd.path: no such file: /nonexistent/zot-ts/htpasswd',
  },
  {
    name: 'htpasswd path that is a directory',
    config: configWith({ http: { auth: { htpasswd: { path: fixtures } } } }),
    problem: `http.auth.htpasswd.path: is not a file: ${fixtures}`,
  },
  {
    name: 'htpasswd entry that is not bcrypt',
    config: configWith({ http: { auth: { htpasswd: { path: md5Htpasswd } } } }),
    problem: `http.auth.htpasswd.path: ${md5Htpasswd}: line 2: the entry of user "bob" is not a bcrypt hash (only bcrypt entries are accepted: htpasswd -B)`,
  },
  {
    name: 'both access-control forms',
    config: configWith({
      http: { auth: htpasswdAuth, accessControl: { '**': { defaultPolicy: ['read'] } } },
      accessControl: { '**': { defaultPolicy: ['read'] } },
    }),
    problem: 'accessControl: cannot be set together with http.accessControl; keep one of them',
  },
  // tls
  { name: 'tls key without cert', config: configWith({ http: { tls: { key: exampleTls.key } } }), problem: 'http.tls.cert: required when key is set' },
  { name: 'tls cert without key', config: configWith({ http: { tls: { cert: exampleTls.cert } } }), problem: 'http.tls.key: required when cert is set' },
  { name: 'tls cacert alone', config: configWith({ http: { tls: { cacert: exampleTls.cacert } } }), problem: 'http.tls.cacert: needs cert and key to be set as well' },
  // storage
  {
    name: 's3 without bucket',
    config: configWith({ storage: { storageDriver: { name: 's3', region: 'us-east-2' } } }),
    problem: 'storage.storageDriver.bucket: required by the s3 driver',
  },
  {
    name: 's3 without region or endpoint',
    config: configWith({ storage: { storageDriver: { name: 's3', bucket: 'zot' } } }),
    problem: 'storage.storageDriver.region: required by the s3 driver unless regionendpoint is set',
  },
  {
    name: 'subPath s3 without bucket',
    config: configWith({ storage: { subPaths: { '/a': { rootDirectory: '/tmp/a', storageDriver: { name: 's3', region: 'r' } } } } }),
    problem: 'storage.subPaths./a.storageDriver.bucket: required by the s3 driver',
  },
  {
    name: 'unknown storage driver',
    config: configWith({ storage: { storageDriver: { name: 'ftp' } } }),
    problem: 'storage.storageDriver.name: unknown storage driver "ftp"; zot\'s drivers besides the filesystem are s3, gcs and azure',
  },
  {
    name: 'subPath key without a slash',
    config: configWith({ storage: { subPaths: { a: { rootDirectory: '/tmp/a' } } } }),
    problem: 'storage.subPaths.a: must start with / and name a path below it, such as /a',
  },
  {
    name: 'subPath key that is /',
    config: configWith({ storage: { subPaths: { '/': { rootDirectory: '/tmp/a' } } } }),
    problem: 'storage.subPaths./: must start with / and name a path below it, such as /a',
  },
  {
    name: 'subPath in the main root directory',
    config: configWith({ storage: { subPaths: { '/a': { rootDirectory: '/tmp/zot/' } } } }),
    problem: 'storage.subPaths./a.rootDirectory: must differ from storage.rootDirectory',
  },
  {
    name: 'subPaths sharing a directory with different settings',
    config: configWith({
      storage: { subPaths: { '/a': { rootDirectory: '/tmp/a', gc: true }, '/b': { rootDirectory: '/tmp/a', gc: false } } },
    }),
    problem: 'storage.subPaths./b.rootDirectory: is shared with subPath /a, so dedupe, gc, gcDelay and gcInterval must match it',
  },
  // zot's newer http options and the events extension
  {
    name: 'externalUrl that is not an absolute http URL',
    config: configWith({ http: { externalUrl: 'registry.example.com' } }),
    problem: 'http.externalUrl: must be an absolute http or https URL, such as https://registry.example.com',
  },
  {
    name: 'a negative rate',
    config: configWith({ http: { ratelimit: { rate: -1 } } }),
    problem: 'http.ratelimit.rate: must be at least 0',
  },
  {
    name: 'a per-method rate without its method',
    config: configWith({ http: { ratelimit: { methods: [{ rate: 5 }] } } }),
    problem: 'http.ratelimit.methods.0.method: required',
  },
  { name: 'a read timeout that is no duration', config: configWith({ http: { readTimeout: '30' } }), problem: `http.readTimeout: ${DURATION}` },
  { name: 'a negative maxRepos', config: configWith({ storage: { maxRepos: -1 } }), problem: 'storage.maxRepos: must be at least 0' },
  {
    name: 'a nats sink without a channel',
    config: configWith({ extensions: { events: { sinks: [{ type: 'nats', address: 'nats://127.0.0.1:4222' }] } } }),
    problem: 'extensions.events.sinks.0.channel: required for a nats sink: the subject events are published on',
  },
  {
    name: 'an http sink whose address is no URL',
    config: configWith({ extensions: { events: { sinks: [{ type: 'http', address: '127.0.0.1:9000' }] } } }),
    problem: 'extensions.events.sinks.0.address: must be an http or https URL for an http sink',
  },
];

describe('validateConfig rejects', () => {
  for (const { name, config, problem } of badConfigs) {
    it(name, () => {
      const result = validateConfig(config);
      assert.deepEqual(result.problems, [problem]);
      assert.equal(result.config, undefined);
    });
  }
});

describe('validateConfig', () => {
  it('reports every problem at once, sorted by path', () => {
    const result = validateConfig(
      configWith({
        http: { port: true, tls: { key: exampleTls.key }, accessControl: { '**': { defaultPolicy: ['create'] } } },
        storage: { dedup: true, gcDelay: 'soon', subPaths: { '/a': {} } },
        log: { level: 'verbose' },
        extensions: { sync: { registries: [{ urls: ['https://r'], maxRetries: 1, content: [{ prefix: '/a', tags: { regex: '[' } }] }] } },
      }),
    );
    assert.deepEqual(result.problems, [
      'extensions.sync.registries.0.content.0.tags.regex: must be a valid regular expression (Unterminated character class)',
      'extensions.sync.registries.0.retryDelay: required when maxRetries is set',
      `http.accessControl: ${NEEDS_AUTH}`,
      `http.accessControl.**.defaultPolicy: ${NEEDS_READ}`,
      'http.port: must be a string or integer',
      'http.tls.cert: required when key is set',
      'log.level: must be one of debug, info, warn, error',
      'storage.dedup: unknown key, did you mean dedupe?',
      `storage.gcDelay: ${DURATION}`,
      'storage.subPaths./a.rootDirectory: required',
    ]);
  });

  it('reports a repeated problem once', () => {
    const result = validateConfig(configWith({ storage: { gcDelay: 7 } }));
    assert.deepEqual(result.problems, [`storage.gcDelay: ${DURATION}`]);
  });

  it('applies zot defaults: dedupe and gc on, each hourly, on loopback port 8080', () => {
    const { config, problems } = validateConfig({ storage: { rootDirectory: '/tmp/zot' } });
    assert.deepEqual(problems, []);
    assert.equal(config?.http.address, '127.0.0.1');
    assert.equal(config?.http.port, '8080');
    assert.equal(config?.log?.level, 'info');
    assert.equal(config?.storage.gcDelay, '1h');
    assert.equal(config?.storage.gcInterval, '1h');
    assert.equal(config?.storage.dedupe, true);
    assert.equal(config?.storage.gc, true);
    const partial = validateConfig(configWith({ http: { address: '0.0.0.0', port: undefined } }));
    assert.deepEqual([partial.config?.http.address, partial.config?.http.port], ['0.0.0.0', '8080']);
  });

  it('compares subPaths sharing a directory with zot\'s subPath defaults applied (dedupe and gc off)', () => {
    const shared = (a: JsonObject, b: JsonObject) =>
      validateConfig(configWith({ storage: { subPaths: { '/a': { rootDirectory: '/tmp/s', ...a }, '/b': { rootDirectory: '/tmp/s', ...b } } } })).problems;
    assert.deepEqual(shared({ gc: false, dedupe: false, gcDelay: '1h' }, {}), []);
    assert.deepEqual(shared({ dedupe: true }, {}), [
      'storage.subPaths./b.rootDirectory: is shared with subPath /a, so dedupe, gc, gcDelay and gcInterval must match it',
    ]);
  });

  it('keeps values the file sets over defaults', () => {
    const { config } = validateConfig(configWith({ log: { output: '/tmp/zot.log' }, storage: { gcDelay: '1h30m', gcInterval: '10s' } }));
    assert.deepEqual(config?.log, { level: 'info', output: '/tmp/zot.log' });
    assert.equal(config?.storage.gcDelay, '1h30m');
    assert.equal(config?.storage.gcInterval, '10s');
  });

  it('turns an extension on when its section is present, as zot does', () => {
    const { config } = validateConfig(configWith({ extensions: { sync: {}, metrics: {}, scrub: { interval: '24h' } } }));
    assert.equal(config?.extensions?.sync?.enable, true);
    assert.equal(config?.extensions?.metrics?.enable, true);
    assert.equal(config?.extensions?.scrub?.enable, true);
  });

  it('normalises the seed\'s "enable": "true" to a boolean', () => {
    assert.equal(validateConfig(configWith({ metrics: { enable: 'true' } })).config?.metrics?.enable, true);
    assert.equal(validateConfig(configWith({ metrics: { enable: 'false' } })).config?.metrics?.enable, false);
    const nested = validateConfig(configWith({ extensions: { metrics: { enable: 'true', prometheus: { path: '/metrics' } } } }));
    assert.equal(nested.config?.extensions?.metrics?.enable, true);
  });

  it('normalises a numeric port to a string', () => {
    assert.equal(validateConfig(configWith({ http: { port: 5000 } })).config?.http.port, '5000');
    assert.deepEqual(validateConfig(configWith({ http: { port: 50.5 } })).problems, ['http.port: must be a string or integer']);
  });

  it('leaves the caller\'s object as it was', () => {
    const raw = configWith({ http: { port: 5000 } });
    const before = JSON.stringify(raw);
    validateConfig(raw);
    assert.equal(JSON.stringify(raw), before);
  });

  it('accepts the Go duration forms zot documents', () => {
    for (const duration of ['1h', '30m', '10s', '1h30m', '1.5h', '250ms', '0']) {
      assert.deepEqual(validateConfig(configWith({ storage: { gcDelay: duration } })).problems, [], duration);
    }
  });

  it('accepts access control whose identities come from client certificates, OpenID or API keys, as zot does', () => {
    const policies = { repositories: { '**': { policies: [{ users: ['ci'], actions: ['read', 'create'] }] } } };
    for (const http of [
      { tls: { cert: 'c', key: 'k', cacert: 'ca' } },
      { auth: { openid: { providers: { oidc: { issuer: 'https://sso' } } } } },
      { auth: { apikey: true } },
    ] as JsonObject[]) {
      assert.deepEqual(validateConfig(configWith({ http: { ...http, accessControl: policies } }), { checkFiles: false }).problems, [], JSON.stringify(http));
    }
  });

  it('accepts access control that only grants anonymous access without authentication', () => {
    const result = validateConfig(configWith({ http: { accessControl: { repositories: { '**': { anonymousPolicy: ['read'] } } } } }));
    assert.deepEqual(result.problems, []);
  });

  it('accepts users, groups and metrics users when client certificates are the authentication', () => {
    const result = validateConfig(
      configWith({
        http: {
          tls: { ...exampleTls },
          accessControl: { repositories: { 'team/**': { policies: [{ users: ['build-bot'], actions: ['read', 'create'] }] } }, metrics: { users: ['prometheus'] } },
        },
      }),
    );
    assert.deepEqual(result.problems, []);
  });

  it('accepts the globs zot documents and its pattern syntax', () => {
    const globs = ['**', '*', 'tmp/**', 'infra/*', 'repos2/repo', '**/cache', 'a/**/b', '{dev,test}/**', 'team-[0-9]*/app', 'a?c', 'x\\*y'];
    const repositories = Object.fromEntries(globs.map((glob) => [glob, { defaultPolicy: ['read'] }]));
    const result = validateConfig(configWith({ http: { auth: htpasswdAuth, accessControl: { repositories } } }));
    assert.deepEqual(result.problems, []);
  });

  it('accepts policies that refer to groups', () => {
    const result = validateConfig(
      configWith({
        http: {
          auth: htpasswdAuth,
          accessControl: {
            groups: { dev: { users: ['alice'] } },
            repositories: { '**': { policies: [{ groups: ['dev'], actions: ['read', 'create'] }] } },
          },
        },
      }),
    );
    assert.deepEqual(result.problems, []);
  });

  it('accepts an s3 driver with a custom endpoint and no region, and per-subPath drivers', () => {
    const result = validateConfig(
      configWith({
        storage: {
          storageDriver: { name: 's3', bucket: 'zot', regionendpoint: 'http://minio:9000', forcepathstyle: true, chunksize: 10485760 },
          subPaths: {
            '/b': {
              rootDirectory: '/tmp/b',
              gcDelay: '2h',
              gcInterval: '30m',
              storageDriver: { name: 's3', bucket: 'zot-b', region: 'eu-west-1', useDualStack: true, storageclass: 'STANDARD' },
            },
          },
        },
      }),
    );
    assert.deepEqual(result.problems, []);
  });

  it('accepts every retention setting of zot\'s, in any case, with Go\'s regexp flags and globs', () => {
    const { problems, config } = validateConfig(
      configWith({
        storage: {
          retention: {
            dryrun: true,
            delay: '24h',
            policies: [
              {
                repositories: ['infra/*', 'tmp/**', '{a,b}/[!x]?'],
                deletereferrers: true,
                deleteUntagged: false,
                keepTags: [{ patterns: ['(?i)^v2\\.', '(?P<major>\\d+)-prod'], mostRecentlyPulledCount: 3, pulledWithin: '720h' }, { pushedWithin: '1h30m', mostRecentlyPushedCount: 1 }],
                keepUntagged: { pulledWithin: '168h', pushedWithin: '24h', mostRecentlyPushedCount: 2, mostRecentlyPulledCount: 2 },
              },
            ],
          },
        },
      }),
    );
    assert.deepEqual(problems, []);
    assert.equal(config?.storage.retention?.dryRun, true);
    assert.equal(config?.storage.retention?.policies?.[0]?.deleteReferrers, true);
  });

  it('accepts the sync keys of zot\'s current configuration', () => {
    const result = validateConfig(
      configWith(
        {
          extensions: {
            sync: {
              downloadDir: '/tmp/sync',
              enableStreaming: true,
              registries: [
                {
                  urls: ['https://registry.example.com'],
                  retryDelay: '30s',
                  maxRetryDelay: '5m',
                  syncTimeout: '10m',
                  syncLegacyCosignTags: false,
                  preserveDigest: true,
                  platforms: ['linux/amd64', 'arm64'],
                  credentialHelper: 'oauth2',
                  oauth2CredentialHelper: { tokenURL: 'https://idp/token', signingFile: '/etc/signing.json', grantType: 'client_credentials', clientID: 'zot', scopes: ['pull'] },
                  content: [{ prefix: '/a/**', tags: { regex: '^v', excludeRegex: '-rc$' } }],
                },
              ],
            },
          },
        },
      ),
    );
    assert.deepEqual(result.problems, []);
  });

  it('accepts the top-level sync and metrics forms of the seed document', () => {
    const result = validateConfig(
      configWith({
        sync: { credentialsFile: './sync-auth.json', registries: [{ urls: ['https://docker.io/library'], onDemand: true, maxRetries: 3, retryDelay: '15m' }] },
        metrics: { enable: 'true', prometheus: { path: '/metrics' } },
      }),
    );
    assert.deepEqual(result.problems, []);
    assert.equal(result.config?.sync?.enable, true);
  });
});
