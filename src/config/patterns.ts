// The two kinds of pattern in zot's retention settings, read as zot reads them, for both `verify`
// and the registry:
//
//   repository globs   doublestar's syntax (github.com/bmatcuk/doublestar): `*` and `?` within one
//                      path segment, `**` across segments (`tmp/**` also matches `tmp`), `[...]`
//                      classes (`[!...]` or `[^...]` negated) and `{a,b}` alternatives, matched
//                      against the whole repository name.
//   tag patterns       Go regular expressions (regexp.MatchString): unanchored, so `v2.*` also
//                      matches `xv2`; a leading flag group (`(?i)`, `(?s)`, `(?m)`) and named
//                      groups `(?P<name>...)` are read as Go writes them. Everything else is
//                      JavaScript's syntax, which agrees with RE2 for what tag names contain.
import { minimatch, type MinimatchOptions } from 'minimatch';

// No negation, comments or extglobs: doublestar has none of them.
const GLOB_OPTIONS: MinimatchOptions = { dot: true, nonegate: true, nocomment: true, noext: true };

/** Why doublestar would refuse the glob (an unclosed class or brace, a dangling escape), or undefined. */
export function repositoryGlobError(pattern: string): string | undefined {
  let braces = 0;
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i];
    if (char === '\\') {
      if (i === pattern.length - 1) return 'it ends with an escape (\\)';
      i++;
    } else if (char === '[') {
      // The class ends at the first `]` after at least one member.
      let end = i + 1;
      if (pattern[end] === '!' || pattern[end] === '^') end++;
      end = pattern.indexOf(']', end + 1);
      if (end === -1) return 'a [ class is not closed';
      i = end;
    } else if (char === '{') {
      braces++;
    } else if (char === '}' && braces > 0) {
      braces--;
    }
  }
  return braces > 0 ? 'a { alternative is not closed' : undefined;
}

/** Whether the whole repository name matches the glob. */
export function matchesRepositoryGlob(pattern: string, repo: string): boolean {
  if (minimatch(repo, pattern, GLOB_OPTIONS)) return true;
  // doublestar: a trailing /** matches zero segments, the slash included.
  return pattern.endsWith('/**') && minimatch(repo, pattern.slice(0, -3), GLOB_OPTIONS);
}

const LEADING_FLAGS = /^\(\?([A-Za-z]+)\)/;
const GO_FLAGS: Record<string, string> = { i: 'i', m: 'm', s: 's' };

/** A tag pattern as a RegExp; throws an Error saying why when it is not one. */
export function compileTagPattern(pattern: string): RegExp {
  let source = pattern;
  let flags = '';
  const leading = LEADING_FLAGS.exec(pattern);
  if (leading) {
    for (const flag of leading[1] ?? '') {
      const js = GO_FLAGS[flag];
      if (js === undefined) throw new Error(`flag ${flag} is not supported (i, m and s are)`);
      if (!flags.includes(js)) flags += js;
    }
    source = pattern.slice(leading[0].length);
  }
  return new RegExp(source.replaceAll('(?P<', '(?<'), flags);
}

/** Why the tag pattern does not compile, or undefined when it does. */
export function tagPatternError(pattern: string): string | undefined {
  try {
    compileTagPattern(pattern);
    return undefined;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // "Invalid regular expression: /(/: Unterminated group" -> "Unterminated group"
    const cut = message.lastIndexOf(': ');
    return cut === -1 ? message : message.slice(cut + 2);
  }
}
