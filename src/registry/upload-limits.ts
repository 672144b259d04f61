// The limits on upload sessions, in one place (the README's "Upload sessions" lists them): how
// many may be open, per repository and in all, and how long one may sit idle. Nothing a client
// sends may grow disk without bound, and an abandoned session is not kept forever.
import { DEFAULT_GC_DELAY_MS } from '../config/store-settings.js';

export interface UploadLimits {
  /** Open sessions one repository may have. */
  perRepository: number;
  /** Open sessions across every repository of every root. */
  overall: number;
  /**
   * How long a session may go without a write before it expires, in a root without GC. A root with
   * GC expires its sessions after its gcDelay instead, as its other garbage.
   */
  idleExpiryMs: number;
}

export const DEFAULT_UPLOAD_LIMITS: Readonly<UploadLimits> = {
  perRepository: 1_000,
  overall: 10_000,
  // zot's default gcDelay, the age at which zot's GC drops stale uploads.
  idleExpiryMs: DEFAULT_GC_DELAY_MS,
};
