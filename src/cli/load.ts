// Config loading for the commands: errors become one readable message on stderr.
import { ConfigError, loadConfigFile, type Config } from '../config/index.js';

/** The validated configuration, or undefined once every problem is on stderr (a problem found: exit 1). */
export function loadConfigOrReport(file: string): Config | undefined {
  try {
    return loadConfigFile(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return undefined;
    }
    throw err;
  }
}

/** What `zot serve` says, and `zot verify` repeats, when the configuration asks for unbuilt features. */
export function refusalLines(unbuilt: readonly string[]): string {
  return unbuilt.map((line) => `  ${line}\n`).join('');
}
