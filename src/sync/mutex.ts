/**
 * A mutual exclusion lock that works across workers, like Go's `sync.Mutex`, and survives the
 * death of the worker that holds it.
 *
 * @module
 */

import {
  fast,
  liveOwnerId,
  liveOwnerIdAtEntry,
  liveOwnerIdSlowAtEntry,
  mayBeTerminated,
  mayRunTerminated,
  ownerGone,
  ownerId,
} from "../_engine/census.ts";
import * as census_module from "../_engine/census.ts";
import {
  clearPoison,
  lockWordSlow,
  ownerOf,
  poisonHeld,
  tryLockWord,
  unlockWordSlow,
} from "../_engine/futex.ts";
import * as futex from "../_engine/futex.ts";
import {
  attachLockBlock,
  LockAttachment,
  lockHandle,
  newLockBlock,
  ownerDead,
} from "../_engine/lock_block.ts";
import * as lock_block from "../_engine/lock_block.ts";
import { OwnerDeadError } from "../errors.ts";
import { defineInspect, inspectLock } from "../_inspect.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const C_COUNT = census_module.C_COUNT;
const ACQUIRED = futex.ACQUIRED;
const ACQUIRED_POISONED = futex.ACQUIRED_POISONED;
const CONTENDED = futex.CONTENDED;
const OWNER_SHIFT = futex.OWNER_SHIFT;
const POISONED = futex.POISONED;
const LOCK_BASE = lock_block.LOCK_BASE;

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
 * const copy = structuredClone({ mu: handle }); // what a worker receives from postMessage
 * console.log(Mutex.attach(copy.mu).tryLock()); // true
 * ```
 */
export interface MutexHandle {
  /** Always `"Mutex"`. */
  readonly kind: "Mutex";
  /** The shared memory the mutex lives in. */
  readonly buffer: SharedArrayBuffer;
  /** Where in `buffer` the mutex starts, in bytes. */
  readonly byteOffset: number;
  /** The census of ended threads of the process that made the mutex (internal). */
  readonly census?: SharedArrayBuffer;
}

/**
 * {@linkcode Mutex}'s lock word before it knows this thread's: never a lock word, since its owner
 * field (2^29 - 1) is above every owner id.
 */
const NO_WORD = -1;

/**
 * Takes the mutex in `block` for `me`, waiting for it (`wait`: {@linkcode Mutex.prototype.lock}
 * once its compare-exchange failed) or not ({@linkcode Mutex.prototype.tryLock}); returns
 * whether it took it. A lock taken over from a dead holder comes poisoned, and the caller
 * learns it holds it from the OwnerDeadError. If that cannot be made (a stack overflow can throw
 * from any call, ownerDead's entry included), the lock is given back, still poisoned, and the
 * overflow goes on: the caller would otherwise hold the lock without knowing. From the take-over
 * to the `try`, no call of ours; the give-back is written out with builtins alone (a call's
 * entry is where the stack is checked again).
 */
function acquire(block: Int32Array<SharedArrayBuffer>, me: number, wait: boolean): boolean {
  // Fair: a waiter that has waited STARVE_MS gets the next turn (futex.ts, STARVING).
  const status = wait
    ? lockWordSlow(block, LOCK_BASE, me, undefined, true)
    : tryLockWord(block, LOCK_BASE, me);
  if (status !== ACQUIRED_POISONED) return status === ACQUIRED;
  try {
    throw ownerDead("Mutex", block, LOCK_BASE);
  } catch (error) {
    if (!(error instanceof OwnerDeadError)) {
      if ((Atomics.exchange(block, LOCK_BASE, POISONED) & CONTENDED) !== 0) {
        Atomics.notify(block, LOCK_BASE, 1);
      }
    }
    throw error;
  }
}

/**
 * A mutual exclusion lock in shared memory, usable from every worker (and the main thread)
 * that holds it. It behaves as Go's `sync.Mutex`, with two differences that make it safe
 * across workers that can die:
 *
 * - The lock records which thread holds it. Only that thread may unlock it (Go allows any
 *   goroutine to); an unlock from another thread throws, as Go's "unlock of unlocked mutex"
 *   does for a mutex nobody holds.
 * - When the holder's thread dies (its worker is terminated by a pool on a timeout, dies of an
 *   uncaught error, or is declared gone with `threadGone()`), the next `lock()` takes the lock
 *   over and throws {@linkcode OwnerDeadError} **while holding it**: the data it guards may be
 *   half-updated. Repair it, call {@linkcode Mutex.prototype.markConsistent}, and unlock.
 *   Unlocked without it, the lock stays poisoned, and every later `lock()` throws again. This
 *   is POSIX's robust mutex (EOWNERDEAD) and Rust's poisoning. A thread that is merely slow
 *   never loses the lock: death is learned from the worker adapters or `threadGone()`, never
 *   guessed.
 *
 * Locking is not reentrant: locking it again from the thread that holds it throws (Go
 * deadlocks). An uncontended `lock()` is one atomic compare-and-swap and `unlock()` another. A
 * contended `lock()` spins briefly, then sleeps with `Atomics.wait`, which blocks the calling
 * thread: Deno, Bun and Node allow that on the main thread too (browsers do not).
 * Everything written under the lock before `unlock()` is visible to the next thread that
 * returns from `lock()`, even through plain reads and writes of shared memory.
 *
 * @example Guarding a counter shared with workers
 * ```ts
 * import { Mutex, OwnerDeadError } from "@shmap/shmap";
 * import assert from "node:assert/strict";
 *
 * const mu = new Mutex();
 * const counter = new Int32Array(new SharedArrayBuffer(4));
 * // Workers receive { mu: mu.handle, counter } and run the same code after
 * // `const mu = Mutex.attach(data.mu)`.
 * try {
 *   mu.lock();
 * } catch (error) {
 *   if (!(error instanceof OwnerDeadError)) throw error;
 *   mu.markConsistent(); // a holder died mid-update: a counter needs no repair
 * }
 * try {
 *   counter[0] = counter[0] + 1;
 * } finally {
 *   mu.unlock();
 * }
 * assert.equal(counter[0], 1);
 * ```
 */
export class Mutex {
  /** The lock block; the mutex word is at {@linkcode LOCK_BASE}. */
  readonly #block: Int32Array<SharedArrayBuffer>;
  /**
   * This thread's lock word (its owner id shifted into place). An object lives in one thread's
   * heap, and a thread's owner id never changes, so the word is set once: as the object is made,
   * or, in a thread that can run after `terminate()` (census.ts, mayRunTerminated: a Deno or Bun
   * worker; a Deno web worker's id may be given by its parent's adapter later), at its first
   * lock, and {@linkcode NO_WORD} until then. Read by the fast paths instead of `fast.owner`.
   */
  #mine: number;

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
    const from = (arguments as IArguments)[0];
    this.#block = from instanceof LockAttachment ? from.block : newLockBlock("Mutex", 1);
    this.#mine = mayRunTerminated ? NO_WORD : ownerId() << OWNER_SHIFT;
  }

  /**
   * Returns a `Mutex` over the same shared memory as the mutex `handle` was taken from,
   * typically in another worker.
   *
   * @example Attaching to a mutex made elsewhere
   * ```ts
   * import { Mutex } from "@shmap/shmap";
   *
   * const mu = new Mutex();
   * const same = Mutex.attach(structuredClone(mu.handle)); // as a worker would
   * same.lock();
   * console.log(mu.tryLock()); // false: one lock, two objects
   * same.unlock();
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
    const block = attachLockBlock(handle, "Mutex");
    if (block.length !== LOCK_BASE + 1) {
      throw new TypeError("Mutex.attach: the lock is corrupt (bad size)");
    }
    return new (Mutex as unknown as new (from: LockAttachment) => Mutex)(new LockAttachment(block));
  }

  /**
   * A structured-cloneable handle to this mutex, to pass to {@linkcode Mutex.attach} in
   * another worker.
   *
   * @example The handle is a plain object
   * ```ts
   * import { Mutex } from "@shmap/shmap";
   *
   * console.log(new Mutex().handle.kind); // "Mutex"
   * ```
   *
   * @returns A plain object `{ kind: "Mutex", buffer, byteOffset, census }`.
   */
  get handle(): MutexHandle {
    return lockHandle("Mutex", this.#block);
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
   *
   * @throws {OwnerDeadError} with the lock held by the caller, when the previous holder's
   * thread died holding it, or when a holder died holding it at some time before and nobody
   * has called {@linkcode markConsistent} since: unlocking without it leaves the lock poisoned,
   * so every later `lock()` throws again, also in a thread that has locked and unlocked it
   * since. Such an error's `threadId` is -1, and its message says the lock is still marked
   * inconsistent from that death.
   * @throws {Error} if the calling thread already holds the lock.
   */
  lock(): void {
    // One compare-exchange that takes the lock and records the owner; the rest is out of line.
    // The owner word comes from this object: on V8 that load is cheaper than `fast.owner`. No
    // census check: this thread runs no JavaScript after terminate() (census.ts,
    // mayRunTerminated: Node's workers, every main thread); a thread that can has the `lock` of
    // the static block below.
    if (Atomics.compareExchange(this.#block, LOCK_BASE, 0, this.#mine) !== 0) this.#lockSlow();
  }

  // In a thread that can run after `terminate()` (a Deno or Bun worker), `lock` is this instead:
  // checkAlive's fast path written out first (census.ts, `fast`: a plain read of the census
  // count), so that such a zombie throws TerminatedError rather than take the lock. It costs
  // about 1 ns a lock (docs/design.md, "Deno's zombies"). A method, as `lock` is: not a
  // constructor.
  static {
    if (mayRunTerminated) {
      const { lock } = {
        lock(this: Mutex): void {
          const f = fast;
          const mine = this.#mine;
          if (f.head[C_COUNT] !== f.liveSeen || mine === NO_WORD) {
            this.#lockSlow();
          } else if (Atomics.compareExchange(this.#block, LOCK_BASE, 0, mine) !== 0) {
            acquire(this.#block, mine >>> OWNER_SHIFT, true);
          }
        },
      };
      Object.defineProperty(this.prototype, "lock", { value: lock });
    }
  }

  // In a thread that can learn it was terminated (census.ts mayBeTerminated: any worker),
  // `unlock` is this instead: a zombie's unlock, typically in the `finally` of a section that a
  // TerminatedError cut short, must not hand the lock on clean, or the next holder would take
  // the data it guards half-written without an OwnerDeadError. It releases the lock poisoned:
  // the section is over (the zombie is leaving it), so the next lock() gets it at once, with
  // OwnerDeadError, rather than wait for a thread that may run on in code of its own for good.
  // About 1 ns an unlock on Deno, which a main thread does not pay.
  static {
    if (mayBeTerminated) {
      const { unlock } = {
        unlock(this: Mutex): void {
          if (fast.stopped) poisonHeld(this.#block, LOCK_BASE, ownerId());
          const block = this.#block;
          const mine = this.#mine;
          const w = Atomics.compareExchange(block, LOCK_BASE, mine, 0);
          if (w !== mine) unlockWordSlow(block, LOCK_BASE, ownerId(), w);
        },
      };
      Object.defineProperty(this.prototype, "unlock", { value: unlock });
    }
  }

  /**
   * {@linkcode lock} past its fast path: on this object's first lock, when the lock is taken,
   * or (in a thread that can run after `terminate()`) when the census moved. Checks that this
   * thread is alive first.
   */
  #lockSlow(): void {
    const me = liveOwnerIdSlowAtEntry();
    this.#mine = me << OWNER_SHIFT;
    if (Atomics.compareExchange(this.#block, LOCK_BASE, 0, me << OWNER_SHIFT) !== 0) {
      acquire(this.#block, me, true);
    }
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
   * @throws {OwnerDeadError} with the lock held by the caller, as {@linkcode lock}.
   */
  tryLock(): boolean {
    return acquire(this.#block, liveOwnerIdAtEntry(), false);
  }

  /**
   * Unlocks the mutex, waking one waiting thread if there is any. Only the thread that holds
   * the lock may unlock it.
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
   * @throws {Error} `sync: unlock of unlocked mutex` if the mutex is not locked, or
   * `sync: unlock of a mutex held by another thread (only the holder may unlock it)` if another
   * thread holds it; the lock is left as it was either way.
   *
   * In a worker that was terminated and has learned it (a call of shmap threw
   * `TerminatedError`), the lock is released poisoned: the section it guards was cut short, so
   * the next `lock()` throws {@linkcode OwnerDeadError}.
   */
  unlock(): void {
    // unlockWord's fast path, written out: one compare-exchange from exactly `mine`, so that a
    // word with CONTENDED or POISONED set, or held by another thread, or free, goes the slow
    // way, which wakes a sleeper, keeps POISONED, or throws. NO_WORD is never a lock word. A
    // plain read of the word and then an exchange (releaseWord's way, futex.ts) is the other
    // choice: on Intel it cost lock+unlock 1.07x to 1.15x f80971c's on Deno (seven runs) against
    // 1.00x to 1.06x for this (median 1.025), and Bun 1.4x against 1.06x; on AMD, Deno ran it
    // 0.97x to 1.00x against 0.99x to 1.07x for this.
    const block = this.#block;
    const mine = this.#mine;
    const w = Atomics.compareExchange(block, LOCK_BASE, mine, 0);
    if (w !== mine) unlockWordSlow(block, LOCK_BASE, ownerId(), w);
  }

  /**
   * Declares the data this lock guards consistent again after an {@linkcode OwnerDeadError}
   * (POSIX's `pthread_mutex_consistent`). Call it while holding the lock, after the repair.
   *
   * @example
   * ```ts
   * import { Mutex } from "@shmap/shmap";
   *
   * const mu = new Mutex();
   * mu.lock();
   * mu.markConsistent(); // harmless when the lock was not poisoned
   * mu.unlock();
   * ```
   *
   * @throws {Error} if the calling thread does not hold the lock.
   * @throws {TerminatedError} if this thread was terminated (the poison stays).
   */
  markConsistent(): void {
    clearPoison(this.#block, LOCK_BASE, liveOwnerId());
  }

  /**
   * Whether a holder died with the lock and nobody has marked it consistent since.
   *
   * @example
   * ```ts
   * import { Mutex } from "@shmap/shmap";
   *
   * console.log(new Mutex().poisoned); // false
   * ```
   */
  get poisoned(): boolean {
    // Also while its dead holder has not been taken over yet: the next lock() will be.
    const w = Atomics.load(this.#block, LOCK_BASE);
    return (w & POISONED) !== 0 || (ownerOf(w) !== 0 && ownerGone(ownerOf(w)));
  }

  /** "Mutex". */
  get [Symbol.toStringTag](): string {
    return "Mutex";
  }

  /** The holder's thread id, or -1 when unlocked (for inspection). */
  get #holder(): number {
    return ownerOf(Atomics.load(this.#block, LOCK_BASE)) - 1;
  }

  // What `console.log` shows, in every runtime: `Mutex { unlocked }`,
  // `Mutex { locked by thread 3 }`.
  static {
    defineInspect(this.prototype, (m, request) => inspectLock(request, "Mutex", () => m.#state()));
  }

  #state(): string {
    const holder = this.#holder;
    return `${holder < 0 ? "unlocked" : `locked by thread ${holder}`}${
      this.poisoned ? ", poisoned" : ""
    }`;
  }
}
