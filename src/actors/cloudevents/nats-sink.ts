// A NATS sink: each event is published on the subject `channel` in the CloudEvents NATS binding's
// structured mode (the whole event as JSON), as zot's sdk-go sender publishes it. Unlike zot, the
// publishes are followed by a flush, whose answer from the server says the server has every
// event published before it: only then are they delivered. The actor flushes once per batch of
// events, not once per event (a round trip each). The connection is opened when an event is to
// be sent and dropped on any failure; the next attempt opens a new one (the client's own
// reconnect, which would buffer publishes while the server is away, is off: the actor's retry is
// the one retry loop). Publishes that went to a connection which closed before its flush are not
// delivered, whatever a flush on a new connection answers: that flush fails.
import { connect, type NatsConnection } from 'nats';
import type { EventSinkConfig } from '../../config/types.js';
import type { CloudEvent } from './cloud-event.js';
import type { EventSink } from './sink.js';

/** The connection name zot gives the server. */
const CONNECTION_NAME = 'zotregistry.dev';

export class NatsSink implements EventSink {
  readonly description: string;
  private connection?: Promise<NatsConnection>;
  /** The connection of the publishes since the last flush. */
  private unflushed?: NatsConnection;
  /** Publishes went to a connection that closed before a flush: the next flush must fail. */
  private lost = false;

  constructor(
    private readonly config: EventSinkConfig,
    private readonly timeoutMs: number,
  ) {
    this.description = `nats ${config.address} ${config.channel ?? ''}`.trim();
  }

  async send(event: CloudEvent): Promise<void> {
    const subject = this.config.channel;
    if (!subject) throw new Error('a nats sink needs a channel: the subject to publish on');
    if (this.unflushed?.isClosed()) {
      // The next flush fails whatever connection it finds: those publishes must be made again.
      this.unflushed = undefined;
      this.lost = true;
      throw new Error('the connection to the NATS server closed before its publishes were flushed');
    }
    const connection = await this.connected();
    try {
      connection.publish(subject, Buffer.from(JSON.stringify(event)));
    } catch (err) {
      await this.drop(connection);
      throw err;
    }
    this.unflushed = connection;
  }

  async flush(): Promise<void> {
    if (this.lost) {
      this.lost = false;
      throw new Error('publishes were lost with their connection to the NATS server');
    }
    const connection = this.unflushed;
    if (connection === undefined) return;
    this.unflushed = undefined;
    try {
      await withTimeout(connection.flush(), this.timeoutMs, 'the NATS server did not answer the flush');
    } catch (err) {
      await this.drop(connection);
      throw err;
    }
  }

  private async connected(): Promise<NatsConnection> {
    if (this.connection) {
      const current = await this.connection.catch(() => undefined);
      if (current && !current.isClosed()) return current;
      this.connection = undefined;
    }
    const { username, password, token } = this.config.credentials ?? {};
    this.connection = connect({
      servers: this.config.address,
      name: CONNECTION_NAME,
      timeout: this.timeoutMs,
      reconnect: false,
      ...(username ? { user: username, pass: password ?? '' } : token ? { token } : {}),
    });
    try {
      return await this.connection;
    } catch (err) {
      this.connection = undefined;
      throw err;
    }
  }

  private async drop(connection: NatsConnection): Promise<void> {
    this.connection = undefined;
    await connection.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    const connection = await this.connection?.catch(() => undefined);
    this.connection = undefined;
    await connection?.close().catch(() => undefined);
  }
}

async function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
