// The inline projections, and folding events through them into a scratch database (for
// `zot replay` and `zot audit --at`, which rebuild state from the log without touching it).
import { openMemoryDatabase, type Db } from '../events/database.js';
import type { StoredEvent } from '../events/types.js';
import { RegistryStateProjection } from './registry-state.js';

/** The inline projections, in the order they are applied in each append transaction. */
export function createProjections(): [RegistryStateProjection] {
  return [new RegistryStateProjection()];
}

/** Fresh projections on an in-memory database; `apply` events in log order, then query `db`. */
export class ScratchProjections {
  readonly db: Db = openMemoryDatabase();
  private readonly projections = createProjections();

  constructor() {
    for (const projection of this.projections) projection.migrate(this.db);
  }

  apply(event: StoredEvent): void {
    for (const projection of this.projections) projection.apply(event);
  }

  close(): void {
    this.db.close();
  }
}
