/**
 * Internal. The watch of a worker whose end is one event of the worker object: Bun's web
 * `Worker` fires `close`, a `node:worker_threads` Worker fires `exit`. (A Deno web worker has no
 * such event; deno.ts watches it otherwise.)
 *
 * @module
 */

import type { ShareMessage, Watch } from "./_share.ts";
import { endOfThread, markEnding, markOnTerminate, noteWatched } from "./_thread_end.ts";

/** What {@linkcode watchEndEvent} needs of a worker. */
export interface EventfulWorker {
  postMessage(message: ShareMessage): void;
  terminate(): unknown;
}

/**
 * Watches `worker`, thread `threadId`, for its end event: `listen(end, ending)` starts
 * listening and returns how to stop. At the end the thread is declared gone and then `endNow`
 * releases the share, both after `graceMs` (0 where the event fires once the thread has
 * stopped). The share message is posted as it is.
 *
 * `ending` is for the worker's error event, which comes first when an uncaught error ends it:
 * it marks the thread terminating, so that a handler of that event which waits for a lock the
 * worker held (holding up the end event behind it) takes the lock over after the grace
 * (census.ts ownerGone) instead of waiting for good.
 */
export function watchEndEvent(
  worker: EventfulWorker,
  threadId: number | undefined,
  graceMs: number,
  endNow: (graceMs?: number) => void,
  listen: (end: () => void, ending: () => void) => () => void,
): Watch {
  noteWatched(threadId);
  markOnTerminate(worker, () => threadId);
  const end = endOfThread(() => threadId, graceMs, endNow);
  const ending = () => markEnding(threadId);
  return { post: (message) => worker.postMessage(message), stop: listen(end, ending) };
}
