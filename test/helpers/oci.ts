// A small OCI client for the tests, on Node's fetch: push and pull blobs and manifests.
import { createHash, randomBytes } from 'node:crypto';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

export function descriptor(mediaType: string, data: Buffer | string): Descriptor {
  return { mediaType, digest: sha256(data), size: Buffer.byteLength(data) };
}

/** Monolithic upload: POST ?digest= with the whole body. */
export async function pushBlob(url: string, repo: string, data: Buffer | string): Promise<string> {
  const digest = sha256(data);
  const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: data,
  });
  if (res.status !== 201) throw new Error(`blob push to ${repo} answered ${res.status}: ${await res.text()}`);
  return digest;
}

export async function pushManifest(url: string, repo: string, reference: string, manifest: object | string, mediaType = OCI_MANIFEST): Promise<Response> {
  const body = typeof manifest === 'string' ? manifest : JSON.stringify(manifest);
  return fetch(`${url}/v2/${repo}/manifests/${reference}`, { method: 'PUT', headers: { 'Content-Type': mediaType }, body });
}

export interface TestImage {
  config: Buffer;
  layers: Buffer[];
  manifest: Record<string, unknown>;
  manifestBytes: string;
  digest: string;
}

/** A small image with random layer content, so every call makes a distinct image. */
export function makeImage(options: { layers?: number; layerBytes?: number; subject?: Descriptor; artifactType?: string } = {}): TestImage {
  const layers = Array.from({ length: options.layers ?? 1 }, () => randomBytes(options.layerBytes ?? 512));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map(sha256) } }));
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: descriptor(OCI_CONFIG, config),
    layers: layers.map((layer) => descriptor(OCI_LAYER, layer)),
  };
  if (options.artifactType) manifest.artifactType = options.artifactType;
  if (options.subject) manifest.subject = options.subject;
  const manifestBytes = JSON.stringify(manifest);
  return { config, layers, manifest, manifestBytes, digest: sha256(manifestBytes) };
}

/** Pushes an image's blobs and its manifest under `reference`; returns the manifest response. */
export async function pushImage(url: string, repo: string, reference: string, image: TestImage = makeImage()): Promise<Response> {
  await pushBlob(url, repo, image.config);
  for (const layer of image.layers) await pushBlob(url, repo, layer);
  return pushManifest(url, repo, reference, image.manifestBytes);
}

export async function errorCode(res: Response): Promise<string | undefined> {
  const body = (await res.json()) as { errors?: { code?: string }[] };
  return body.errors?.[0]?.code;
}
