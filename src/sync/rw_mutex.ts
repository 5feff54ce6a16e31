// Copyright the shmap authors. MIT license.
/**
 * A reader/writer mutual exclusion lock that works across workers, like Go's
 * `sync.RWMutex`.
 *
 * @module
 */

import {
  attachLockBlock,
  LOCK_HEADER_WORDS,
  lockWords,
  newLockBlock,
  rLockWords,
  rUnlockWords,
  tryLockWords,
  tryRLockWords,
  unlockWords,
} from "../_engine/futex.ts";

/**
 * A structured-cloneable reference to an {@linkcode RWMutex}, made by
 * {@linkcode RWMutex.prototype.handle} and turned back into an `RWMutex` by
 * {@linkcode RWMutex.attach}. It is a plain object, so it can be posted to a worker as is
 * or inside a larger message.
 *
 * @example Posting a handle to a worker
 * ```ts
 * import { RWMutex, type RWMutexHandle } from "@shmap/shmap";
 *
 * const rw = new RWMutex();
 * const handle: RWMutexHandle = rw.handle;
 * const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
 * worker.postMessage({ rw: handle });
 * ```
 */
export interface RWMutexHandle {
  /** Always `"RWMutex"`. */
  readonly kind: "RWMutex";
  /** The shared memory the lock lives in. */
  readonly buffer: SharedArrayBuffer;
  /** Where in `buffer` the lock starts, in bytes. */
  readonly byteOffset: number;
}

// Set by `RWMutex.attach` for the duration of one `new RWMutex()`; see mutex.ts.
let adopt: Int32Array<SharedArrayBuffer> | undefined;

/**
 * A reader/writer mutual exclusion lock in shared memory, usable from every worker (and the
 * main thread) that holds it. Any number of readers may hold it at once, or one writer.
 * The semantics are those of Go's `sync.RWMutex`:
 *
 * - It is writer-preferring: once a writer waits in {@linkcode RWMutex.prototype.lock},
 *   new readers block (and {@linkcode RWMutex.prototype.tryRLock} fails) until that writer
 *   has had its turn, so a steady stream of readers cannot starve writers. It follows that
 *   read locks are not reentrant: a reader that calls `rLock()` again while a writer waits
 *   deadlocks.
 * - When a writer unlocks, readers that were waiting get in before the next writer.
 * - The lock is not tied to the agent that took it.
 *
 * Create it in one agent, send {@linkcode RWMutex.prototype.handle} to the others with
 * `postMessage`, and call {@linkcode RWMutex.attach} there. Writes made under the write
 * lock are visible to every later reader or writer, even through plain (non-atomic)
 * accesses to shared memory.
 *
 * Uncontended costs: `rLock()` and `rUnlock()` are one atomic add each, however many other
 * readers hold the lock; `lock()` is a compare-and-swap plus one atomic `or`, and
 * `unlock()` two atomic read-modify-writes. A blocked call spins briefly, then sleeps with
 * `Atomics.wait`, which Deno, Bun and Node allow on the main thread too (browsers do not).
 *
 * @example A table read by many workers and written by few
 * ```ts
 * import { RWMutex } from "@shmap/shmap";
 * import assert from "node:assert/strict";
 *
 * const rw = new RWMutex();
 * const table = new Int32Array(new SharedArrayBuffer(16));
 * // Workers receive { rw: rw.handle, table } and call `RWMutex.attach(data.rw)`.
 * rw.lock();
 * table[0] = 42;
 * rw.unlock();
 *
 * rw.rLock();
 * assert.equal(table[0], 42);
 * rw.rUnlock();
 * ```
 */
export class RWMutex {
  /** The lock block: magic, kind, then the lock words at `LOCK_HEADER_WORDS`. */
  readonly #block: Int32Array<SharedArrayBuffer>;

  /**
   * Creates an unlocked reader/writer mutex in a new, small `SharedArrayBuffer`.
   *
   * @example Creating a reader/writer mutex
   * ```ts
   * import { RWMutex } from "@shmap/shmap";
   * import assert from "node:assert/strict";
   *
   * const rw = new RWMutex();
   * assert.equal(rw.tryRLock(), true);
   * rw.rUnlock();
   * ```
   */
  constructor() {
    this.#block = adopt ?? newLockBlock("RWMutex");
    adopt = undefined;
  }

  /**
   * Returns an `RWMutex` over the same shared memory as the lock `handle` was taken from,
   * typically in another worker.
   *
   * @example Attaching in a worker
   * ```ts
   * import { RWMutex, type RWMutexHandle } from "@shmap/shmap";
   *
   * self.addEventListener("message", (e) => {
   *   const rw = RWMutex.attach((e as MessageEvent<{ rw: RWMutexHandle }>).data.rw);
   *   rw.rLock();
   *   // ... read the shared data ...
   *   rw.rUnlock();
   * });
   * ```
   *
   * @param handle The value of {@linkcode RWMutex.prototype.handle}, possibly after a trip
   * through `postMessage`.
   * @returns A reader/writer mutex sharing its state with the original.
   * @throws {TypeError} if `handle` is not a valid `RWMutex` handle: not an object, of
   * another kind (such as a `Mutex` handle), without a `SharedArrayBuffer`, with a bad
   * offset, or pointing at memory that does not hold an `RWMutex`.
   */
  static attach(handle: RWMutexHandle): RWMutex {
    adopt = attachLockBlock(handle, "RWMutex");
    try {
      return new RWMutex();
    } finally {
      adopt = undefined;
    }
  }

  /**
   * A structured-cloneable handle to this lock, to pass to {@linkcode RWMutex.attach} in
   * another worker.
   *
   * @example Sending the lock to a worker
   * ```ts
   * import { RWMutex } from "@shmap/shmap";
   *
   * const rw = new RWMutex();
   * const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
   * worker.postMessage(rw.handle);
   * ```
   *
   * @returns A plain object `{ kind: "RWMutex", buffer, byteOffset }`.
   */
  get handle(): RWMutexHandle {
    return { kind: "RWMutex", buffer: this.#block.buffer, byteOffset: this.#block.byteOffset };
  }

  /**
   * Locks for writing, blocking the calling thread until no reader or writer holds the
   * lock. While it waits, new readers are held back.
   *
   * @example Writing under the lock
   * ```ts
   * import { RWMutex } from "@shmap/shmap";
   *
   * const rw = new RWMutex();
   * rw.lock();
   * try {
   *   // ... exclusive access to the shared data ...
   * } finally {
   *   rw.unlock();
   * }
   * ```
   */
  lock(): void {
    lockWords(this.#block, LOCK_HEADER_WORDS);
  }

  /**
   * Tries to lock for writing without blocking.
   *
   * @example A writer is excluded by a reader
   * ```ts
   * import { RWMutex } from "@shmap/shmap";
   * import assert from "node:assert/strict";
   *
   * const rw = new RWMutex();
   * rw.rLock();
   * assert.equal(rw.tryLock(), false);
   * rw.rUnlock();
   * assert.equal(rw.tryLock(), true);
   * rw.unlock();
   * ```
   *
   * @returns `true` if no reader or writer held the lock and the caller now holds it for
   * writing.
   */
  tryLock(): boolean {
    return tryLockWords(this.#block, LOCK_HEADER_WORDS);
  }

  /**
   * Unlocks for writing, letting waiting readers in first, then the next writer.
   *
   * @example Unlocking an unlocked lock is an error
   * ```ts
   * import { RWMutex } from "@shmap/shmap";
   * import assert from "node:assert/strict";
   *
   * const rw = new RWMutex();
   * assert.throws(() => rw.unlock(), /sync: Unlock of unlocked RWMutex/);
   * ```
   *
   * @throws {Error} `sync: Unlock of unlocked RWMutex` if the lock is not held for writing;
   * the lock is left as it was.
   */
  unlock(): void {
    unlockWords(this.#block, LOCK_HEADER_WORDS);
  }

  /**
   * Locks for reading, blocking the calling thread while a writer holds the lock or waits
   * for it. Do not use it recursively: see the class documentation.
   *
   * @example Reading under the lock
   * ```ts
   * import { RWMutex } from "@shmap/shmap";
   *
   * const rw = new RWMutex();
   * rw.rLock();
   * try {
   *   // ... read the shared data; other readers may be here too ...
   * } finally {
   *   rw.rUnlock();
   * }
   * ```
   */
  rLock(): void {
    rLockWords(this.#block, LOCK_HEADER_WORDS);
  }

  /**
   * Tries to lock for reading without blocking. Fails when a writer holds the lock or is
   * waiting for it.
   *
   * @example Readers share, writers exclude
   * ```ts
   * import { RWMutex } from "@shmap/shmap";
   * import assert from "node:assert/strict";
   *
   * const rw = new RWMutex();
   * assert.equal(rw.tryRLock(), true);
   * assert.equal(rw.tryRLock(), true); // a second reader
   * rw.rUnlock();
   * rw.rUnlock();
   *
   * rw.lock();
   * assert.equal(rw.tryRLock(), false);
   * rw.unlock();
   * ```
   *
   * @returns `true` if the caller now holds a read lock.
   */
  tryRLock(): boolean {
    return tryRLockWords(this.#block, LOCK_HEADER_WORDS);
  }

  /**
   * Releases one read lock. When the last reader leaves while a writer waits, the writer
   * is woken.
   *
   * @example Releasing a read lock not held is an error
   * ```ts
   * import { RWMutex } from "@shmap/shmap";
   * import assert from "node:assert/strict";
   *
   * const rw = new RWMutex();
   * assert.throws(() => rw.rUnlock(), /sync: RUnlock of unlocked RWMutex/);
   * ```
   *
   * @throws {Error} `sync: RUnlock of unlocked RWMutex` if no read lock is held; the lock
   * is left as it was. As in Go this is a bug in the caller: agents using the lock at that
   * very moment are not guaranteed mutual exclusion.
   */
  rUnlock(): void {
    rUnlockWords(this.#block, LOCK_HEADER_WORDS);
  }
}
