// The cost of authentication on the hot path: manifest GETs at concurrency 50, anonymous and
// with HTTP Basic against an htpasswd file of bcrypt cost 10, for zot-ts and for distribution
// (its own `auth: htpasswd`), each on a fresh server. bcrypt at cost 10 takes tens of
// milliseconds (hundreds in pure JavaScript): a registry that runs it on every request is bound
// by it; zot-ts keeps verified credentials for a short time (src/auth/credential-cache.ts).
// Rounds alternate the order (anonymous first, then htpasswd first) so a drift of the shared
// machine falls on both.
import * as fs from 'node:fs';
import * as path from 'node:path';
import bcrypt from 'bcryptjs';
import { manifestGets, median, type Sizes } from './scenarios.js';
import { REGISTRY_LABEL, removeTempDir, startRegistry, type RegistryKind, type ServerHandle } from './servers.js';

export type AuthVariant = 'anonymous' | 'htpasswd';

/** The cost `htpasswd -B` uses by default, and the one the issue asks to measure. */
export const BENCH_BCRYPT_COST = 10;
const USER = 'bench';
const PASSWORD = 'bench-password-not-a-secret';

export interface AuthRun {
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

export interface AuthCostResult {
  rounds: number;
  kinds: RegistryKind[];
  runs: Partial<Record<RegistryKind, Record<AuthVariant, AuthRun[]>>>;
  /** Medians over the rounds. */
  median: Partial<Record<RegistryKind, Record<AuthVariant, AuthRun>>>;
  errors: string[];
}

function authorization(): string {
  return `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
}

async function runVariant(
  kind: RegistryKind,
  variant: AuthVariant,
  htpasswd: string,
  sizes: Sizes,
  tmpRoot: string,
  repoRoot: string,
  result: AuthCostResult,
  log: (msg: string) => void,
): Promise<void> {
  let server: ServerHandle | undefined;
  const label = `${REGISTRY_LABEL[kind]} ${variant}`;
  try {
    server = await startRegistry({ kind, tmpRoot, repoRoot, ...(variant === 'htpasswd' ? { htpasswd } : {}) });
    const gets = await manifestGets(server.baseUrl, sizes, variant === 'htpasswd' ? authorization() : undefined);
    const run: AuthRun = { rps: gets.rps, p50Ms: gets.p50Ms, p99Ms: gets.p99Ms };
    result.runs[kind]?.[variant].push(run);
    log(`${label}: manifest GET ${run.rps.toFixed(0)} req/s (p50 ${run.p50Ms.toFixed(2)} ms, p99 ${run.p99Ms.toFixed(2)} ms)`);
  } catch (err) {
    const error = `${label}: ${err instanceof Error ? err.message : String(err)}`;
    result.errors.push(error);
    log(error);
  } finally {
    if (server !== undefined) {
      server.rss.stop();
      await server.stop();
      removeTempDir(server.dir);
    }
  }
}

export async function measureAuthCost(
  kinds: readonly RegistryKind[],
  sizes: Sizes,
  tmpRoot: string,
  repoRoot: string,
  log: (msg: string) => void,
): Promise<AuthCostResult> {
  const rounds = sizes.quick ? 1 : 2;
  const result: AuthCostResult = { rounds, kinds: [...kinds], runs: {}, median: {}, errors: [] };
  for (const kind of kinds) result.runs[kind] = { anonymous: [], htpasswd: [] };
  const htpasswd = path.join(tmpRoot, `htpasswd-${process.pid}`);
  fs.writeFileSync(htpasswd, `${USER}:${bcrypt.hashSync(PASSWORD, BENCH_BCRYPT_COST)}\n`);
  for (let round = 0; round < rounds; round++) {
    const order: AuthVariant[] = round % 2 === 0 ? ['anonymous', 'htpasswd'] : ['htpasswd', 'anonymous'];
    for (const kind of kinds) {
      for (const variant of order) await runVariant(kind, variant, htpasswd, sizes, tmpRoot, repoRoot, result, log);
    }
  }
  for (const kind of kinds) {
    const runs = result.runs[kind];
    if (runs === undefined) continue;
    const med = (variant: AuthVariant): AuthRun => ({
      rps: median(runs[variant].map((r) => r.rps)),
      p50Ms: median(runs[variant].map((r) => r.p50Ms)),
      p99Ms: median(runs[variant].map((r) => r.p99Ms)),
    });
    result.median[kind] = { anonymous: med('anonymous'), htpasswd: med('htpasswd') };
  }
  return result;
}

export function renderAuthCost(result: AuthCostResult, sizes: Sizes): string {
  const header = ['figure', 'unit', 'anonymous', 'htpasswd', 'htpasswd/anonymous'];
  const fmt = (v: number, digits: number): string => (Number.isFinite(v) ? v.toFixed(digits) : 'FAILED');
  const lines: string[][] = [];
  for (const kind of result.kinds) {
    const m = result.median[kind];
    if (m === undefined) continue;
    const figure = `${REGISTRY_LABEL[kind]}: manifest GET c=${sizes.getConcurrency}, ${sizes.getDurationMs / 1000} s`;
    const rows: [string, string, number, number, number][] = [
      [`${figure}: throughput`, 'req/s', m.anonymous.rps, m.htpasswd.rps, 0],
      [`${REGISTRY_LABEL[kind]}: p50`, 'ms', m.anonymous.p50Ms, m.htpasswd.p50Ms, 2],
      [`${REGISTRY_LABEL[kind]}: p99`, 'ms', m.anonymous.p99Ms, m.htpasswd.p99Ms, 2],
    ];
    for (const [name, unit, a, b, digits] of rows) {
      lines.push([name, unit, fmt(a, digits), fmt(b, digits), Number.isFinite(b / a) ? (b / a).toFixed(2) : '—']);
    }
  }
  const zot = result.median.zot;
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const row = (cols: string[]): string => cols.map((c, i) => (i >= 2 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join(' | ').trimEnd();
  const out = [
    `Authentication: HTTP Basic against htpasswd (bcrypt cost ${BENCH_BCRYPT_COST}) next to anonymous (median of ${result.rounds} round${result.rounds === 1 ? '' : 's'}, fresh server each, order alternating)`,
    row(header),
    widths.map((w) => '-'.repeat(w)).join('-|-'),
    ...lines.map(row),
  ];
  if (zot !== undefined && Number.isFinite(zot.htpasswd.rps / zot.anonymous.rps)) {
    const ratio = zot.htpasswd.rps / zot.anonymous.rps;
    out.push(`zot-ts authenticated GETs at ${ratio.toFixed(2)}x of its anonymous rate (aim: at least 0.80x)`);
  }
  for (const error of result.errors) out.push(`FAILED ${error}`);
  return out.join('\n');
}
