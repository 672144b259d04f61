import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDigest } from '../../src/oci/digest.js';
import { IMAGE_LAYOUT_ENTRIES, isValidName, nameProblem, isValidTag, parseReference } from '../../src/oci/names.js';
import { RegistryError } from '../../src/oci/errors.js';

function kindOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof RegistryError ? err.kind : 'not a RegistryError';
  }
}

describe('repository names', () => {
  const valid = ['a', 'library/alpine', 'a/b/c', 'my-repo', 'my--repo', 'a_b', 'a__b', 'a.b', 'x0/y1.z2', 'a-b.c_d/e'];
  const invalid = ['', 'A', 'Library/alpine', '..', 'a/..', 'a//b', 'a/', '/a', '-a', 'a-', 'a___b', 'a..b', '.a', '_a', 'a/.uploads', 'a b', 'a:b', 'a'.repeat(256)];
  for (const name of valid) it(`accepts ${JSON.stringify(name)}`, () => assert.equal(isValidName(name), true));
  for (const name of invalid) it(`refuses ${JSON.stringify(name.length > 20 ? `${name.slice(0, 10)}…(${name.length})` : name)}`, () => assert.equal(isValidName(name), false));
  it('accepts a name of exactly 255 characters', () => assert.equal(isValidName('a'.repeat(255)), true));
});

describe('repository names that would land inside a repository layout', () => {
  const hex = 'e'.repeat(64);
  it('the layout entries are the three of the image-spec', () => {
    assert.deepEqual(Object.values(IMAGE_LAYOUT_ENTRIES).sort(), ['blobs', 'index.json', 'oci-layout']);
  });
  for (const entry of ['blobs', 'index.json', 'oci-layout']) {
    for (const name of [entry, `a/${entry}`, `fz/base/${entry}`, `${entry}/a`, `a/${entry}/b`]) {
      it(`refuses ${JSON.stringify(name)}, naming the component`, () => {
        assert.equal(isValidName(name), false);
        assert.match(nameProblem(name) ?? '', new RegExp(`"${entry.replace('.', '\\.')}"`));
      });
    }
  }
  it('refuses a path into a repository blob folder', () => {
    for (const name of ['fz/base/blobs/sha256', `b/blobs/sha256/${hex}`]) assert.equal(isValidName(name), false, name);
  });
  it('accepts components that only resemble a layout entry', () => {
    for (const name of ['blob', 'a/blobs2', 'a/my-blobs', 'a/index', 'a/index.jsonx', 'a/json.index', 'oci-layouts', 'a/oci', 'a/layout', 'a/sha256', `a/${hex}`]) {
      assert.equal(isValidName(name), true, name);
    }
  });
});

describe('tags', () => {
  it('accepts the spec grammar', () => {
    for (const tag of ['latest', 'v1.0.0', '_x', 'A-b_c.d', 'a'.repeat(128)]) assert.equal(isValidTag(tag), true, tag);
  });
  it('refuses tags outside it', () => {
    for (const tag of ['', '.x', '-x', 'a/b', 'a:b', 'a'.repeat(129)]) assert.equal(isValidTag(tag), false, tag);
  });
});

describe('digests', () => {
  const hex = 'a'.repeat(64);
  it('parses sha256 and sha512', () => {
    assert.deepEqual(parseDigest(`sha256:${hex}`), { algorithm: 'sha256', hex, value: `sha256:${hex}` });
    assert.equal(parseDigest(`sha512:${'b'.repeat(128)}`).algorithm, 'sha512');
  });
  it('refuses wrong lengths, upper case hex and garbage as DIGEST_INVALID', () => {
    for (const bad of [`sha256:${'a'.repeat(63)}`, `sha256:${'A'.repeat(64)}`, `sha256:${'g'.repeat(64)}`, 'sha256', ':abc', `sha512:${hex}`]) {
      assert.equal(kindOf(() => parseDigest(bad)), 'DIGEST_INVALID', bad);
    }
  });
  it('refuses well-formed digests of unknown algorithms as DIGEST_INVALID', () => {
    assert.equal(kindOf(() => parseDigest('md5:abcd')), 'DIGEST_INVALID');
  });
});

describe('manifest references', () => {
  it('tells tags from digests', () => {
    assert.deepEqual(parseReference('latest'), { kind: 'tag', tag: 'latest' });
    assert.equal(parseReference(`sha256:${'c'.repeat(64)}`).kind, 'digest');
  });
  it('refuses an invalid tag', () => {
    assert.equal(kindOf(() => parseReference('-bad')), 'MANIFEST_INVALID');
  });
});
