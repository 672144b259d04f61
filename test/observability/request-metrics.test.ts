// The zot_http_* families kept in per-label cells (src/actors/request-metrics.ts) render the same
// text, byte for byte, as prom-client's stock Counter, Histogram and Summary (zot's definitions:
// prometheus.ts before the cells) fed the same requests: every label combination the HTTP layer
// produces, repository names that need escaping, latencies on and past the bucket bounds, label
// sets first seen in between others, and scrapes in the middle.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Histogram, Registry, Summary } from 'prom-client';
import { PrometheusMetrics } from '../../src/actors/prometheus.js';
import { DEFAULT_BUCKETS } from '../../src/actors/request-metrics.js';

/** zot's three request families as prom-client's own metrics, observed the way it documents. */
function stockMetrics(): { registry: Registry; observe(method: string, code: number, repo: string, seconds: number): void } {
  const registry = new Registry();
  const registers = [registry];
  const requests = new Counter({ name: 'zot_http_requests_total', help: 'HTTP requests answered, by method and status code', labelNames: ['method', 'code'], registers });
  const methodLatency = new Histogram({
    name: 'zot_http_method_latency_seconds',
    help: 'Time to answer an HTTP request, by method',
    labelNames: ['method'],
    buckets: DEFAULT_BUCKETS,
    registers,
  });
  const repoLatency = new Summary({ name: 'zot_http_repo_latency_seconds', help: 'Time to answer an HTTP request, by repository', labelNames: ['repo'], percentiles: [], registers });
  return {
    registry,
    observe(method, code, repo, seconds) {
      requests.inc({ method, code: String(code) });
      methodLatency.observe({ method }, seconds);
      repoLatency.observe({ repo }, seconds);
    },
  };
}

/** The text of the zot_http_* families, HELP and TYPE lines included. */
function httpFamilies(text: string): string {
  return text
    .split('\n\n')
    .filter((family) => family.includes('# TYPE zot_http_'))
    .map((family) => family.trimEnd())
    .join('\n\n');
}

function cellMetrics(): PrometheusMetrics {
  return new PrometheusMetrics(
    { commit: '', binaryType: 'test', goVersion: 'test', version: '' },
    { length: () => 0, head: () => 0, checkpoints: () => [] },
  );
}

/** Requests as the HTTP layer reports them: method, status, repository (or N/A), seconds. */
const REQUESTS: [string, number, string, number][] = [
  ['GET', 200, 'N/A', 0.0004],
  ['GET', 200, 'library/alpine', 0.05],
  ['HEAD', 200, 'library/alpine', 0.0500001],
  ['GET', 404, 'library/alpine', 0.5],
  ['PUT', 201, 'team/app', 1],
  ['POST', 202, 'team/app', 4.99],
  ['PATCH', 202, 'team/app', 30],
  ['PUT', 201, 'team/app', 60.5],
  ['DELETE', 202, 'team/app', 600],
  ['DELETE', 405, 'N/A', 601],
  ['GET', 401, 'N/A', 0],
  ['OPTIONS', 204, 'N/A', 0.001],
  ['GET', 200, 'quote"back\\slash', 0.02],
  ['GET', 416, 'library/alpine', 0.3],
  ['GET', 200, 'library/alpine', 0.1],
  ['POST', 429, 'team/app', 0.01],
  ['GET', 500, 'N/A', 2],
];

describe('request metrics in cells', () => {
  it('render the same text as prom-client stock metrics fed the same requests, at every scrape', async () => {
    const stock = stockMetrics();
    const cells = cellMetrics();
    assert.equal(httpFamilies(await cells.render()), httpFamilies(await stock.registry.metrics()), 'before any request');
    for (let round = 0; round < 3; round++) {
      for (const [i, [method, code, repo, seconds]] of REQUESTS.entries()) {
        // Later rounds repeat the requests with other latencies, in another order.
        const [m, c, r, s] = round === 1 ? (REQUESTS[REQUESTS.length - 1 - i] as (typeof REQUESTS)[number]) : [method, code, repo, seconds * (round + 1)];
        stock.observe(m, c, r, s);
        cells.observeRequest(m, c, r, s);
      }
      const expected = httpFamilies(await stock.registry.metrics());
      assert.match(expected, /zot_http_requests_total\{method="GET",code="404"\} /);
      assert.match(expected, /zot_http_method_latency_seconds_bucket\{le="\+Inf",method="DELETE"\} /);
      assert.match(expected, /zot_http_repo_latency_seconds_count\{repo="quote\\"back\\\\slash"\} /);
      assert.equal(httpFamilies(await cells.render()), expected, `after round ${round}`);
    }
  });

  it('report label sets as first seen, as prom-client does', async () => {
    const stock = stockMetrics();
    const cells = cellMetrics();
    for (const [method, code, repo] of [['PUT', 201, 'b'], ['GET', 200, 'a'], ['PUT', 400, 'c'], ['GET', 200, 'b']] as const) {
      stock.observe(method, code, repo, 0.2);
      cells.observeRequest(method, code, repo, 0.2);
    }
    const text = httpFamilies(await cells.render());
    assert.equal(text, httpFamilies(await stock.registry.metrics()));
    assert.ok(text.indexOf('method="PUT",code="201"') < text.indexOf('method="GET",code="200"'));
    assert.ok(text.indexOf('method="GET",code="200"') < text.indexOf('method="PUT",code="400"'));
  });
});
