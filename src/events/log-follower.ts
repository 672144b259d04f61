// A read-only registry follows the log another process (the writing registry on the same root)
// appends to: it polls for new events and publishes them on the store's stream, so that its own
// actors (the metrics, in memory) see them. Its reads need no such step: they query the projection
// tables the writer keeps, and every new read transaction sees the last commit.
import type { Logger } from 'pino';
import type { EventStore } from './store.js';

export const LOG_FOLLOW_INTERVAL_MS = 250;

export class LogFollower {
  private timer: NodeJS.Timeout | undefined;
  private failing = false;

  constructor(
    private readonly store: EventStore,
    private readonly logger: Logger,
    private readonly intervalMs = LOG_FOLLOW_INTERVAL_MS,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.poll(), this.intervalMs);
    this.timer.unref();
  }

  /** Publishes what was appended since the last poll; a failure is logged once until a poll succeeds. */
  poll(): void {
    try {
      this.store.publishAppended();
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.logger.error({ err }, 'failed to read new events from the event log');
      this.failing = true;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
