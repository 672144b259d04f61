// Config loading for the commands: errors become one readable message on stderr.
import { ConfigError, loadConfigFile, type Config } from '../config/index.js';
export function loadConfigOrReport(file: string | undefined): Config | undefined {
  if (file === undefined) {
    process.stderr.write('zot: a configuration file is required\n');
    return undefined;
  }
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
