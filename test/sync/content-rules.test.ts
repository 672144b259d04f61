// The content rules as zot applies them: doublestar globs, the first matching entry, tag filters,
// destination and stripPrefix in both directions (periodic: upstream → local; on demand: back).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { contentRules, filterTags, globToRegExp, isSemver, localName, ruleForLocal, ruleForUpstream, upstreamName } from '../../src/sync/content-rules.js';

describe('sync content rules', () => {
  it('match globs as doublestar does', () => {
    const cases: [string, string, boolean][] = [
      ['repo1/repo', 'repo1/repo', true],
      ['repo1/repo', 'repo1/repo/sub', false],
      ['repo2/repo*', 'repo2/repo-a', true],
      ['repo2/repo*', 'repo2/repo/x', false],
      ['repo3/**', 'repo3', true],
      ['repo3/**', 'repo3/a/b/c', true],
      ['repo3/**', 'repo30', false],
      ['**', 'any/thing', true],
      ['**/web', 'web', true],
      ['**/web', 'a/b/web', true],
      ['a/**/z', 'a/z', true],
      ['a/**/z', 'a/b/c/z', true],
      ['a/*/z', 'a/b/c/z', false],
      ['img-?', 'img-1', true],
      ['img-[0-9]', 'img-x', false],
      ['{alpha,beta}/*', 'beta/x', true],
      ['a.b', 'aXb', false],
    ];
    for (const [glob, name, expected] of cases) assert.equal(globToRegExp(glob).test(name), expected, `${glob} vs ${name}`);
  });

  it('give a repository to the first entry that matches it', () => {
    const rules = contentRules([{ prefix: '/repo1/repo', tags: { regex: '^4' } }, { prefix: '/repo1/**' }]);
    assert.equal(ruleForUpstream(rules, 'repo1/repo'), rules[0]);
    assert.equal(ruleForUpstream(rules, 'repo1/other'), rules[1]);
    assert.equal(ruleForUpstream(rules, 'repo2/x'), undefined);
  });

  it('filter tags by regex (anywhere in the tag), excludeRegex, then semver', () => {
    const [rule] = contentRules([{ prefix: 'r', tags: { regex: '4.*', excludeRegex: 'rc', semver: true } }]);
    assert.deepEqual(filterTags(rule!, ['4.0', '4.1-rc1', 'v4.2', '14.x', '5.0', 'latest', '1.4']), ['4.0', 'v4.2', '1.4']);
    for (const ok of ['1', '1.2', 'v1.2.3', '1.2.3-alpha.1', '1.0.0+build.5', '2.0.0-rc.1+meta']) assert.ok(isSemver(ok), ok);
    for (const bad of ['latest', '1.2.3.4', '1.0.0-01', 'v', '1.x', '01a']) assert.ok(!isSemver(bad), bad);
  });

  it('place repositories as the seed examples say, and map local names back for on-demand pulls', () => {
    const rules = contentRules([
      { prefix: '/repo1/repo', destination: '/localrepo', stripPrefix: true },
      { prefix: '/repo1/**', destination: '/localrepo', stripPrefix: true },
      { prefix: '/repo2/repo', destination: '/localrepo' },
      { prefix: '/repo3/**' },
    ]);
    const [exact, glob, kept, plain] = rules as [(typeof rules)[0], (typeof rules)[0], (typeof rules)[0], (typeof rules)[0]];
    assert.equal(localName(exact, 'repo1/repo'), 'localrepo', 'stripPrefix on an exact prefix: /localrepo');
    assert.equal(localName(glob, 'repo1/repo'), 'localrepo/repo', 'stripPrefix up to the meta characters: /localrepo/repo');
    assert.equal(localName(kept, 'repo2/repo'), 'localrepo/repo2/repo', 'without stripPrefix: /localrepo/repo2/repo');
    assert.equal(localName(plain, 'repo3/a/b'), 'repo3/a/b');

    assert.equal(ruleForLocal(rules, 'localrepo'), exact);
    assert.equal(upstreamName(exact, 'localrepo'), 'repo1/repo');
    assert.equal(ruleForLocal(rules, 'localrepo/repo'), glob);
    assert.equal(upstreamName(glob, 'localrepo/repo'), 'repo1/repo');
    assert.equal(ruleForLocal(rules, 'localrepo/repo2/repo'), glob, 'zot takes the first rule whose local glob matches');
    assert.equal(ruleForLocal(rules, 'repo3/x/y'), plain);
    assert.equal(upstreamName(plain, 'repo3/x/y'), 'repo3/x/y');
    assert.equal(ruleForLocal(rules, 'elsewhere/x'), undefined);
  });
});
