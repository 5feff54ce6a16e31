/**
 * Error classes callers are meant to catch.
 *
 * @module
 */

/**
 * Thrown when a {@linkcode GoMap} is written by two workers at once, or read in one worker while
 * another writes it. It is Go's "concurrent map writes" fatal error: the map is not safe for
 * concurrent writes, and the library reports the misuse instead of returning torn data. The map
 * itself is left consistent; the operation that threw had no effect.
 *
 * @example Catching misuse
 * ```ts
 * import { ConcurrentMapWriteError, GoMap } from "@shmap/shmap";
 *
 * const map = new GoMap<string, number>();
 * try {
 *   map.set("a", 1);
 * } catch (error) {
 *   if (error instanceof ConcurrentMapWriteError) console.error("guard the map with a Mutex");
 *   else throw error;
 * }
 * ```
 */
export class ConcurrentMapWriteError extends Error {
  /** Creates the error; `operation` names what was interrupted ("write", "read", "iteration"). */
  constructor(operation: string) {
    super(
      `concurrent map ${operation} and map write: a GoMap is not safe for concurrent writes; ` +
        "guard it with a Mutex or RWMutex, or use SyncMap",
    );
    this.name = "ConcurrentMapWriteError";
  }
}

/**
 * Internal (mod.ts does not export it). The largest `maxBytes` a map may have, which arena.ts
 * checks: 1 GiB, also the default.
 */
export const MAX_MAP_BYTES = 2 ** 30;

/**
 * Thrown when a map needs more shared memory than its `maxBytes` option allows. The operation
 * that threw had no effect: the map keeps its previous contents, stays consistent and holds no
 * lock. Deleting entries makes room for new ones: freed memory goes back to a heap that merges
 * neighbouring free chunks, so it serves other sizes and the table's growth too.
 *
 * @example
 * ```ts
 * import { GoMap, MapFullError } from "@shmap/shmap";
 *
 * const map = new GoMap<number, string>({ maxBytes: 64 * 1024 });
 * try {
 *   for (let i = 0; ; i++) map.set(i, "x".repeat(100));
 * } catch (error) {
 *   if (!(error instanceof MapFullError)) throw error;
 * }
 * console.log(map.size > 0); // true: everything stored before the error is still there
 * ```
 */
export class MapFullError extends RangeError {
  /** Creates the error for a request of `requested` bytes against a `maxBytes` limit. */
  constructor(requested: number, maxBytes: number) {
    super(
      `shared memory exhausted: ${requested} more bytes needed but maxBytes is ${maxBytes}; ` +
        (maxBytes >= MAX_MAP_BYTES
          ? "that is the most a map may have: delete keys, or spread the data over more maps"
          : "pass a larger maxBytes when creating the map"),
    );
    this.name = "MapFullError";
  }
}

/**
 * Thrown by a lock (a {@linkcode Mutex}, an {@linkcode RWMutex}) whose previous holder's thread
 * died while it held the lock: a worker terminated by its pool, killed by an uncaught error, or
 * declared gone with `threadGone()`. It is POSIX's EOWNERDEAD and Rust's lock poisoning: the
 * call that throws it **has acquired the lock** (for reading, from `rLock`), and the data the
 * lock guards may be half-updated. Repair the data, call the lock's `markConsistent()`, then
 * unlock. Until someone marks it consistent, every acquisition throws this error again (each
 * time holding the lock), so a forgotten repair cannot go unnoticed.
 *
 * @example Recovering a lock whose holder died
 * ```ts
 * import { Mutex, OwnerDeadError } from "@shmap/shmap";
 *
 * const mu = new Mutex();
 * const counter = new Int32Array(new SharedArrayBuffer(4));
 * try {
 *   mu.lock();
 * } catch (error) {
 *   if (!(error instanceof OwnerDeadError)) throw error;
 *   // We hold the lock. Put the guarded data right, then say so.
 *   counter[0] = Math.max(counter[0], 0);
 *   mu.markConsistent();
 * }
 * try {
 *   counter[0]++;
 * } finally {
 *   mu.unlock();
 * }
 * ```
 */
export class OwnerDeadError extends Error {
  /** The thread id of the holder that died, when known (-1 otherwise). */
  readonly threadId: number;

  /** Creates the error for a lock of `kind` whose holder, thread `threadId`, died. */
  constructor(kind: string, threadId = -1) {
    // -1: the lock was taken from no dead holder, but stays marked inconsistent since one died
    // holding it, earlier, and nobody has called markConsistent() since.
    super(
      (threadId >= 0
        ? `the previous holder of this ${kind} (thread ${threadId}) died holding it`
        : `this ${kind} is marked inconsistent: a holder died holding it, and nobody has called ` +
          "markConsistent() since") +
        ": the lock is now held by the caller, and the data it guards may be inconsistent; " +
        "repair it and call markConsistent() before unlocking",
    );
    this.name = "OwnerDeadError";
    this.threadId = threadId;
  }
}

/**
 * Thrown in a worker that was terminated but is still running, which happens on Deno when
 * `terminate()` reaches a worker blocked in `Atomics.wait`: the worker wakes up later and runs
 * on. Such a worker must not touch shared structures again, because its parent is about to
 * declare it gone and let other threads take over what it held, so every shmap call in it
 * throws this error from then on (a SyncMap read, which writes nothing shared, within 64
 * calls, at once when it must take the map's mutex). (A `node:worker_threads` worker under
 * Deno exits at that call instead: what it did after catching the error, such as a pool's
 * worker posting the result of the task it was terminated in, would reach its parent.)
 *
 * @example
 * ```ts
 * import { TerminatedError } from "@shmap/shmap";
 *
 * console.log(new TerminatedError().name); // "TerminatedError"
 * ```
 */
export class TerminatedError extends Error {
  /** Creates the error. */
  constructor() {
    super(
      "this worker was terminated and may not use shared structures any more " +
        "(its locks are being handed to other threads)",
    );
    this.name = "TerminatedError";
  }
}
