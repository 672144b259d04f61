// OCI image layouts written by hand for the end-to-end tests: the source of a `skopeo copy`, or
// a storage root in zot's layout (which is one OCI image layout per repository).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, sha256 } from './oci.js';

export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const REF_NAME = 'org.opencontainers.image.ref.name';

/** A manifest (image or index) with every blob it needs, children's blobs included. */
export interface LayoutManifest {
  mediaType: string;
  bytes: Buffer;
  digest: string;
  /** Config and layers (and, for an index, the children's manifests and blobs). */
  blobs: Buffer[];
  platform?: { architecture: string; os: string };
}

/** A ustar archive of one regular file, built byte by byte (POSIX.1-1988 header). */
export function tarOf(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string): void => {
    header.write(value, offset, length, 'ascii');
  };
  const octal = (value: number, length: number): string => value.toString(8).padStart(length - 1, '0') + '\0';
  field(0, 100, name);
  field(100, 8, octal(0o644, 8));
  field(108, 8, octal(0, 8));
  field(116, 8, octal(0, 8));
  field(124, 12, octal(content.length, 12));
  field(136, 12, octal(1_700_000_000, 12));
  field(148, 8, '        ');
  field(156, 1, '0');
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  const padding = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([header, content, padding, Buffer.alloc(1024)]);
}

/**
 * A single-platform OCI image whose layers are gzip'd tars of one random file each: small,
 * unless `fileBytes` gives each file's size.
 */
export function layoutImage(options: { architecture?: string; layers?: number; fileBytes?: number[] } = {}): LayoutManifest {
  const architecture = options.architecture ?? 'amd64';
  const sizes = options.fileBytes ?? Array.from({ length: options.layers ?? 2 }, (_, i) => 64 + i * 32);
  const tars = sizes.map((size, i) => tarOf(`file-${i}.bin`, randomBytes(size)));
  const layers = tars.map((tar) => gzipSync(tar));
  const config = Buffer.from(
    JSON.stringify({
      created: '2024-01-01T00:00:00Z',
      architecture,
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: tars.map((tar) => sha256(tar)) },
      history: tars.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'zot-ts test' })),
    }),
  );
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
    layers: layers.map((layer) => ({ mediaType: OCI_LAYER_GZIP, digest: sha256(layer), size: layer.length })),
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  return { mediaType: OCI_MANIFEST, bytes, digest: sha256(bytes), blobs: [config, ...layers], platform: { architecture, os: 'linux' } };
}

/** An OCI index over the given platform images. */
export function layoutIndex(children: LayoutManifest[]): LayoutManifest {
  const index = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: children.map((child) => ({
      mediaType: child.mediaType,
      digest: child.digest,
      size: child.bytes.length,
      ...(child.platform ? { platform: child.platform } : {}),
    })),
  };
  const bytes = Buffer.from(JSON.stringify(index));
  return { mediaType: OCI_INDEX, bytes, digest: sha256(bytes), blobs: children.flatMap((child) => [child.bytes, ...child.blobs]) };
}

export function writeBlobFile(dir: string, data: Buffer, name = sha256(data)): void {
  const hex = name.replace(/^sha256:/, '');
  fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'blobs', 'sha256', hex), data);
}

export interface LayoutEntry {
  manifest: LayoutManifest;
  /** Tag in the ref.name annotation; absent for an untagged entry (zot lists index children so). */
  tag?: string;
}

/** Writes `dir` as an OCI image layout: oci-layout, index.json and every blob. */
export function writeLayout(dir: string, entries: LayoutEntry[]): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const { manifest } of entries) {
    writeBlobFile(dir, manifest.bytes);
    for (const blob of manifest.blobs) writeBlobFile(dir, blob);
  }
  const index = {
    schemaVersion: 2,
    manifests: entries.map(({ manifest, tag }) => ({
      mediaType: manifest.mediaType,
      digest: manifest.digest,
      size: manifest.bytes.length,
      ...(tag !== undefined ? { annotations: { [REF_NAME]: tag } } : {}),
    })),
  };
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify(index));
}

/** Every blob file of a layout, by digest. */
export function readLayoutBlobs(dir: string): Map<string, Buffer> {
  const blobs = new Map<string, Buffer>();
  const blobDir = path.join(dir, 'blobs', 'sha256');
  for (const hex of fs.readdirSync(blobDir)) blobs.set(`sha256:${hex}`, fs.readFileSync(path.join(blobDir, hex)));
  return blobs;
}

export interface IndexJson {
  schemaVersion: number;
  manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
}

export function readIndexJson(dir: string): IndexJson {
  return JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as IndexJson;
}

/** The digest the layout's index.json gives `tag`. */
export function taggedDigest(dir: string, tag: string): string | undefined {
  return readIndexJson(dir).manifests.find((m) => m.annotations?.[REF_NAME] === tag)?.digest;
}
