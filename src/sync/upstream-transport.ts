// Bytes over HTTP(S) to one upstream registry: keep-alive agents with the registry's TLS settings
// (tlsVerify, and zot's certDir layout), one exchange per call with an idle timeout and an abort
// signal. No retries, redirects or authentication here: upstream-client.ts adds them.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';

export interface TlsSettings {
  /** Verify the upstream's certificate (zot's `tlsVerify`, true unless set to false). */
  verify: boolean;
  /** Trusted CA certificates; absent: the system's. */
  ca?: Buffer;
  /** Client certificate and key, for upstreams that ask for one. */
  cert?: Buffer;
  key?: Buffer;
}

/**
 * Reads zot's certDir: `ca.crt` (the CA the upstream's certificate chains to) and, optionally,
 * `client.cert` with `client.key` (a client certificate). Missing files are an error, as in zot.
 */
export function readCertDir(dir: string): Pick<TlsSettings, 'ca' | 'cert' | 'key'> {
  const file = (name: string): Buffer | undefined => {
    const full = path.join(dir, name);
    return fs.existsSync(full) ? fs.readFileSync(full) : undefined;
  };
  const ca = file('ca.crt');
  if (ca === undefined) throw new Error(`certDir ${dir} has no ca.crt`);
  const cert = file('client.cert');
  const key = file('client.key');
  if ((cert === undefined) !== (key === undefined)) {
    throw new Error(`certDir ${dir} must hold both client.cert and client.key, or neither`);
  }
  return { ca, ...(cert && key ? { cert, key } : {}) };
}

export interface Exchange {
  method: 'GET' | 'HEAD';
  url: URL;
  headers: Record<string, string>;
  /** The socket may stay idle this long (connecting, waiting for headers, between body chunks). */
  idleTimeoutMs: number;
  signal?: AbortSignal;
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body, to consume or `resume()`; it errors if the connection fails mid-way. */
  body: http.IncomingMessage;
}

/** A connection-level failure: refused, reset, timed out, TLS. Always worth another URL or a retry. */
export class TransportError extends Error {
  constructor(
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'TransportError';
  }
}

export class Transport {
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  private readonly httpsAgent: https.Agent;

  constructor(tls: TlsSettings) {
    this.httpsAgent = new https.Agent({
      keepAlive: true,
      maxSockets: 32,
      rejectUnauthorized: tls.verify,
      ...(tls.ca ? { ca: tls.ca } : {}),
      ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
    });
  }

  send(exchange: Exchange): Promise<Answer> {
    const { url, signal } = exchange;
    const secure = url.protocol === 'https:';
    const request = secure ? https.request : http.request;
    return new Promise<Answer>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const req = request(url, {
        method: exchange.method,
        headers: exchange.headers,
        agent: secure ? this.httpsAgent : this.httpAgent,
        timeout: exchange.idleTimeoutMs,
      });
      const onAbort = (): void => {
        req.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('timeout', () => req.destroy(new TransportError(`no answer from ${url.origin} within ${exchange.idleTimeoutMs} ms`)));
      req.on('error', (err) => {
        signal?.removeEventListener('abort', onAbort);
        reject(err instanceof TransportError || signal?.aborted ? err : new TransportError(`failed to reach ${url.origin}: ${err.message}`, err));
      });
      req.on('response', (res) => {
        res.on('close', () => signal?.removeEventListener('abort', onAbort));
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      req.end();
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/** Reads a body whole, refusing more than `limit` bytes (manifests, JSON lists, tokens). */
export async function readBody(body: http.IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const buffer = chunk as Buffer;
    total += buffer.length;
    if (total > limit) {
      body.destroy();
      throw new Error(`upstream answer is larger than ${limit} bytes`);
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}
