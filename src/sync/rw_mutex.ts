/**
 * A reader/writer mutual exclusion lock that works across workers, like Go's `sync.RWMutex`,
 * and survives the death of a reader or of the writer.
 *
 * @module
 */

import { checkNumber } from "../_describe.ts";
import {
  fast,
  liveOwnerId,
  liveOwnerIdAtEntry,
  mayBeTerminated,
  ownerId,
} from "../_engine/census.ts";
import * as census_module from "../_engine/census.ts";
import { clearPoison, poisonHeld } from "../_engine/futex.ts";
import * as futex from "../_engine/futex.ts";
import {
  attachLockBlock,
  LockAttachment,
  lockHandle,
  newLockBlock,
  ownerDead,
} from "../_engine/lock_block.ts";
import * as lock_block from "../_engine/lock_block.ts";
import {
  highMarkValid,
  initRw,
  lock,
  lockFast,
  ownSeat,
  readers,
  readerSeat,
  rLockFirst,
  rUnlock,
  rwPoisoned,
  rwSeats,
  rwWords,
  tryLock,
  tryRLock,
  unlock,
  unlockFast,
  writerWord,
} from "../_engine/rw_lock.ts";
import * as rw_lock from "../_engine/rw_lock.ts";
import { OwnerDeadError } from "../errors.ts";
import { defineInspect, inspectLock } from "../_inspect.ts";
import { checkOptions } from "../_options.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const C_COUNT = census_module.C_COUNT;
const ACQUIRED = futex.ACQUIRED;
const ACQUIRED_POISONED = futex.ACQUIRED_POISONED;
const NOT_ACQUIRED = futex.NOT_ACQUIRED;
const OWNER_SHIFT = futex.OWNER_SHIFT;
const POISONED = futex.POISONED;
const LOCK_BASE = lock_block.LOCK_BASE;
const COUNT_MASK = rw_lock.COUNT_MASK;
const DRAIN = rw_lock.DRAIN;
const MAX_READS = rw_lock.MAX_READS;
const WRITER_MU = rw_lock.WRITER_MU;

/**
 * A structured-cloneable reference to an {@linkcode RWMutex}, made by
 * {@linkcode RWMutex.prototype.handle} and turned back into an `RWMutex` by
 * {@linkcode RWMutex.attach}.
 *
 * @example Posting a handle to a worker
 * ```ts
 * import { RWMutex, type RWMutexHandle } from "@shmap/shmap";
 *
 * const rw = new RWMutex();
 * const handle: RWMutexHandle = rw.handle;
 * const copy = structuredClone({ rw: handle }); // what a worker receives from postMessage
 * console.log(RWMutex.attach(copy.rw).tryRLock()); // true
 * ```
 */
export interface RWMutexHandle {
  /** Always `"RWMutex"`. */
  readonly kind: "RWMutex";
  /** The shared memory the lock lives in. */
  readonly buffer: SharedArrayBuffer;
  /** Where in `buffer` the lock starts, in bytes. */
  readonly byteOffset: number;
  /** The census of ended threads of the process that made the lock (internal). */
  readonly census?: SharedArrayBuffer;
}

/**
 * Options for {@linkcode RWMutex}.
 *
 * @example
 * ```ts
 * import { RWMutex } from "@shmap/shmap";
 *
 * const rw = new RWMutex({ maxReaderThreads: 256 });
 * ```
 */
export interface RWMutexOptions {
  /**
   * How many threads may read the lock over its life, each taking a reader seat (64 bytes) on
   * its first `rLock`; a gone thread's seat is reused. Default 64.
   */
  maxReaderThreads?: number;
}

const DEFAULT_READER_THREADS = 64;
const MAX_READER_THREADS = 65536;
/**
 * The writer mutex's word in the lock block, whose POISONED is the lock's. One constant: written
 * out as `LOCK_BASE + WRITER_MU`, it costs `rLock`'s fast path bytecode, which V8 counts against
 * the budget to which it inlines a caller's calls.
 */
const WRITER_WORD = LOCK_BASE + WRITER_MU;

/**
 * A reader/writer mutual exclusion lock in shared memory, usable from every worker (and the
 * main thread) that holds it. Any number of readers may hold it at once, or one writer. The
 * semantics are those of Go's `sync.RWMutex`:
 *
 * - It is writer-preferring: once a writer waits in {@linkcode RWMutex.prototype.lock},
 *   new readers block (and {@linkcode RWMutex.prototype.tryRLock} fails) until that writer
 *   has had its turn, so a steady stream of readers cannot starve writers. It follows that
 *   read locks are not reentrant: a reader that calls `rLock()` again while a writer waits
 *   would wait for that writer, which waits for it. Go deadlocks there; this lock throws an
 *   `Error` instead, as it does for `lock()` by a thread holding a read lock and `rLock()` by
 *   the thread holding the write lock (each wait would never end, and would hold every other
 *   thread up).
 * - When a writer unlocks, readers that were waiting get in before the next writer.
 *
 * And, as {@linkcode Mutex}, it survives dead threads: the lock records which threads hold it
 * (each reading thread counts its read locks in a seat of its own), so only a holder may
 * unlock, the read locks of a thread that died are released, and when the writer's thread died
 * holding the write lock, the next acquisition (read or write) takes it over and throws
 * {@linkcode OwnerDeadError} while holding the lock. A writer repairs the data and calls
 * {@linkcode RWMutex.prototype.markConsistent}; until then every acquisition reports the
 * poisoning. Death is learned from the worker adapters or `threadGone()`, never guessed.
 *
 * Costs: `rLock()` is one atomic add and `rUnlock()` one atomic subtract, on the reading
 * thread's own cache line (readers on different cores do not contend); `lock()` is a
 * compare-and-swap, an `or`, and an `or` on each reader seat in use (`unlock()` an `and` on
 * each of those seats, an `and` and an exchange). A blocked call spins briefly, then sleeps with
 * `Atomics.wait` (allowed on the main thread by Deno, Bun and Node).
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
  /** The lock block; the reader/writer words start at {@linkcode LOCK_BASE}. */
  readonly #block: Int32Array<SharedArrayBuffer>;
  /** This thread's reader seat (its count word), claimed on the first read lock. */
  #seat = 0;
  /**
   * {@linkcode #seat} once a read lock through it has succeeded with the first lock's
   * handshake (rw_lock.ts): from then on every writer flags it, and read locks take the fast
   * path. 0 before.
   */
  #readSeat = 0;
  /**
   * This thread's owner word (its owner id shifted into place, as the writer mutex word holds
   * it), or 0 until this object's first write lock or unlock: an object lives in one thread's
   * heap, and a thread's owner id never changes.
   */
  #mine = 0;

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
   *
   * @param options How many threads may read it (default 64).
   * @throws {TypeError} for options that are not an object or that it does not know.
   * @throws {TypeError} for a `maxReaderThreads` that is not a number.
   * @throws {RangeError} for a `maxReaderThreads` that is not an integer in [1, 65536].
   */
  constructor(options: RWMutexOptions = {}) {
    if (options instanceof LockAttachment) {
      this.#block = options.block;
      return;
    }
    const checked = checkOptions(options, ["maxReaderThreads"], "RWMutex options");
    const seats = checked.maxReaderThreads === undefined
      ? DEFAULT_READER_THREADS
      : checked.maxReaderThreads;
    checkNumber(seats, "maxReaderThreads");
    if (!Number.isInteger(seats) || seats < 1 || seats > MAX_READER_THREADS) {
      throw new RangeError(
        `maxReaderThreads must be an integer in [1, ${MAX_READER_THREADS}], got ${seats}`,
      );
    }
    this.#block = newLockBlock("RWMutex", rwWords(seats));
    initRw(this.#block, LOCK_BASE, seats);
  }

  /**
   * Returns an `RWMutex` over the same shared memory as the lock `handle` was taken from,
   * typically in another worker.
   *
   * @example Attaching to a lock made elsewhere
   * ```ts
   * import { RWMutex } from "@shmap/shmap";
   *
   * const rw = new RWMutex();
   * const same = RWMutex.attach(structuredClone(rw.handle)); // as a worker would
   * same.rLock();
   * console.log(rw.tryLock()); // false: a reader holds it
   * same.rUnlock();
   * ```
   *
   * @param handle The value of {@linkcode RWMutex.prototype.handle}, possibly after a trip
   * through `postMessage`.
   * @returns A reader/writer mutex sharing its state with the original.
   * @throws {TypeError} if `handle` is not a valid `RWMutex` handle.
   */
  static attach(handle: RWMutexHandle): RWMutex {
    const block = attachLockBlock(handle, "RWMutex");
    if (
      rwSeats(block, LOCK_BASE) < 1 ||
      rwWords(rwSeats(block, LOCK_BASE)) + LOCK_BASE !== block.length
    ) {
      throw new TypeError("RWMutex.attach: the lock is corrupt (bad reader seat count)");
    }
    if (!highMarkValid(block, LOCK_BASE)) {
      throw new TypeError("RWMutex.attach: the lock is corrupt (more seats claimed than it has)");
    }
    return new RWMutex(new LockAttachment(block) as RWMutexOptions);
  }

  /**
   * A structured-cloneable handle to this lock, to pass to {@linkcode RWMutex.attach} in
   * another worker.
   *
   * @example
   * ```ts
   * import { RWMutex } from "@shmap/shmap";
   *
   * console.log(new RWMutex().handle.kind); // "RWMutex"
   * ```
   *
   * @returns A plain object `{ kind: "RWMutex", buffer, byteOffset, census }`.
   */
  get handle(): RWMutexHandle {
    return lockHandle("RWMutex", this.#block);
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
   *
   * @throws {OwnerDeadError} holding the write lock, when a writer died holding it and nobody
   * has marked it consistent since.
   */
  lock(): void {
    // lockFast from this object's owner word, with no census check, as Mutex.lock: a main
    // thread is never terminated; a worker has the `lock` of the static block below. An object
    // that has not learnt its owner word yet, or finds the lock held or read-locked, goes the
    // long way, where the OwnerDeadError of a poisoned lock comes from rw_lock.ts, inside the
    // step that took the lock, so that a stack overflow as it is made backs the writer out.
    const mine = this.#mine;
    if (mine === 0 || !lockFast(this.#block, LOCK_BASE, mine)) this.#lockSlow();
  }

  // In a worker (census.ts mayBeTerminated), `lock` is this instead: the census check first
  // (liveOwnerId's test, census.ts `fast`, no call), so that a worker marked terminating throws
  // TerminatedError from #lockSlow rather than take the lock, as `rLock`'s static block.
  static {
    if (mayBeTerminated) {
      const { lock } = {
        lock(this: RWMutex): void {
          const f = fast;
          const mine = this.#mine;
          if (
            f.head[C_COUNT] !== f.liveSeen || mine === 0 ||
            !lockFast(this.#block, LOCK_BASE, mine)
          ) this.#lockSlow();
        },
      };
      Object.defineProperty(this.prototype, "lock", { value: lock });
    }
  }

  /** {@linkcode lock} past its fast path: the census checked, the owner word noted, the long way. */
  #lockSlow(): void {
    const me = liveOwnerIdAtEntry();
    this.#mine = me << OWNER_SHIFT;
    lock(this.#block, LOCK_BASE, me);
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
   * @throws {OwnerDeadError} holding the write lock, as {@linkcode lock}.
   */
  tryLock(): boolean {
    return tryLock(this.#block, LOCK_BASE, liveOwnerIdAtEntry()); // OwnerDeadError as in lock
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
   * @throws {Error} if the calling thread does not hold the write lock; the lock is left as
   * it was.
   *
   * In a worker that was terminated and has learned it, the write lock is released poisoned, as
   * `Mutex.unlock` says.
   */
  unlock(): void {
    if (!unlockFast(this.#block, LOCK_BASE, this.#mine)) this.#unlockSlow();
  }

  /** {@linkcode unlock} past its fast path; notes this thread's owner word for the next. */
  #unlockSlow(): void {
    const me = ownerId();
    this.#mine = me << OWNER_SHIFT;
    unlock(this.#block, LOCK_BASE, me);
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
   *
   * @throws {OwnerDeadError} holding a read lock, when a writer died holding the lock and
   * nobody has marked it consistent since.
   * @throws {RangeError} when the calling thread has no reader seat and every seat
   * (`maxReaderThreads`) belongs to another live thread (a thread keeps the seat of its first
   * read lock until it ends, holding a read lock or not); while a seat's thread is ending, after
   * a wait of up to twice the 250 ms grace for the seat to come back.
   */
  rLock(): void {
    // The fast path, written out as Mutex.lock's is: an object whose seat has made the first
    // lock's handshake (rw_lock.ts rLockFirst's doc) adds one on its seat, then reads the poison
    // bit. From the add on, no call of ours while the add counts and the caller does not know
    // it holds the read lock (a call's entry is where a stack overflow throws): turned away by
    // a writer, or poisoned, the add is taken back out here, written out, and #rLockSlow takes
    // the read lock from the start. Kept small (V8 inlines a caller's calls up to a shared
    // bytecode budget: with the slow paths in it, this was left a call beside a GoMap get). No
    // census check: a main thread is never terminated (census.ts, mayBeTerminated); a worker
    // has the `rLock` of the static block below.
    const seat = this.#readSeat;
    if (seat !== 0) {
      const block = this.#block;
      if (
        Atomics.add(block, seat, 1) < MAX_READS &&
        (block[WRITER_WORD] & POISONED) === 0
      ) return;
      if ((Atomics.sub(block, seat, 1) & COUNT_MASK) === 1) {
        Atomics.add(block, LOCK_BASE + DRAIN, 1);
        Atomics.notify(block, LOCK_BASE + DRAIN);
      }
    }
    this.#rLockSlow();
  }

  // In a worker (census.ts mayBeTerminated), `rLock` is this instead: the census check first
  // (liveOwnerId's test, census.ts `fast`, no call), so that a worker marked terminating throws
  // TerminatedError from #rLockSlow rather than take a read lock (on Node too, where it may run
  // between its adapter's mark and `terminate()`: tests/zombie_test.ts). A main thread is
  // spared it: 1.6 ns of a 16 ns rLock+rUnlock on Bun (same run).
  static {
    if (mayBeTerminated) {
      const { rLock } = {
        rLock(this: RWMutex): void {
          const f = fast;
          const seat = this.#readSeat;
          if (seat !== 0 && f.head[C_COUNT] === f.liveSeen) {
            const block = this.#block;
            if (
              Atomics.add(block, seat, 1) < MAX_READS &&
              (block[WRITER_WORD] & POISONED) === 0
            ) return;
            if ((Atomics.sub(block, seat, 1) & COUNT_MASK) === 1) {
              Atomics.add(block, LOCK_BASE + DRAIN, 1);
              Atomics.notify(block, LOCK_BASE + DRAIN);
            }
          }
          this.#rLockSlow();
        },
      };
      Object.defineProperty(this.prototype, "rLock", { value: rLock });
    }
  }

  /**
   * {@linkcode rLock} past its fast path, holding nothing yet: the census checked (a thread
   * marked terminating throws TerminatedError here), the seat claimed if need be, and the read
   * lock taken as a first lock takes it (rw_lock.ts rLockFirst, which waits out a writer).
   */
  #rLockSlow(): void {
    const me = liveOwnerIdAtEntry();
    const seat = this.#readerSeat(me);
    const status = rLockFirst(this.#block, LOCK_BASE, seat, me);
    this.#readSeat = seat;
    if (status === ACQUIRED) return;
    // Poisoned: the caller holds the read lock and learns it from the OwnerDeadError. If that
    // cannot be made (a stack overflow can throw from any call, ownerDead's entry included),
    // the read lock is given back, written out, and the overflow goes on: the caller would
    // otherwise hold a read lock without knowing. The same in tryRLock.
    try {
      throw ownerDead("RWMutex", this.#block, WRITER_WORD);
    } catch (error) {
      if (!(error instanceof OwnerDeadError)) {
        const block = this.#block;
        if ((Atomics.sub(block, seat, 1) & COUNT_MASK) === 1) {
          Atomics.add(block, LOCK_BASE + DRAIN, 1);
          Atomics.notify(block, LOCK_BASE + DRAIN);
        }
      }
      throw error;
    }
  }

  /**
   * Tries to lock for reading without waiting for a writer. Fails when a writer holds the lock
   * or is waiting for it. A thread's first read lock also claims a reader seat, as
   * {@linkcode rLock}'s does: with every seat taken, it throws rather than fail (and while a
   * seat's thread is ending, it waits for that seat up to twice the 250 ms grace first).
   *
   * @example Readers share, writers exclude
   * ```ts
   * import { RWMutex } from "@shmap/shmap";
   * import assert from "node:assert/strict";
   *
   * const rw = new RWMutex();
   * assert.equal(rw.tryRLock(), true);
   * assert.equal(rw.tryRLock(), true); // a second read lock
   * rw.rUnlock();
   * rw.rUnlock();
   *
   * rw.lock();
   * assert.equal(rw.tryRLock(), false);
   * rw.unlock();
   * ```
   *
   * @returns `true` if the caller now holds a read lock.
   * @throws {OwnerDeadError} holding a read lock, as {@linkcode rLock}.
   * @throws {RangeError} when the calling thread has no reader seat and every seat
   * (`maxReaderThreads`) belongs to another live thread, as {@linkcode rLock}: not `false`.
   */
  tryRLock(): boolean {
    const seat = this.#readerSeat(liveOwnerIdAtEntry());
    const status = tryRLock(this.#block, LOCK_BASE, seat);
    // tryRLock makes the first lock's handshake: a read lock it gives opens the fast path.
    if (status !== NOT_ACQUIRED) this.#readSeat = seat;
    if (status !== ACQUIRED_POISONED) return status === ACQUIRED;
    try {
      throw ownerDead("RWMutex", this.#block, WRITER_WORD);
    } catch (error) {
      // As in rLock: a read lock whose OwnerDeadError cannot be made is given back.
      if (!(error instanceof OwnerDeadError)) {
        const block = this.#block;
        if ((Atomics.sub(block, seat, 1) & COUNT_MASK) === 1) {
          Atomics.add(block, LOCK_BASE + DRAIN, 1);
          Atomics.notify(block, LOCK_BASE + DRAIN);
        }
      }
      throw error;
    }
  }

  /**
   * Releases one read lock of the calling thread. When the last reader leaves while a writer
   * waits, the writer is woken.
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
   * @throws {Error} `sync: RUnlock of unlocked RWMutex` if the calling thread holds no read
   * lock; the lock is left as it was.
   */
  rUnlock(): void {
    const seat = this.#seat;
    if (seat !== 0) rUnlock(this.#block, LOCK_BASE, seat, fast.owner);
    else this.#rUnlockUnseated();
  }

  /**
   * {@linkcode rUnlock} by an object that has no seat yet: another object of this thread may
   * hold the read lock. Its seat is looked up without claiming one, so that an rUnlock without
   * a read lock leaves every word as it was.
   */
  #rUnlockUnseated(): void {
    const id = ownerId();
    const own = ownSeat(this.#block, LOCK_BASE, id);
    if (own === 0) throw new Error("sync: RUnlock of unlocked RWMutex");
    rUnlock(this.#block, LOCK_BASE, this.#seat = own, id);
  }

  /**
   * Declares the data this lock guards consistent again after an {@linkcode OwnerDeadError}.
   * Call it while holding the write lock, after the repair.
   *
   * @example
   * ```ts
   * import { RWMutex } from "@shmap/shmap";
   *
   * const rw = new RWMutex();
   * rw.lock();
   * rw.markConsistent(); // harmless when the lock was not poisoned
   * rw.unlock();
   * ```
   *
   * @throws {Error} if the calling thread does not hold the write lock.
   * @throws {TerminatedError} if this thread was terminated (the poison stays).
   */
  markConsistent(): void {
    clearPoison(this.#block, writerWord(LOCK_BASE), liveOwnerId());
  }

  /**
   * Whether a writer died holding the lock and nobody has marked it consistent since.
   *
   * @example
   * ```ts
   * import { RWMutex } from "@shmap/shmap";
   *
   * console.log(new RWMutex().poisoned); // false
   * ```
   */
  get poisoned(): boolean {
    return rwPoisoned(this.#block, LOCK_BASE);
  }

  /** "RWMutex". */
  get [Symbol.toStringTag](): string {
    return "RWMutex";
  }

  // In a thread that can learn it was terminated (census.ts mayBeTerminated), `unlock` is this
  // instead: a zombie's release of the write lock poisons it first, as Mutex's static block says
  // (a zombie's read lock is released as any: a reader's section writes nothing it guards). The
  // rest of the body is the method's, written out again.
  static {
    if (mayBeTerminated) {
      const { unlock } = {
        unlock(this: RWMutex): void {
          if (fast.stopped) poisonHeld(this.#block, writerWord(LOCK_BASE), ownerId());
          if (!unlockFast(this.#block, LOCK_BASE, this.#mine)) this.#unlockSlow();
        },
      };
      Object.defineProperty(this.prototype, "unlock", { value: unlock });
    }
  }

  // What `console.log` shows, in every runtime: `RWMutex { unlocked }`,
  // `RWMutex { read-locked (2) }` (read locks held, over all threads),
  // `RWMutex { write-locked by thread 3 }`.
  static {
    defineInspect(
      this.prototype,
      (m, request) => inspectLock(request, "RWMutex", () => m.#state()),
    );
  }

  #state(): string {
    const writer = (Atomics.load(this.#block, writerWord(LOCK_BASE)) >>> OWNER_SHIFT) - 1;
    const reading = readers(this.#block, LOCK_BASE);
    const state = writer >= 0
      ? `write-locked by thread ${writer}`
      : reading > 0
      ? `read-locked (${reading})`
      : "unlocked";
    return `${state}${this.poisoned ? ", poisoned" : ""}`;
  }

  #readerSeat(me: number): number {
    if (this.#seat !== 0) return this.#seat;
    return this.#seat = readerSeat(this.#block, LOCK_BASE, me);
  }
}
