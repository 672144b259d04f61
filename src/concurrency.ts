// Bounded concurrency for work over a list: at most `limit` items in flight at once.

/**
 * Runs `work` over `items`, at most `limit` at a time, and stops taking items once one failed or
 * `signal` aborted. The first failure rejects, after the items already started have settled, so
 * that no work keeps running behind the caller's back.
 */
export async function eachBounded<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>, signal?: AbortSignal): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const lane = async (): Promise<void> => {
    while (next < items.length && !failure && !signal?.aborted) {
      const item = items[next++] as T;
      try {
        await work(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure) throw failure.err;
}
