// Config loading for the commands: errors become one readable message on stderr.
import { ConfigError, loadConfigFile, type Config } from '../config/index.js';
import { configFileProblems } from './config-files.js';

export interface LoadOptions {
  /** Also check the files the configuration names (certificates, keys, credentials): verify, serve. */
  checkFiles?: boolean;
}

export function loadConfigOrReport(file: string | undefined, options: LoadOptions = {}): Config | undefined {
  if (file === undefined) {
    process.stderr.write('zot: a configuration file is required\n');
    return undefined;
  }
  try {
    const config = loadConfigFile(file);
    const problems = options.checkFiles ? configFileProblems(config) : [];
    if (problems.length > 0) throw new ConfigError(file, problems);
    return config;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return undefined;
    }
    throw err;
  }
}
