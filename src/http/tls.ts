// The HTTPS server's TLS settings (`http.tls`): its certificate and key, and with `cacert` client
// certificates verified against that CA (mutual TLS). A client certificate is required, as in
// zot, unless another way in exists (an auth method that reads the Authorization header, or an
// anonymousPolicy); then it is verified when one is sent, and a connection presenting a
// certificate the CA did not sign is closed.
//
// The certificate, key and CA are reloaded when their files change, without a restart and without
// dropping connections: tls.Server.setSecureContext() applies to new handshakes only. A change that
// does not load (a key that does not match, a half-written file) keeps the context in use and is
// logged; the next change is tried again.
import * as fs from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { checkTlsPair } from '../config/files.js';
import type { TlsConfig } from '../config/types.js';

/** How often the files are stat'ed for a change. */
export const TLS_POLL_INTERVAL_MS = 1_000;

export interface TlsServerOptions {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  requestCert: boolean;
  rejectUnauthorized: boolean;
}

type TlsFiles = Required<Pick<TlsConfig, 'cert' | 'key'>> & Pick<TlsConfig, 'cacert'>;

/** The HTTPS options of `http.tls`, read from its files now (a read error names the file). */
export function tlsServerOptions(tls: TlsFiles, options: { requireClientCert: boolean }): TlsServerOptions {
  const context = readContext(tls);
  checkTlsPair(context);
  if (tls.cacert === undefined) return { ...context, requestCert: false, rejectUnauthorized: false };
  return { ...context, requestCert: true, rejectUnauthorized: options.requireClientCert };
}

/**
 * Applies the client certificate rule the handshake itself cannot when a certificate is optional:
 * one that was sent but does not verify closes the connection.
 */
export function refuseUnverifiedClients(server: HttpsServer, logger: Logger): void {
  server.on('secureConnection', (socket: TLSSocket) => {
    // Without a certificate getPeerCertificate() is an empty object: the other methods decide.
    if (socket.authorized || Object.keys(socket.getPeerCertificate()).length === 0) return;
    logger.info({ client: socket.remoteAddress, reason: String(socket.authorizationError) }, 'refused a client certificate the CA did not sign');
    socket.destroy();
  });
}

export interface TlsReloader {
  stop(): void;
}

/** Follows the files of `http.tls` and swaps the server's secure context when they change. */
export function reloadTlsOnChange(server: HttpsServer, tls: TlsFiles, logger: Logger, intervalMs = TLS_POLL_INTERVAL_MS): TlsReloader {
  const files = [tls.cert, tls.key, ...(tls.cacert !== undefined ? [tls.cacert] : [])];
  let stamp = stampOf(files);
  let refused: string | undefined;
  const timer = setInterval(() => {
    const now = stampOf(files);
    if (now === stamp || now === refused) return;
    try {
      const context = readContext(tls);
      // Checked first so a bad pair throws here, before the server's context is touched.
      checkTlsPair(context);
      server.setSecureContext(context as SecureContextOptions);
      stamp = now;
      refused = undefined;
      logger.info({ cert: tls.cert }, 'tls certificate reloaded');
    } catch (err) {
      // Left as it was until the files change again (a file still being written changes again).
      refused = now;
      logger.warn({ cert: tls.cert, error: err instanceof Error ? err.message : String(err) }, 'failed to reload the tls certificate, keeping the current one');
    }
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

function readContext(tls: TlsFiles): { cert: Buffer; key: Buffer; ca?: Buffer } {
  return {
    cert: fs.readFileSync(tls.cert),
    key: fs.readFileSync(tls.key),
    ...(tls.cacert !== undefined ? { ca: fs.readFileSync(tls.cacert) } : {}),
  };
}

/** Size, mtime and inode of each file: a write in place or a rename over the file both change it. */
function stampOf(files: readonly string[]): string {
  return files
    .map((file) => {
      try {
        const stat = fs.statSync(file, { bigint: true });
        return `${stat.ino}:${stat.size}:${stat.mtimeNs}`;
      } catch {
        return 'missing';
      }
    })
    .join('|');
}
