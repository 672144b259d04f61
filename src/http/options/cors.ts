// CORS headers as zot sends them (pkg/api/routes.go, pkg/common): zot answers the endpoints a
// browser UI reads with Access-Control-Allow-Origin, http.allowOrigin or `*` when it is unset,
// and the ones that take a preflight also with the methods and headers allowed; OPTIONS on those
// answers 200 with no body. Pushes (uploads, manifest PUT) and blob reads get no CORS headers.
//
//   /v2/, /v2/_catalog, tags/list, referrers   every method: origin, "GET,OPTIONS", headers
//   manifests/<ref>  HEAD, OPTIONS: origin, "HEAD,GET,DELETE,OPTIONS", headers
//                    GET, DELETE:   origin only
//
// Access-Control-Allow-Credentials: "true" when a basic-credential method (htpasswd, LDAP) is
// configured and allowOrigin names an origin: never with `*`, which browsers refuse (the rule
// zot's newer ACHeadersMiddleware follows).
import type { FastifyInstance, FastifyReply } from 'fastify';
import { RegistryError } from '../../oci/errors.js';
import { METHODS, resolveRoute, type Endpoint } from '../routes.js';

export interface CorsOptions {
  allowOrigin?: string;
  /** A basic-credential authentication method is configured. */
  basicCredentials?: boolean;
}

const ALLOW_HEADERS = 'Authorization,content-type,X-ZOT-API-CLIENT';
const READ_ONLY_METHODS = 'GET,OPTIONS';
const MANIFEST_METHODS = 'HEAD,GET,DELETE,OPTIONS';
const PREFLIGHT_ENDPOINTS: ReadonlySet<Endpoint> = new Set(['base', 'catalog', 'tags', 'referrers', 'manifest']);

export function registerCors(app: FastifyInstance, options: CorsOptions): void {
  const origin = options.allowOrigin?.trim() || '*';
  const credentials = options.basicCredentials === true && origin !== '*';

  /** The methods zot lists for the endpoint and method, or undefined for origin only, null for none. */
  const allowedMethods = (endpoint: Endpoint, method: string): string | undefined | null => {
    if (endpoint === 'manifest') {
      if (method === 'HEAD' || method === 'OPTIONS') return MANIFEST_METHODS;
      return method === 'GET' || method === 'DELETE' ? undefined : null;
    }
    return PREFLIGHT_ENDPOINTS.has(endpoint) ? READ_ONLY_METHODS : null;
  };

  const addHeaders = (reply: FastifyReply, methods: string | undefined): void => {
    reply.header('Access-Control-Allow-Origin', origin);
    if (methods === undefined) return;
    reply.header('Access-Control-Allow-Methods', methods);
    reply.header('Access-Control-Allow-Headers', ALLOW_HEADERS);
    if (credentials) reply.header('Access-Control-Allow-Credentials', 'true');
  };

  // Set before the handler runs, so error answers carry them too, as in zot.
  // The callback form: nothing to wait for, and an async hook costs a promise per request.
  app.addHook('onRequest', (request, reply, done) => {
    const methods = corsMethods(request.url, request.method);
    if (methods !== null) addHeaders(reply, methods);
    done();
  });

  /** allowedMethods for a request's URL; null (no headers) outside the API or on a path it does not route. */
  const corsMethods = (url: string, method: string): string | undefined | null => {
    const path = url.split('?')[0] ?? '';
    if (path !== '/v2' && !path.startsWith('/v2/')) return null;
    let endpoint: Endpoint;
    try {
      endpoint = resolveRoute(path.replace(/^\/v2\/?/, '')).endpoint;
    } catch {
      return null;
    }
    return allowedMethods(endpoint, method);
  };

  const preflight = async (request: { url: string }, reply: FastifyReply): Promise<unknown> => {
    const path = request.url.split('?')[0] ?? '';
    const { endpoint } = resolveRoute(path.replace(/^\/v2\/?/, ''));
    if (!PREFLIGHT_ENDPOINTS.has(endpoint)) {
      reply.header('Allow', METHODS[endpoint].join(', '));
      throw new RegistryError('METHOD_UNKNOWN', 'OPTIONS is not allowed on this endpoint');
    }
    return reply.code(200).header('Content-Length', '0').send();
  };
  app.route({ method: 'OPTIONS', url: '/v2', handler: preflight });
  app.route({ method: 'OPTIONS', url: '/v2/*', handler: preflight });
}
