/**
 * Internal. Reader/writer lock words that survive the death of a reader or of the writer.
 *
 * Layout, from word `base` of an `Int32Array` (see docs/design.md, "Lock words"):
 *
 * | word          | meaning                                                             |
 * | ------------- | ------------------------------------------------------------------- |
 * | base + 0      | state: WRITER (bit 0), READERS_WAITING (bit 1), and from bit 2 the   |
 * |               | high-water mark: reader seats claimed so far, the bound of scans     |
 * | base + 1      | writer mutex: a mutex word (futex.ts); its POISONED is the lock's    |
 * | base + 2      | drain sequence: bumped when a reader leaves while WRITER is set      |
 * | base + 3      | seats the write lock's holder flagged (its own; no one else reads it) |
 * | base + 4      | number of reader seats                                               |
 * | base + 5      | drain note: the writer mutex's holder is waiting for readers to leave |
 * |               | (D_WAITING), and took the mutex unpoisoned (D_CLEAN); a lock() drains  |
 * |               | for good, past its own checks (D_DRAINING: never a tryLock or lockFast) |
 * |               | and its owner id (bits 3 and up, with D_DRAINING)                     |
 * | base + 16 + 16i | reader seat i: owner id of the thread it belongs to, 0 when free  |
 * | base + 17 + 16i | reader seat i: read locks that thread holds (bits 0-29), and   |
 * |                 | SEAT_WRITER (bit 30): a writer holds the lock or waits for it     |
 *
 * Readers count themselves in a seat of their own thread, not in a shared counter: a thread's
 * read locks are then known, so when it dies its count can be taken out (a shared counter
 * could not tell whose increments it holds), and readers on different cores write different
 * cache lines (a seat is 64 bytes). A thread claims its seat (one compare-exchange) the first
 * time it reads; the lock object remembers it.
 *
 * A writer takes the writer mutex (so one writer at a time), sets WRITER in the state word,
 * then sets SEAT_WRITER in the count word of every seat claimed so far (up to the high-water
 * mark, which the `or` that set WRITER returned with the state), then waits until every seat's
 * count is 0. It notes in its own word how many seats it flagged, so its unlock clears them
 * without loading the mark again (no one else flags a seat while it holds the writer mutex, and
 * the mark never falls, so those are all the flagged seats). A reader's read lock is then one atomic add
 * on its own seat: the value it returns says whether a writer is there (the add and the
 * writer's `or` are read-modify-writes of one word, so one comes first: either the reader sees
 * SEAT_WRITER and takes its increment back out, or the writer's drain sees the count). Its
 * unlock is one atomic sub, whose old value says whether a draining writer must be woken. So
 * `rLock` and `rUnlock` cost one read-modify-write each, on a line no other reader writes.
 *
 * A seat claimed while a writer is at work was not flagged by it. Its thread's first read lock
 * therefore also loads the state word after its add. The claimer raised the mark (a
 * compare-exchange of the state word) before its add; the writer set WRITER and read the mark
 * in one `or` of that word. The two read-modify-writes of one word are ordered: either the
 * writer's `or` saw the raised mark and flagged the seat, or it came first and the claimer's
 * load after its add sees WRITER, and it waits until the writer has unlocked. A writer unlocks by
 * clearing SEAT_WRITER on every seat, then WRITER, so no seat is left flagged without WRITER.
 *
 * The last reader to leave while a writer drains bumps the drain word and notifies it; the
 * writer sleeps on the drain word, readers turned away sleep on the state word (with
 * READERS_WAITING set, so that the writer's unlock knows to notify them). All sleeps are
 * bounded: after each, a waiter looks for dead threads. A writer takes out the counts of dead
 * readers; a reader waiting on a dead writer takes the writer mutex over, clears the flags and
 * WRITER, and leaves the lock unlocked and poisoned. A poisoned lock makes every acquisition
 * report it (the public `RWMutex` throws `OwnerDeadError`), until a writer marks it consistent.
 *
 * A writer that dies while it waits for readers to leave, or while it backs out on finding them
 * in ({@linkcode lockFast}), holds the writer mutex but never held the lock: the data it guards
 * was never in its hands, so its death poisons nothing. It says so in the drain note (base + 5)
 * meanwhile, with whether it took the mutex unpoisoned; whoever takes the mutex over from it
 * reads the note, and where the mutex was clean before, clears the poison its takeover set
 * ({@linkcode waitedOnly}). A writer that dies anywhere else holding the mutex (between taking
 * it and flagging the seats, once in, or between taking its note down and releasing the mutex)
 * poisons the lock, as it may have written: the taker cannot tell. The note is written only on
 * those two paths, so the uncontended lock pays nothing.
 *
 * @module
 */

import { OwnerDeadError, TerminatedError } from "../errors.ts";
import { checkSelf, ownerEndingOrGone, ownerGone, ownerId, ownerOutOfCalls } from "./census.ts";
import * as census from "./census.ts";
import { ownerDead } from "./lock_block.ts";
import {
  deadOwnerOf,
  lockWord,
  nap,
  relax,
  releaseWord,
  tryLockWord,
  unlockWord,
} from "./futex.ts";
import * as futex from "./futex.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { TERMINATE_GRACE_MS } = census;
const {
  ACQUIRED,
  ACQUIRED_POISONED,
  CONTENDED,
  NOT_ACQUIRED,
  OWNER_SHIFT,
  POISONED,
  WAIT_SLICE_MS,
} = futex;

/** The state word, from the lock's base: WRITER, READERS_WAITING, the high-water mark. */
export const STATE = 0;
/** The writer mutex's word, from the lock's base (RWMutex.rLock reads its POISONED bit). */
export const WRITER_MU = 1;
/** The drain word, from the lock's base: bumped as a reader leaves a writer's way (RWMutex). */
export const DRAIN = 2;
const FLAGGED = 3;
const NSEATS = 4;
/** The drain note, from the lock's base (see the table above). */
export const DRAIN_NOTE = 5;
const SEATS = 16;
const SEAT_STRIDE = 16;
const S_OWNER = 0;
const S_COUNT = 1;

/** STATE's bit: a writer holds the lock or waits for readers to leave. */
export const WRITER = 1;
const READERS_WAITING = 2;
/** The high-water mark's place in the state word: `state >>> HIGH_SHIFT`. */
const HIGH_SHIFT = 2;
/** In the drain note: the writer mutex's holder waits for readers to leave. */
const D_WAITING = 1;
/** In the drain note: and it took the writer mutex unpoisoned. */
const D_CLEAN = 2;
/**
 * In the drain note: a lock() (takeWriteLock) waits for readers to leave, and will not back
 * out (it checked that this thread holds no read lock): a reader of it that read-locks again
 * would wait for it for ever. tryLock and lockFast back out, and never set it.
 */
export const D_DRAINING = 4;
/**
 * In the drain note, with D_DRAINING: the draining writer's owner id, from this bit on. A note
 * is believed only while that writer holds the mutex: another thread that took a dead drainer
 * over (and clears the note a moment later) is no drainer.
 */
export const DRAINER_SHIFT = 3;
/** A seat's flag: a writer holds or waits (new read locks go the slow way). */
export const SEAT_WRITER = 1 << 30;
/** The read lock count in a seat's count word. */
export const COUNT_MASK = SEAT_WRITER - 1;
/**
 * Read locks one thread may hold on one lock at once. A seat word below it has no SEAT_WRITER
 * and room for one more, so the read lock's fast path is one compare.
 */
export const MAX_READS = 1 << 29;
const SPIN = 100;
// Sums of the above, for lockFast: each use of a module constant costs V8 four or five bytes of
// bytecode (a load and a check that it is initialised), and V8 inlines lockFast into RWMutex's
// methods only while it stays under its limit of 460 bytes.
/** The count word of reader seat 0, from the lock's base. */
const SEAT0_COUNT = SEATS + S_COUNT;
/** The drain note of a writer waiting for readers, having taken the mutex unpoisoned. */
const D_WAITING_CLEAN = D_WAITING | D_CLEAN;
/** The state word's mask that clears WRITER and READERS_WAITING. */
const NO_WRITER = ~(WRITER | READERS_WAITING);

/** Words a reader/writer lock with `seats` reader seats occupies. */
export function rwWords(seats: number): number {
  return SEATS + seats * SEAT_STRIDE;
}

/** Writes an unlocked reader/writer lock with `seats` reader seats at `base`. */
export function initRw(i32: Int32Array, base: number, seats: number): void {
  i32[base + NSEATS] = seats;
}

/** The number of reader seats of the lock at `base`. */
export function rwSeats(i32: Int32Array, base: number): number {
  return i32[base + NSEATS];
}

/**
 * The reader seat of thread `me` in the lock at `base` (a word index: its count word), claimed
 * now if it has none. Throws RangeError when every seat belongs to a live thread.
 */
export function readerSeat(i32: Int32Array, base: number, me: number): number {
  const own = ownSeat(i32, base, me);
  if (own !== 0) return own;
  const n = i32[base + NSEATS];
  // Two passes, a reap between them; and more, each after a 1 ms sleep, while a seat is about
  // to be free: another thread is reaping it (its mark, a negative owner, is there for a few
  // atomic operations), or its owner is recorded terminating and counts as gone within the
  // grace (ownerGone starts that clock at this thread's first look, so a thread that meets the
  // end only now would otherwise find every seat live and throw), or is declared gone (or has
  // ended unreported) and is not reaped yet: the reap of this pass may have freed it, which only
  // the next scan sees, or it may still be inside a call (a Deno zombie not yet seen running for
  // RUN_PROOF_MS) or hold read locks while asleep (on Deno, gone once seen asleep for QUIET_MS),
  // clocks that this thread's first look starts (reapReaders). Without the declared gone, a
  // reader's first rLock as the adapter declared a killed reader gone threw RangeError although
  // the seat was about to be, or had just been, reaped (helper-176: Node and Bun, 30 of 30 runs
  // at once after terminate(); Deno, 13 of 13 with the reader asleep). Bounded by twice the
  // grace.
  let deadline = 0;
  for (let pass = 0, soon = 0; pass < 2 || soon > 0; pass++) {
    if (pass >= 2) {
      const now = performance.now();
      if (deadline === 0) deadline = now + 2 * TERMINATE_GRACE_MS;
      else if (now > deadline) break;
      checkSelf(); // a thread itself ending stops rather than wait
      nap();
    }
    soon = 0;
    for (let i = 0; i < n; i++) {
      const at = base + SEATS + i * SEAT_STRIDE;
      const owner = Atomics.load(i32, at + S_OWNER);
      if (owner < 0 || (owner > 0 && ownerEndingOrGone(owner))) soon++;
      if (owner !== 0) continue;
      // The mark first, then the claim: a claim cut short after the mark (a stack overflow can
      // throw from any call) leaves a free seat below the mark, which costs scans a seat; the
      // other order would leave a seat of this thread above it, which ownSeat, bounded by the
      // mark, would not find, and the thread's next claim would take a second seat.
      raiseHigh(i32, base, i + 1);
      if (Atomics.compareExchange(i32, at + S_OWNER, 0, me) === 0) return at + S_COUNT;
    }
    // Full: give back the seats of threads that are gone, then look again.
    reapReaders(i32, base);
  }
  throw new RangeError(
    `this RWMutex has ${n} reader seats, one per thread that reads it, and all belong to ` +
      "live threads: create it with a larger maxReaderThreads",
  );
}

/** The seat count word of thread `me` in the lock at `base`, or 0 when it has no seat. */
export function ownSeat(i32: Int32Array, base: number, me: number): number {
  const high = highMark(i32, base);
  for (let i = 0; i < high; i++) {
    if (Atomics.load(i32, base + SEATS + i * SEAT_STRIDE + S_OWNER) === me) {
      return base + SEATS + i * SEAT_STRIDE + S_COUNT;
    }
  }
  return 0;
}

/**
 * The high-water mark: reader seats claimed so far (every seat in use is below it), never more
 * than the lock's seats. A mark past them comes only from memory written from outside; bounded
 * here, no scan reads past the lock's words, and the lock works on (a scan that threw there
 * would throw from a writer's lock holding the writer mutex, and leave it held for good).
 */
function highMark(i32: Int32Array, base: number): number {
  return withinSeats(i32, base, Atomics.load(i32, base + STATE) >>> HIGH_SHIFT);
}

/**
 * `n` seats, or the lock's number of seats if fewer: the bound of every scan of the seats, by a
 * count read from the lock's words (the mark, FLAGGED). Written out where no call may be made
 * (lockFast, unlockFast, and the catch blocks that finish a release cut short).
 */
function withinSeats(i32: Int32Array, base: number, n: number): number {
  const seats = i32[base + NSEATS];
  return n < seats ? n : seats;
}

/** Whether the lock's high-water mark lies within its seats (RWMutex.attach checks it). */
export function highMarkValid(i32: Int32Array, base: number): boolean {
  return Atomics.load(i32, base + STATE) >>> HIGH_SHIFT <= i32[base + NSEATS];
}

/** Raises the high-water mark to at least `high`, keeping the state word's flags. */
function raiseHigh(i32: Int32Array, base: number, high: number): void {
  let s = Atomics.load(i32, base + STATE);
  while (s >>> HIGH_SHIFT < high) {
    const want = (s & ((1 << HIGH_SHIFT) - 1)) | (high << HIGH_SHIFT);
    const found = Atomics.compareExchange(i32, base + STATE, s, want);
    if (found === s) return;
    s = found; // flags or the mark changed meanwhile
  }
}

/** The count word of reader seat `i` of the lock at `base` (for tests and inspection). */
export function seatCountWord(base: number, i: number): number {
  return base + SEATS + i * SEAT_STRIDE + S_COUNT;
}

/** Whether the lock at `base` is poisoned (a writer died holding it). One plain read. */
export function rwPoisoned(i32: Int32Array, base: number): boolean {
  const w = Atomics.load(i32, base + WRITER_MU);
  if ((w & POISONED) !== 0) return true;
  // Also while a dead writer has not been taken over yet, unless it died only waiting for
  // readers, with the lock clean before (its take-over clears the poison: waitedOnly).
  if (w >>> OWNER_SHIFT === 0 || !ownerGone(w >>> OWNER_SHIFT)) return false;
  const note = Atomics.load(i32, base + DRAIN_NOTE);
  return (note & (D_WAITING | D_CLEAN)) !== (D_WAITING | D_CLEAN);
}

/**
 * The first read lock through a seat just found or claimed (`seat`, its count word), which a
 * writer already at work may not have flagged: one add on the seat, then a load of the state
 * word (see above). Returns ACQUIRED or ACQUIRED_POISONED (the read lock is held either way).
 * Later read locks through the seat are the add alone, written out in RWMutex.rLock: the add,
 * then the poison bit (WRITER_MU's POISONED); an old value of {@linkcode MAX_READS} or more, or
 * the bit set, and the add is given back and the lock taken through this function again.
 */
export function rLockFirst(i32: Int32Array, base: number, seat: number, me: number): number {
  // From the add on, until the return, no call of ours while the add counts: a call's entry is
  // where the engines check the stack, and an overflow there would leave the read lock held
  // with the caller unaware (design.md, "A live holder whose step cannot be undone").
  const prev = Atomics.add(i32, seat, 1);
  if (prev >= MAX_READS || (Atomics.load(i32, base + STATE) & WRITER) !== 0) {
    // Turned away: the add taken back out, written out (so too in tryRLock, rLockSlow,
    // RWMutex.rLock and tryRLock), waking the draining writer whenever the seat empties: a
    // writer is at work here, and a spare wake only makes the writer count again.
    const was = Atomics.sub(i32, seat, 1);
    if ((was & COUNT_MASK) === 1) {
      Atomics.add(i32, base + DRAIN, 1);
      Atomics.notify(i32, base + DRAIN);
    }
    rLockSlow(i32, base, seat, me);
  }
  return (i32[base + WRITER_MU] & POISONED) !== 0 ? ACQUIRED_POISONED : ACQUIRED;
}

/**
 * The read lock's add found SEAT_WRITER (or WRITER, on a first lock), or too many read locks,
 * and was taken back out by the caller, who holds nothing now: waits for the writer to leave
 * and tries again, each time as a first lock does, until it holds the read lock. Between its
 * own add and its return (or the add's taking back) it calls nothing of ours, as rLockFirst.
 */
export function rLockSlow(i32: Int32Array, base: number, seat: number, me: number): void {
  let spins = 0;
  for (;;) {
    if ((Atomics.load(i32, seat) & COUNT_MASK) >= MAX_READS) throw tooManyReads();
    // Turned away: a writer holds the lock or waits for it.
    for (;;) {
      let s = Atomics.load(i32, base + STATE);
      if ((s & WRITER) === 0) break;
      if (spins < SPIN) {
        spins++;
        relax();
        continue;
      }
      const w = Atomics.load(i32, base + WRITER_MU);
      if (w >>> OWNER_SHIFT !== 0 && ownerGone(w >>> OWNER_SHIFT)) {
        releaseDeadWriter(i32, base, me);
        continue;
      }
      // Waits that could never end, and would hold every other thread up with them (Go's
      // RWMutex deadlocks here; this one throws, holding nothing more than before): this
      // thread holds the writer mutex; or it holds a read lock, which a live lock() now drains
      // for (D_DRAINING: not a tryLock or a back-out, which would end). Read locks are not
      // reentrant.
      if (w >>> OWNER_SHIFT === me) {
        throw new Error("sync: RWMutex.rLock by the thread that holds its write lock (deadlock)");
      }
      const note = Atomics.load(i32, base + DRAIN_NOTE);
      if (
        (Atomics.load(i32, seat) & COUNT_MASK) !== 0 && (note & D_DRAINING) !== 0 &&
        note >>> DRAINER_SHIFT === w >>> OWNER_SHIFT // the note is the mutex holder's own
      ) {
        throw new Error(
          "sync: RWMutex.rLock again by a reader while a writer waits for it (deadlock)",
        );
      }
      if ((s & READERS_WAITING) === 0) {
        if (Atomics.compareExchange(i32, base + STATE, s, s | READERS_WAITING) !== s) continue;
        s |= READERS_WAITING;
      }
      Atomics.wait(i32, base + STATE, s, WAIT_SLICE_MS);
      checkSelf();
    }
    const prev = Atomics.add(i32, seat, 1);
    if (prev < MAX_READS && (Atomics.load(i32, base + STATE) & WRITER) === 0) return;
    const was = Atomics.sub(i32, seat, 1); // taken back out, as in rLockFirst
    if ((was & COUNT_MASK) === 1) {
      Atomics.add(i32, base + DRAIN, 1);
      Atomics.notify(i32, base + DRAIN);
    }
  }
}

/**
 * Takes the writer mutex over from its dead owner, clears the seats' flags and WRITER (waking
 * turned-away readers), and leaves the lock unlocked and poisoned. Holding the writer mutex
 * while clearing keeps a live writer from setting them in between and having them cleared
 * under it.
 */
function releaseDeadWriter(i32: Int32Array, base: number, me: number): void {
  const status = tryLockWord(i32, base + WRITER_MU, me);
  if (status === NOT_ACQUIRED) return;
  try {
    waitedOnly(i32, base, status);
    // The dead writer's note of what it flagged may be unwritten: clear up to the mark.
    writerLeaves(i32, base, highMark(i32, base));
    unlockWord(i32, base + WRITER_MU, me);
  } catch (error) {
    // Cut short (a stack overflow): this reader holds the writer mutex without its caller
    // knowing, so the release is finished here, written out as writeLock's back-out is.
    if (i32[base + WRITER_MU] >>> OWNER_SHIFT === me) {
      const mark = Atomics.load(i32, base + STATE) >>> HIGH_SHIFT;
      const high = mark < i32[base + NSEATS] ? mark : i32[base + NSEATS]; // withinSeats
      for (let i = 0; i < high; i++) {
        Atomics.and(i32, base + SEATS + i * SEAT_STRIDE + S_COUNT, ~SEAT_WRITER);
      }
      const prev = Atomics.and(i32, base + STATE, ~(WRITER | READERS_WAITING));
      if ((prev & READERS_WAITING) !== 0) Atomics.notify(i32, base + STATE);
      let w = Atomics.load(i32, base + WRITER_MU);
      // The owner checked at every turn, as unlockWordSlow does.
      while (w >>> OWNER_SHIFT === me) {
        const found = Atomics.compareExchange(i32, base + WRITER_MU, w, w & POISONED);
        if (found === w) {
          if ((w & CONTENDED) !== 0) Atomics.notify(i32, base + WRITER_MU, 1);
          break;
        }
        w = found;
      }
    }
    throw error;
  }
}

function tooManyReads(): RangeError {
  return new RangeError(`a thread may hold at most ${MAX_READS} read locks of one RWMutex at once`);
}

/**
 * Sets WRITER, then SEAT_WRITER in every seat claimed so far, and notes how many it flagged;
 * returns the read locks those seats held as it did. When that is 0 the writer is in: a reader
 * that adds to a flagged seat afterwards sees the flag, and one on a seat claimed after the `or`
 * read the high-water mark sees WRITER (rw_lock.ts's header). Only the writer mutex's holder.
 */
function flagSeats(i32: Int32Array, base: number): number {
  const high = withinSeats(i32, base, Atomics.or(i32, base + STATE, WRITER) >>> HIGH_SHIFT);
  // A plain write: only the writer mutex's holder writes or reads it (see unlock).
  i32[base + FLAGGED] = high;
  let held = 0;
  for (let i = 0; i < high; i++) {
    held += Atomics.or(i32, base + SEATS + i * SEAT_STRIDE + S_COUNT, SEAT_WRITER) & COUNT_MASK;
  }
  return held;
}

/**
 * The writer, holding the writer mutex, is done (or backs out): clears SEAT_WRITER in the first
 * `high` seats (at least every flagged one), then WRITER, and wakes the readers that wait for
 * it. Repeatable.
 */
function writerLeaves(i32: Int32Array, base: number, flagged: number): void {
  const high = withinSeats(i32, base, flagged); // FLAGGED is a word of the lock too

  for (let i = 0; i < high; i++) {
    Atomics.and(i32, base + SEATS + i * SEAT_STRIDE + S_COUNT, ~SEAT_WRITER);
  }
  const prev = Atomics.and(i32, base + STATE, ~(WRITER | READERS_WAITING));
  if ((prev & READERS_WAITING) !== 0) Atomics.notify(i32, base + STATE);
}

/**
 * RWMutex.lock's fast path: the write lock taken when nobody holds it or waits for it. Takes
 * the writer mutex with the owner word `mine` (an owner id shifted into place) if its word is 0
 * (free, clean, not this thread's), then sets WRITER and flags the seats as
 * {@linkcode takeWriteLock} does, with the same writes in the same order;
 * returns true when no reader held the lock, and the caller then holds the write lock. Returns
 * false holding nothing otherwise, for {@linkcode lock} to take the lock the long way: when the
 * mutex word is not 0, untouched; when readers are inside, after backing out (below).
 *
 * No function of ours is called from the compare-exchange on (the engines check the stack at a
 * function's entry, so a stack overflow cannot cut this short), and nothing here throws: the
 * caller never holds the lock without knowing. A death at any step leaves what a death at the
 * same step of takeWriteLock leaves, repaired the same way: the next taker of the writer mutex
 * finds it held by a dead thread, poisons it, and clears the flags up to the high-water mark.
 *
 * Backing out, readers being inside: the drain note goes up first, as takeWriteLock's does
 * before it waits, so that a death while backing out does not poison the lock (the thread never
 * got in); then {@linkcode writerLeaves} over the seats it flagged, the note down, and the mutex
 * released (a waiting writer woken), as {@linkcode backOut} does. Between the note's going down
 * and the release, a death poisons the lock (backOut's window, the same): the note cannot come
 * down after the release, where the next clean taker would not clear it, and a death of that
 * taker inside would then leave the lock unpoisoned. tests/rw_lock_fast_test.ts stops a writer
 * after each step.
 */
export function lockFast(i32: Int32Array, base: number, mine: number): boolean {
  const mu = base + WRITER_MU;
  if (Atomics.compareExchange(i32, mu, 0, mine) !== 0) return false;
  const mark = Atomics.or(i32, base + STATE, WRITER) >>> HIGH_SHIFT;
  const seats = i32[base + NSEATS];
  const high = mark < seats ? mark : seats; // withinSeats
  i32[base + FLAGGED] = high; // a plain write, as flagSeats's
  // The flagged seats' count words walked by index, and words and masks named once: written
  // small, for V8 to inline (see SEAT0_COUNT).
  const first = base + SEAT0_COUNT;
  const end = first + high * SEAT_STRIDE;
  let held = 0;
  for (let w = first; w < end; w += SEAT_STRIDE) {
    held += Atomics.or(i32, w, SEAT_WRITER) & COUNT_MASK;
  }
  if (held === 0) return true;
  const note = base + DRAIN_NOTE;
  Atomics.store(i32, note, D_WAITING_CLEAN);
  for (let w = first; w < end; w += SEAT_STRIDE) Atomics.and(i32, w, ~SEAT_WRITER);
  if ((Atomics.and(i32, base + STATE, NO_WRITER) & READERS_WAITING) !== 0) {
    Atomics.notify(i32, base + STATE);
  }
  Atomics.store(i32, note, 0);
  if (Atomics.exchange(i32, mu, 0) !== mine) Atomics.notify(i32, mu, 1);
  return false;
}

/**
 * RWMutex.unlock's fast path: {@linkcode unlock} when the writer mutex word is exactly `mine`
 * (this thread's owner word, no flag set): {@linkcode writerLeaves} over the seats its lock
 * flagged, then the mutex released with one exchange, whose old value says whether a writer
 * sleeps (CONTENDED, the one flag another thread may set meanwhile). Returns false, having
 * changed nothing, for any other word (a poisoned lock, sleepers, not this thread's), which
 * {@linkcode unlock} handles. Calls no function of ours once it has read the word, as
 * {@linkcode lockFast}.
 */
export function unlockFast(i32: Int32Array, base: number, mine: number): boolean {
  if (mine === 0 || i32[base + WRITER_MU] !== mine) return false;
  const flagged = i32[base + FLAGGED];
  const high = flagged < i32[base + NSEATS] ? flagged : i32[base + NSEATS]; // withinSeats
  for (let i = 0; i < high; i++) {
    Atomics.and(i32, base + SEATS + i * SEAT_STRIDE + S_COUNT, ~SEAT_WRITER);
  }
  const prev = Atomics.and(i32, base + STATE, ~(WRITER | READERS_WAITING));
  if ((prev & READERS_WAITING) !== 0) Atomics.notify(i32, base + STATE);
  if (Atomics.exchange(i32, base + WRITER_MU, 0) !== mine) Atomics.notify(i32, base + WRITER_MU, 1);
  return true;
}

/** Bumps the drain word and wakes the writer sleeping on it. */
function wakeWriter(i32: Int32Array, base: number): void {
  Atomics.add(i32, base + DRAIN, 1);
  Atomics.notify(i32, base + DRAIN);
}

/**
 * Tries to acquire a read lock without blocking: fails while a writer holds the lock or waits
 * for it. Returns NOT_ACQUIRED, ACQUIRED or ACQUIRED_POISONED. Any seat, first lock or not.
 */
export function tryRLock(i32: Int32Array, base: number, seat: number): number {
  // No call of ours while the add counts, as in rLockFirst.
  const prev = Atomics.add(i32, seat, 1);
  if (prev >= MAX_READS || (Atomics.load(i32, base + STATE) & WRITER) !== 0) {
    const was = Atomics.sub(i32, seat, 1); // taken back out, as in rLockFirst
    if ((was & COUNT_MASK) === 1) {
      Atomics.add(i32, base + DRAIN, 1);
      Atomics.notify(i32, base + DRAIN);
    }
    if ((prev & COUNT_MASK) >= MAX_READS) throw tooManyReads();
    return NOT_ACQUIRED;
  }
  return (i32[base + WRITER_MU] & POISONED) !== 0 ? ACQUIRED_POISONED : ACQUIRED;
}

/**
 * Releases one read lock of thread `me`, whose seat count word is `seat`.
 *
 * @throws {TerminatedError} if this thread was terminated, and the seat is no longer its own.
 * @throws {Error} if `me` holds no read lock there; the lock is left as it was.
 */
export function rUnlock(i32: Int32Array, base: number, seat: number, me: number): void {
  // Plain reads of the seat's line. Its owner word names `me` for as long as `me` can run: only
  // a reaper changes it, once `me` is gone. So a thread declared gone that still runs (a Deno
  // zombie) and whose seat was reaped, and maybe claimed by another thread, finds another owner
  // there and takes nothing from that thread's count. Only the seat's own thread changes its
  // count while it can run (writers change only SEAT_WRITER), so it reads its own last count.
  if (i32[seat + S_OWNER - S_COUNT] !== me || (i32[seat] & COUNT_MASK) === 0) {
    throw rUnlockOfUnlocked();
  }
  const prev = Atomics.sub(i32, seat, 1);
  // The last read lock of this seat, and a writer flagged it: it may be draining. (A writer that
  // did not flag this seat yet will read its count as 0.)
  if (prev === (SEAT_WRITER | 1)) wakeWriter(i32, base);
}

/**
 * The error of an rUnlock by a thread holding no read lock; a thread found terminated throws
 * TerminatedError instead, as that is why it holds none. Apart from rUnlock, which stays small
 * enough for V8 to inline beside its caller's other calls.
 */
function rUnlockOfUnlocked(): Error {
  checkSelf();
  return new Error("sync: RUnlock of unlocked RWMutex");
}

/**
 * Acquires the write lock for `me`, blocking until the current readers and writer have left.
 *
 * @throws {OwnerDeadError} holding the write lock, when it comes poisoned.
 */
export function lock(i32: Int32Array, base: number, me: number): void {
  writeLock(i32, base, me, true);
}

/**
 * Tries to acquire the write lock without blocking; returns whether it did.
 *
 * @throws {OwnerDeadError} holding the write lock, when it comes poisoned.
 */
export function tryLock(i32: Int32Array, base: number, me: number): boolean {
  return writeLock(i32, base, me, false) === ACQUIRED;
}

/**
 * {@linkcode lock} (`wait`) and {@linkcode tryLock}: takes the write lock, and throws the
 * OwnerDeadError of a poisoned one, all inside one `try`, whose `catch` backs a writer out of
 * whatever it holds when anything else cut it short: the caller must never hold the write lock
 * without knowing. Returns ACQUIRED or NOT_ACQUIRED.
 */
function writeLock(i32: Int32Array, base: number, me: number, wait: boolean): number {
  // Whether this thread held the writer mutex already: lockWord then throws, and nothing it
  // holds may be backed out.
  const already = i32[base + WRITER_MU] >>> OWNER_SHIFT === me;
  try {
    const status = wait ? takeWriteLock(i32, base, me) : tryTakeWriteLock(i32, base, me);
    if (status === ACQUIRED_POISONED) throw ownerDead("RWMutex", i32, base + WRITER_MU);
    return status;
  } catch (error) {
    // takeWriteLock backs out of what it took when it throws; if the back-out threw too (a
    // stack overflow), or the step that threw had none (tryTakeWriteLock's, ownerDead's entry),
    // once more here, a frame nearer the stack's base, and with no call of a function of ours
    // (whose entry is where the stack is checked): backOut written out.
    if (
      !already && !(error instanceof TerminatedError) && !(error instanceof OwnerDeadError) &&
      i32[base + WRITER_MU] >>> OWNER_SHIFT === me
    ) {
      const mark = Atomics.load(i32, base + STATE) >>> HIGH_SHIFT;
      const high = mark < i32[base + NSEATS] ? mark : i32[base + NSEATS]; // withinSeats
      for (let i = 0; i < high; i++) {
        Atomics.and(i32, base + SEATS + i * SEAT_STRIDE + S_COUNT, ~SEAT_WRITER);
      }
      const prev = Atomics.and(i32, base + STATE, ~(WRITER | READERS_WAITING));
      if ((prev & READERS_WAITING) !== 0) Atomics.notify(i32, base + STATE);
      // Released as unlockWordSlow does: POISONED kept, a sleeper woken; the note as backOut.
      let w = Atomics.load(i32, base + WRITER_MU);
      if ((w & POISONED) === 0) Atomics.store(i32, base + DRAIN_NOTE, 0);
      // The owner checked at every turn, as unlockWordSlow does.
      while (w >>> OWNER_SHIFT === me) {
        const found = Atomics.compareExchange(i32, base + WRITER_MU, w, w & POISONED);
        if (found === w) {
          if ((w & CONTENDED) !== 0) Atomics.notify(i32, base + WRITER_MU, 1);
          break;
        }
        w = found;
      }
    }
    throw error;
  }
}

/** {@linkcode lock}'s work: the writer mutex, then the seats flagged and drained. */
function takeWriteLock(i32: Int32Array, base: number, me: number): number {
  // A read lock of this very thread would never leave, and the writer would wait for it for
  // ever, as would every other thread (WRITER set, or the writer mutex held by another writer
  // draining for it): thrown before anything is taken. Go deadlocks here.
  const own = ownSeat(i32, base, me);
  if (own !== 0 && (Atomics.load(i32, own) & COUNT_MASK) !== 0) {
    throw new Error("sync: RWMutex.lock by a thread that holds a read lock of it (deadlock)");
  }
  // Fair among writers: one that has waited STARVE_MS gets the next turn (futex.ts, STARVING).
  const taken = lockWord(i32, base + WRITER_MU, me, undefined, true);
  try {
    const status = waitedOnly(i32, base, taken);
    if (flagSeats(i32, base) !== 0) {
      // Atomic stores: the thread that takes the mutex over if this one dies reads the note.
      Atomics.store(
        i32,
        base + DRAIN_NOTE,
        D_WAITING | D_DRAINING | (status === ACQUIRED ? D_CLEAN : 0) | (me << DRAINER_SHIFT),
      );
      drain(i32, base);
      Atomics.store(i32, base + DRAIN_NOTE, 0);
    }
    return status;
  } catch (error) {
    // Given up before getting in (a stack overflow can throw from any call): back out, as a
    // writer that died waiting is backed out by whoever takes its mutex over. Not a thread
    // found terminated: it must not touch shared memory again, and is backed out when gone.
    if (!(error instanceof TerminatedError)) backOut(i32, base, me);
    throw error;
  }
}

/**
 * The writer `me`, holding the writer mutex, backs out before it got in: unflags the seats up
 * to the high-water mark (its note of what it flagged may be unwritten), drops its drain note
 * and releases the mutex, poisoned only if it was before.
 */
function backOut(i32: Int32Array, base: number, me: number): void {
  const w = Atomics.load(i32, base + WRITER_MU);
  // Not ours (declared gone meanwhile, and taken over): the flags are the new holder's.
  if (w >>> OWNER_SHIFT !== me) return;
  writerLeaves(i32, base, highMark(i32, base));
  // Poisoned, the note is for the next taker, who gets the lock poisoned and reads it: a dead
  // waiter's that this thread had not read yet, or its own, which says the lock was not clean.
  if ((w & POISONED) === 0) Atomics.store(i32, base + DRAIN_NOTE, 0);
  unlockWord(i32, base + WRITER_MU, me);
}

/**
 * After taking the writer mutex (`status`, from lockWord or tryLockWord): if it was taken over
 * from a writer that died waiting for readers, with the mutex clean before it took it, clears
 * the poison the takeover set, and returns ACQUIRED; else returns `status`. Clears the note of
 * a dead waiter either way. Only the writer mutex's holder.
 */
function waitedOnly(i32: Int32Array, base: number, status: number): number {
  if (status !== ACQUIRED_POISONED) return status;
  const note = Atomics.load(i32, base + DRAIN_NOTE);
  if (note === 0) return status;
  Atomics.store(i32, base + DRAIN_NOTE, 0);
  if ((note & D_CLEAN) === 0) return status;
  // An atomic and: waiters may set CONTENDED in the word meanwhile.
  Atomics.and(i32, base + WRITER_MU, ~POISONED);
  deadOwnerOf(i32, base + WRITER_MU); // a take-over with nothing to report: its record goes
  return ACQUIRED;
}

/** Waits until no reader holds the lock; every seat is flagged, so no new reader gets in. */
function drain(i32: Int32Array, base: number): void {
  // Uncontended, no reader: done without reading the drain word, which only a wait needs.
  if (readers(i32, base) === 0) return;
  let spins = 0;
  for (;;) {
    // Drain word first, then the seats: a reader that leaves after our scan bumps the drain
    // word after its decrement, so our wait either sees the bump or is woken by its notify.
    const seq = Atomics.load(i32, base + DRAIN);
    if (readers(i32, base) === 0) return;
    if (spins < SPIN) {
      spins++;
      relax();
      continue;
    }
    if (reapReaders(i32, base)) continue;
    Atomics.wait(i32, base + DRAIN, seq, WAIT_SLICE_MS);
    checkSelf();
  }
}

/**
 * Read locks held, summed over the seats. A snapshot: a reader turned away by a writer counts
 * for the moment until it takes its increment back out.
 */
export function readers(i32: Int32Array, base: number): number {
  const high = highMark(i32, base);
  let n = 0;
  for (let i = 0; i < high; i++) {
    n += Atomics.load(i32, base + SEATS + i * SEAT_STRIDE + S_COUNT) & COUNT_MASK;
  }
  return n;
}

/**
 * Takes out the read locks of dead threads and frees their seats, keeping each seat's
 * SEAT_WRITER. Returns whether it took any out.
 *
 * A seat is reaped in three steps. Its owner word goes from the dead owner to this reaper's
 * mark (minus its owner id), so that no thread claims the seat meanwhile (a claim is a
 * compare-exchange from 0) and no other reaper reaps it; then its count is taken out, which is
 * stable (only the dead thread changed it; writers change only SEAT_WRITER); then the owner
 * word goes to 0. Read straight from the owner word instead, the count could be a new
 * thread's: another reaper frees the seat, a new reader claims it and locks, and this reaper,
 * which had found the old owner gone, zeroes the new reader's count under it, and a writer
 * gets in beside the reader. A reaper that stops between the steps (it died, or a stack
 * overflow threw) leaves its mark: whoever meets the mark of a gone reaper, or this reaper
 * meeting its own, finishes the reap.
 */
function reapReaders(i32: Int32Array, base: number): boolean {
  const high = highMark(i32, base);
  const me = ownerId();
  let reaped = false;
  for (let i = 0; i < high; i++) {
    const at = base + SEATS + i * SEAT_STRIDE;
    const owner = Atomics.load(i32, at + S_OWNER);
    if (owner === 0) continue;
    // A seat that holds no read lock is a seat, not a lock: a thread terminated and still there
    // (asleep for good in a wait of its own: Deno does not wake it) gives it up after the grace,
    // else its seats would run out (census.ts ownerDeclaredGone), once it is in no call
    // (ownerOutOfCalls): a Deno zombie descheduled in an rLock between its census check and its
    // add, and not run since, adds to the seat when it runs, and reaped meanwhile, its add
    // landed on a free seat (a read lock counted for no owner, which no reap takes out: every
    // writer waited for good) or on its next owner's (helper-169). One seen running (in user
    // code) is out of calls after RUN_PROOF_MS; readerSeat waits that out. One that holds read
    // locks keeps them while its thread runs (ownerGone).
    const gone = (Atomics.load(i32, at + S_COUNT) & COUNT_MASK) === 0 ? ownerOutOfCalls : ownerGone;
    if (owner > 0 ? !gone(owner) : owner !== -me && !gone(-owner)) continue;
    if (Atomics.compareExchange(i32, at + S_OWNER, owner, -me) !== owner) continue;
    let w = Atomics.load(i32, at + S_COUNT);
    while ((w & COUNT_MASK) !== 0) {
      const found = Atomics.compareExchange(i32, at + S_COUNT, w, w & SEAT_WRITER);
      if (found === w) {
        reaped = true;
        break;
      }
      w = found; // a writer flagged or unflagged the seat meanwhile
    }
    Atomics.store(i32, at + S_OWNER, 0);
  }
  return reaped;
}

/**
 * {@linkcode tryLock}'s work: the writer mutex, if free, then the seats flagged; backs out if
 * readers are in. Returns NOT_ACQUIRED, ACQUIRED or ACQUIRED_POISONED.
 */
function tryTakeWriteLock(i32: Int32Array, base: number, me: number): number {
  const status = waitedOnly(i32, base, tryLockWord(i32, base + WRITER_MU, me));
  if (status === NOT_ACQUIRED) return status;
  if (flagSeats(i32, base) === 0 || (reapReaders(i32, base) && readers(i32, base) === 0)) {
    return status;
  }
  // Readers are in: back out, waking readers we turned away meanwhile.
  writerLeaves(i32, base, i32[base + FLAGGED]);
  unlockWord(i32, base + WRITER_MU, me);
  return NOT_ACQUIRED;
}

/**
 * Releases the write lock held by `me`.
 *
 * @throws {Error} if `me` does not hold it; the lock is left as it was.
 */
export function unlock(i32: Int32Array, base: number, me: number): void {
  // A plain read: a writer mutex word that names `me` stays so until `me` unlocks it.
  const w = i32[base + WRITER_MU];
  if (w >>> OWNER_SHIFT !== me) {
    throw new Error(
      w >>> OWNER_SHIFT === 0
        ? "sync: Unlock of unlocked RWMutex"
        : "sync: Unlock of an RWMutex write-locked by another thread",
    );
  }
  // A plain read of this thread's own note, written under the writer mutex it still holds.
  writerLeaves(i32, base, i32[base + FLAGGED]);
  releaseWord(i32, base + WRITER_MU, me, w);
}

/** The word index of the writer mutex (for clearing the poison). */
export function writerWord(base: number): number {
  return base + WRITER_MU;
}
