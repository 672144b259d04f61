// A pino logger whose lines the test can read back, with the registry's redaction rules.
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { REDACTED_PATHS } from '../../src/logging.js';

export interface CapturedLog {
  logger: Logger;
  lines(): string[];
  /** Parsed lines whose msg is `message`. */
  entries(message: string): Record<string, unknown>[];
}

export function captureLog(level: pino.LevelWithSilent = 'debug'): CapturedLog {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter((line) => line !== ''));
      done();
    },
  });
  const logger = pino({ level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, stream);
  return {
    logger,
    lines: () => [...lines],
    entries: (message) => lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => entry['msg'] === message),
  };
}
