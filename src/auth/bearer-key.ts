// The public key that verifies bearer tokens, from the file `http.auth.bearer.cert` names: a PEM
// certificate (as zot documents it) or a PEM public key (zot accepts both). Node's crypto only, so
// config validation can check the file without loading the token library.
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';

export class BearerKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BearerKeyError';
  }
}

/** The public key of `cert`: a PEM certificate (as zot documents) or a PEM public key. */
export function bearerPublicKey(pem: string): KeyObject {
  if (pem.includes('-----BEGIN CERTIFICATE-----')) {
    try {
      return new X509Certificate(pem).publicKey;
    } catch {
      throw new BearerKeyError('is not a valid PEM certificate');
    }
  }
  if (!pem.includes('-----BEGIN PUBLIC KEY-----') && !pem.includes('-----BEGIN RSA PUBLIC KEY-----')) {
    throw new BearerKeyError('must hold a PEM certificate or public key');
  }
  try {
    return createPublicKey(pem);
  } catch {
    throw new BearerKeyError('is not a valid PEM public key');
  }
}

/** Reads and parses the `cert` file; throws BearerKeyError (or the read error) naming what is wrong. */
export function readBearerPublicKey(file: string): KeyObject {
  return bearerPublicKey(readFileSync(file, 'utf8'));
}

