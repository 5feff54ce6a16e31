/**
 * Internal. The participant registry: the seats through which the objects attached to a SyncMap
 * take part in reclamation (reclaim.ts) and in recovery (src/maps/_sync_recovery.ts).
 *
 * A seat is claimed by an attached object, or reserved by a parent for a worker that adopts it
 * when it attaches, and released when its owner closes the map or its worker ends. The claim
 * word carries a generation, so that a late release, or an owner still running after its share
 * was released, can tell its seat has moved on. A seat released with a retire list or an
 * allocation cache in it is an orphan, which the other participants sweep (reclaim.ts). The
 * registry also stops the world for a recovery: {@linkcode pauseWorld} waits until every
 * participant of another live thread is parked or offline.
 *
 * The seat words are listed below (SEAT_WORDS and its offsets); docs/design.md has the table of
 * who writes and reads each.
 *
 * @module
 */

import { cachedBytes, repairCache } from "./alloc_cache.ts";
import { underLock } from "./allocator.ts";
import type { Arena } from "./arena.ts";
import {
  checkAlive,
  checkSelf,
  ownerDeclaredGone,
  ownerEndingOrGone,
  ownerGone,
  ownerId,
  ownerMayBeInCall,
  ownerOutOfCalls,
} from "./census.ts";
import { nap, relax } from "./futex.ts";
import { dropDuplicates } from "./retire_list.ts";
import { unrefTimer } from "./unref_timer.ts";

/**
 * Words in one participant seat: claim, announcement, retire list, allocation cache, and
 * padding to a 64-byte cache line, since every participant writes its own seat and reads the
 * others'.
 */
export const SEAT_WORDS = 16;
export const CLAIM = 0, ANNOUNCE = 1, LIST = 2, CACHE = 3;
/**
 * The owner id (census.ts) of the thread that holds the seat, or is claiming it (claimFree); 0
 * when none.
 */
export const OWNER = 4;
/**
 * 1 while the owner sleeps in a lock of the map: it holds no reference but its own record in
 * flight, INFLIGHT, so a pause of the world may proceed without it (see pauseWorld).
 */
export const PARKED = 5;
/** PARKED's value for a participant parked holding nothing but its INFLIGHT record. */
export const PARKED_CLEAN = 1;
/**
 * PARKED's value for a participant parked inside a hold: a call nested in user code that an outer
 * call of the same participant runs while it decodes a record. It holds that record too, which no
 * seat word names, so the world may stop around it but nothing may be swept meanwhile
 * ({@linkcode parkedHolding}).
 */
export const PARKED_HOLDING = 2;
/** The value record the owner had allocated and not yet published when it parked. */
export const INFLIGHT = 6;
/**
 * The owner id of the thread releasing the seat (releaseSeat), from before its claim moves to
 * RELEASING until after it is FREE: a releaser that dies midway is known, and another thread
 * finishes the release (stuckReleases, finishRelease). Cleared by the releaser, or by the seat's
 * next claimer if it comes first (claimFree).
 */
export const RELEASER = 7;
/**
 * The owner id of the thread that reserved the seat for a worker (a parent sharing the map),
 * stored as it reserves and read while the seat waits for the worker to adopt it: the worker
 * cannot attach once its parent is gone (the runtimes end a worker with the thread that started
 * it), so a reservation whose reserver is gone is a dead seat (deadSeats). Cleared (0) as the
 * seat is released (finishRelease), so that it never names an earlier reservation's parent.
 */
export const RESERVER = 8;
/**
 * The hand word, written by the owner alone with plain writes: 0 while it runs the fast path of a
 * read (SyncMap `load` and the like, which take no block and free none), 1 from before a write
 * takes a block in hand (allocates one, or unlinks one it will retire) or a step frees or moves
 * blocks (a collect, room made in its retire list, its going offline) until its next read begins
 * (Participant.raiseHand, and the read token that makes enterRead lower it), or a hand log from 2
 * up ({@linkcode HAND_TAKEN}). A death with the seat in a call but the word 0 left nothing in hand
 * ({@linkcode seatMayHold}); with a hand log, only what the log names. Written after
 * the claim check of the call, so a released owner writes it no more, but for one that was
 * descheduled between the two for the whole grace (a leak at worst: the next owner's blocks in
 * hand at its death are swept by no one until another death).
 */
export const HAND = 9;
/**
 * HAND's values from {@linkcode HAND_TAKEN} up: the hand log, which says exactly what a `store`
 * or `swap` of a key the read table holds has in hand, so that its death needs no sweep (the
 * release settles it: maps/_sync_hand_log.ts). The low two bits are the phase; the rest, for a
 * record taken off the cache, its size class. HAND_TAKEN: the owner is taking, or has taken, the
 * block named by {@linkcode HAND_NEW} off its cache (Participant.allocateLogged writes both, then
 * pops). {@linkcode HAND_SWAP}: about to exchange {@linkcode HAND_OLD} in entry
 * {@linkcode HAND_ENTRY} for HAND_NEW (a record of that class, or an immediate), or has
 * exchanged it, retired the old value or not; written by Participant.allocateSwap before its
 * pop, so with the block maybe not yet taken (still its list's head). Every call leaves the word 0 or 1: one that
 * returns lowers it (Participant.endLog), one that throws raises it (dropLog), so a log is never
 * written over another (a death between the words of two logs would mix them).
 */
export const HAND_TAKEN = 2, HAND_SWAP = 3;
/**
 * A flag of a HAND_TAKEN log: the record HAND_NEW names is handed to the step of a new key that
 * the owner runs under the SyncMap's mutex, which names it in its journal (journal.ts J_HAND).
 * From then on the step decides the record's fate: published by the commit, or, rolled back
 * after a death, given back by the mutex's recovery, which clears this flag so that the
 * release's settling puts the record back in the cache (maps/_sync_hand_log.ts, "In a step").
 */
export const HAND_STEP = 1 << 30;
/**
 * A flag of a delete's HAND_SWAP log (HAND_NEW nil): its exchange is made and the key counted out;
 * HAND_OLD, a record, is in hand until its retirement is listed.
 */
export const HAND_COUNTED = 1 << 29;
/** The hand log's new value: a record taken off the cache, or an immediate (HAND_SWAP only). */
export const HAND_NEW = 10;
/** The hand log's entry (HAND_SWAP). */
export const HAND_ENTRY = 11;
/** The hand log's old value: what the exchange expects in HAND_ENTRY (HAND_SWAP). */
export const HAND_OLD = 12;
/**
 * A SyncMap's keys counted in by this seat's owners less those counted out, as an int32 that
 * wraps: the map's count is R_COUNT plus every seat's KEYS, mod 2^32 ({@linkcode seatsKeys}).
 * Written by the owner alone, plainly (a count of a shared word cost a delete or a store over a
 * deleted key an atomic add, about 10 ns on Deno, and two workers adding and deleting keys
 * fought over its line); never cleared, so a seat's next owner goes on from the value its last
 * one left, which stays in the sum.
 */
export const KEYS = 13;

/** The sweep word's value while a sweep is due (Registry.sweepWord). */
export const SWEEP_DUE = 1;
/**
 * The sweep word's value while no sweep is due but a release is put off (finishRelease): the
 * retries it prompts finish the release, whose end may make a sweep due; none is made for it.
 */
export const RELEASES_PUT_OFF = 2;

/**
 * After a sweep, or once the hint of a put-off release is seen to be stale (`from`, the value
 * the caller found; SWEEP_DUE after a sweep): the sweep word to RELEASES_PUT_OFF while a release
 * is still put off, else to 0, unless it changed from `from` meanwhile. Looked at once more
 * after the change: a release put off meanwhile found the word raised and left it so, and must
 * find it raised still.
 */
export function lowerSweepWord(registry: Registry, from: number): void {
  const i32 = registry.arena.i32;
  const to = releasesPutOff(registry) ? RELEASES_PUT_OFF : 0;
  if (to === from) return;
  if (Atomics.compareExchange(i32, registry.sweepWord, from, to) !== from) return;
  if (to === 0 && releasesPutOff(registry)) {
    Atomics.compareExchange(i32, registry.sweepWord, 0, RELEASES_PUT_OFF);
  }
}
// The claim word is a generation times four plus a state. Releasing a seat moves it to the next
// generation, so whoever held the old one can tell: an owner that is still running after its
// share was released (Deno's terminate() does not stop a busy worker) finds its token stale at
// its next call and throws, and a release for a generation that has passed does nothing.
/**
 * The claim states:
 *
 * - SEAT_FREE: nobody's.
 * - SEAT_RESERVED: reserved by a parent for a worker that has not attached yet.
 * - SEAT_IN_USE: owned by an attached object, or borrowed by a sweeper.
 * - SEAT_RELEASING: released, but its owner may still be finishing a call (see releaseSeat's
 *   `graceMs`): its announcement still counts and nobody may claim or sweep it yet.
 */
export const SEAT_FREE = 0, SEAT_RESERVED = 1, SEAT_IN_USE = 2, SEAT_RELEASING = 3;

/** The generation of claim word `claim`. */
export function generationOf(claim: number): number {
  return claim >>> 2;
}

/**
 * The claim word of the release of claim `claim` while it is under way (releaseSeat's first half:
 * the next generation, SEAT_RELEASING): until the release finishes, nobody claims the seat.
 */
export function releasingOf(claim: number): number {
  return (((claim >>> 2) + 1) << 2) | SEAT_RELEASING;
}

/** The state of claim word `claim`: SEAT_FREE, SEAT_RESERVED, SEAT_IN_USE or SEAT_RELEASING. */
export function stateOf(claim: number): number {
  return claim & 3;
}

/** A claimed seat: its index and the claim word that proves the claim. */
export interface Ticket {
  readonly index: number;
  readonly word: number;
}

/** Where a structure keeps its participants: all word indices into the arena. */
export interface Registry {
  readonly arena: Arena;
  /** The global epoch. */
  readonly epochWord: number;
  /** Owner id of a thread stopping the world for a recovery, or 0 (see pauseWorld). */
  readonly pauseWord: number;
  /** How many released seats still hold retired blocks: a hint that a sweep is worthwhile. */
  readonly orphanWord: number;
  /**
   * {@linkcode SWEEP_DUE} while the structure has a sweep of what dead participants left due
   * that could not be run yet (no stop of the world in time), {@linkcode RELEASES_PUT_OFF}
   * while only a release waits to be finished, 0 otherwise: participants retry at their
   * quiescent points and as they come online, with a backoff (Participant.onSweepDue in
   * reclaim.ts), while it is not 0.
   */
  readonly sweepWord: number;
  /** One past the highest seat index ever claimed: scans stop there. */
  readonly highWord: number;
  /** The first seat. */
  readonly seats: number;
  /** The number of seats. */
  readonly count: number;
}
/** Claims a free seat for the caller. Throws RangeError when every seat is taken. */
export function claimSeat(registry: Registry): Ticket {
  return take(registry, SEAT_IN_USE);
}

/**
 * Reserves a free seat for a worker that will {@linkcode adoptSeat} it. Returns the seat and its
 * generation, which the worker's handle carries.
 */
export function reserveSeat(registry: Registry): { index: number; generation: number } {
  const ticket = take(registry, SEAT_RESERVED);
  return { index: ticket.index, generation: ticket.word >>> 2 };
}

/** Takes over a seat reserved for this worker. Throws TypeError if it is not reserved. */
export function adoptSeat(registry: Registry, index: number, generation: number): Ticket {
  if (!Number.isInteger(index) || index < 0 || index >= registry.count) {
    throw new TypeError("the handle's participant seat is out of range");
  }
  const i32 = registry.arena.i32;
  const at = registry.seats + index * SEAT_WORDS + CLAIM;
  const reserved = (generation << 2) | SEAT_RESERVED;
  const word = (generation << 2) | SEAT_IN_USE;
  if (Atomics.compareExchange(i32, at, reserved, word) !== reserved) {
    throw new TypeError("this handle's share was already attached or has been released");
  }
  betweenAdoptSteps?.();
  // OWNER, while the claim is this adoption's, from whatever it holds: 0 as the reservation left
  // it, the reserving parent's id if it died reserving, or a claimer's that read the seat free
  // before it was reserved and took OWNER (from 0) when it came to, to give it back once its
  // claim failed. Taken from the reservation's value alone, this worker's OWNER failed in that
  // window, and the seat stayed IN_USE with no owner while its worker ran: pauseWorld and
  // parkedHolding passed it by, and its release never learned its owner (helper-169). The
  // claimer's giving back is a compare-exchange from its own id, which then fails. CLAIM is read
  // after OWNER, and OWNER given back to what it held unless the claim is still this
  // adoption's: a worker terminated and descheduled right here has its share released after the
  // grace (with no owner to wait for), and the seat may then be claimed by another thread, whose
  // OWNER this must not overwrite (deadSeats would then take that live participant's seat for
  // the zombie's).
  const me = ownerId();
  const owner = at - CLAIM + OWNER;
  for (;;) {
    const held = Atomics.load(i32, owner);
    if (held === me || Atomics.load(i32, at) !== word) break;
    if (Atomics.compareExchange(i32, owner, held, me) !== held) continue;
    if (Atomics.load(i32, at) !== word) Atomics.compareExchange(i32, owner, me, held);
    break;
  }
  return { index, word };
}

/** A test's stand-in for a descheduling inside {@linkcode adoptSeat}, between its two steps. */
let betweenAdoptSteps: (() => void) | undefined;

/** For tests: runs `hook` inside every {@linkcode adoptSeat}, between its claim and its OWNER. */
export function setAdoptHookForTests(hook: (() => void) | undefined): void {
  betweenAdoptSteps = hook;
}

/**
 * How many times {@linkcode take} looks over the seats before it throws, while its last look lost
 * a free seat to another claimer.
 */
const CLAIM_PASSES = 4;

function take(registry: Registry, state: number): Ticket {
  const i32 = registry.arena.i32;
  for (let pass = 1;; pass++) {
    // A seat seen free and not claimed: lost to another claimer at work on it (its OWNER, or a
    // claim that moved the seat on after this thread read it free), which may be free again by
    // now. A look over the seats is not atomic: two threads that close and attach in a loop each
    // free a seat as the other looks, and one that lost seat 1 to the other, then found seat 2
    // taken by it, threw though seat 1 was free again (helper-171). So the seats are looked over
    // again, a few times, before the claim fails; every loss was another claimer's step.
    let lost = false;
    for (let i = 0; i < registry.count; i++) {
      const at = registry.seats + i * SEAT_WORDS;
      if (stateOf(Atomics.load(i32, at + CLAIM)) !== SEAT_FREE) continue;
      // The high-water mark first, then the claim, as rw_lock.ts's readerSeat does: a claimer
      // stopped between the two (dead, or a stack overflow, which can throw from any call) leaves
      // a free seat below the mark, which costs scans a seat; the other order left a seat claimed
      // above it, where deadSeats, stuckReleases and pauseWorld never look: dead, it was reaped
      // only once a later claim had to go past it, and never if it was the last seat (helper-169).
      raiseHigh(registry, i);
      const word = claimFree(i32, at, state);
      if (word === -1) {
        if (stateOf(Atomics.load(i32, at + CLAIM)) === SEAT_FREE) lost = true;
        continue;
      }
      // A released seat's leftovers (an orphan's list or cache) now belong to the taker: its
      // participant, or the worker it reserves the seat for. A reservation released unadopted
      // counts them again (finishRelease).
      if (i32[at + LIST] !== 0 || i32[at + CACHE] !== 0) Atomics.sub(i32, registry.orphanWord, 1);
      // A reserved seat has no owner until its worker adopts it (adoptSeat): never the parent,
      // whose death must not release a live worker's seat. The parent is its RESERVER, written
      // before OWNER is cleared, so that a parent stopped anywhere here leaves its id in one of
      // the two for deadSeats.
      if (state === SEAT_RESERVED) {
        Atomics.store(i32, at + RESERVER, ownerId());
        Atomics.store(i32, at + OWNER, 0);
      }
      return { index: i, word };
    }
    if (!lost || pass === CLAIM_PASSES) break;
    relax();
  }
  throw new RangeError(
    `all ${registry.count} participant seats of this SyncMap are taken: release the shares ` +
      "of workers that are gone (the worker adapters do it), close() unused SyncMap objects, " +
      "or create the map with a larger maxParticipants (a thread's attach() of a map gives back " +
      "its object for the same codecs, on its one seat; a user codec is the same only as the " +
      "same object, so attach with one codec object, not a new one each time)",
  );
}

/**
 * Claims the seat at word `at` if it is free, as `state`, for the calling thread; returns the
 * new claim word, or -1 if the seat is not free or another live thread is claiming it.
 *
 * The caller's owner id goes into OWNER *before* the claim, by compare-exchange from 0, so that
 * a claimer stopped anywhere leaves a seat someone can recover: stopped before its claim, a free
 * seat whose OWNER names a gone thread, which the next claimer takes over; stopped after, a seat
 * in use by a gone thread, which deadSeats finds. A borrower gives the seat back in the
 * other order, FREE first and then OWNER cleared, so that stopped in between it too leaves a
 * free seat whose OWNER is gone.
 *
 * A claim that fails after OWNER was taken gives OWNER back to whoever held it, not to 0: the
 * seat was seen free before OWNER was read, and a claimer descheduled between the two may find
 * the seat claimed meanwhile by a thread that has since ended, its OWNER that thread's. Cleared,
 * the seat stayed in use with no owner, which deadSeats never names (a pool worker's look at a
 * free seat, in its sweep of released ones, outlived a tinypool `isolateWorkers` worker that
 * claimed the seat, ran its task and was terminated: its seat was never given back, helper-168).
 */
export function claimFree(i32: Int32Array, at: number, state: number): number {
  const old = Atomics.load(i32, at + CLAIM);
  if ((old & 3) !== SEAT_FREE) return -1;
  betweenClaimSteps?.(CLAIM_LOOKED);
  // Another claimer is at it, or was when it died: take over only a gone one's place, and only
  // while the seat is still free as read (below).
  const held = takeOwner(i32, at, old);
  betweenClaimSteps?.(OWNER_LOOKED);
  if (held === -1) return -1;
  const word = (old & ~3) | state;
  if (Atomics.compareExchange(i32, at + CLAIM, old, word) !== old) {
    const me = ownerId();
    Atomics.compareExchange(i32, at + OWNER, me, held === me ? 0 : held);
    return -1;
  }
  // The seat's last releaser stores FREE and then clears RELEASER: caught in between, its id is
  // still there, and the release of this claim would take it for a live releaser's at work and
  // do nothing, the seat in use for good by a participant that closed (two workers attaching
  // and closing in a loop lost a seat so in one run of two: helper-171). All that release has
  // left is its own clearing, a compare-exchange from its id, which then finds 0 and does
  // nothing; nobody else releases a claim this new before the claimer has it.
  const releaser = Atomics.load(i32, at + RELEASER);
  if (releaser !== 0) Atomics.compareExchange(i32, at + RELEASER, releaser, 0);
  betweenClaimSteps?.(CLAIMED);
  return word;
}

/**
 * A test's stand-in for a descheduling inside {@linkcode claimFree}: after its look at CLAIM
 * ({@linkcode CLAIM_LOOKED}), after its take of OWNER, or its refusal to
 * ({@linkcode OWNER_LOOKED}), and after its claim ({@linkcode CLAIMED}), before its caller's
 * next step.
 */
let betweenClaimSteps: ((step: number) => void) | undefined;

/** The steps {@linkcode setClaimHookForTests}'s hook is called at. */
export const CLAIM_LOOKED = 0, OWNER_LOOKED = 1, CLAIMED = 2;

/**
 * For tests: runs `hook` inside every {@linkcode claimFree} of a free seat, before its OWNER and
 * after it (see {@linkcode betweenClaimSteps}).
 */
export function setClaimHookForTests(hook: ((step: number) => void) | undefined): void {
  betweenClaimSteps = hook;
}

/**
 * claimFree's take of the OWNER of the seat at `at`, read free at claim word `old`: from 0, or
 * from a gone thread, and either only while CLAIM is still `old`. Returns what OWNER held (as
 * takeWord does), or -1 when a live thread holds it or the seat is no longer free as read.
 *
 * A claimer descheduled after its look at CLAIM may come to a seat claimed meanwhile. Its OWNER
 * taken over, even for the few instructions before the claim fails and gives it back, stood in
 * for the seat's: a gone owner's, whose release read it, took the dead owner for a live one (no
 * rollback of its step under the map's mutex and the allocator lock before its retire list and
 * cache were repaired and made orphans, and on Deno no wait for a zombie's call); a reserved
 * seat's 0, a live claimer's id where its worker's adoption expected 0 (see adoptSeat), or, the
 * claimer dying there, a gone one's that deadSeats took for the reservation's, releasing it
 * under a live parent and worker (helper-169). So CLAIM is looked at again after OWNER is read
 * (and, for a gone holder, found gone): a claim made since moved OWNER from what was read, so
 * the compare-exchange fails unless the seat is free still, or OWNER came back to that value (0
 * again: a reservation made and its OWNER cleared in between, which adoptSeat copes with; a gone
 * thread's id again: only from a claimer that took it while the seat was free, and whose claim
 * then failed, which needs a claim in between that did not take OWNER).
 */
function takeOwner(i32: Int32Array, at: number, old: number): number {
  const me = ownerId();
  const held = Atomics.load(i32, at + OWNER);
  if (held === me) return me;
  if (held !== 0 && !ownerGone(held)) return -1;
  if (Atomics.load(i32, at + CLAIM) !== old) return -1;
  return Atomics.compareExchange(i32, at + OWNER, held, me) === held ? held : -1;
}

/**
 * Makes the calling thread the one word `w` names (a seat's OWNER or RELEASER, written before
 * the step it guards): from 0, or from a thread that is gone, which died at that step. Returns
 * the id the word held before (0, this thread's, or the gone thread's), or -1 when a live
 * thread holds it.
 */
function takeWord(i32: Int32Array, w: number): number {
  const me = ownerId();
  const held = Atomics.compareExchange(i32, w, 0, me);
  if (held === 0 || held === me) return held;
  return ownerGone(held) && Atomics.compareExchange(i32, w, held, me) === held ? held : -1;
}

/**
 * One past the highest seat ever claimed (the high-water mark, where every scan of the seats
 * stops), checked against the number of seats: a corrupt mark is a RangeError, not a scan of
 * the words past the seats, which the scans would take for seats and write.
 */
export function seatHigh(registry: Registry): number {
  const high = Atomics.load(registry.arena.i32, registry.highWord);
  if (!(high >= 0 && high <= registry.count)) {
    throw new RangeError(
      `corrupt participant registry: high-water mark ${high} of ${registry.count} seats`,
    );
  }
  return high;
}

/** Records that seat `index` is in use, for scans that stop at the high-water mark. */
function raiseHigh(registry: Registry, index: number): void {
  const i32 = registry.arena.i32;
  let high = Atomics.load(i32, registry.highWord);
  while (high <= index) {
    const found = Atomics.compareExchange(i32, registry.highWord, high, index + 1);
    if (found === high) return;
    high = found;
  }
}

/**
 * What a map does as one of its seats is released ({@linkcode finishRelease}), before the seat's
 * retire list and cache are repaired: `deadOwner` is the owner's thread id if it is gone (else
 * 0), and `mayHold` whether the owner may have left blocks in hand when it stopped
 * ({@linkcode seatMayHold}).
 */
export type OnReleased = (deadOwner: number, mayHold: boolean) => void;

/**
 * Whether the owner of seat `index` may have left blocks in hand (taken out of every shared
 * structure, or unlinked and not yet retired) as it last wrote its seat: it was inside a call of
 * the map, announced (a participant comes online, announcing, before its call touches anything,
 * and withdraws only once it holds nothing: at the end of its task, or while a `loadOrCompute`'s
 * `fn` runs) or parked (waiting in a lock or a pause, perhaps with a record in flight), and not
 * on a read's fast path ({@linkcode HAND}). An owner out of calls cannot have left a block in
 * hand: what it owns is in its retire list and cache, which the release makes orphans, and its
 * steps under a lock ran inside calls. Nor can one in a read's fast path, which takes, frees and
 * unlinks nothing; a step under the mutex it may run is the mutex's to repair (recoverMutex
 * leaves a sweep due). Read by the release of a seat whose owner can no longer write it (gone,
 * or out of calls: see {@linkcode finishRelease}).
 */
export function seatMayHold(registry: Registry, index: number): boolean {
  const i32 = registry.arena.i32;
  const at = registry.seats + index * SEAT_WORDS;
  return (Atomics.load(i32, at + ANNOUNCE) !== 0 || Atomics.load(i32, at + PARKED) !== 0) &&
    Atomics.load(i32, at + HAND) !== 0;
}

/**
 * Whether seat `index`'s hand word holds a hand log ({@linkcode HAND_TAKEN}), which the release
 * of the seat settles (maps/_sync_hand_log.ts) rather than a sweep.
 */
export function seatLogged(registry: Registry, index: number): boolean {
  const at = registry.seats + index * SEAT_WORDS;
  return (Atomics.load(registry.arena.i32, at + HAND) & HAND_TAKEN) !== 0;
}

/**
 * Gives up seat `index` of `generation`, from any thread, once its owner is gone (it closed
 * the map, or its worker ended); does nothing if that generation has passed. `graceMs` is for
 * owners that may still be running (Deno's terminate() does not stop a busy worker): the
 * seat is withdrawn at once but its announcement counts for that long. The owner's
 * announcement is then withdrawn so it no longer holds reclamation back. What it retired and
 * did not free yet, and its allocation cache, stay in the seat for the other participants to
 * sweep (as an orphan); both are repaired first, since an owner stopped midway through a
 * list move or a cache push left them off (see {@linkcode repairList}). Before the repairs,
 * a lock the owner died holding is rolled back, and `onReleased` runs with the owner's thread
 * id if it is gone (0 if not known gone): a SyncMap rolls back its mutex there and notes that
 * a sweep is due, for the blocks an owner stopped mid-operation held in hand.
 *
 * With a grace, the rest of the release runs in a timer, which must not throw (the host would
 * end the process): what it throws (a RangeError for corrupt memory) goes to `onError`, or is
 * dropped without one. Every lock it takes is released as the error passes; the seat stays
 * RELEASING, its announcement counting until a release finishes it.
 *
 * RELEASER found held by another live thread while the claim is still `generation`'s, unreleased,
 * is waited for ({@linkcode awaitReleaser}): a release of this claim is that thread's only once
 * it moves the claim on. Held past the wait, the release is tried again from a timer (`retried`,
 * such a try, which only looks), every RELEASE_RETRY_MS while the claim is still unreleased.
 */
export function releaseSeat(
  registry: Registry,
  index: number,
  generation: number,
  graceMs = 0,
  onReleased?: OnReleased,
  onError?: (error: unknown) => void,
  retried = false,
): void {
  const i32 = registry.arena.i32;
  const at = registry.seats + index * SEAT_WORDS;
  const next = (generation + 1) << 2;
  // The releaser is recorded first (as a claimer records itself, see claimFree), so that one
  // that dies anywhere from here on leaves a release others can finish.
  const me = ownerId();
  const held = Atomics.load(i32, at + RELEASER);
  if (takeWord(i32, at + RELEASER) === -1) {
    // Another live thread holds RELEASER. Once it has moved the claim on, the release is its
    // own. Before, it may be a release of this generation about to move it, a releaser of the
    // seat's last claim between its FREE and its clearing, or a stale one (a reap or an adapter
    // that found the seat dead in a generation since passed) that took the word, will find its
    // generation passed, and give it back a few instructions later: left to it, the seat stayed
    // claimed (a closed participant's, IN_USE by its live thread until that thread ended;
    // helper-169, helper-171). So it is waited for (awaitReleaser), and, held past the wait,
    // tried again from a timer, without a wait, for as long as the claim is still this
    // generation's and not yet being released.
    const taken = awaitReleaser(i32, at, generation, retried ? 0 : RELEASER_WAIT_MS);
    if (taken === undefined) {
      later(RELEASE_RETRY_MS, onError, () => {
        releaseSeat(registry, index, generation, graceMs, onReleased, onError, true);
      });
    }
    if (taken !== true) return;
  }
  for (;;) {
    const old = Atomics.load(i32, at + CLAIM);
    if (old >>> 2 !== generation || (old & 3) === SEAT_FREE) {
      if ((old & 3) === SEAT_RELEASING) {
        // A release under way (of this generation, or a later one). This thread's own (a
        // grace's timer, or a call up the stack) is left to finish. One whose releaser died,
        // taken over just now, this call finishes: dropped, RELEASING with no RELEASER, nobody
        // would (stuckReleases takes over only releasers that are gone); so does one put off with
        // no releaser (finishRelease). A reap that found the seat dead before that releaser began
        // comes here.
        if (held !== me) finishRelease(registry, index, onReleased, onError);
        return;
      }
      Atomics.compareExchange(i32, at + RELEASER, me, 0);
      return;
    }
    // Releasing until finished: no borrower (#sweepReleased) or new owner takes it meanwhile.
    if (Atomics.compareExchange(i32, at + CLAIM, old, next | SEAT_RELEASING) === old) break;
  }
  // With a grace, the owner (a worker its runtime has not stopped yet) finds its token stale
  // at its next call at once, while whatever call it is inside keeps its protection.
  if (graceMs > 0) {
    later(graceMs, onError, () => {
      // Unless finished meanwhile: by a reap of this thread once the owner was gone
      // (stuckReleases), or by another thread that took it over from a releaser it found gone,
      // the seat perhaps claimed and released again since.
      if (Atomics.load(i32, at + CLAIM) !== (next | SEAT_RELEASING)) return;
      finishRelease(registry, index, onReleased, onError);
    });
  } else {
    finishRelease(registry, index, onReleased, onError);
  }
}

/** How long a release's first {@linkcode awaitReleaser} waits before it leaves it to a timer. */
const RELEASER_WAIT_MS = 20;

/**
 * For a release of claim `generation` of the seat at `at` that found RELEASER held by another
 * live thread: waits for the word, up to `waitMs` (a hundred spins at least), while the claim is
 * still that generation's, unreleased (in use or reserved). Such a hold is a few steps long: a
 * releaser of the seat's last claim between its FREE and its clearing (a claimer clears that
 * one: claimFree), a thread that read an old release and takes its word to find it finished and
 * gives it back (takeRelease, a late releaseSeat), or a release of this very claim about to move
 * it to RELEASING. Dropped, the release of a closing
 * owner left its seat in use for good. True once the word is the caller's; false once the claim
 * has moved on (released by the holder, whose release it is); undefined if the wait ran out.
 */
function awaitReleaser(
  i32: Int32Array,
  at: number,
  generation: number,
  waitMs: number,
): boolean | undefined {
  const deadline = performance.now() + waitMs;
  for (let spins = 0;; spins++) {
    const claim = Atomics.load(i32, at + CLAIM);
    const state = claim & 3;
    if (claim >>> 2 !== generation || (state !== SEAT_IN_USE && state !== SEAT_RESERVED)) {
      return false;
    }
    if (takeWord(i32, at + RELEASER) !== -1) return true;
    if (spins < 100) {
      relax();
    } else if (performance.now() > deadline) {
      return undefined;
    } else {
      nap();
    }
  }
}

/**
 * {@linkcode releaseSeat} of seat `index` (claimed at `generation`) by this thread again, after
 * a release of its own was cut short (a stack overflow): finishes it if it is RELEASING with this
 * thread as releaser, else releases the seat from the start (a generation that moved on is left
 * alone), calling `onReleased` as releaseSeat does. For a microtask: it never throws, and what it
 * cannot finish stays RELEASING until this thread is gone, when others take it over.
 */
export function finishOwnRelease(
  registry: Registry,
  index: number,
  generation: number,
  onReleased?: OnReleased,
): void {
  try {
    const i32 = registry.arena.i32;
    const at = registry.seats + index * SEAT_WORDS;
    const claim = Atomics.load(i32, at + CLAIM);
    if ((claim & 3) === SEAT_RELEASING && Atomics.load(i32, at + RELEASER) === ownerId()) {
      finishRelease(registry, index, onReleased);
    } else {
      releaseSeat(registry, index, generation, 0, onReleased);
    }
  } catch {
    // Corrupt memory or a terminated thread: nothing more to do here.
  }
}

/**
 * {@linkcode releaseSeat}, with no grace, by a live thread: of its own seat (a participant's
 * `close`, an attach whose object was not made) or of a dead one (a reap). A release cut short
 * (a stack overflow) is this live thread's, which no other thread takes over
 * ({@linkcode stuckReleases} takes over only releasers that are gone): it is finished as the task
 * ends, on a short stack ({@linkcode finishOwnRelease}), and the error goes on.
 */
export function releaseOwnSeat(
  registry: Registry,
  index: number,
  generation: number,
  onReleased?: OnReleased,
): void {
  try {
    releaseSeat(registry, index, generation, 0, onReleased);
  } catch (error) {
    queueMicrotask(() => finishOwnRelease(registry, index, generation, onReleased));
    throw error;
  }
}

/**
 * The second half of {@linkcode releaseSeat}, for the seat `index` in RELEASING whose releaser
 * is the caller. Each step can be done again: a releaser that dies in here leaves the rest to
 * whoever takes the release over ({@linkcode stuckReleases}). (R_ORPHANS, a hint, may then be
 * raised twice for one seat: it only makes sweeps look once more.)
 */
export function finishRelease(
  registry: Registry,
  index: number,
  onReleased?: OnReleased,
  onError?: (error: unknown) => void,
): void {
  const i32 = registry.arena.i32;
  const at = registry.seats + index * SEAT_WORDS;
  const claim = Atomics.load(i32, at + CLAIM);
  if ((claim & 3) !== SEAT_RELEASING) return;
  // An owner that may still be inside a call it was in when its end was learned (a Deno zombie
  // whose OS thread runs and has not run since: census.ts ownerMayBeInCall), say descheduled
  // between taking a block from the seat's cache and publishing it: the repairs below, and the
  // announcement cleared, would run beside that call. The release waits, RELEASING, for the
  // owner to run or end, with no releaser: any thread may finish it once the owner is out of
  // calls (stuckReleases), this one from a timer, others as they reap or retry a sweep (which
  // the sweep word hints at), so that a releaser busy or itself terminated holds nothing back.
  const owner = Atomics.load(i32, at + OWNER);
  if (owner !== 0 && owner !== ownerId() && ownerMayBeInCall(owner)) {
    Atomics.compareExchange(i32, at + RELEASER, ownerId(), 0);
    finishLater(registry, index, claim, onReleased, onError);
    return;
  }
  // An owner that died holding a lock was mid-mutation: its journal, rolled back by the
  // lock's next holder, may restore words of its retire list and cache. Roll it back first
  // (a lock held by a dead owner is taken at once), so the repairs below and whoever sweeps
  // the orphan see the lists as the rollback leaves them, and never free a block the
  // rollback makes reachable again. The allocator first: a SyncMap's recovery allocates.
  const gone = owner !== 0 && ownerGone(owner);
  // Taken whoever holds it: another thread may be rolling the owner's step back right now,
  // and the repairs below must see the words it restores.
  if (gone) underLock(registry.arena, () => {});
  // A releaser that outlived the grace (a zombie) may have had the release taken over
  // (stuckReleases) and finished, and the seat claimed again since: it writes nothing more.
  // So may one whose `onReleased` finished it (a reap up the stack). Nor does its `onReleased`
  // settle a hand log (mayHold false): the settling writes the seat's cache and list, which may
  // be a new owner's by now (helper-141); the release's new releaser settles it.
  const mine = (): boolean =>
    Atomics.load(i32, at + RELEASER) === ownerId() && Atomics.load(i32, at + CLAIM) === claim;
  onReleased?.(gone ? owner : 0, mine() && seatMayHold(registry, index));
  if (!mine()) return;
  const cache = i32[at + CACHE];
  if (cache !== 0) repairCache(registry.arena, cache);
  repairList(registry, index);
  if (!mine()) return;
  // A releaser marked terminating (a worker's reap, the worker terminated meanwhile) stops here,
  // its release left RELEASING for others to take over once it is gone: past the grace, the
  // stores below could land on the seat's next owner. What is left of the window is the few
  // statements from this check to the stores.
  checkAlive();
  Atomics.store(i32, at + OWNER, 0);
  Atomics.store(i32, at + RESERVER, 0);
  Atomics.store(i32, at + PARKED, 0);
  Atomics.store(i32, at + ANNOUNCE, 0);
  // An orphan: a released seat with a retire list or a cache, for others to sweep.
  if (i32[at + LIST] !== 0 || i32[at + CACHE] !== 0) Atomics.add(i32, registry.orphanWord, 1);
  Atomics.compareExchange(i32, at + CLAIM, claim, (claim & ~3) | SEAT_FREE);
  Atomics.compareExchange(i32, at + RELEASER, ownerId(), 0);
}

/** How often a release waiting for its owner to leave a call (finishRelease) looks again. */
const RELEASE_RETRY_MS = 20;

/**
 * Finishes the release of seat `index`, RELEASING at `claim` with no releaser, from a timer
 * ({@linkcode finishRelease}, which may put it off again), and marks a sweep due so that every
 * participant looks again at its next quiescent points (stuckReleases). Unless the release was
 * finished or taken meanwhile.
 */
function finishLater(
  registry: Registry,
  index: number,
  claim: number,
  onReleased?: OnReleased,
  onError?: (error: unknown) => void,
): void {
  const i32 = registry.arena.i32;
  const at = registry.seats + index * SEAT_WORDS;
  // A hint for the retries, which finish it; a sweep only if its end finds the owner may have
  // held blocks in hand (onReleased). Never lowers a sweep already due.
  Atomics.compareExchange(i32, registry.sweepWord, 0, RELEASES_PUT_OFF);
  later(RELEASE_RETRY_MS, onError, () => {
    if (Atomics.load(i32, at + CLAIM) !== claim) return;
    if (!takeRelease(i32, at, claim, false)) return;
    finishRelease(registry, index, onReleased, onError);
  });
}

/**
 * Runs a release's `work` `ms` from now, in a timer that does not keep the process alive (once
 * the process is done, nothing is left to release for). What `work` throws goes to `onError`,
 * or is dropped without one: a timer's callback must not throw (the host would end the
 * process).
 */
function later(
  ms: number,
  onError: ((error: unknown) => void) | undefined,
  work: () => void,
): void {
  const timer = setTimeout(() => {
    try {
      work();
    } catch (error) {
      onError?.(error);
    }
  }, ms);
  unrefTimer(timer);
}

/**
 * Seats left RELEASING by a releaser that is gone, each taken over by the caller, who must
 * then {@linkcode finishRelease} it: left alone, such a seat's announcement would hold
 * reclamation back for good. So too those put off with no releaser for an owner that may have
 * been in a call, once it is out of calls (finishRelease). Also the caller's own releases that
 * wait out a grace ({@linkcode releaseSeat}'s timer) for an owner that is gone by now: the grace
 * protects a call the owner may still be in, and a gone owner is in none. Finished now, what the
 * owner held in hand is swept now, and a verify() right after a worker is declared gone finds it
 * swept, whichever of the two timers (the declaration's and the release's) fires first.
 */
export function stuckReleases(registry: Registry): number[] {
  const i32 = registry.arena.i32;
  const high = seatHigh(registry);
  const stuck: number[] = [];
  for (let i = 0; i < high; i++) {
    const at = registry.seats + i * SEAT_WORDS;
    const claim = Atomics.load(i32, at + CLAIM);
    if ((claim & 3) !== SEAT_RELEASING) continue;
    const releaser = Atomics.load(i32, at + RELEASER);
    if (releaser === ownerId()) {
      // Gone, or past the grace and in no call (a release finishRelease put off).
      const owner = Atomics.load(i32, at + OWNER);
      if (owner !== 0 && (ownerGone(owner) || ownerOutOfCalls(owner))) stuck.push(i);
      continue;
    }
    if (releaser === 0) {
      // A release put off for an owner that may have been in a call (finishRelease): anyone's.
      const owner = Atomics.load(i32, at + OWNER);
      if (owner !== 0 && ownerOutOfCalls(owner) && takeRelease(i32, at, claim, false)) {
        stuck.push(i);
      }
      continue;
    }
    if (!ownerGone(releaser)) continue;
    if (takeRelease(i32, at, claim, true)) stuck.push(i);
  }
  return stuck;
}

/**
 * Makes the caller the releaser of the seat at `at` (RELEASER from 0, or with `fromGone` from a
 * gone thread too), for the release whose claim word is `claim`; false, having taken nothing,
 * when another live thread has it or the release is no longer that one. A thread that read the
 * seat RELEASING and then took its word after another had finished the release (and the seat
 * perhaps been claimed again) would otherwise keep RELEASER on a seat it does not release, and
 * every later release of it would take that for a live releaser and do nothing.
 */
export function takeRelease(
  i32: Int32Array,
  at: number,
  claim: number,
  fromGone: boolean,
): boolean {
  const me = ownerId();
  let held = 0;
  if (fromGone) {
    held = takeWord(i32, at + RELEASER);
    if (held === -1) return false;
  } else if (Atomics.compareExchange(i32, at + RELEASER, 0, me) !== 0) return false;
  const now = Atomics.load(i32, at + CLAIM);
  if (now === claim) return true;
  // On a seat being released still, given back to whoever held it, as claimFree gives OWNER
  // back: taken over from a gone releaser of a later release (the one read was finished
  // meanwhile, the seat claimed and released again, and that releaser died in turn), RELEASER
  // cleared left the seat RELEASING with no releaser, which stuckReleases finishes only as a
  // release put off for an owner, and never once OWNER is cleared (a reservation's release, or
  // a releaser that died after its store of OWNER): the seat was lost, its announcement holding
  // reclamation back, and every sweep off, for good (helper-169). On any other, cleared: no
  // release can begin while this thread holds the word, and a gone releaser's id on a seat not
  // being released is only what one that died after FREE leaves.
  const back = (now & 3) === SEAT_RELEASING && held !== me ? held : 0;
  Atomics.compareExchange(i32, at + RELEASER, me, back);
  return false;
}

/**
 * Whether a seat is being released (RELEASING: by a releaser at work, or put off): its
 * announcement still holds reclamation back until the release is finished. With `putOff`, only
 * a release put off (no releaser: {@linkcode releasesPutOff}); with `which`, only a seat whose
 * index it accepts.
 */
export function seatsReleasing(
  registry: Registry,
  putOff = false,
  which?: (index: number) => boolean,
): boolean {
  const i32 = registry.arena.i32;
  const high = seatHigh(registry);
  for (let i = 0; i < high; i++) {
    const at = registry.seats + i * SEAT_WORDS;
    if ((Atomics.load(i32, at + CLAIM) & 3) !== SEAT_RELEASING) continue;
    if (putOff && Atomics.load(i32, at + RELEASER) !== 0) continue;
    if (which === undefined || which(i)) return true;
  }
  return false;
}

/**
 * Whether a release is put off (RELEASING with no releaser: finishRelease) and not yet finished:
 * a sweep retry must then stay due, since retries are how the participants of a thread whose
 * event loop is busy come to finish it (stuckReleases).
 */
export function releasesPutOff(registry: Registry): boolean {
  return seatsReleasing(registry, true);
}

/**
 * Makes the retire list of seat `index`, whose owner is gone, consistent again: an owner
 * stopped in the middle of moving an entry (see #sweep) left one block listed twice, which
 * would be freed twice. Call it before the seat is released.
 */
export function repairList(registry: Registry, index: number): void {
  // The list may lie past this thread's views (another worker grew the buffer for it).
  const a = registry.arena;
  a.reach(a.buffer.byteLength);
  const list = a.i32[registry.seats + index * SEAT_WORDS + LIST];
  if (list === 0) return;
  dropDuplicates(a, list);
}

/**
 * Seats held by threads that are gone (census.ts): their owners will never release them. So
 * too a seat reserved for a worker whose parent, its RESERVER, is gone, and one its worker was
 * adopting (IN_USE, no OWNER yet) when both had gone: the adapter of the parent, which would have
 * released it, went with the parent. Seats being claimed or in their release grace are left
 * alone.
 */
export function deadSeats(registry: Registry): { index: number; generation: number }[] {
  const i32 = registry.arena.i32;
  const high = seatHigh(registry);
  const dead: { index: number; generation: number }[] = [];
  for (let i = 0; i < high; i++) {
    const at = registry.seats + i * SEAT_WORDS;
    const claim = Atomics.load(i32, at + CLAIM);
    const state = claim & 3;
    if (state !== SEAT_IN_USE && state !== SEAT_RESERVED) continue;
    const owner = seatOwner(i32, at, state);
    if (owner !== 0 && ownerOutOfCalls(owner)) dead.push({ index: i, generation: claim >>> 2 });
  }
  return dead;
}

/**
 * The owner id of the seat at `at`, in use or reserved (claim state `state`), or 0. A reservation
 * is its RESERVER's, once written (from then on OWNER is 0, the parent's id for the instant before
 * it clears it, or a stale claimer's that took it from 0 and gives it back once its claim fails:
 * dead there, that claimer's id made a live parent's reservation dead, helper-169); before, its
 * OWNER's, the parent that died before writing it. RESERVER is cleared as a seat is released, so
 * that it is never an earlier reservation's.
 */
function seatOwner(i32: Int32Array, at: number, state: number): number {
  const owner = Atomics.load(i32, at + OWNER);
  if (owner !== 0 && state !== SEAT_RESERVED) return owner;
  const reserver = Atomics.load(i32, at + RESERVER);
  return reserver !== 0 ? reserver : owner;
}

/**
 * Whether some seat is free or on its way to being free: free (since the claim that failed
 * looked: given back meanwhile, or at the end of a sweep's borrow, below); in use or reserved by
 * a thread recorded ending or gone (census.ts), which comes free once its thread is gone and a
 * live participant gives it back ({@linkcode deadSeats}); released and not finished yet
 * (RELEASING: put off while a Deno zombie may be in a call, finished from a timer of its
 * releaser's); or, released, borrowed by a sweeper of what it holds (the orphan word counts it
 * until the borrow has given the seat back: Participant #sweepReleased), for the length of one
 * sweep. A claim that found every seat taken waits a while for such a seat. The orphan word is
 * read first: read 0, every borrow it counted has ended, and the seat it borrowed reads free
 * here, or claimed by a new owner since.
 */
export function seatsComingFree(registry: Registry): boolean {
  return Atomics.load(registry.arena.i32, registry.orphanWord) > 0 ||
    seatHigh(registry) < registry.count || seatsOfEnded(registry, true) > 0;
}

/**
 * How many seats are held by threads recorded ending or gone (in use or reserved), and, with
 * `orReleasing`, released and not finished yet or free (then at least 1: the loop stops at it).
 */
export function seatsOfEnded(registry: Registry, orReleasing = false): number {
  const i32 = registry.arena.i32;
  const high = seatHigh(registry);
  let n = 0;
  for (let i = 0; i < high; i++) {
    const at = registry.seats + i * SEAT_WORDS;
    const state = Atomics.load(i32, at + CLAIM) & 3;
    if (state === SEAT_RELEASING || state === SEAT_FREE) {
      if (orReleasing) return n + 1;
      continue;
    }
    if (state !== SEAT_IN_USE && state !== SEAT_RESERVED) continue;
    const owner = seatOwner(i32, at, state);
    if (owner !== 0 && ownerEndingOrGone(owner)) n++;
  }
  return n;
}

/** What kept the last {@linkcode pauseWorld} that failed from stopping the world. */
export let pauseBlocker = "";

/**
 * Stops the world for a recovery: raises the pause word, after which every participant of
 * another live thread parks at its next quiescent point (every operation it was inside has
 * then ended) or as it comes online, and waits until each is parked (in a pause or in a lock
 * of the map) or offline. The caller holds the map's mutex. Returns false, with the pause
 * lowered, if another live thread is recovering already or if some participant does not park
 * within `timeoutMs` (it may sit in one long task): nothing is ever assumed of a live thread.
 * Throws TerminatedError, with the pause lowered, if the caller is found terminated as it waits.
 */
export function pauseWorld(registry: Registry, timeoutMs: number): boolean {
  const i32 = registry.arena.i32;
  const me = ownerId();
  for (;;) {
    const holder = Atomics.compareExchange(i32, registry.pauseWord, 0, me);
    if (holder === 0 || holder === me) break;
    if (!ownerGone(holder)) {
      pauseBlocker = `thread ${holder - 1}, which is stopping the world itself`;
      return false;
    }
    // A recoverer died pausing: take its pause over.
    if (Atomics.compareExchange(i32, registry.pauseWord, holder, me) === holder) break;
  }
  // From here on the pause word is this thread's: whatever throws (TerminatedError, a corrupt
  // seat's RangeError, a stack overflow in any call, performance.now() included: on Deno it is
  // JavaScript) gives it back before the error goes on, or every other participant would park
  // for good. Given back written out: the catch runs a frame above the call that threw, with no
  // call of ours, which could overflow again.
  try {
    return awaitParked(registry, me, timeoutMs);
  } catch (error) {
    if (Atomics.compareExchange(i32, registry.pauseWord, me, 0) === me) {
      Atomics.notify(i32, registry.pauseWord);
    }
    throw error;
  }
}

/**
 * {@linkcode pauseWorld}'s wait, the pause word raised by `me`: true once every participant of
 * another live thread is parked or offline; false, with the pause lowered, after `timeoutMs`.
 */
function awaitParked(registry: Registry, me: number, timeoutMs: number): boolean {
  const i32 = registry.arena.i32;
  // The monotonic clock: a step of the wall clock (NTP, a VM resumed) must neither cut the wait
  // short nor stretch it, while this thread holds the map's mutex.
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    let waiting = false;
    pauseBlocker = "";
    const high = seatHigh(registry);
    for (let i = 0; i < high && !waiting; i++) {
      const at = registry.seats + i * SEAT_WORDS;
      const state = Atomics.load(i32, at + CLAIM) & 3;
      if (state === SEAT_FREE || state === SEAT_RESERVED) continue;
      const owner = Atomics.load(i32, at + OWNER);
      if (owner === me || owner === 0 || ownerOutOfCalls(owner)) continue;
      if (Atomics.load(i32, at + PARKED) !== 0 || Atomics.load(i32, at + ANNOUNCE) === 0) {
        continue;
      }
      waiting = true;
      pauseBlocker = `participant seat ${i} (thread ${owner - 1})`;
    }
    if (!waiting) return true;
    if (performance.now() > deadline) {
      resumeWorld(registry);
      return false;
    }
    nap();
    // As after every wait in shmap: a thread terminated meanwhile goes no further (census.ts).
    // It would otherwise wait on, up to `timeoutMs`, and sweep past the grace after which its
    // end is declared and others take its pause, its releases and its seat over.
    checkSelf();
  }
}

/** Lowers the pause word, if this thread's, and wakes the parked participants. */
export function resumeWorld(registry: Registry): void {
  const i32 = registry.arena.i32;
  // Only this thread's own pause: one that outlived the grace (a zombie) may find another
  // thread's in the word, taken over from it as a dead pauser's.
  const me = ownerId();
  if (Atomics.compareExchange(i32, registry.pauseWord, me, 0) !== me) return;
  Atomics.notify(i32, registry.pauseWord);
}

/** The epoch seat `index` announces: 0 when the seat is free or its participant offline. */
export function seatAnnouncement(registry: Registry, index: number): number {
  const at = registry.seats + index * SEAT_WORDS;
  const i32 = registry.arena.i32;
  return stateOf(Atomics.load(i32, at + CLAIM)) === SEAT_FREE
    ? 0
    : Atomics.load(i32, at + ANNOUNCE);
}

/** The record a parked participant of seat `index` holds in flight, or 0. */
export function seatInflight(registry: Registry, index: number): number {
  const at = registry.seats + index * SEAT_WORDS;
  const i32 = registry.arena.i32;
  return Atomics.load(i32, at + PARKED) !== 0 ? i32[at + INFLIGHT] : 0;
}

/**
 * Whether a participant of another thread is parked inside a hold ({@linkcode PARKED_HOLDING}):
 * with the world stopped, a sweep must then wait, since a record that participant decodes may be
 * one a gone or cut-short step replaced and never retired, reachable from nowhere but its decode.
 */
export function parkedHolding(registry: Registry): boolean {
  const i32 = registry.arena.i32;
  const high = seatHigh(registry);
  const me = ownerId();
  for (let i = 0; i < high; i++) {
    const at = registry.seats + i * SEAT_WORDS;
    if (Atomics.load(i32, at + PARKED) !== PARKED_HOLDING) continue;
    // A gone thread's decode never goes on: what it held is for the sweep to free. This
    // thread's own participants are skipped, as by pauseWorld: none waits while this one runs.
    const owner = Atomics.load(i32, at + OWNER);
    if (owner !== 0 && owner !== me && !ownerOutOfCalls(owner)) return true;
  }
  return false;
}

/** The retire list and cache blocks of seat `index` (0 when none), for ownership checks. */
export function seatBlocks(registry: Registry, index: number): { list: number; cache: number } {
  const at = registry.seats + index * SEAT_WORDS;
  return { list: registry.arena.i32[at + LIST], cache: registry.arena.i32[at + CACHE] };
}

/** Seats in use or reserved (for stats). */
export function seatsInUse(registry: Registry): number {
  const i32 = registry.arena.i32;
  let n = 0;
  for (let i = 0; i < registry.count; i++) {
    if ((Atomics.load(i32, registry.seats + i * SEAT_WORDS + CLAIM) & 3) !== SEAT_FREE) n++;
  }
  return n;
}

/**
 * Whether a seat (in use, reserved or releasing) belongs to a thread declared gone that may still
 * be inside a call ({@linkcode deadSeats} and {@linkcode stuckReleases} leave it until it is not):
 * for verify(), which waits for it to settle rather than pass it by.
 */
export function settlingSeats(registry: Registry): boolean {
  const i32 = registry.arena.i32;
  const high = seatHigh(registry);
  for (let i = 0; i < high; i++) {
    const at = registry.seats + i * SEAT_WORDS;
    if ((Atomics.load(i32, at + CLAIM) & 3) === SEAT_FREE) continue;
    const owner = Atomics.load(i32, at + OWNER);
    if (owner !== 0 && ownerDeclaredGone(owner) && ownerMayBeInCall(owner)) return true;
  }
  return false;
}

/**
 * The sum of every seat's {@linkcode KEYS} word, wrapping as an int32 does: a seat's word wraps
 * too, and the sum is right mod 2^32, which is exact while the count itself is below 2^31 (a map
 * of 32-bit offsets cannot hold more keys). Seats past the high-water mark were never claimed:
 * their words are 0.
 */
export function seatsKeys(registry: Registry): number {
  const i32 = registry.arena.i32;
  const high = seatHigh(registry);
  let total = 0;
  for (let i = 0; i < high; i++) {
    total = (total + Atomics.load(i32, registry.seats + i * SEAT_WORDS + KEYS)) | 0;
  }
  return total;
}

/** Bytes sitting free in the allocation caches of every seat (for stats). */
export function seatsCachedBytes(registry: Registry): number {
  const i32 = registry.arena.i32;
  let total = 0;
  for (let i = 0; i < registry.count; i++) {
    const cache = i32[registry.seats + i * SEAT_WORDS + CACHE];
    if (cache !== 0) total += cachedBytes(registry.arena, cache);
  }
  return total;
}
