// The one authentication hook and the authorization of each request.
//
// onRequest (every route but the health probes): the chain of configured methods turns the
// request's credentials into an Identity (anonymous without credentials). Failed credentials are
// answered 401 UNAUTHORIZED after http.auth.failDelay seconds (a timer: other requests go on);
// a request without credentials is not delayed, as in zot. /metrics is checked here too.
//
// The dispatch then asks authorizeRoute() whether the identity may do what the request does:
//
//   GET /v2/                         entry (authenticated, or anonymous access exists)
//   GET /v2/_catalog                 the catalog, listing only what the identity may read
//   GET, HEAD blobs, manifests, tags, referrers            read
//   POST, PATCH, PUT, GET, DELETE on upload sessions       create (a session belongs to a push)
//   PUT manifest                     create, or update when the tag exists (zot's rule), and the
//                                    tag is moved only with update (re-checked inside the append)
//   DELETE blob or manifest          delete
//   POST ?mount=&from=               create, and read on `from`, else a session (the spec's fallback)
//   POST ?mount= without from        create; the handler mounts only from a repository it may read
//
// A refusal is 401 with the challenge for an anonymous caller (and a bearer token lacking the
// scope, so the client fetches one that has it), 403 DENIED for an authenticated identity.
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Authentication } from '../auth/chain.js';
import { ANONYMOUS, type AccessScope, type Authorizer, type Identity, type RepositoryAction } from '../auth/types.js';
import { RegistryError } from '../oci/errors.js';
import type { Registry } from '../registry/registry.js';
import { resolveRoute, type Route } from './routes.js';

export interface HttpAuth {
  authentication: Authentication;
  authorizer: Authorizer;
  /** How long a request with failed credentials waits for its 401. */
  failDelayMs: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent the request and what it may do; set by the authentication hook. */
    access: RequestAccess;
  }
}

/** Probes answer everyone: orchestrators call them without credentials. */
const ANONYMOUS_PATHS: ReadonlySet<string> = new Set(['/livez', '/readyz', '/startupz']);

/** The identity of one request, and the questions the handlers ask about it. */
export class RequestAccess {
  constructor(
    readonly identity: Identity,
    private readonly auth: HttpAuth | undefined,
    private readonly reply: FastifyReply,
  ) {}

  allows(repo: string, action: RepositoryAction): boolean {
    return this.auth === undefined || this.auth.authorizer.allows(this.identity, repo, action);
  }

  /** Throws the refusal unless every action is allowed on the repository. */
  require(repo: string, actions: readonly RepositoryAction[]): void {
    if (!actions.every((action) => this.allows(repo, action))) throw this.refusal({ repo, actions });
  }

  requireEntry(): void {
    if (this.auth !== undefined && !this.auth.authorizer.allowsEntry(this.identity)) throw this.refusal(undefined);
  }

  requireCatalog(): void {
    if (this.auth !== undefined && !this.auth.authorizer.allowsCatalog(this.identity)) throw this.refusal({ actions: ['read'], catalog: true });
  }

  requireMetrics(): void {
    if (this.auth !== undefined && !this.auth.authorizer.allowsMetrics(this.identity)) throw this.refusal(undefined);
  }

  /** 401 with the challenge for a caller that can authenticate to get more, 403 for the others. */
  refusal(scope: AccessScope | undefined): RegistryError {
    const { identity } = this;
    if (identity.method === 'anonymous' || identity.method === 'bearer') {
      if (this.auth !== undefined) this.reply.header('WWW-Authenticate', this.auth.authentication.challenge(scope));
      return new RegistryError('UNAUTHORIZED', identity.method === 'anonymous' ? 'authentication required' : 'the token does not grant this access');
    }
    const what = scope?.catalog ? 'list the catalog' : scope?.repo !== undefined ? `${scope.actions.join(', ')} ${scope.repo}` : 'use this endpoint';
    return new RegistryError('DENIED', `${identity.name} may not ${what}`);
  }
}

export function registerAuthentication(app: FastifyInstance, auth: HttpAuth | undefined, metricsPath: string | undefined): void {
  app.decorateRequest('access', null as unknown as RequestAccess);
  // Requests waiting out failDelay are answered at once when the server closes.
  const closing = new AbortController();
  app.addHook('preClose', async () => closing.abort());

  // Without a method configured, every request is anonymous: its path matters only for /metrics.
  const everyoneAnonymous = auth === undefined || !auth.authentication.configured;
  // The callback form, so an anonymous request (nothing to wait for) costs no promise.
  app.addHook('onRequest', (request, reply, done) => {
    if (everyoneAnonymous && metricsPath === undefined) {
      request.access = new RequestAccess(ANONYMOUS, auth, reply);
      return done();
    }
    const path = request.url.split('?')[0] ?? '';
    if (everyoneAnonymous || ANONYMOUS_PATHS.has(path)) {
      request.access = new RequestAccess(ANONYMOUS, auth, reply);
      if (metricsPath !== undefined && path === metricsPath) request.access.requireMetrics();
      return done();
    }
    authenticate(auth, closing.signal, request, reply, path).then(() => {
      if (metricsPath !== undefined && path === metricsPath) request.access.requireMetrics();
    }).then(() => done(), done);
  });
}

/** Sets request.access from the request's credentials, or refuses it (after failDelay). */
async function authenticate(auth: HttpAuth, closing: AbortSignal, request: FastifyRequest, reply: FastifyReply, path: string): Promise<void> {
  const outcome = await auth.authentication.authenticate(request.raw);
  if (outcome.kind === 'failed') {
    request.access = new RequestAccess(ANONYMOUS, auth, reply);
    request.ociRoute ??= routeOf(path);
    request.log.info({ user: outcome.user, reason: outcome.reason, client: request.ip, requestId: request.id }, 'authentication failed');
    if (auth.failDelayMs > 0) await sleep(auth.failDelayMs, undefined, { signal: closing, ref: false }).catch(() => undefined);
    reply.header('WWW-Authenticate', auth.authentication.challenge(undefined));
    throw new RegistryError('UNAUTHORIZED', 'authentication failed: wrong or unusable credentials');
  }
  request.access = new RequestAccess(outcome.kind === 'identity' ? outcome.identity : ANONYMOUS, auth, reply);
}

/** Refuses the request unless its identity may do what it asks on the route. */
export function authorizeRoute(request: FastifyRequest, route: Route, registry: Registry): void {
  const { access } = request;
  switch (route.endpoint) {
    case 'base':
      return access.requireEntry();
    case 'catalog':
      return access.requireCatalog();
    case 'uploads':
    case 'upload':
      return access.require(route.name, ['create']);
    case 'blob':
      return access.require(route.name, [request.method === 'DELETE' ? 'delete' : 'read']);
    case 'manifest':
      return access.require(route.name, [manifestAction(request.method, route, registry)]);
    case 'tags':
    case 'referrers':
      return access.require(route.name, ['read']);
  }
}

function manifestAction(method: string, route: Route, registry: Registry): RepositoryAction {
  if (method === 'GET' || method === 'HEAD') return 'read';
  if (method === 'DELETE') return 'delete';
  // A digest reference (it has a ':', which no tag has) never moves a tag.
  const isTag = !route.reference.includes(':');
  return isTag && registry.tagExists(route.name, route.reference) ? 'update' : 'create';
}

/** The route of a /v2/ path, for the audit record of a refusal answered before the dispatch. */
function routeOf(path: string): Route | undefined {
  if (!path.startsWith('/v2')) return undefined;
  try {
    return resolveRoute(path.replace(/^\/v2\/?/, ''));
  } catch {
    return undefined;
  }
}
