// Repository globs match as zot's (bmatcuk/doublestar v4): a table of patterns and names with
// the answers doublestar gives, including where minimatch alone would differ (`a/**` matching `a`,
// no negation, comments or extglobs).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileGlob, globProblem } from '../../src/auth/glob.js';

const CASES: [pattern: string, name: string, matches: boolean][] = [
  ['**', 'a', true],
  ['**', 'a/b/c', true],
  ['*', 'a', true],
  ['*', 'a/b', false],
  ['a/**', 'a', true],
  ['a/**', 'a/b', true],
  ['a/**', 'a/b/c', true],
  ['a/**', 'ab', false],
  ['a/*', 'a/b', true],
  ['a/*', 'a/b/c', false],
  ['a/*', 'a', false],
  ['**/c', 'c', true],
  ['**/c', 'a/b/c', true],
  ['**/c', 'a/abc', false],
  ['a/**/b', 'a/b', true],
  ['a/**/b', 'a/x/y/b', true],
  ['a/**/b', 'a/x/y/c', false],
  ['a*', 'ab/c', false],
  ['abc**', 'abc', true],
  ['ab{c,d}', 'abc', true],
  ['ab{c,d}', 'abe', false],
  ['[ab]x', 'bx', true],
  ['[!ab]x', 'bx', false],
  ['a?c', 'abc', true],
  ['a?c', 'a/c', false],
  ['repos2/repo', 'repos2/repo', true],
  ['repos2/repo', 'repos2/repo/x', false],
  // Literal where minimatch would read syntax: no negation, comments or extglobs in doublestar.
  ['!a', '!a', true],
  ['!a', 'b', false],
  ['#a', '#a', true],
  ['+(a|b)', 'a', false],
  ['a\\*b', 'a*b', true],
  ['a\\*b', 'axb', false],
  // Names with dots match `*` like any other character (repository names never start with one).
  ['*', 'a.b', true],
];

describe('repository globs', () => {
  for (const [pattern, name, matches] of CASES) {
    it(`${pattern} ${matches ? 'matches' : 'does not match'} ${name}`, () => {
      assert.equal(compileGlob(pattern).matches(name), matches);
    });
  }

  it('names what makes a pattern unusable', () => {
    assert.equal(globProblem('**'), undefined);
    assert.equal(globProblem('team-[0-9]*/app'), undefined);
    assert.equal(globProblem('{a,b}/**'), undefined);
    assert.equal(globProblem('a\\[b'), undefined);
    assert.equal(globProblem(''), 'is empty');
    assert.equal(globProblem('a/[bc'), 'has a [ at position 3 with no closing ]');
    assert.equal(globProblem('a/[]'), 'has an empty character class at position 3');
    assert.equal(globProblem('{a,b/**'), 'has a { with no closing }');
    assert.equal(globProblem('a\\'), 'ends with an escape character (\\)');
    assert.equal(globProblem('/a'), 'starts with /, which no repository name does');
    assert.equal(globProblem('a/'), 'ends with /, which no repository name does');
    assert.equal(globProblem('a//b'), 'has an empty path segment (//)');
  });
});
