/**
 * Telling shmap that a thread is gone, for workers the adapters do not watch.
 *
 * @module
 */

import { isThreadId, MAX_THREAD_ID, selfThreadId, vouchGone } from "./_engine/census.ts";
import { describe } from "./_describe.ts";
import { declareChildrenGone } from "./workers/_thread_end.ts";

/**
 * Declares the thread `threadId` gone: it will never run again. Locks it held are then taken
 * over by the next thread that needs them (with {@linkcode OwnerDeadError} for a `Mutex` or an
 * `RWMutex`, and a repair for a map's internal locks), its read locks are released, and a
 * `SyncMap`'s memory it held is reclaimed.
 *
 * The worker adapters (`@shmap/shmap/deno`, `/bun`, `/node`) call this for you when a worker
 * they watch ends, and their `track(worker)` watches any worker, a pool's included. Call it
 * yourself only for a thread nothing watches, and only once it has really stopped: the
 * `exit` event of a `node:worker_threads` Worker (Node and Bun fire it after the thread
 * stopped) or Bun's `close` event. Never call it for a thread that is only slow: a thread
 * declared gone that still runs would share locks with their new holders. On Deno, neither a
 * web `Worker`'s `terminate()` nor a `node:worker_threads` Worker's `exit` event means the thread
 * has stopped (Deno's `terminate()` leaves a worker running synchronous code running): use the
 * Deno adapter's `track`, which marks the worker terminating so that its next shmap call stops
 * it, rather than this.
 *
 * The workers the gone thread started or tracked through an adapter ended with it (the
 * runtimes end nested workers with their parent): they are declared gone too, 250 ms later.
 *
 * `threadId` is the worker's `threadId` as `node:worker_threads` gives it (the `threadId`
 * property of a `Worker` object, or the value of {@linkcode currentThreadId} in the worker).
 * Read the property while the worker runs: once it has exited, Node and Bun report -1. A process
 * never reuses a thread id, and the declaration is for good: a worker started later with an id
 * declared before it ran counts as terminated, so that its calls throw `TerminatedError`. Declare
 * only threads that have run and ended.
 *
 * The seats of a `SyncMap` that the gone thread held are given back at once by this thread's
 * objects of that map (no later call needed), so that a worker started in its place can attach.
 *
 * @example A worker's end, seen by its parent
 * ```ts
 * import { threadGone } from "@shmap/shmap";
 *
 * // With a node:worker_threads Worker, its id taken while it runs (inside `exit`, Node and Bun
 * // already report -1):
 * //   const id = worker.threadId;
 * //   worker.on("exit", () => threadGone(id)); -- or use track() from an adapter.
 * threadGone(123_456); // the id of a worker that ended (here none has had it yet)
 * ```
 *
 * @param threadId The thread id of the thread that ended.
 * @throws {TypeError} if `threadId` is not a thread id: an integer from 0 to 2^28 - 1.
 * @throws {RangeError} if `threadId` is the calling thread's own, or 0, the main thread's (no
 * worker outlives it).
 */
export function threadGone(threadId: number): void {
  if (!isThreadId(threadId)) {
    throw new TypeError(
      `threadGone: expected a thread id (an integer from 0 to ${MAX_THREAD_ID}), got ${
        describe(threadId)
      }`,
    );
  }
  if (threadId === selfThreadId()) {
    throw new RangeError("threadGone: a thread cannot declare itself gone");
  }
  if (threadId === 0) {
    // The main thread: its end ends the process, and every worker with it.
    throw new RangeError("threadGone: thread 0 is the main thread, which no worker outlives");
  }
  vouchGone(threadId);
  declareChildrenGone(threadId);
}

/**
 * The id shmap knows the calling thread by: `node:worker_threads`' `threadId`, except in a
 * Deno web `Worker` (where that reads 0, as on the main thread), which gets an id of its own.
 * A worker can post it to its parent so that the parent can call {@linkcode threadGone}.
 *
 * @example
 * ```ts
 * import { currentThreadId } from "@shmap/shmap";
 *
 * console.log(currentThreadId()); // 0 on the main thread
 * ```
 */
export function currentThreadId(): number {
  return selfThreadId();
}
