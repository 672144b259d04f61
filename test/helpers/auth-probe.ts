// Asks an Authenticator about real HTTP requests: a small node:http (or https) server on 127.0.0.1
// whose only answer is the outcome of authenticate(request) as JSON. The authenticators' own tests
// use it before they are plugged into the registry.
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { AuthOutcome, Authenticator } from '../../src/auth/types.js';

export interface AuthProbe {
  url: string;
  server: http.Server;
  /** The outcome for a request to `path` with these headers (fetch; plain HTTP only). */
  ask(headers?: Record<string, string>, path?: string): Promise<ProbedOutcome>;
  close(): Promise<void>;
}

/** AuthOutcome as JSON: tokenAccess as a plain object of arrays. */
export type ProbedOutcome =
  | { kind: 'identity'; identity: { name: string; method: string; groups: string[]; tokenAccess?: Record<string, string[]> } }
  | { kind: 'anonymous' }
  | { kind: 'failed'; reason: string };

export async function startAuthProbe(authenticator: Authenticator, tls?: https.ServerOptions): Promise<AuthProbe> {
  const handler = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    authenticator.authenticate(request).then(
      (outcome) => {
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify(toJson(outcome)));
      },
      (err: unknown) => {
        response.statusCode = 500;
        response.end(String(err));
      },
    );
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  return {
    url,
    server,
    ask: async (headers = {}, path = '/v2/') => {
      const res = await fetch(`${url}${path}`, { headers });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`authenticate threw: ${text}`);
      return JSON.parse(text) as ProbedOutcome;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function toJson(outcome: AuthOutcome): ProbedOutcome {
  if (outcome.kind !== 'identity') return outcome;
  const { name, method, groups, tokenAccess } = outcome.identity;
  return {
    kind: 'identity',
    identity: {
      name,
      method,
      groups: [...groups],
      ...(tokenAccess ? { tokenAccess: Object.fromEntries([...tokenAccess].map(([repo, actions]) => [repo, [...actions].sort()])) } : {}),
    },
  };
}

export function basic(username: string, password: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` };
}
