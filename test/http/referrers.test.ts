// The referrers API over HTTP (GET /v2/<name>/referrers/<digest>, with and without artifactType).
// Mirrors the OCI distribution-spec conformance suite (opencontainers/distribution-spec,
// conformance/): 03_discovery_test.go "References setup" (the empty JSON blob, artifacts whose type
// is their config's media type or their artifactType, an index artifact, a referrer pushed before
// its subject and one whose subject is never pushed; OCI-Subject on every PUT), "Test content
// discovery endpoints (listing references)" and "References teardown", with the artifacts built as
// setup.go builds them (annotations, tab-indented JSON). Beyond the suite: the filter header on an
// empty result, descriptors equal to the pushed manifests, referrers leaving the list when deleted,
// and a referrer of one repository not listed in another.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, makeImage, pushBlob, pushImage, pushManifest, sha256, type Descriptor } from '../helpers/oci.js';
import { expectOciError } from '../helpers/http.js';

let registry: TestRegistry;
let url: string;

const repo = 'conformance/referrers';
const ANNOTATION = 'org.opencontainers.conformance.test';
const ARTIFACT_TYPE_A = 'application/vnd.nhl.peanut.butter.bagel';
const ARTIFACT_TYPE_B = 'application/vnd.nba.strawberry.jam.croissant';
const ARTIFACT_TYPE_INDEX = 'application/vnd.food.stand';
const EMPTY_JSON = Buffer.from('{}');
const emptyDescriptor: Descriptor = { mediaType: OCI_EMPTY, digest: sha256(EMPTY_JSON), size: 2 };
const refBlobA = Buffer.from('NHL Peanut Butter on my NHL bagel');
const refBlobB = Buffer.from('NBA Strawberry Jam on my NBA croissant');

interface Pushed {
  name: string;
  content: string;
  digest: string;
  mediaType: string;
  artifactType: string;
  annotation?: string;
}

interface ReferrersIndex {
  schemaVersion: number;
  mediaType: string;
  manifests: (Descriptor & { artifactType?: string; annotations?: Record<string, string> })[];
}

const subject = makeImage();
const neverPushed = makeImage();
const subjectDescriptor = (image: typeof subject): Descriptor => ({ mediaType: OCI_MANIFEST, digest: image.digest, size: Buffer.byteLength(image.manifestBytes) });

function artifact(name: string, body: Record<string, unknown>, artifactType: string, mediaType = OCI_MANIFEST): Pushed {
  const content = JSON.stringify(body, null, '\t');
  const annotations = body.annotations as Record<string, string> | undefined;
  return { name, content, digest: sha256(content), mediaType, artifactType, ...(annotations ? { annotation: annotations[ANNOTATION] } : {}) };
}

// The suite's artifacts: A and B with their type in config.mediaType ("config artifacts") or in
// artifactType over the empty config ("layer artifacts"), C on a subject never pushed, an index.
const aConfig = artifact(
  'A config',
  {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: ARTIFACT_TYPE_A, size: refBlobA.length, digest: sha256(refBlobA) },
    subject: subjectDescriptor(subject),
    layers: [emptyDescriptor],
    annotations: { [ANNOTATION]: 'test config a' },
  },
  ARTIFACT_TYPE_A,
);
const aLayer = artifact(
  'A layer',
  {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: ARTIFACT_TYPE_A,
    config: emptyDescriptor,
    subject: subjectDescriptor(subject),
    layers: [{ mediaType: ARTIFACT_TYPE_A, size: refBlobA.length, digest: sha256(refBlobA) }],
    annotations: { [ANNOTATION]: 'test layer a' },
  },
  ARTIFACT_TYPE_A,
);
const bConfig = artifact(
  'B config',
  {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: ARTIFACT_TYPE_B, size: refBlobB.length, digest: sha256(refBlobB) },
    subject: subjectDescriptor(subject),
    layers: [emptyDescriptor],
    annotations: { [ANNOTATION]: 'test config b' },
  },
  ARTIFACT_TYPE_B,
);
const bLayer = artifact(
  'B layer',
  {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: ARTIFACT_TYPE_B,
    config: emptyDescriptor,
    subject: subjectDescriptor(subject),
    layers: [{ mediaType: ARTIFACT_TYPE_B, size: refBlobB.length, digest: sha256(refBlobB) }],
    annotations: { [ANNOTATION]: 'test layer b' },
  },
  ARTIFACT_TYPE_B,
);
const cLayer = artifact(
  'C layer',
  {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: ARTIFACT_TYPE_B,
    config: emptyDescriptor,
    subject: subjectDescriptor(neverPushed),
    layers: [{ mediaType: ARTIFACT_TYPE_B, size: refBlobB.length, digest: sha256(refBlobB) }],
  },
  ARTIFACT_TYPE_B,
);
const indexArtifact = artifact(
  'index',
  {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    artifactType: ARTIFACT_TYPE_INDEX,
    manifests: [
      { mediaType: OCI_MANIFEST, size: Buffer.byteLength(aConfig.content), digest: aConfig.digest },
      { mediaType: OCI_MANIFEST, size: Buffer.byteLength(aLayer.content), digest: aLayer.digest },
    ],
    subject: subjectDescriptor(subject),
    annotations: { [ANNOTATION]: 'test index' },
  },
  ARTIFACT_TYPE_INDEX,
  OCI_INDEX,
);
const referrersOfSubject = [aConfig, aLayer, indexArtifact, bConfig, bLayer];

async function pushReferrer(target: string, pushed: Pushed, expectedSubject: string): Promise<void> {
  const res = await pushManifest(url, target, pushed.digest, pushed.content, pushed.mediaType);
  const text = await res.text();
  assert.equal(res.status, 201, `${pushed.name} push answered ${res.status}: ${text}`);
  assert.equal(res.headers.get('oci-subject'), expectedSubject, `${pushed.name}: OCI-Subject names the subject`);
}

async function getReferrers(target: string, digest: string, artifactType?: string): Promise<{ res: Response; index: ReferrersIndex }> {
  const query = artifactType === undefined ? '' : `?artifactType=${encodeURIComponent(artifactType)}`;
  const res = await fetch(`${url}/v2/${target}/referrers/${digest}${query}`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), OCI_INDEX);
  const index = (await res.json()) as ReferrersIndex;
  assert.equal(index.schemaVersion, 2);
  assert.equal(index.mediaType, OCI_INDEX);
  assert.ok(Array.isArray(index.manifests));
  return { res, index };
}

/** Each listed descriptor is one of `expected`, with its media type, size, artifactType and annotation. */
function assertListed(index: ReferrersIndex, expected: Pushed[]): void {
  assert.deepEqual(index.manifests.map((m) => m.digest).sort(), expected.map((p) => p.digest).sort());
  for (const descriptor of index.manifests) {
    const pushed = expected.find((p) => p.digest === descriptor.digest) as Pushed;
    assert.equal(descriptor.mediaType, pushed.mediaType, `${pushed.name}: mediaType`);
    assert.equal(descriptor.size, Buffer.byteLength(pushed.content), `${pushed.name}: size`);
    assert.equal(descriptor.artifactType, pushed.artifactType, `${pushed.name}: artifactType`);
    if (pushed.annotation !== undefined) {
      assert.equal(Object.keys(descriptor.annotations ?? {}).length, 1, `${pushed.name}: one annotation`);
      assert.equal(descriptor.annotations?.[ANNOTATION], pushed.annotation, `${pushed.name}: annotation value`);
    }
  }
}

before(async () => {
  registry = await startTestRegistry();
  url = registry.url;
});
after(async () => {
  await registry.stop();
});

describe('references setup (03_discovery "References setup")', () => {
  it('the empty JSON blob has the digest the spec names, and is pushed', async () => {
    assert.equal(emptyDescriptor.digest, 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a');
    await pushBlob(url, repo, EMPTY_JSON);
  });

  it('referrers pushed before their subject answer OCI-Subject', async () => {
    await pushBlob(url, repo, refBlobA);
    await pushReferrer(repo, aConfig, subject.digest);
    await pushReferrer(repo, aLayer, subject.digest);
    await pushReferrer(repo, indexArtifact, subject.digest);
  });

  it('the subject image is pushed by tag', async () => {
    const res = await pushImage(url, repo, 'tagtest0', subject);
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('oci-subject'), null);
  });

  it('referrers pushed after their subject answer OCI-Subject', async () => {
    await pushBlob(url, repo, refBlobB);
    await pushReferrer(repo, bConfig, subject.digest);
    await pushReferrer(repo, bLayer, subject.digest);
  });

  it('a referrer to a subject that was never pushed is accepted with OCI-Subject', async () => {
    await pushReferrer(repo, cLayer, neverPushed.digest);
  });
});

describe('listing references (03_discovery "listing references")', () => {
  it('GET request to nonexistent blob should result in empty 200 response', async () => {
    const { index } = await getReferrers(repo, sha256('hello world'));
    assert.equal(index.manifests.length, 0);
  });

  it('GET request to existing blob should yield 200 with every referrer and its annotation', async () => {
    const { res, index } = await getReferrers(repo, subject.digest);
    assert.equal(index.manifests.length, 5);
    assert.notEqual(index.manifests[0]?.digest, index.manifests[1]?.digest);
    assertListed(index, referrersOfSubject);
    assert.equal(res.headers.get('oci-filters-applied'), null, 'no filter, no OCI-Filters-Applied');
  });

  it('GET request to existing blob with filter should yield 200, the filtered list and OCI-Filters-Applied', async () => {
    const { res, index } = await getReferrers(repo, subject.digest, ARTIFACT_TYPE_A);
    assert.equal(res.headers.get('oci-filters-applied'), 'artifactType');
    assert.equal(index.manifests.length, 2);
    assertListed(index, [aConfig, aLayer]);
  });

  it('the filter matches an index artifact by its artifactType', async () => {
    const { res, index } = await getReferrers(repo, subject.digest, ARTIFACT_TYPE_INDEX);
    assert.equal(res.headers.get('oci-filters-applied'), 'artifactType');
    assertListed(index, [indexArtifact]);
  });

  it('a filter matching nothing answers an empty list, still with OCI-Filters-Applied', async () => {
    const { res, index } = await getReferrers(repo, subject.digest, 'application/vnd.nothing.like.this');
    assert.equal(res.headers.get('oci-filters-applied'), 'artifactType');
    assert.deepEqual(index.manifests, []);
  });

  it('GET request to missing manifest should yield 200 with its one referrer', async () => {
    const { index } = await getReferrers(repo, neverPushed.digest);
    assert.equal(index.manifests.length, 1);
    assert.equal(index.manifests[0]?.digest, cLayer.digest);
    assertListed(index, [cLayer]);
  });

  it('a referrer of one repository is not listed in another', async () => {
    assert.equal((await pushImage(url, 'conformance/referrers-elsewhere', 'latest', subject)).status, 201);
    const { index } = await getReferrers('conformance/referrers-elsewhere', subject.digest);
    assert.deepEqual(index.manifests, []);
  });

  it('an invalid digest is a 400', async () => {
    await expectOciError(await fetch(`${url}/v2/${repo}/referrers/sha256:not-a-digest`), 400, 'DIGEST_INVALID');
  });
});

describe('references teardown (03_discovery "Teardown", "References teardown")', () => {
  it('a deleted referrer leaves the list', async () => {
    const del = await fetch(`${url}/v2/${repo}/manifests/${bLayer.digest}`, { method: 'DELETE' });
    assert.equal(del.status, 202);
    const { index } = await getReferrers(repo, subject.digest);
    assertListed(index, [aConfig, aLayer, indexArtifact, bConfig]);
  });

  it('a referrer the index artifact lists stays until the index is deleted (405 DENIED, as zot)', async () => {
    await expectOciError(await fetch(`${url}/v2/${repo}/manifests/${aLayer.digest}`, { method: 'DELETE' }), 405, 'DENIED');
    assertListed((await getReferrers(repo, subject.digest)).index, [aConfig, aLayer, indexArtifact, bConfig]);
  });

  it('deleting the subject keeps its referrers listed (they name it by digest)', async () => {
    assert.equal((await fetch(`${url}/v2/${repo}/manifests/${subject.digest}`, { method: 'DELETE' })).status, 202);
    const { index } = await getReferrers(repo, subject.digest);
    assertListed(index, [aConfig, aLayer, indexArtifact, bConfig]);
  });

  it('every manifest and blob of the setup deletes with 202 (manifests first), or 404 when already gone', async () => {
    for (const pushed of [indexArtifact, aConfig, aLayer, bConfig, bLayer, cLayer]) {
      const res = await fetch(`${url}/v2/${repo}/manifests/${pushed.digest}`, { method: 'DELETE' });
      assert.ok(res.status === 202 || res.status === 404, `${pushed.name}: ${res.status}`);
    }
    for (const blob of [subject.config, ...subject.layers, refBlobA, refBlobB, EMPTY_JSON]) {
      const res = await fetch(`${url}/v2/${repo}/blobs/${sha256(blob)}`, { method: 'DELETE' });
      assert.equal(res.status, 202);
    }
    assert.deepEqual((await getReferrers(repo, subject.digest)).index.manifests, []);
    assert.deepEqual((await getReferrers(repo, neverPushed.digest)).index.manifests, []);
  });
});
