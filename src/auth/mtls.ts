// Client certificates (`http.tls.cacert`, zot's mutual TLS): the TLS layer verifies the
// certificate against the CA (http/tls.ts); this method turns a verified certificate into the
// identity accessControl sees. By default the identity is the subject's CN; zot's newer
// `http.auth.mtls.identityAttributes` names a fallback chain of CommonName, Subject (the RFC 2253
// DN), Email, URI (with `uriSanPattern`'s first group) and DNSName, with an index for each SAN list.
import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import type { X509Certificate } from 'node:crypto';
import type { MtlsConfig } from '../config/types.js';
import type { AuthOutcome, Authenticator } from './types.js';

type Attribute = 'commonname' | 'subject' | 'email' | 'uri' | 'dnsname';

const ALIASES: Readonly<Record<string, Attribute>> = {
  commonname: 'commonname',
  cn: 'commonname',
  subject: 'subject',
  dn: 'subject',
  email: 'email',
  rfc822name: 'email',
  uri: 'uri',
  url: 'uri',
  dnsname: 'dnsname',
  dns: 'dnsname',
};

export class MtlsAuthenticator implements Authenticator {
  readonly method = 'mtls' as const;
  private readonly attributes: readonly Attribute[];
  private readonly uriPattern: RegExp | undefined;
  /** The identity of each connection, worked out once: a keep-alive connection sends many requests. */
  private readonly identities = new WeakMap<TLSSocket, string | undefined>();

  constructor(private readonly config: MtlsConfig = {}) {
    const names = config.identityAttributes ?? ['CommonName'];
    this.attributes = names.map((name) => ALIASES[name.toLowerCase()]).filter((a): a is Attribute => a !== undefined);
    this.uriPattern = config.uriSanPattern ? new RegExp(config.uriSanPattern) : undefined;
  }

  async authenticate(request: IncomingMessage): Promise<AuthOutcome> {
    const socket = request.socket;
    if (!(socket instanceof TLSSocket)) return { kind: 'anonymous' };
    const certificate = socket.getPeerX509Certificate();
    if (certificate === undefined) return { kind: 'anonymous' };
    // The TLS layer refuses unverified certificates; this is the second lock on that door.
    if (!socket.authorized) return { kind: 'failed', reason: 'client certificate not signed by the configured CA' };
    let name = this.identities.get(socket);
    if (!this.identities.has(socket)) {
      name = this.identityOf(certificate);
      this.identities.set(socket, name);
    }
    if (name === undefined) return { kind: 'failed', reason: 'no identity in the client certificate' };
    return { kind: 'identity', identity: { name, method: 'mtls', groups: [] } };
  }

  /** The first identity attribute the certificate has, in the configured order. */
  identityOf(certificate: X509Certificate): string | undefined {
    for (const attribute of this.attributes) {
      const found = this.attribute(certificate, attribute);
      if (found !== undefined && found !== '') return found;
    }
    return undefined;
  }

  private attribute(certificate: X509Certificate, attribute: Attribute): string | undefined {
    switch (attribute) {
      case 'commonname':
        return subjectFields(certificate).find(([key]) => key === 'CN')?.[1];
      case 'subject':
        // RFC 2253 order (most specific first), as Go's pkix.Name.String() prints it in zot.
        return subjectFields(certificate)
          .reverse()
          .map(([key, value]) => `${key}=${value}`)
          .join(',');
      case 'email':
        return altNames(certificate, 'email')[this.config.emailSanIndex ?? 0];
      case 'dnsname':
        return altNames(certificate, 'DNS')[this.config.dnsSanIndex ?? 0];
      case 'uri': {
        const uri = altNames(certificate, 'URI')[this.config.uriSanIndex ?? 0];
        if (uri === undefined || this.uriPattern === undefined) return uri;
        const match = this.uriPattern.exec(uri);
        return match === null ? undefined : (match[1] ?? match[0]);
      }
    }
  }
}

/** The subject's attributes in certificate order, e.g. [["C","US"],["O","example"],["CN","alice"]]. */
function subjectFields(certificate: X509Certificate): [string, string][] {
  return certificate.subject
    .split('\n')
    .map((line) => {
      const eq = line.indexOf('=');
      return [line.slice(0, eq), line.slice(eq + 1)] as [string, string];
    })
    .filter(([key]) => key !== '');
}

/** The values of one kind of subjectAltName ("DNS", "URI", "email"), in certificate order. */
function altNames(certificate: X509Certificate, kind: string): string[] {
  const text = certificate.subjectAltName;
  if (text === undefined) return [];
  const found: string[] = [];
  // Node lists them as `DNS:a, URI:b`; a value with a comma or quote is JSON-quoted.
  const pattern = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g;
  for (const match of text.matchAll(pattern)) {
    if (match[1] !== kind) continue;
    const raw = match[2] ?? '';
    found.push(raw.startsWith('"') ? (JSON.parse(raw) as string) : raw);
  }
  return found;
}
