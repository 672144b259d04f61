// Where CloudEvents go: one sink per `extensions.events.sinks` entry. An event is delivered once
// send() and the next flush() resolved: the receiver has it (an HTTP 2xx to its POST; the NATS
// server's answer to a flush after the publishes, which the flush makes). A rejection of either
// means the events since the last flush are not known to be delivered: the actor sends them
// again, and the later ones wait.
import type { EventSinkConfig } from '../../config/types.js';
import { parseDuration } from '../../config/duration.js';
import type { CloudEvent } from './cloud-event.js';
import { HttpSink } from './http-sink.js';
import { NatsSink } from './nats-sink.js';

export interface EventSink {
  /** Type and address, for logs and the actor's name. */
  readonly description: string;
  /** Sends the event, in order after the ones before (HTTP: delivers it; NATS: holds it for the flush). */
  send(event: CloudEvent): Promise<void>;
  /** Resolves once the receiver has every event sent since the last flush, rejects if not known. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** zot's default delivery timeout of an HTTP sink; a NATS sink gets the same here. */
export const DEFAULT_SINK_TIMEOUT_MS = 30_000;

export function createSink(config: EventSinkConfig): EventSink {
  const parsed = config.timeout === undefined ? undefined : parseDuration(config.timeout);
  const timeoutMs = parsed !== undefined && parsed > 0 ? parsed : DEFAULT_SINK_TIMEOUT_MS;
  return config.type === 'http' ? new HttpSink(config, timeoutMs) : new NatsSink(config, timeoutMs);
}
