/**
 * Internal. Mutex words: locks over one 32-bit word of shared memory that record their owner,
 * survive the death of their owner, and never sleep unboundedly.
 *
 * The word (see docs/design.md, "Lock words"):
 *
 * | bits  | meaning                                                                 |
 * | ----- | ----------------------------------------------------------------------- |
 * | 0     | CONTENDED: some thread may be sleeping on the word                      |
 * | 1     | POISONED: a holder died with the lock; what it guards may be half-done  |
 * | 3..31 | the owner id of the holder (census.ts), 0 when unlocked                 |
 *
 * Uncontended, `lock` is one compare-exchange (0 to `owner << 3`) and `unlock` one
 * compare-exchange back: the owner id travels in the same atomic that takes the lock, so
 * recording it costs nothing. The slow path follows Drepper's "Futexes Are Tricky" (mutex 3): a
 * thread about to sleep sets CONTENDED, an unlock that clears it notifies one sleeper, and a
 * woken thread takes the lock with CONTENDED set again, since it cannot know whether others
 * still sleep. `Atomics.wait` compares and enqueues in one step, so no wake-up is lost.
 *
 * Death of the owner: a thread in the slow path that finds the owner *gone* in the census (it is
 * never guessed: see census.ts) takes the lock over with one compare-exchange that writes its
 * own id and POISONED. The caller learns it from the status {@linkcode POISONED}: the engine then
 * repairs the structure the lock guards, and the public locks throw `OwnerDeadError` to their
 * caller, who holds the lock. POISONED stays set, through unlocks, until the holder clears it
 * with {@linkcode clearPoison}, so a repair cut short by another death is redone by the next
 * holder. Sleeps are bounded ({@linkcode WAIT_SLICE_MS}), so a sleeper notices a death without
 * anyone knowing where it sleeps; after each sleep it also checks that it was not itself
 * terminated meanwhile (census.ts, `checkSelf`).
 *
 * `Atomics.wait` blocks the calling agent. Deno, Bun and Node allow that on the main thread;
 * browsers do not.
 *
 * @module
 */

import { checkSelf, ownerGone } from "./census.ts";

/** Bit 0 of a mutex word: some thread may be sleeping on it. */
export const CONTENDED = 1;
/** Bit 1 of a mutex word: a holder died holding it. */
export const POISONED = 2;
/** The owner id sits above the flag bits. */
export const OWNER_SHIFT = 3;

/** Status: not acquired (try-locks only). */
export const NOT_ACQUIRED = 0;
/** Status: acquired, and the lock was not poisoned. */
export const ACQUIRED = 1;
/** Status: acquired, and the lock was poisoned: the caller must repair, then clear the poison. */
export const ACQUIRED_POISONED = 2;

/** Longest single sleep: how soon a sleeper notices its lock's owner died, at worst. */
export const WAIT_SLICE_MS = 50;

/** The word {@linkcode nap} sleeps on: nobody notifies it, so each sleep lasts its timeout. */
const napWord = new Int32Array(new SharedArrayBuffer(4));

/**
 * Sleeps about a millisecond, giving the core up: for the waits that poll shared state no one
 * notifies of (a reader seat coming free, a stop of the world's participants parking, a laggard's
 * announcement moving). Callers check the census (checkSelf) around it, as after every wait.
 */
export function nap(): void {
  Atomics.wait(napWord, 0, 0, 1);
}

/** Times a blocked caller re-reads the word before it sleeps: critical sections are short. */
const SPIN = 100;

type PauseFn = (iterationNumber?: number) => void;
const atomicsPause: PauseFn | undefined = (Atomics as { pause?: PauseFn }).pause;

/** A hint to the CPU that we are busy-waiting; a no-op where `Atomics.pause` is missing. */
export const relax: () => void = typeof atomicsPause === "function"
  ? atomicsPause.bind(Atomics)
  : () => {};

/** The owner id in a mutex word. */
export function ownerOf(word: number): number {
  return word >>> OWNER_SHIFT;
}

// The last take-over by this thread from a dead owner, for OwnerDeadError's threadId: the buffer
// and byte offset of the lock word, and the dead owner's thread id.
let deadBuffer: ArrayBufferLike | null = null;
let deadByte = -1;
let deadThread = -1;

/**
 * The thread id of the dead holder this thread took the lock word at `i32[index]` over from,
 * when its last take-over was of this word and has not been reported yet; -1 otherwise (the
 * word was poisoned by another thread's take-over, this thread's last take-over was of another
 * lock, or it was reported already). Reported once: the OwnerDeadError that follows the
 * take-over names the dead holder, and a later acquisition of the word, still poisoned, names
 * none (another thread may have repaired that death and unlocked since, and a later death be
 * another's).
 */
export function deadOwnerOf(i32: Int32Array, index: number): number {
  if (i32.buffer !== deadBuffer || i32.byteOffset + index * 4 !== deadByte) return -1;
  deadBuffer = null;
  return deadThread;
}

/**
 * Acquires the mutex at `i32[index]` for owner `me`, blocking until it is available. Returns
 * {@linkcode ACQUIRED}, or {@linkcode ACQUIRED_POISONED} when the lock was poisoned (its previous
 * holder died). Throws if `me` already holds it (a deadlock), and `TerminatedError` if this
 * thread was terminated while it slept.
 */
export function lockWord(
  i32: Int32Array,
  index: number,
  me: number,
  onWait?: (waiting: boolean) => void,
): number {
  if (Atomics.compareExchange(i32, index, 0, me << OWNER_SHIFT) === 0) return ACQUIRED;
  return onWait === undefined
    ? lockWordSlow(i32, index, me)
    : lockWordWatched(i32, index, me, onWait);
}

/**
 * The slow path with a watcher: `onWait` hears when the caller is about to sleep and when it is
 * done waiting (a SyncMap participant sleeping in its map's lock holds no reference a recovery
 * must respect). Apart from {@linkcode lockWord}, whose fast path must stay small enough for
 * every engine to inline (JavaScriptCore inlines no function with a `try`).
 */
function lockWordWatched(
  i32: Int32Array,
  index: number,
  me: number,
  onWait: (waiting: boolean) => void,
): number {
  let status: number;
  try {
    status = lockWordSlow(i32, index, me, onWait);
  } catch (error) {
    onWait(false);
    throw error;
  }
  try {
    onWait(false);
  } catch (error) {
    // Taken, but the caller, who gets the error, cannot know: give it back as it was (a
    // poisoned lock stays poisoned). A stack overflow can throw from any call.
    unlockWordSlow(i32, index, me);
    throw error;
  }
  return status;
}

/**
 * {@linkcode lockWord} after its compare-exchange failed: spins, sleeps, takes the lock over
 * from a dead owner. For callers that inline the fast path themselves (the public Mutex).
 */
export function lockWordSlow(
  i32: Int32Array,
  index: number,
  me: number,
  onWait?: (waiting: boolean) => void,
): number {
  let spins = 0;
  let slept = false;
  for (;;) {
    const w = Atomics.load(i32, index);
    const owner = w >>> OWNER_SHIFT;
    if (owner === 0) {
      const next = (me << OWNER_SHIFT) | (w & POISONED) | (slept ? CONTENDED : 0);
      if (Atomics.compareExchange(i32, index, w, next) === w) {
        return (w & POISONED) !== 0 ? ACQUIRED_POISONED : ACQUIRED;
      }
      continue;
    }
    if (owner === me) {
      throw new Error("sync: deadlock: this thread already holds the lock it is waiting for");
    }
    if (spins < SPIN) {
      spins++;
      relax();
      continue;
    }
    if (ownerGone(owner)) {
      // The owner will never unlock: take the lock over, poisoned.
      const next = (me << OWNER_SHIFT) | POISONED | (w & CONTENDED);
      if (Atomics.compareExchange(i32, index, w, next) === w) {
        // Noted without a call: the caller learns it holds the lock only from the return, and
        // a call's entry is where a stack overflow can throw (Mutex `acquire`).
        deadBuffer = i32.buffer;
        deadByte = i32.byteOffset + index * 4;
        deadThread = owner - 1;
        return ACQUIRED_POISONED;
      }
      continue;
    }
    if ((w & CONTENDED) === 0) {
      if (Atomics.compareExchange(i32, index, w, w | CONTENDED) !== w) continue;
    }
    if (!slept) onWait?.(true);
    slept = true;
    Atomics.wait(i32, index, w | CONTENDED, WAIT_SLICE_MS);
    // Spin again before the next sleep, as Go's mutex does once woken. The holder that woke
    // us, or changed the word before we slept, is usually a thread relocking at once; without
    // the spin, a waiter looped through waits that returned at once (100,000 to 480,000 a
    // second against about 5,000 acquisitions, two workers under one Mutex), setting CONTENDED
    // on the word at every turn, which sent each of the holder's unlocks the slow way.
    spins = 0;
    checkSelf();
  }
}

/**
 * Tries once to acquire the mutex at `i32[index]` for `me`. Returns {@linkcode NOT_ACQUIRED},
 * {@linkcode ACQUIRED} or {@linkcode ACQUIRED_POISONED} (free but poisoned, or its owner is gone).
 */
export function tryLockWord(i32: Int32Array, index: number, me: number): number {
  if (Atomics.compareExchange(i32, index, 0, me << OWNER_SHIFT) === 0) return ACQUIRED;
  for (;;) {
    const w = Atomics.load(i32, index);
    const owner = w >>> OWNER_SHIFT;
    if (owner !== 0 && !ownerGone(owner)) return NOT_ACQUIRED;
    // Free but poisoned, or held by a thread that is gone: take it, poisoned.
    const poisoned = owner !== 0 || (w & POISONED) !== 0;
    const next = (me << OWNER_SHIFT) | (poisoned ? POISONED : 0) | (w & CONTENDED);
    if (Atomics.compareExchange(i32, index, w, next) === w) {
      if (owner !== 0) { // noted without a call, as in lockWordSlow
        deadBuffer = i32.buffer;
        deadByte = i32.byteOffset + index * 4;
        deadThread = owner - 1;
      }
      return poisoned ? ACQUIRED_POISONED : ACQUIRED;
    }
  }
}

/**
 * Releases the mutex at `i32[index]`, held by `me`. A poisoned lock stays poisoned. Wakes one
 * sleeper if any may sleep.
 *
 * @throws {Error} if `me` does not hold the lock; the word is left as it was.
 */
export function unlockWord(i32: Int32Array, index: number, me: number): void {
  const mine = me << OWNER_SHIFT;
  const w = Atomics.compareExchange(i32, index, mine, 0);
  if (w !== mine) unlockWordSlow(i32, index, me, w);
}

/**
 * Releases the mutex at `i32[index]` for its holder `me`, who has just read the word as `w`
 * (plainly: a word that names `me` stays so until `me` releases it). When `w` is exactly the
 * held word with no flag, one exchange releases it (cheaper than a compare-exchange on V8): only
 * CONTENDED can have been set since, and the exchange returns it, so a sleeper is woken. Any
 * other `w` goes {@linkcode unlockWordSlow}'s way, which keeps POISONED and throws for a word
 * `me` does not hold.
 */
export function releaseWord(i32: Int32Array, index: number, me: number, w: number): void {
  const mine = me << OWNER_SHIFT;
  if (w !== mine || mine === 0) unlockWordSlow(i32, index, me);
  else if (Atomics.exchange(i32, index, 0) !== mine) Atomics.notify(i32, index, 1);
}

/**
 * {@linkcode unlockWord} after its compare-exchange failed: the word has flags set, or `me`
 * does not hold it (which throws). `w` is the word as last seen (the failed compare-exchange
 * returns it), loaded when not given. Out of line, so that the fast path inlines into its
 * callers.
 */
export function unlockWordSlow(
  i32: Int32Array,
  index: number,
  me: number,
  w: number = Atomics.load(i32, index),
): void {
  for (;;) {
    const owner = w >>> OWNER_SHIFT;
    if (owner !== me) {
      throw new Error(
        owner === 0
          ? "sync: unlock of unlocked mutex"
          : "sync: unlock of a mutex held by another thread (only the holder may unlock it)",
      );
    }
    const found = Atomics.compareExchange(i32, index, w, w & POISONED);
    if (found === w) break;
    w = found; // a sleeper set CONTENDED meanwhile
  }
  if ((w & CONTENDED) !== 0) Atomics.notify(i32, index, 1);
}

/**
 * Sets POISONED on the mutex at `i32[index]` if `me` holds it (else leaves the word, for the
 * unlock that follows to throw as it does for any word `me` does not hold): for the unlock of a
 * holder whose critical section was cut short, a thread that has learned it was terminated
 * (census.ts `fast.stopped`). The unlock then keeps the flag (unlockWordSlow), and the next holder
 * learns it from ACQUIRED_POISONED.
 */
export function poisonHeld(i32: Int32Array, index: number, me: number): void {
  let w = Atomics.load(i32, index);
  while (w >>> OWNER_SHIFT === me && me !== 0 && (w & POISONED) === 0) {
    const found = Atomics.compareExchange(i32, index, w, w | POISONED);
    if (found === w) return;
    w = found;
  }
}

/**
 * Clears POISONED on the mutex at `i32[index]`, held by `me`: what it guards is consistent
 * again. Throws if `me` does not hold it.
 */
export function clearPoison(i32: Int32Array, index: number, me: number): void {
  let w = Atomics.load(i32, index);
  for (;;) {
    if (w >>> OWNER_SHIFT !== me) {
      throw new Error("sync: markConsistent() needs the lock held by the calling thread");
    }
    if ((w & POISONED) === 0) return;
    const found = Atomics.compareExchange(i32, index, w, w & ~POISONED);
    if (found === w) {
      // This thread's take-over of the word, if it was the last and is not reported yet, named
      // a holder whose damage is repaired now: a later poisoning is another's.
      deadOwnerOf(i32, index);
      return;
    }
    w = found;
  }
}
