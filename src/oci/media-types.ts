// Media types and annotations of the OCI image spec and Docker's schema 2 that the registry reads.

export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
} as const;

export const IMAGE_MANIFEST_TYPES: ReadonlySet<string> = new Set([MediaTypes.ociManifest, MediaTypes.dockerManifest]);
export const INDEX_MANIFEST_TYPES: ReadonlySet<string> = new Set([MediaTypes.ociIndex, MediaTypes.dockerManifestList]);
export const MANIFEST_MEDIA_TYPES: readonly string[] = [...IMAGE_MANIFEST_TYPES, ...INDEX_MANIFEST_TYPES];

/** Layers that registries may lack by design (Windows base layers); their blobs are not required. */
export const FOREIGN_LAYER_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

/** The annotation an OCI layout's index.json carries a tag in. */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
