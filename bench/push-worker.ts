// Worker thread for scenario 6: pushes one big blob monolithically so that the manifest-GET
// latency loop on the main thread is not slowed down by the client side of the upload.

import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { keepAliveAgent, OciClient, type BlobFile } from './client.js';

export interface PushJob {
  baseUrl: string;
  repo: string;
  blob: BlobFile;
}

/** Messages from the worker: 'started' right before the upload begins, then the outcome. */
export type PushMessage = { type: 'started' } | { type: 'done'; ms: number } | { type: 'failed'; error: string };

async function main(job: PushJob, post: (msg: PushMessage) => void): Promise<PushMessage> {
  const agent = keepAliveAgent(1);
  try {
    const client = new OciClient(job.baseUrl, agent, { timeoutMs: 300_000 });
    post({ type: 'started' });
    const t0 = performance.now();
    await client.pushBlobMonolithic(job.repo, job.blob);
    return { type: 'done', ms: performance.now() - t0 };
  } catch (err) {
    return { type: 'failed', error: err instanceof Error ? err.message : String(err) };
  } finally {
    agent.destroy();
  }
}

if (parentPort !== null) {
  const port = parentPort;
  const post = (msg: PushMessage): void => port.postMessage(msg);
  void main(workerData as PushJob, post).then(post);
}
