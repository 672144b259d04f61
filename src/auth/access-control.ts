// accessControl: identity + repository + action → allow or deny, with zot's rules
// (pkg/api/authz.go), for both forms of the section: the seed's, where repository globs sit
// directly under `accessControl`, and zot's newer `accessControl.repositories`.
//
//   - The repository's policy is the one of the longest glob that matches its name (ties: the
//     glob first in lexical order); `**` is then "every repository no other glob matches".
//   - An authenticated identity may do what a policy listing its user name or one of its groups
//     allows, or else what `defaultPolicy` allows; `adminPolicy` (its users and groups) adds its
//     actions on every repository, whatever the repository's policy says.
//   - An anonymous caller may do only what the policy's `anonymousPolicy` allows, also when no
//     authentication method is configured.
//   - Groups: those the identity source reported (LDAP) and those of `accessControl.groups`.
//   - A bearer token's own grants (Identity.tokenAccess) replace all of the above.
//
// Without an accessControl section: with authentication configured, every authenticated
// identity may do everything and an anonymous caller nothing; without it, everyone everything.
import type { AccessControlConfig, Policy, RepositoryPolicy } from '../config/types.js';
import { compileGlob, type RepositoryGlob } from './glob.js';
import { CATALOG_ACCESS_KEY, type Authorizer, type Identity, type RepositoryAction } from './types.js';

/** Keys of an accessControl section that are not repository globs in the seed's form. */
export const ACCESS_CONTROL_KEYWORDS: ReadonlySet<string> = new Set(['repositories', 'adminPolicy', 'groups', 'metrics']);

/** Every repository glob of the section with its policy, from both forms. */
export function repositoryPolicies(section: AccessControlConfig): [string, RepositoryPolicy][] {
  const found: [string, RepositoryPolicy][] = Object.entries(section.repositories ?? {});
  for (const [key, value] of Object.entries(section)) {
    if (!ACCESS_CONTROL_KEYWORDS.has(key) && value !== null && typeof value === 'object') found.push([key, value as RepositoryPolicy]);
  }
  return found;
}

interface Grant {
  users: ReadonlySet<string>;
  groups: ReadonlySet<string>;
  actions: ReadonlySet<string>;
}

interface Rule {
  glob: RepositoryGlob;
  policies: readonly Grant[];
  defaultPolicy: ReadonlySet<string>;
  anonymousPolicy: ReadonlySet<string>;
}

/** The token words that grant each action (distribution's token scopes, and zot's own words). */
const TOKEN_GRANTS: Readonly<Record<RepositoryAction, readonly string[]>> = {
  read: ['pull', 'read', '*'],
  create: ['push', 'create', '*'],
  update: ['push', 'update', '*'],
  delete: ['delete', '*'],
};

/** Matched rules kept per repository name, up to this many names, so a request matches once. */
const RULE_CACHE_LIMIT = 10_000;

export interface AccessControlOptions {
  /** Whether any authentication method is configured (htpasswd, LDAP, bearer, client certificates). */
  authenticationConfigured: boolean;
}

export class AccessControlAuthorizer implements Authorizer {
  private readonly rules: readonly Rule[];
  private readonly admin: Grant | undefined;
  private readonly groupsOfUser = new Map<string, string[]>();
  private readonly metricsUsers: ReadonlySet<string> | undefined;
  private readonly metricsReadableAnonymously: boolean;
  private readonly anonymousPolicyExists: boolean;
  private readonly ruleCache = new Map<string, Rule | undefined>();

  constructor(
    private readonly section: AccessControlConfig | undefined,
    private readonly options: AccessControlOptions,
  ) {
    const rules = section ? repositoryPolicies(section).map(([pattern, policy]) => rule(pattern, policy)) : [];
    // Longest glob first; equal lengths in lexical order, so the answer never depends on key order.
    this.rules = rules.sort((a, b) => b.glob.pattern.length - a.glob.pattern.length || compare(a.glob.pattern, b.glob.pattern));
    this.admin = section?.adminPolicy ? grant(section.adminPolicy) : undefined;
    for (const [group, { users }] of Object.entries(section?.groups ?? {})) {
      for (const user of users) this.groupsOfUser.set(user, [...(this.groupsOfUser.get(user) ?? []), group]);
    }
    const metricsUsers = section?.metrics?.users;
    this.metricsUsers = metricsUsers !== undefined && metricsUsers.length > 0 ? new Set(metricsUsers) : undefined;
    this.metricsReadableAnonymously = section?.metrics?.anonymousPolicy?.includes('read') ?? false;
    this.anonymousPolicyExists = this.rules.some((r) => r.anonymousPolicy.size > 0);
  }

  allows(identity: Identity, repo: string, action: RepositoryAction): boolean {
    if (identity.tokenAccess !== undefined) return tokenAllows(identity.tokenAccess, repo, action);
    const anonymous = identity.method === 'anonymous';
    if (this.section === undefined) return !anonymous || !this.options.authenticationConfigured;
    const matched = this.ruleFor(repo);
    if (anonymous) return matched?.anonymousPolicy.has(action) ?? false;
    const groups = this.groupsOf(identity);
    if (matched !== undefined) {
      const granted = matched.policies.some((p) => p.actions.has(action) && grantedTo(p, identity.name, groups));
      if (granted || matched.defaultPolicy.has(action)) return true;
    }
    return this.admin !== undefined && this.admin.actions.has(action) && grantedTo(this.admin, identity.name, groups);
  }

  allowsEntry(identity: Identity): boolean {
    if (identity.method !== 'anonymous' || !this.options.authenticationConfigured) return true;
    return this.anonymousPolicyExists;
  }

  allowsCatalog(identity: Identity): boolean {
    if (identity.tokenAccess !== undefined) return identity.tokenAccess.has(CATALOG_ACCESS_KEY);
    return this.allowsEntry(identity);
  }

  allowsMetrics(identity: Identity): boolean {
    const anonymous = identity.method === 'anonymous';
    // zot 2.1.18 on: anonymous scraping only when metrics.anonymousPolicy grants read.
    if (anonymous && this.metricsReadableAnonymously) return true;
    if (this.metricsUsers !== undefined) return !anonymous && this.metricsUsers.has(identity.name);
    return !anonymous || !this.options.authenticationConfigured;
  }

  private groupsOf(identity: Identity): readonly string[] {
    const configured = this.groupsOfUser.get(identity.name);
    if (configured === undefined) return identity.groups;
    return identity.groups.length === 0 ? configured : [...identity.groups, ...configured];
  }

  private ruleFor(repo: string): Rule | undefined {
    if (this.ruleCache.has(repo)) return this.ruleCache.get(repo);
    const matched = this.rules.find((r) => r.glob.matches(repo));
    if (this.ruleCache.size >= RULE_CACHE_LIMIT) this.ruleCache.clear();
    this.ruleCache.set(repo, matched);
    return matched;
  }
}

function rule(pattern: string, policy: RepositoryPolicy): Rule {
  return {
    glob: compileGlob(pattern),
    policies: (policy.policies ?? []).map(grant),
    defaultPolicy: new Set(policy.defaultPolicy ?? []),
    anonymousPolicy: new Set(policy.anonymousPolicy ?? []),
  };
}

function grant(policy: Policy): Grant {
  return { users: new Set(policy.users ?? []), groups: new Set(policy.groups ?? []), actions: new Set(policy.actions) };
}

function grantedTo(grant: Grant, user: string, groups: readonly string[]): boolean {
  return grant.users.has(user) || groups.some((group) => grant.groups.has(group));
}

function tokenAllows(access: ReadonlyMap<string, ReadonlySet<string>>, repo: string, action: RepositoryAction): boolean {
  const granted = access.get(repo);
  return granted !== undefined && TOKEN_GRANTS[action].some((word) => granted.has(word));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
