// Debian's `docker-registry` (the CNCF distribution registry 2.x) as a real upstream for the sync
// tests: started on a free port of 127.0.0.1 with a generated config (plain, TLS with an optional
// client CA, htpasswd or token authentication, or proxy mode), and stopped by the test.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { getFreePort, makeTempDir } from './registry.js';

export const DOCKER_REGISTRY = '/usr/bin/docker-registry';

export interface DockerRegistryOptions {
  tls?: { cert: string; key: string; clientCa?: string };
  htpasswd?: { file: string };
  token?: { realm: string; service: string; issuer: string; certFile: string };
  /** Pull-through cache of another registry (distribution's proxy mode). */
  proxy?: { remoteurl: string; username?: string; password?: string };
}

export interface DockerRegistry {
  url: string;
  /** host:port, for skopeo references. */
  host: string;
  dataDir: string;
  output(): string;
  stop(): Promise<void>;
}

function configText(dataDir: string, port: number, options: DockerRegistryOptions): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${dataDir}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  secret: zot-ts-sync-test-not-a-secret',
  ];
  if (options.tls) {
    lines.push('  tls:', `    certificate: ${options.tls.cert}`, `    key: ${options.tls.key}`);
    if (options.tls.clientCa) lines.push('    clientcas:', `      - ${options.tls.clientCa}`);
  }
  if (options.htpasswd) lines.push('auth:', '  htpasswd:', '    realm: zot-ts-sync-test', `    path: ${options.htpasswd.file}`);
  if (options.token) {
    const t = options.token;
    lines.push('auth:', '  token:', `    realm: ${t.realm}`, `    service: ${t.service}`, `    issuer: ${t.issuer}`, `    rootcertbundle: ${t.certFile}`);
  }
  if (options.proxy) {
    lines.push('proxy:', `  remoteurl: ${options.proxy.remoteurl}`);
    if (options.proxy.username !== undefined) lines.push(`  username: ${options.proxy.username}`, `  password: ${options.proxy.password ?? ''}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The port accepts connections (a TLS registry with a client CA refuses handshakes without a certificate). */
function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

export async function startDockerRegistry(options: DockerRegistryOptions = {}): Promise<DockerRegistry> {
  const dir = makeTempDir('zot-ts-docker-registry-');
  const dataDir = path.join(dir, 'data');
  fs.mkdirSync(dataDir);
  const port = await getFreePort();
  const configPath = path.join(dir, 'config.yml');
  fs.writeFileSync(configPath, configText(dataDir, port, options));
  const child: ChildProcess = spawn(DOCKER_REGISTRY, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const scheme = options.tls ? 'https' : 'http';
  const url = `${scheme}://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  while (!(await probe(port))) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}: ${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`docker-registry did not start within 15 s: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    host: `127.0.0.1:${port}`,
    dataDir,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
