// An HTTP sink: each event is POSTed to the sink's address in the CloudEvents HTTP binding's
// binary mode, as zot's sdk-go client sends it: the attributes as ce-* headers, `data` as the
// JSON body. `channel` becomes the ce-channel extension, as in zot; `headers` are added to every
// request, and `credentials` become Basic (username and password) or Bearer (token)
// authorization. Any answer but a 2xx is a failed delivery.
import type { EventSinkConfig } from '../../config/types.js';
import type { CloudEvent } from './cloud-event.js';
import type { EventSink } from './sink.js';

export class HttpSink implements EventSink {
  readonly description: string;
  private readonly headers: Record<string, string>;

  constructor(
    private readonly config: EventSinkConfig,
    private readonly timeoutMs: number,
  ) {
    this.description = `http ${config.address}`;
    const headers: Record<string, string> = { ...(config.headers ?? {}) };
    const { username, password, token } = config.credentials ?? {};
    if (username) headers['Authorization'] = `Basic ${Buffer.from(`${username}:${password ?? ''}`).toString('base64')}`;
    else if (token) headers['Authorization'] = `Bearer ${token}`;
    this.headers = headers;
  }

  async send(event: CloudEvent): Promise<void> {
    const headers: Record<string, string> = {
      ...this.headers,
      'Content-Type': event.datacontenttype,
      'ce-specversion': event.specversion,
      'ce-id': event.id,
      'ce-source': event.source,
      'ce-type': event.type,
      'ce-time': event.time,
    };
    if (this.config.channel) headers['ce-channel'] = this.config.channel;
    const res = await fetch(this.config.address, {
      method: 'POST',
      headers,
      body: JSON.stringify(event.data),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    // The body is read whole so the connection goes back to the pool.
    const answer = await res.text();
    if (res.status < 200 || res.status > 299) throw new Error(`the sink answered ${res.status}: ${answer.slice(0, 200)}`);
  }

  async flush(): Promise<void> {
    // Each event was delivered when its POST was answered.
  }

  async close(): Promise<void> {
    // fetch's pooled connections close with the process.
  }
}
