// The piscina pool that hashes and verifies blobs off the event loop. Whole files go to the least
// busy thread; the tasks of one upload session all go to the thread that keeps its running hash
// (hash-worker.cts), picked by the pool's load balancer from the session key each task carries.
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Piscina, PiscinaTask } from 'piscina';
import { HASH_WORKER } from '../install-layout.js';
import { RegistryError } from '../oci/errors.js';
import type { ForgetUploadTask, HashFileTask, UploadHashResult, UploadHashTask } from './hash-worker.cjs';

/** Hashes waiting for a thread; past this the registry answers 429 rather than queue without bound. */
export const MAX_QUEUED_HASHES = 1024;

type LoadBalancer = NonNullable<NonNullable<ConstructorParameters<typeof Piscina>[0]>['loadBalancer']>;
type PiscinaWorker = Parameters<LoadBalancer>[1][number];

const requirePackage = createRequire(import.meta.url);
let piscinaPackage: typeof import('piscina') | undefined;

/**
 * piscina, loaded by the first hash rather than at start: its some twenty module files are about a
 * twentieth of the start-up CPU, and a start hashes nothing. The load runs on the event loop, so
 * it is without their source maps (stack traces through piscina name its .js lines): with them,
 * as `zot serve` runs node, it took 29-34 ms, without 20-22.
 */
function piscina(): typeof import('piscina') {
  if (piscinaPackage) return piscinaPackage;
  const maps = process.sourceMapsEnabled;
  if (maps) process.setSourceMapsEnabled(false);
  try {
    piscinaPackage = requirePackage('piscina') as typeof import('piscina');
  } finally {
    if (maps) process.setSourceMapsEnabled(true);
  }
  return piscinaPackage;
}

/** What the balancer reads from a task: the upload session it belongs to. */
interface SessionQueueOptions {
  session: string;
}

export class HashPool {
  /** Made by the first task (piscina()). */
  private started: Piscina | undefined;
  /** Threads that are online (piscina's workerCreate, until their workerDestroy). */
  private readonly onlineThreads = new Set<unknown>();
  /** A warm-up task is on its way to a thread that is starting. */
  private warming = false;
  /** Upload session → the id of the thread that keeps its hash. */
  private readonly threadOf = new Map<string, number>();

  // One core is left to the event loop, which streams the uploads that the pool then hashes.
  constructor(readonly maxThreads = Math.max(1, availableParallelism() - 1)) {}

  private get pool(): Piscina {
    if (this.started) return this.started;
    const pool = new (piscina().Piscina)({
      filename: fileURLToPath(HASH_WORKER),
      // No thread at start: an idle registry keeps none (about 10 MiB and 200 ms of start-up CPU
      // each); the first hash after start or after idleTimeout starts one.
      minThreads: 0,
      maxThreads: this.maxThreads,
      maxQueue: MAX_QUEUED_HASHES,
      idleTimeout: 30_000,
      // A hashing thread holds a read buffer or two and little else; a small heap keeps its RSS small.
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 },
      loadBalancer: (task, workers) => this.pick(task, workers),
    });
    pool.on('workerCreate', (worker: unknown) => this.onlineThreads.add(worker));
    pool.on('workerDestroy', (worker: unknown) => this.onlineThreads.delete(worker));
    this.started = pool;
    return pool;
  }

  /** A thread is online: a task given now starts at once, not after a thread's start (~100 ms). */
  threadReady(): boolean {
    return this.onlineThreads.size > 0;
  }

  /** Starts a thread when none is online or on its way, without waiting for it. */
  warm(): void {
    // piscina's threads include those still starting (for a task already given).
    if (this.onlineThreads.size > 0 || this.warming || (this.started?.threads.length ?? 0) > 0) return;
    this.warming = true;
    (this.pool.run({}, { name: 'warmUp' }) as Promise<void>)
      .catch(() => {
        // The next task starts a thread again, or fails with the reason.
      })
      .finally(() => {
        this.warming = false;
      });
  }

  hashFile(task: HashFileTask, signal?: AbortSignal): Promise<string> {
    if ((this.started?.queueSize ?? 0) >= MAX_QUEUED_HASHES) {
      return Promise.reject(new RegistryError('TOOMANYREQUESTS', 'too many uploads are waiting for verification; retry later'));
    }
    return this.pool.run(task, { name: 'hashFile', ...(signal ? { signal } : {}) }) as Promise<string>;
  }

  /** Brings the running hash of an upload session up to `task.size` bytes (hash-worker.cts). */
  hashUpload(task: UploadHashTask): Promise<UploadHashResult> {
    return this.pool.run(withSession(task, task.session), { name: 'hashUpload' }) as Promise<UploadHashResult>;
  }

  /** Drops the running hash of a session that is over. */
  async forgetUpload(session: string): Promise<void> {
    // No thread was given the session (none hashed it in this process): nothing to drop.
    if (!this.threadOf.has(session)) return;
    const task: ForgetUploadTask = { session };
    await this.pool.run(withSession(task, session), { name: 'forgetUpload' });
  }

  async close(): Promise<void> {
    await this.started?.destroy();
  }

  private pick(task: PiscinaTask, workers: PiscinaWorker[]): PiscinaWorker | null {
    const session = (task[piscina().Piscina.queueOptionsSymbol as keyof PiscinaTask] as SessionQueueOptions | null | undefined)?.session;
    const live = workers.filter((w) => !w.terminating && !w.destroyed);
    // A whole file waits for an idle thread (piscina's own rule): the pool then grows up to maxThreads.
    if (session === undefined) return live.find((w) => w.currentUsage === 0) ?? null;
    const bound = this.threadOf.get(session);
    // A thread runs the tasks of its sessions even while busy: they are short, and in order there.
    let chosen = live.find((w) => w.id === bound);
    if (!chosen) {
      // Unbound, or its thread exited: a new thread rebuilds the hash from the file.
      chosen = live.reduce<PiscinaWorker | undefined>((best, w) => (best === undefined || w.currentUsage < best.currentUsage ? w : best), undefined);
      if (chosen) this.threadOf.set(session, chosen.id);
    }
    if (task.name === 'forgetUpload') this.threadOf.delete(session);
    return chosen ?? null;
  }
}

/** The task with its session where the balancer reads it (a symbol key: not sent to the thread). */
function withSession<T extends object>(task: T, session: string): T {
  const options: SessionQueueOptions = { session };
  return Object.assign(task, { [piscina().Piscina.queueOptionsSymbol]: options });
}
