// Checks from the client's side of what a registry serves, sharing no code with the registry:
// everything is pulled over HTTP and re-hashed here. `zot replay` rebuilds the projections with the
// registry's own code, so a bug in that code passes it; these checks catch what a client would see.
import assert from 'node:assert/strict';
import { DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, sha256 } from './oci.js';

export const ACCEPT_MANIFESTS = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(', ');

/** Something a registry answered 201 for: a blob, or a manifest (pushed under `tag` if given). */
export type Acknowledged = { kind: 'blob'; repo: string; digest: string; size?: number } | { kind: 'manifest'; repo: string; digest: string; tag?: string };

interface DescriptorLike {
  digest: string;
  size: number;
  mediaType?: string;
}

interface ManifestLike {
  config?: DescriptorLike;
  layers?: DescriptorLike[];
  manifests?: DescriptorLike[];
}

/** A tag never holds a colon; a digest always does. */
function isDigest(reference: string): boolean {
  return reference.includes(':');
}

/**
 * GETs a manifest and checks that its bytes hash to the Docker-Content-Digest header (and to the
 * reference, when it is a digest).
 */
export async function pullManifest(url: string, repo: string, reference: string): Promise<{ digest: string; bytes: Buffer; mediaType: string }> {
  const res = await fetch(`${url}/v2/${repo}/manifests/${reference}`, { headers: { Accept: ACCEPT_MANIFESTS } });
  const bytes = Buffer.from(await res.arrayBuffer());
  assert.equal(res.status, 200, `manifest ${repo}@${reference} answered ${res.status}: ${bytes.toString().slice(0, 200)}`);
  const digest = res.headers.get('docker-content-digest');
  assert.ok(digest, `manifest ${repo}@${reference} has a Docker-Content-Digest header`);
  assert.equal(sha256(bytes), digest, `manifest ${repo}@${reference}: its bytes hash to its Docker-Content-Digest`);
  if (isDigest(reference)) assert.equal(digest, reference, `manifest ${repo}@${reference} is served under the digest asked for`);
  return { digest, bytes, mediaType: res.headers.get('content-type') ?? '' };
}

/** GETs a blob and checks that its bytes hash to its digest (and have `size` bytes, if given). */
export async function pullBlob(url: string, repo: string, digest: string, size?: number): Promise<Buffer> {
  const res = await fetch(`${url}/v2/${repo}/blobs/${digest}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  assert.equal(res.status, 200, `blob ${repo}@${digest} answered ${res.status}`);
  assert.equal(sha256(bytes), digest, `blob ${repo}@${digest}: its bytes hash to its digest`);
  if (size !== undefined) assert.equal(bytes.length, size, `blob ${repo}@${digest} has the size its descriptor says`);
  const header = res.headers.get('docker-content-digest');
  if (header !== null) assert.equal(header, digest, `blob ${repo}@${digest} carries its own Docker-Content-Digest`);
  return bytes;
}

/**
 * Pulls a manifest by `reference`, again by its digest (the same bytes), and everything it
 * references: config and layers of an image, child manifests of an index, recursively. Returns the
 * manifest's digest and how many blobs were pulled.
 */
export async function assertPullsWhole(url: string, repo: string, reference: string): Promise<{ digest: string; blobs: number }> {
  const pulled = await pullManifest(url, repo, reference);
  if (!isDigest(reference)) {
    const byDigest = await pullManifest(url, repo, pulled.digest);
    assert.ok(byDigest.bytes.equals(pulled.bytes), `${repo}:${reference} and ${repo}@${pulled.digest} serve the same bytes`);
  }
  const manifest = JSON.parse(pulled.bytes.toString()) as ManifestLike;
  let blobs = 0;
  for (const descriptor of [...(manifest.config ? [manifest.config] : []), ...(manifest.layers ?? [])]) {
    await pullBlob(url, repo, descriptor.digest, descriptor.size);
    blobs++;
  }
  for (const child of manifest.manifests ?? []) {
    const { bytes } = await pullManifest(url, repo, child.digest);
    assert.equal(bytes.length, child.size, `child manifest ${repo}@${child.digest} has the size its descriptor says`);
    blobs += (await assertPullsWhole(url, repo, child.digest)).blobs;
  }
  return { digest: pulled.digest, blobs };
}

/**
 * Every acknowledged write is served whole: a blob by its digest; a manifest by its digest and by
 * its tag (which must still point at it), with everything it references.
 */
export async function assertAcknowledgedPull(url: string, acknowledged: readonly Acknowledged[]): Promise<void> {
  for (const ack of acknowledged) {
    if (ack.kind === 'blob') {
      await pullBlob(url, ack.repo, ack.digest, ack.size);
      continue;
    }
    await assertPullsWhole(url, ack.repo, ack.digest);
    if (ack.tag !== undefined) {
      const byTag = await pullManifest(url, ack.repo, ack.tag);
      assert.equal(byTag.digest, ack.digest, `acknowledged ${ack.repo}:${ack.tag} still names ${ack.digest}`);
    }
  }
}

/** Follows `Link: <...>; rel="next"` pages of a catalog or tag list; returns every entry. */
async function listAll(url: string, firstPath: string, key: 'repositories' | 'tags'): Promise<string[]> {
  const entries: string[] = [];
  for (let next: string | undefined = firstPath; next !== undefined; ) {
    const res = await fetch(new URL(next, url));
    const text = await res.text();
    assert.equal(res.status, 200, `GET ${next} answered ${res.status}: ${text}`);
    entries.push(...(((JSON.parse(text) as Record<string, string[] | null>)[key] ?? []) as string[]));
    next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1];
  }
  return entries;
}

/**
 * Nothing is listed that does not pull whole: every repository of the catalog answers its tag
 * list, and every tag pulls whole (by tag and by digest). Returns the tags checked, as `repo:tag`.
 */
export async function assertListedPullWhole(url: string): Promise<string[]> {
  const checked: string[] = [];
  for (const repo of await listAll(url, '/v2/_catalog', 'repositories')) {
    for (const tag of await listAll(url, `/v2/${repo}/tags/list`, 'tags')) {
      await assertPullsWhole(url, repo, tag);
      checked.push(`${repo}:${tag}`);
    }
  }
  return checked;
}
