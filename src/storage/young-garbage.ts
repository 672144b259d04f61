// Request bodies arrive as ~64 KiB buffers outside the JavaScript heap, one per socket read, and
// die as soon as they are written. V8 frees such buffers when it collects the young generation,
// which it does by the volume of the (small) objects the heap allocates: during a large push that
// is rarely enough, and V8 answers their growing volume with full collections instead, about one
// every 25 MiB pushed, with pauses and marking steps of 10-30 ms on the event loop. Collecting the
// young generation every YOUNG_GC_STEP_BYTES of body keeps them in check: each takes well under a
// millisecond, and no full collection starts. It needs `--expose-gc`, which `zot serve` sets
// (bin/zot.js); without it (a registry started inside another program) nothing is done.

/**
 * Body bytes received, over all requests, between two young-generation collections. V8 counts
 * the buffers allocated since its last full collection against the old generation's limit, which
 * after a collection is only some 8-12 MiB above what is live (bin/zot.js caps V8's growing
 * factor): 16 MiB of buffers between collections started a full collection every 16-32 MiB
 * pushed, 4 MiB start none, and hold 12 MiB fewer buffers at the peak.
 */
const YOUNG_GC_STEP_BYTES = 4 * 1024 * 1024;

type CollectGarbage = (options: { type: 'minor' }) => void;
const collectGarbage = (globalThis as { gc?: CollectGarbage }).gc;

let receivedSinceCollection = 0;

/** Counts body bytes received; collects the young generation once enough have been. */
export function bodyBytesReceived(bytes: number): void {
  if (collectGarbage === undefined) return;
  receivedSinceCollection += bytes;
  if (receivedSinceCollection < YOUNG_GC_STEP_BYTES) return;
  receivedSinceCollection = 0;
  collectGarbage({ type: 'minor' });
}
