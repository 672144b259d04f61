// What the `zot serve` process needs set before Node starts libuv's thread pool, which happens at
// the first file read, so before any ES module loads: bin/zot.js, CommonJS on purpose, applies it
// and only then imports the CLI.

/**
 * libuv threads for `zot serve`: every fsync, file read and file write of the registry holds one
 * while it runs, and the default 4 queues the fsyncs of concurrent pushes (and the reads of
 * concurrent pulls) behind each other. More is not better on a small machine: each pool job hands
 * the core over twice, and on 2 cores 16 threads cost more in switches than they won in parallel
 * fsyncs (bench figure 4, 500 small images at c=16, ratio to distribution: 16 threads 2.20, 2.66,
 * 1.98; 8 threads 2.72, 2.79, 2.93, 2.91, 2.96; 4 threads 2.51, 2.86; big pushes and the pull
 * unchanged). Idle threads cost their stacks' address space, little RSS.
 */
export const SERVE_THREADPOOL_SIZE = 8;

/** Sets the thread pool's size for `zot serve`, unless the operator set UV_THREADPOOL_SIZE. */
export function prepareServeProcess(args: readonly string[], env: NodeJS.ProcessEnv): void {
  if (args[0] !== 'serve') return;
  env.UV_THREADPOOL_SIZE ??= String(SERVE_THREADPOOL_SIZE);
}
