// Health probes and the Prometheus endpoint, and the per-request figures zot's session logger
// records. The data comes from objects the composition root passes in; nothing here computes it.
//
//   GET /livez      200 while the process serves; a stalled actor does not change it (the
//                   process still serves and commits; a restart would not mend what fails);
//                   503 once the event log failed to sync to disk (every write is refused, and
//                   a restart, which reopens the log, is what mends it)
//   GET /startupz   200 once start-up finished (the event log open and every actor caught up with
//                   the log head found at start), 503 before
//   GET /readyz     200 while ready to serve; 503 before start-up finished, while shutting down,
//                   while an actor has been failing on one event for more than a few seconds,
//                   and once the event log failed to sync to disk
//   GET <metrics.prometheus.path>   Prometheus text, only when metrics are enabled; otherwise the
//                   path is unknown like any other (404)
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Endpoint } from './routes.js';

export interface Probes {
  alive(): boolean;
  started(): boolean;
  ready(): boolean;
}

export interface HttpMetrics {
  /** Where the metrics are served, e.g. /metrics. */
  readonly path: string;
  observeRequest(method: string, code: number, repo: string, seconds: number): void;
  recordDownload(repo: string): void;
  render(): Promise<{ contentType: string; body: string }>;
}

export interface MonitoringOptions {
  probes: Probes;
  metrics?: HttpMetrics;
}

/** zot labels the repository of paths /v2/<name>/(blobs|tags|manifests)/…, and others "N/A". */
const REPO_ENDPOINTS: ReadonlySet<Endpoint> = new Set(['uploads', 'upload', 'blob', 'manifest', 'tags']);
const NO_REPO = 'N/A';

export function registerMonitoringRoutes(app: FastifyInstance, options: MonitoringOptions): void {
  const { probes, metrics } = options;
  const probe = (ok: () => boolean) => async (_request: FastifyRequest, reply: FastifyReply) =>
    reply.code(ok() ? 200 : 503).header('Content-Length', '0').send();
  app.get('/livez', probe(() => probes.alive()));
  app.get('/startupz', probe(() => probes.started()));
  app.get('/readyz', probe(() => probes.ready()));
  if (!metrics) return;

  app.get(metrics.path, async (_request, reply) => {
    const { contentType, body } = await metrics.render();
    return reply.type(contentType).send(body);
  });

  const scrape = metrics.path;
  const scrapeWithQuery = `${metrics.path}?`;
  app.addHook('onResponse', (request, reply, done) => {
    // Scrapes are left out, as zot leaves them out: the scraper measures those itself.
    if (request.url !== scrape && !request.url.startsWith(scrapeWithQuery)) {
      const route = request.ociRoute;
      const repo = route !== undefined && REPO_ENDPOINTS.has(route.endpoint) ? route.name : NO_REPO;
      metrics.observeRequest(request.method, reply.statusCode, repo, reply.elapsedTime / 1000);
      // zot counts a download each time it reads a manifest for a client: GET and HEAD.
      if (route?.endpoint === 'manifest' && reply.statusCode === 200 && (request.method === 'GET' || request.method === 'HEAD')) {
        metrics.recordDownload(route.name);
      }
    }
    done();
  });
}
