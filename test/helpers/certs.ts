// Certificates made at test time with openssl: a CA, and leaf certificates it signs for servers
// (with IP and DNS SANs) and clients (a subject CN, optional SANs). Nothing is kept between runs.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface CertificateFiles {
  cert: string;
  key: string;
}

export interface TestCa extends CertificateFiles {
  dir: string;
  /** Signs a new leaf certificate; its files are named after `name` in the CA's directory. */
  issue(name: string, options: LeafOptions): CertificateFiles;
}

export interface LeafOptions {
  /** The subject, e.g. "/CN=alice/O=example". */
  subject: string;
  /** subjectAltName entries, e.g. ["IP:127.0.0.1", "DNS:localhost", "URI:spiffe://example.org/w/1"]. */
  altNames?: string[];
  usage: 'server' | 'client';
  /** Key algorithm; RSA 2048 unless EC P-256 is asked for. */
  keyType?: 'rsa' | 'ec';
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function newKey(file: string, cwd: string, keyType: 'rsa' | 'ec' = 'rsa'): void {
  if (keyType === 'ec') openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file], cwd);
  else openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', file], cwd);
}

/** A self-signed CA in `dir` whose name is `name` (file prefix and CN). */
export function makeCa(dir: string, name = 'test-ca'): TestCa {
  fs.mkdirSync(dir, { recursive: true });
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.crt`);
  newKey(key, dir);
  openssl(['req', '-x509', '-new', '-key', key, '-sha256', '-days', '2', '-subj', `/CN=${name}`, '-out', cert], dir);
  let serial = 1;
  return {
    dir,
    cert,
    key,
    issue(leaf: string, options: LeafOptions): CertificateFiles {
      const leafKey = path.join(dir, `${leaf}.key`);
      const leafCert = path.join(dir, `${leaf}.crt`);
      const csr = path.join(dir, `${leaf}.csr`);
      const ext = path.join(dir, `${leaf}.ext`);
      newKey(leafKey, dir, options.keyType);
      openssl(['req', '-new', '-key', leafKey, '-subj', options.subject, '-out', csr], dir);
      const lines = [
        'basicConstraints=CA:FALSE',
        `extendedKeyUsage=${options.usage === 'server' ? 'serverAuth' : 'clientAuth'}`,
        ...(options.altNames && options.altNames.length > 0 ? [`subjectAltName=${options.altNames.join(',')}`] : []),
      ];
      fs.writeFileSync(ext, `${lines.join('\n')}\n`);
      serial += 1;
      openssl(
        ['x509', '-req', '-in', csr, '-CA', cert, '-CAkey', key, '-set_serial', String(serial), '-days', '2', '-sha256', '-extfile', ext, '-out', leafCert],
        dir,
      );
      return { cert: leafCert, key: leafKey };
    },
  };
}

/** A self-signed certificate with its own key (a bearer token signer, a server nobody's CA signed). */
export function makeSelfSigned(dir: string, name: string, options: { subject: string; altNames?: string[]; keyType?: 'rsa' | 'ec' }): CertificateFiles {
  fs.mkdirSync(dir, { recursive: true });
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.crt`);
  newKey(key, dir, options.keyType);
  const san = options.altNames && options.altNames.length > 0 ? ['-addext', `subjectAltName=${options.altNames.join(',')}`] : [];
  openssl(['req', '-x509', '-new', '-key', key, '-sha256', '-days', '2', '-subj', options.subject, ...san, '-out', cert], dir);
  return { cert, key };
}
