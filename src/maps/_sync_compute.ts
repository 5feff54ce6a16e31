/**
 * Internal. The steps of SyncMap's `loadOrCompute` and `compute` on shared memory: finding a
 * key's state, claiming an absent key for a computation, publishing or abandoning it, waiting
 * for another thread's, and replacing a state only if it is still the one a callback saw.
 * _sync_store.ts runs the user's callback between these steps, outside every lock, and encodes
 * and decodes.
 *
 * A claimed key's entry holds a pending `p` (below 0: `-owner`, see _sync_layout.ts) while its
 * owner runs `fn`. Every other method reads a pending key as absent, since `p <= EXPUNGED`
 * already means "no value" to each of them: `load`, `has`, `range` and iteration skip it;
 * `delete` and the compare-and-X find nothing; `store`, `swap`, `loadOrStore` and `compute`
 * store over it (as over NIL) and wake its waiters, and the computation, when it ends, finds
 * the value there and returns it as loaded. Only `loadOrCompute` waits for a pending key.
 *
 * Which entries may be written outside the mutex (the rule Go's sync.Map follows): an entry
 * found in a read table stays in the map until it is expunged, and nothing but the mutex's
 * holder unexpunges, so a compare-exchange on it from any state but EXPUNGED lands in the map.
 * An entry found only in the dirty table may be removed from it (a delete) once the mutex is
 * released, so it is written only under the mutex, in the same step that found it. A step here
 * that must look a key up again (after a callback ran, or a wait) looks it up afresh: it keeps
 * no entry across user code or a quiescent point.
 *
 * Two rules keep a pending entry where its owner will look for it: a pending entry is never
 * removed from the dirty table (a delete finds no value in it and leaves it), and never
 * expunged (only NIL entries are), so the key's lookup reaches it until its owner settles it,
 * or a `clear` expunges it with every other entry.
 *
 * @module
 */

import { checkSelf, ownerDeclaredGone } from "../_engine/census.ts";
import * as futex from "../_engine/futex.ts";
import type { Probe } from "../_engine/slots.ts";
import type { SyncCore } from "./_sync_core.ts";
import * as sync_layout from "./_sync_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { WAIT_SLICE_MS } = futex;
const { AMENDED, EXPUNGED, NIL, R_READ } = sync_layout;

/** What {@linkcode claim} returns when it installed the caller's pending `p`. */
export const CLAIMED = NIL;

/** The entry where the last {@linkcode claim} found another thread's pending `p`. */
let pendingEntry = 0;

/** The entry of the pending `p` the last {@linkcode claim} returned (see {@linkcode claim}). */
export function claimedEntry(): number {
  return pendingEntry;
}

/** Wakes the threads waiting for the computation of entry `e` (its `p` just left pending). */
export function wakeWaiters(i32: Int32Array, e: number): void {
  Atomics.notify(i32, e >> 2);
}

/**
 * Claims `probe`'s key for a computation by the thread whose pending `p` is `mine`, unless it
 * has a value: Go's LoadOrStore, storing `mine`. Returns {@linkcode CLAIMED} when `mine` is
 * installed (a new key, a deleted one, or one whose computing thread is gone); a value record
 * (above EXPUNGED) when the key has a value, for the caller to decode before its next quiescent
 * point; or a pending `p` when a live thread computes the key (`mine` itself if it is this
 * thread), its entry then in {@linkcode claimedEntry}. Installing `mine` changes no count.
 * The step under the mutex runs through `access` (SyncAccess.lockedOrReclaim: a new key in a
 * full map is tried again once memory is reclaimed, or a map of deleted keys cleared); it is safe
 * to run again.
 */
export function claim(
  core: SyncCore,
  probe: Probe,
  mine: number,
  access: { lockedOrReclaim<T>(step: () => T): T },
): number {
  const a = core.arena;
  const read = Atomics.load(a.i32, R_READ);
  const e = core.findIn(core.readTable(read), probe);
  if (e !== 0) {
    // A read table's entry: a compare-exchange from anything but EXPUNGED lands in the map.
    const p = tryClaim(a.i32, e, mine);
    if (p !== EXPUNGED) return p;
  }
  return access.lockedOrReclaim(() => {
    const read2 = a.i32[R_READ]; // plainly, under the mutex (see SyncCore.readWord)
    let e2 = core.findIn(core.readTable(read2), probe);
    if (e2 !== 0) {
      core.unexpungeLocked(e2, probe);
      return tryClaim(a.i32, e2, mine);
    }
    e2 = core.findIn(core.dirtyTable(), probe);
    if (e2 !== 0) {
      const p = tryClaim(a.i32, e2, mine);
      core.missLocked();
      return p;
    }
    core.addLocked(probe, mine, read2);
    return CLAIMED;
  });
}

/** {@linkcode claim} on entry `e`: EXPUNGED when it is expunged (the caller takes the lock). */
function tryClaim(i32: Int32Array, e: number, mine: number): number {
  let p = Atomics.load(i32, e >> 2);
  for (;;) {
    if (p === EXPUNGED || p > EXPUNGED) return p;
    // NIL, or pending: a pending `p` of a thread that is gone is as good as NIL. (Of a live
    // thread, or of this one, it goes back to the caller.)
    if (p !== NIL && (p === mine || !ownerDeclaredGone(-p))) {
      pendingEntry = e;
      return p;
    }
    const found = Atomics.compareExchange(i32, e >> 2, p, mine);
    if (found === p) return CLAIMED;
    p = found;
  }
}

/**
 * Waits, outside every lock and holding nothing, for one slice at most, while entry `e` holds
 * the pending `p` of a live owner; then the caller looks the key up again, and comes back if
 * it is still pending. The slice bounds the wait, so that an owner's death (which nobody
 * signals) is seen within one, and this thread learns if it was itself terminated meanwhile
 * (`checkSelf` throws). The entry may be freed meanwhile (a `clear`, an abandon that drops a
 * dirty-only key), and even reused for another key's claim with the same `p`: so the word is
 * trusted for one slice only, and the key is looked up afresh after each.
 */
export function awaitSettled(i32: Int32Array, e: number, p: number): void {
  if (Atomics.load(i32, e >> 2) !== p || ownerDeclaredGone(-p)) return;
  Atomics.wait(i32, e >> 2, p, WAIT_SLICE_MS);
  checkSelf();
}

/**
 * Publishes `record`, the computed value, for `probe`'s key, claimed by pending `p` `mine`.
 * The key is absent to every other method until then, so the record is stored over whatever
 * absent state the key has now: `mine`, NIL (the claim was stored over, then deleted),
 * another thread's pending `p` (which it then finds settled) or no entry at all (a `clear`).
 * Returns NIL when `record` is stored (and counted); else the value record found (another
 * method stored the key meanwhile), for the caller to decode, and to free `record`. The
 * caller holds `record` as its record in flight.
 */
export function settle(core: SyncCore, probe: Probe, record: number): number {
  return store(core, probe, record, false);
}

/**
 * Gives up the claim `mine` on `probe`'s key (the computation threw): NIL again, and its
 * waiters woken, one of which then claims the key. Nothing if the claim was stored over.
 */
export function abandon(core: SyncCore, probe: Probe, mine: number): void {
  const a = core.arena;
  const read = Atomics.load(a.i32, R_READ);
  const e = core.findIn(core.readTable(read), probe);
  // A key of a read table has that one entry (an expunged one too: a store puts it back).
  if (e !== 0) {
    if (Atomics.compareExchange(a.i32, e >> 2, mine, NIL) === mine) wakeWaiters(a.i32, e);
    return;
  }
  if ((read & AMENDED) === 0) return;
  core.locked(() => {
    let e2 = core.findIn(core.readTable(a.i32[R_READ]), probe); // plainly: under the mutex
    if (e2 !== 0) {
      if (Atomics.compareExchange(a.i32, e2 >> 2, mine, NIL) === mine) wakeWaiters(a.i32, e2);
      return;
    }
    const dirty = core.dirtyTable();
    e2 = core.findIn(dirty, probe);
    if (e2 === 0 || Atomics.compareExchange(a.i32, e2 >> 2, mine, NIL) !== mine) return;
    // A dirty-only key goes with its claim: claims of fresh keys whose fn fails would
    // otherwise fill the dirty table with NIL entries that no promotion comes to drop (the
    // claims count no miss). No miss is counted here either: a promotion of the table each
    // time made the heap churn. Only the lock's holder writes a dirty-only entry's `p`, so it
    // is still NIL. Its waiters look the key up again and find it absent. An abandon short of
    // retire room (after a MapFullError in computeClaimed) leaves the NIL entry in place.
    if (core.participant.canRetire) core.removeFromDirty(dirty!, probe, e2);
    wakeWaiters(a.i32, e2);
  });
}

/**
 * The value record of `probe`'s key, or 0 when it has none (no entry, NIL, EXPUNGED or
 * pending): Go's Load up to the entry, with a miss counted when it takes the lock. The record
 * stays readable until the caller's next quiescent point.
 */
export function current(core: SyncCore, probe: Probe): number {
  return valueAt(core, currentEntry(core, probe));
}

/** The entry of `probe`'s key as {@linkcode current} finds it, or 0. */
export function currentEntry(core: SyncCore, probe: Probe): number {
  const read = Atomics.load(core.arena.i32, R_READ);
  const e = core.findIn(core.readTable(read), probe);
  if (e !== 0 || (read & AMENDED) === 0) return e;
  return core.entryLocked(probe, read);
}

/** Entry `e`'s value word, loaded: 0 for no entry, or none (NIL, EXPUNGED, pending). */
export function valueAt(core: SyncCore, e: number): number {
  return e === 0 ? 0 : valueOf(Atomics.load(core.arena.i32, e >> 2));
}

function valueOf(p: number): number {
  return p > EXPUNGED ? p : 0;
}

/**
 * Replaces the state of `probe`'s key with `next` (a record, or NIL to delete it) if it still
 * is what a `compute` callback saw: a value whose encoding `seen` holds (`hadValue`), or no
 * value (`!hadValue`: no entry, NIL, EXPUNGED or pending). Returns whether it replaced it;
 * then a value replaced is retired, the count adjusted, and a pending key's waiters woken.
 * Values compare by encoding, as compareAndSwap's do, not by record: a record the callback saw
 * may have been freed and reused meanwhile, while equal encodings are equal values, which
 * makes the callback's result the right one for the state it replaces (no update is lost).
 * The caller holds `next`, if a record, as its record in flight, and frees it on false.
 */
export function replaceIf(
  core: SyncCore,
  probe: Probe,
  hadValue: boolean,
  seen: Probe,
  next: number,
): boolean {
  return store(core, probe, next, true, hadValue, seen) === NIL;
}

/** Whether `p` is the state a callback saw (see {@linkcode replaceIf}); not for EXPUNGED. */
function isSeen(core: SyncCore, p: number, hadValue: boolean, seen: Probe | null): boolean {
  if (!hadValue) return p <= NIL;
  return p > EXPUNGED && core.recordEquals(p, seen!);
}

/** What a conditional {@linkcode store} returns when the key is not in the state expected. */
const MISMATCH = 2; // no record: records are 16-aligned

/**
 * Stores `next` (a record, or NIL) for `probe`'s key. With `conditional`, only if the key is
 * in the state {@linkcode isSeen} accepts; else, only if it has no value (see
 * {@linkcode settle}). Returns NIL when it stored; else, unconditional, the value record found,
 * and conditional, MISMATCH or EXPUNGED.
 */
function store(
  core: SyncCore,
  probe: Probe,
  next: number,
  conditional: boolean,
  hadValue = false,
  seen: Probe | null = null,
): number {
  const a = core.arena;
  const read = Atomics.load(a.i32, R_READ);
  const e = core.findIn(core.readTable(read), probe);
  if (e !== 0) {
    const found = tryStore(core, e, next, conditional, hadValue, seen);
    if (found !== EXPUNGED) return found;
    // Expunged: no value. Only the lock's holder may put the entry back.
    if (conditional && hadValue) return MISMATCH;
  } else if ((read & AMENDED) === 0 && conditional && hadValue) {
    return MISMATCH; // no such key: not the value the callback saw
  }
  const found = core.locked(() => {
    const read2 = a.i32[R_READ]; // plainly, under the mutex (see SyncCore.readWord)
    let e2 = core.findIn(core.readTable(read2), probe);
    if (e2 !== 0) {
      // Expunged, the key has no value: put the entry back where a store goes through.
      if (next !== NIL && !(conditional && hadValue)) core.unexpungeLocked(e2, probe);
    } else {
      e2 = core.findIn(core.dirtyTable(), probe);
    }
    if (e2 !== 0) return tryStore(core, e2, next, conditional, hadValue, seen);
    if (next === NIL || (conditional && hadValue)) return MISMATCH;
    core.addLocked(probe, next, read2);
    core.addedRecord = next;
    return NIL;
  });
  return found; // an added key was counted as its step took effect (SyncCore.addedRecord)
}

/**
 * {@linkcode store} on entry `e`. Returns NIL when it stored; EXPUNGED when `e` is expunged;
 * else the value record found (unconditional) or MISMATCH (conditional).
 */
function tryStore(
  core: SyncCore,
  e: number,
  next: number,
  conditional: boolean,
  hadValue: boolean,
  seen: Probe | null,
): number {
  const i32 = core.arena.i32;
  let p = Atomics.load(i32, e >> 2);
  // A delete (`next` NIL) made no record, whose newRecord raised the hand word: the record it
  // unlinks is in hand until retired (registry.ts HAND).
  core.participant.raiseHand();
  for (;;) {
    if (p === EXPUNGED) return EXPUNGED;
    if (conditional) {
      if (!isSeen(core, p, hadValue, seen)) return MISMATCH;
    } else if (p > EXPUNGED) {
      return p;
    }
    const found = Atomics.compareExchange(i32, e >> 2, p, next);
    if (found === p) {
      if (next !== NIL) core.published = next; // before any call: see SyncCore.published
      break;
    }
    p = found;
  }
  // The compare-exchange is the step's last act: nothing after it can fail but, under the
  // lock, the commit (see SyncCore.published).
  if (p > EXPUNGED) {
    core.retireRecord(p);
    if (next === NIL) core.count(-1);
  } else {
    if (next !== NIL) core.count(1);
    if (p < NIL) wakeWaiters(i32, e);
  }
  core.noteStored(e, next); // last, as in tryLoadOrStore (_sync_entries.ts)
  return NIL;
}
