// Parsing and validation of the manifest kinds the registry stores: OCI image manifest and
// index, Docker v2 schema2 manifest and manifest list, and OCI artifacts (artifactType, subject,
// empty config). The bytes are stored exactly as received; this only reads them.
import { parseDigest } from './digest.js';
import { RegistryError } from './errors.js';
import { FOREIGN_LAYER_TYPES, IMAGE_MANIFEST_TYPES as IMAGE_TYPES, INDEX_MANIFEST_TYPES as INDEX_TYPES, MANIFEST_MEDIA_TYPES, MediaTypes } from './media-types.js';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface ParsedManifest {
  mediaType: string;
  kind: 'image' | 'index';
  artifactType?: string;
  subject?: Descriptor;
  /** Blobs that must be in the repository (config and distributable layers). */
  blobs: string[];
  /** Child manifests that must be in the repository (entries of an index). */
  manifests: string[];
  annotations?: Record<string, string>;
}

function invalid(message: string): RegistryError {
  return new RegistryError('MANIFEST_INVALID', `manifest invalid: ${message}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readAnnotations(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    throw invalid(`${where}annotations must map strings to strings`);
  }
  return value as Record<string, string>;
}

function readDescriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw invalid(`${where} must be a descriptor object`);
  const { mediaType, digest, size, artifactType, urls } = value;
  if (typeof mediaType !== 'string' || mediaType === '') throw invalid(`${where}.mediaType must be a string`);
  if (typeof digest !== 'string') throw invalid(`${where}.digest must be a string`);
  try {
    parseDigest(digest);
  } catch {
    throw invalid(`${where}.digest is not a valid digest: ${JSON.stringify(digest)}`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(`${where}.size must be a non-negative integer`);
  }
  if (artifactType !== undefined && typeof artifactType !== 'string') throw invalid(`${where}.artifactType must be a string`);
  if (urls !== undefined && (!Array.isArray(urls) || !urls.every((u) => typeof u === 'string'))) {
    throw invalid(`${where}.urls must be a list of strings`);
  }
  const descriptor: Descriptor = { mediaType, digest, size };
  if (artifactType !== undefined) descriptor.artifactType = artifactType;
  const annotations = readAnnotations(value.annotations, `${where}.`);
  if (annotations) descriptor.annotations = annotations;
  if (urls !== undefined) descriptor.urls = urls as string[];
  return descriptor;
}

/**
 * Decides the manifest's media type from the body's `mediaType` and the request's Content-Type.
 * They must agree when both name a manifest type; OCI lets the body omit it.
 */
function resolveMediaType(body: Record<string, unknown>, contentType: string | undefined): string {
  const declared = contentType?.split(';')[0]?.trim().toLowerCase();
  const inBody = body.mediaType;
  if (inBody !== undefined && typeof inBody !== 'string') throw invalid('mediaType must be a string');
  const headerNamesManifest = declared !== undefined && (MANIFEST_MEDIA_TYPES.includes(declared) || declared.startsWith('application/vnd.'));
  if (inBody !== undefined && headerNamesManifest && inBody !== declared) {
    throw invalid(`mediaType ${inBody} does not match Content-Type ${declared}`);
  }
  if (inBody !== undefined) return inBody;
  if (headerNamesManifest && declared) return declared;
  if (Array.isArray(body.manifests)) return MediaTypes.ociIndex;
  if (isObject(body.config) || Array.isArray(body.layers)) return MediaTypes.ociManifest;
  throw invalid('cannot tell the manifest type: no mediaType and no Content-Type naming one');
}

export function parseManifest(content: Buffer, contentType: string | undefined): ParsedManifest {
  let body: unknown;
  try {
    body = JSON.parse(content.toString('utf8'));
  } catch (err) {
    throw invalid(`body is not JSON (${(err as Error).message})`);
  }
  if (!isObject(body)) throw invalid('body must be a JSON object');
  const mediaType = resolveMediaType(body, contentType);
  if (mediaType === MediaTypes.dockerSchema1 || mediaType === MediaTypes.dockerSchema1Signed) {
    throw invalid('Docker schema 1 manifests are not supported; push schema 2 or OCI');
  }
  if (!IMAGE_TYPES.has(mediaType) && !INDEX_TYPES.has(mediaType)) throw invalid(`unsupported media type ${mediaType}`);
  if (body.schemaVersion !== 2) throw invalid('schemaVersion must be 2');
  if (body.artifactType !== undefined && typeof body.artifactType !== 'string') throw invalid('artifactType must be a string');
  const subject = body.subject === undefined ? undefined : readDescriptor(body.subject, 'subject');
  const annotations = readAnnotations(body.annotations, '');

  const parsed: ParsedManifest = { mediaType, kind: 'image', blobs: [], manifests: [] };
  if (subject) parsed.subject = subject;
  if (annotations) parsed.annotations = annotations;

  if (IMAGE_TYPES.has(mediaType)) {
    const config = readDescriptor(body.config, 'config');
    if (!Array.isArray(body.layers)) throw invalid('layers must be a list');
    const layers = body.layers.map((layer, i) => readDescriptor(layer, `layers[${i}]`));
    parsed.blobs = [config.digest, ...layers.filter((l) => !FOREIGN_LAYER_TYPES.has(l.mediaType)).map((l) => l.digest)];
    // Referrers report an image's artifactType, or else its config's media type (spec 1.1).
    const artifactType = typeof body.artifactType === 'string' ? body.artifactType : config.mediaType;
    parsed.artifactType = artifactType;
  } else {
    parsed.kind = 'index';
    if (!Array.isArray(body.manifests)) throw invalid('manifests must be a list');
    const children = body.manifests.map((child, i) => readDescriptor(child, `manifests[${i}]`));
    parsed.manifests = children.map((c) => c.digest);
    if (typeof body.artifactType === 'string') parsed.artifactType = body.artifactType;
  }
  return parsed;
}
