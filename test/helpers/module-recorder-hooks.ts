// Loader hooks of module-recorder.ts: each resolved URL is appended to the log file.
import { appendFileSync } from 'node:fs';

let log = '';

export function initialize(data: { log: string }): void {
  log = data.log;
}

type Resolved = { url: string };

export async function resolve(specifier: string, context: unknown, next: (specifier: string, context: unknown) => Promise<Resolved>): Promise<Resolved> {
  const resolved = await next(specifier, context);
  appendFileSync(log, `${resolved.url}\n`);
  return resolved;
}
