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
 * | 2     | STARVING: a fair locker has waited past STARVE_MS; handed to it next     |
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
 * Starvation (the public locks: `fair` lockers): a holder that unlocks and locks again at once
 * wins the word over a woken waiter nearly every time, so a waiter could wait for seconds while
 * two workers took turns (helper-176: a main thread's `lock()` waited 7 to 12 s behind two
 * workers that each held the lock 2 ms at a time). As Go's sync.Mutex does, a fair waiter that
 * has waited {@linkcode STARVE_MS} sets STARVING. From then on the lock is not free to anyone
 * else: an unlock keeps the flag and wakes every sleeper, and only a locker that has itself
 * waited that long takes the word, clearing the flag (a waiter starving still sets it again).
 * Newcomers, on the fast path too (the word is not 0), wait their turn. A starving waiter that
 * dies or gives up leaves the flag on a free word: the next fair locker takes it once it has
 * waited STARVE_MS itself, and a try-lock or an engine lock (never fair) takes it at once,
 * keeping the flag for its own unlock to hand on. No atomic is added to an uncontended lock or
 * unlock.
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
/** Bit 2 of a mutex word: a fair waiter has waited {@linkcode STARVE_MS}; the lock is its next. */
export const STARVING = 4;
/** How long a fair waiter waits before it claims the lock's next turn (Go's 1 ms). */
export const STARVE_MS = 1;
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
 * thread was terminated while it slept. `fair`: see {@linkcode lockWordSlow}.
 */
export function lockWord(
  i32: Int32Array,
  index: number,
  me: number,
  onWait?: (waiting: boolean) => void,
  fair = false,
): number {
  if (Atomics.compareExchange(i32, index, 0, me << OWNER_SHIFT) === 0) return ACQUIRED;
  return onWait === undefined
    ? lockWordSlow(i32, index, me, undefined, fair)
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
 * from a dead owner. For callers that inline the fast path themselves (the public Mutex). A
 * `fair` caller (the public locks) claims the lock's next turn once it has waited
 * {@linkcode STARVE_MS} (STARVING, above).
 */
export function lockWordSlow(
  i32: Int32Array,
  index: number,
  me: number,
  onWait?: (waiting: boolean) => void,
  fair = false,
): number {
  let spins = 0;
  let slept = false;
  // When this caller first went to sleep, and whether it has waited long enough since to take a
  // turn the lock hands to the starving (from the start for a caller that is not fair).
  let since = 0;
  let starving = !fair;
  for (;;) {
    const w = Atomics.load(i32, index);
    const owner = w >>> OWNER_SHIFT;
    if (owner === 0) {
      if ((w & STARVING) === 0 || starving) {
        // A fair taker that starved clears the flag (others starving set it again); an unfair
        // one keeps it, so that its unlock hands the lock on.
        const keep = fair ? POISONED : POISONED | STARVING;
        const next = (me << OWNER_SHIFT) | (w & keep) | (slept ? CONTENDED : 0);
        if (Atomics.compareExchange(i32, index, w, next) === w) {
          return (w & POISONED) !== 0 ? ACQUIRED_POISONED : ACQUIRED;
        }
        continue;
      }
      // Free, but the next turn is a starving waiter's: sleep (below) until this caller starves
      // too, in short sleeps, in case that waiter is gone and the flag is left.
    } else {
      if (owner === me) {
        throw new Error("sync: deadlock: this thread already holds the lock it is waiting for");
      }
      if (spins < SPIN) {
        spins++;
        relax();
        continue;
      }
      if (ownerGone(owner)) {
        // The owner will never unlock: take the lock over, poisoned. The view's buffer and
        // offset are read first: their getters are calls where no optimizing tier inlines them,
        // and a stack overflow at one after the exchange left the lock held by a call that threw
        // RangeError (Bun, stack_overflow_test, once in a CI run).
        const buffer = i32.buffer;
        const byte = i32.byteOffset + index * 4;
        const next = (me << OWNER_SHIFT) | POISONED | (w & (CONTENDED | STARVING));
        if (Atomics.compareExchange(i32, index, w, next) === w) {
          // Noted without a call: the caller learns it holds the lock only from the return, and
          // a call's entry is where a stack overflow can throw (Mutex `acquire`).
          deadBuffer = buffer;
          deadByte = byte;
          deadThread = owner - 1;
          return ACQUIRED_POISONED;
        }
        continue;
      }
    }
    const flags = starving && fair ? CONTENDED | STARVING : CONTENDED;
    if ((w & flags) !== flags) {
      if (Atomics.compareExchange(i32, index, w, w | flags) !== w) continue;
    }
    if (!slept) onWait?.(true);
    if (since === 0) since = performance.now();
    slept = true;
    Atomics.wait(i32, index, w | flags, owner === 0 ? STARVE_MS : WAIT_SLICE_MS);
    if (!starving) starving = performance.now() - since >= STARVE_MS;
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
    // Free but poisoned or handed to a starving waiter, or held by a thread that is gone: take
    // it, poisoned if it was or its holder is gone. STARVING is kept: this caller's unlock hands
    // the lock on to the starving waiter (a try-lock that deferred to it could fail for good, if
    // that waiter has gone and left the flag).
    const poisoned = owner !== 0 || (w & POISONED) !== 0;
    const next = (me << OWNER_SHIFT) | (poisoned ? POISONED : 0) | (w & (CONTENDED | STARVING));
    const buffer = i32.buffer; // read before the exchange, as in lockWordSlow
    const byte = i32.byteOffset + index * 4;
    if (Atomics.compareExchange(i32, index, w, next) === w) {
      if (owner !== 0) { // noted without a call, as in lockWordSlow
        deadBuffer = buffer;
        deadByte = byte;
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
    // STARVING stays: the lock's next turn is a starving waiter's, which every sleeper is woken
    // to find (only that one may take it).
    const found = Atomics.compareExchange(i32, index, w, w & (POISONED | STARVING));
    if (found === w) break;
    w = found; // a sleeper set CONTENDED or STARVING meanwhile
  }
  if ((w & STARVING) !== 0) Atomics.notify(i32, index);
  else if ((w & CONTENDED) !== 0) Atomics.notify(i32, index, 1);
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
