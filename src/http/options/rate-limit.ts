// http.ratelimit, as zot has it: `rate` requests per second for every request, and `methods`,
// each with its own rate for one method, on top of it. Like zot (tollbooth over
// golang.org/x/time/rate) each limit is a token bucket per client address whose burst is the
// rate itself; a request over a limit is answered 429 TOOMANYREQUESTS with Retry-After, the
// seconds until the bucket holds a token again. The health probes are never limited: an
// orchestrator must not restart a registry that is merely busy. A rate of 0 sets no limit (Go's
// limiter would let one request through and then none, ever).
import type { FastifyInstance } from 'fastify';
import { RegistryError } from '../../oci/errors.js';
import type { RatelimitConfig } from '../../config/types.js';

/** Client addresses whose buckets are kept; past this, new addresses share one bucket. */
const MAX_CLIENTS = 10_000;
const UNLIMITED_PATHS = new Set(['/livez', '/readyz', '/startupz']);

/** A bucket of `burst` tokens, refilled at `rate` tokens per second. */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.updatedAt = now;
  }

  /** Takes a token; answers 0 when there was one, else the seconds until there will be. */
  take(now: number): number {
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return (1 - this.tokens) / this.rate;
  }

  /** True when the bucket is as a new one would be: dropping it changes nothing. */
  isFull(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.burst;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) / 1000) * this.rate);
    this.updatedAt = now;
  }
}

/** One limit (every request, or one method): a bucket per client address, bounded in number. */
export class ClientLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private overflow?: TokenBucket;
  private lastSweep = -Infinity;

  constructor(readonly rate: number) {}

  /** 0 when the request may go on, else the seconds to wait. */
  take(client: string, now: number): number {
    return this.bucketFor(client, now).take(now);
  }

  private bucketFor(client: string, now: number): TokenBucket {
    const existing = this.buckets.get(client);
    if (existing) return existing;
    // Full buckets are dropped (a new one would be the same), at most once a second: a stream
    // of new addresses must not make every request walk the whole map.
    if (this.buckets.size >= MAX_CLIENTS && now - this.lastSweep >= 1000) {
      this.lastSweep = now;
      for (const [key, bucket] of this.buckets) if (bucket.isFull(now)) this.buckets.delete(key);
    }
    if (this.buckets.size >= MAX_CLIENTS) return (this.overflow ??= new TokenBucket(this.rate, Math.max(1, this.rate), now));
    const bucket = new TokenBucket(this.rate, Math.max(1, this.rate), now);
    this.buckets.set(client, bucket);
    return bucket;
  }
}

export function registerRateLimit(app: FastifyInstance, config: RatelimitConfig, now: () => number = () => performance.now()): void {
  const all = config.rate !== undefined && config.rate > 0 ? new ClientLimiter(config.rate) : undefined;
  const byMethod = new Map((config.methods ?? []).filter(({ rate }) => rate > 0).map(({ method, rate }) => [method.toUpperCase(), new ClientLimiter(rate)]));
  if (!all && byMethod.size === 0) return;
  app.addHook('onRequest', async (request, reply) => {
    if (UNLIMITED_PATHS.has(request.url.split('?')[0] ?? '')) return;
    const at = now();
    const wait = all?.take(request.ip, at) || byMethod.get(request.method)?.take(request.ip, at) || 0;
    if (wait === 0) return;
    reply.header('Retry-After', String(Math.max(1, Math.ceil(wait))));
    throw new RegistryError('TOOMANYREQUESTS', `too many requests from ${request.ip}: over the rate limit of http.ratelimit`);
  });
}
