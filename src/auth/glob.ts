// Repository globs of accessControl, matched as zot matches them (bmatcuk/doublestar v4 in
// pkg/api/authz.go): `*` is any run of characters within one path segment, `**` as a whole
// segment any number of segments (`a/**` matches `a` itself too), `?`, `[class]`, `{alt,…}` and
// `\` escapes; anything else is literal. minimatch does the matching with the options that make it
// behave so (no negation, comments or extglobs); the zero-segment tail is added here.
import { Minimatch, type MinimatchOptions } from 'minimatch';

const OPTIONS: MinimatchOptions = { dot: true, nonegate: true, nocomment: true, noext: true };

export interface RepositoryGlob {
  readonly pattern: string;
  matches(repo: string): boolean;
}

export function compileGlob(pattern: string): RepositoryGlob {
  const whole = new Minimatch(pattern, OPTIONS);
  // doublestar: `a/**` also matches `a` (zero segments after it).
  const withoutTail = pattern.endsWith('/**') ? new Minimatch(pattern.slice(0, -3), OPTIONS) : undefined;
  return {
    pattern,
    matches: (repo) => whole.match(repo) || (withoutTail?.match(repo) ?? false),
  };
}

/**
 * Why the pattern is not a usable repository glob, or undefined when it is: the malformed
 * patterns doublestar refuses (an unclosed `[` or `{`, an empty `[]`, a trailing `\`), and
 * shapes no repository name has (empty, a leading or trailing `/`, an empty segment).
 */
export function globProblem(pattern: string): string | undefined {
  if (pattern === '') return 'is empty';
  if (pattern.startsWith('/')) return 'starts with /, which no repository name does';
  if (pattern.endsWith('/')) return 'ends with /, which no repository name does';
  if (pattern.includes('//')) return 'has an empty path segment (//)';
  let braces = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      if (i === pattern.length - 1) return 'ends with an escape character (\\)';
      i++;
    } else if (c === '[') {
      const close = classEnd(pattern, i);
      if (close === undefined) return `has a [ at position ${i + 1} with no closing ]`;
      if (close === 'empty') return `has an empty character class at position ${i + 1}`;
      i = close;
    } else if (c === '{') {
      braces++;
    } else if (c === '}' && braces > 0) {
      braces--;
    }
  }
  if (braces > 0) return 'has a { with no closing }';
  return undefined;
}

/** Index of the `]` closing the class opened at `open`, 'empty' for `[]`, undefined when unclosed. */
function classEnd(pattern: string, open: number): number | 'empty' | undefined {
  let i = open + 1;
  if (pattern[i] === '!' || pattern[i] === '^') i++;
  if (pattern[i] === ']') return 'empty';
  for (; i < pattern.length; i++) {
    if (pattern[i] === '\\') i++;
    else if (pattern[i] === ']') return i;
    else if (pattern[i] === '/') return undefined;
  }
  return undefined;
}
