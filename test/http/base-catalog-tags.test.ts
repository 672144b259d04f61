// The base endpoint, the catalog and tag listing, over HTTP.
// Mirrors the OCI distribution-spec conformance suite (opencontainers/distribution-spec,
// conformance/): 03_discovery_test.go "Test content discovery endpoints (listing tags)" and its
// "Setup" (tags test0..test3 on one manifest), 01_pull_test.go "Setup" (the tag name read back from
// the tags list), and 04_management_test.go "GET request to tags list should reflect manifest
// deletion". Beyond the suite: the Link header of paginated lists (spec "Listing Tags"), the
// catalog, and PAGINATION_NUMBER_INVALID / NAME_UNKNOWN on these endpoints.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, pushImage, pushManifest } from '../helpers/oci.js';
import { expectOciError } from '../helpers/http.js';

let registry: TestRegistry;
let url: string;

interface TagList {
  name: string;
  tags: string[];
}

async function getJson<T>(path: string): Promise<{ res: Response; body: T }> {
  const res = await fetch(`${url}${path}`);
  assert.equal(res.status, 200, `GET ${path} answered ${res.status}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json\b/);
  return { res, body: (await res.json()) as T };
}

/** The target of a `Link: <...>; rel="next"` header, or undefined without one. */
function nextLink(res: Response): string | undefined {
  const link = res.headers.get('link');
  if (link === null) return undefined;
  const match = /^<([^>]+)>;\s*rel="next"$/.exec(link);
  assert.ok(match, `Link header has the RFC 5988 form <url>; rel="next": ${link}`);
  return match[1];
}

before(async () => {
  registry = await startTestRegistry();
  url = registry.url;
});
after(async () => {
  await registry.stop();
});

describe('base endpoint /v2/', () => {
  it('GET answers 200 with a JSON body and the API version header', async () => {
    const res = await fetch(`${url}/v2/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
    assert.match(res.headers.get('content-type') ?? '', /^application\/json\b/);
    assert.deepEqual(await res.json(), {});
  });

  it('GET /v2 without the trailing slash is the same endpoint', async () => {
    const res = await fetch(`${url}/v2`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });

  it('HEAD answers 200 with no body', async () => {
    const res = await fetch(`${url}/v2/`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
    assert.equal((await res.arrayBuffer()).byteLength, 0);
  });

  it('every answer carries Docker-Distribution-API-Version, errors included', async () => {
    const res = await fetch(`${url}/v2/nothing/here/manifests/latest`);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
    await expectOciError(res, 404, 'NAME_UNKNOWN');
  });
});

describe('tags list (03_discovery "listing tags")', () => {
  const repo = 'discovery/tags';
  const tags = ['test0', 'test1', 'test2', 'test3'];
  let numTags = 0;

  before(async () => {
    // Setup: one manifest tagged test0..test3, as the suite does.
    const image = makeImage();
    const first = await pushImage(url, repo, tags[0] as string, image);
    assert.equal(first.status, 201);
    for (const tag of tags.slice(1)) {
      const res = await pushManifest(url, repo, tag, image.manifestBytes);
      assert.equal(res.status, 201);
    }
  });

  it('GET request to list tags should yield 200 response', async () => {
    const { body } = await getJson<TagList>(`/v2/${repo}/tags/list`);
    assert.equal(body.name, repo);
    assert.deepEqual(body.tags, tags);
    numTags = body.tags.length;
  });

  it('the first tag of the list names a pullable manifest (01_pull "Get the name of a tag")', async () => {
    const { body } = await getJson<TagList>(`/v2/${repo}/tags/list`);
    const res = await fetch(`${url}/v2/${repo}/manifests/${body.tags[0]}`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });

  it('GET number of tags should be limitable by `n` query parameter', async () => {
    const n = numTags / 2;
    const { body } = await getJson<TagList>(`/v2/${repo}/tags/list?n=${n}`);
    assert.equal(body.tags.length, n);
    assert.deepEqual(body.tags, tags.slice(0, n));
  });

  it('GET start of tag is set by `last` query parameter', async () => {
    const n = numTags / 2;
    const { body: firstPage } = await getJson<TagList>(`/v2/${repo}/tags/list?n=${n}`);
    const last = firstPage.tags[n - 1] as string;
    const { body: secondPage } = await getJson<TagList>(`/v2/${repo}/tags/list?n=${n}&last=${last}`);
    assert.ok(secondPage.tags.length <= n);
    assert.deepEqual(secondPage.tags, tags.slice(n, 2 * n));
    assert.ok(secondPage.tags.every((tag) => tag > last), 'entries start after `last`');
  });

  it('`last` alone lists every tag after it', async () => {
    const { body } = await getJson<TagList>(`/v2/${repo}/tags/list?last=test1`);
    assert.deepEqual(body.tags, ['test2', 'test3']);
  });

  it('a paginated list links the next page with n and last, and the last page has no Link', async () => {
    const first = await getJson<TagList>(`/v2/${repo}/tags/list?n=3`);
    assert.deepEqual(first.body.tags, ['test0', 'test1', 'test2']);
    const next = nextLink(first.res);
    assert.ok(next, 'a page with more results after it has a Link header');
    const nextUrl = new URL(next, url);
    assert.equal(nextUrl.pathname, `/v2/${repo}/tags/list`);
    assert.equal(nextUrl.searchParams.get('n'), '3');
    assert.equal(nextUrl.searchParams.get('last'), 'test2');

    const second = await getJson<TagList>(nextUrl.pathname + nextUrl.search);
    assert.deepEqual(second.body.tags, ['test3']);
    assert.equal(nextLink(second.res), undefined, 'the last page has no Link header');
  });

  it('following Link headers from n=1 visits every tag once, in lexical order', async () => {
    const seen: string[] = [];
    let path: string | undefined = `/v2/${repo}/tags/list?n=1`;
    while (path !== undefined) {
      const page: { res: Response; body: TagList } = await getJson<TagList>(path);
      seen.push(...page.body.tags);
      const next = nextLink(page.res);
      path = next === undefined ? undefined : new URL(next, url).pathname + new URL(next, url).search;
      assert.ok(seen.length <= tags.length, 'pagination terminates');
    }
    assert.deepEqual(seen, tags);
  });

  it('an unpaginated list and a page holding the rest exactly have no Link header', async () => {
    const all = await getJson<TagList>(`/v2/${repo}/tags/list`);
    assert.equal(nextLink(all.res), undefined);
    const exact = await getJson<TagList>(`/v2/${repo}/tags/list?n=${tags.length}`);
    assert.deepEqual(exact.body.tags, tags);
    assert.equal(nextLink(exact.res), undefined);
  });

  it('tags are listed in lexical order whatever order they were pushed in', async () => {
    const sortRepo = 'discovery/sorted';
    const image = makeImage();
    assert.equal((await pushImage(url, sortRepo, 'v3', image)).status, 201);
    for (const tag of ['v10', 'A1', 'v2', 'latest', 'v1']) assert.equal((await pushManifest(url, sortRepo, tag, image.manifestBytes)).status, 201);
    const { body } = await getJson<TagList>(`/v2/${sortRepo}/tags/list`);
    assert.deepEqual(body.tags, ['A1', 'latest', 'v1', 'v10', 'v2', 'v3']);
  });

  it('a repository that does not exist is NAME_UNKNOWN (404)', async () => {
    await expectOciError(await fetch(`${url}/v2/discovery/absent/tags/list`), 404, 'NAME_UNKNOWN');
  });

  it('n that is not a non-negative integer is PAGINATION_NUMBER_INVALID (400)', async () => {
    for (const n of ['-1', 'abc', '1.5', '', '0x10']) {
      await expectOciError(await fetch(`${url}/v2/${repo}/tags/list?n=${n}`), 400, 'PAGINATION_NUMBER_INVALID');
    }
  });

  it('GET request to tags list should reflect manifest deletion (04_management)', async () => {
    const mgmtRepo = 'discovery/management';
    const image = makeImage();
    assert.equal((await pushImage(url, mgmtRepo, 'tagtest0', image)).status, 201);
    assert.equal((await pushImage(url, mgmtRepo, 'keep')).status, 201);
    const before = (await getJson<TagList>(`/v2/${mgmtRepo}/tags/list`)).body.tags.length;
    const del = await fetch(`${url}/v2/${mgmtRepo}/manifests/tagtest0`, { method: 'DELETE' });
    assert.equal(del.status, 202);
    const afterDelete = (await getJson<TagList>(`/v2/${mgmtRepo}/tags/list`)).body.tags;
    assert.ok(afterDelete.length < before);
    assert.deepEqual(afterDelete, ['keep']);
  });
});

describe('catalog /v2/_catalog', () => {
  const repos = ['catalog/a', 'catalog/b', 'catalog/c', 'catalog/d/nested'];

  before(async () => {
    for (const repo of repos) assert.equal((await pushImage(url, repo, 'latest')).status, 201);
  });

  it('lists every repository that holds content, sorted, nested names included', async () => {
    const { body } = await getJson<{ repositories: string[] }>('/v2/_catalog');
    for (const repo of repos) assert.ok(body.repositories.includes(repo), `${repo} is listed`);
    assert.deepEqual(body.repositories, [...body.repositories].sort());
  });

  it('paginates with n and last, linking the next page', async () => {
    const { body: all } = await getJson<{ repositories: string[] }>('/v2/_catalog');
    const collected: string[] = [];
    let path: string | undefined = '/v2/_catalog?n=2';
    let pages = 0;
    while (path !== undefined) {
      const page: { res: Response; body: { repositories: string[] } } = await getJson<{ repositories: string[] }>(path);
      assert.ok(page.body.repositories.length <= 2);
      collected.push(...page.body.repositories);
      const next = nextLink(page.res);
      if (next !== undefined) {
        const nextUrl = new URL(next, url);
        assert.equal(nextUrl.pathname, '/v2/_catalog');
        assert.equal(nextUrl.searchParams.get('n'), '2');
        assert.equal(nextUrl.searchParams.get('last'), page.body.repositories.at(-1));
        path = nextUrl.pathname + nextUrl.search;
      } else {
        path = undefined;
      }
      pages++;
      assert.ok(pages <= all.repositories.length + 1, 'pagination terminates');
    }
    assert.deepEqual(collected, all.repositories);
  });

  it('last alone starts after the named repository', async () => {
    const { body } = await getJson<{ repositories: string[] }>('/v2/_catalog?last=catalog/b');
    assert.ok(!body.repositories.includes('catalog/a'));
    assert.ok(!body.repositories.includes('catalog/b'));
    assert.ok(body.repositories.includes('catalog/c'));
  });

  it('n that is not a number is PAGINATION_NUMBER_INVALID (400)', async () => {
    await expectOciError(await fetch(`${url}/v2/_catalog?n=many`), 400, 'PAGINATION_NUMBER_INVALID');
  });
});
