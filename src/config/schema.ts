// The one JSON Schema for zot's configuration file (ajv 8, draft-07 keywords).
//
// Every object is closed (`additionalProperties: false`): a misspelt key is an error, as in
// zot, which unmarshals with UnmarshalExact. Keys match without regard to case, as in zot: keys.ts
// rewrites them to the spelling declared here before the schema sees them. Maps keyed by user data (subPaths, repository
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
const count = { type: 'integer', minimum: 0 };
const ref = (name: string) => ({ $ref: `#/$defs/${name}` });
/** A map of strings keyed by user data (HTTP headers, claim names). */
const stringMap = { type: 'object', additionalProperties: string };
/** An extension that only has an `enable` switch. */
const switchOnly = { type: 'object', additionalProperties: false, properties: { enable: boolean } };

/** The rules of a keepTags entry and of keepUntagged (zot's KeepTagsPolicy, KeepUntaggedPolicy). */
function keepRules(): Record<string, unknown> {
  return {
    pulledWithin: ref('duration'),
    pushedWithin: ref('duration'),
    mostRecentlyPushedCount: count,
    mostRecentlyPulledCount: count,
  };
}

/** Keys zot accepts on the default root and on every subPath alike, beside the GC settings. */
function storeProperties(): Record<string, unknown> {
  return {
    storageDriver: ref('storageDriver'),
    // zot's cache database for dedupe and metadata (dynamodb or redis), handed its parameters as they are.
    cacheDriver: { type: 'object' },
    remoteCache: boolean,
    commit: boolean,
    maxRepos: count,
    hydrateBlobOnRead: boolean,
    retention: ref('retention'),
  };
}

export const configSchema: SchemaObject = {
  $id: 'https://zotregistry.dev/zot-ts/config.schema.json',
  type: 'object',
  additionalProperties: false,
  required: ['storage'],
  properties: {
    distSpecVersion: { type: 'string', format: 'semver', 'x-message': VERSION_MESSAGE },
    // Present even when the file has no `http` section, so the listener has zot's defaults.
    http: { ...ref('http'), default: {} },
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
    extensions: ref('extensions'),
    scheduler: {
      type: 'object',
      additionalProperties: false,
      properties: { numWorkers: { type: 'integer', minimum: 1 } },
    },
    cluster: {
      type: 'object',
      additionalProperties: false,
      properties: { members: stringList, hashKey: string, tls: ref('tls') },
    },
  },
  $defs: {
    duration: { type: 'string', format: 'duration', 'x-message': DURATION_MESSAGE },

    http: {
      type: 'object',
      additionalProperties: false,
      properties: {
        // zot's defaults (config.New()): loopback, port 8080.
        address: { type: 'string', default: '127.0.0.1' },
        // zot's port is a string; a number is accepted and turned into one (normalize.ts).
        port: { type: ['string', 'integer'], default: '8080' },
        realm: string,
        ReadOnly: boolean,
        externalUrl: string,
        // Comma-separated origins, as zot reads them.
        allowOrigin: string,
        readTimeout: ref('duration'),
        writeTimeout: ref('duration'),
        compat: { type: 'array', items: { enum: ['docker2s2'] } },
        ratelimit: {
          type: 'object',
          additionalProperties: false,
          properties: {
            // Requests per second, overall and per HTTP method.
            rate: count,
            methods: {
              type: 'array',
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['method', 'rate'],
                properties: { method: string, rate: count },
              },
            },
          },
        },
        tls: ref('tls'),
        auth: ref('auth'),
        accessControl: ref('accessControl'),
      },
    },
    tls: {
      type: 'object',
      additionalProperties: false,
      properties: { cert: string, key: string, cacert: string },
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
            address: { type: 'string', minLength: 1 },
            port: { type: 'integer', minimum: 1, maximum: 65535 },
            insecure: boolean,
            startTLS: boolean,
            baseDN: { type: 'string', minLength: 1 },
            userAttribute: { type: 'string', minLength: 1 },
            userFilter: string,
            userGroupAttribute: string,
            bindDN: string,
            bindPassword: string,
            credentialsFile: string,
            skipVerify: boolean,
            CACert: string,
            subtreeSearch: boolean,
          },
        },
        bearer: {
          type: 'object',
          additionalProperties: false,
          // Tokens are checked with `cert`, or against an OpenID Connect issuer (`oidc`).
          required: ['realm', 'service'],
          properties: {
            realm: string,
            service: string,
            cert: string,
            oidc: {
              type: 'object',
              additionalProperties: false,
              properties: { issuer: string, audiences: stringList, claimMapping: stringMap },
            },
          },
        },
        mtls: {
          type: 'object',
          additionalProperties: false,
          properties: {
            identityAttributes: { type: 'array', minItems: 1, items: string },
            uriSanPattern: string,
            uriSanIndex: { type: 'integer', minimum: 0 },
            dnsSanIndex: { type: 'integer', minimum: 0 },
            emailSanIndex: { type: 'integer', minimum: 0 },
          },
        },
        openid: {
          type: 'object',
          additionalProperties: false,
          properties: {
            callbackAllowOrigins: stringList,
            // Keyed by provider: google, gitlab, github or oidc.
            providers: {
              type: 'object',
              additionalProperties: {
                type: 'object',
                additionalProperties: false,
                properties: {
                  name: string,
                  credentialsFile: string,
                  clientid: string,
                  clientsecret: string,
                  keypath: string,
                  issuer: string,
                  scopes: stringList,
                  claimMapping: stringMap,
                },
              },
            },
          },
        },
        apikey: boolean,
        sessionKeysFile: string,
        // Parameters of zot's session store (for example redis), handed to it as they are.
        sessionDriver: { type: 'object' },
        secureSession: boolean,
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
    // Two forms share this object: the seed's, where every key other than the four below is
    // a repository glob, and the newer one, where the globs sit under `repositories`.
    accessControl: {
      type: 'object',
      properties: {
        repositories: { type: 'object', additionalProperties: ref('repositoryPolicy') },
        adminPolicy: ref('policy'),
        // Who may read the metrics endpoint.
        metrics: {
          type: 'object',
          additionalProperties: false,
          properties: { users: stringList, anonymousPolicy: ref('actions') },
        },
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
        // zot's defaults for the default root (config.New()); a subPath's are in store-settings.ts.
        dedupe: { type: 'boolean', default: true },
        gc: { type: 'boolean', default: true },
        gcDelay: { ...ref('duration'), default: '1h' },
        gcInterval: { ...ref('duration'), default: '1h' },
        subPaths: { type: 'object', additionalProperties: ref('subPath') },
        ...storeProperties(),
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
        ...storeProperties(),
      },
    },
    retention: {
      type: 'object',
      additionalProperties: false,
      properties: {
        dryRun: boolean,
        delay: ref('duration'),
        policies: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            properties: {
              repositories: stringList,
              deleteReferrers: boolean,
              deleteUntagged: boolean,
              keepTags: {
                type: 'array',
                items: {
                  type: 'object',
                  additionalProperties: false,
                  properties: { patterns: stringList, ...keepRules() },
                },
              },
              // zot 2.1.19 and later: rules that keep untagged manifests deleteUntagged would remove.
              keepUntagged: { type: 'object', additionalProperties: false, properties: keepRules() },
            },
          },
        },
      },
    },
    // A storage driver's parameters. zot (like this release) builds s3, whose parameters are
    // checked; any other driver name is a feature (features.ts) or an error (semantic.ts), and its
    // parameters are not checked here.
    storageDriver: {
      type: 'object',
      required: ['name'],
      properties: { name: string },
      if: { properties: { name: { const: 's3' } } },
      then: ref('s3Driver'),
    },
    // Parameters of distribution's s3-aws driver, which zot hands the map to, all lower case as
    // zot passes them on (`useDualStack` in zot's documentation is `usedualstack` here).
    s3Driver: {
      type: 'object',
      additionalProperties: false,
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
        usedualstack: boolean,
        usefipsendpoint: boolean,
        accelerate: boolean,
        loglevel: string,
      },
    },

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
        events: ref('events'),
        search: {
          type: 'object',
          additionalProperties: false,
          properties: {
            enable: boolean,
            cve: {
              type: 'object',
              additionalProperties: false,
              properties: {
                enable: boolean,
                updateInterval: ref('duration'),
                trivy: {
                  type: 'object',
                  additionalProperties: false,
                  properties: {
                    dbRepository: string,
                    javaDBRepository: string,
                    vulnSeveritySources: stringList,
                    sbom: { type: 'object', additionalProperties: false, properties: { enable: boolean, format: string } },
                  },
                },
              },
            },
          },
        },
        ui: switchOnly,
        mgmt: switchOnly,
        apikey: switchOnly,
        lint: {
          type: 'object',
          additionalProperties: false,
          properties: { enable: boolean, mandatoryAnnotations: stringList },
        },
        trust: {
          type: 'object',
          additionalProperties: false,
          properties: { enable: boolean, cosign: boolean, notation: boolean },
        },
      },
    },
    events: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enable: boolean,
        // Overrides of the CloudEvents source attribute and of the event types' namespace.
        source: string,
        typePrefix: string,
        sinks: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['type', 'address'],
            properties: {
              type: { enum: ['http', 'nats'] },
              address: string,
              channel: string,
              timeout: ref('duration'),
              proxy: string,
              headers: stringMap,
              credentials: {
                type: 'object',
                additionalProperties: false,
                properties: { username: string, password: string, file: string, token: string },
              },
              tls: {
                type: 'object',
                additionalProperties: false,
                properties: { caCertFile: string, certFile: string, keyFile: string },
              },
            },
          },
        },
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
        // Where images are staged before they move into cloud storage.
        downloadDir: string,
        enableStreaming: boolean,
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
        maxRetryDelay: ref('duration'),
        syncTimeout: ref('duration'),
        onlySigned: boolean,
        syncLegacyCosignTags: boolean,
        preserveDigest: boolean,
        // "os/arch" or "arch" entries: which images of an index to sync.
        platforms: stringList,
        // ecr, gcp or oauth2; the last one reads oauth2CredentialHelper.
        credentialHelper: string,
        oauth2CredentialHelper: {
          type: 'object',
          additionalProperties: false,
          properties: {
            tokenURL: string,
            assertionFile: string,
            signingFile: string,
            grantType: string,
            clientID: string,
            clientSecretFile: string,
            scopes: stringList,
            username: string,
            audience: string,
            subjectTokenType: string,
            requestedTokenType: string,
          },
        },
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
