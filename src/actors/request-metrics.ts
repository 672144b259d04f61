// The zot_http_* figures, fed once per answered request (prometheus.ts lists who feeds what).
//
// A request costs two Map lookups and a few additions: each method, (method, status code) and
// repository gets a cell, with its label object, the first time it is seen, and later requests
// only add to the numbers in the cells they find. prom-client's own inc and observe build,
// validate and hash a label object on every call, and its Summary also pushes every observation
// into a t-digest for quantiles that zot's summaries do not have (_sum and _count only): at some
// thousands of manifest GETs per second that was most of what metrics cost a request.
//
// The samples are prom-client's all the same, rendered by its registry: the counter is filled
// from the cells at each scrape through its public API, and the histogram and the summary give
// the cells' figures in the shape prom-client's own give them. Label sets appear in the order
// they were first seen, as prom-client orders them; test/observability/request-metrics.test.ts
// compares the text with prom-client's stock metrics fed the same requests.
import { Counter, Histogram, Summary, type Registry } from './prom-client-core.js';

/** zot's GetDefaultBuckets(): HTTP method latency and scheduler task durations. */
export const DEFAULT_BUCKETS = [0.05, 0.5, 1, 5, 30, 60, 600];

interface RequestCell {
  readonly labels: { readonly method: string; readonly code: string };
  count: number;
}

interface MethodCells {
  readonly labels: { readonly method: string };
  readonly byCode: Map<number, RequestCell>;
  /** Latencies per bucket of DEFAULT_BUCKETS, each counted in the first bucket that holds it. */
  readonly buckets: number[];
  sum: number;
  count: number;
}

interface RepoCell {
  readonly labels: { readonly repo: string };
  sum: number;
  count: number;
}

/**
 * A summary of sums and counts per repository, kept in cells; what it renders equals a prom-client
 * Summary with `percentiles: []` fed the same observations.
 */
class SumAndCountSummary extends Summary<'repo'> {
  constructor(
    config: { name: string; help: string; registers: Registry[] },
    private readonly cells: ReadonlyMap<string, RepoCell>,
  ) {
    super({ ...config, labelNames: ['repo'], percentiles: [] });
  }

  override async get(): ReturnType<Summary<'repo'>['get']> {
    // Name, help, type and aggregator as prom-client has them; nothing is observed through it.
    const empty = await super.get();
    const values = [];
    for (const cell of this.cells.values()) {
      values.push({ metricName: `${empty.name}_sum`, labels: cell.labels, value: cell.sum });
      values.push({ metricName: `${empty.name}_count`, labels: cell.labels, value: cell.count });
    }
    return { ...empty, values };
  }
}

/**
 * A histogram of latencies per method, kept in cells; what it renders equals a prom-client
 * Histogram with the same buckets fed the same observations.
 */
class MethodLatencyHistogram extends Histogram<'method'> {
  /** Not registered anywhere: gives name, help, type and aggregator as prom-client has them. */
  private readonly stock: Histogram<'method'>;

  constructor(
    config: { name: string; help: string; registers: Registry[] },
    private readonly cells: ReadonlyMap<string, MethodCells>,
  ) {
    super({ ...config, labelNames: ['method'], buckets: DEFAULT_BUCKETS });
    this.stock = new Histogram({ ...config, labelNames: ['method'], buckets: DEFAULT_BUCKETS, registers: [] });
  }

  override async get(): ReturnType<Histogram<'method'>['get']> {
    const empty = await this.stock.get();
    const bucket = `${empty.name}_bucket`;
    const values = [];
    for (const cell of this.cells.values()) {
      const { method } = cell.labels;
      let cumulative = 0;
      for (const [i, le] of DEFAULT_BUCKETS.entries()) {
        cumulative += cell.buckets[i] ?? 0;
        values.push({ metricName: bucket, labels: { le, method }, value: cumulative });
      }
      values.push({ metricName: bucket, labels: { le: '+Inf', method }, value: cell.count });
      values.push({ metricName: `${empty.name}_sum`, labels: cell.labels, value: cell.sum });
      values.push({ metricName: `${empty.name}_count`, labels: cell.labels, value: cell.count });
    }
    return { ...empty, values };
  }

  /**
   * prom-client's registry renders a histogram from this method, where it has one (the stock one
   * reads prom-client's own label sets, which stay empty here): the same samples as get().
   */
  getForPromString(): ReturnType<Histogram<'method'>['get']> {
    return this.get();
  }
}

export class RequestMetrics {
  private readonly methods = new Map<string, MethodCells>();
  /** Every (method, code) cell, in the order first seen. */
  private readonly requestCells: RequestCell[] = [];
  private readonly repos = new Map<string, RepoCell>();

  constructor(registers: Registry[]) {
    const requestCells = this.requestCells;
    new Counter({
      name: 'zot_http_requests_total',
      help: 'HTTP requests answered, by method and status code',
      labelNames: ['method', 'code'],
      registers,
      collect() {
        this.reset();
        for (const cell of requestCells) this.inc(cell.labels, cell.count);
      },
    });
    new MethodLatencyHistogram({ name: 'zot_http_method_latency_seconds', help: 'Time to answer an HTTP request, by method', registers }, this.methods);
    new SumAndCountSummary({ name: 'zot_http_repo_latency_seconds', help: 'Time to answer an HTTP request, by repository', registers }, this.repos);
  }

  /** One answered HTTP request, as zot's session logger records it. */
  observe(method: string, code: number, repo: string, seconds: number): void {
    let methodCells = this.methods.get(method);
    if (methodCells === undefined) {
      methodCells = { labels: { method }, byCode: new Map(), buckets: DEFAULT_BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.methods.set(method, methodCells);
    }
    let request = methodCells.byCode.get(code);
    if (request === undefined) {
      request = { labels: { method, code: String(code) }, count: 0 };
      methodCells.byCode.set(code, request);
      this.requestCells.push(request);
    }
    request.count++;
    // The first bucket whose bound holds it (le: less or equal); past the last, only +Inf.
    let bucket = 0;
    while (bucket < DEFAULT_BUCKETS.length && seconds > (DEFAULT_BUCKETS[bucket] as number)) bucket++;
    if (bucket < DEFAULT_BUCKETS.length) methodCells.buckets[bucket] = (methodCells.buckets[bucket] ?? 0) + 1;
    methodCells.sum += seconds;
    methodCells.count++;
    let repoCell = this.repos.get(repo);
    if (repoCell === undefined) {
      repoCell = { labels: { repo }, sum: 0, count: 0 };
      this.repos.set(repo, repoCell);
    }
    repoCell.sum += seconds;
    repoCell.count++;
  }
}
