// A zot-ts registry with a sync section, started in-process, whose log lines the test can read.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { SyncConfig } from '../../src/config/types.js';
import type { StartOptions } from '../../src/app.js';
import { startTestRegistry, type TestConfigOptions, type TestRegistry } from './registry.js';

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface SyncingRegistry extends TestRegistry {
  logs(): LogLine[];
}

export async function startSyncingRegistry(sync: SyncConfig, options: TestConfigOptions = {}, start: StartOptions = {}): Promise<SyncingRegistry> {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  const registry = await startTestRegistry({ ...options, extensions: { ...options.extensions, sync } }, { ...start, logger });
  return { ...registry, logs: () => lines };
}

/** The repositories of a registry's catalog, each with its sorted tags. */
export async function catalogWithTags(url: string): Promise<Record<string, string[]>> {
  const catalog = (await (await fetch(`${url}/v2/_catalog`)).json()) as { repositories: string[] };
  const result: Record<string, string[]> = {};
  for (const repo of catalog.repositories) {
    const tags = (await (await fetch(`${url}/v2/${repo}/tags/list`)).json()) as { tags: string[] };
    result[repo] = [...tags.tags].sort();
  }
  return result;
}
