import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifest } from '../../src/oci/manifest.js';
import { MediaTypes } from '../../src/oci/media-types.js';
import { RegistryError } from '../../src/oci/errors.js';

const d = (c: string): string => `sha256:${c.repeat(64)}`;
const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d('1'), size: 10 };
const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d('2'), size: 20 };

function parse(body: unknown, contentType?: string) {
  return parseManifest(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), contentType);
}

function invalidMessage(body: unknown, contentType?: string): string {
  try {
    parse(body, contentType);
  } catch (err) {
    assert.ok(err instanceof RegistryError);
    assert.equal(err.kind, 'MANIFEST_INVALID');
    return err.message;
  }
  assert.fail('expected MANIFEST_INVALID');
}

describe('manifest parsing', () => {
  it('reads an OCI image manifest: config and layers are required blobs; artifactType falls back to the config type', () => {
    const parsed = parse({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config, layers: [layer] }, MediaTypes.ociManifest);
    assert.equal(parsed.kind, 'image');
    assert.deepEqual(parsed.blobs, [d('1'), d('2')]);
    assert.deepEqual(parsed.manifests, []);
    assert.equal(parsed.artifactType, config.mediaType);
  });

  it('reads an artifact with artifactType, empty config and subject', () => {
    const empty = { mediaType: MediaTypes.ociEmpty, digest: d('3'), size: 2 };
    const subject = { mediaType: MediaTypes.ociManifest, digest: d('4'), size: 100 };
    const parsed = parse({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, artifactType: 'application/x.sbom', config: empty, layers: [], subject });
    assert.equal(parsed.artifactType, 'application/x.sbom');
    assert.equal(parsed.subject?.digest, d('4'));
    assert.deepEqual(parsed.blobs, [d('3')]);
  });

  it('reads OCI and Docker indexes: entries are required child manifests', () => {
    for (const mediaType of [MediaTypes.ociIndex, MediaTypes.dockerManifestList]) {
      const parsed = parse({ schemaVersion: 2, mediaType, manifests: [{ mediaType: MediaTypes.ociManifest, digest: d('5'), size: 1 }] }, mediaType);
      assert.equal(parsed.kind, 'index');
      assert.deepEqual(parsed.manifests, [d('5')]);
    }
  });

  it('skips foreign (non-distributable) layers from the required blobs', () => {
    const foreign = { mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', digest: d('6'), size: 5, urls: ['https://example.invalid/x'] };
    const parsed = parse({ schemaVersion: 2, mediaType: MediaTypes.dockerManifest, config, layers: [foreign, layer] }, MediaTypes.dockerManifest);
    assert.deepEqual(parsed.blobs, [d('1'), d('2')]);
  });

  it('infers the type when neither body nor header names it', () => {
    assert.equal(parse({ schemaVersion: 2, config, layers: [] }, 'application/json').mediaType, MediaTypes.ociManifest);
    assert.equal(parse({ schemaVersion: 2, manifests: [] }).mediaType, MediaTypes.ociIndex);
  });

  it('refuses malformed manifests with a message that says why', () => {
    assert.match(invalidMessage('{not json'), /not JSON/);
    assert.match(invalidMessage([1, 2]), /JSON object/);
    assert.match(invalidMessage({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config, layers: [] }, MediaTypes.ociIndex), /does not match Content-Type/);
    assert.match(invalidMessage({ schemaVersion: 1, mediaType: MediaTypes.ociManifest, config, layers: [] }), /schemaVersion must be 2/);
    assert.match(invalidMessage({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, layers: [] }), /config must be a descriptor/);
    assert.match(invalidMessage({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: { ...config, digest: 'sha256:xyz' }, layers: [] }), /config\.digest/);
    assert.match(invalidMessage({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: { ...config, size: -1 }, layers: [] }), /config\.size/);
    assert.match(invalidMessage({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config, layers: 'x' }), /layers must be a list/);
    assert.match(invalidMessage({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config, layers: [], annotations: { a: 1 } }), /annotations/);
    assert.match(invalidMessage({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }, MediaTypes.dockerSchema1Signed), /schema 1/);
    assert.match(invalidMessage({ schemaVersion: 2, mediaType: 'application/vnd.example.unknown+json' }), /unsupported media type/);
  });
});
