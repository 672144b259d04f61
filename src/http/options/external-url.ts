// http.externalUrl: the URL clients reach the registry at, behind a proxy or a load balancer
// that rewrites the host or adds a path prefix. Every Location header (uploads, blobs,
// manifests, a 416's upload position) and every Link of a paginated list is made absolute on
// it, in one onSend hook, so no handler builds URLs of its own. Without it they stay relative,
// which clients resolve against the URL they sent the request to.
import type { FastifyInstance } from 'fastify';

export function registerExternalUrl(app: FastifyInstance, externalUrl: string): void {
  const base = externalUrl.replace(/\/+$/, '');
  app.addHook('onSend', async (_request, reply, payload) => {
    const location = reply.getHeader('location');
    if (typeof location === 'string' && location.startsWith('/')) reply.header('Location', base + location);
    const link = reply.getHeader('link');
    if (typeof link === 'string' && link.startsWith('</')) reply.header('Link', `<${base}${link.slice(1)}`);
    return payload;
  });
}
