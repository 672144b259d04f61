// A small LRU of manifest bytes by digest. Content-addressed bytes never change, so a hit is
// always right; the bound is in bytes.
export class ManifestCache {
  private readonly entries = new Map<string, Buffer>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get(digest: string): Buffer | undefined {
    const hit = this.entries.get(digest);
    if (hit) {
      this.entries.delete(digest);
      this.entries.set(digest, hit);
    }
    return hit;
  }

  set(digest: string, content: Buffer): void {
    if (content.length > this.maxBytes || this.entries.has(digest)) return;
    this.entries.set(digest, content);
    this.bytes += content.length;
    for (const [oldest, buffer] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= buffer.length;
    }
  }
}
