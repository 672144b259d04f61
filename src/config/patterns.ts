// Tag patterns of zot's retention settings, read as zot reads them, for both `verify` and the
// registry (repository globs, shared with accessControl, are in src/auth/glob.ts):
//
//   tag patterns       Go regular expressions (regexp.MatchString): unanchored, so `v2.*` also
//                      matches `xv2`; a leading flag group (`(?i)`, `(?s)`, `(?m)`) and named
//                      groups `(?P<name>...)` are read as Go writes them. Everything else is
//                      JavaScript's syntax, which agrees with RE2 for what tag names contain.

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
