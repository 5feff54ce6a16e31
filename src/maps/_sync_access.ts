/**
 * Internal. One SyncMap object's way into the shared map: its arena, its {@linkcode SyncCore},
 * its participant seat, its codecs, and the scratch a call encodes into; and the encoding and
 * decoding of keys, values and records that every path (_sync_entries.ts, _sync_store.ts,
 * _sync_iterate.ts) goes through.
 *
 * @module
 */

import { EntryMemo } from "./_entry_memo.ts";
import { IterationKeys } from "./_iteration_keys.ts";
import type { Arena } from "../_engine/arena.ts";
import { Participant } from "../_engine/reclaim.ts";
import * as reclaim from "../_engine/reclaim.ts";
import {
  cachesStringKeys,
  Int32Slots,
  isNumberSlot,
  keyProbe,
  numberOf,
  Probe,
  setKeyNumberMemo,
  type SlotCodec,
  slotsAsFloat64,
  storesNumbers,
  UserSlots,
} from "../_engine/slots.ts";
import * as slots from "../_engine/slots.ts";
import { MapFullError } from "../errors.ts";
import { SyncCore } from "./_sync_core.ts";
import type { OpenedSyncMap } from "./_sync_open.ts";
import { immediateValue, registryOf } from "./_sync_layout.ts";
import * as sync_layout from "./_sync_layout.ts";
import { reapDead, retrySweep } from "./_sync_recovery.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { BACKLOG_WAIT_MS, RETIRES_PER_OP } = reclaim;
const { TAG_STRUCT } = slots;
const { REC_HI, REC_LO, RECORD_HEADER } = sync_layout;

/** One SyncMap object's state: what it shares (arena, core, seat) and its own scratch. */
export class SyncAccess<K, V> {
  readonly arena: Arena;
  readonly core: SyncCore;
  readonly participant: Participant;
  readonly keys: SlotCodec<K>;
  readonly values: SlotCodec<V>;
  /** Scratch for a call's key, value and compare-and-X old value; see {@linkcode nested}. */
  readonly probe: Probe = keyProbe();
  /** The entries this handle's lookups found in the read table (_entry_memo.ts). */
  readonly entries: EntryMemo = new EntryMemo();
  /**
   * The read word whose table this handle's last lock-free lookup of a number key searched and
   * found without the key (_sync_entries.ts, currentEntryForNumber and unlockedEntryForNumber).
   * Taken by the caller at once, before anything else can look up (no user code runs between),
   * and handed to the locked step of the same operation, which searches that table again only
   * if R_READ no longer names it (SyncCore.entryLocked).
   */
  searched = 0;
  /**
   * Set by the locked step of a delete that took a dirty-only key's entry out and retired it
   * (_sync_delete.ts deleteStep), for the delete's exchange just after, which takes it: the
   * record is then reached through a retired entry only, which no hand log says, and the hand
   * word stays raised.
   */
  unlinked = false;
  /**
   * The arguments of a locked step that takes them from here rather than from a closure's
   * context (_sync_store.ts storeStep, _sync_delete.ts deleteStep): set just before the step
   * is run under the mutex, which reads them (again, when lockedOrReclaim runs it again). No
   * user code runs in between, so no nested call of this object's overwrites them.
   */
  stepProbe: Probe = this.probe;
  /** See {@linkcode stepProbe}: the record to store, or 0. */
  stepRecord = 0;
  /** See {@linkcode stepProbe}: the read word of the caller's search (see searched), or -1. */
  stepSearched = 0;
  /** See {@linkcode stepProbe}: loadOrStore's step rather than a store's; remove's for a delete. */
  stepFlag = false;
  /**
   * Claims of loadOrCompute that this thread could not give up where it failed (a stack
   * overflow in the abandon too): key, then claim word, in turns (_sync_store.ts
   * abandonOrphans). Written with plain stores, which need no stack.
   */
  readonly orphanClaims: unknown[] = [];
  /** The keys of a read table this handle iterates again and again (_iteration_keys.ts). */
  readonly iterationKeys: IterationKeys<K> = new IterationKeys();
  readonly valueProbe: Probe = new Probe();
  /** compareAndSwap's and compareAndDelete's old value; compute's copy of the value it read. */
  readonly expectedProbe: Probe = compareOnlyProbe();
  /** Number keys are plain float64 slots: look them up without calling the codec. */
  readonly numberKeys: boolean;
  /** String keys' probes come from the key hash cache: a read may take its entry directly. */
  readonly stringKeys: boolean;
  /** Number values are plain float64 slots: read them without calling the codec. */
  readonly numberValues: boolean;
  /**
   * The values' codec is `int32`: a number that has an immediate (_sync_layout.ts) is one of
   * its values, so the number paths may take it without calling the codec; any other number
   * goes through the codec, which accepts fewer than `numberValues`' codecs.
   */
  readonly int32Values: boolean;
  /** The codecs run user code when decoding (see Participant.hold). */
  readonly userKeys: boolean;
  readonly userValues: boolean;
  /**
   * How many calls of this object are running user code: a getter or Proxy trap read by the
   * default codec, or a user codec's encode or decode. That code may call this map again; the
   * nested call must not touch the scratch (probes, and the default codec's writer inside them)
   * the outer call is still using, so while this is nonzero calls use fresh probes. Raised only
   * around what can run user code: number keys and values never pay for it. No user code runs
   * while the mutex is held: values found under it are decoded after unlocking.
   */
  #inUser = 0;
  /**
   * The value codec's encode, for {@linkcode callUser2}: made once, not a closure per call.
   * Typed over `unknown`, so that a SyncMap of any V is still a `SyncMap<unknown, unknown>`.
   */
  readonly #toValue: (value: unknown, p: Probe) => void;

  /**
   * `shared`: whether the map's memory may already reach another object (attached from a
   * handle); a new map's participant watches for this thread's stop only once it is shared
   * (Participant.watchStop, called by the SyncMap as its handle leaves it).
   */
  constructor(opened: OpenedSyncMap<K, V>, shared = true) {
    this.arena = opened.arena;
    this.keys = opened.keys;
    this.values = opened.values;
    const values = this.values as SlotCodec<unknown>;
    this.#toValue = (value, p) => values.toValue(value, p);
    const participant = new Participant(
      registryOf(this.arena),
      opened.ticket,
      (tag) => this.core.free(tag),
      shared,
    );
    this.participant = participant;
    participant.busy = () => this.#inUser !== 0;
    this.core = new SyncCore(this.arena, participant, slotsAsFloat64(values));
    this.entries.onWrap = () => this.probe.keyCache?.clear();
    participant.onDeaths = () => reapDead(this.core);
    participant.onSweepDue = () => retrySweep(this.core);
    // A mutex recovered from a dead holder: the reap waits for this participant's next
    // quiescent point. Invariant: a sweep (reapDead) runs only where its own thread holds
    // nothing the marking cannot see. The marking reaches what is published, retired, cached
    // or declared in flight; an operation under way may hold more (a delete, between the step
    // that retires a dirty-only entry and its taking the value out of it, holds a record that
    // only that retired entry points to), and the sweep's pause of the world skips this
    // thread's own participants. Swept from inside the operation, such a record was freed, and
    // freed again once the operation retired it: a double free.
    this.core.onDeadOwner = () => participant.deathsDue();
    // Sizes are checked when encoding: what cannot fit in maxBytes fails before the work.
    this.keys.limit = this.arena.maxBytes;
    this.values.limit = this.arena.maxBytes;
    this.numberKeys = storesNumbers(this.keys as SlotCodec<unknown>);
    this.numberValues = storesNumbers(this.values as SlotCodec<unknown>);
    this.int32Values = this.values instanceof Int32Slots;
    this.stringKeys = cachesStringKeys(this.keys as SlotCodec<unknown>);
    this.userKeys = this.keys instanceof UserSlots;
    this.userValues = this.values instanceof UserSlots;
  }

  /** Whether a call of this object is running user code: a call now uses fresh scratch. */
  get nested(): boolean {
    return this.#inUser !== 0;
  }

  /** Runs user code `f()` (a callback of the caller's), counted in {@linkcode nested}. */
  callUser<R>(f: () => R): R {
    this.#inUser++;
    try {
      return f();
    } finally {
      this.#inUser--;
    }
  }

  /** Runs user code `f(a, b)`, counted in {@linkcode nested}. */
  callUser2<A, B, R>(f: (a: A, b: B) => R, a: A, b: B): R {
    this.#inUser++;
    try {
      return f(a, b);
    } finally {
      this.#inUser--;
    }
  }

  /**
   * Encodes `key` into `probe`, hashed, and returns `probe`. Only a user's key codec runs user
   * code here (the built-in ones take primitives and Uint8Arrays, checked by brand), so only it
   * is counted in {@linkcode nested}. `read`: for a call that writes nothing (a load), which
   * needs no room to retire in and must answer in a full map.
   */
  keyProbe(key: K, probe: Probe, read = false): Probe {
    if (typeof key === "number" && this.numberKeys) {
      setKeyNumberMemo(probe, key, this.arena.memo);
    } else if (!this.userKeys) {
      this.keys.toKey(key, probe, this.arena.seed0, this.arena.seed1);
    } else {
      this.#inUser++;
      try {
        this.keys.toKey(key, probe, this.arena.seed0, this.arena.seed1);
      } finally {
        this.#inUser--;
      }
      if (!read) this.#afterUserCode();
    }
    return probe;
  }

  /**
   * {@linkcode keyProbe} into this object's key scratch, or into a fresh probe for a nested
   * call (one inside user code of an outer call, whose scratch is in use).
   */
  probeKey(key: K): Probe {
    return this.keyProbe(key, this.nested ? new Probe() : this.probe);
  }

  /** {@linkcode encodeValue} into this object's value scratch, or a fresh probe when nested. */
  probeValue(value: V): Probe {
    return this.encodeValue(value, this.nested ? new Probe() : this.valueProbe);
  }

  /**
   * {@linkcode encodeValue} into the scratch of a compare-and-X's old value, apart from the
   * value scratch (encoding the new value leaves the old one's bytes alone), or a fresh probe
   * when nested.
   */
  probeExpected(old: V): Probe {
    return this.encodeValue(old, this.nested ? compareOnlyProbe() : this.expectedProbe);
  }

  /**
   * Encodes `value` into `v` and returns `v`. User code can run for an object (the default
   * codec reads its properties, which may be getters or a Proxy's traps) or under a user's
   * codec. Called before the operation reads anything shared.
   */
  encodeValue(value: V, v: Probe): Probe {
    if (typeof value === "object" || this.userValues) {
      return this.#encodeUser(value, v);
    }
    this.values.toValue(value, v);
    return v;
  }

  /** Encodes `value` into `v` where user code can run (counted in {@linkcode nested}). */
  #encodeUser(value: V, v: Probe): Probe {
    this.callUser2(this.#toValue, value, v);
    this.#afterUserCode();
    return v;
  }

  /**
   * After user code ran while this call encoded (before it read anything shared): enter()'s
   * checks again (Participant.recheck: this thread may have been terminated meanwhile, and its
   * seat released), then the room: the calls that code made entered and retired too, and may
   * have used up the retire room this call's enter() made; make it again. (It may free what is
   * safe to free: this call holds nothing.)
   */
  #afterUserCode(): void {
    this.participant.recheck();
    this.participant.makeRoom(RETIRES_PER_OP);
  }

  /**
   * Decodes record `r`. Never under the mutex: a user codec's decode may call this map. The
   * record must stay readable meanwhile: it does until this participant's next quiescent
   * point, and the user's decode runs under Participant.hold, which defers that point. So does
   * the built-in decode of a structured value, where setters on the prototypes can run (a
   * nested store could otherwise free the record and reuse its memory under the decoder).
   */
  decodeRecord(r: number): V {
    if ((r & 1) !== 0) return immediateValue(r) as V;
    const a = this.arena;
    if (r + RECORD_HEADER > a.bytes) a.reach(r + RECORD_HEADER);
    const hi = a.i32[(r >> 2) + REC_HI];
    if (this.numberValues && isNumberSlot(hi)) return a.f64[r >> 3] as V;
    const lo = a.i32[(r >> 2) + REC_LO];
    if (this.userValues || hi === TAG_STRUCT) return this.#userDecode(this.values, lo, hi);
    return this.values.decode(a, lo, hi);
  }

  /** Decodes the key in slot words (lo, hi); user code may run as in {@linkcode decodeRecord}. */
  decodeKey(lo: number, hi: number): K {
    if (this.numberKeys && isNumberSlot(hi)) return numberOf(lo, hi) as K;
    if (this.userKeys || hi === TAG_STRUCT) return this.#userDecode(this.keys, lo, hi);
    return this.keys.decode(this.arena, lo, hi);
  }

  /** Runs a user codec's decode: no quiescent point meanwhile, nested calls on fresh scratch. */
  #userDecode<T>(codec: SlotCodec<T>, lo: number, hi: number): T {
    const part = this.participant;
    this.#inUser++;
    part.holdBegin(); // Participant.hold, with no closure
    try {
      return codec.decode(this.arena, lo, hi);
    } finally {
      part.holdEnd();
      this.#inUser--;
    }
  }

  /**
   * `core.locked(f)`, run again if it ran out of memory while retired blocks wait: they are
   * freed first (the step was rolled back, so the call holds no shared reference), then, for
   * {@linkcode BACKLOG_WAIT_MS} at most, what other workers' announcements still hold back
   * (Participant.awaitBacklog), the step run again after each wait that freed something; and
   * once more after a map of deleted keys alone is cleared to make room. `f` must be safe to
   * run again. `arg` as in `core.locked`.
   */
  lockedOrReclaim<T, A = undefined>(f: (arg: A) => T, arg?: A): T {
    try {
      return this.core.locked(f, arg);
    } catch (error) {
      // Not run again when the step published a record and then failed (SyncCore.published):
      // the record is the entry's now.
      if (!(error instanceof MapFullError) || this.core.published !== 0) throw error;
      const part = this.participant;
      // Also when it had nothing to free: the others' retired blocks, which its announcement
      // may hold back, can fill the map (Participant.awaitBacklog).
      const deadline = performance.now() + BACKLOG_WAIT_MS;
      if (part.reclaimNow() || part.awaitBacklog(deadline)) {
        do {
          try {
            return this.core.locked(f, arg);
          } catch (again) {
            if (!(again instanceof MapFullError) || this.core.published !== 0) throw again;
          }
        } while (part.awaitBacklog(deadline));
      }
      // Still no room: a map whose every key was deleted since its last promotion is cleared
      // (SyncCore.compactLocked), its tables retired and freed, and the step tried once more.
      if (!this.core.locked(() => this.core.compactLocked()) || !this.participant.reclaimNow()) {
        throw error;
      }
      return this.core.locked(f, arg);
    }
  }
}

/** A probe for a compare-and-X's old value: one too large to store matches nothing. */
function compareOnlyProbe(): Probe {
  const p = new Probe();
  p.compareOnly = true;
  return p;
}
