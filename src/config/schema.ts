// The one JSON Schema for zot's configuration file (ajv 8, draft-07 keywords).
//
// Every object is closed (`additionalProperties: false`): a misspelt key is an error, as in
// zot, which unmarshals with UnmarshalExact. Maps keyed by user data (subPaths, repository
// globs, groups) use `additionalProperties` as the schema of their values instead.
// Defaults listed here are applied by ajv (`useDefaults`); they follow zot's own defaults.
// Cross-field rules that a schema cannot express well live in semantic.ts.
//
// `x-message` is an annotation read by problems.ts: when a value fails any check of the
// schema object that carries it, this one sentence replaces ajv's per-keyword messages.

import type { SchemaObject } from 'ajv';

export const DURATION_MESSAGE = 'must be a duration such as 1h, 30m or 10s';
export const VERSION_MESSAGE = 'must be a version such as 1.1.0';

const string = { type: 'string' };
const boolean = { type: 'boolean' };
const stringList = { type: 'array', items: string };
const ref = (name: string) => ({ $ref: `#/$defs/${name}` });

export const configSchema: SchemaObject = {
  $id: 'https://zotregistry.dev/zot-ts/config.schema.json',
  type: 'object',
  additionalProperties: false,
  required: ['http', 'storage'],
  properties: {
    distSpecVersion: { type: 'string', format: 'semver', 'x-message': VERSION_MESSAGE },
    http: ref('http'),
    storage: ref('storage'),
    log: {
      type: 'object',
      additionalProperties: false,
      // Present even when the file has no `log` section, so log.level always has a value.
      default: {},
      properties: {
        level: { enum: ['debug', 'info', 'warn', 'error'], default: 'info' },
        output: string,
        audit: string,
      },
    },
    // The seed document's forms, from before zot moved them under `extensions`/`http`.
    metrics: ref('metrics'),
    sync: ref('sync'),
    accessControl: ref('accessControl'),
    extensions: {
      type: 'object',
      additionalProperties: false,
      properties: {
        sync: ref('sync'),
        metrics: ref('metrics'),
        scrub: {
          type: 'object',
          additionalProperties: false,
          properties: {
            // zot turns an extension on when its section is present and `enable` is unset.
            enable: { type: 'boolean', default: true },
            interval: ref('duration'),
          },
        },
      },
    },
  },
  $defs: {
    duration: { type: 'string', format: 'duration', 'x-message': DURATION_MESSAGE },

    http: {
      type: 'object',
      additionalProperties: false,
      required: ['address', 'port'],
      properties: {
        address: string,
        // zot's port is a string; a number is accepted and turned into one (normalize.ts).
        port: { type: ['string', 'integer'] },
        realm: string,
        ReadOnly: boolean,
        tls: {
          type: 'object',
          additionalProperties: false,
          properties: { cert: string, key: string, cacert: string },
        },
        auth: ref('auth'),
        accessControl: ref('accessControl'),
      },
    },

    auth: {
      type: 'object',
      additionalProperties: false,
      properties: {
        htpasswd: {
          type: 'object',
          additionalProperties: false,
          required: ['path'],
          properties: { path: string },
        },
        ldap: {
          type: 'object',
          additionalProperties: false,
          required: ['address', 'baseDN', 'userAttribute'],
          properties: {
            address: string,
            port: { type: 'integer', minimum: 1, maximum: 65535 },
            startTLS: boolean,
            baseDN: string,
            userAttribute: string,
            userGroupAttribute: string,
            bindDN: string,
            bindPassword: string,
            credentialsFile: string,
            skipVerify: boolean,
            subtreeSearch: boolean,
          },
        },
        bearer: {
          type: 'object',
          additionalProperties: false,
          required: ['realm', 'service', 'cert'],
          properties: { realm: string, service: string, cert: string },
        },
        // Seconds to wait before answering a failed authentication.
        failDelay: { type: 'integer', minimum: 0 },
      },
    },

    action: { enum: ['read', 'create', 'update', 'delete'] },
    actions: { type: 'array', items: ref('action') },
    policy: {
      type: 'object',
      additionalProperties: false,
      required: ['actions'],
      properties: { users: stringList, groups: stringList, actions: ref('actions') },
    },
    repositoryPolicy: {
      type: 'object',
      additionalProperties: false,
      properties: {
        policies: { type: 'array', items: ref('policy') },
        defaultPolicy: ref('actions'),
        anonymousPolicy: ref('actions'),
      },
    },
    // Two forms share this object: the seed's, where every key other than the three below is
    // a repository glob, and the newer one, where the globs sit under `repositories`.
    accessControl: {
      type: 'object',
      properties: {
        repositories: { type: 'object', additionalProperties: ref('repositoryPolicy') },
        adminPolicy: ref('policy'),
        groups: {
          type: 'object',
          additionalProperties: {
            type: 'object',
            additionalProperties: false,
            required: ['users'],
            properties: { users: stringList },
          },
        },
      },
      additionalProperties: ref('repositoryPolicy'),
    },

    storage: {
      type: 'object',
      additionalProperties: false,
      required: ['rootDirectory'],
      properties: {
        rootDirectory: { type: 'string', minLength: 1 },
        // Left unset when absent: the server picks its own behaviour.
        dedupe: boolean,
        gc: boolean,
        gcDelay: { ...ref('duration'), default: '1h' },
        gcInterval: { ...ref('duration'), default: '1h' },
        storageDriver: ref('storageDriver'),
        subPaths: { type: 'object', additionalProperties: ref('subPath') },
      },
    },
    subPath: {
      type: 'object',
      additionalProperties: false,
      required: ['rootDirectory'],
      properties: {
        rootDirectory: { type: 'string', minLength: 1 },
        dedupe: boolean,
        gc: boolean,
        gcDelay: ref('duration'),
        gcInterval: ref('duration'),
        storageDriver: ref('storageDriver'),
      },
    },
    // Parameters of distribution's s3-aws driver, which zot hands the map to. zot lower-cases
    // keys on load, so `useDualStack` (zot's documentation) and `usedualstack` both reach it.
    storageDriver: {
      type: 'object',
      additionalProperties: false,
      required: ['name'],
      properties: {
        name: string,
        rootdirectory: string,
        region: string,
        regionendpoint: string,
        bucket: string,
        secure: boolean,
        skipverify: boolean,
        accesskey: string,
        secretkey: string,
        // S3 multipart parts other than the last must be 5 MiB at least; distribution refuses less.
        chunksize: { type: 'integer', minimum: 5 * 1024 * 1024 },
        multipartcopychunksize: { type: 'integer', minimum: 0 },
        multipartcopymaxconcurrency: { type: 'integer', minimum: 1 },
        multipartcopythresholdsize: { type: 'integer', minimum: 0 },
        storageclass: string,
        objectacl: string,
        useragent: string,
        encrypt: boolean,
        keyid: string,
        v4auth: boolean,
        forcepathstyle: boolean,
        useDualStack: boolean,
        usedualstack: boolean,
        usefipsendpoint: boolean,
        accelerate: boolean,
        loglevel: string,
      },
    },

    metrics: {
      type: 'object',
      additionalProperties: false,
      properties: {
        // The seed document writes "true" as a string; normalize.ts turns it into a boolean.
        enable: { enum: [true, false, 'true', 'false'], default: true, 'x-message': 'must be true or false' },
        prometheus: {
          type: 'object',
          additionalProperties: false,
          properties: { path: string },
        },
      },
    },

    sync: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enable: { type: 'boolean', default: true },
        credentialsFile: string,
        registries: { type: 'array', items: ref('syncRegistry') },
      },
    },
    syncRegistry: {
      type: 'object',
      additionalProperties: false,
      required: ['urls'],
      properties: {
        urls: stringList,
        onDemand: boolean,
        pollInterval: ref('duration'),
        tlsVerify: boolean,
        certDir: string,
        maxRetries: { type: 'integer', minimum: 0 },
        retryDelay: ref('duration'),
        onlySigned: boolean,
        content: { type: 'array', items: ref('syncContent') },
      },
    },
    syncContent: {
      type: 'object',
      additionalProperties: false,
      required: ['prefix'],
      properties: {
        prefix: string,
        tags: {
          type: 'object',
          additionalProperties: false,
          properties: { regex: string, excludeRegex: string, semver: boolean },
        },
        destination: string,
        stripPrefix: boolean,
        platforms: {
          type: 'array',
          items: { type: 'string', pattern: '^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$', 'x-message': 'must be os/architecture or os/architecture/variant, such as linux/arm64/v8' },
        },
      },
    },
  },
};
