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
 * Thrown when a map needs more shared memory than its `maxBytes` option allows. The operation
 * that threw had no effect: the map keeps its previous contents, stays consistent and holds no
 * lock. Deleting entries makes room for entries of about the same sizes (freed blocks are
 * reused by requests of their own size class, not split or merged).
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
        "pass a larger maxBytes when creating the map",
    );
    this.name = "MapFullError";
  }
}
