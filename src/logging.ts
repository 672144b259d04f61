// The process logger (pino): JSON lines at `log.level`, to `log.output` or stdout.
import { pino, type Logger } from 'pino';
import type { LogConfig } from './config/types.js';

/**
 * Field paths whose values never reach a log line, at any level: credentials a request carries
 * (Authorization, cookies), configured secrets (bindPassword, S3 keys), tokens and password
 * hashes. The code logs none of them; this catches a field added by mistake, or an object (a
 * request, a config section) logged whole.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["proxy-authorization"]',
  'headers.cookie',
  'authorization',
  '*.authorization',
  'password',
  '*.password',
  'passwordHash',
  '*.passwordHash',
  'bindPassword',
  '*.bindPassword',
  'credentials',
  '*.credentials',
  'secretkey',
  '*.secretkey',
  'accesskey',
  '*.accesskey',
  'token',
  '*.token',
];

type Destination = ReturnType<typeof pino.destination>;

/** The `log.output` file of each logger createLogger made, for reopening after a rotation. */
const fileDestinations = new WeakMap<Logger, Destination>();

export function createLogger(config: LogConfig | undefined): Logger {
  const destination = config?.output ? pino.destination({ dest: config.output, mkdir: true, sync: false }) : pino.destination({ dest: 1, sync: false });
  const logger = pino(
    {
      level: config?.level ?? 'info',
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      base: { service: 'zot-ts' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
  if (config?.output) fileDestinations.set(logger, destination);
  return logger;
}

/** Reopens the log file by name (SIGHUP after a rotation); stdout and other loggers are left alone. */
export function reopenLogOutput(logger: Logger): void {
  fileDestinations.get(logger)?.reopen();
}
