/**
 * Internal. SyncMap's writes: Go's Store, Swap, LoadOrStore, CompareAndSwap and
 * CompareAndDelete, and xsync's Compute and LoadOrCompute. Each tries the read table's entry
 * without a lock first (one compare-exchange on its `p` word), then takes the mutex for a step
 * of _sync_core.ts. The public class (sync_map.ts) validates and documents them.
 *
 * @module
 */

import { ownerId } from "../_engine/census.ts";
import { MapFullError, TerminatedError } from "../errors.ts";
import { isNumberSlot, Probe } from "../_engine/slots.ts";
import { selfWriteError } from "../_computed.ts";
import * as computed from "../_computed.ts";
import {
  endCompute,
  enterCallback,
  exitCallback,
  madeSince,
  noteRecord,
} from "./_compute_watch.ts";
import { checkFunction } from "../_describe.ts";
import type { SyncAccess } from "./_sync_access.ts";
import type { SyncCore } from "./_sync_core.ts";
import type { Participant } from "../_engine/reclaim.ts";
import {
  abandon,
  awaitSettled,
  claim,
  claimedEntry,
  current,
  currentEntry,
  replaceIf,
  settle,
  valueAt,
} from "./_sync_compute.ts";
import * as sync_compute from "./_sync_compute.ts";
import { deleted, entryForDelete, entryForDeleteOf } from "./_sync_delete.ts";
import {
  currentEntryForNumber,
  readEntry,
  readWordForWalk,
  replaced,
  tryCompareAndSwap,
  tryLoadOrStore,
  unlockedEntryForNumber,
} from "./_sync_entries.ts";
import { immediateOf, immediateValue, pendingOf } from "./_sync_layout.ts";
import * as sync_layout from "./_sync_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const CANCEL: typeof computed.CANCEL = computed.CANCEL;
const DELETE: typeof computed.DELETE = computed.DELETE;
const { SELF_WRITES_MAX } = computed;
const { CLAIMED } = sync_compute;
const { AMENDED, EXPUNGED, NIL, R_READ, REC_HI, RECORD_HEADER } = sync_layout;

/** What a locked step of a store returns when it added the key (records are above EXPUNGED). */
const ADDED = -1;

/** Go's Store and Swap. */
export function swap<K, V>(
  s: SyncAccess<K, V>,
  key: K,
  value: V,
  wantPrevious: true,
): [V | undefined, boolean];
export function swap<K, V>(s: SyncAccess<K, V>, key: K, value: V, wantPrevious: false): void;
export function swap<K, V>(
  s: SyncAccess<K, V>,
  key: K,
  value: V,
  wantPrevious: boolean,
): [V | undefined, boolean] | void {
  s.participant.enter();
  s.core.published = 0; // read by the free in the finally: see SyncCore.published
  const a = s.arena;
  const core = s.core;
  // A number key (a codec that stores numbers as plain float64 slots: it can neither fail nor
  // run user code) needs no probe to search the read table, which the handle's entry memo
  // answers; its probe is made only for the locked step. A number value as well (under `int32`,
  // one with an immediate) needs no probe to write the record. Otherwise the value is encoded
  // first, and a key of another type too, as user code may run then.
  const numberKey = typeof key === "number" && s.numberKeys;
  const numbers = numberKey && typeof value === "number" &&
    (s.numberValues || (s.int32Values && immediateOf(value as number) !== 0));
  const part = s.participant;
  let probe: Probe | null = null;
  let record = 0;
  let searched = 0;
  // The read table's entry for the key (0: none), and what it held when read; -1 until looked up.
  let e = -1;
  let p = 0;
  // Whether this call's hand log of the exchange of `p` for `record` in `e` is open.
  let open = false;
  // The new record is taken under a hand log, and the exchange of a value in the read table
  // logged before it is tried (Participant.logSwap): a death in between is settled from the
  // log by the seat's release, with no sweep (_sync_hand_log.ts). The exchange made, the log
  // ends (endLog); every other way out of it raises the word (dropLog): the locked step, an
  // exchange that adds the key's value, an error (the catch). A swap nested in the record copy
  // of one whose log is open (a built-in the user patched, calling this map) finds it open and
  // raises the word (allocateLogged, logSwap), which the outer call's logSwap then finds.
  try {
    // Inside the try: a throw after the record was taken and before `record` names it (its copy
    // cut short by a stack overflow) still drops the log, which must not outlive the call
    // (helper-142); the block is left to the sweep the overflow makes owed.
    if (numbers) {
      // newRecord's work, written out: no user code runs, and no probe is needed.
      record = immediateOf(value as number);
      if (record === 0) {
        // The key looked up first: over a record, the block is taken with its exchange logged
        // at once (Participant.allocateSwap), and the first try made here, with its own copy of
        // the loop's tail below (a function for the tail cost the store 1.13x on Bun). Against
        // the log written in two, separate processes: 0.96x on Bun, 0.98x on Deno.
        e = currentEntryForNumber(s, key as number);
        if (e !== 0) {
          p = a.i32[e >> 2]; // plainly, as below
          if (p > EXPUNGED && (p & 1) === 0) record = part.allocateSwap(RECORD_HEADER, e, p);
        }
        const swapping = record !== 0;
        if (!swapping) {
          e = -1; // allocateLogged may make a quiescent point: looked up after it
          record = part.allocateLogged(RECORD_HEADER);
        }
        a.f64[record >> 3] = value === value ? value : NaN; // newRecord's words for a number
        noteRecord(a.buffer, record); // as newRecord: a compute's fn that stores its own key
        if (swapping) {
          const found = Atomics.compareExchange(a.i32, e >> 2, p, record);
          if (found === p) {
            const stored = record;
            record = 0; // published: no longer ours to free, before any call (see below)
            const previous = replaced(s, p, e);
            part.endLog(); // the old record retired: nothing in hand
            core.noteStored(e, stored);
            if (!wantPrevious) return;
            return previous === NIL ? [undefined, false] : [s.decodeRecord(previous), true];
          }
          // Logged again for the loop's next try; expunged, the log goes on to the step
          // (keepTaken).
          p = found;
          if (p !== EXPUNGED) open = logTry(part, e, p, record, true);
        }
      }
    } else {
      if (!numberKey) {
        probe = s.probeKey(key);
        probe.storable(); // a key too large for maxBytes, refused before the value is encoded
      }
      const vp = s.probeValue(value);
      record = core.newRecord(vp, true, true);
    }
    if (e < 0) {
      if (probe === null) {
        e = currentEntryForNumber(s, key as number);
        searched = s.searched;
      } else {
        searched = readWordForWalk(a);
        e = readEntry(s, searched, probe);
      }
      // trySwap: exchange unless expunged. E_P is read plainly first, as deleteEntry reads it.
      if (e !== 0) {
        p = a.i32[e >> 2];
        // The common first try, a record over a record, logged with no call of logTry between
        // (1.03x on Bun through it); two immediates log nothing, and a first try has no log of
        // its own to end.
        if (p !== EXPUNGED) {
          open = p > EXPUNGED && ((p | record) & 1) === 0
            ? part.logSwap(e, p, record)
            : (((p & record) & 1) === 0 || p <= EXPUNGED) && logTry(part, e, p, record, false);
        }
      }
    }
    if (e !== 0) {
      searched = 0; // an expunged entry: its step finds it in the read table
      if (p !== EXPUNGED) {
        for (;;) {
          const found = Atomics.compareExchange(a.i32, e >> 2, p, record);
          if (found === p) {
            const stored = record;
            record = 0; // published: no longer ours to free, before any call (see below)
            const previous = replaced(s, p, e);
            if (open) part.endLog(); // the old record retired: nothing in hand
            core.noteStored(e, stored);
            if (!wantPrevious) return;
            return previous === NIL ? [undefined, false] : [s.decodeRecord(previous), true];
          }
          p = found;
          if (p === EXPUNGED) break;
          open = logTry(part, e, p, record, open);
        }
      }
    }
    // The previous record is decoded once the lock is released: decoding may run user code
    // (a user codec), which may call this map and need the lock. The log goes on with the
    // record to the step: a death before the step's commit puts the record back, one after it
    // leaves it to its entry (_sync_hand_log.ts, "In a step"). An immediate raises the word,
    // and the mutex's recovery sweeps what a step cut short leaves.
    part.keepTaken(record);
    if (probe === null) probe = s.probeKey(key);
    core.inflight = record;
    const step = storeLocked(s, probe, record, false, searched);
    // Published: no longer ours to free, with no call before (a stack overflow can throw from
    // any), and no longer in flight, before a decode whose nested calls may park this
    // participant (a stop of the world would then take it for in flight and reachable both).
    record = 0;
    core.inflight = 0;
    part.endLog(); // what the step replaced is retired: nothing in hand
    const previous = counted(step);
    if (!wantPrevious) return;
    return previous === NIL ? [undefined, false] : [s.decodeRecord(previous), true];
  } catch (error) {
    // A thread found terminating (met at the census check before the mutex, or in an allocator
    // step of the locked step, which is rolled back) leaves the record to its log; otherwise the
    // word is raised before the free. (A stack overflow here: Participant.noteThrown.)
    if (part.leftToLog(error, record)) record = 0;
    throw error;
  } finally {
    core.releaseUnpublished(record);
  }
}

/**
 * The hand log of `swap`'s next try, to exchange `p` in entry `e` for `record`; returns whether a
 * log of this call's is open for it (`open`: one was for the try before). Logged when it replaces
 * a value and a record is in it (Participant.logSwap). An immediate over an immediate takes
 * nothing in hand: an earlier try's log ends. An exchange
 * over nil or a pending key counts the key in (replaced), which no log can tell done from not:
 * raised. Called before the loop of tries and after a failed one, not at the top of the loop:
 * there it cost a store of immediates 1.07x to 1.1x on Bun (separate processes), with no call
 * made.
 */
function logTry(
  part: Participant,
  e: number,
  p: number,
  record: number,
  open: boolean,
): boolean {
  if (p <= EXPUNGED) {
    part.dropLog();
    return false;
  }
  if (((p & record) & 1) === 0) return part.logSwap(e, p, record);
  if (open) part.endLog();
  return false;
}

/** Go's LoadOrStore. */
export function loadOrStore<K, V>(
  s: SyncAccess<K, V>,
  key: K,
  value: V,
): [actual: V, loaded: boolean] {
  s.participant.enter();
  s.core.published = 0; // read by the free in the finally: see SyncCore.published
  const a = s.arena;
  if (
    typeof key === "number" && s.numberKeys && typeof value === "number" &&
    (s.numberValues || (s.int32Values && immediateOf(value) !== 0))
  ) {
    // A hit needs neither the key's probe nor the value's encoding, which for a number key
    // and value can neither fail nor run user code, so skipping them changes nothing else.
    // The hit is a load, read as load reads it (docs/design.md, "The plain reads of a
    // lookup"), with decodeRecord's number path written out as there.
    const e = currentEntryForNumber(s, key);
    if (e !== 0) {
      const p = a.i32[e >> 2];
      if (p > EXPUNGED) {
        if ((p & 1) !== 0) return [immediateValue(p) as V, true];
        if (p + RECORD_HEADER <= a.bytes && isNumberSlot(a.i32[(p >> 2) + REC_HI])) {
          return [a.f64[p >> 3] as V, true];
        }
        return [s.decodeRecord(p), true];
      }
    }
  }
  return loadOrStoreRest(s, key, value);
}

/**
 * {@linkcode loadOrStore} past a number key's hit, which leaves nothing behind whatever throws:
 * a function of its own, with the catch that notes a stack overflow (Participant.noteThrown),
 * so that the hit stays free of a try. JavaScriptCore does not inline a function that has one:
 * with the catch in SyncMap.loadOrStore, a hit took 1.37x and LoadOrStoreCollision 1.51x on
 * Bun (same run).
 */
function loadOrStoreRest<K, V>(
  s: SyncAccess<K, V>,
  key: K,
  value: V,
): [actual: V, loaded: boolean] {
  try {
    return loadOrStoreSlow(s, key, value);
  } catch (error) {
    s.participant.noteThrown(error);
    throw error;
  }
}

/** {@linkcode loadOrStoreRest}'s work: encodes, then Go's LoadOrStore from the read table on. */
function loadOrStoreSlow<K, V>(
  s: SyncAccess<K, V>,
  key: K,
  value: V,
): [actual: V, loaded: boolean] {
  const a = s.arena;
  const core = s.core;
  const probe = s.probeKey(key);
  probe.storable(); // a key too large for maxBytes, refused before the value is encoded
  const vp = s.probeValue(value);
  const part = s.participant;
  let record = 0;
  try {
    let searched = readWordForWalk(a);
    const e = readEntry(s, searched, probe);
    if (e !== 0) {
      searched = 0; // a deleted or expunged entry: its step finds it in the read table
      const p = a.i32[e >> 2]; // plainly, as load reads it
      if (p > EXPUNGED) return [s.decodeRecord(p), true];
      if (p <= NIL) {
        // Deleted, or pending (absent until its computation ends): store over it.
        record = core.newRecord(vp);
        const found = tryLoadOrStore(s, e, record);
        if (found !== EXPUNGED) {
          if (found === NIL) {
            record = 0;
            return [value, false];
          }
          const unused = record;
          record = 0;
          return [loadedAfter(core, unused, s, found), true];
        }
      }
    }
    // Taken under a hand log, which goes with it to the step as swap's does: a death before the
    // step's commit puts it back (_sync_hand_log.ts, "In a step"). Not quiescent: the read table
    // searched must not be freed before the step compares its word (storeLocked).
    if (record === 0) {
      try {
        record = core.newRecord(vp, false, true);
      } catch (error) {
        // A full map: a key in the dirty table alone still loads (Go's LoadOrStore of a key it
        // holds stores nothing), so it is looked up as `load` looks it up before the error goes
        // on. Nothing was taken, and nothing is in hand.
        const p = fullLoad(s, probe, searched, error);
        if (p === 0) throw error;
        return [s.decodeRecord(p), true];
      }
    }
    part.keepTaken(record);
    // The record loaded under the lock is decoded once it is released: decoding may run user
    // code (a user codec), which may call this map and need the lock. The record stays
    // readable until this participant's next quiescent point (see SyncAccess.decodeRecord).
    core.inflight = record;
    const step = storeLocked(s, probe, record, true, searched);
    // Added, or stored over a deleted entry: published, no longer ours to free (see swap), and
    // nothing in hand. Loaded: the record is in hand until loadedAfter frees it, and the word,
    // raised by the step, stays so (a death before the free is swept: helper-143).
    if (step === ADDED || step === NIL) {
      record = 0;
      part.endLog();
    }
    const found = counted(step);
    if (found === NIL) return [value, false];
    const unused = record;
    record = 0;
    return [loadedAfter(core, unused, s, found), true];
  } catch (error) {
    if (part.leftToLog(error, record)) record = 0; // as in swap
    throw error;
  } finally {
    core.releaseUnpublished(record);
  }
}

/**
 * The value record of `probe`'s key in the dirty table, for a loadOrStore whose new record could
 * not be had (`error`, a MapFullError) after the read table of read word `searched` lacked the
 * key: the read table again and the dirty table under the mutex, as `load` does past an amended
 * read table (SyncCore.entryLocked). 0 when the error is another, the read table was not amended,
 * or the key has no value there.
 */
function fullLoad<K, V>(
  s: SyncAccess<K, V>,
  probe: Probe,
  searched: number,
  error: unknown,
): number {
  if (!(error instanceof MapFullError) || (searched & AMENDED) === 0) return 0;
  const e = s.core.entryLocked(probe, searched);
  const p = e === 0 ? 0 : s.arena.i32[e >> 2]; // plainly, as load reads it
  return p > EXPUNGED ? p : 0;
}

/**
 * The value of record `found`, which a loadOrStore loaded, once its own record `unused` is
 * freed. Freed first: decoding may run user code (a user codec) whose nested calls park this
 * participant in the mutex with a record of their own in flight, and a sweep that pauses the
 * world meanwhile sees only that one, so it would free `unused` as unreached, and the caller's
 * free would be a second.
 */
function loadedAfter<K, V>(core: SyncCore, unused: number, s: SyncAccess<K, V>, found: number): V {
  core.inflight = 0;
  core.freeRecord(unused);
  return s.decodeRecord(found);
}

/**
 * The step under the lock of {@linkcode swap} and, when `loadOrStore`, of
 * {@linkcode loadOrStore}, with the new value in `record`: adds the key if absent, returning
 * {@linkcode ADDED}; otherwise swap stores `record` and returns the replaced record (or NIL),
 * and loadOrStore returns what {@linkcode tryLoadOrStore} does (and counts a miss when the key
 * was in the dirty table only). `searched`: the read word whose table the caller found without
 * the key, or 0 (see SyncCore.entryLocked). The step is a function of the module's, its
 * arguments in `s` (SyncAccess.stepProbe): no closure, whose context V8 would make at every
 * call (SyncCore.locked).
 */
function storeLocked<K, V>(
  s: SyncAccess<K, V>,
  probe: Probe,
  record: number,
  loadOrStore: boolean,
  searched: number,
): number {
  s.stepProbe = probe;
  s.stepRecord = record;
  s.stepFlag = loadOrStore;
  s.stepSearched = searched;
  return s.lockedOrReclaim(storeStep, s);
}

/** {@linkcode storeLocked}'s step under the mutex, its arguments in `s`'s step fields. */
function storeStep<K, V>(s: SyncAccess<K, V>): number {
  const a = s.arena;
  const core = s.core;
  const probe = s.stepProbe;
  const record = s.stepRecord;
  const read2 = a.i32[R_READ]; // plainly, under the mutex (see SyncCore.readWord)
  // Not searched again while R_READ names the table the caller found without the key. Only on
  // the first run: lockedOrReclaim runs this again after a collect, which announces this
  // participant quiescent, so the table searched may have been freed and its offset reused.
  let e2 = read2 === s.stepSearched ? 0 : core.findIn(core.readTable(read2), probe);
  s.stepSearched = -1;
  const inRead = e2 !== 0;
  if (inRead) core.unexpungeLocked(e2, probe);
  else e2 = core.findIn(core.dirtyTable(), probe);
  if (e2 === 0) {
    core.handToStep(record); // a swap's record, whose log it keeps (keepTaken)
    core.addLocked(probe, record, read2);
    core.addedRecord = record;
    return ADDED;
  }
  // Published below into an entry that a rollback does not free: no log may say the record is
  // in hand from here on (_sync_hand_log.ts, "In a step").
  s.participant.dropLog();
  if (!s.stepFlag) {
    // A key only the dirty table holds counts a miss, as Go counts one for LoadOrStore and
    // CompareAndSwap there (its Store and Swap do not): a key stored again and again before any
    // load (a counter, a key rewritten by its one worker) took the mutex at every store until
    // loads of other keys missed enough; counted, it is promoted after as many stores as the
    // dirty table holds keys (eight at least in a map with room: _sync_core.ts `promotes`), and
    // later stores of it take no lock. Before the exchange, which
    // may promote: the entry is the same in the promoted table.
    if (!inRead) core.missLocked();
    // Swap's last act, after everything that can fail but the commit (see core.published).
    const previous = Atomics.exchange(a.i32, e2 >> 2, record);
    core.published = record;
    const replacedRecord = replaced(s, previous, e2);
    core.noteStored(e2, record); // last: see tryLoadOrStore
    return replacedRecord;
  }
  const p = tryLoadOrStore(s, e2, record);
  if (!inRead) core.missLocked();
  return p;
}

/** What a store's locked `step` found: NIL when it added the key (counted by locked()). */
function counted(step: number): number {
  return step === ADDED ? NIL : step;
}

/**
 * Runs `fn` for `key`, whose probe is `probe`, that pending `p` `mine` claimed, and publishes
 * its value. The claim comes noted in `s.orphanClaims` from index `noted` on, and is taken out
 * of the list first.
 */
function computeClaimed<K, V>(
  s: SyncAccess<K, V>,
  key: K,
  probe: Probe,
  mine: number,
  fn: () => V,
  noted: number,
): [V, boolean] {
  s.orphanClaims.length = noted;
  const part = s.participant;
  const core = s.core;
  let record = 0;
  try {
    // Nothing is held across fn: it may run long without holding reclamation back or
    // keeping a stop of the world waiting, and its calls of this map use fresh scratch.
    part.idle();
    const value = s.callUser(fn);
    if (value instanceof Promise) {
      throw new TypeError(
        "SyncMap.loadOrCompute: fn returned a Promise; it must return the value itself",
      );
    }
    part.enter();
    const vp = s.probeValue(value);
    record = core.newRecord(vp, true);
    core.published = 0; // read by the free below: see SyncCore.published
    core.inflight = record;
    const found = settle(core, probe, record);
    core.inflight = 0;
    if (found === NIL) {
      record = 0;
      return [value, false];
    }
    // Another method stored the key meanwhile: its value wins.
    core.freeRecord(record);
    record = 0;
    return [s.decodeRecord(found), true];
  } catch (error) {
    // The claim is noted first, with plain stores: at the stack's edge every call throws, even
    // the abandon's or queueMicrotask's, and a claim left to this live thread would keep every
    // waiter of the key waiting for good (and this thread's next loadOrCompute of it would
    // throw). Given up here, the note is dropped; else the first frame nearer the stack's base
    // that can gives it up (just below: a nested loadOrCompute's), or a microtask as the task
    // ends, or this handle's next loadOrCompute (abandonOrphans). The caller's error is the one
    // to report. A claim left behind by a thread terminated is taken over once the thread is
    // recorded gone.
    const orphans = s.orphanClaims;
    const n = orphans.length;
    orphans[n] = key;
    orphans[n + 1] = mine;
    try {
      core.releaseUnpublished(record);
      try {
        part.enter();
      } catch (enterError) {
        // Online by then, short only of room to retire in: the abandon then retires nothing
        // (it leaves a dirty-only key's NIL entry in place).
        if (!(enterError instanceof MapFullError)) throw enterError;
      }
      abandon(core, probe, mine);
      orphans.length = n;
    } catch {
      try {
        queueMicrotask(() => abandonOrphans(s));
      } catch {
        // A frame nearer the base gives it up.
      }
    }
    // Claims noted by deeper frames (a nested loadOrCompute's, cut short by the same overflow)
    // are given up here, where the stack has more room; this one's own, left on its first
    // failure, falls to the microtask unless deeper ones were noted.
    if (n !== 0) {
      try {
        abandonOrphans(s);
      } catch {
        // A stack overflow at its entry: a frame nearer the base gives them up.
      }
    }
    throw error;
  }
}

/**
 * Gives up the claims in `s.orphanClaims` (see {@linkcode computeClaimed}), each if it still
 * stands. A claim leaves the list once given up, or once its abandon found this thread
 * terminated (its claims are then taken over as its end is recorded); one whose abandon failed
 * otherwise (another stack overflow, an error deferred to this call, a closed map) stays for a
 * later try. Never throws once entered. Safe wherever no loadOrCompute of this thread has a
 * claim's fn running deeper (a frame nearer the base, a microtask, a call's start): a claim of
 * this thread still in use is never in the list, since a loadOrCompute that meets its own claim
 * first gives the orphans up, then claims anew or throws.
 */
function abandonOrphans<K, V>(s: SyncAccess<K, V>): void {
  const orphans = s.orphanClaims;
  try {
    // A claim given up has its word zeroed at once, so that a loop cut short leaves no given-up
    // claim to be given up again (the same word may by then be a new claim of the key); the list
    // is compacted after.
    for (let i = orphans.length - 2; i >= 0; i -= 2) {
      const mine = orphans[i + 1] as number;
      if (mine === 0) continue;
      try {
        try {
          s.participant.enter();
        } catch (error) {
          // As in computeClaimed: short only of room to retire in, the abandon goes on.
          if (!(error instanceof MapFullError)) throw error;
        }
        abandon(s.core, s.keyProbe(orphans[i] as K, new Probe()), mine);
        orphans[i + 1] = 0;
      } catch (error) {
        if (error instanceof TerminatedError) orphans[i + 1] = 0;
      }
    }
    let kept = 0;
    for (let i = 0; i < orphans.length; i += 2) {
      if (orphans[i + 1] === 0) continue;
      orphans[kept] = orphans[i];
      orphans[kept + 1] = orphans[i + 1];
      kept += 2;
    }
    orphans.length = kept;
  } catch {
    // A stack overflow in the loop's own steps: what is left stays for a later try.
  }
}

/** Go's CompareAndSwap. */
export function compareAndSwap<K, V>(s: SyncAccess<K, V>, key: K, old: V, next: V): boolean {
  s.participant.enter();
  const a = s.arena;
  const core = s.core;
  // A number key and number values, the key in the read table: an immediate (or its absence)
  // is compared as the entry's word alone, with no probe, since a value an immediate can hold is
  // never in a record (immediateOf); a swap from one immediate to another is then one
  // compare-exchange. A record to compare with or make goes the general way. Under `int32`,
  // only when both values have immediates: the codec checks any other.
  if (
    typeof key === "number" && s.numberKeys && typeof old === "number" &&
    typeof next === "number" &&
    (s.numberValues || (s.int32Values && immediateOf(old) !== 0 && immediateOf(next) !== 0))
  ) {
    const e = unlockedEntryForNumber(s, key);
    if (e === 0) return false;
    if (e > 0) {
      const p = a.i32[e >> 2]; // plainly, as deleteEntry reads it
      const expected = immediateOf(old);
      if (expected === 0) {
        if (p <= EXPUNGED || (p & 1) !== 0) return false; // no value, or an immediate
      } else {
        if (p !== expected) return false;
        const swapIn = immediateOf(next);
        if (swapIn !== 0) {
          if (Atomics.compareExchange(a.i32, e >> 2, expected, swapIn) !== expected) return false;
          core.noteStored(e, swapIn);
          return true;
        }
      }
    }
  }
  // The read table's entry as swap finds it: a number key through the entry memo, with no
  // probe (only the lock's path needs one), any other key through readEntry's memo.
  const numberKey = typeof key === "number" && s.numberKeys;
  let probe = numberKey ? null : s.probeKey(key);
  const expected = s.probeExpected(old);
  const vp = s.probeValue(next);
  if (probe === null) {
    const e = unlockedEntryForNumber(s, key as number);
    if (e >= 0) return e !== 0 && tryCompareAndSwap(s, e, expected, vp);
    probe = s.probeKey(key);
  } else {
    const read = readWordForWalk(a);
    const e = readEntry(s, read, probe);
    if (e !== 0) return tryCompareAndSwap(s, e, expected, vp);
    if ((read & AMENDED) === 0) return false;
  }
  const locked = probe;
  return core.locked(() => {
    const read2 = a.i32[R_READ]; // plainly, under the mutex (see SyncCore.readWord)
    let e2 = core.findIn(core.readTable(read2), locked);
    if (e2 !== 0) return tryCompareAndSwap(s, e2, expected, vp);
    e2 = core.findIn(core.dirtyTable(), locked);
    if (e2 === 0) return false;
    // The key needed the lock and the set of keys did not change: count a miss, so that the
    // map moves on to its efficient state.
    const swapped = tryCompareAndSwap(s, e2, expected, vp);
    core.missLocked();
    return swapped;
  });
}

/** Go's CompareAndDelete. */
export function compareAndDelete<K, V>(s: SyncAccess<K, V>, key: K, old: V): boolean {
  const part = s.participant;
  part.enter();
  const a = s.arena;
  const core = s.core;
  // The key is encoded (and refused if bad) before the old value, as by every write, so that a
  // bad key runs none of the old value's user code. A number key of a codec that takes every
  // number needs no check, and takes entryForDelete's number path.
  const probe = typeof key === "number" && s.numberKeys ? null : s.probeKey(key);
  // An immediate is compared as a word, with no probe (see compareAndSwap).
  const immediate = typeof old === "number" && (s.numberValues || s.int32Values)
    ? immediateOf(old)
    : 0;
  const expected = immediate === 0 ? s.probeExpected(old) : null;
  // As in SyncCore.newRecord; the word is written before anything is taken (logDelete).
  if (expected !== null) part.recheck(false);
  const e = probe === null ? entryForDelete(s, key, false) : entryForDeleteOf(s, probe, false);
  if (e === 0) return false;
  let p = a.i32[e >> 2]; // plainly, as deleteEntry reads it
  // deleteEntry's hand log (_sync_delete.ts): a record's exchange to nil, then its count. A
  // mismatch ends it, with nothing taken.
  let open = false;
  for (;;) {
    if (expected === null ? p !== immediate : p <= EXPUNGED || !core.recordEquals(p, expected)) {
      if (open) part.endLog();
      return false;
    }
    open = part.logDelete(e, p, open);
    const found = Atomics.compareExchange(a.i32, e >> 2, p, NIL);
    if (found === p) {
      deleted(s, p, open);
      return true;
    }
    p = found;
  }
}

/** xsync's Compute, optimistic: see SyncMap.compute. */
export function compute<K, V>(
  s: SyncAccess<K, V>,
  key: K,
  fn: (old: V | undefined, loaded: boolean) => V | typeof DELETE | typeof CANCEL,
): [value: V | undefined, ok: boolean] {
  checkFunction(fn, "SyncMap.compute", "fn");
  s.participant.enter();
  const probe = s.probeKey(key);
  probe.storable(); // a key too large for maxBytes, refused before fn runs (as loadOrCompute)
  // Where the value read is copied: the old-value scratch, or a fresh probe when nested.
  const seen = s.nested ? new Probe() : s.expectedProbe;
  try {
    return computeRounds(s, probe, seen, fn);
  } finally {
    endCompute();
  }
}

/**
 * compute's loop: one round a run of `fn`, until a round's result is stored. Rounds lost to
 * `fn`'s own writes of the key are counted (_compute_watch.ts); SELF_WRITES_MAX of them in a
 * row throw, since `fn` would go on writing the key it computes for good.
 */
function computeRounds<K, V>(
  s: SyncAccess<K, V>,
  probe: Probe,
  seen: Probe,
  fn: (old: V | undefined, loaded: boolean) => V | typeof DELETE | typeof CANCEL,
): [value: V | undefined, ok: boolean] {
  const part = s.participant;
  const a = s.arena;
  const core = s.core;
  let selfWrites = 0;
  for (;;) {
    const p = current(core, probe);
    const loaded = p !== 0;
    let old: V | undefined;
    if (loaded) {
      // A copy of the encoding, to compare with once fn returns: the record itself may be
      // freed and reused by then.
      core.snapshotRecord(p, seen);
      old = s.decodeRecord(p);
    }
    const mark = enterCallback();
    let end = mark;
    let next;
    try {
      next = s.callUser2(fn, old, loaded);
    } finally {
      end = exitCallback();
    }
    if (next === CANCEL) return [old, loaded];
    if (next instanceof Promise) {
      throw new TypeError(
        "SyncMap.compute: fn returned a Promise; it must return the value itself",
      );
    }
    // fn's own calls may have left this participant offline (loadOrCompute waits so).
    part.enter();
    if (next === DELETE) {
      // A delete of a key fn was given as absent writes nothing, and holds while the key is
      // absent still: written meanwhile (by fn itself, or another writer), the round is lost,
      // as a failed exchange's is.
      if (loaded ? replaceIf(core, probe, true, seen, NIL) : current(core, probe) === 0) {
        return [undefined, false];
      }
    } else {
      const vp = s.probeValue(next);
      const record = core.newRecord(vp, true);
      core.published = 0; // read by the free below: see SyncCore.published
      core.inflight = record;
      let stored = false;
      try {
        stored = replaceIf(core, probe, loaded, seen, record);
      } finally {
        core.releaseUnpublished(stored ? 0 : record);
      }
      if (stored) return [next, true];
    }
    // Lost: to another writer, or to fn's own write of the key in this round.
    const e = currentEntry(core, probe);
    if (!madeSince(mark, end, a.buffer, e, valueAt(core, e))) selfWrites = 0;
    else if (++selfWrites >= SELF_WRITES_MAX) throw selfWriteError("SyncMap.compute");
  }
}

/** xsync's LoadOrCompute: see SyncMap.loadOrCompute. */
export function loadOrCompute<K, V>(
  s: SyncAccess<K, V>,
  key: K,
  fn: () => V,
): [actual: V, loaded: boolean] {
  checkFunction(fn, "SyncMap.loadOrCompute", "fn");
  if (s.orphanClaims.length !== 0) {
    abandonOrphans(s);
    // A note left (this frame too near the stack's edge to give it up, or the map closed) may
    // name a key that is free by now, with this thread's claim word: a claim made now under the
    // same word could be given up, while its fn runs, by the next give-up. So none is made.
    if (s.orphanClaims.length !== 0) {
      throw new RangeError(
        "SyncMap.loadOrCompute: claims this thread left at a stack overflow could not be given " +
          "up yet (call it again nearer the stack's base)",
      );
    }
  }
  const part = s.participant;
  part.enter();
  const core = s.core;
  const probe = s.probeKey(key);
  probe.storable(); // a key too large for maxBytes, refused before fn runs
  const mine = pendingOf(ownerId());
  for (;;) {
    const found = claim(core, probe, mine, s);
    if (found === CLAIMED) {
      // Noted as an orphan until computeClaimed's first statement takes the note back: a stack
      // overflow at that call's entry would leave the claim to this live thread.
      const orphans = s.orphanClaims;
      const n = orphans.length;
      orphans[n] = key;
      orphans[n + 1] = mine;
      return computeClaimed(s, key, probe, mine, fn, n);
    }
    if (found > EXPUNGED) return [s.decodeRecord(found), true];
    if (found === mine) {
      // A claim this thread left where a stack overflow cut its abandon short, if any, is
      // given up first (abandonOrphans); a claim still standing is fn's own key.
      const orphans = s.orphanClaims.length;
      if (orphans !== 0) {
        abandonOrphans(s);
        if (s.orphanClaims.length < orphans) continue; // fewer each time: the loop ends
      }
      throw new Error(
        "SyncMap.loadOrCompute: this thread is computing this key already (fn called " +
          "loadOrCompute for its own key, which would wait for itself)",
      );
    }
    // Another thread computes the key: wait for it holding nothing, then look again.
    const e = claimedEntry();
    part.idle();
    awaitSettled(s.arena.i32, e, found);
    part.enter();
  }
}
