// Retention settings of one storage root (`storage.retention`, or a subPath's), compiled, and the
// rules that decide, as pure functions of a repository's tags and manifests with their push and
// pull times. The semantics are zot's (pkg/retention, pkg/storage/gc):
//
// - A repository takes the first policy with a `repositories` glob matching its whole name; a
//   policy without `repositories` matches none. A repository no policy matches keeps every tag,
//   has its untagged manifests removed (deleteUntagged's default) and keeps referrers whose
//   subject is gone.
// - keepTags: each tag goes to the first entry whose `patterns` (regular expressions, unanchored;
//   none means every tag) match it. A tag no entry matches is removed. An entry with no rule
//   keeps every tag it matches; otherwise it keeps those that meet any of its rules, counted among
//   the tags that entry matched. An empty or absent keepTags keeps every tag.
// - The rules: pushedWithin (pushed less than that long ago), pulledWithin (pulled, or pushed,
//   less than that long ago: an image too new to have been pulled is not removed for it),
//   mostRecentlyPushedCount and mostRecentlyPulledCount (the n latest; never pulled is oldest).
// - Tags go when the sweep finds them not kept, whatever their age. Untagged manifests
//   (deleteUntagged, true unless set false) and referrers whose subject is gone (deleteReferrers,
//   false unless set) go once older than `delay` (24h unless set, as in zot; a root without
//   retention settings keeps its untagged manifests for its gcDelay, as before); keepUntagged's
//   rules keep untagged manifests deleteUntagged would remove. A referrer whose subject is
//   present, and a manifest an index of the repository lists, are never candidates.
import { parseDuration } from '../config/duration.js';
import { compileGlob, type RepositoryGlob } from '../auth/glob.js';
import { compileTagPattern } from '../config/patterns.js';
import type { KeepRules, RetentionConfig, RetentionPolicy } from '../config/types.js';
import type { RemovalReason } from '../events/types.js';

export interface KeepRuleSet {
  readonly pulledWithinMs?: number;
  readonly pushedWithinMs?: number;
  readonly mostRecentlyPushedCount: number;
  readonly mostRecentlyPulledCount: number;
}

export interface TagKeeper {
  /** None: the entry matches every tag. */
  readonly patterns: readonly RegExp[];
  /** Undefined: the entry keeps every tag it matches. */
  readonly rules?: KeepRuleSet;
}

export interface Policy {
  /** Its path in the configuration, such as storage.retention.policies.0. */
  readonly name: string;
  readonly repositories: readonly RepositoryGlob[];
  readonly deleteReferrers: boolean;
  readonly deleteUntagged: boolean;
  readonly keepTags: readonly TagKeeper[];
  readonly keepUntagged?: KeepRuleSet;
}

export interface RootRetention {
  readonly dryRun: boolean;
  /** Untagged manifests and referrers are removed only once older than this. */
  readonly delayMs: number;
  readonly policies: readonly Policy[];
}

/** zot's `delay` when retention is configured without one. */
const DEFAULT_RETENTION_DELAY_MS = 24 * 3_600_000;

/** What zot does for a repository no policy matches. */
const NO_POLICY = { deleteUntagged: true, deleteReferrers: false } as const;

/** Compiles a root's retention settings; `path` is where they are, such as storage.retention. */
export function compileRetention(config: RetentionConfig | undefined, path: string, gcDelayMs: number): RootRetention {
  return {
    dryRun: config?.dryRun ?? false,
    delayMs: config === undefined ? gcDelayMs : config.delay === undefined ? DEFAULT_RETENTION_DELAY_MS : requireDuration(config.delay),
    policies: (config?.policies ?? []).map((policy, i) => compilePolicy(policy, `${path}.policies.${i}`)),
  };
}

function compilePolicy(policy: RetentionPolicy, name: string): Policy {
  const keepUntagged = policy.keepUntagged === undefined ? undefined : compileRules(policy.keepUntagged);
  return {
    name,
    repositories: (policy.repositories ?? []).map(compileGlob),
    deleteReferrers: policy.deleteReferrers ?? false,
    deleteUntagged: policy.deleteUntagged ?? true,
    keepTags: (policy.keepTags ?? []).map((keeper) => {
      const rules = compileRules(keeper);
      return { patterns: (keeper.patterns ?? []).map(compileTagPattern), ...(rules ? { rules } : {}) };
    }),
    ...(keepUntagged ? { keepUntagged } : {}),
  };
}

/** The rules set in `rules`, or undefined when it sets none (zot ignores a count of 0). */
function compileRules(rules: KeepRules): KeepRuleSet | undefined {
  const compiled: KeepRuleSet = {
    ...(rules.pulledWithin !== undefined ? { pulledWithinMs: requireDuration(rules.pulledWithin) } : {}),
    ...(rules.pushedWithin !== undefined ? { pushedWithinMs: requireDuration(rules.pushedWithin) } : {}),
    mostRecentlyPushedCount: rules.mostRecentlyPushedCount ?? 0,
    mostRecentlyPulledCount: rules.mostRecentlyPulledCount ?? 0,
  };
  const any =
    compiled.pulledWithinMs !== undefined ||
    compiled.pushedWithinMs !== undefined ||
    compiled.mostRecentlyPushedCount > 0 ||
    compiled.mostRecentlyPulledCount > 0;
  return any ? compiled : undefined;
}

function requireDuration(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new Error(`invalid duration ${text}: the config should have been validated`);
  return ms;
}

/** The first policy whose globs match the repository's name. */
export function policyFor(retention: RootRetention, repo: string): Policy | undefined {
  return retention.policies.find((policy) => policy.repositories.some((glob) => glob.matches(repo)));
}

/** Whether pulls or the passing of time alone can change what the policy keeps. */
export function hasKeepRules(policy: Policy | undefined): boolean {
  return policy !== undefined && (policy.keepUntagged !== undefined || policy.keepTags.some((keeper) => keeper.rules !== undefined));
}

/** A tag or untagged manifest the rules look at; `pulledAt` 0 when never pulled. */
export interface Item {
  readonly key: string;
  readonly pushedAt: number;
  readonly pulledAt: number;
}

/** The items the rules keep, each with the first rule that does (zot's "retained by"). */
export function keptByRules(items: readonly Item[], rules: KeepRuleSet, now: number): Map<string, string> {
  const kept = new Map<string, string>();
  const keep = (item: Item, rule: string): void => {
    if (!kept.has(item.key)) kept.set(item.key, rule);
  };
  // Ties broken the same way every sweep: the later push, then the key.
  const byPull = [...items].sort((a, b) => b.pulledAt - a.pulledAt || b.pushedAt - a.pushedAt || compare(a.key, b.key));
  const byPush = [...items].sort((a, b) => b.pushedAt - a.pushedAt || compare(a.key, b.key));
  for (const item of byPull.slice(0, rules.mostRecentlyPulledCount)) keep(item, `mostRecentlyPulledCount:${rules.mostRecentlyPulledCount}`);
  for (const item of byPush.slice(0, rules.mostRecentlyPushedCount)) keep(item, `mostRecentlyPushedCount:${rules.mostRecentlyPushedCount}`);
  const { pulledWithinMs, pushedWithinMs } = rules;
  for (const item of items) {
    if (pulledWithinMs !== undefined && (item.pulledAt > now - pulledWithinMs || item.pushedAt > now - pulledWithinMs)) {
      keep(item, `pulledWithin:${pulledWithinMs}ms`);
    }
    if (pushedWithinMs !== undefined && item.pushedAt > now - pushedWithinMs) keep(item, `pushedWithin:${pushedWithinMs}ms`);
  }
  return kept;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface TagItem extends Item {
  /** The tag. */
  readonly key: string;
  readonly digest: string;
}

export interface TagVerdict {
  readonly tag: string;
  readonly digest: string;
  readonly keep: boolean;
  /** Kept: what kept it ("patterns", or the rule). Removed: zot's reason, for the log. */
  readonly why: string;
}

/** keepTags's verdict on every tag of a repository under its policy. */
export function judgeTags(policy: Policy | undefined, tags: readonly TagItem[], now: number): TagVerdict[] {
  if (policy === undefined || policy.keepTags.length === 0) {
    return tags.map((tag) => ({ tag: tag.key, digest: tag.digest, keep: true, why: policy ? 'keepTags is empty' : 'no policy' }));
  }
  const groups = policy.keepTags.map(() => [] as TagItem[]);
  const verdicts = new Map<string, TagVerdict>();
  for (const tag of tags) {
    const entry = policy.keepTags.findIndex((keeper) => keeper.patterns.length === 0 || keeper.patterns.some((pattern) => pattern.test(tag.key)));
    if (entry === -1) verdicts.set(tag.key, { tag: tag.key, digest: tag.digest, keep: false, why: "didn't meet any tag 'patterns' rules" });
    else groups[entry]?.push(tag);
  }
  policy.keepTags.forEach((keeper, entry) => {
    const members = groups[entry] ?? [];
    const kept = keeper.rules ? keptByRules(members, keeper.rules, now) : new Map(members.map((tag) => [tag.key, 'patterns']));
    for (const tag of members) {
      const rule = kept.get(tag.key);
      verdicts.set(tag.key, { tag: tag.key, digest: tag.digest, keep: rule !== undefined, why: rule ?? "didn't meet any tag retention rule" });
    }
  });
  return tags.map((tag) => verdicts.get(tag.key) as TagVerdict);
}

/** A manifest nothing keeps any more (no tag, no index listing it, no subject present). */
export interface Candidate extends Item {
  /** The digest. */
  readonly key: string;
  /** For a referrer, its subject (which is gone). */
  readonly subject: string | null;
}

export type ManifestVerdict =
  | { readonly remove: true; readonly reason: RemovalReason }
  | { readonly remove: false; /** When it will be old enough to be removed. */ readonly until?: number };

/** deleteUntagged's, keepUntagged's and deleteReferrers's verdicts on the candidates of one repository. */
export function judgeCandidates(retention: RootRetention, policy: Policy | undefined, candidates: readonly Candidate[], now: number): Map<string, ManifestVerdict> {
  const { deleteUntagged, deleteReferrers } = policy ?? NO_POLICY;
  const untagged = candidates.filter((candidate) => candidate.subject === null);
  const keptUntagged = policy?.keepUntagged ? keptByRules(untagged, policy.keepUntagged, now) : new Map<string, string>();
  const verdicts = new Map<string, ManifestVerdict>();
  for (const candidate of candidates) {
    const referrer = candidate.subject !== null;
    const wanted = referrer ? deleteReferrers : deleteUntagged && !keptUntagged.has(candidate.key);
    if (!wanted) verdicts.set(candidate.key, { remove: false });
    else if (candidate.pushedAt > now - retention.delayMs) verdicts.set(candidate.key, { remove: false, until: candidate.pushedAt + retention.delayMs });
    else verdicts.set(candidate.key, { remove: true, reason: referrer ? 'deleteReferrers' : 'deleteUntagged' });
  }
  return verdicts;
}
