// Certificates for the sync tests, made with openssl at test time: a CA, a server certificate for
// 127.0.0.1 it signs, a client certificate it signs, and zot's certDir layout holding them
// (ca.crt, client.cert, client.key). Named apart from the auth tests' certs helper.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir } from './registry.js';

export interface SyncCertificates {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A directory in zot's certDir layout trusting the CA and holding the client certificate. */
  certDir: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function leaf(dir: string, name: string, subject: string, extensions: string[]): { cert: string; key: string } {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.crt`);
  const ext = path.join(dir, `${name}.ext`);
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key], dir);
  openssl(['req', '-new', '-key', key, '-subj', subject, '-out', csr], dir);
  fs.writeFileSync(ext, `${extensions.join('\n')}\n`);
  openssl(['x509', '-req', '-in', csr, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-sha256', '-extfile', ext, '-out', cert], dir);
  return { cert, key };
}

export function makeSyncCertificates(): SyncCertificates {
  const dir = makeTempDir('zot-ts-sync-certs-');
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'ca.key'], dir);
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-sha256', '-days', '2', '-subj', '/CN=zot-ts sync test CA', '-out', 'ca.crt'], dir);
  const server = leaf(dir, 'server', '/CN=127.0.0.1', ['basicConstraints=CA:FALSE', 'extendedKeyUsage=serverAuth', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
  const client = leaf(dir, 'client', '/CN=zot-ts-sync', ['basicConstraints=CA:FALSE', 'extendedKeyUsage=clientAuth']);
  const certDir = path.join(dir, 'certdir');
  fs.mkdirSync(certDir);
  fs.copyFileSync(path.join(dir, 'ca.crt'), path.join(certDir, 'ca.crt'));
  fs.copyFileSync(client.cert, path.join(certDir, 'client.cert'));
  fs.copyFileSync(client.key, path.join(certDir, 'client.key'));
  return {
    dir,
    caCert: path.join(dir, 'ca.crt'),
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: client.cert,
    clientKey: client.key,
    certDir,
  };
}

/**
 * A self-signed signing certificate and key (the token server's): the distribution registry trusts
 * tokens whose x5c chain ends in a certificate of its rootcertbundle.
 */
export function makeSigningCertificate(dir: string): { cert: string; key: string } {
  const key = path.join(dir, 'signer.key');
  const cert = path.join(dir, 'signer.crt');
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key], dir);
  openssl(['req', '-x509', '-new', '-key', key, '-sha256', '-days', '2', '-subj', '/CN=zot-ts sync token signer', '-out', cert], dir);
  return { cert, key };
}

/** An htpasswd line with a bcrypt hash (what distribution accepts), made by libxcrypt through perl. */
export function htpasswdLine(user: string, password: string): string {
  const salt = Buffer.from(Array.from({ length: 16 }, () => Math.floor(Math.random() * 256)))
    .toString('base64')
    .replace(/[^A-Za-z0-9]/g, '.')
    .slice(0, 22)
    .padEnd(22, '.');
  const hash = execFileSync('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1])', password, `$2y$05$${salt}`], { encoding: 'utf8' });
  if (!hash.startsWith('$2')) throw new Error(`perl's crypt() made no bcrypt hash: ${hash}`);
  return `${user}:${hash}`;
}
