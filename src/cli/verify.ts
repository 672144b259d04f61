// `zot verify <config>`: every problem with its path (exit 1); or, for a valid file, what serve
// will listen on and the storage roots it will use, then the features serve would refuse, if any
// (exit 1 when there are some).
import { parseArgs } from 'node:util';
import { storeSettings, unbuiltFeatures, type Config, type StoreKind, type SubPathConfig } from '../config/index.js';
import { loadConfigOrReport, refusalLines } from './load.js';
import { configArgument, EXIT } from './usage.js';

export async function runVerify(args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  const file = configArgument(positionals);
  const config = loadConfigOrReport(file);
  if (!config) return EXIT.problem;
  process.stdout.write(`${file}: valid configuration\n${describeConfig(config)}`);
  const unbuilt = unbuiltFeatures(config);
  if (unbuilt.length === 0) return EXIT.ok;
  process.stderr.write(`zot verify: serve would refuse to start: the configuration asks for features this release does not have:\n${refusalLines(unbuilt)}`);
  return EXIT.problem;
}

/** The listener and every storage root, one line each. */
export function describeConfig(config: Config): string {
  const lines = [`  listen: ${listenUrl(config)}`, `  storage: ${describeStore(config.storage, 'default root')}`];
  for (const [route, subPath] of Object.entries(config.storage.subPaths ?? {})) {
    lines.push(`  storage ${route}: ${describeStore(subPath, 'subPath')}`);
  }
  return `${lines.join('\n')}\n`;
}

function listenUrl(config: Config): string {
  const { address, port, tls } = config.http;
  const scheme = tls?.cert !== undefined ? 'https' : 'http';
  const host = address === '' ? '*' : address.includes(':') ? `[${address}]` : address;
  const notes = [...(address === '' ? ['every interface'] : []), ...(port === '0' ? ['a free port chosen at start'] : [])];
  return `${scheme}://${host}:${port}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`;
}

function describeStore(store: SubPathConfig, kind: StoreKind): string {
  const { dedupe, gc, gcDelayMs, gcIntervalMs } = storeSettings(store, kind);
  const driver = store.storageDriver;
  const where =
    driver === undefined ? 'filesystem'
    : driver.name === 's3' ? `s3 bucket ${driver.bucket ?? '?'}${driver.rootdirectory ? ` under ${driver.rootdirectory}` : ''}${driver.regionendpoint ? ` at ${driver.regionendpoint}` : ''}`
    : `${driver.name} driver`;
  const collection = gc ? `gc on (delay ${formatMs(gcDelayMs)}, every ${formatMs(gcIntervalMs)})` : 'gc off';
  return `${store.rootDirectory} (${where}, dedupe ${dedupe ? 'on' : 'off'}, ${collection})`;
}

/** Milliseconds as a Go duration, the way the file writes them (5400000 -> 1h30m). */
export function formatMs(ms: number): string {
  if (ms === 0) return '0s';
  const units: [string, number][] = [['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]];
  let rest = ms;
  let text = '';
  for (const [unit, size] of units) {
    const amount = Math.floor(rest / size);
    if (amount > 0) text += `${amount}${unit}`;
    rest -= amount * size;
  }
  return text === '' ? `${ms}ms` : text;
}
