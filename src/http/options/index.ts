// zot's http options that shape every request and answer, each in a module of its own and
// registered here, in one place, by the fastify app (app.ts): the rate limit first (a request
// over it costs nothing more), then CORS headers and preflights, then absolute Location headers,
// and the server's read and write timeouts.
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { parseDuration } from '../../config/duration.js';
import type { HttpConfig } from '../../config/types.js';
import { registerCors } from './cors.js';
import { registerExternalUrl } from './external-url.js';
import { registerRateLimit } from './rate-limit.js';
import { applyTimeouts, timeoutMs } from './timeouts.js';

export interface HttpOptions {
  ratelimit?: HttpConfig['ratelimit'];
  allowOrigin?: string;
  /** A basic-credential authentication method is configured (CORS credentials). */
  basicCredentials?: boolean;
  externalUrl?: string;
  /** Inactivity timeouts; 0 turns one off. */
  readTimeoutMs: number;
  writeTimeoutMs: number;
}

export function httpOptionsFromConfig(http: HttpConfig): HttpOptions {
  const duration = (text: string | undefined) => timeoutMs(text === undefined ? undefined : parseDuration(text));
  return {
    ...(http.ratelimit ? { ratelimit: http.ratelimit } : {}),
    ...(http.allowOrigin !== undefined ? { allowOrigin: http.allowOrigin } : {}),
    basicCredentials: http.auth?.htpasswd !== undefined || http.auth?.ldap !== undefined,
    ...(http.externalUrl !== undefined ? { externalUrl: http.externalUrl } : {}),
    readTimeoutMs: duration(http.readTimeout),
    writeTimeoutMs: duration(http.writeTimeout),
  };
}

export function registerHttpOptions(app: FastifyInstance, options: HttpOptions, logger: Logger): void {
  if (options.ratelimit) registerRateLimit(app, options.ratelimit);
  registerCors(app, { ...(options.allowOrigin !== undefined ? { allowOrigin: options.allowOrigin } : {}), basicCredentials: options.basicCredentials === true });
  if (options.externalUrl !== undefined) registerExternalUrl(app, options.externalUrl);
  const stopTimeouts = applyTimeouts(app.server, { readTimeoutMs: options.readTimeoutMs, writeTimeoutMs: options.writeTimeoutMs }, logger);
  app.addHook('onClose', async () => stopTimeouts());
}
