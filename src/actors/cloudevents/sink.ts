// Where CloudEvents go: one sink per `extensions.events.sinks` entry. deliver() resolves only once
// the receiver has the event (an HTTP 2xx; the NATS server's answer to a flush after the publish)
// and rejects otherwise; the actor then retries the same event, and the ones after it wait.
import type { EventSinkConfig } from '../../config/types.js';
import { parseDuration } from '../../config/duration.js';
import type { CloudEvent } from './cloud-event.js';
import { HttpSink } from './http-sink.js';
import { NatsSink } from './nats-sink.js';

export interface EventSink {
  /** Type and address, for logs and the actor's name. */
  readonly description: string;
  deliver(event: CloudEvent): Promise<void>;
  close(): Promise<void>;
}

/** zot's default delivery timeout of an HTTP sink; a NATS sink gets the same here. */
export const DEFAULT_SINK_TIMEOUT_MS = 30_000;

export function createSink(config: EventSinkConfig): EventSink {
  const parsed = config.timeout === undefined ? undefined : parseDuration(config.timeout);
  const timeoutMs = parsed !== undefined && parsed > 0 ? parsed : DEFAULT_SINK_TIMEOUT_MS;
  return config.type === 'http' ? new HttpSink(config, timeoutMs) : new NatsSink(config, timeoutMs);
}
