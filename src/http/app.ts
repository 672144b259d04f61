// The fastify app: one catch-all route for /v2/*, dispatched through routes.ts to the handlers,
// and one error handler that renders every failure as OCI error JSON.
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { finished } from 'node:stream/promises';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { RegistryError, isRegistryError, type ErrorKind } from '../oci/errors.js';
import type { Registry } from '../registry/registry.js';
import { authorizeRoute, registerAuthentication, type HttpAuth } from './auth-hook.js';
import { registerMonitoringRoutes, type MonitoringOptions } from './monitoring-routes.js';
import { registerHttpOptions, type HttpOptions } from './options/index.js';
import { renderOciError } from './oci-errors.js';
import { METHODS, resolveRoute, type Route } from './routes.js';
import { context, handlers } from './handlers.js';
import { clientErrorHandler } from './client-errors.js';
import { discardBody, hasUnreadBody } from './unread-body.js';

export const API_VERSION_HEADER = 'Docker-Distribution-API-Version';
export const API_VERSION = 'registry/2.0';

export interface HttpAppOptions {
  registry: Registry;
  logger: Logger;
  /** node:https server options: certificate, key, and for mutual TLS the CA and client certificate rule. */
  https?: { cert: Buffer; key: Buffer; ca?: Buffer; requestCert?: boolean; rejectUnauthorized?: boolean };
  readOnly?: boolean;
  /** Health probes and, when metrics are on, the Prometheus endpoint and per-request figures. */
  monitoring?: MonitoringOptions;
  /** zot's http options: rate limit, CORS, externalUrl, timeouts (src/http/options). */
  httpOptions?: HttpOptions;
  /** Told of each manifest pulled, for retention (registry/pull-recorder.ts). */
  pulls?: { record(repo: string, digest: string): void };
  /** Authentication and authorization; without it every request is anonymous and allowed. */
  auth?: HttpAuth;
  /**
   * Sync on demand: the local repository a containerd mirror request `?ns=<upstream host>` for
   * `name` reads, or undefined to read `name` itself.
   */
  mirrorName?: (ns: string, name: string) => string | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    ociRoute?: Route;
  }
  interface FastifyReply {
    /**
     * Answers with the status and headers set on the reply and a body that `writeBody` writes to
     * the response itself, past fastify's payload handling (the reply is hijacked; the onResponse
     * hooks still run once the response finishes). Headers get what the onSend hook gives every
     * answer. A body that fails half-way, or whose client goes away, ends the connection.
     */
    sendBody(writeBody: (response: ServerResponse) => Promise<void>): Promise<void>;
  }
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** fastify calls this only for a route with a schema: adding one needs the compilers back. */
function noRouteSchemas(): never {
  throw new Error('routes take no fastify schema: requests are parsed by the handlers');
}

export function buildHttpApp(options: HttpAppOptions): FastifyInstance {
  // The answer in progress on each connection, for the parser's errors that arrive meanwhile.
  const responses = new WeakMap<Socket, ServerResponse>();
  const app = Fastify({
    loggerInstance: options.logger,
    // The onResponse hook below writes the one line per request.
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    genReqId: () => randomUUID(),
    // Every line logged about a request names its requestId as a field, so request.log is the
    // server's logger itself: fastify's default, a pino child bound to reqId per request, only
    // repeated it, at some 4 KiB of garbage per request (pino runs the redaction paths over each
    // child's bindings), which under many concurrent GETs is promoted and grows the old generation.
    childLoggerFactory: (logger) => logger,
    requestIdHeader: false,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    rewriteUrl: (raw) => routableUrl(raw.url ?? '/'),
    clientErrorHandler: clientErrorHandler({
      logger: options.logger,
      headers: { [API_VERSION_HEADER]: API_VERSION },
      responseOn: (socket) => responses.get(socket),
    }),
    // No route declares a schema. Without these factories fastify loads ajv's compiler and
    // fast-json-stringify at start anyway, about a hundred modules and megabytes of idle heap.
    schemaController: { compilersFactory: { buildValidator: noRouteSchemas, buildSerializer: noRouteSchemas } },
    ...(options.https ? { https: options.https } : {}),
  }) as unknown as FastifyInstance;

  // Bodies stay streams: blob uploads are piped to storage, manifests read with a bound.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));
  app.decorateRequest('ociRoute', undefined);

  // Hooks with nothing to wait for take fastify's callback form: an async one costs a promise
  // per request and hook.
  app.addHook('onRequest', (request, reply, done) => {
    responses.set(request.raw.socket, reply.raw);
    reply.header(API_VERSION_HEADER, API_VERSION);
    done();
  });
  // zot's http options before authentication, as zot's rate limiter sits in front of its auth
  // middleware: a flood is refused before any credential is checked.
  registerHttpOptions(app, options.httpOptions ?? { readTimeoutMs: 0, writeTimeoutMs: 0 }, options.logger);
  registerAuthentication(app, options.auth, options.monitoring?.metrics?.path);

  // close() reaps only the keep-alive connections idle at that moment. One whose request is in
  // flight (a slow upload, a download still streaming) would stay open after its answer until
  // keepAliveTimeout and hold shutdown that long. While closing, answers not yet started say
  // `Connection: close`, and every answer's socket is ended (gracefully) once it is sent.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  // What every answer gets before it goes, fastify's or one that sendBody writes.
  const beforeAnswer = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (closing) reply.header('Connection', 'close');
    if (hasUnreadBody(request.raw)) await dropUnreadBody(request, reply, closing);
  };
  app.addHook('onSend', (request, reply, payload, done) => {
    if (!closing && !hasUnreadBody(request.raw)) return done(null, payload);
    beforeAnswer(request, reply).then(
      () => done(null, payload),
      (err: Error) => done(err),
    );
  });
  app.decorateReply('sendBody', async function sendBody(this: FastifyReply, writeBody: (response: ServerResponse) => Promise<void>): Promise<void> {
    const { request } = this;
    await beforeAnswer(request, this);
    this.hijack();
    const response = this.raw;
    for (const [name, value] of Object.entries(this.getHeaders())) if (value !== undefined) response.setHeader(name, value);
    response.writeHead(this.statusCode);
    try {
      await writeBody(response);
      response.end();
    } catch (err) {
      const fields = { method: request.method, path: request.url.split('?')[0], client: request.ip, requestId: request.id };
      if (response.destroyed || (err as { code?: unknown }).code === 'ERR_STREAM_PREMATURE_CLOSE') {
        request.log.info(fields, 'client disconnected before the response completed');
      } else {
        request.log.error({ ...fields, err }, 'failed to send response body');
      }
      // The headers promised bytes that will not come: only closing the connection says so.
      response.destroy();
    }
  });
  // One hook for what every answer needs once sent: one line per request (static message, values
  // as fields), and while closing, the socket ended.
  app.addHook('onResponse', (request, reply, done) => {
    if (options.logger.isLevelEnabled('info')) logCompleted(request, reply);
    if (closing) {
      const socket = request.raw.socket;
      socket.end(() => socket.destroy());
    }
    done();
  });
  const logCompleted = (request: FastifyRequest, reply: FastifyReply): void => {
    request.log.info(
      {
        method: request.method,
        path: request.url.split('?')[0],
        status: reply.statusCode,
        durationMs: Math.round(reply.elapsedTime * 100) / 100,
        client: request.ip,
        requestId: request.id,
      },
      'request completed',
    );
  };

  app.setErrorHandler(async (error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    if (clientDisconnected(request, error)) {
      // Not a server error, and there is no one to answer: what the request had written is undone
      // below HTTP (an upload chunk cut back, nothing appended).
      request.log.info(
        { method: request.method, path: request.url.split('?')[0], client: request.ip, requestId: request.id, durationMs: Math.round(reply.elapsedTime * 100) / 100 },
        'client disconnected before the request completed',
      );
      reply.hijack();
      return;
    }
    const kind = errorKind(error);
    if (kind === 'INTERNAL') request.log.error({ err: error, requestId: request.id }, 'failed to handle request');
    const registryError = isRegistryError(error) ? error : undefined;
    addRangeHeaders(request, reply, registryError);
    // A RegistryError thrown without a message carries its kind as message: answer the table's.
    const message = kind === 'INTERNAL' || registryError?.message === registryError?.kind ? undefined : registryError?.message;
    const { status, body } = renderOciError(kind, message, publicDetail(registryError));
    // Queued in this turn, answered without waiting for its commit: a refusal acknowledges no
    // write, and an answer given before the body was read must not wait (unread-body.ts).
    if (WRITE_METHODS.has(request.method) && status >= 400 && status < 500) {
      void recordRefusal(options.registry, request, status, body.errors[0]?.code ?? kind);
    }
    return reply.code(status).type('application/json').send(body);
  });

  app.setNotFoundHandler(async (request, reply) => {
    const { status, body } = renderOciError('ROUTE_UNKNOWN', `no endpoint at ${request.url.split('?')[0]}`);
    return reply.code(status).type('application/json').send(body);
  });

  const dispatch = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    // The raw URL, not fastify's decoded params: each segment is decoded once, after routing.
    const path = request.url.split('?')[0] ?? '';
    const route = mirrored(resolveRoute(path.replace(/^\/v2\/?/, '')), request, options.mirrorName);
    request.ociRoute = route;
    if (!METHODS[route.endpoint].includes(request.method)) {
      reply.header('Allow', METHODS[route.endpoint].join(', '));
      throw new RegistryError('METHOD_UNKNOWN', `${request.method} is not allowed on this endpoint`);
    }
    authorizeRoute(request, route, options.registry);
    if (options.readOnly && WRITE_METHODS.has(request.method)) {
      throw new RegistryError('UNSUPPORTED', 'the registry is read-only (http.ReadOnly): writes are refused');
    }
    return handlers[route.endpoint](options.registry, route, request, reply);
  };

  if (options.monitoring) registerMonitoringRoutes(app, options.monitoring);
  const pulls = options.pulls;
  if (pulls) {
    // A pull is a manifest GET answered 200, noted under the digest served. A HEAD reads no
    // manifest, and zot does not count it as a pull either (OnGetManifest runs on GET only).
    app.addHook('onResponse', (request, reply, done) => {
      const route = request.ociRoute;
      if (route?.endpoint === 'manifest' && request.method === 'GET' && reply.statusCode === 200) {
        const digest = reply.getHeader('Docker-Content-Digest');
        if (typeof digest === 'string') pulls.record(route.name, digest);
      }
      done();
    });
  }
  const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
  app.route({ method: [...methods], url: '/v2', handler: dispatch });
  app.route({ method: [...methods], url: '/v2/*', handler: dispatch });
  return app;
}

/** A read with containerd's `?ns=<upstream host>` goes to the repository sync keeps that host's images in. */
function mirrored(route: Route, request: FastifyRequest, mirrorName: HttpAppOptions['mirrorName']): Route {
  if (!mirrorName || route.name === '' || (request.method !== 'GET' && request.method !== 'HEAD')) return route;
  const ns = new URLSearchParams(request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '').get('ns');
  const name = ns ? mirrorName(ns, route.name) : undefined;
  return name === undefined ? route : { ...route, name };
}

/**
 * The URL with its percent signs escaped when its path is not a valid percent-encoding (`%zz`, or
 * bytes that are no UTF-8): fastify's router would answer those itself, outside the hooks and
 * without OCI error JSON. Escaped, the path routes as usual and is refused like any invalid name.
 */
function routableUrl(url: string): string {
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  try {
    decodeURI(path);
    return url;
  } catch {
    return path.replaceAll('%', '%25') + (query === -1 ? '' : url.slice(query));
  }
}

/**
 * An answer given before the body was read (unread-body.ts). On a connection kept alive the answer
 * goes at once, so a client that reads while it sends can stop, and the rest of the body is dropped
 * meanwhile. On one that closes after this answer, the rest is dropped first: closing with bytes
 * unread would reset the connection under a client still sending.
 */
async function dropUnreadBody(request: FastifyRequest, reply: FastifyReply, closing: boolean): Promise<void> {
  const closes = closing || !reply.raw.shouldKeepAlive || /\bclose\b/i.test(String(reply.getHeader('connection') ?? ''));
  const answered = finished(reply.raw).catch(() => undefined);
  if (closes) await discardBody(request.raw, answered);
  else void discardBody(request.raw, answered);
}

/**
 * A refused write becomes a WriteRefused event, so the audit log (rebuilt from the event log)
 * holds it. A failure to record it is logged and never changes the answer.
 */
async function recordRefusal(registry: Registry, request: FastifyRequest, status: number, code: string): Promise<void> {
  const route = request.ociRoute;
  const params = new URLSearchParams(request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '');
  const onUpload = route?.endpoint === 'uploads' || route?.endpoint === 'upload';
  const reference = onUpload ? (params.get('digest') ?? params.get('mount') ?? undefined) : route?.reference || undefined;
  try {
    await registry.recordRefusedWrite(
      {
        repo: route?.name ?? '',
        method: request.method,
        path: request.url.split('?')[0] ?? '',
        status,
        code,
        ...(reference !== undefined ? { reference } : {}),
      },
      context(request),
    );
  } catch (err) {
    request.log.error({ err, requestId: request.id }, 'failed to record refused write');
  }
}

/** Errors with which node ends a request whose client closed the connection before sending it all. */
const DISCONNECT_CODES: ReadonlySet<unknown> = new Set(['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'EPIPE']);

/**
 * Whether the request failed because its client went away mid-request: the request never arrived
 * whole, its connection is gone, and the error is the one node raises for that (a storage failure
 * that also ends the connection keeps its own error, and stays a server error).
 */
function clientDisconnected(request: FastifyRequest, error: unknown): boolean {
  const raw = request.raw;
  if (raw.complete || !(raw.socket?.destroyed ?? true)) return false;
  return DISCONNECT_CODES.has((error as { code?: unknown } | undefined)?.code);
}

function errorKind(error: unknown): ErrorKind {
  if (isRegistryError(error)) return error.kind;
  const status = (error as { statusCode?: number } | undefined)?.statusCode;
  if (status === 413) return 'SIZE_INVALID';
  if (status === 415 || status === 400) return 'BLOB_UPLOAD_INVALID';
  return 'INTERNAL';
}

function publicDetail(error: RegistryError | undefined): unknown {
  const detail = error?.detail;
  return detail !== null && typeof detail === 'object' ? detail : undefined;
}

/** 416 answers say where the upload stands, or how large the blob is. */
function addRangeHeaders(request: FastifyRequest, reply: FastifyReply, error: RegistryError | undefined): void {
  if (error?.kind !== 'RANGE_INVALID' || !request.ociRoute) return;
  const size = (error.detail as { size?: unknown } | undefined)?.size;
  if (typeof size !== 'number') return;
  const route = request.ociRoute;
  if (route.endpoint === 'upload') {
    reply.header('Location', `/v2/${route.name}/blobs/uploads/${route.reference}`);
    reply.header('Range', `0-${Math.max(size - 1, 0)}`);
    reply.header('Docker-Upload-UUID', route.reference);
  } else if (route.endpoint === 'blob') {
    reply.header('Content-Range', `bytes */${size}`);
  }
}
