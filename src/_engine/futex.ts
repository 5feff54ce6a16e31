// Copyright the shmap authors. MIT license.
/**
 * Futex-style locks over words of shared memory.
 *
 * Internal to shmap: nothing here is part of the public API, and any of it may change
 * without notice. The public `Mutex` and `RWMutex` classes are thin shells over these
 * functions, and the engine calls them directly to keep locks inside its own memory region.
 *
 * Every lock is a few consecutive 32-bit words of an `Int32Array` over a
 * `SharedArrayBuffer`, addressed by the index of its first word. All state changes are
 * `Atomics` read-modify-writes, which are sequentially consistent in JavaScript, so taking a
 * lock happens-before everything done under it, and releasing a lock happens-before the
 * next acquisition. Data guarded by a lock may therefore be read and written plainly.
 *
 * Sleeping uses `Atomics.wait`, which re-checks the word it sleeps on and enqueues the
 * caller in one step that `Atomics.notify` cannot interleave with. So a waiter that saw the
 * old value is either woken by the notify that follows the change, or refuses to sleep
 * because the value already changed: no wake-up is lost as long as every change a sleeper
 * waits for is followed by a notify on the word it sleeps on. The comments below point out
 * where each notify comes from.
 *
 * `Atomics.wait` blocks the calling agent. Deno, Bun and Node allow that on the main
 * thread; browsers do not (it throws there).
 *
 * @module
 */

import { describe, withArticle } from "../_describe.ts";

/** Number of `Int32Array` words a mutex occupies. */
export const MUTEX_WORDS = 1;

/**
 * Number of `Int32Array` words a reader/writer mutex occupies:
 * `[state, writer mutex, drain sequence]`.
 */
export const RWMUTEX_WORDS = 3;

// ---------------------------------------------------------------------------------------
// Spinning

/**
 * How many times a blocked caller re-reads the word before going to sleep. Critical
 * sections guarded by these locks are short (a hash-table probe, a counter bump), so a
 * holder on another core usually releases within a few hundred nanoseconds, far less than
 * the cost of a sleep and a wake-up.
 */
const SPIN = 100;

type PauseFn = (iterationNumber?: number) => void;
const atomicsPause: PauseFn | undefined = (Atomics as { pause?: PauseFn }).pause;

/**
 * A hint to the CPU that we are busy-waiting. `Atomics.pause` is recent (Node 20 lacks it),
 * so it is feature-tested once; without it the spin loop simply re-reads the word.
 */
const relax: () => void = typeof atomicsPause === "function"
  ? atomicsPause.bind(Atomics)
  : () => {};

// ---------------------------------------------------------------------------------------
// Mutex
//
// One word, after Ulrich Drepper's "Futexes Are Tricky" (mutex #3):
//
//   0  unlocked
//   1  locked, no agent sleeping on the word
//   2  locked, some agent may be sleeping on the word
//
// Invariant: while any agent sleeps on the word, the word is 2 or an unlock that will
// notify is in progress. An agent only sleeps after writing 2 itself (exchange) and
// `Atomics.wait(…, 2)` refuses to sleep if the word moved on. Unlock swaps in 0 and
// notifies only if it swapped out 2; the woken agent writes 2 again before it can sleep,
// so the mark is never lost while others still sleep. State 2 is sticky on purpose: an
// agent that acquired through the slow path cannot know whether others still sleep, so it
// keeps the mark and pays for one possibly useless notify on unlock.

const UNLOCKED = 0;
const LOCKED = 1;
const CONTENDED = 2;

/**
 * Acquires the mutex at `i32[index]`, blocking until it is available.
 * Uncontended cost: one `compareExchange`.
 */
export function lockWord(i32: Int32Array, index: number): void {
  if (Atomics.compareExchange(i32, index, UNLOCKED, LOCKED) === UNLOCKED) return;
  lockWordSlow(i32, index);
}

function lockWordSlow(i32: Int32Array, index: number): void {
  // Spin while the holder is likely to release soon. Only try the CAS when the word reads
  // 0, so spinners do not keep stealing the cache line from the holder.
  for (let i = 0; i < SPIN; i++) {
    if (
      Atomics.load(i32, index) === UNLOCKED &&
      Atomics.compareExchange(i32, index, UNLOCKED, LOCKED) === UNLOCKED
    ) {
      return;
    }
    relax();
  }
  // Announce that someone (us) may sleep. If the exchange returns 0 we have taken the lock,
  // with the word left at 2: see the invariant above.
  while (Atomics.exchange(i32, index, CONTENDED) !== UNLOCKED) {
    Atomics.wait(i32, index, CONTENDED);
  }
}

/**
 * Tries to acquire the mutex at `i32[index]` without blocking. Cost: one `compareExchange`.
 */
export function tryLockWord(i32: Int32Array, index: number): boolean {
  return Atomics.compareExchange(i32, index, UNLOCKED, LOCKED) === UNLOCKED;
}

/**
 * Releases the mutex at `i32[index]`. Cost: one `exchange`, plus a notify only when some
 * agent may be sleeping.
 *
 * @throws {Error} if the mutex is not locked; the word is left unlocked.
 */
export function unlockWord(i32: Int32Array, index: number): void {
  // `exchange` rather than `sub`: an unlock of an unlocked word then changes nothing, so
  // the error below leaves no transient bad value that a concurrent locker could see.
  const prev = Atomics.exchange(i32, index, UNLOCKED);
  if (prev === LOCKED) return;
  if (prev === CONTENDED) {
    Atomics.notify(i32, index, 1);
    return;
  }
  throw new Error("sync: unlock of unlocked mutex");
}

// ---------------------------------------------------------------------------------------
// RWMutex
//
// Three words starting at `index`:
//
//   index + 0  state: WRITER (bit 0) | READERS_WAITING (bit 1) | readers << 2
//   index + 1  writer mutex: a mutex word as above, serialising writers
//   index + 2  drain sequence: bumped by whoever takes the reader count to 0 while WRITER
//              is set, so a writer waiting for readers to leave can sleep on it
//
// The reader count sits above the two flag bits, so adding or subtracting ONE_READER never
// disturbs the flags, even when an unbalanced RUnlock briefly takes the count below zero
// (see rUnlockWords). The count is read with an arithmetic shift (`state >> 2`). It cannot
// overflow: that would take 2^29 read locks held at once.
//
// Readers enter optimistically, as in Go: `Atomics.add(state, ONE_READER)`, one atomic
// whatever the number of other readers. If the value before the add had WRITER clear, the
// reader is in. Otherwise it was refused: it takes its increment back out (which may be
// what lets the count reach 0, so it follows the same rule as RUnlock, below) and waits
// for WRITER to clear before trying again. A refused reader's increment is transient and
// never lets it into the critical section.
//
// WRITER is set by the one writer holding the writer mutex, from the moment it starts to
// wait for readers until it unlocks. While it is set no new reader gets in, so the real
// readers can only leave: this makes the lock writer-preferring, like Go's, and keeps a
// stream of readers from starving writers. Each real reader's increment happened before
// the writer's `or` (or it would have seen WRITER), so the count the writer waits on covers
// every reader inside, and reaches 0 only once all of them, and every refused reader's
// transient increment, are gone. The writer then owns the lock. A writer's unlock clears
// WRITER before it releases the writer mutex, so readers that were blocked by it get in
// ahead of the next writer, which keeps writers from starving readers too.
//
// Holding the writer mutex implies WRITER and READERS_WAITING are clear: the previous
// writer cleared both, in one atomic `and`, before releasing it.
//
// READERS_WAITING is set (by CAS) by a reader about to sleep on the state word because
// WRITER is set; it is only ever set together with WRITER. The writer's unlock notifies the
// state word only if it was set. A reader that set the bit sleeps only if the state still
// has WRITER set when it goes to sleep (Atomics.wait compares), so the unlock that clears
// WRITER comes after, sees the bit and wakes it. With no reader waiting, a writer's unlock
// makes no notify call.
//
// The draining writer sleeps on the separate drain word, so readers and the writer never
// share a wait queue and each notify wakes exactly whom it is meant for. The writer reads
// the drain word before it reads `state`; the agent whose decrement takes the count from 1
// to 0 under WRITER bumps the drain word after that decrement and then notifies it. If the
// writer saw a count above 0, that decrement and bump both come after its read of the
// drain word, so its wait either sees a changed drain word or is woken by the notify.

const WRITER = 1;
const READERS_WAITING = 2;
const ONE_READER = 4;
const READER_SHIFT = 2;

/**
 * Called by whoever just took one reader out of `state`, with the value before that
 * decrement: wakes the waiting writer if this was the last reader it was waiting for.
 */
function readerGone(i32: Int32Array, index: number, prev: number): void {
  if ((prev & WRITER) !== 0 && prev >> READER_SHIFT === 1) {
    Atomics.add(i32, index + 2, 1);
    Atomics.notify(i32, index + 2, 1);
  }
}

/**
 * Acquires the reader/writer mutex at `i32[index…]` for reading, blocking while a writer
 * holds it or waits for it. Uncontended cost: one `add`, with or without other readers.
 */
export function rLockWords(i32: Int32Array, index: number): void {
  if ((Atomics.add(i32, index, ONE_READER) & WRITER) === 0) return;
  rLockSlow(i32, index);
}

function rLockSlow(i32: Int32Array, index: number): void {
  let spins = 0;
  for (;;) {
    // Refused: a writer holds the lock or waits for it. Take the increment back out.
    readerGone(i32, index, Atomics.sub(i32, index, ONE_READER));
    // Wait for WRITER to clear, then try again.
    for (;;) {
      let s = Atomics.load(i32, index);
      if ((s & WRITER) === 0) break;
      if (spins < SPIN) {
        spins++;
        relax();
        continue;
      }
      if ((s & READERS_WAITING) === 0) {
        if (Atomics.compareExchange(i32, index, s, s | READERS_WAITING) !== s) continue;
        s |= READERS_WAITING;
      }
      // Sleeps only if WRITER and READERS_WAITING are still set (and the count is as
      // read); the writer's unlock then notifies (see above). A changed count only makes
      // this return early, and the loop re-reads.
      Atomics.wait(i32, index, s);
    }
    if ((Atomics.add(i32, index, ONE_READER) & WRITER) === 0) return;
  }
}

/**
 * Tries to acquire the reader/writer mutex at `i32[index…]` for reading without blocking.
 * Fails if a writer holds it or is waiting for it. Uncontended cost: one `add`.
 */
export function tryRLockWords(i32: Int32Array, index: number): boolean {
  if ((Atomics.add(i32, index, ONE_READER) & WRITER) === 0) return true;
  readerGone(i32, index, Atomics.sub(i32, index, ONE_READER));
  return false;
}

/**
 * Releases one read lock of the reader/writer mutex at `i32[index…]`. Uncontended cost:
 * one `sub`.
 *
 * @throws {Error} if no read lock is held; the lock is left as it was.
 */
export function rUnlockWords(i32: Int32Array, index: number): void {
  const prev = Atomics.sub(i32, index, ONE_READER);
  if (prev >= ONE_READER) {
    readerGone(i32, index, prev);
    return;
  }
  // There was no reader to release: the count went from 0 to -1 (or lower, if another
  // unbalanced RUnlock races with us). Put it back; the flags were never touched, so once
  // this add lands the lock is exactly as it was. This is a caller bug (Go makes it a
  // fatal error) and we only promise to detect it and leave the lock usable afterwards:
  // agents using the lock during the few nanoseconds the count reads -1 see one reader too
  // few, and a reader and a writer entering in that window could both get in. A writer
  // waiting for the drain at that time waits until this add brings the count back to 0,
  // which must then wake it, as in readerGone.
  const restored = Atomics.add(i32, index, ONE_READER) + ONE_READER;
  if ((restored & WRITER) !== 0 && restored >> READER_SHIFT === 0) {
    Atomics.add(i32, index + 2, 1);
    Atomics.notify(i32, index + 2, 1);
  }
  throw new Error("sync: RUnlock of unlocked RWMutex");
}

/**
 * Acquires the reader/writer mutex at `i32[index…]` for writing, blocking until the
 * current readers and writer have left. Uncontended cost: one `compareExchange` on the
 * writer mutex and one `or` on the state.
 */
export function lockWords(i32: Int32Array, index: number): void {
  lockWord(i32, index + 1);
  const prev = Atomics.or(i32, index, WRITER);
  if (prev >> READER_SHIFT === 0) return;
  let spins = 0;
  for (;;) {
    // Drain word first, then state: see the lost-wake-up argument above.
    const seq = Atomics.load(i32, index + 2);
    if (Atomics.load(i32, index) >> READER_SHIFT === 0) return;
    if (spins < SPIN) {
      spins++;
      relax();
      continue;
    }
    Atomics.wait(i32, index + 2, seq);
  }
}

/**
 * Tries to acquire the reader/writer mutex at `i32[index…]` for writing without blocking.
 * Uncontended cost: two `compareExchange`s.
 */
export function tryLockWords(i32: Int32Array, index: number): boolean {
  if (!tryLockWord(i32, index + 1)) return false;
  // With the writer mutex held the flags are clear (see above), so the state is 0 exactly
  // when no reader is inside.
  if (Atomics.compareExchange(i32, index, 0, WRITER) === 0) return true;
  unlockWord(i32, index + 1);
  return false;
}

/**
 * Releases the write lock of the reader/writer mutex at `i32[index…]`. Uncontended cost:
 * one `and` on the state and one `exchange` on the writer mutex; no notify unless a reader
 * or writer sleeps.
 *
 * @throws {Error} if no write lock is held; the lock is left as it was.
 */
export function unlockWords(i32: Int32Array, index: number): void {
  // READERS_WAITING is never set without WRITER, so when WRITER is clear this `and`
  // changes nothing and the error leaves the lock as it was. (Unlocking from another agent
  // while the owning writer still waits for readers is a misuse this cannot detect.)
  const prev = Atomics.and(i32, index, ~(WRITER | READERS_WAITING));
  if ((prev & WRITER) === 0) throw new Error("sync: Unlock of unlocked RWMutex");
  if ((prev & READERS_WAITING) !== 0) Atomics.notify(i32, index, Infinity);
  unlockWord(i32, index + 1);
}

// ---------------------------------------------------------------------------------------
// Stand-alone lock blocks
//
// The public `Mutex` and `RWMutex` each live in a small block of their own:
//
//   word 0  LOCK_MAGIC, so that `attach` can tell a lock from arbitrary memory
//   word 1  the lock's kind (KIND_CODE), so a handle to one kind cannot be attached as
//           the other
//   word 2… the lock words proper (MUTEX_WORDS or RWMUTEX_WORDS)
//
// The header is written once, before the block's buffer is ever shared; posting the buffer
// to another agent happens-before that agent reads it, so plain accesses suffice.

/** "shml" in little-endian byte order: a shmap lock block. */
const LOCK_MAGIC = 0x6c6d6873;

/** Words before the lock words in a stand-alone lock block. */
export const LOCK_HEADER_WORDS = 2;

/** Names of the public lock kinds, as they appear in handles. */
export type LockKind = "Mutex" | "RWMutex";

const KIND_CODE: Readonly<Record<LockKind, number>> = { Mutex: 1, RWMutex: 2 };
const LOCK_WORDS: Readonly<Record<LockKind, number>> = {
  Mutex: MUTEX_WORDS,
  RWMutex: RWMUTEX_WORDS,
};

/** Byte length of a stand-alone lock block of the given kind. */
function blockBytes(kind: LockKind): number {
  return (LOCK_HEADER_WORDS + LOCK_WORDS[kind]) * Int32Array.BYTES_PER_ELEMENT;
}

/**
 * Allocates a stand-alone lock block of the given kind in a fresh `SharedArrayBuffer`,
 * unlocked, and returns a view of exactly the block (lock words at `LOCK_HEADER_WORDS`).
 */
export function newLockBlock(kind: LockKind): Int32Array<SharedArrayBuffer> {
  const block = new Int32Array(new SharedArrayBuffer(blockBytes(kind)));
  block[0] = LOCK_MAGIC;
  block[1] = KIND_CODE[kind];
  return block;
}

// Brand check that works across realms and cannot be fooled by Symbol.toStringTag: the
// `byteLength` getter of SharedArrayBuffer.prototype throws for anything else.
const sabByteLength = Object.getOwnPropertyDescriptor(SharedArrayBuffer.prototype, "byteLength")!
  .get as (this: unknown) => number;

function sharedByteLength(value: unknown): number | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  try {
    return sabByteLength.call(value);
  } catch {
    return undefined;
  }
}

/**
 * Checks that `handle` describes a stand-alone lock block of the given kind and returns a
 * view of exactly that block.
 *
 * @throws {TypeError} naming what is wrong with the handle.
 */
export function attachLockBlock(handle: unknown, kind: LockKind): Int32Array<SharedArrayBuffer> {
  const where = `${kind}.attach`;
  if (typeof handle !== "object" || handle === null || Array.isArray(handle)) {
    throw new TypeError(
      `${where}: expected the object returned by ${kind}.prototype.handle, got ${describe(handle)}`,
    );
  }
  const h = handle as { kind?: unknown; buffer?: unknown; byteOffset?: unknown };
  if (h.kind !== kind) {
    throw new TypeError(
      `${where}: handle.kind must be "${kind}", got ${describe(h.kind)}` +
        (h.kind === "Mutex" || h.kind === "RWMutex" ? ` (use ${h.kind}.attach)` : ""),
    );
  }
  const byteLength = sharedByteLength(h.buffer);
  if (byteLength === undefined) {
    throw new TypeError(
      `${where}: handle.buffer must be a SharedArrayBuffer, got ${describe(h.buffer)}`,
    );
  }
  const offset = h.byteOffset;
  if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0) {
    throw new TypeError(
      `${where}: handle.byteOffset must be a non-negative integer, got ${describe(offset)}`,
    );
  }
  if (offset % Int32Array.BYTES_PER_ELEMENT !== 0) {
    throw new TypeError(`${where}: handle.byteOffset ${offset} is not a multiple of 4`);
  }
  const bytes = blockBytes(kind);
  if (offset + bytes > byteLength) {
    throw new TypeError(
      `${where}: handle.byteOffset ${offset} is out of range: ${
        withArticle(kind)
      } needs ${bytes} bytes ` +
        `and the buffer has ${byteLength}`,
    );
  }
  const block = new Int32Array(h.buffer as SharedArrayBuffer, offset, bytes / 4);
  if (block[0] !== LOCK_MAGIC) {
    throw new TypeError(`${where}: no shmap lock at byteOffset ${offset} (bad magic word)`);
  }
  if (block[1] !== KIND_CODE[kind]) {
    const found = (Object.keys(KIND_CODE) as LockKind[]).find((k) => KIND_CODE[k] === block[1]);
    throw new TypeError(
      `${where}: the lock at byteOffset ${offset} is ${
        found === undefined ? "of unknown kind" : withArticle(found)
      }, not ${withArticle(kind)}`,
    );
  }
  return block;
}
