// Figure 4 (small images at c=16) for this checkout's zot-ts next to another build of it, in one
// run: how to tell whether a change moves the figure on a shared, noisy machine, where
// `--only small` gave 2.36 and then 3.05 for one build ten minutes apart. Here both servers are up
// at once, each gets two warm-up rounds (JIT, the first burst of new repositories), then the
// rounds alternate in ABBA order, so that neither build always runs first, and the ratio is taken
// round by round: a drift of the machine falls on both sides of each ratio. On the day it was
// written (2026-11-30), medians of 10 paired rounds read 0.988 for two identical builds (rounds
// 0.96-1.07), and 1.109 and 1.119 in two runs for the change that left index.json out of a new
// repository's layout (b03f403, every round above 1).
//
//   npm run build; (cd ../other-checkout && npm ci && npm run build)
//   npm run bench -- --only small-ab --against ../other-checkout
import fs from 'node:fs';
import path from 'node:path';
import { bundleIsCurrent, cliEntryPoints } from '../src/cli/bundle-loader.cjs';
import { median, pushSmallImages, type Sizes, type SmallImagesResult } from './scenarios.js';
import { cpuSeconds, removeTempDir, startRegistry, type ServerHandle } from './servers.js';

/** This checkout's build, and the one it is measured against. */
export type AbSide = 'this' | 'against';

/** Rounds each server runs before the measured ones, unreported. */
const WARM_UP_ROUNDS = 2;

export interface SmallAbResult {
  /** The other checkout (as given on the command line, resolved). */
  against: string;
  warmUpRounds: number;
  rounds: number;
  images: number;
  runs: Record<AbSide, SmallImagesResult[]>;
  /** Images/s of this build over the other's, round by round (a round's two runs are back to back). */
  pairedRatios: number[];
  /** Medians over the measured rounds. */
  median: { pairedRatio: number } & Record<AbSide, { imagesPerS: number; p99Ms: number; serverCpuMsPerImage: number }>;
}

/** Fails unless `checkout` holds a zot-ts whose bundle is current (built there with npm run build). */
export function assertBuiltCheckout(checkout: string): void {
  if (!fs.existsSync(path.join(checkout, 'bin', 'zot.js'))) throw new Error(`--against ${checkout}: no bin/zot.js there; give the root of a zot-ts checkout`);
  if (!bundleIsCurrent(cliEntryPoints(path.join(checkout, 'dist')))) {
    throw new Error(`--against ${checkout}: its dist/bundle is missing or older than its tsc output; run npm run build there first`);
  }
}

/** One round of `server`, with the registry's CPU per image. */
async function round(server: ServerHandle, sizes: Sizes, prefix: string): Promise<SmallImagesResult> {
  const cpuBefore = cpuSeconds(server.pid);
  const result = await pushSmallImages(server.baseUrl, sizes, prefix);
  result.serverCpuMsPerImage = ((cpuSeconds(server.pid) - cpuBefore) * 1000) / result.images;
  return result;
}

export async function measureSmallAb(
  sizes: Sizes,
  rounds: number,
  tmpRoot: string,
  repoRoot: string,
  against: string,
  log: (msg: string) => void,
): Promise<SmallAbResult> {
  const checkouts: Record<AbSide, string> = { this: repoRoot, against: path.resolve(against) };
  assertBuiltCheckout(checkouts.against);
  const servers: Partial<Record<AbSide, ServerHandle>> = {};
  const runs: Record<AbSide, SmallImagesResult[]> = { this: [], against: [] };
  const pairedRatios: number[] = [];
  try {
    for (const side of ['this', 'against'] as const) {
      const server = await startRegistry({ kind: 'zot', tmpRoot, repoRoot: checkouts[side] });
      servers[side] = server;
      log(`${side} (${checkouts[side]}): pid ${server.pid} on ${server.baseUrl}`);
    }
    const running = servers as Record<AbSide, ServerHandle>;
    for (let r = 0; r < WARM_UP_ROUNDS + rounds; r++) {
      const order: AbSide[] = r % 2 === 0 ? ['this', 'against'] : ['against', 'this'];
      const results: Partial<Record<AbSide, SmallImagesResult>> = {};
      for (const side of order) results[side] = await round(running[side], sizes, `ab/r${r}small`);
      const { this: mine, against: theirs } = results as Record<AbSide, SmallImagesResult>;
      const measured = r >= WARM_UP_ROUNDS;
      if (measured) {
        runs.this.push(mine);
        runs.against.push(theirs);
        pairedRatios.push(mine.imagesPerS / theirs.imagesPerS);
      }
      log(
        `${measured ? `round ${r - WARM_UP_ROUNDS + 1}/${rounds}` : `warm-up ${r + 1}/${WARM_UP_ROUNDS}`} (${order.join(' first, ')} second): ` +
          `this ${mine.imagesPerS.toFixed(1)} images/s, against ${theirs.imagesPerS.toFixed(1)}; ratio ${(mine.imagesPerS / theirs.imagesPerS).toFixed(3)}`,
      );
    }
  } finally {
    for (const server of Object.values(servers)) {
      server.rss.stop();
      await server.stop();
      removeTempDir(server.dir);
    }
  }
  const sideMedians = (side: AbSide): SmallAbResult['median'][AbSide] => ({
    imagesPerS: median(runs[side].map((r) => r.imagesPerS)),
    p99Ms: median(runs[side].map((r) => r.perImage.p99Ms)),
    serverCpuMsPerImage: median(runs[side].map((r) => r.serverCpuMsPerImage ?? Number.NaN)),
  });
  return {
    against: checkouts.against,
    warmUpRounds: WARM_UP_ROUNDS,
    rounds,
    images: sizes.smallImages,
    runs,
    pairedRatios,
    median: { pairedRatio: median(pairedRatios), this: sideMedians('this'), against: sideMedians('against') },
  };
}

export function renderSmallAb(result: SmallAbResult, sizes: Sizes): string {
  const { median: m } = result;
  const row = (label: string, unit: string, mine: number, theirs: number, digits: number): string =>
    `${label.padEnd(40)} | ${unit.padEnd(9)} | ${mine.toFixed(digits).padStart(8)} | ${theirs.toFixed(digits).padStart(8)} | ${(mine / theirs).toFixed(3).padStart(6)}`;
  return [
    `figure 4 (${result.images} small images, c=${sizes.smallConcurrency}), this checkout against ${result.against}:`,
    `${result.warmUpRounds} warm-up rounds each, then ${result.rounds} rounds in ABBA order; medians`,
    '',
    `${'figure'.padEnd(40)} | ${'unit'.padEnd(9)} | ${'this'.padStart(8)} | ${'against'.padStart(8)} | ${'ratio'.padStart(6)}`,
    row('images/s', 'images/s', m.this.imagesPerS, m.against.imagesPerS, 1),
    row('per image p99', 'ms', m.this.p99Ms, m.against.p99Ms, 1),
    row('registry CPU per image', 'ms', m.this.serverCpuMsPerImage, m.against.serverCpuMsPerImage, 2),
    '',
    `images/s, this over against, round by round: ${result.pairedRatios.map((r) => r.toFixed(3)).join(' ')}`,
    `median of the paired ratios: ${m.pairedRatio.toFixed(3)} (the figure to read: above 1, this build is faster)`,
  ].join('\n');
}
