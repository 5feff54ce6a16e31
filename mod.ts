/**
 * shmap: Go's two maps for JavaScript workers, in a `SharedArrayBuffer`.
 *
 * - {@linkcode GoMap}: Go's built-in hash map, built the way Go's runtime builds it. Any number
 *   of workers may read it at once; writes are the caller's to serialize, and a concurrent
 *   write is reported as a {@linkcode ConcurrentMapWriteError}, never silent corruption.
 * - {@linkcode SyncMap}: Go's `sync.Map`, safe for concurrent use by any number of workers with
 *   no user locking: loads of keys in its read table take no lock and, once warm, no atomic
 *   operation.
 * - {@linkcode Mutex} and {@linkcode RWMutex}: Go's locks over shared memory, usable from the
 *   main thread and from workers.
 * - {@linkcode codecs} and {@linkcode Codec}: how keys and values are copied into shared memory.
 *
 * A structure lives in one growable SharedArrayBuffer. Post its `handle` to a worker and call
 * the class's static `attach(handle)` there, or use the worker adapters, one per runtime:
 * `@shmap/shmap/deno`, `@shmap/shmap/bun` and `@shmap/shmap/node` export `spawn`, `share` and
 * `receive`, and give back a worker's share of a SyncMap when the worker ends. Every worker then
 * reads and writes the same memory in tens of nanoseconds per call, with no `postMessage`
 * round trip.
 *
 * @example A map shared by workers, guarded by a Mutex
 * ```ts
 * import { GoMap, Mutex } from "@shmap/shmap";
 *
 * const hits = new GoMap<string, number>();
 * const lock = new Mutex();
 * lock.lock();
 * try {
 *   hits.set("/", (hits.get("/") ?? 0) + 1);
 * } finally {
 *   lock.unlock();
 * }
 * console.log(hits.get("/")); // 1
 * // Share both with a worker: spawn(url, { hits, lock }) from "@shmap/shmap/deno", and in the
 * // worker: const { hits, lock } = await receive<{ hits: GoMap<string, number>; lock: Mutex }>();
 * ```
 *
 * @module
 */

export { type Codec, codecs } from "./src/codec.ts";
export {
  ConcurrentMapWriteError,
  MapFullError,
  OwnerDeadError,
  TerminatedError,
} from "./src/errors.ts";
export {
  type AttachOptions,
  GoMap,
  type GoMapHandle,
  type GoMapOptions,
  type GoMapStats,
} from "./src/maps/go_map.ts";
export {
  SyncMap,
  type SyncMapAttachOptions,
  type SyncMapHandle,
  type SyncMapOptions,
  type SyncMapStats,
} from "./src/maps/sync_map.ts";
export { Mutex, type MutexHandle } from "./src/sync/mutex.ts";
export { RWMutex, type RWMutexHandle, type RWMutexOptions } from "./src/sync/rw_mutex.ts";
export { currentThreadId, threadGone } from "./src/threads.ts";

// A Deno web worker that uses shmap answers track() (see the module), adapter imported or not.
import "./src/workers/_deno_worker.ts";
