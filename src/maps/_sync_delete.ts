/**
 * Internal. SyncMap's deletes: Go's Delete and LoadAndDelete, the way to a key's entry they
 * share with CompareAndDelete (the read table without a lock, then the dirty table under it),
 * and Go's entry.delete, the exchange of the entry's value for nil.
 *
 * @module
 */

import { Probe } from "../_engine/slots.ts";
import type { SyncAccess } from "./_sync_access.ts";
import { readEntry, readWordForWalk, unlockedEntryForNumber } from "./_sync_entries.ts";
import * as sync_layout from "./_sync_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { AMENDED, EXPUNGED, NIL, R_READ } = sync_layout;

/** The entry argument of {@linkcode deleteFound} for a key not looked up yet. */
const NOT_LOOKED = -2;

/**
 * The start of Go's Delete and LoadAndDelete (SyncMap.delete and loadAndDelete, which go on with
 * {@linkcode deleteFound} when this finds something to delete): enters the participant,
 * and for a number key looks it up without the lock. Returns 0 when there is nothing to delete:
 * a number key absent from a read table that is not amended, or whose entry there has no value
 * (Go's DeleteCollision and LoadAndDeleteCollision shapes), answered with plain reads and no
 * write, as `load` answers it, and outside a `try`, as SyncMap.loadOrStore's hit is: the catch is
 * there only to note a stack overflow that cut a write short (Participant.noteThrown), and
 * JavaScriptCore inlines no function that has one. Else the `e` argument of
 * {@linkcode deleteFound}.
 */
export function entryToDelete<K, V>(s: SyncAccess<K, V>, key: K): number {
  s.participant.enter();
  if (typeof key !== "number" || !s.numberKeys) return NOT_LOOKED;
  const e = unlockedEntryForNumber(s, key);
  // E_P read plainly, as deleteEntry reads it first.
  return e > 0 && s.arena.i32[e >> 2] <= EXPUNGED ? 0 : e;
}

/**
 * The delete of `key` past the fast path: `e` is the entry the number path found with a value,
 * -1 when that path found the key absent from an amended read table (then under the mutex, from
 * `s.searched`), or {@linkcode NOT_LOOKED}. Returns the record deleted, or 0. A function of its
 * own, with the catch that notes a stack overflow, so that the fast path stays free of a try.
 */
export function deleteFound<K, V>(s: SyncAccess<K, V>, key: K, e: number): number {
  try {
    if (e === NOT_LOOKED) e = entryForDelete(s, key, true);
    else if (e < 0) e = numberEntryLocked(s, key, true);
    return e === 0 ? 0 : deleteEntry(s, e);
  } catch (error) {
    s.participant.noteThrown(error);
    throw error;
  }
}

/**
 * Go's LoadAndDelete and CompareAndDelete up to the entry. With `remove`, a key found only
 * in the dirty table is removed from it, and its entry retired once deleted.
 */
export function entryForDelete<K, V>(s: SyncAccess<K, V>, key: K, remove: boolean): number {
  if (typeof key === "number" && s.numberKeys) {
    const e = unlockedEntryForNumber(s, key);
    return e >= 0 ? e : numberEntryLocked(s, key, remove);
  }
  return entryForDeleteOf(s, s.keyProbe(key, s.nested ? new Probe() : s.probe), remove);
}

/**
 * {@linkcode entryForDelete} for a key that does not take the number path, already encoded in
 * `probe` (compareAndDelete encodes it before its old value, as every write checks its key
 * first).
 */
export function entryForDeleteOf<K, V>(s: SyncAccess<K, V>, probe: Probe, remove: boolean): number {
  // Before the delete writes: its key's encode may have run a built-in the user patched, as
  // SyncCore.newRecord says (a number key's runs none).
  s.participant.recheck();
  const read = readWordForWalk(s.arena);
  const e = readEntry(s, read, probe);
  if (e !== 0 || (read & AMENDED) === 0) return e;
  return deleteLocked(s, probe, read, remove);
}

/**
 * {@linkcode entryForDelete} for `key`, a number key, once unlockedEntryForNumber found it absent
 * from an amended read table: under the mutex, from the read word it left in `s.searched`, which
 * the caller takes at once (nothing looks up in between).
 */
function numberEntryLocked<K, V>(s: SyncAccess<K, V>, key: K, remove: boolean): number {
  const searched = s.searched;
  // The step may take a dirty-only entry out and retire it, whose record the caller then
  // deletes: from the step's commit to deleteEntry's retirement, that record is reached
  // through a retired entry only, which no marking follows (registry.ts HAND; helper-139).
  s.participant.raiseHand();
  return deleteLocked(s, s.keyProbe(key, s.nested ? new Probe() : s.probe), searched, remove);
}

/**
 * {@linkcode entryForDelete} under the mutex, once the read table of read word `searched`
 * lacked `probe`'s key and was amended: the read table again unless R_READ still names that one
 * (see SyncCore.entryLocked), then the dirty table.
 */
function deleteLocked<K, V>(
  s: SyncAccess<K, V>,
  probe: Probe,
  searched: number,
  remove: boolean,
): number {
  s.stepProbe = probe;
  s.stepSearched = searched;
  s.stepFlag = remove;
  return s.core.locked(deleteStep, s);
}

/** {@linkcode deleteLocked}'s step under the mutex, its arguments in `s`'s step fields. */
function deleteStep<K, V>(s: SyncAccess<K, V>): number {
  const a = s.arena;
  const core = s.core;
  const probe = s.stepProbe;
  const read2 = a.i32[R_READ]; // plainly, under the mutex (see SyncCore.readWord)
  let e2 = read2 === s.stepSearched ? 0 : core.findIn(core.readTable(read2), probe);
  if (e2 === 0 && (read2 & AMENDED) !== 0) {
    const dirty = core.dirtyTable();
    e2 = core.findIn(dirty, probe);
    // A pending entry stays: its computation stores into it (see _sync_compute.ts). Only the
    // lock's holder makes a dirty-only entry pending or stores over a pending value (lock-free
    // writers move only a value to NIL), so this test holds until unlock.
    if (e2 !== 0 && s.stepFlag && a.i32[e2 >> 2] >= NIL) {
      core.removeFromDirty(dirty!, probe, e2);
      s.unlinked = true;
    }
    // Count a miss whether or not the key was there: it takes the slow path until the dirty
    // table is promoted.
    core.missLocked();
  }
  return e2;
}

/**
 * Sets an entry's value to nil; returns the record it held, or 0 (Go's entry.delete). E_P is
 * read plainly first (docs/design.md, "The plain reads of a lookup"): an entry with no value
 * is a miss with no atomic operation, and a value changed since is what the failed
 * compare-exchange returns.
 */
export function deleteEntry<K, V>(s: SyncAccess<K, V>, e: number): number {
  const i32 = s.arena.i32;
  const part = s.participant;
  // The record unlinked is in hand until retired: said by a hand log of the exchange (registry.ts
  // HAND_SWAP with HAND_NEW nil, _sync_hand_log.ts), which the seat's release settles, unless the
  // step that found the entry took it out of the dirty table (then raised: see unlinked).
  const unlinked = s.unlinked;
  s.unlinked = false;
  let p = i32[e >> 2];
  if (p <= EXPUNGED) return 0;
  if (unlinked) part.raiseHand();
  let open = !unlinked && part.logDelete(e, p, false);
  for (;;) {
    const found = Atomics.compareExchange(i32, e >> 2, p, NIL);
    if (found === p) {
      deleted(s, p, open);
      return p;
    }
    p = found;
    if (p <= EXPUNGED) {
      if (open) part.endLog();
      return 0;
    }
    if (open) open = part.logDelete(e, p, true);
  }
}

/**
 * After a delete's exchange of value `p` to nil, `open` whether the call's hand log of it is
 * (Participant.logDelete): counts the key out, and then the log says so (the record in hand
 * until listed), retires `p`, and ends the log. In that order: each is what the settling of a
 * death between two of them reads (_sync_hand_log.ts settleDelete).
 */
export function deleted<K, V>(s: SyncAccess<K, V>, p: number, open: boolean): void {
  s.core.count(-1);
  if (open) s.participant.logCounted();
  s.core.retireRecord(p);
  if (open) s.participant.endLog();
}
