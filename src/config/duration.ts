// Durations are written the way Go's time.ParseDuration reads them ("1h", "30m", "1h30m",
// "1.5s", "250ms"), because zot parses its config with Go and existing files must keep working.
// A sign is not accepted: no duration in the config means anything when negative.

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3, // U+00B5 MICRO SIGN
  'μs': 1e-3, // U+03BC GREEK SMALL LETTER MU
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

// µs in both spellings (U+00B5 micro sign, U+03BC mu), escaped: the CLI bundle stays ASCII, which
// node reads as a one-byte string (src/cli/bundle-loader.cts).
const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;

/** Milliseconds in a Go duration string, or undefined when the text is not one. */
export function parseDuration(text: string): number | undefined {
  // Go accepts a bare "0" without a unit, and only that number.
  if (text === '0') return 0;
  if (text === '') return undefined;
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < text.length) {
    const match = PART.exec(text);
    if (match === null) return undefined;
    const [, amount, unit] = match;
    total += Number(amount) * (UNIT_MS[unit ?? ''] ?? Number.NaN);
  }
  return Number.isFinite(total) ? total : undefined;
}

export function isDuration(text: string): boolean {
  return parseDuration(text) !== undefined;
}
