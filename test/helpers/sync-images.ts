// Images for the sync tests' upstreams: built as OCI layouts (layout.ts), pushed with skopeo (the
// real client, for authenticated and TLS upstreams) or with plain HTTP requests (many images fast).
import * as path from 'node:path';
import { layoutImage, layoutIndex, writeLayout, type LayoutManifest } from './layout.js';
import { pushManifest, sha256 } from './oci.js';
import { makeTempDir } from './registry.js';
import type { Skopeo } from './skopeo.js';

export { layoutImage, layoutIndex, type LayoutManifest };

/** Copies one manifest (and its children and blobs) from a fresh OCI layout to `destination`. */
export async function pushWithSkopeo(client: Skopeo, image: LayoutManifest, destination: string, destinationFlags: string[] = []): Promise<void> {
  const dir = path.join(makeTempDir('zot-ts-sync-layout-'), 'layout');
  writeLayout(dir, [{ manifest: image, tag: 'latest' }]);
  const flags = destinationFlags.length > 0 ? destinationFlags : ['--dest-tls-verify=false'];
  await client.ok(['copy', '--all', '--preserve-digests', ...flags, `oci:${dir}:latest`, destination]);
}

/** POST then PUT ?digest=: distribution 2.x has no monolithic POST ?digest= upload. */
export async function pushBlobInTwoSteps(url: string, repo: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const head = await fetch(`${url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
  if (head.status === 200) return digest;
  const started = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await started.arrayBuffer();
  if (started.status !== 202) throw new Error(`upload start in ${repo} answered ${started.status}`);
  const session = new URL(started.headers.get('location') ?? '', url);
  session.searchParams.set('digest', digest);
  const put = await fetch(session, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body: data });
  await put.arrayBuffer();
  if (put.status !== 201) throw new Error(`blob push to ${repo} answered ${put.status}`);
  return digest;
}

/**
 * Pushes an image, or an index with its platform images, by the distribution API without
 * authentication: blobs, child manifests by digest, then the manifest under `reference`.
 */
export async function pushOverHttp(url: string, repo: string, reference: string, image: LayoutManifest, children: LayoutManifest[] = []): Promise<void> {
  for (const child of children) await pushOverHttp(url, repo, child.digest, child);
  if (children.length === 0) for (const blob of image.blobs) await pushBlobInTwoSteps(url, repo, blob);
  const res = await pushManifest(url, repo, reference, image.bytes.toString('utf8'), image.mediaType);
  if (res.status !== 201) throw new Error(`manifest push to ${repo}:${reference} answered ${res.status}: ${await res.text()}`);
}

/** A multi-platform image: an index over linux/amd64, linux/arm64 and linux/s390x images. */
export function multiPlatformImage(): { index: LayoutManifest; children: LayoutManifest[] } {
  const children = ['amd64', 'arm64', 's390x'].map((architecture) => layoutImage({ architecture, layers: 1 }));
  return { index: layoutIndex(children), children };
}
