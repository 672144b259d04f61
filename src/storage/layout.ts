// The storage layout, zot's OCI image layout per repository. This file is the only place that
// builds storage paths; everything else asks it.
//
//   ROOT/
//   ├── .zot-ts/                 registry-private: no valid repository name starts with "."
//   │   ├── events.db            the event log and its projections (SQLite, WAL)
//   │   ├── tmp/                 files being written, renamed into place when complete
//   │   ├── closing-uploads/ID   an upload session being closed by a PUT with a last chunk: the
//   │   │                        size its PATCHes acknowledged, to restore it if the PUT fails
//   │   └── upload-parts/ID      on an S3 root, the multipart upload a session's bytes go to as
//   │                            they arrive: its upload id and the parts stored so far
//   └── REPO/                    one directory per name component, e.g. library/alpine
//       ├── oci-layout           {"imageLayoutVersion":"1.0.0"}
//       ├── index.json           manifests and tags as zot keeps them (written by an actor)
//       ├── blobs/
//       │   └── sha256/HEX       blobs and manifests, content-addressed
//       └── .uploads/ID          upload sessions in progress (zot's name for them); on an S3 root
//                                also the key of the session's multipart upload, as zot's; the
//                                object exists only from its completion to its move into blobs/
import * as path from 'node:path';
import type { ParsedDigest } from '../oci/digest.js';
import { IMAGE_LAYOUT_ENTRIES } from '../oci/names.js';

export const PRIVATE_DIR = '.zot-ts';
export const OCI_LAYOUT_FILE = IMAGE_LAYOUT_ENTRIES.ociLayout;
export const INDEX_FILE = IMAGE_LAYOUT_ENTRIES.index;
export const BLOBS_DIR = IMAGE_LAYOUT_ENTRIES.blobs;
export const UPLOADS_DIR = '.uploads';
export const OCI_LAYOUT_CONTENT = JSON.stringify({ imageLayoutVersion: '1.0.0' });

/** The SQLite file of the event log: a local path even when blobs live elsewhere. */
export function eventLogFile(rootDirectory: string): string {
  return path.join(rootDirectory, PRIVATE_DIR, 'events.db');
}

/** Where files are written before their atomic rename into the layout. */
export const TEMP_DIR = `${PRIVATE_DIR}/tmp`;

/** Markers of upload sessions being closed (in each root's local staging directory). */
export const CLOSING_UPLOADS_DIR = `${PRIVATE_DIR}/closing-uploads`;

export function closingUploadPath(uploadId: string): string {
  return `${CLOSING_UPLOADS_DIR}/${uploadId}`;
}

/** Multipart-upload records of upload sessions on S3 roots (in each root's local staging directory). */
export const UPLOAD_PARTS_DIR = `${PRIVATE_DIR}/upload-parts`;

export function uploadPartsPath(uploadId: string): string {
  return `${UPLOAD_PARTS_DIR}/${uploadId}`;
}

export function repoDir(repo: string): string {
  return repo;
}

export function ociLayoutPath(repo: string): string {
  return `${repo}/${OCI_LAYOUT_FILE}`;
}

export function indexPath(repo: string): string {
  return `${repo}/${INDEX_FILE}`;
}

export function blobsDir(repo: string, algorithm: string): string {
  return `${repo}/${BLOBS_DIR}/${algorithm}`;
}

export function blobPath(repo: string, digest: ParsedDigest): string {
  return `${repo}/${BLOBS_DIR}/${digest.algorithm}/${digest.hex}`;
}

export function uploadsDir(repo: string): string {
  return `${repo}/${UPLOADS_DIR}`;
}

export function uploadPath(repo: string, uploadId: string): string {
  return `${repo}/${UPLOADS_DIR}/${uploadId}`;
}

/** A directory is a repository when it holds an OCI layout, as zot decides. */
export function isRepositoryMarker(entry: string): boolean {
  return entry === OCI_LAYOUT_FILE;
}

/** Directory names that belong to a repository's layout rather than to nested repositories. */
export function isLayoutEntry(entry: string): boolean {
  return entry === OCI_LAYOUT_FILE || entry === INDEX_FILE || entry === BLOBS_DIR || entry.startsWith('.');
}
