// Receivers for the events extension's tests: an HTTP sink written here (a node:http server that
// records every CloudEvent POSTed to it, and can be stopped and started again on its port), and
// Debian's nats-server (/usr/sbin/nats-server) started on a free port of 127.0.0.1 with a
// subscriber from the nats client, and a TCP relay put between the registry and nats-server that
// counts the client's flushes (its PINGs) and can cut the way through. Every receiver is stopped
// by the test that started it.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { connect, type NatsConnection, type Subscription } from 'nats';
import { getFreePort, makeTempDir } from './registry.js';

export const NATS_SERVER = '/usr/sbin/nats-server';

/** A CloudEvent as a receiver got it: its attributes and its data. */
export interface ReceivedEvent {
  id: string;
  type: string;
  source: string;
  specversion: string;
  time: string;
  datacontenttype?: string;
  channel?: string;
  data: Record<string, unknown>;
}

export class HttpEventSink {
  readonly received: ReceivedEvent[] = [];
  /** Headers of each request, in order. */
  readonly requests: http.IncomingHttpHeaders[] = [];
  private server?: http.Server;

  private constructor(readonly port: number) {}

  static async start(): Promise<HttpEventSink> {
    const sink = new HttpEventSink(await getFreePort());
    await sink.listen();
    return sink;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/events`;
  }

  async listen(): Promise<void> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const header = (name: string) => req.headers[name] as string | undefined;
        this.requests.push(req.headers);
        this.received.push({
          id: header('ce-id') ?? '',
          type: header('ce-type') ?? '',
          source: header('ce-source') ?? '',
          specversion: header('ce-specversion') ?? '',
          time: header('ce-time') ?? '',
          ...(header('content-type') !== undefined ? { datacontenttype: header('content-type') } : {}),
          ...(header('ce-channel') !== undefined ? { channel: header('ce-channel') } : {}),
          data: JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>,
        });
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  /** Stops listening and drops every connection: the registry's deliveries fail until listen(). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** nats-server on a free port, with an optional authorization block (users and passwords). */
export class NatsServer {
  private child?: ChildProcess;
  private exited?: Promise<void>;
  readonly configFile: string;

  private constructor(readonly port: number) {
    this.configFile = path.join(makeTempDir('zot-ts-nats-'), 'nats.conf');
  }

  static async start(users?: Record<string, string>): Promise<NatsServer> {
    const server = new NatsServer(await getFreePort());
    server.writeConfig(users);
    await server.run();
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  writeConfig(users?: Record<string, string>): void {
    const lines = [`listen: "127.0.0.1:${this.port}"`];
    if (users) {
      const entries = Object.entries(users).map(([user, password]) => `    { user: "${user}", password: "${password}" }`);
      lines.push('authorization {', '  users = [', ...entries, '  ]', '}');
    }
    fs.writeFileSync(this.configFile, `${lines.join('\n')}\n`);
  }

  /** Starts the server process and waits until it accepts connections. */
  async run(): Promise<void> {
    const child = spawn(NATS_SERVER, ['-c', this.configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let output = '';
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 15_000;
    while (!(await accepts(this.port))) {
      if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}: ${output}`);
      if (Date.now() > deadline) throw new Error(`nats-server did not listen within 15 s: ${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Reloads the configuration file (SIGHUP), as `nats-server --signal reload` does. */
  reload(): void {
    this.child?.kill('SIGHUP');
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    child.kill('SIGTERM');
    await this.exited;
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A subscriber of one subject: every message, parsed as a structured-mode CloudEvent. */
export class NatsSubscriber {
  readonly received: ReceivedEvent[] = [];
  private done?: Promise<void>;

  private constructor(
    private readonly connection: NatsConnection,
    private readonly subscription: Subscription,
  ) {}

  static async start(url: string, subject: string, credentials?: { user: string; pass: string }): Promise<NatsSubscriber> {
    const connection = await connect({ servers: url, reconnect: false, ...(credentials ?? {}) });
    const subscription = connection.subscribe(subject);
    const subscriber = new NatsSubscriber(connection, subscription);
    subscriber.done = (async () => {
      for await (const message of subscription) subscriber.received.push(JSON.parse(Buffer.from(message.data).toString()) as ReceivedEvent);
    })();
    // The server has the subscription once it answered a flush.
    await connection.flush();
    return subscriber;
  }

  async stop(): Promise<void> {
    this.subscription.unsubscribe();
    await this.connection.close().catch(() => undefined);
    await this.done?.catch(() => undefined);
  }
}

/**
 * A TCP relay on a free port of 127.0.0.1 to a NATS server: counts the PINGs clients send (a
 * flush is one PING; so is the handshake of each connection), and can be cut (connections
 * dropped, new ones refused) and opened again on the same port.
 */
export class NatsRelay {
  pings = 0;
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    readonly port: number,
    private readonly target: number,
  ) {}

  static async start(targetPort: number): Promise<NatsRelay> {
    const relay = new NatsRelay(await getFreePort(), targetPort);
    await relay.open();
    return relay;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async open(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target, '127.0.0.1');
      this.sockets.add(client).add(upstream);
      // The tail of the previous chunk, so that a PING split over two chunks is counted once.
      let tail = '';
      client.on('data', (chunk: Buffer) => {
        const text = tail + chunk.toString('latin1');
        this.pings += text.split('PING\r\n').length - 1;
        tail = text.endsWith('PING\r\n') ? '' : text.slice(-5);
        upstream.write(chunk);
      });
      upstream.pipe(client);
      const close = (): void => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      for (const socket of [client, upstream]) socket.on('close', close).on('error', close);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  /** Drops every connection and refuses new ones until open(). */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
