// A short-lived cache of verified credentials, so an expensive check (bcrypt: tens to hundreds of
// milliseconds of CPU; an LDAP bind: a network round trip) runs once per user and password per TTL
// instead of on every request.
//
// The password is never held: entries are keyed by the user and an HMAC-SHA256 of user and
// password under a random key made per process (so the keys are worthless outside it, and equal
// passwords of two users differ). Only successful checks are cached; a failure is checked again
// each time. Concurrent requests with the same credentials share one check. clear() (the
// credentials source changed) drops every entry, and a check that was running when it was called
// is answered but not stored.
import { createHmac, randomBytes } from 'node:crypto';

export const CREDENTIAL_CACHE_TTL_MS = 30_000;
export const CREDENTIAL_CACHE_MAX_ENTRIES = 10_000;

export interface CredentialCacheOptions {
  ttlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

export class CredentialCache<T> {
  private readonly secret = randomBytes(32);
  private readonly entries = new Map<string, { value: T; expiresAt: number }>();
  private readonly checking = new Map<string, Promise<T | undefined>>();
  private generation = 0;
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(options: CredentialCacheOptions = {}) {
    this.ttlMs = options.ttlMs ?? CREDENTIAL_CACHE_TTL_MS;
    this.maxEntries = options.maxEntries ?? CREDENTIAL_CACHE_MAX_ENTRIES;
    this.now = options.now ?? Date.now;
  }

  /**
   * The value `check` gave for these credentials within the TTL, or what `check` gives now
   * (undefined: the credentials are wrong, and nothing is cached).
   */
  async verify(user: string, password: string, check: () => Promise<T | undefined>): Promise<T | undefined> {
    const key = this.keyOf(user, password);
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      if (hit.expiresAt > this.now()) return hit.value;
      this.entries.delete(key);
    }
    const running = this.checking.get(key);
    if (running !== undefined) return running;
    const generation = this.generation;
    const checked = check()
      .then((value) => {
        if (value !== undefined && generation === this.generation) this.store(key, value);
        return value;
      })
      .finally(() => {
        if (this.checking.get(key) === checked) this.checking.delete(key);
      });
    this.checking.set(key, checked);
    return checked;
  }

  /** Forgets every entry: the source of the credentials changed. */
  clear(): void {
    this.generation++;
    this.entries.clear();
    this.checking.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  private store(key: string, value: T): void {
    // Map keeps insertion order: the first key is the oldest entry.
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
    this.entries.set(key, { value, expiresAt: this.now() + this.ttlMs });
  }

  private keyOf(user: string, password: string): string {
    const mac = createHmac('sha256', this.secret).update(user).update('\0').update(password).digest('base64');
    return `${user.length}:${user}:${mac}`;
  }
}
