// bin/zot.js's first line gives V8 flags that size the heap (--max-semi-space-size,
// --min-semi-space-size, --max-old-space-size) and install gc() (--expose-gc). V8 reads them when
// it sets up the heap and the main context, before any script runs, and never again for this
// isolate (an operator's own, with `node FLAGS bin/zot.js`, likewise). But V8 also hashes
// every flag that differs from its default into the check of each code cache it is handed, and
// Node's own modules (http, streams, crypto, fs/promises, ...) come with a code cache made under
// the default flags: with ours in place V8 rejects it, and each of the hundred-odd modules a start
// loads is parsed and compiled from its source instead (newer V8 leaves memory flags out of the
// hash; Node 20's does not). Put back, a start to its first 200 took 391 instead of 429 ms of CPU
// (medians of 21 alternating starts on a busy 2-core machine).
//
// So once the heap is set up, these flags go back to their defaults: the heap keeps the sizes it
// was set up with, gc() stays installed, and the hash is again the one Node's cache was made
// under. Worker threads created later set up their heaps from the flags as they are then: the
// hashing pool gives its threads explicit resource limits (src/workers/pool.ts).
import { setFlagsFromString } from 'node:v8';

/** The flags, with their V8 defaults, that only matter while V8 sets up the heap and context. */
export const SETUP_ONLY_FLAGS: readonly string[] = ['--max-semi-space-size=0', '--min-semi-space-size=0', '--max-old-space-size=0', '--no-expose-gc'];

/** Puts the set-up-only V8 flags back to their defaults; call it before any other module loads. */
export function restoreSetupFlagDefaults(): void {
  for (const flag of SETUP_ONLY_FLAGS) setFlagsFromString(flag);
}
