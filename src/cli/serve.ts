// `zot serve <config>`: runs the registry until SIGTERM or SIGINT, then drains in-flight requests
// and closes the event log cleanly.
import { startRegistry } from '../app.js';
import { unbuiltFeatures } from '../config/index.js';
import { loadConfigOrReport } from './load.js';

export async function runServe(args: string[]): Promise<number> {
  const config = loadConfigOrReport(args[0]);
  if (!config) return 1;
  const unbuilt = unbuiltFeatures(config);
  if (unbuilt.length > 0) {
    process.stderr.write(`zot: refusing to start: the configuration asks for features this release does not have yet:\n`);
    for (const feature of unbuilt) process.stderr.write(`  ${feature}\n`);
    return 1;
  }
  const running = await startRegistry(config);
  // logrotate and friends move the files away and send SIGHUP: reopen them by name.
  const reopen = (): void => {
    running.logger.info('reopening log files');
    void running.reopenLogFiles();
  };
  process.on('SIGHUP', reopen);
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      running.logger.info({ signal }, 'shutting down');
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  process.off('SIGHUP', reopen);
  await running.close();
  running.logger.info('registry stopped');
  running.logger.flush();
  return 0;
}
