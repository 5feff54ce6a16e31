// Copyright the shmap authors. MIT license.
/**
 * A mutual exclusion lock that works across workers, like Go's `sync.Mutex`.
 *
 * @module
 */

import {
  attachLockBlock,
  LOCK_HEADER_WORDS,
  lockWord,
  newLockBlock,
  tryLockWord,
  unlockWord,
} from "../_engine/futex.ts";

/**
 * A structured-cloneable reference to a {@linkcode Mutex}, made by
 * {@linkcode Mutex.prototype.handle} and turned back into a `Mutex` by
 * {@linkcode Mutex.attach}. It is a plain object, so it can be posted to a worker as is or
 * inside a larger message.
 *
 * @example Posting a handle to a worker
 * ```ts
 * import { Mutex, type MutexHandle } from "@shmap/shmap";
 *
 * const mu = new Mutex();
 * const handle: MutexHandle = mu.handle;
 * const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
 * worker.postMessage({ mu: handle });
 * ```
 */
export interface MutexHandle {
  /** Always `"Mutex"`. */
  readonly kind: "Mutex";
  /** The shared memory the mutex lives in. */
  readonly buffer: SharedArrayBuffer;
  /** Where in `buffer` the mutex starts, in bytes. */
  readonly byteOffset: number;
}

// Set by `Mutex.attach` for the duration of one `new Mutex()`, so that the public
// constructor keeps its empty signature while `attach` can adopt existing memory. Safe
// because construction is synchronous and an agent runs one thing at a time.
let adopt: Int32Array<SharedArrayBuffer> | undefined;

/**
 * A mutual exclusion lock in shared memory, usable from every worker (and the main thread)
 * that holds it. The semantics are those of Go's `sync.Mutex`: the zero state is
 * unlocked, a mutex is not tied to the agent that locked it, and it is not reentrant
 * (locking it twice from one agent deadlocks that agent).
 *
 * Create it in one agent, send {@linkcode Mutex.prototype.handle} to the others with
 * `postMessage`, and call {@linkcode Mutex.attach} there. Everything written under the lock
 * before `unlock()` is visible to the next agent that returns from `lock()`, even in
 * plain (non-atomic) reads and writes of shared memory.
 *
 * An uncontended `lock()` is one atomic compare-and-swap and `unlock()` one atomic swap. A
 * contended `lock()` spins briefly, then sleeps with `Atomics.wait`; this blocks the
 * calling thread, which Deno, Bun and Node allow on the main thread too (browsers do not).
 *
 * @example Guarding a counter shared with workers
 * ```ts
 * import { Mutex } from "@shmap/shmap";
 * import assert from "node:assert/strict";
 *
 * const mu = new Mutex();
 * const counter = new Int32Array(new SharedArrayBuffer(4));
 * // Workers receive { mu: mu.handle, counter } and do the same as below after
 * // `const mu = Mutex.attach(data.mu)`.
 * mu.lock();
 * try {
 *   counter[0] = counter[0] + 1;
 * } finally {
 *   mu.unlock();
 * }
 * assert.equal(counter[0], 1);
 * ```
 */
export class Mutex {
  /** The lock block: magic, kind, then the lock word at `LOCK_HEADER_WORDS`. */
  readonly #block: Int32Array<SharedArrayBuffer>;

  /**
   * Creates an unlocked mutex in a new, small `SharedArrayBuffer`.
   *
   * @example Creating a mutex
   * ```ts
   * import { Mutex } from "@shmap/shmap";
   * import assert from "node:assert/strict";
   *
   * const mu = new Mutex();
   * assert.equal(mu.tryLock(), true);
   * mu.unlock();
   * ```
   */
  constructor() {
    this.#block = adopt ?? newLockBlock("Mutex");
    adopt = undefined;
  }

  /**
   * Returns a `Mutex` over the same shared memory as the mutex `handle` was taken from,
   * typically in another worker.
   *
   * @example Attaching in a worker
   * ```ts
   * import { Mutex, type MutexHandle } from "@shmap/shmap";
   *
   * self.addEventListener("message", (e) => {
   *   const mu = Mutex.attach((e as MessageEvent<{ mu: MutexHandle }>).data.mu);
   *   mu.lock();
   *   // ... touch the shared data ...
   *   mu.unlock();
   * });
   * ```
   *
   * @param handle The value of {@linkcode Mutex.prototype.handle}, possibly after a trip
   * through `postMessage`.
   * @returns A mutex sharing its state with the original.
   * @throws {TypeError} if `handle` is not a valid `Mutex` handle: not an object, of another
   * kind, without a `SharedArrayBuffer`, with a bad offset, or pointing at memory that does
   * not hold a `Mutex`.
   */
  static attach(handle: MutexHandle): Mutex {
    adopt = attachLockBlock(handle, "Mutex");
    try {
      return new Mutex();
    } finally {
      adopt = undefined;
    }
  }

  /**
   * A structured-cloneable handle to this mutex, to pass to {@linkcode Mutex.attach} in
   * another worker.
   *
   * @example Sending the mutex to a worker
   * ```ts
   * import { Mutex } from "@shmap/shmap";
   *
   * const mu = new Mutex();
   * const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
   * worker.postMessage(mu.handle);
   * ```
   *
   * @returns A plain object `{ kind: "Mutex", buffer, byteOffset }`.
   */
  get handle(): MutexHandle {
    return { kind: "Mutex", buffer: this.#block.buffer, byteOffset: this.#block.byteOffset };
  }

  /**
   * Locks the mutex, blocking the calling thread until it is available.
   *
   * @example Locking around a critical section
   * ```ts
   * import { Mutex } from "@shmap/shmap";
   *
   * const mu = new Mutex();
   * mu.lock();
   * try {
   *   // ... exclusive access to the shared data ...
   * } finally {
   *   mu.unlock();
   * }
   * ```
   */
  lock(): void {
    lockWord(this.#block, LOCK_HEADER_WORDS);
  }

  /**
   * Tries to lock the mutex without blocking.
   *
   * @example Doing something else when the mutex is busy
   * ```ts
   * import { Mutex } from "@shmap/shmap";
   * import assert from "node:assert/strict";
   *
   * const mu = new Mutex();
   * assert.equal(mu.tryLock(), true);
   * assert.equal(mu.tryLock(), false); // already held
   * mu.unlock();
   * ```
   *
   * @returns `true` if the mutex was unlocked and is now held by the caller.
   */
  tryLock(): boolean {
    return tryLockWord(this.#block, LOCK_HEADER_WORDS);
  }

  /**
   * Unlocks the mutex, waking one waiting agent if there is any. As in Go, any agent may
   * unlock a mutex, not only the one that locked it.
   *
   * @example Unlocking twice is an error
   * ```ts
   * import { Mutex } from "@shmap/shmap";
   * import assert from "node:assert/strict";
   *
   * const mu = new Mutex();
   * mu.lock();
   * mu.unlock();
   * assert.throws(() => mu.unlock(), /sync: unlock of unlocked mutex/);
   * ```
   *
   * @throws {Error} `sync: unlock of unlocked mutex` if the mutex is not locked; it stays
   * unlocked and usable.
   */
  unlock(): void {
    unlockWord(this.#block, LOCK_HEADER_WORDS);
  }
}
