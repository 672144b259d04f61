// Retention (`storage.retention` on the default root and on each subPath), applied to one
// repository at a time by the GC sweep (collector.ts): first the tags no keepTags entry keeps go,
// each a TagRemoved by identity system:retention that names its policy; then the sweep removes the
// manifests that left unkept, asking `judgeManifests` which of them the policy lets go (untagged
// ones, referrers whose subject is gone) and after what delay; then, as always, the blobs nothing
// references any more, after gcDelay. The rules themselves are in retention-policy.ts.
//
// Push times come from the events (a tag's is when it was set to its digest, a manifest's when it
// was pushed), pull times from the registry-state projection's manifest_pulls, fed by the
// ManifestsPulled batches of PullRecorder (flushed before they are read, so a sweep sees every
// pull served before it).
//
// dryRun: nothing is removed, tags and manifests alike (blobs no manifest references still go, as
// in zot); each tag and manifest the policy would remove is logged, with its policy, on every
// sweep of the repository, the manifests a removed tag would leave unkept included.
import type { Logger } from 'pino';
import type { StorageConfig } from '../config/types.js';
import type { EventStore } from '../events/store.js';
import { SYSTEM_RETENTION_IDENTITY, type EventContext, type RemovalCause } from '../events/types.js';
import type { RegistryStateQueries, UnreachableManifest } from '../projections/registry-state.js';
import type { PullRecorder } from './pull-recorder.js';
import { subPathRoute, type StorageRoots } from '../storage/roots.js';
import {
  compileRetention,
  hasKeepRules,
  judgeCandidates,
  judgeTags,
  policyFor,
  type Candidate,
  type ManifestVerdict,
  type Policy,
  type RootRetention,
  type TagVerdict,
} from './retention-policy.js';

const RETENTION_CONTEXT: EventContext = { identity: SYSTEM_RETENTION_IDENTITY };

/** Thrown inside a tag removal's append when a client moved or removed the tag meanwhile. */
class TagMoved extends Error {}

export interface RetentionDeps {
  storage: StorageConfig;
  roots: StorageRoots;
  queries: RegistryStateQueries;
  store: EventStore;
  logger: Logger;
  /** The pulls noted but not yet appended; absent when this process notes none. */
  pulls?: PullRecorder;
}

export interface TagPass {
  /** Dry run: when a manifest it would remove once old enough will be; undefined when none waits. */
  nextDueAt?: number;
}

export class Retention {
  /** By root route ('' for the default root). */
  private readonly byRoute = new Map<string, RootRetention>();

  constructor(private readonly deps: RetentionDeps) {
    const { storage, roots, logger } = deps;
    const configs = new Map([['', { config: storage.retention, path: 'storage.retention' }]]);
    for (const [route, sub] of Object.entries(storage.subPaths ?? {})) {
      configs.set(subPathRoute(route), { config: sub.retention, path: `storage.subPaths.${route}.retention` });
    }
    for (const root of roots.roots) {
      const { config, path } = configs.get(root.route) ?? { config: undefined, path: '' };
      const compiled = compileRetention(config, path, root.gcDelayMs);
      this.byRoute.set(root.route, compiled);
      if (config === undefined) continue;
      if (!root.gc) logger.warn({ retention: path }, 'retention has no effect on a root with gc off');
      for (const policy of compiled.policies) {
        if (policy.repositories.length === 0) logger.warn({ policy: policy.name }, 'retention policy lists no repositories and applies to none');
      }
    }
  }

  private rootOf(repo: string): RootRetention {
    return this.byRoute.get(this.deps.roots.for(repo).route) as RootRetention;
  }

  /** How old an untagged manifest or a referrer must be before it is removed. */
  delayMs(repo: string): number {
    return this.rootOf(repo).delayMs;
  }

  dryRun(repo: string): boolean {
    return this.rootOf(repo).dryRun;
  }

  /**
   * The sweep's first step: removes the tags no keepTags entry keeps (a dry run logs them, and the
   * manifests their removal would let go). `now` is the sweep's time.
   */
  async applyToTags(repo: string, now: number): Promise<TagPass> {
    const retention = this.rootOf(repo);
    const policy = policyFor(retention, repo);
    // No policy keeps every tag; only a dry run has something to log then (untagged manifests).
    if (!policy && !retention.dryRun) return {};
    const pulls = await this.pullTimes(repo);
    const verdicts = judgeTags(
      policy,
      this.deps.queries.tagsWithTimes(repo).map((tag) => ({ key: tag.tag, digest: tag.digest, pushedAt: tag.setAt, pulledAt: pulls.get(tag.digest) ?? 0 })),
      now,
    );
    for (const verdict of verdicts) {
      if (verdict.keep) this.deps.logger.debug({ repo, tag: verdict.tag, digest: verdict.digest, keptBy: verdict.why }, 'retention keeps a tag');
    }
    const dropped = verdicts.filter((verdict) => !verdict.keep);
    if (!policy || dropped.length === 0) return retention.dryRun ? this.logDryRun(repo, policy, [], pulls, now) : {};
    if (retention.dryRun) {
      for (const verdict of dropped) this.logTag('retention would remove a tag', repo, policy, verdict, true);
      return this.logDryRun(repo, policy, dropped, pulls, now);
    }
    for (const verdict of dropped) await this.removeTag(repo, policy, verdict);
    return {};
  }

  /** The verdict of the repository's policy on each manifest nothing keeps any more. */
  async judgeManifests(repo: string, unreachable: readonly UnreachableManifest[], now: number): Promise<Map<string, ManifestVerdict>> {
    const retention = this.rootOf(repo);
    const policy = policyFor(retention, repo);
    const pulls = policy?.keepUntagged ? await this.pullTimes(repo) : new Map<string, number>();
    return judgeCandidates(retention, policy, unreachable.map((m) => candidate(m, pulls)), now);
  }

  /** What a removal by the repository's policy records: its reason, and the policy when one matched. */
  cause(repo: string, reason: RemovalCause['reason']): RemovalCause {
    const policy = policyFor(this.rootOf(repo), repo);
    return { reason, ...(policy ? { policy: policy.name } : {}) };
  }

  /**
   * When the repository should be swept again though no event comes: its rules read pull times
   * and the clock, which change without events (zot sweeps every repository each gcInterval).
   */
  revisitAt(repo: string, now: number): number | undefined {
    const retention = this.rootOf(repo);
    if (!hasKeepRules(policyFor(retention, repo))) return undefined;
    return now + this.deps.roots.for(repo).gcIntervalMs;
  }

  /** When each manifest of the repository was last pulled, the pulls not yet appended included. */
  private async pullTimes(repo: string): Promise<ReadonlyMap<string, number>> {
    await this.deps.pulls?.flush();
    return this.deps.queries.lastPulls(repo);
  }

  private async removeTag(repo: string, policy: Policy, verdict: TagVerdict): Promise<void> {
    const { store, queries } = this.deps;
    const stillThere = (): void => {
      if (queries.tagDigest(repo, verdict.tag) !== verdict.digest) throw new TagMoved();
    };
    try {
      await store.append([{ type: 'TagRemoved', repo, tag: verdict.tag, digest: verdict.digest, reason: 'keepTags', policy: policy.name }], RETENTION_CONTEXT, {
        precondition: stillThere,
      });
    } catch (err) {
      if (err instanceof TagMoved) return;
      throw err;
    }
    this.logTag('retention removed a tag', repo, policy, verdict, false);
  }

  private logTag(message: string, repo: string, policy: Policy, verdict: TagVerdict, dryRun: boolean): void {
    this.deps.logger.info({ repo, tag: verdict.tag, digest: verdict.digest, policy: policy.name, reason: 'keepTags', detail: verdict.why, dryRun }, message);
  }

  /**
   * Dry run: logs the manifests the sweep would remove if the dropped tags were gone, following
   * what each removal would let go in turn (an index's children, a subject's referrers), as the
   * live sweep does; returns when one too young now would be old enough.
   */
  private logDryRun(repo: string, policy: Policy | undefined, dropped: readonly TagVerdict[], pulls: ReadonlyMap<string, number>, now: number): TagPass {
    const { queries, logger } = this.deps;
    const retention = this.rootOf(repo);
    const droppedTags = new Set(dropped.map((verdict) => verdict.tag));
    const tagged = new Set(queries.tagsWithTimes(repo).filter((tag) => !droppedTags.has(tag.tag)).map((tag) => tag.digest));
    const manifests = queries.manifestsOf(repo);
    const links = queries.manifestLinks(repo);
    const removed = new Set<string>();
    const waiting: number[] = [];
    const held = new Set(manifests.map((m) => m.digest));
    for (let progress = true; progress; ) {
      progress = false;
      const present = (digest: string): boolean => held.has(digest) && !removed.has(digest);
      const listed = new Set(links.filter((link) => !removed.has(link.parent)).map((link) => link.child));
      const unreachable = manifests.filter(
        (m) => !removed.has(m.digest) && !tagged.has(m.digest) && !listed.has(m.digest) && (m.subject === null || !present(m.subject)),
      );
      const verdicts = judgeCandidates(retention, policy, unreachable.map((m) => candidate(m, pulls)), now);
      for (const m of unreachable) {
        const verdict = verdicts.get(m.digest);
        if (verdict?.remove) {
          removed.add(m.digest);
          progress = true;
          logger.info({ repo, digest: m.digest, ...this.cause(repo, verdict.reason), dryRun: true }, 'retention would remove a manifest');
        } else if (verdict?.until !== undefined) {
          waiting.push(verdict.until);
        }
      }
    }
    return waiting.length > 0 ? { nextDueAt: Math.min(...waiting) } : {};
  }
}

function candidate(manifest: { digest: string; addedAt: number; subject: string | null }, pulls: ReadonlyMap<string, number>): Candidate {
  return { key: manifest.digest, pushedAt: manifest.addedAt, pulledAt: pulls.get(manifest.digest) ?? 0, subject: manifest.subject };
}
