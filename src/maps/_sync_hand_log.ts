/**
 * Internal. The settling of a dead participant's hand log (registry.ts HAND_TAKEN): what a
 * SyncMap `store` or `swap` of a key in the read table held in hand when its thread stopped,
 * given back by the release of its seat without a sweep of the whole map.
 *
 * The log, written by the owner with plain writes to its own seat, in this order:
 *
 * 1. HAND_NEW, the block at the head of its cache's list for the record's size class, then HAND
 *    at HAND_TAKEN with that class, then the pop that takes the block
 *    (Participant.allocateLogged).
 * 2. Before each compare-exchange it tries: HAND_ENTRY, HAND_OLD (the value it expects there),
 *    HAND_NEW for an immediate (a record is named there already), then HAND at HAND_SWAP
 *    (Participant.logSwap).
 * 3. After the exchange: the old record retired (tag, epoch, then count: Participant.retire),
 *    then HAND lowered to 0 (Participant.endLog). Every call leaves HAND 0 or 1, so the next
 *    log is written over no other.
 *
 * A store of a number over a record, whose entry is found before its record is taken, writes
 * 1 and 2 as one: HAND_ENTRY, HAND_OLD, HAND_NEW, then HAND at HAND_SWAP with the class, then the
 * pop (Participant.allocateSwap). A HAND_SWAP whose block still heads its list was never taken,
 * or a settling before put it back. No call logs under a hold (a call nested in a record copy):
 * the outer call's record is reached by nothing but its log, which a nested log would replace.
 *
 * What each stop leaves, and what {@linkcode settleHandLog} does:
 *
 * - Before the pop (HAND_TAKEN or allocateSwap's HAND_SWAP, HAND_NEW still the head): nothing in
 *   hand.
 * - After it (HAND_TAKEN or HAND_SWAP, HAND_NEW taken, the entry still holding HAND_OLD): the new
 *   record is in hand, put back into the seat's cache, which the release gives back.
 * - After the exchange (the entry holds HAND_NEW): the old record is in hand until its retirement
 *   is counted; it is retired into the seat's list (unstamped: whoever sweeps the orphan list
 *   stamps it first, so that readers still holding it finish).
 * - After the retirement (the list holds HAND_OLD): nothing in hand.
 *
 * An entry holding neither HAND_NEW nor HAND_OLD was written by another thread after the stop.
 * When the old value was a record, and the list does not hold it, and the new record is an
 * immediate (so the entry cannot tell), or the exchange may or may not have been this thread's,
 * the log cannot say: the settling gives up, and a sweep is made due, as for a death the log does
 * not cover.
 *
 * Why a word compared is proof: the dead seat's announcement still counts while its release runs
 * (finishRelease clears it after `onReleased`), and no block retired after the death's call
 * began is freed while it counts. So the entry can hold the block HAND_NEW names only through
 * this thread's exchange (nobody else had it), and HAND_OLD, a record, only if that exchange did
 * not happen (once exchanged out, it was in this thread's hand, never freed, never stored again).
 * The list names HAND_OLD only if this thread retired it: a block still listed was never freed,
 * so never stored again to be read as HAND_OLD. And HAND_NEW heads its list in the dead seat's cache only if
 * it was never taken, or a settling put it back, or the call freed it back itself, having raised
 * its word first (SyncCore.releaseUnpublished): the cache is the dead seat's, which only its
 * owner and its releaser change, and a block taken and published is freed by nobody meanwhile.
 *
 * In a step. A `store` whose key the read table lacks keeps its log through the mutex
 * (Participant.keepTaken: HAND_TAKEN again) and, under it, just before the step of the new key
 * writes the record into the key's new entry, hands the record to the step: the mutex's journal
 * names it and the seat (journal.ts J_HAND, J_HAND_SEAT), then the log sets HAND_STEP
 * (Participant.stepHand). Then:
 *
 * - A death before the lock, or waiting for it, or before HAND_STEP: the record is in hand, put
 *   back as above (a rollback does not publish it, and the recovery, finding HAND_STEP unset,
 *   leaves it to the settling).
 * - A death in the step, before its commit: the mutex's recovery, which rolls the step back,
 *   clears HAND_STEP first ({@linkcode handBack}), and the settling puts the record back. The
 *   settling comes after the recovery: seatReleased takes the mutex first, which recovers it.
 * - A death after the commit: the record is the new entry's, and HAND_STEP tells the settling to
 *   leave it (the recovery, finding the journal committed, makes a sweep due for the key count,
 *   which the holder adds after the commit).
 * - A step that throws, alive: its rollback clears HAND_STEP before it writes anything
 *   (SyncCore.locked, Participant.unstepHand).
 *
 * The step leaves no block stray while the journal names the record: LockedTx clears J_HAND
 * around a pop from the cache and for good at an unlisted block, and a step that publishes the
 * record into an entry the rollback does not free (an existing key's) raises the word first, so
 * a recovery that finds J_HAND 0, or the log raised, leaves the sweep to come.
 *
 * The settling can be done again (a releaser that stops in it leaves it to the next): a record
 * put back heads its list (cacheHeads), a retirement is listed. And nothing else frees what a log
 * names before the settling: no sweep runs while a seat holds a log no release has settled
 * (_sync_recovery.ts unsettledLogs), since a block it names is reached by nothing.
 *
 * @module
 */

import { cacheHeads, cachePutBack } from "../_engine/alloc_cache.ts";
import * as alloc_layout from "../_engine/alloc_layout.ts";
import { inViews } from "../_engine/arena.ts";
import { ownerGone } from "../_engine/census.ts";
import * as futex from "../_engine/futex.ts";
import * as journal_module from "../_engine/journal.ts";
import { seatMayHold } from "../_engine/registry.ts";
import * as registry_module from "../_engine/registry.ts";
import { epochAt, listCount, tagAt } from "../_engine/retire_list.ts";
import * as retire_list from "../_engine/retire_list.ts";
import type { SyncCore } from "./_sync_core.ts";
import * as sync_layout from "./_sync_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { CLASS_SIZES, NCLASSES } = alloc_layout;
const { OWNER_SHIFT } = futex;
const { J_HAND } = journal_module;
const {
  CACHE,
  CLAIM,
  HAND,
  HAND_COUNTED,
  HAND_ENTRY,
  HAND_NEW,
  HAND_OLD,
  HAND_STEP,
  HAND_SWAP,
  HAND_TAKEN,
  LIST,
  OWNER,
  SEAT_IN_USE,
  SEAT_RELEASING,
  SEAT_WORDS,
} = registry_module;
const { RL_CAPACITY, RL_COUNT, UNSTAMPED } = retire_list;
const { ENTRY_BYTES, EXPUNGED, K_RECORD, NIL, R_MU, RECORD_HEADER } = sync_layout;

/**
 * Settles the hand log of seat `index`, whose owner is gone or out of calls and whose
 * announcement still counts (registry.ts finishRelease, from its `onReleased`): gives back what
 * the log says the owner held in hand. Returns true when the seat leaves nothing in hand (its
 * hand word 0, or a log settled), false when a sweep must find it (the word raised, or a log
 * that cannot say, or words that are not what a log holds).
 */
export function settleHandLog(core: SyncCore, index: number): boolean {
  const a = core.arena;
  const i32 = a.i32;
  const at = core.registry.seats + index * SEAT_WORDS;
  const hand = Atomics.load(i32, at + HAND);
  if (hand === 0) return true;
  if ((hand & HAND_STEP) !== 0) {
    // Handed to a step that published it, or would have had its recovery clear the flag: unless
    // the owner still holds the mutex, or a recovery of its step is not yet done (a release
    // that did not take the mutex, its owner not gone: the recoverer may have just taken it
    // over, helper-143).
    const journal = core.tx.journal;
    if (journal.active && i32[journal.at + J_HAND] === i32[at + HAND_NEW]) return false;
    return Atomics.load(i32, R_MU) >>> OWNER_SHIFT !== Atomics.load(i32, at + OWNER);
  }
  const phase = hand & 3;
  if (phase !== HAND_TAKEN && phase !== HAND_SWAP) return false;
  const taken = i32[at + HAND_NEW];
  if (taken === NIL) return phase === HAND_SWAP && settleDelete(core, at, hand);
  const cache = i32[at + CACHE];
  const state = takenState(core, taken, cache, hand);
  // HAND_TAKEN names a block; a log whose words are out of range is not a log's.
  if (state === TAKEN_BAD || (state === TAKEN_NONE && phase === HAND_TAKEN)) return false;
  const block = state !== TAKEN_NONE;
  const off = state === TAKEN_OFF;
  const c = logClass(hand);
  if (phase === HAND_TAKEN) {
    if (off) cachePutBack(a, cache, c, taken);
    return true;
  }
  // HAND_SWAP with its block still the list's head: never taken (allocateSwap logs the exchange
  // before its pop), or put back by a settling before this one; the exchange, which comes after
  // the pop, was not made. Nothing in hand, whatever the entry holds now.
  if (block && !off) return true;
  const e = i32[at + HAND_ENTRY];
  const old = i32[at + HAND_OLD];
  if (!inViews(a, e, ENTRY_BYTES) || old <= EXPUNGED) return false;
  const oldRecord = (old & 1) === 0;
  const list = i32[at + LIST];
  if (oldRecord && listed(core, list, old)) return true; // exchanged and retired
  const now = Atomics.load(i32, e >> 2);
  if (block && now === taken) {
    // Exchanged: the new record is published; the old one is in hand until retired.
    return !oldRecord || retire(core, list, old);
  }
  if (oldRecord && now === old) {
    // Not exchanged: the new record, if one was taken, goes back.
    if (off) cachePutBack(a, cache, c, taken);
    return true;
  }
  // Two immediates leave nothing in hand (logSwap logs none; defensive). Otherwise the entry
  // cannot tell whether the exchange was this thread's.
  return !oldRecord && !block;
}

/**
 * Calls `held(block, bytes)` for each block the hand log of seat `index` may say is in hand: the
 * record it took off the cache (unless that block still heads its list), and for a swap or a
 * delete the old record, which the exchange may have taken out of its entry and not yet retired
 * (`bytes` -1: a record, its size not read). For a sweep's marking (_sync_recovery.ts): nothing
 * else reaches these, and a sweep that freed one would free it a second time through the
 * settling, which puts the first back in the seat's cache and retires the second, at the seat's
 * release (a double free: the span's free list and the cache then share the block). The sweep
 * leaves the log's seats alone while their release is to come (unsettledLogs), but the marking
 * decides later than that, and an owner it found alive then may be found gone by now (its end
 * declared meanwhile, or its grace run out), its record in flight no longer marked: so whatever
 * the owner's state, a block a log names is kept. Exactly the logs a release would settle count
 * (registry.ts seatMayHold: announced or parked): a log stays in its seat once settled, and a
 * seat free, or claimed again (its next owner not yet online, or a collect borrowing it), holds a
 * log that names blocks freed since. Words are checked before they are used.
 */
export function forEachHeld(
  core: SyncCore,
  index: number,
  held: (block: number, bytes: number) => void,
): void {
  const a = core.arena;
  const i32 = a.i32;
  const at = core.registry.seats + index * SEAT_WORDS;
  const claim = Atomics.load(i32, at + CLAIM) & 3;
  if (claim !== SEAT_IN_USE && claim !== SEAT_RELEASING) return;
  if (!seatMayHold(core.registry, index)) return;
  const hand = Atomics.load(i32, at + HAND);
  const phase = hand & 3;
  if (phase !== HAND_TAKEN && phase !== HAND_SWAP) return;
  const taken = i32[at + HAND_NEW];
  const state = takenState(core, taken, i32[at + CACHE], hand);
  // A log the settling gives up on (TAKEN_BAD) keeps its block too, if it is one of a class within
  // the views. The marking has reached the whole buffer first (mark), and no settler's views
  // reach further, so only words no log holds (a cache past the buffer's end) come here: the
  // block kept is reported by verify() rather than freed under a log that names it.
  const c = logClass(hand);
  const taking = state === TAKEN_OFF ||
    (state === TAKEN_BAD && c < NCLASSES && inViews(a, taken, CLASS_SIZES[c]));
  if (taking) held(taken, CLASS_SIZES[c]);
  // The old record, out of its entry once the exchange is made, which comes after the take: a
  // swap whose new value is an immediate or nil, or whose record was taken.
  if (phase !== HAND_SWAP) return;
  const old = i32[at + HAND_OLD];
  if (old <= EXPUNGED || (old & 1) !== 0 || !inViews(a, old, RECORD_HEADER)) return;
  if (state === TAKEN_NONE || taking) held(old, -1);
}

/** What a hand log's HAND_NEW names ({@linkcode takenState}): nil or an immediate. */
const TAKEN_NONE = 0;
/** A block that still heads its cache list: never taken, or put back by a settling. */
const TAKEN_HEAD = 1;
/** A block off its cache list: in hand, or published by the exchange or a step. */
const TAKEN_OFF = 2;
/** Words no log holds: a class out of range, a block or a cache past this thread's views. */
const TAKEN_BAD = 3;

/**
 * The size class of the block a hand log names (HAND's bits above the phase, HAND_STEP aside): a
 * delete's HAND_COUNTED makes it out of range, as it is for a log that names no block.
 */
function logClass(hand: number): number {
  return (hand & ~HAND_STEP) >>> 2;
}

/**
 * What a hand log (hand word `hand`, HAND_TAKEN or HAND_SWAP) took, its HAND_NEW `taken` and its
 * seat's CACHE `cache` as the caller read them once (the words it goes on to use):
 * {@linkcode TAKEN_NONE}, {@linkcode TAKEN_HEAD}, {@linkcode TAKEN_OFF} or
 * {@linkcode TAKEN_BAD}. The one answer of both {@linkcode settleHandLog}, which puts a block
 * off its list back, and {@linkcode forEachHeld}, which keeps it from a sweep: they must agree
 * on every log a release settles, or a block is freed twice (or kept for nothing).
 */
function takenState(core: SyncCore, taken: number, cache: number, hand: number): number {
  const a = core.arena;
  if (taken === NIL || (taken & 1) !== 0) return TAKEN_NONE;
  const c = logClass(hand);
  if (!(c < NCLASSES && inViews(a, cache, 8 * NCLASSES) && inViews(a, taken, CLASS_SIZES[c]))) {
    return TAKEN_BAD;
  }
  return cacheHeads(a, cache, c, taken) ? TAKEN_HEAD : TAKEN_OFF;
}

/**
 * {@linkcode settleHandLog} of a delete's log (HAND_SWAP, HAND_NEW nil) in the seat at word `at`,
 * whose hand word is `hand`. Counted (HAND_COUNTED): the exchange is made, and HAND_OLD is in hand
 * until its retirement is listed; else the entry still holding HAND_OLD is proof that it was not
 * made (exchanged out, the record was in the dead call's hand, never freed, never stored again),
 * and anything else cannot say (the exchange made and not counted, or another thread's).
 */
function settleDelete(core: SyncCore, at: number, hand: number): boolean {
  const a = core.arena;
  const i32 = a.i32;
  const e = i32[at + HAND_ENTRY];
  const old = i32[at + HAND_OLD];
  if (!inViews(a, e, ENTRY_BYTES) || old <= EXPUNGED || (old & 1) !== 0) return false;
  const list = i32[at + LIST];
  if (listed(core, list, old)) return true;
  if ((hand & HAND_COUNTED) !== 0) return retire(core, list, old);
  return Atomics.load(i32, e >> 2) === old;
}

/**
 * For the mutex's recovery of a dead holder's step that names `record` (journal.ts J_HAND) as
 * handed to it by the participant at seat word `seat` (J_HAND_SEAT), before the step is rolled
 * back: clears the seat's HAND_STEP, so that its release's settling puts the record back in the
 * cache. Returns whether the seat's death leaves the recovery nothing to sweep: the owner is gone
 * and its word is the log naming the record (HAND_STEP or already cleared) or raised (its release
 * makes a sweep due). The seat is not yet released: its release takes the mutex before it settles
 * (seatReleased), so it comes after this recovery. Words read from the journal are checked.
 */
export function handBack(core: SyncCore, seat: number, record: number): boolean {
  const registry = core.registry;
  const i32 = core.arena.i32;
  const index = (seat - registry.seats) / SEAT_WORDS;
  if (!Number.isInteger(index) || index < 0 || index >= registry.count) return false;
  const owner = Atomics.load(i32, seat + OWNER);
  if (owner === 0 || !ownerGone(owner)) return false;
  const hand = Atomics.load(i32, seat + HAND);
  if (hand === 1) return true;
  if ((hand & 3) !== HAND_TAKEN || i32[seat + HAND_NEW] !== record) return false;
  if ((hand & HAND_STEP) !== 0) i32[seat + HAND] = hand & ~HAND_STEP;
  return true;
}

/**
 * Whether retire list `list` (0: none) holds record `r`: its last entry, as the call that retired
 * it left it. The whole list is walked, which a settling can afford, so that the answer does not
 * rest on nothing else having been appended.
 */
function listed(core: SyncCore, list: number, r: number): boolean {
  if (list === 0) return false;
  const i32 = core.arena.i32;
  const w = list >> 2;
  const tag = r | K_RECORD;
  for (let j = listCount(core.arena, list) - 1; j >= 0; j--) {
    if (i32[tagAt(w, j)] === tag) return true;
  }
  return false;
}

/**
 * Appends record `r` to retire list `list`, unstamped, as its owner's retire would have; false
 * when there is no list, or no room in it (the owner made room before its call: a list without
 * is not one the log describes).
 */
function retire(core: SyncCore, list: number, r: number): boolean {
  if (list === 0) return false;
  const a = core.arena;
  const n = listCount(a, list);
  const w = list >> 2;
  if (n >= a.i32[w + RL_CAPACITY]) return false;
  a.i32[tagAt(w, n)] = r | K_RECORD;
  a.i32[epochAt(w, n)] = UNSTAMPED;
  a.i32[w + RL_COUNT] = n + 1;
  return true;
}
