// Writes the HTTP layer answered 4xx, recorded as WriteRefused events so that the audit log,
// rebuilt from the event log, holds refusals too.
import type { EventStore } from '../events/store.js';
import type { EventContext } from '../events/types.js';
import { isValidName } from '../oci/names.js';

/** What the HTTP layer knows about a write it refused. */
export interface RefusedWrite {
  repo: string;
  method: string;
  /** The request path, without its query string. */
  path: string;
  status: number;
  code: string;
  reference?: string;
}

/** Paths and references of refused writes are cut here: a refusal must not bloat the log. */
const MAX_REFUSED_FIELD = 1024;

export class RefusalRecorder {
  constructor(private readonly store: EventStore) {}

  /** One small append; the name is kept only when it is a valid one. */
  record(refusal: RefusedWrite, context: EventContext): void {
    const reference = refusal.reference?.slice(0, MAX_REFUSED_FIELD);
    this.store.append(
      [
        {
          type: 'WriteRefused',
          repo: isValidName(refusal.repo) ? refusal.repo : '',
          method: refusal.method,
          path: refusal.path.slice(0, MAX_REFUSED_FIELD),
          status: refusal.status,
          code: refusal.code,
          ...(reference ? { reference } : {}),
        },
      ],
      context,
    );
  }
}
