// Given events, then rows: the registry-state projection over a real SQLite database.
import { describe, it, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { EventStore } from '../../src/events/store.js';
import type { EventBody } from '../../src/events/types.js';
import { RegistryStateProjection, RegistryStateQueries } from '../../src/projections/registry-state.js';
import { buildIndex } from '../../src/actors/index-json-writer.js';

const d = (c: string): string => `sha256:${c.repeat(64)}`;
const ctx = { identity: 'anonymous', client: '127.0.0.1', requestId: 'r1' };

describe('registry-state projection', () => {
  let db: Database.Database;
  let store: EventStore;
  let queries: RegistryStateQueries;
  const given = async (...events: EventBody[]): Promise<void> => void (await store.append(events, ctx));

  beforeEach(() => {
    db = new Database(':memory:');
    store = new EventStore(db, [new RegistryStateProjection()]);
    queries = new RegistryStateQueries(db);
  });

  const image = (repo: string, digest: string, blobs: string[], extra: Partial<Extract<EventBody, { type: 'ManifestPushed' }>> = {}): EventBody => ({
    type: 'ManifestPushed',
    repo,
    digest,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    size: 100,
    blobs,
    manifests: [],
    ...extra,
  });

  it('records blobs per repository and creates the repository', async () => {
    await given({ type: 'BlobPushed', repo: 'a', digest: d('1'), size: 5 }, { type: 'BlobMounted', repo: 'b', digest: d('1'), size: 5, from: 'a' });
    assert.equal(queries.blobSize('a', d('1')), 5);
    assert.equal(queries.blobSize('b', d('1')), 5);
    assert.deepEqual(queries.repositories('', 10), ['a', 'b']);
    await given({ type: 'BlobDeleted', repo: 'a', digest: d('1') });
    assert.equal(queries.blobSize('a', d('1')), undefined);
    assert.equal(queries.blobSize('b', d('1')), 5);
  });

  it('tracks manifests, their references and tags; deleting a manifest drops its tags and references', async () => {
    await given(
      { type: 'BlobPushed', repo: 'r', digest: d('1'), size: 1 },
      image('r', d('m'), [d('1')]),
      { type: 'TagSet', repo: 'r', tag: 'v1', digest: d('m') },
      { type: 'TagSet', repo: 'r', tag: 'latest', digest: d('m') },
    );
    assert.equal(queries.tagDigest('r', 'v1'), d('m'));
    assert.deepEqual(queries.tags('r', '', 10), ['latest', 'v1']);
    assert.deepEqual(queries.tags('r', 'latest', 10), ['v1']);
    assert.equal(queries.isBlobReferenced('r', d('1')), true);
    await given({ type: 'ManifestDeleted', repo: 'r', digest: d('m') });
    assert.equal(queries.manifest('r', d('m')), undefined);
    assert.deepEqual(queries.tags('r', '', 10), []);
    assert.equal(queries.isBlobReferenced('r', d('1')), false);
  });

  it('moves a tag and removes one tag without touching the manifest', async () => {
    await given(image('r', d('a'), []), image('r', d('b'), []), { type: 'TagSet', repo: 'r', tag: 't', digest: d('a') });
    await given({ type: 'TagSet', repo: 'r', tag: 't', digest: d('b'), previous: d('a') });
    assert.equal(queries.tagDigest('r', 't'), d('b'));
    await given({ type: 'TagRemoved', repo: 'r', tag: 't', digest: d('b') });
    assert.equal(queries.tagDigest('r', 't'), undefined);
    assert.ok(queries.manifest('r', d('b')));
  });

  it('answers referrers by subject with their artifact type and annotations', async () => {
    await given(
      image('r', d('s'), []),
      image('r', d('x'), [], { subject: d('s'), artifactType: 'application/x.sig', annotations: { k: 'v' } }),
      image('r', d('y'), [], { subject: d('s'), artifactType: 'application/x.sbom' }),
      image('other', d('z'), [], { subject: d('s') }),
    );
    const rows = queries.referrers('r', d('s'));
    assert.deepEqual(rows.map((r) => [r.digest, r.artifact_type, r.annotations]), [
      [d('x'), 'application/x.sig', '{"k":"v"}'],
      [d('y'), 'application/x.sbom', null],
    ]);
  });

  it('builds index.json as zot keeps it: one descriptor per tag, untagged manifests once', async () => {
    await given(image('r', d('a'), []), image('r', d('b'), []), { type: 'TagSet', repo: 'r', tag: 'one', digest: d('a') }, { type: 'TagSet', repo: 'r', tag: 'two', digest: d('a') });
    const index = buildIndex(queries, 'r');
    assert.equal(index.schemaVersion, 2);
    assert.deepEqual(
      index.manifests.map((m) => [m.digest, m.annotations?.['org.opencontainers.image.ref.name']]),
      [
        [d('a'), 'one'],
        [d('a'), 'two'],
        [d('b'), undefined],
      ],
    );
  });

  it('rolls back events and projection together when a precondition fails', async () => {
    await assert.rejects(
      store.append([{ type: 'BlobPushed', repo: 'r', digest: d('1'), size: 1 }], ctx, {
        precondition: () => {
          throw new Error('no');
        },
      }),
    );
    assert.equal(store.head(), 0);
    assert.equal(queries.repositoryExists('r'), false);
  });

  it('runs reads together in one transaction, inside an append\'s too, passing results and errors on', async () => {
    await given(image('r', d('m'), []), { type: 'TagSet', repo: 'r', tag: 'v1', digest: d('m') });
    assert.equal(
      queries.together(() => queries.manifest('r', queries.tagDigest('r', 'v1') as string)?.size),
      100,
    );
    assert.throws(
      () =>
        queries.together(() => {
          throw new Error('not found');
        }),
      /not found/,
    );
    assert.equal(db.inTransaction, false, 'no transaction left open');
    // Inside an append's transaction (a precondition), the reads run in it.
    await store.append([image('r', d('n'), []), { type: 'TagSet', repo: 'r', tag: 'v2', digest: d('n') }], ctx, {
      precondition: () => {
        assert.equal(queries.together(() => queries.repositoryExists('r')), true);
      },
    });
    assert.equal(queries.tagDigest('r', 'v2'), d('n'));
  });
});
