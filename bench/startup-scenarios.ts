// Start-up figures, both registries side by side: cold start (spawn to the first 200 on /v2/)
// and idle RSS (the resident set of the process tree once the start-up work has settled, before
// any request other than the readiness probe). Each registry starts on an empty root, the starts
// alternate between the registries, and the figure is the median.

import { setTimeout as sleep } from 'node:timers/promises';
import { median } from './scenarios.js';
import { cpuSeconds, REGISTRY_LABEL, removeTempDir, startRegistry, treeRssMiB, type RegistryKind } from './servers.js';

/** How long a started registry idles before its RSS is read: start-up's background work settles. */
const IDLE_SETTLE_MS = 2000;

export interface StartupRuns {
  startupMs: number[];
  /** CPU time (all threads) the process used up to its first 200: steadier than wall time on a busy machine. */
  startupCpuMs: number[];
  idleRssMiB: number[];
  errors: string[];
}

export interface StartupResult {
  runs: number;
  registries: Partial<Record<RegistryKind, StartupRuns>>;
}

export async function measureStartup(
  kinds: readonly RegistryKind[],
  runs: number,
  tmpRoot: string,
  repoRoot: string,
  log: (msg: string) => void,
): Promise<StartupResult> {
  const registries: Partial<Record<RegistryKind, StartupRuns>> = {};
  for (const kind of kinds) registries[kind] = { startupMs: [], startupCpuMs: [], idleRssMiB: [], errors: [] };
  for (let i = 0; i < runs; i++) {
    for (const kind of kinds) {
      const record = registries[kind] as StartupRuns;
      try {
        const server = await startRegistry({ kind, tmpRoot, repoRoot });
        const cpuMs = cpuSeconds(server.pid) * 1000;
        try {
          await sleep(IDLE_SETTLE_MS);
          const rss = treeRssMiB(server.pid);
          record.startupMs.push(server.startupMs);
          record.startupCpuMs.push(cpuMs);
          record.idleRssMiB.push(rss);
          log(`${REGISTRY_LABEL[kind]} start ${i + 1}/${runs}: first 200 after ${server.startupMs.toFixed(0)} ms (${cpuMs.toFixed(0)} ms CPU), idle RSS ${rss.toFixed(1)} MiB`);
        } finally {
          server.rss.stop();
          await server.stop();
          removeTempDir(server.dir);
        }
      } catch (err) {
        record.errors.push(err instanceof Error ? err.message : String(err));
        log(`${REGISTRY_LABEL[kind]} start ${i + 1}/${runs}: FAILED ${record.errors.at(-1) ?? ''}`);
      }
    }
  }
  return { runs, registries };
}

export function renderStartup(result: StartupResult, kinds: readonly RegistryKind[]): string {
  const fmt = (values: number[], digits: number): string => (values.length === 0 ? 'failed' : median(values).toFixed(digits));
  const width = 46;
  const lines = [
    `${'figure'.padEnd(width)}${kinds.map((k) => REGISTRY_LABEL[k].padStart(16)).join('')}`,
    `${`cold start to first 200 on /v2/, ms (median of ${result.runs})`.padEnd(width)}${kinds
      .map((k) => fmt(result.registries[k]?.startupMs ?? [], 0).padStart(16))
      .join('')}`,
    `${`CPU used until the first 200, ms (median of ${result.runs})`.padEnd(width)}${kinds
      .map((k) => fmt(result.registries[k]?.startupCpuMs ?? [], 0).padStart(16))
      .join('')}`,
    `${`idle RSS after start, MiB (median of ${result.runs})`.padEnd(width)}${kinds
      .map((k) => fmt(result.registries[k]?.idleRssMiB ?? [], 1).padStart(16))
      .join('')}`,
  ];
  for (const k of kinds) {
    const r = result.registries[k];
    if (r === undefined) continue;
    lines.push(`${REGISTRY_LABEL[k]}: start-ups (ms) [${r.startupMs.map((x) => x.toFixed(0)).join(', ')}], CPU (ms) [${r.startupCpuMs.map((x) => x.toFixed(0)).join(', ')}], idle RSS (MiB) [${r.idleRssMiB.map((x) => x.toFixed(1)).join(', ')}]`);
    for (const e of r.errors) lines.push(`${REGISTRY_LABEL[k]}: failed start: ${e}`);
  }
  return lines.join('\n');
}
