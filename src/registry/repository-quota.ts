// storage.maxRepos: a push that would create one repository too many is refused, as zot refuses
// it (pkg/api/quota.go: 413 TOOMANYREQUESTS, detail current/projected/limit). Repositories are
// counted across every root (default and subPaths), from the read model.
//
// Two checks, one rule. The upload that starts a push into a new repository is refused at once
// (assertRoomFor), before the client sends any bytes; and every append that would create a
// repository (a blob pushed or mounted, a manifest pushed) is checked again inside its SQLite
// transaction (guard), where appends are serialized: pushes into new repositories that all
// started while there was room cannot together go past the limit. The import of an existing zot
// root is not refused: the repositories are there already.
import type { AppendGuard } from '../events/store.js';
import { SYSTEM_IMPORT_IDENTITY, type EventBody } from '../events/types.js';
import { RegistryError } from '../oci/errors.js';
import type { RegistryStateQueries } from '../projections/registry-state.js';

const CREATES_REPOSITORY: ReadonlySet<EventBody['type']> = new Set(['BlobPushed', 'BlobMounted', 'ManifestPushed']);

export class RepositoryQuota {
  constructor(
    private readonly queries: RegistryStateQueries,
    readonly maxRepos: number,
  ) {}

  /** Throws REPOSITORY_QUOTA when `repo` is new and the registry holds maxRepos repositories. */
  assertRoomFor(repo: string, alsoNew = 0): void {
    if (this.queries.repositoryExists(repo)) return;
    const current = this.queries.repositoryCount() + alsoNew;
    if (current < this.maxRepos) return;
    throw new RegistryError('REPOSITORY_QUOTA', `repository ${repo} would be one more than storage.maxRepos (${this.maxRepos})`, {
      current: String(current),
      projected: String(current + 1),
      limit: String(this.maxRepos),
    });
  }

  readonly guard: AppendGuard = (bodies, context) => {
    if (context.identity === SYSTEM_IMPORT_IDENTITY) return;
    const created = new Set<string>();
    for (const body of bodies) {
      if (!CREATES_REPOSITORY.has(body.type) || created.has(body.repo)) continue;
      if (this.queries.repositoryExists(body.repo)) continue;
      this.assertRoomFor(body.repo, created.size);
      created.add(body.repo);
    }
  };
}
