// Runs the real skopeo client against the registries under test, isolated from the machine's
// containers configuration: a temporary HOME and XDG directories, an empty registries.conf, and
// --insecure-policy (the system policy.json may be missing). close() kills any run still going.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir } from './registry.js';

export const SKOPEO = '/usr/bin/skopeo';
const RUN_TIMEOUT_MS = 60_000;

export interface SkopeoResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Skopeo {
  run(args: string[]): Promise<SkopeoResult>;
  /** Like run, but throws with skopeo's stderr unless it exits 0. */
  ok(args: string[]): Promise<SkopeoResult>;
  close(): void;
}

export function skopeo(): Skopeo {
  const home = makeTempDir('zot-ts-skopeo-');
  const dirs = { HOME: home, XDG_CONFIG_HOME: 'config', XDG_DATA_HOME: 'data', XDG_CACHE_HOME: 'cache', XDG_RUNTIME_DIR: 'run' };
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  for (const [name, dir] of Object.entries(dirs)) {
    if (name === 'HOME') continue;
    const full = path.join(home, dir);
    fs.mkdirSync(full, { recursive: true, mode: 0o700 });
    env[name] = full;
  }
  const registriesConf = path.join(home, 'registries.conf');
  fs.writeFileSync(registriesConf, '');
  env.CONTAINERS_REGISTRIES_CONF = registriesConf;
  env.REGISTRY_AUTH_FILE = path.join(home, 'auth.json');

  const running = new Set<ChildProcess>();
  const run = (args: string[]): Promise<SkopeoResult> =>
    new Promise((resolve, reject) => {
      const child = spawn(SKOPEO, ['--insecure-policy', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      running.add(child);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        running.delete(child);
        resolve({ code, stdout, stderr });
      });
    });
  return {
    run,
    ok: async (args) => {
      const result = await run(args);
      if (result.code !== 0) throw new Error(`skopeo ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
      return result;
    },
    close: () => {
      for (const child of running) child.kill('SIGKILL');
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}
