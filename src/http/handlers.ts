// One handler per endpoint of routes.ts. Handlers translate HTTP (headers, query, status) to
// registry calls and back; they hold no storage or SQL logic and never build error bodies.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ANONYMOUS } from '../auth/types.js';
import type { EventContext } from '../events/types.js';
import { RegistryError } from '../oci/errors.js';
import { MAX_MANIFEST_BYTES, type Registry } from '../registry/registry.js';
import { MediaTypes } from '../oci/media-types.js';
import { writeFileBody } from './file-body.js';
import { parseContentRange, parseRangeHeader } from './ranges.js';
import { declaredLength, hasBody, readBodyBounded } from './request-body.js';
import type { Endpoint, Route } from './routes.js';

type Handler = (registry: Registry, route: Route, request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/** Who sent the request and how they authenticated, as events record it (refused writes too). */
export function context(request: FastifyRequest): EventContext {
  const identity = request.access?.identity ?? ANONYMOUS;
  return { identity: identity.name, authMethod: identity.method, client: request.ip, requestId: request.id };
}

function query(request: FastifyRequest): URLSearchParams {
  const index = request.url.indexOf('?');
  return new URLSearchParams(index === -1 ? '' : request.url.slice(index + 1));
}

function uploadLocation(name: string, id: string): string {
  return `/v2/${name}/blobs/uploads/${id}`;
}

/** Upload progress headers: where to send the next chunk and what the registry has so far. */
function sendUploadProgress(reply: FastifyReply, name: string, id: string, size: number, status: 202 | 204): FastifyReply {
  return reply
    .code(status)
    .header('Location', uploadLocation(name, id))
    .header('Range', `0-${Math.max(size - 1, 0)}`)
    .header('Docker-Upload-UUID', id)
    .header('Content-Length', '0')
    .send();
}

function sendBlobCreated(reply: FastifyReply, name: string, digest: string): FastifyReply {
  return reply
    .code(201)
    .header('Location', `/v2/${name}/blobs/${digest}`)
    .header('Docker-Content-Digest', digest)
    .header('Content-Length', '0')
    .send();
}

/**
 * The most entries one page of a list holds: a list asked for without `n` is one page of this size,
 * and an `n` above it is refused as the distribution registry refuses one above its maximum (it
 * would otherwise reach SQLite as a number it cannot bind).
 */
const MAX_PAGE_ENTRIES = 1_000_000_000;

/** `n` and `last` of the paginated lists; n absent means everything. */
function pagination(params: URLSearchParams): { n: number | undefined; last: string } {
  const raw = params.get('n');
  let n: number | undefined;
  if (raw !== null) {
    n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (!(n <= MAX_PAGE_ENTRIES)) {
      throw new RegistryError('PAGINATION_INVALID', `n must be an integer from 0 to ${MAX_PAGE_ENTRIES}, not ${JSON.stringify(raw)}`, { n: raw });
    }
  }
  return { n, last: params.get('last') ?? '' };
}

function linkNext(reply: FastifyReply, path: string, n: number, last: string | undefined): void {
  if (last === undefined) return;
  reply.header('Link', `<${path}?n=${n}&last=${encodeURIComponent(last)}>; rel="next"`);
}

const base: Handler = async (_registry, _route, _request, reply) => reply.code(200).type('application/json').send({});

const catalog: Handler = async (registry, _route, request, reply) => {
  const { n, last } = pagination(query(request));
  // Only what the identity may read is listed.
  const page = registry.catalog(last, n ?? MAX_PAGE_ENTRIES, (repo) => request.access.allows(repo, 'read'));
  if (page.more && n !== undefined) linkNext(reply, '/v2/_catalog', n, page.repositories.at(-1));
  return reply.type('application/json').send({ repositories: page.repositories });
};

const tags: Handler = async (registry, route, request, reply) => {
  const { n, last } = pagination(query(request));
  const page = registry.tags(route.name, last, n ?? MAX_PAGE_ENTRIES);
  if (page.more && n !== undefined) linkNext(reply, `/v2/${route.name}/tags/list`, n, page.tags.at(-1));
  return reply.type('application/json').send({ name: route.name, tags: page.tags });
};

const uploads: Handler = async (registry, route, request, reply) => {
  const params = query(request);
  const ctx = context(request);
  const mount = params.get('mount');
  const from = params.get('from');
  // A mount needs read on the source; without it the request falls back to a session, as the spec
  // says of any mount that cannot be made. Without `from`, any readable repository of the root
  // holding the blob is a source (automatic content discovery).
  if (mount !== null) {
    const mayRead = (repo: string): boolean => request.access.allows(repo, 'read');
    const mounted =
      from === null
        ? await registry.mountFromReadableHolder(route.name, mount, mayRead, ctx)
        : mayRead(from)
          ? await registry.mountBlob(route.name, mount, from, ctx)
          : undefined;
    if (mounted) return sendBlobCreated(reply, route.name, mounted);
  }
  const digest = params.get('digest');
  if (digest !== null) {
    // Monolithic upload in one POST: the body is the whole blob.
    return sendBlobCreated(reply, route.name, await registry.pushBlob(route.name, digest, request.raw, ctx, declaredLength(request.raw)));
  }
  const id = await registry.startUpload(route.name);
  return sendUploadProgress(reply, route.name, id, 0, 202);
};

const upload: Handler = async (registry, route, request, reply) => {
  const id = route.reference;
  switch (request.method) {
    case 'GET':
      return sendUploadProgress(reply, route.name, id, await registry.uploadStatus(route.name, id), 204);
    case 'PATCH': {
      const range = parseContentRange(request.headers['content-range']);
      const size = await registry.appendUpload(route.name, id, request.raw, range);
      return sendUploadProgress(reply, route.name, id, size, 202);
    }
    case 'PUT': {
      const digest = query(request).get('digest');
      if (digest === null) throw new RegistryError('DIGEST_INVALID', 'the digest query parameter is required to finish an upload');
      const range = parseContentRange(request.headers['content-range']);
      const length = declaredLength(request.raw);
      const lastChunk = hasBody(request.raw) ? { body: request.raw, ...(range ? { range } : {}), ...(length !== undefined ? { length } : {}) } : undefined;
      const committed = await registry.commitUpload(route.name, id, digest, context(request), lastChunk);
      return sendBlobCreated(reply, route.name, committed);
    }
    default:
      await registry.cancelUpload(route.name, id);
      return reply.code(204).header('Content-Length', '0').send();
  }
};

const blob: Handler = async (registry, route, request, reply) => {
  if (request.method === 'DELETE') {
    await registry.deleteBlob(route.name, route.reference, context(request));
    return reply.code(202).header('Content-Length', '0').send();
  }
  const handle = await registry.blob(route.name, route.reference, (size) => parseRangeHeader(request.headers.range, size), {
    body: request.method !== 'HEAD',
  });
  reply
    .header('Docker-Content-Digest', handle.digest)
    .header('ETag', `"${handle.digest}"`)
    .header('Accept-Ranges', 'bytes')
    .type('application/octet-stream');
  if (handle.range) {
    reply
      .code(206)
      .header('Content-Range', `bytes ${handle.range.start}-${handle.range.end}/${handle.size}`)
      .header('Content-Length', String(handle.range.end - handle.range.start + 1));
  } else {
    reply.code(200).header('Content-Length', String(handle.size));
  }
  if (request.method === 'HEAD') return reply.send();
  const content = await handle.open();
  if ('stream' in content) return reply.send(content.stream);
  // A local file goes to the socket from reused buffers, past fastify's stream piping.
  try {
    return await reply.sendBody((response) => writeFileBody(response, content.file, content.start, content.end));
  } finally {
    await content.file.close();
  }
};

const manifest: Handler = async (registry, route, request, reply) => {
  switch (request.method) {
    case 'HEAD': {
      const info = await registry.manifestInfo(route.name, route.reference);
      return reply
        .header('Docker-Content-Digest', info.digest)
        .header('ETag', `"${info.digest}"`)
        .header('Content-Length', String(info.size))
        .type(info.mediaType)
        .send();
    }
    case 'GET': {
      const found = await registry.manifest(route.name, route.reference);
      return reply.header('Docker-Content-Digest', found.digest).header('ETag', `"${found.digest}"`).type(found.mediaType).send(found.content);
    }
    case 'PUT': {
      const body = await readBodyBounded(request.raw, MAX_MANIFEST_BYTES);
      const pushed = await registry.putManifest(route.name, route.reference, request.headers['content-type'], body, context(request), {
        beforeTagMove: () => request.access.require(route.name, ['update']),
      });
      if (pushed.subject) reply.header('OCI-Subject', pushed.subject);
      return reply
        .code(201)
        .header('Location', `/v2/${route.name}/manifests/${pushed.digest}`)
        .header('Docker-Content-Digest', pushed.digest)
        .header('Content-Length', '0')
        .send();
    }
    default:
      await registry.deleteManifest(route.name, route.reference, context(request));
      return reply.code(202).header('Content-Length', '0').send();
  }
};

const referrers: Handler = async (registry, route, request, reply) => {
  const artifactType = query(request).get('artifactType') ?? undefined;
  const manifests = registry.referrers(route.name, route.reference, artifactType);
  if (artifactType !== undefined) reply.header('OCI-Filters-Applied', 'artifactType');
  // A Buffer, not a string: fastify would append "; charset=utf-8" to a string's Content-Type, and
  // the spec (and its conformance suite) want the bare index media type.
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests }));
  return reply.type(MediaTypes.ociIndex).send(body);
};

export const handlers: Readonly<Record<Endpoint, Handler>> = { base, catalog, uploads, upload, blob, manifest, tags, referrers };
