// The process logger (pino): JSON lines at `log.level`, to `log.output` or stdout.
import { pino, type Logger } from 'pino';
import type { LogConfig } from './config/types.js';

/** Field paths whose values never reach a log line, at any level. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'password',
  '*.password',
  'bindPassword',
  '*.bindPassword',
  'secretkey',
  '*.secretkey',
  'accesskey',
  '*.accesskey',
  'token',
  '*.token',
];

export function createLogger(config: LogConfig | undefined): Logger {
  const destination = config?.output ? pino.destination({ dest: config.output, mkdir: true, sync: false }) : pino.destination({ dest: 1, sync: false });
  return pino(
    {
      level: config?.level ?? 'info',
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      base: { service: 'zot-ts' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
