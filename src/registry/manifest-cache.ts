// A small LRU of manifest bytes by digest. Content-addressed bytes never change, so a hit is
// always right; the bound is in bytes.
export class ManifestCache {
  private readonly entries = new Map<string, Buffer>();
  private bytes = 0;
  /** The most recently used digest: the last of `entries`. */
  private newest: string | undefined;

  constructor(private readonly maxBytes: number) {}

  get(digest: string): Buffer | undefined {
    const hit = this.entries.get(digest);
    // A hit moves to the end, unless it is there already: the hot manifest of a busy repository is
    // hit thousands of times a second, and each move (a delete and a set) makes the map rebuild its
    // table every few hits.
    if (hit && digest !== this.newest) {
      this.entries.delete(digest);
      this.entries.set(digest, hit);
      this.newest = digest;
    }
    return hit;
  }

  set(digest: string, content: Buffer): void {
    if (content.length > this.maxBytes || this.entries.has(digest)) return;
    this.entries.set(digest, content);
    this.newest = digest;
    this.bytes += content.length;
    for (const [oldest, buffer] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= buffer.length;
    }
  }
}
