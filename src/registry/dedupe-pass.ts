// Dedupe of content stored before dedupe was on: new pushes are deduped as they commit, so this
// pass runs once per storage root each time dedupe is turned on. It works one digest at a time,
// holding only that digest's content lock and yielding to the event loop between digests, so
// requests go on while it runs.
//   filesystem: every repository's copy becomes a hard link to one of them;
//   S3:         repositories point at one holder's object (BlobRelocated), the others' go.
// Turning dedupe off needs no pass: links and pointers stay readable, and new pushes store copies.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { EventStore } from '../events/store.js';
import { SYSTEM_DEDUPE_IDENTITY, type EventBody, type EventContext } from '../events/types.js';
import type { RegistryStateQueries } from '../projections/registry-state.js';
import { blobPath } from '../storage/layout.js';
import { linksShareBytes, type StorageRoot, type StorageRoots } from '../storage/roots.js';
import { parseDigest, type ParsedDigest } from '../oci/digest.js';
import type { Registry } from './registry.js';

const DEDUPE_CONTEXT: EventContext = { identity: SYSTEM_DEDUPE_IDENTITY };

/** Meta key recording whether a root's content is known deduped ("on") or may not be ("off"). */
function stateKey(root: StorageRoot): string {
  return `dedupe:${root.rootDirectory}:${root.route}`;
}

export class DedupePass {
  private stopped = false;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly registry: Registry,
    private readonly queries: RegistryStateQueries,
    private readonly store: EventStore,
    private readonly roots: StorageRoots,
    private readonly logger: Logger,
  ) {}

  /** Starts the pass in the background for every root that needs one; returns at once. */
  start(): void {
    for (const root of this.roots.roots) {
      if (!root.dedupe) {
        this.store.setMeta(stateKey(root), 'off');
        continue;
      }
      if (this.store.getMeta(stateKey(root)) === 'on') continue;
      this.running = this.running.then(() => this.runFor(root));
    }
  }

  /** Resolves when every pass started so far has finished. */
  async finished(): Promise<void> {
    await this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  private async runFor(root: StorageRoot): Promise<void> {
    let relinked = 0;
    try {
      for (const digestText of this.queries.sharedDigests()) {
        if (this.stopped) return;
        const digest = parseDigest(digestText);
        const holders = this.queries.blobHolders(digest.value).filter((holder) => this.roots.for(holder.repo) === root);
        if (holders.length < 2) continue;
        relinked += await this.registry.locks.withContent(holders[0]!.repo, digest.value, () =>
          linksShareBytes(root) ? this.linkCopies(root, digest) : this.dropCopies(digest, root),
        );
        await yieldToEventLoop();
      }
      this.store.setMeta(stateKey(root), 'on');
      this.logger.info({ root: root.rootDirectory, route: root.route, deduped: relinked }, 'dedupe finished for existing content');
    } catch (err) {
      this.logger.error({ root: root.rootDirectory, route: root.route, err }, 'failed to dedupe existing content, retrying at next start');
    }
  }

  /** Filesystem: copies that are not the keeper's bytes become hard links to them. */
  private async linkCopies(root: StorageRoot, digest: ParsedDigest): Promise<number> {
    const holders = this.queries.blobHolders(digest.value).filter((holder) => this.roots.for(holder.repo) === root);
    const [keeper, ...others] = holders;
    if (!keeper) return 0;
    const keeperPath = blobPath(keeper.repo, digest);
    const keeperInfo = await root.driver.stat(keeperPath);
    if (!keeperInfo?.fileId) return 0;
    let linked = 0;
    for (const other of others) {
      const otherPath = blobPath(other.repo, digest);
      const info = await root.driver.stat(otherPath);
      if (!info || info.fileId === keeperInfo.fileId) continue;
      await root.driver.link(keeperPath, otherPath);
      linked++;
    }
    return linked;
  }

  /** S3: repositories with their own copy point at the keeper's object instead; their copies go. */
  private async dropCopies(digest: ParsedDigest, root: StorageRoot): Promise<number> {
    const holders = this.queries.blobHolders(digest.value).filter((holder) => this.roots.for(holder.repo) === root);
    const owners = holders.filter((holder) => holder.storedIn === null).map((holder) => holder.repo);
    const [keeper, ...others] = owners;
    if (keeper === undefined || others.length === 0) return 0;
    const events: EventBody[] = [];
    for (const other of others) {
      events.push({ type: 'BlobRelocated', repo: other, digest: digest.value, storedIn: keeper });
      for (const dependent of this.queries.blobDependents(digest.value, other)) {
        events.push({ type: 'BlobRelocated', repo: dependent, digest: digest.value, storedIn: keeper });
      }
    }
    const unchanged = (): void => {
      const now = this.queries.blobHolders(digest.value).filter((holder) => holder.storedIn === null).map((holder) => holder.repo);
      if (!now.includes(keeper) || others.some((other) => !now.includes(other))) throw new Error(`holders of ${digest.value} changed during dedupe`);
    };
    await this.store.append(events, DEDUPE_CONTEXT, { precondition: unchanged });
    // After the event: a crash in between leaves copies no one reads, which GC removes as orphans.
    for (const other of others) {
      if (!this.queries.manifest(other, digest.value)) await root.driver.delete(blobPath(other, digest));
    }
    return others.length;
  }
}
