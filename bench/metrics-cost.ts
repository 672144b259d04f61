// The cost of observability on the hot path: zot-ts with the Prometheus metrics and the audit log
// both off, then both on; the same client, manifest GET throughput and the many-small-images
// push, on a fresh server each time.
// Rounds alternate the order (off, on / on, off) so a drift of the shared machine falls on both.
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { manifestGets, median, pushSmallImages, type Sizes } from './scenarios.js';
import { removeTempDir, startRegistry, type ServerHandle } from './servers.js';

export type MetricsVariant = 'off' | 'on';

/** Metrics and the audit log on; the audit file goes beside the server's data. */
function observabilityOn(tmpRoot: string): Record<string, unknown> {
  return {
    extensions: { metrics: { enable: true, prometheus: { path: '/metrics' } } },
    log: { level: 'warn', audit: path.join(tmpRoot, `audit-${process.pid}-${Date.now()}.log`) },
  };
}

export interface VariantRun {
  imagesPerS: number;
  getRps: number;
  getP50Ms: number;
  getP99Ms: number;
}

export interface MetricsCostResult {
  rounds: number;
  runs: Record<MetricsVariant, VariantRun[]>;
  /** Medians over the rounds. */
  median: Record<MetricsVariant, VariantRun>;
  errors: string[];
  /** What the metrics-on server reported, as a check that it counted what the bench did. */
  uploadsCounted: number[];
}

/** Sum of the samples of one metric in Prometheus text (labels ignored). */
function sumOf(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (match) sum += Number(match[1]);
  }
  return sum;
}

async function runVariant(variant: MetricsVariant, sizes: Sizes, tmpRoot: string, repoRoot: string, result: MetricsCostResult, log: (msg: string) => void): Promise<void> {
  let server: ServerHandle | undefined;
  try {
    server = await startRegistry({ kind: 'zot', tmpRoot, repoRoot, ...(variant === 'on' ? { zotConfig: observabilityOn(tmpRoot) } : {}) });
    const t0 = performance.now();
    const small = await pushSmallImages(server.baseUrl, sizes);
    const gets = await manifestGets(server.baseUrl, sizes);
    const run: VariantRun = { imagesPerS: small.imagesPerS, getRps: gets.rps, getP50Ms: gets.p50Ms, getP99Ms: gets.p99Ms };
    result.runs[variant].push(run);
    if (variant === 'on') {
      const res = await fetch(`${server.baseUrl}/metrics`);
      result.uploadsCounted.push(sumOf(await res.text(), 'zot_repo_uploads_total'));
    }
    log(
      `zot-ts metrics and audit ${variant}: ${run.imagesPerS.toFixed(1)} images/s, manifest GET ${run.getRps.toFixed(0)} req/s ` +
        `(p50 ${run.getP50Ms.toFixed(2)} ms, p99 ${run.getP99Ms.toFixed(2)} ms) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  } catch (err) {
    const error = `metrics ${variant}: ${err instanceof Error ? err.message : String(err)}`;
    result.errors.push(error);
    log(`zot-ts ${error}`);
  } finally {
    if (server !== undefined) {
      server.rss.stop();
      await server.stop();
      removeTempDir(server.dir);
    }
  }
}

export async function measureMetricsCost(sizes: Sizes, tmpRoot: string, repoRoot: string, log: (msg: string) => void): Promise<MetricsCostResult> {
  const rounds = sizes.quick ? 1 : 2;
  const result: MetricsCostResult = { rounds, runs: { off: [], on: [] }, median: { off: empty(), on: empty() }, errors: [], uploadsCounted: [] };
  for (let round = 0; round < rounds; round++) {
    const order: MetricsVariant[] = round % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
    for (const variant of order) await runVariant(variant, sizes, tmpRoot, repoRoot, result, log);
  }
  for (const variant of ['off', 'on'] as const) {
    const runs = result.runs[variant];
    if (runs.length === 0) continue;
    result.median[variant] = {
      imagesPerS: median(runs.map((r) => r.imagesPerS)),
      getRps: median(runs.map((r) => r.getRps)),
      getP50Ms: median(runs.map((r) => r.getP50Ms)),
      getP99Ms: median(runs.map((r) => r.getP99Ms)),
    };
  }
  return result;
}

function empty(): VariantRun {
  return { imagesPerS: NaN, getRps: NaN, getP50Ms: NaN, getP99Ms: NaN };
}

export function renderMetricsCost(result: MetricsCostResult, sizes: Sizes): string {
  const { off, on } = result.median;
  const rows: [string, string, number, number, number][] = [
    [`push ${sizes.smallImages} small images, c=${sizes.smallConcurrency}`, 'images/s', off.imagesPerS, on.imagesPerS, 1],
    [`manifest GET c=${sizes.getConcurrency}, ${sizes.getDurationMs / 1000} s: throughput`, 'req/s', off.getRps, on.getRps, 0],
    [`manifest GET c=${sizes.getConcurrency}: p50`, 'ms', off.getP50Ms, on.getP50Ms, 2],
    [`manifest GET c=${sizes.getConcurrency}: p99`, 'ms', off.getP99Ms, on.getP99Ms, 2],
  ];
  const header = ['figure', 'unit', 'both off', 'both on', 'on/off'];
  const fmt = (v: number, digits: number): string => (Number.isFinite(v) ? v.toFixed(digits) : 'FAILED');
  const lines = rows.map(([figure, unit, a, b, digits]) => [figure, unit, fmt(a, digits), fmt(b, digits), Number.isFinite(a / b) ? (b / a).toFixed(2) : '—']);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const row = (cols: string[]): string => cols.map((c, i) => (i >= 2 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join(' | ').trimEnd();
  const out = [
    `zot-ts with metrics and audit log both off and both on (median of ${result.rounds} round${result.rounds === 1 ? '' : 's'}, fresh server each, order alternating)`,
    row(header),
    widths.map((w) => '-'.repeat(w)).join('-|-'),
    ...lines.map(row),
  ];
  if (result.uploadsCounted.length > 0) {
    out.push(`zot_repo_uploads_total summed over repositories on the metrics-on servers: ${result.uploadsCounted.join(', ')} (each pushed ${sizes.smallImages + 1} images)`);
  }
  for (const error of result.errors) out.push(`FAILED ${error}`);
  return out.join('\n');
}
