// A sync registry's `content` rules, as zot applies them (pkg/extensions/sync/content.go):
//   - the first entry whose `prefix` glob matches an upstream repository takes it; globs are
//     doublestar's: `*` within one path component, `**` as a component for any number of them
//     (`/repo3/**` takes repo3 and everything under it), `?`, `[…]`, `{a,b}`; a leading `/` is dropped;
//   - its tags are filtered by `tags.regex` (kept if it matches anywhere in the tag), then
//     `tags.excludeRegex` (dropped if it matches), then `tags.semver` (kept if it parses as a
//     version the way Masterminds/semver does: `v1`, `1.2`, `1.2.3-rc.1+build`);
//   - the local name is `destination` joined with the upstream name, or with what is left of it
//     after the prefix's literal part when `stripPrefix` is set (`/repo1/**` → `/localrepo`, strip:
//     repo1/repo lands as localrepo/repo); and back, for on-demand pulls of a local name.
import type { SyncContent } from '../config/types.js';

export interface ContentRule {
  prefix: string;
  destination: string;
  stripPrefix: boolean;
  regex?: RegExp;
  excludeRegex?: RegExp;
  semver: boolean;
  /** `os/architecture[/variant]` entries of an index to sync; absent: every platform. */
  platforms?: readonly string[];
  /** The prefix as a glob over upstream names. */
  readonly upstreamPattern: RegExp;
  /** The names this rule gives local repositories, as a glob (for on-demand pulls). */
  readonly localPattern: RegExp;
}

export function contentRules(content: readonly SyncContent[] | undefined): ContentRule[] {
  return (content ?? []).map((entry) => {
    const prefix = entry.prefix;
    const destination = entry.destination ?? '';
    const stripPrefix = entry.stripPrefix === true;
    return {
      prefix,
      destination,
      stripPrefix,
      ...(entry.tags?.regex !== undefined ? { regex: new RegExp(entry.tags.regex) } : {}),
      ...(entry.tags?.excludeRegex !== undefined ? { excludeRegex: new RegExp(entry.tags.excludeRegex) } : {}),
      semver: entry.tags?.semver === true,
      ...(entry.platforms !== undefined ? { platforms: entry.platforms } : {}),
      upstreamPattern: globToRegExp(prefix.startsWith('/') ? prefix.slice(1) : prefix),
      localPattern: globToRegExp(localGlob(prefix, destination, stripPrefix)),
    };
  });
}

/** The rule that takes an upstream repository, if any (the first that matches). */
export function ruleForUpstream(rules: readonly ContentRule[], upstreamRepo: string): ContentRule | undefined {
  return rules.find((rule) => rule.upstreamPattern.test(upstreamRepo));
}

/** The rule that made a local repository name, if any: for on-demand pulls. */
export function ruleForLocal(rules: readonly ContentRule[], localRepo: string): ContentRule | undefined {
  const name = trim(localRepo, '/');
  return rules.find((rule) => rule.localPattern.test(name));
}

/** zot's getRepoDestination: where an upstream repository lands. */
export function localName(rule: ContentRule, upstreamRepo: string): string {
  let remote = trim(upstreamRepo, '/');
  const destination = trim(rule.destination, '/');
  if (rule.stripPrefix) remote = trim(trimPrefix(remote, trim(rule.prefix, '/*')), '/');
  const joined = `${destination}/${remote}`;
  return joined === '/' ? '/' : trim(joined, '/');
}

/** zot's getRepoSource: the upstream repository a local name comes from. */
export function upstreamName(rule: ContentRule, localRepo: string): string {
  const local = trim(trimPrefix(trim(localRepo, '/'), trim(rule.destination, '/')), '/');
  const joined = rule.stripPrefix ? `${trim(rule.prefix, '/*')}/${local}` : local;
  return joined === '/' ? '/' : trim(joined, '/');
}

/** The repository's tags this rule keeps. */
export function filterTags(rule: ContentRule, tags: readonly string[]): string[] {
  return tags.filter(
    (tag) => (rule.regex === undefined || rule.regex.test(tag)) && (rule.excludeRegex === undefined || !rule.excludeRegex.test(tag)) && (!rule.semver || isSemver(tag)),
  );
}

export interface Platform {
  os?: string;
  architecture?: string;
  variant?: string;
}

/**
 * Whether an index entry's platform is one of `platforms` (`os/architecture[/variant]`; without
 * a variant any variant matches). An entry with no platform is not one of them.
 */
export function platformWanted(platforms: readonly string[], platform: Platform | undefined): boolean {
  if (!platform) return false;
  return platforms.some((entry) => {
    const [os, architecture, variant] = entry.split('/');
    return platform.os === os && platform.architecture === architecture && (variant === undefined || platform.variant === variant);
  });
}

// Masterminds/semver (v1) NewVersion: an optional `v`, one to three numbers, a pre-release and
// build metadata; numeric pre-release identifiers without leading zeros.
const SEMVER = /^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?(\+([0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*))?$/;

export function isSemver(tag: string): boolean {
  const match = SEMVER.exec(tag);
  if (!match) return false;
  const prerelease = match[5];
  return prerelease === undefined || prerelease.split('.').every((part) => !/^0[0-9]+$/.test(part));
}

/**
 * The glob of local names a rule produces (zot's GetContentByLocalRepo): the destination, then
 * the prefix's pattern part (after its literal directories) when stripping, else the whole prefix.
 */
function localGlob(prefix: string, destination: string, stripPrefix: boolean): string {
  const withSlash = `${trim(prefix, '/')}/`;
  const pattern = stripPrefix ? splitPattern(withSlash).pattern : withSlash;
  return trim(`${trim(destination, '/')}/${pattern}`, '/');
}

/** doublestar's SplitPattern: the literal directories before the first meta character, and the rest. */
function splitPattern(pattern: string): { base: string; pattern: string } {
  const meta = pattern.search(/[*?[{\\]/);
  const cut = meta === -1 ? pattern.lastIndexOf('/') : pattern.lastIndexOf('/', meta);
  if (cut === -1) return { base: '.', pattern };
  return { base: pattern.slice(0, cut), pattern: pattern.slice(cut + 1) };
}

/** A doublestar glob over `/`-separated names as an anchored regular expression. */
export function globToRegExp(glob: string): RegExp {
  const parts = glob.split('/');
  let source = '';
  let separator = false;
  parts.forEach((part, i) => {
    const last = i === parts.length - 1;
    if (part === '**') {
      if (i === 0) {
        source += last ? '.*' : '(?:.*/)?';
        separator = false;
      } else {
        source += '(?:/.*)?';
        separator = true;
      }
      return;
    }
    if (separator) source += '/';
    source += componentToRegExp(part);
    separator = true;
  });
  return new RegExp(`^${source}$`);
}

function componentToRegExp(part: string): string {
  let out = '';
  for (let i = 0; i < part.length; i++) {
    const c = part[i] as string;
    if (c === '\\' && i + 1 < part.length) {
      out += escapeRegExp(part[++i] as string);
    } else if (c === '*') {
      while (part[i + 1] === '*') i++;
      out += '[^/]*';
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const end = part.indexOf(']', i + 2);
      if (end === -1) {
        out += '\\[';
        continue;
      }
      let body = part.slice(i + 1, end);
      if (body.startsWith('!') || body.startsWith('^')) body = `^${body.slice(1)}`;
      out += `[${body.replace(/\\(?!.)/g, '\\\\')}]`;
      i = end;
    } else if (c === '{') {
      const end = part.indexOf('}', i);
      if (end === -1) {
        out += '\\{';
        continue;
      }
      out += `(?:${part
        .slice(i + 1, end)
        .split(',')
        .map(componentToRegExp)
        .join('|')})`;
      i = end;
    } else {
      out += escapeRegExp(c);
    }
  }
  return out;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Go's strings.Trim: drops every leading and trailing character that is in `chars`. */
function trim(text: string, chars: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && chars.includes(text[start] as string)) start++;
  while (end > start && chars.includes(text[end - 1] as string)) end--;
  return text.slice(start, end);
}

function trimPrefix(text: string, prefix: string): string {
  return text.startsWith(prefix) ? text.slice(prefix.length) : text;
}
