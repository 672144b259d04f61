// The dedupe and GC settings of one store, with zot's defaults for what the file leaves out.
// zot's defaults differ between the default root and a subPath (pkg/api/config/config.go New()
// and pkg/cli/server/root.go applyDefaultValues): the default root starts with dedupe and gc on,
// a subPath starts with both off (its settings are Go zero values) and gets the hour-long gcDelay
// and gcInterval only for what it leaves unset. Every reader of these settings asks here.

import { parseDuration } from './duration.js';
import type { SubPathConfig } from './types.js';

/** zot's storage constants: DefaultGCDelay and DefaultGCInterval. */
export const DEFAULT_GC_DELAY_MS = 60 * 60 * 1000;
export const DEFAULT_GC_INTERVAL_MS = 60 * 60 * 1000;

export interface StoreSettings {
  readonly dedupe: boolean;
  readonly gc: boolean;
  readonly gcDelayMs: number;
  readonly gcIntervalMs: number;
}

export type StoreKind = 'default root' | 'subPath';

export function storeSettings(settings: Pick<SubPathConfig, 'dedupe' | 'gc' | 'gcDelay' | 'gcInterval'>, kind: StoreKind): StoreSettings {
  const onByDefault = kind === 'default root';
  return {
    dedupe: settings.dedupe ?? onByDefault,
    gc: settings.gc ?? onByDefault,
    gcDelayMs: durationOr(settings.gcDelay, DEFAULT_GC_DELAY_MS),
    gcIntervalMs: durationOr(settings.gcInterval, DEFAULT_GC_INTERVAL_MS),
  };
}

function durationOr(text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const ms = parseDuration(text);
  if (ms === undefined) throw new Error(`invalid duration ${text}: the config should have been validated`);
  return ms;
}
