/**
 * SyncMap: Go's sync.Map, in a SharedArrayBuffer.
 *
 * @module
 */

import { allocate, footprint, HEADROOM_BYTES } from "../_engine/allocator.ts";
import {
  Arena,
  checkMaxBytes,
  H_ALLOC_JOURNAL,
  HEADER_BYTES,
  KIND_SYNC_MAP,
  roundUp,
} from "../_engine/arena.ts";
import { adoptCensus, census, ownerId } from "../_engine/census.ts";
import { ownerOf } from "../_engine/futex.ts";
import { hashWords } from "../_engine/hash.ts";
import { Journal, journalWords } from "../_engine/journal.ts";
import { Participant, RETIRES_PER_OP } from "../_engine/reclaim.ts";
import {
  adoptSlot,
  claimSlot,
  releaseSlot,
  reserveSlot,
  SLOT_WORDS,
  slotsInUse,
  type Ticket,
} from "../_engine/registry.ts";
import { isNumberSlot, Probe, type SlotCodec, storesNumbers, UserSlots } from "../_engine/slots.ts";
import { bucketBytesForHint, bucketsForHint, MAX_B, Table } from "../_engine/table.ts";
import { WriterTx } from "../_engine/tx.ts";
import { attachCodec, type Codec, slotCodecOf } from "../codec.ts";
import { CANCEL, DELETE } from "../_computed.ts";
import { describe, wrongKind } from "../_describe.ts";
import {
  denoRequest,
  describeError,
  inspectMap,
  type InspectRequest,
  nodeRequest,
} from "../_inspect.ts";
import { checkOptions } from "../_options.ts";
import { MapFullError } from "../errors.ts";
import {
  abandon,
  awaitSettled,
  claim,
  CLAIMED,
  claimedEntry,
  current,
  replaceIf,
  settle,
  wakeWaiters,
} from "./_sync_compute.ts";
import { SyncCore } from "./_sync_core.ts";
import {
  AMENDED,
  EXPUNGED,
  K_RECORD,
  NIL,
  pendingOf,
  R_COUNT,
  R_DIRTY,
  R_EPOCH,
  R_JOURNAL,
  R_MISSES,
  R_MU,
  R_NSLOTS,
  R_READ,
  R_SLOTS,
  R_SLOTS_BLOCK,
  R_SWEEP_DUE,
  RECORD_HEADER,
  registryOf,
  S_ENTRY,
  TABLE_HEADER_BYTES,
} from "./_sync_layout.ts";
import { reapDead, SYNC_JOURNAL_ENTRIES, verifySyncMap } from "./_sync_recovery.ts";

/** What a locked step of a store returns when it added the key (records are above EXPUNGED). */
const ADDED = -1;

// The design is Go's (sync/map.go, Go 1.20-1.23), in shared memory:
//
// - The read table holds the keys that may be read without the lock. It is immutable once
//   published: only the table itself is never written, the entries it points to are. Its
//   header offset and the `amended` bit ("the dirty table holds keys the read table lacks")
//   share one word, so one atomic load gives a reader both.
// - The dirty table, under the mutex, holds every key of the read table that is not expunged
//   plus the keys added since, so promoting it is a pointer swap.
// - An entry is one key's cell, shared by both tables: its `p` word is NIL (deleted, still in
//   the read table), EXPUNGED (deleted and absent from the dirty table) or the offset of a value
//   record. `p` changes only by atomic compare-exchange or exchange; a store to a key of the
//   read table is one such exchange, with no lock, which is why disjoint writers scale.
// - Misses (loads that had to lock) promote the dirty table once they reach its length; the
//   next store of a new key rebuilds the dirty table from the read table, expunging deleted
//   entries.
//
// This file holds the public class and the lock-free paths; _sync_core.ts the steps under the
// mutex and their recovery; _sync_layout.ts the memory layout (docs/design.md tabulates it).

const DEFAULT_PARTICIPANTS = 256;
const MAX_PARTICIPANTS = 65536;

const OPTIONS = ["hint", "keys", "values", "maxBytes", "maxParticipants"] as const;
const ATTACH_OPTIONS = ["keys", "values"] as const;

/** Options for {@linkcode SyncMap}. */
export interface SyncMapOptions<K, V> {
  /** How many keys to size the first tables for. */
  hint?: number;
  /** Codec for keys; defaults to {@linkcode codecs}.auto. */
  keys?: Codec<K>;
  /** Codec for values; defaults to {@linkcode codecs}.auto. */
  values?: Codec<V>;
  /** Most bytes of shared memory the map may use (default 1 GiB of address space). */
  maxBytes?: number;
  /** How many SyncMap objects, across all workers, may be attached at once (default 256). */
  maxParticipants?: number;
}

/** Options for {@linkcode SyncMap.attach}: the codecs, when not built-in. */
export interface SyncMapAttachOptions<K, V> {
  /** The keys codec the map was made with; needed only for a user codec. */
  keys?: Codec<K>;
  /** The values codec the map was made with; needed only for a user codec. */
  values?: Codec<V>;
}

/** A structured-cloneable reference to a {@linkcode SyncMap}, to post to a worker. */
export interface SyncMapHandle {
  /** Always "SyncMap". */
  readonly kind: "SyncMap";
  /** The map's shared memory. */
  readonly buffer: SharedArrayBuffer;
  /** A participant slot reserved for the attaching worker by the worker adapters. */
  readonly participant?: number;
  /** The generation of that slot's reservation. */
  readonly generation?: number;
  /** The census of ended threads of the process that made the handle (internal). */
  readonly census?: SharedArrayBuffer;
}

/** What {@linkcode SyncMap.stats} reports. */
export interface SyncMapStats {
  /** Keys with a value. */
  count: number;
  /** Keys in the read table, deleted ones included. */
  readKeys: number;
  /** Keys in the dirty table, or -1 when there is none. */
  dirtyKeys: number;
  /** Whether the dirty table holds keys the read table lacks. */
  amended: boolean;
  /** Loads that took the lock since the last promotion. */
  misses: number;
  /** Participant slots in use (attached SyncMap objects, and shares reserved for workers). */
  participants: number;
  /** Blocks this object retired that are not yet freed. */
  retired: number;
  /** Bytes of shared memory allocated and not freed. */
  bytesUsed: number;
  /** Bytes of shared memory the buffer currently spans. */
  bytesReserved: number;
}

/** An arena and a participant slot to attach with; only {@linkcode SyncMap.attach} makes one. */
class Attachment {
  readonly arena: Arena;
  readonly ticket: Ticket;
  readonly options: SyncMapAttachOptions<unknown, unknown>;
  constructor(arena: Arena, ticket: Ticket, options: SyncMapAttachOptions<unknown, unknown>) {
    this.arena = arena;
    this.ticket = ticket;
    this.options = options;
  }
}

const f64 = new Float64Array(1);
const w32 = new Int32Array(f64.buffer);
/** Set by the static block: reserves a participant slot for a worker. */
let reserveShare: (
  map: SyncMap<never, never>,
) => { handle: SyncMapHandle; release: (graceMs?: number) => void };

/**
 * Go's `sync.Map` in a SharedArrayBuffer: safe for concurrent use by any number of workers
 * without further locking, and fast in the two cases it is made for: (1) keys written once and
 * read many times, as in caches that only grow, and (2) workers that read, write and overwrite
 * disjoint sets of keys.
 *
 * The design is Go's: a read table read without a lock, a dirty table under a mutex, entries
 * shared by both whose value pointer is updated atomically, and a miss counter that promotes
 * the dirty table to be the read table. A load of a key in the read table takes two atomic
 * loads and no lock; so does finding the entry for a store, swap, compareAndSwap or delete of
 * such a key, which then takes one atomic compare-exchange.
 *
 * Every operation is linearizable, and a store that another worker's load observes
 * happens-before that load returns (Go's "synchronizes before"). Keys and values are copied in
 * and out through codecs: a value read back is a copy, and changing it changes nothing in the
 * map. Keys compare by SameValueZero.
 *
 * Memory: replaced values and tables are reclaimed once no worker can be reading them
 * (quiescent-state reclamation). Each SyncMap object announces a quiescent point every 64 calls
 * and goes quiet when its task ends, so an idle worker never holds reclamation back. What waits
 * to be freed is about what the objects retired over two of their 64-call periods, plus what is
 * retired while one of them sits in a long synchronous task without calling the map; for
 * 1,000 keys overwritten 10 million times, `bytesUsed` stays within 132 records of its first
 * pass. A worker that is gone must give back its share: the worker adapters do it when the
 * worker ends; otherwise call {@linkcode close}.
 *
 * @example Quick start
 * ```ts
 * import { SyncMap } from "@shmap/shmap";
 *
 * const cache = new SyncMap<string, { size: number }>();
 * cache.store("a.txt", { size: 12 });
 * const [actual, loaded] = cache.loadOrStore("a.txt", { size: 99 });
 * console.log(actual, loaded); // { size: 12 } true
 * cache.range((key, value) => {
 *   console.log(key, value.size);
 * });
 * ```
 *
 * @typeParam K The key type.
 * @typeParam V The value type.
 */
export class SyncMap<K = unknown, V = unknown> implements Iterable<[K, V]> {
  /**
   * Returned by a {@linkcode SyncMap.prototype.compute} callback: delete the key. The same
   * symbol as `RedisSyncMap.DELETE`, so a callback works with either map.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const leases = new SyncMap<string, string>().set("job", "me");
   * // Give the lease up if this worker holds it.
   * leases.compute("job", (holder) => holder === "me" ? SyncMap.DELETE : SyncMap.CANCEL);
   * console.log(leases.has("job")); // false
   * ```
   */
  static readonly DELETE: typeof DELETE = DELETE;
  /**
   * Returned by a {@linkcode SyncMap.prototype.compute} callback: leave the key as it is. The
   * same symbol as `RedisSyncMap.CANCEL`.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const flags = new SyncMap<string, boolean>().set("beta", true);
   * console.log(flags.compute("beta", (_old, loaded) => loaded ? SyncMap.CANCEL : false));
   * // [true, true]
   * ```
   */
  static readonly CANCEL: typeof CANCEL = CANCEL;

  #arena: Arena;
  #core: SyncCore;
  #keys: SlotCodec<K>;
  #values: SlotCodec<V>;
  #participant: Participant;
  /** Scratch for a call's key, value and compare-and-X old value; see #inUser. */
  #probe = new Probe();
  #valueProbe = new Probe();
  /** compareAndSwap's and compareAndDelete's old value; compute's copy of the value it read. */
  #expectedProbe = new Probe();
  /**
   * How many calls of this object are running user code: a getter or Proxy trap read by the
   * default codec, or a user codec's encode or decode. That code may call this map again; the
   * nested call must not touch the scratch (probes, and the default codec's writer inside them)
   * the outer call is still using, so while this is nonzero calls use fresh probes. Raised only
   * around what can run user code: number keys and values never pay for it. No user code runs
   * while the mutex is held: values found under it are decoded after unlocking.
   */
  #inUser = 0;
  #numberKeys: boolean;
  #numberValues: boolean;
  /** The codecs run user code when decoding (see Participant.hold). */
  #userKeys: boolean;
  #userValues: boolean;

  static {
    reserveShare = (map) => map.#reserveShare();
  }

  /** Makes a new, empty map in a new SharedArrayBuffer. */
  constructor(options: SyncMapOptions<K, V> = {}) {
    let ticket: Ticket;
    if (options instanceof Attachment) {
      // Options checked by attach.
      const given = options.options as SyncMapAttachOptions<K, V>;
      this.#arena = options.arena;
      this.#keys = attachCodec(given.keys, options.arena.keyCodecName, "keys");
      this.#values = attachCodec(given.values, options.arena.valueCodecName, "values");
      ticket = options.ticket;
    } else {
      options = checkOptions(options, OPTIONS, "SyncMap options");
      const hint = options.hint ?? 0;
      if (typeof hint !== "number") {
        throw new TypeError(`hint must be a number, got ${describe(hint)}`);
      }
      if (!Number.isSafeInteger(hint) || hint < 0) {
        throw new RangeError(`hint must be a non-negative safe integer, got ${hint}`);
      }
      const slots = options.maxParticipants ?? DEFAULT_PARTICIPANTS;
      if (typeof slots !== "number") {
        throw new TypeError(`maxParticipants must be a number, got ${describe(slots)}`);
      }
      if (!Number.isInteger(slots) || slots < 1 || slots > MAX_PARTICIPANTS) {
        throw new RangeError(
          `maxParticipants must be an integer in [1, ${MAX_PARTICIPANTS}], got ${slots}`,
        );
      }
      const maxBytes = checkMaxBytes(options.maxBytes);
      this.#keys = slotCodecOf(options.keys, "keys");
      this.#values = slotCodecOf(options.values, "values");
      // Multiply, not shift: a shift wraps at 32 bits, so a huge hint (1e8, 2^31) made a table
      // whose B its 16-byte array lacked.
      const initialBytes = bucketBytesForHint(hint);
      if (bucketsForHint(hint) > MAX_B || initialBytes > maxBytes / 4) {
        throw new RangeError(`hint ${hint} needs more memory than maxBytes ${maxBytes} allows`);
      }
      // What the map takes before its first key: the header, the participant slots, the
      // mutex's journal and the hint's table. Too much for maxBytes is a bad pair of options,
      // not a full map.
      const slotBytes = slots * SLOT_WORDS * 4 + 64;
      const journalBytes = journalWords(SYNC_JOURNAL_ENTRIES) * 4;
      const fixedBytes = HEADER_BYTES + footprint(slotBytes) + footprint(journalBytes) +
        (hint > 0 ? footprint(TABLE_HEADER_BYTES) + footprint(initialBytes) : 0) +
        HEADROOM_BYTES;
      if (fixedBytes > maxBytes) {
        throw new RangeError(
          `maxParticipants ${slots}${hint > 0 ? ` and hint ${hint} need` : " needs"} ` +
            `about ${fixedBytes} bytes to hold a few keys, more than maxBytes ${maxBytes}`,
        );
      }
      const arena = Arena.create(
        KIND_SYNC_MAP,
        maxBytes,
        initialBytes + slotBytes + journalBytes,
        this.#keys.name,
        this.#values.name,
        true,
      );
      this.#arena = arena;
      // Nothing can die half-way through making a map no one else has seen yet: these first
      // allocations go through the allocator's idle journal, without its lock.
      const boot = new Journal(() => arena.i32, H_ALLOC_JOURNAL);
      boot.begin();
      // One 64-byte line a slot, the array line-aligned: participants write their own slots.
      const block = allocate(arena, slotBytes, true, boot);
      arena.i32[R_SLOTS_BLOCK] = block;
      arena.i32[R_SLOTS] = roundUp(block, 64) >> 2;
      arena.i32[R_NSLOTS] = slots;
      arena.i32[R_EPOCH] = 1;
      const journal = allocate(arena, journalBytes, false, boot);
      Journal.format(arena.i32, journal >> 2, SYNC_JOURNAL_ENTRIES);
      arena.i32[R_JOURNAL] = journal;
      if (hint > 0) {
        // Go's zero Map starts empty; with a hint, start with a dirty table of that size.
        const tx = new WriterTx(arena, boot);
        const dirty = tx.alloc(TABLE_HEADER_BYTES, true);
        Table.create(tx, arena, dirty, hint);
        arena.i32[R_DIRTY] = dirty;
      }
      boot.commit();
      census();
      ticket = claimSlot(registryOf(arena));
    }
    const participant = new Participant(
      registryOf(this.#arena),
      ticket,
      (tag) => this.#core.free(tag),
    );
    this.#participant = participant;
    this.#core = new SyncCore(this.#arena, participant);
    participant.onDeaths = () => reapDead(this.#core);
    this.#core.onDeadOwner = () => reapDead(this.#core);
    // Sizes are checked when encoding: what cannot fit in maxBytes fails before the work.
    this.#keys.limit = this.#arena.maxBytes;
    this.#values.limit = this.#arena.maxBytes;
    this.#numberKeys = storesNumbers(this.#keys as SlotCodec<unknown>);
    this.#numberValues = storesNumbers(this.#values as SlotCodec<unknown>);
    this.#userKeys = this.#keys instanceof UserSlots;
    this.#userValues = this.#values instanceof UserSlots;
  }

  /**
   * Attaches to a map made elsewhere, from its {@linkcode handle}, taking a participant slot
   * (give it back with {@linkcode close} when this object is no longer used, or let the worker
   * adapters do it). Built-in codecs are found by name; a map made with a user codec needs the
   * same codec again. Throws TypeError for anything that is not a live SyncMap handle.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const map = new SyncMap<string, number>();
   * map.store("x", 1);
   * const same = SyncMap.attach<string, number>(structuredClone(map.handle));
   * console.log(same.load("x")); // 1
   * same.close();
   * ```
   */
  static attach<K = unknown, V = unknown>(
    handle: SyncMapHandle,
    options: SyncMapAttachOptions<K, V> = {},
  ): SyncMap<K, V> {
    if (typeof handle !== "object" || handle === null) {
      throw new TypeError(
        `SyncMap.attach: the handle must be the object SyncMap#handle returns, got ${
          describe(handle)
        }`,
      );
    }
    const kind: unknown = handle.kind;
    if (kind !== "SyncMap") throw wrongKind("SyncMap.attach", "SyncMap", kind);
    // Checked before a participant slot is taken.
    options = checkOptions(options, ATTACH_OPTIONS, "SyncMap.attach options");
    const arena = Arena.attach(handle.buffer, KIND_SYNC_MAP, true, "SyncMap.attach");
    if (handle.census !== undefined) adoptCensus(handle.census);
    const registry = registryOf(arena);
    let ticket: Ticket;
    if (handle.participant !== undefined) {
      // A slot the worker adapters reserved for this worker: it becomes in use exactly once.
      try {
        ticket = adoptSlot(registry, handle.participant, handle.generation ?? -1);
      } catch (error) {
        throw new TypeError(`SyncMap.attach: ${(error as Error).message}`);
      }
    } else {
      ticket = claimSlot(registry);
    }
    try {
      const from = new Attachment(arena, ticket, options) as unknown as SyncMapOptions<K, V>;
      return new SyncMap<K, V>(from);
    } catch (error) {
      releaseSlot(registry, ticket.index, ticket.word >>> 2);
      throw error;
    }
  }

  /**
   * A structured-cloneable reference to this map: post it to a worker and call
   * {@linkcode SyncMap.attach} there.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * console.log(new SyncMap().handle.kind); // "SyncMap"
   * ```
   */
  get handle(): SyncMapHandle {
    return { kind: "SyncMap", buffer: this.#arena.buffer, census: census() };
  }

  /**
   * The number of keys with a value. Exact when no other worker is writing; otherwise a value
   * the count had at some moment during the call.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * console.log(new SyncMap().set("a", 1).size); // 1
   * ```
   */
  get size(): number {
    return Atomics.load(this.#arena.i32, R_COUNT);
  }

  /**
   * Returns the value stored for `key`, or undefined (Go's Load). A key in the read table
   * costs two atomic loads and no lock.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const map = new SyncMap<number, string>();
   * map.store(1, "one");
   * console.log(map.load(1), map.load(2)); // "one" undefined
   * ```
   */
  load(key: K): V | undefined {
    const part = this.#participant;
    part.enter();
    const e = typeof key === "number" && this.#numberKeys
      ? this.#entryForNumber(key)
      : this.#entryForRead(key);
    if (e === 0) return undefined;
    const p = Atomics.load(this.#arena.i32, e >> 2);
    return p <= EXPUNGED ? undefined : this.#decodeRecord(p);
  }

  /**
   * Returns the value stored for `key` and whether there is one, as Go's
   * `value, ok := m.Load(key)` does: unlike {@linkcode load}, it tells a stored `undefined`
   * from a missing key. It costs what `load` costs (a key in the read table: two atomic loads,
   * no lock) and has its guarantees.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const map = new SyncMap<string, number | undefined>();
   * map.store("set", undefined);
   * console.log(map.loadOk("set"), map.loadOk("unset")); // [undefined, true] [undefined, false]
   * ```
   */
  loadOk(key: K): [value: V | undefined, ok: boolean] {
    const part = this.#participant;
    part.enter();
    const e = typeof key === "number" && this.#numberKeys
      ? this.#entryForNumber(key)
      : this.#entryForRead(key);
    if (e === 0) return [undefined, false];
    const p = Atomics.load(this.#arena.i32, e >> 2);
    return p <= EXPUNGED ? [undefined, false] : [this.#decodeRecord(p), true];
  }

  /**
   * Stores `value` for `key` (Go's Store).
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const map = new SyncMap<string, number[]>();
   * map.store("primes", [2, 3, 5]);
   * console.log(map.load("primes")); // [2, 3, 5]
   * ```
   */
  store(key: K, value: V): void {
    this.#swap(key, value, false);
  }

  /**
   * Stores `value` for `key` and returns the previous value and whether there was one
   * (Go's Swap).
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const map = new SyncMap<string, number>();
   * console.log(map.swap("n", 1)); // [undefined, false]
   * console.log(map.swap("n", 2)); // [1, true]
   * ```
   */
  swap(key: K, value: V): [previous: V | undefined, loaded: boolean] {
    return this.#swap(key, value, true);
  }

  /**
   * Returns the existing value for `key` if there is one, else stores `value` and returns it;
   * `loaded` says which (Go's LoadOrStore).
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const map = new SyncMap<string, string>();
   * console.log(map.loadOrStore("k", "first")); // ["first", false]
   * console.log(map.loadOrStore("k", "second")); // ["first", true]
   * ```
   */
  loadOrStore(key: K, value: V): [actual: V, loaded: boolean] {
    const part = this.#participant;
    part.enter();
    const a = this.#arena;
    const core = this.#core;
    const nested = this.#inUser !== 0;
    const probe = this.#keyProbe(key, nested ? new Probe() : this.#probe);
    const vp = this.#encodeValue(value, nested ? new Probe() : this.#valueProbe);
    probe.storable(); // a key too large for maxBytes
    let record = 0;
    try {
      const read = Atomics.load(a.i32, R_READ);
      const e = core.findIn(core.readTable(read), probe);
      if (e !== 0) {
        const p = Atomics.load(a.i32, e >> 2);
        if (p > EXPUNGED) return [this.#decodeRecord(p), true];
        if (p <= NIL) {
          // Deleted, or pending (absent until its computation ends): store over it.
          record = core.newRecord(vp);
          const found = this.#tryLoadOrStore(e, record);
          if (found !== EXPUNGED) {
            if (found === NIL) {
              record = 0;
              return [value, false];
            }
            return [this.#decodeRecord(found), true];
          }
        }
      }
      if (record === 0) record = core.newRecord(vp);
      // The record loaded under the lock is decoded once it is released: decoding may run user
      // code (a user codec), which may call this map and need the lock. The record stays
      // readable until this participant's next quiescent point (see #decodeRecord).
      core.inflight = record;
      const step = this.#loadOrStoreLocked(probe, record);
      const added = step === ADDED;
      const found = added ? NIL : step;
      if (found === NIL) record = 0;
      if (added) core.count(1);
      return found === NIL ? [value, false] : [this.#decodeRecord(found), true];
    } finally {
      core.inflight = 0;
      if (record !== 0) core.freeRecord(record);
    }
  }

  /**
   * {@linkcode loadOrStore}'s step under the lock, with the new value in `record`: returns what
   * {@linkcode #tryLoadOrStore} does, or {@linkcode ADDED} when it added the key. A method of its
   * own so that only this path makes the closure's context: the variables a closure captures
   * live in a context object, which V8 makes as the enclosing function is entered, every call.
   */
  #loadOrStoreLocked(probe: Probe, record: number): number {
    const a = this.#arena;
    const core = this.#core;
    return this.#lockedOrReclaim(() => {
      const read2 = Atomics.load(a.i32, R_READ);
      let e2 = core.findIn(core.readTable(read2), probe);
      if (e2 !== 0) {
        core.unexpungeLocked(e2, probe);
        return this.#tryLoadOrStore(e2, record);
      }
      e2 = core.findIn(core.dirtyTable(), probe);
      if (e2 !== 0) {
        const p = this.#tryLoadOrStore(e2, record);
        core.missLocked();
        return p;
      }
      core.addLocked(probe, record, read2);
      return ADDED;
    });
  }

  /**
   * Returns the value of `key` if it has one; else calls `fn`, stores what it returns, and
   * returns that with `loaded` false (xsync's LoadOrCompute). Across all workers, `fn` runs at
   * most once for a key while the key is absent: a caller that finds another computing the
   * key waits for it and returns its value with `loaded` true. Computing first and then
   * calling {@linkcode loadOrStore} would instead compute in every worker that missed the key
   * at once.
   *
   * Concurrency:
   *
   * - `fn` runs in the calling worker, outside every lock of the map, while this object holds
   *   nothing in shared memory: it may take long (it holds back neither memory reclamation nor
   *   {@linkcode verify}), and may call any method of the map.
   * - While `fn` runs the key has no value, and every method but `loadOrCompute` sees it
   *   absent: `load` and `loadOk` miss it, `has` is false, `range` and iteration skip it,
   *   `delete`, `loadAndDelete` and the compare-and-X find nothing.
   * - A `store`, `set`, `swap`, `loadOrStore` or `compute` of the key meanwhile wins: its
   *   value stays, `fn`'s result is dropped, and this call (and every caller that waited)
   *   returns the value found, `loaded` true. If the key was also deleted again, or the map
   *   cleared, `fn`'s result is stored when it returns; callers that waited may then have
   *   computed too.
   * - If `fn` throws (or returns what the codec cannot encode, or the map is full), nothing is
   *   stored, the error goes to this caller, and one of the callers waiting, if any, runs its
   *   own `fn` (the others wait for that one).
   * - If the worker running `fn` dies (its worker is terminated, see the worker adapters), a
   *   waiting caller takes the key over within 50 ms of the death being recorded and runs its
   *   own `fn`; without one, the next `loadOrCompute` of the key does.
   * - Waiters sleep in `Atomics.wait` (allowed on the main thread of Deno, Bun and Node) in
   *   50 ms slices, woken as soon as the key gets a value or is given up.
   * - `fn` calling `loadOrCompute` of the same key, on this map in the same thread, throws an
   *   Error instead of waiting for itself; other keys work. Workers whose `fn`s wait for each
   *   other's keys deadlock, as with any two locks taken in opposite orders.
   * - `fn` must return the value itself: a Promise it returns is a TypeError.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const squares = new SyncMap<number, number>();
   * let calls = 0;
   * const square = (n: number) => squares.loadOrCompute(n, () => (calls++, n * n));
   * console.log(square(12), square(12), calls); // [144, false] [144, true] 1
   * ```
   */
  loadOrCompute(key: K, fn: () => V): [actual: V, loaded: boolean] {
    if (typeof fn !== "function") {
      throw new TypeError(`SyncMap.loadOrCompute: fn must be a function, got ${describe(fn)}`);
    }
    const part = this.#participant;
    part.enter();
    const core = this.#core;
    const nested = this.#inUser !== 0;
    const probe = this.#keyProbe(key, nested ? new Probe() : this.#probe);
    probe.storable(); // a key too large for maxBytes, refused before fn runs
    const mine = pendingOf(ownerId());
    for (;;) {
      const found = claim(core, probe, mine);
      if (found === CLAIMED) return this.#computeClaimed(probe, mine, fn, nested);
      if (found > EXPUNGED) return [this.#decodeRecord(found), true];
      if (found === mine) {
        throw new Error(
          "SyncMap.loadOrCompute: this thread is computing this key already (fn called " +
            "loadOrCompute for its own key, which would wait for itself)",
        );
      }
      // Another thread computes the key: wait for it holding nothing, then look again.
      const e = claimedEntry();
      part.idle();
      awaitSettled(this.#arena.i32, e, found);
      part.enter();
    }
  }

  /** Runs `fn` for the key `probe` that pending `p` `mine` claimed, and publishes its value. */
  #computeClaimed(probe: Probe, mine: number, fn: () => V, nested: boolean): [V, boolean] {
    const part = this.#participant;
    const core = this.#core;
    let record = 0;
    try {
      // Nothing is held across fn: it may run long without holding reclamation back or
      // keeping a stop of the world waiting, and its calls of this map use fresh scratch.
      part.idle();
      let value: V;
      this.#inUser++;
      try {
        value = fn();
      } finally {
        this.#inUser--;
      }
      if (value instanceof Promise) {
        throw new TypeError(
          "SyncMap.loadOrCompute: fn returned a Promise; it must return the value itself",
        );
      }
      part.enter();
      const vp = this.#encodeValue(value, nested ? new Probe() : this.#valueProbe);
      record = core.newRecord(vp, true);
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
      return [this.#decodeRecord(found), true];
    } catch (error) {
      core.inflight = 0;
      if (record !== 0) core.freeRecord(record);
      try {
        part.enter();
        abandon(core, probe, mine);
      } catch {
        // The caller's error is the one to report. A claim left behind (this thread was
        // terminated) is taken over once the thread is recorded gone.
      }
      throw error;
    }
  }

  /**
   * Deletes `key`, returning its previous value and whether there was one (Go's
   * LoadAndDelete).
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const map = new SyncMap<string, number>();
   * map.store("a", 1);
   * console.log(map.loadAndDelete("a")); // [1, true]
   * console.log(map.loadAndDelete("a")); // [undefined, false]
   * ```
   */
  loadAndDelete(key: K): [value: V | undefined, loaded: boolean] {
    const part = this.#participant;
    part.enter();
    const e = this.#entryForDelete(key, true);
    if (e === 0) return [undefined, false];
    const p = this.#deleteEntry(e);
    if (p === 0) return [undefined, false];
    return [this.#decodeRecord(p), true];
  }

  /**
   * Deletes `key` (Go's Delete); returns whether it had a value, like `Map.prototype.delete`.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const map = new SyncMap().set("a", 1);
   * console.log(map.delete("a"), map.delete("a")); // true false
   * ```
   */
  delete(key: K): boolean {
    const part = this.#participant;
    part.enter();
    const e = this.#entryForDelete(key, true);
    return e !== 0 && this.#deleteEntry(e) !== 0;
  }

  /**
   * Stores `next` for `key` if its current value equals `old` (compared by encoded value: the
   * bytes the value codec makes, so `NaN` equals `NaN` and `-0` differs from `0`). Returns
   * whether it swapped (Go's CompareAndSwap).
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const map = new SyncMap<string, number>();
   * map.store("v", 1);
   * console.log(map.compareAndSwap("v", 1, 2), map.compareAndSwap("v", 1, 3)); // true false
   * console.log(map.load("v")); // 2
   * ```
   */
  compareAndSwap(key: K, old: V, next: V): boolean {
    const part = this.#participant;
    part.enter();
    const a = this.#arena;
    const core = this.#core;
    const nested = this.#inUser !== 0;
    const probe = this.#keyProbe(key, nested ? new Probe() : this.#probe);
    // Two probes, so two writers: encoding `next` leaves `old`'s bytes alone.
    const expected = this.#encodeValue(old, nested ? new Probe() : this.#expectedProbe);
    const vp = this.#encodeValue(next, nested ? new Probe() : this.#valueProbe);
    const read = Atomics.load(a.i32, R_READ);
    const e = core.findIn(core.readTable(read), probe);
    if (e !== 0) return this.#tryCompareAndSwap(e, expected, vp);
    if ((read & AMENDED) === 0) return false;
    return core.locked(() => {
      const read2 = Atomics.load(a.i32, R_READ);
      let e2 = core.findIn(core.readTable(read2), probe);
      if (e2 !== 0) return this.#tryCompareAndSwap(e2, expected, vp);
      e2 = core.findIn(core.dirtyTable(), probe);
      if (e2 === 0) return false;
      // The key needed the lock and the set of keys did not change: count a miss, so that the
      // map moves on to its efficient state.
      const swapped = this.#tryCompareAndSwap(e2, expected, vp);
      core.missLocked();
      return swapped;
    });
  }

  /**
   * Deletes `key` if its value equals `old` (compared by encoded value, as in
   * {@linkcode compareAndSwap}); returns whether it did (Go's CompareAndDelete).
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const map = new SyncMap<string, string>();
   * map.store("k", "x");
   * console.log(map.compareAndDelete("k", "y"), map.compareAndDelete("k", "x")); // false true
   * ```
   */
  compareAndDelete(key: K, old: V): boolean {
    const part = this.#participant;
    part.enter();
    const a = this.#arena;
    const core = this.#core;
    const nested = this.#inUser !== 0;
    const expected = this.#encodeValue(old, nested ? new Probe() : this.#expectedProbe);
    const e = this.#entryForDelete(key, false);
    if (e === 0) return false;
    for (;;) {
      const p = Atomics.load(a.i32, e >> 2);
      if (p <= EXPUNGED || !core.recordEquals(p, expected)) return false;
      if (Atomics.compareExchange(a.i32, e >> 2, p, NIL) === p) {
        core.count(-1);
        part.retire(p | K_RECORD);
        return true;
      }
    }
  }

  /**
   * Atomically replaces the value of `key` with what `fn(old, loaded)` returns, deletes the
   * key if it returns {@linkcode SyncMap.DELETE}, or leaves it as it is if it returns
   * {@linkcode SyncMap.CANCEL} (xsync's Compute; `loaded` says whether the key had a value).
   * Returns the value the key then has and whether it has one: `[next, true]` after a store,
   * `[undefined, false]` after a delete, `[old, loaded]` after a cancel. Its shape and
   * sentinels are RedisSyncMap's.
   *
   * Optimistic, as the map's other writes are: it reads the key, calls `fn` outside every
   * lock, and writes the result with one compare-exchange only if the key still holds what
   * `fn` was given (compared by encoding, as {@linkcode compareAndSwap} compares); if another
   * write got in between, it reads again and calls `fn` again. So no update is lost, a load
   * never waits for `fn`, a key in the read table takes no lock, and `fn` may run more than
   * once per call: it must have no effect but its result. (A pessimistic compute would hold
   * a lock, the map's or the key's, while `fn` runs: user code under a lock, which this map
   * never runs, and every write of the key, or load, would wait for it.)
   *
   * `fn` runs in the calling worker and may call any method of the map (a write of the same
   * key makes this call run `fn` again). If it throws, nothing is written and the error goes
   * to the caller. A key being computed by {@linkcode loadOrCompute} has no value: `fn` gets
   * `(undefined, false)`, and a value it returns wins over the computation's. `fn` must
   * return the value itself: a Promise is a TypeError.
   *
   * @example A counter no worker loses an increment of
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const hits = new SyncMap<string, number>();
   * hits.compute("/", (old, loaded) => loaded ? old! + 1 : 1);
   * console.log(hits.compute("/", (old) => old! + 1)); // [2, true]
   * console.log(hits.compute("/", () => SyncMap.DELETE)); // [undefined, false]
   * ```
   */
  compute(
    key: K,
    fn: (old: V | undefined, loaded: boolean) => V | typeof SyncMap.DELETE | typeof SyncMap.CANCEL,
  ): [value: V | undefined, ok: boolean] {
    if (typeof fn !== "function") {
      throw new TypeError(`SyncMap.compute: fn must be a function, got ${describe(fn)}`);
    }
    const part = this.#participant;
    part.enter();
    const a = this.#arena;
    const core = this.#core;
    const nested = this.#inUser !== 0;
    const probe = this.#keyProbe(key, nested ? new Probe() : this.#probe);
    const seen = nested ? new Probe() : this.#expectedProbe;
    for (;;) {
      const p = current(core, probe);
      const loaded = p !== 0;
      let old: V | undefined;
      if (loaded) {
        // A copy of the encoding, to compare with once fn returns: the record itself may be
        // freed and reused by then.
        a.reach(p + RECORD_HEADER);
        seen.snapshot(a, a.i32[(p >> 2) + 1], a.i32[p >> 2]);
        old = this.#decodeRecord(p);
      }
      let next: V | typeof DELETE | typeof CANCEL;
      this.#inUser++;
      try {
        next = fn(old, loaded);
      } finally {
        this.#inUser--;
      }
      if (next === CANCEL) return [old, loaded];
      if (next === DELETE && !loaded) return [undefined, false];
      if (next instanceof Promise) {
        throw new TypeError(
          "SyncMap.compute: fn returned a Promise; it must return the value itself",
        );
      }
      // fn's own calls may have left this participant offline (loadOrCompute waits so).
      part.enter();
      if (next === DELETE) {
        if (replaceIf(core, probe, true, seen, NIL)) return [undefined, false];
        continue;
      }
      const vp = this.#encodeValue(next, nested ? new Probe() : this.#valueProbe);
      probe.storable(); // a key too large for maxBytes
      const record = core.newRecord(vp, true);
      core.inflight = record;
      let stored = false;
      try {
        stored = replaceIf(core, probe, loaded, seen, record);
      } finally {
        core.inflight = 0;
        if (!stored) core.freeRecord(record);
      }
      if (stored) return [next, true];
    }
  }

  /**
   * Calls `f(key, value)` for each key and value, stopping when `f` returns `false` (Go's
   * Range). Like Go's, it is no consistent snapshot: each key is visited at most once, a key
   * present and unchanged for the whole call is visited, and a key stored or deleted meanwhile
   * may or may not be, with any value it had during the call. `f` may call any method of the
   * map.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const map = new SyncMap<string, number>();
   * map.store("a", 1);
   * map.store("b", 2);
   * let sum = 0;
   * map.range((_key, value) => {
   *   sum += value;
   * });
   * console.log(sum); // 3
   * ```
   */
  range(f: (key: K, value: V) => boolean | void): void {
    if (typeof f !== "function") {
      throw new TypeError(`SyncMap.range: f must be a function, got ${describe(f)}`);
    }
    for (const [keys, values] of this.#batches()) {
      for (let j = 0; j < keys.length; j++) if (f(keys[j], values[j]) === false) return;
    }
  }

  /**
   * Deletes every key (Go 1.23's Clear).
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const map = new SyncMap().set("a", 1);
   * map.clear();
   * console.log(map.size); // 0
   * ```
   */
  clear(): void {
    const part = this.#participant;
    part.enter();
    const a = this.#arena;
    if (Atomics.load(a.i32, R_READ) === 0 && a.i32[R_DIRTY] === 0) return;
    // Allocates nothing, so that a full map can always be cleared: the tables are retired
    // whole, with the values they held (see SyncCore.clearLocked).
    this.#core.locked(() => this.#core.clearLocked());
  }

  /**
   * Same as {@linkcode load}, like `Map.prototype.get`.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * console.log(new SyncMap().set("a", 1).get("a")); // 1
   * ```
   */
  get(key: K): V | undefined {
    return this.load(key);
  }

  /**
   * Stores `value` for `key` and returns the map, like `Map.prototype.set`.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const map = new SyncMap<string, number>().set("a", 1).set("b", 2);
   * console.log(map.size); // 2
   * ```
   */
  set(key: K, value: V): this {
    this.#swap(key, value, false);
    return this;
  }

  /**
   * Whether `key` has a value.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * console.log(new SyncMap().set(NaN, 1).has(NaN)); // true
   * ```
   */
  has(key: K): boolean {
    const part = this.#participant;
    part.enter();
    const e = typeof key === "number" && this.#numberKeys
      ? this.#entryForNumber(key)
      : this.#entryForRead(key);
    return e !== 0 && Atomics.load(this.#arena.i32, e >> 2) > EXPUNGED;
  }

  /**
   * Iterates over `[key, value]` pairs with {@linkcode range}'s guarantees.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * console.log([...new SyncMap().set("a", 1).entries()]); // [["a", 1]]
   * ```
   */
  entries(): IterableIterator<[K, V]> {
    return this.#iterate();
  }

  /**
   * Iterates over the keys.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * console.log([...new SyncMap().set("a", 1).keys()]); // ["a"]
   * ```
   */
  *keys(): IterableIterator<K> {
    for (const [key] of this.#iterate()) yield key;
  }

  /**
   * Iterates over the values.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * console.log([...new SyncMap().set("a", 1).values()]); // [1]
   * ```
   */
  *values(): IterableIterator<V> {
    for (const [, value] of this.#iterate()) yield value;
  }

  /**
   * Same as {@linkcode entries}.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * console.log(new Map(new SyncMap().set("a", 1)).get("a")); // 1
   * ```
   */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.#iterate();
  }

  /**
   * Calls `callback(value, key, map)` for every entry, like `Map.prototype.forEach`.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * new SyncMap<string, number>().set("a", 1).forEach((v, k) => console.log(k, v));
   * ```
   */
  forEach(callback: (value: V, key: K, map: SyncMap<K, V>) => void, thisArg?: unknown): void {
    if (typeof callback !== "function") {
      throw new TypeError(
        `SyncMap.forEach: the callback must be a function, got ${describe(callback)}`,
      );
    }
    this.range((key, value) => {
      callback.call(thisArg, value, key, this);
    });
  }

  /**
   * Gives back this object's participant slot. Call it when this object will not be used
   * again (the worker adapters do it for you when a worker ends); the object throws afterwards.
   * The map itself lives on for every other object attached to it.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const map = new SyncMap();
   * const view = SyncMap.attach(map.handle);
   * view.close();
   * ```
   */
  close(): void {
    // Inside user code run by a call of this object (a getter it is encoding, a codec), the
    // outer call still uses this object's participant slot.
    if (this.#inUser !== 0) throw new TypeError("cannot close a SyncMap inside one of its calls");
    this.#participant.close();
  }

  /**
   * Checks every invariant of the map's shared memory and throws a RangeError naming the first
   * one broken: the tables (counts, chains, tophash marks, keys in their buckets), that every
   * block the map reaches is reached once and was handed out with its size, that no block is
   * handed out and unreachable (leaked), the key count, the allocator's heap, spans, free lists
   * and the participants' caches, and that no participant slot still belongs to a thread that
   * is gone. Threads that are gone are reclaimed first, as any call would.
   *
   * It stops the other workers for the check (each parks at its next quiescent point), so call
   * it when the map is quiet, in tests or after an incident; it throws if another worker keeps
   * using the map for five seconds. It costs time in proportion to the map's size.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const map = new SyncMap<string, number>();
   * map.store("a", 1);
   * map.verify(); // throws if anything is inconsistent
   * ```
   */
  verify(): void {
    this.#participant.enter();
    verifySyncMap(this.#core);
  }

  /** Same as {@linkcode close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * The state of the two tables and of memory.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * const map = new SyncMap().set("a", 1);
   * console.log(map.stats().count); // 1
   * ```
   */
  stats(): SyncMapStats {
    const part = this.#participant;
    part.enter();
    const a = this.#arena;
    const core = this.#core;
    return core.locked(() => {
      const readWord = Atomics.load(a.i32, R_READ);
      const dirty = core.dirtyTable();
      return {
        count: Atomics.load(a.i32, R_COUNT),
        readKeys: core.readTable(readWord)?.count ?? 0,
        dirtyKeys: dirty?.count ?? -1,
        amended: (readWord & AMENDED) !== 0,
        misses: a.i32[R_MISSES],
        participants: slotsInUse(core.registry),
        retired: part.pending,
        bytesUsed: core.bytesUsed(),
        bytesReserved: a.buffer.byteLength,
      };
    });
  }

  /** "SyncMap". */
  get [Symbol.toStringTag](): string {
    return "SyncMap";
  }

  /**
   * What `console.log` shows in Deno: the entries as a `Map`'s, `SyncMap(2) { "a" => 1, ... }`,
   * at most `iterableLimit` (100) of them. Read as {@linkcode range} reads (no lock but a brief
   * one to promote), and never throws.
   */
  [Symbol.for("Deno.customInspect")](inspect?: unknown, options?: unknown): string {
    return this.#inspect(denoRequest(inspect, options));
  }

  /** What `util.inspect` and `console.log` show in Node and Bun; see the Deno hook. */
  [Symbol.for("nodejs.util.inspect.custom")](
    depth?: unknown,
    options?: unknown,
    inspect?: unknown,
  ): string {
    return this.#inspect(nodeRequest(depth, options, inspect));
  }

  #inspect(request: InspectRequest): string {
    return inspectMap(
      request,
      "SyncMap",
      () => this.size,
      (limit) => {
        const entries: [unknown, unknown][] = [];
        if (limit > 0) {
          this.range((key, value) => {
            entries.push([key, value]);
            return entries.length < limit;
          });
        }
        return entries;
      },
      (error) =>
        error instanceof TypeError && /closed|released/.test(error.message)
          ? "closed"
          : describeError(error),
    );
  }

  // ---- Entries -------------------------------------------------------------------------------

  /**
   * Encodes `key` into `probe`, hashed, and returns `probe`. Only a user's key codec runs user
   * code here (the built-in ones take primitives and Uint8Arrays, checked by brand), so only it
   * raises #inUser.
   */
  #keyProbe(key: K, probe: Probe): Probe {
    if (typeof key === "number" && this.#numberKeys) {
      f64[0] = key === 0 ? 0 : key === key ? key : NaN;
      probe.lo = w32[0];
      probe.hi = w32[1];
      probe.mode = 0;
      probe.hash = hashWords(probe.lo, probe.hi, this.#arena.seed0, this.#arena.seed1);
    } else if (!this.#userKeys) {
      this.#keys.toKey(key, probe, this.#arena.seed0, this.#arena.seed1);
    } else {
      this.#inUser++;
      try {
        this.#keys.toKey(key, probe, this.#arena.seed0, this.#arena.seed1);
      } finally {
        this.#inUser--;
      }
      this.#afterUserCode();
    }
    return probe;
  }

  /**
   * Encodes `value` into `v` and returns `v`. User code can run for an object (the default
   * codec reads its properties, which may be getters or a Proxy's traps) or under a user's
   * codec. Called before the operation reads anything shared.
   */
  #encodeValue(value: V, v: Probe): Probe {
    if (typeof value !== "object" && !this.#userValues) {
      this.#values.toValue(value, v);
      return v;
    }
    this.#inUser++;
    try {
      this.#values.toValue(value, v);
    } finally {
      this.#inUser--;
    }
    this.#afterUserCode();
    return v;
  }

  /**
   * After user code ran while this call encoded (before it read anything shared): the calls
   * that code made entered and retired too, and may have used up the retire room this call's
   * enter() made; make it again. (It may free what is safe to free: this call holds nothing.)
   */
  #afterUserCode(): void {
    this.#participant.reserve(RETIRES_PER_OP);
  }

  /**
   * Go's Load up to the entry for a number key (the codec stores it as a plain float64): the
   * hot path, one atomic load and no codec call when the key is in the read table. Kept apart
   * from the general path so that engines inline all of it.
   */
  #entryForNumber(key: number): number {
    const a = this.#arena;
    const core = this.#core;
    const read = Atomics.load(a.i32, R_READ);
    f64[0] = key === 0 ? 0 : key === key ? key : NaN; // SameValueZero: -0 is 0, one NaN
    const lo = w32[0];
    const hi = w32[1];
    const table = core.readTable(read);
    const k = table === null ? -1 : table.findWords(lo, hi, hashWords(lo, hi, a.seed0, a.seed1));
    if (k >= 0) return core.entryAt(k);
    if ((read & AMENDED) === 0) return 0;
    return this.#entryForReadLocked(
      this.#keyProbe(key as K, this.#inUser === 0 ? this.#probe : new Probe()),
    );
  }

  /** Go's Load up to the entry: the read table, then, when amended, the dirty table. */
  #entryForRead(key: K): number {
    const a = this.#arena;
    const core = this.#core;
    // Encoded before anything shared is read: a user codec's encode may call this map.
    const probe = this.#keyProbe(key, this.#inUser === 0 ? this.#probe : new Probe());
    const read = Atomics.load(a.i32, R_READ);
    const table = core.readTable(read);
    const k = table === null ? -1 : table.find(probe);
    if (k >= 0) return core.entryAt(k);
    if ((read & AMENDED) === 0) return 0;
    return this.#entryForReadLocked(probe);
  }

  /** The slow half of {@linkcode #entryForRead}: under the lock, and counting a miss. */
  #entryForReadLocked(probe: Probe): number {
    const a = this.#arena;
    const core = this.#core;
    return core.locked(() => {
      const read = Atomics.load(a.i32, R_READ);
      let e = core.findIn(core.readTable(read), probe);
      if (e === 0 && (read & AMENDED) !== 0) {
        e = core.findIn(core.dirtyTable(), probe);
        core.missLocked();
      }
      return e;
    });
  }

  /**
   * Go's LoadAndDelete and CompareAndDelete up to the entry. With `remove`, a key found only
   * in the dirty table is removed from it, and its entry retired once deleted.
   */
  #entryForDelete(key: K, remove: boolean): number {
    const a = this.#arena;
    const core = this.#core;
    const probe = this.#keyProbe(key, this.#inUser === 0 ? this.#probe : new Probe());
    const read = Atomics.load(a.i32, R_READ);
    const e = core.findIn(core.readTable(read), probe);
    if (e !== 0 || (read & AMENDED) === 0) return e;
    return core.locked(() => {
      const read2 = Atomics.load(a.i32, R_READ);
      let e2 = core.findIn(core.readTable(read2), probe);
      if (e2 === 0 && (read2 & AMENDED) !== 0) {
        const dirty = core.dirtyTable();
        e2 = core.findIn(dirty, probe);
        // A pending entry stays: its computation stores into it (see _sync_compute.ts). Only
        // the lock's holder writes a dirty-only entry's `p`, so this test holds until unlock.
        if (e2 !== 0 && remove && Atomics.load(a.i32, e2 >> 2) >= NIL) {
          core.removeFromDirty(dirty!, probe, e2);
        }
        // Count a miss whether or not the key was there: it takes the slow path until the
        // dirty table is promoted.
        core.missLocked();
      }
      return e2;
    });
  }

  /** Sets an entry's value to nil; returns the record it held, or 0 (Go's entry.delete). */
  #deleteEntry(e: number): number {
    const i32 = this.#arena.i32;
    for (;;) {
      const p = Atomics.load(i32, e >> 2);
      if (p <= EXPUNGED) return 0;
      if (Atomics.compareExchange(i32, e >> 2, p, NIL) === p) {
        this.#core.count(-1);
        this.#participant.retire(p | K_RECORD);
        return p;
      }
    }
  }

  /** Store and Swap. */
  #swap(key: K, value: V, wantPrevious: true): [V | undefined, boolean];
  #swap(key: K, value: V, wantPrevious: false): void;
  #swap(key: K, value: V, wantPrevious: boolean): [V | undefined, boolean] | void {
    const part = this.#participant;
    part.enter();
    const a = this.#arena;
    const core = this.#core;
    const nested = this.#inUser !== 0;
    const probe = this.#keyProbe(key, nested ? new Probe() : this.#probe);
    const vp = this.#encodeValue(value, nested ? new Probe() : this.#valueProbe);
    probe.storable(); // a key too large for maxBytes
    let record = core.newRecord(vp, true);
    try {
      const read = Atomics.load(a.i32, R_READ);
      const e = core.findIn(core.readTable(read), probe);
      if (e !== 0) {
        // trySwap: exchange unless expunged.
        for (;;) {
          const p = Atomics.load(a.i32, e >> 2);
          if (p === EXPUNGED) break;
          if (Atomics.compareExchange(a.i32, e >> 2, p, record) === p) {
            record = 0;
            const previous = this.#replaced(p, e);
            if (!wantPrevious) return;
            return previous === NIL ? [undefined, false] : [this.#decodeRecord(previous), true];
          }
        }
      }
      // The previous record is decoded once the lock is released: decoding may run user code
      // (a user codec), which may call this map and need the lock.
      core.inflight = record;
      const step = this.#swapLocked(probe, record);
      record = 0;
      const added = step === ADDED;
      const previous = added ? NIL : step;
      if (added) core.count(1);
      if (!wantPrevious) return;
      return previous === NIL ? [undefined, false] : [this.#decodeRecord(previous), true];
    } finally {
      core.inflight = 0;
      if (record !== 0) core.freeRecord(record);
    }
  }

  /**
   * {@linkcode #swap}'s step under the lock: stores `stored` for `probe`'s key, adding the key if
   * absent. Returns the replaced record (or NIL), or {@linkcode ADDED} when it added the key.
   * Apart from #swap for the reason given at {@linkcode #loadOrStoreLocked}.
   */
  #swapLocked(probe: Probe, stored: number): number {
    const a = this.#arena;
    const core = this.#core;
    return this.#lockedOrReclaim(() => {
      const read2 = Atomics.load(a.i32, R_READ);
      let e2 = core.findIn(core.readTable(read2), probe);
      if (e2 !== 0) core.unexpungeLocked(e2, probe);
      else e2 = core.findIn(core.dirtyTable(), probe);
      if (e2 !== 0) {
        // The step's last act, after everything that can fail.
        return this.#replaced(Atomics.exchange(a.i32, e2 >> 2, stored), e2);
      }
      core.addLocked(probe, stored, read2);
      return ADDED;
    });
  }

  /**
   * After replacing record `p` (or nil, or a pending key's `p`) of entry `e`: counts a new
   * value, or retires `p`. Returns the record to report as the previous value, or NIL. The
   * caller decodes it (outside the lock): it stays readable until this participant's next
   * quiescent point, and it is retired first because decoding may run user code, which may use
   * the room reserved for this.
   */
  #replaced(p: number, e: number): number {
    if (p <= EXPUNGED) {
      this.#core.count(1);
      // A pending key's waiters find the value stored over it.
      if (p < NIL) wakeWaiters(this.#arena.i32, e);
      return NIL;
    }
    this.#participant.retire(p | K_RECORD);
    return p;
  }

  /**
   * Go's tryLoadOrStore on entry `e` with the new value already in `record`. Returns NIL when
   * it stored `record`; EXPUNGED when it could not (the entry is expunged: Go's !ok); else the
   * record already there (loaded), for the caller to decode, outside the lock if it holds it.
   * The caller frees `record` unless it was stored.
   */
  #tryLoadOrStore(e: number, record: number): number {
    const i32 = this.#arena.i32;
    let p = Atomics.load(i32, e >> 2);
    for (;;) {
      // A pending key has no value: it is stored over as NIL is, and its waiters woken.
      if (p > NIL) return p;
      const found = Atomics.compareExchange(i32, e >> 2, p, record);
      if (found === p) {
        this.#core.count(1);
        if (p < NIL) wakeWaiters(i32, e);
        return NIL;
      }
      p = found;
    }
  }

  /** Go's tryCompareAndSwap, with the new value encoded in `next`. */
  #tryCompareAndSwap(e: number, expected: Probe, next: Probe): boolean {
    const i32 = this.#arena.i32;
    const core = this.#core;
    let p = Atomics.load(i32, e >> 2);
    if (p <= EXPUNGED || !core.recordEquals(p, expected)) return false;
    const record = core.newRecord(next);
    for (;;) {
      const found = Atomics.compareExchange(i32, e >> 2, p, record);
      if (found === p) {
        this.#participant.retire(p | K_RECORD);
        return true;
      }
      p = found;
      if (p <= EXPUNGED || !core.recordEquals(p, expected)) {
        core.freeRecord(record);
        return false;
      }
    }
  }

  // ---- Records -------------------------------------------------------------------------------

  /**
   * Decodes record `r`. Never under the mutex: a user codec's decode may call this map. The
   * record must stay readable meanwhile: it does until this participant's next quiescent
   * point, and the user's decode runs under Participant.hold, which defers that point.
   */
  #decodeRecord(r: number): V {
    const a = this.#arena;
    if (r + RECORD_HEADER > a.bytes) a.reach(r + RECORD_HEADER);
    const hi = a.i32[(r >> 2) + 1];
    if (this.#numberValues && isNumberSlot(hi)) return a.f64[r >> 3] as V;
    const lo = a.i32[r >> 2];
    if (this.#userValues) return this.#userDecode(this.#values, hi, lo);
    return this.#values.decode(a, hi, lo);
  }

  /** Decodes the key in slot words (lo, hi). */
  #decodeKey(hi: number, lo: number): K {
    const a = this.#arena;
    if (this.#numberKeys && isNumberSlot(hi)) {
      w32[0] = lo;
      w32[1] = hi;
      return f64[0] as K;
    }
    if (this.#userKeys) return this.#userDecode(this.#keys, hi, lo);
    return this.#keys.decode(a, hi, lo);
  }

  /** Runs a user codec's decode: no quiescent point meanwhile, nested calls on fresh scratch. */
  #userDecode<T>(codec: SlotCodec<T>, hi: number, lo: number): T {
    const a = this.#arena;
    this.#inUser++;
    try {
      return this.#participant.hold(() => codec.decode(a, hi, lo));
    } finally {
      this.#inUser--;
    }
  }

  // ---- Iteration and sharing -----------------------------------------------------------------

  /**
   * Iterates in batches, as GoMap does: keys are partitioned by the low `level` bits of their
   * hash (the seed is the arena's, so every table of this map agrees), and each batch, one
   * partition, is read from the read table as it is when the batch is read (the dirty table
   * promoted first if it holds keys the read table lacks, as Go's Range does). A key is in one
   * partition, so it is yielded at most once; a key present throughout is in the read table
   * when its partition is read, so it is yielded. Entries are decoded before any is yielded:
   * nothing is held in shared memory while the caller's code runs.
   */
  *#iterate(): Generator<[K, V], undefined, undefined> {
    for (const [keys, values] of this.#batches()) {
      for (let j = 0; j < keys.length; j++) yield [keys[j], values[j]];
    }
  }

  /**
   * Yields each batch of an iteration in turn, as decoded keys and values (the same two arrays,
   * refilled: use a batch before asking for the next). A generator per batch, not per entry,
   * so that range() pays for it once every few entries.
   */
  *#batches(): Generator<[K[], V[]], undefined, undefined> {
    const level = this.#batchLevel();
    const n = 1 << level;
    const start = Math.floor(Math.random() * n);
    const keys: K[] = [];
    const values: V[] = [];
    for (let step = 0; step < n; step++) {
      keys.length = 0;
      values.length = 0;
      this.#readBatch(level, (start + step) & (n - 1), keys, values);
      if (keys.length > 0) yield [keys, values];
    }
  }

  /** The partition level for an iteration: B of the read table, promoted first. */
  #batchLevel(): number {
    const part = this.#participant;
    part.enter();
    return this.#promotedRead()?.B ?? 0;
  }

  #readBatch(level: number, i: number, keys: K[], values: V[]): void {
    const part = this.#participant;
    part.enter();
    const a = this.#arena;
    const read = this.#promotedRead();
    // The batch reads entries without a per-entry check: cover what was allocated so far.
    a.reach(a.buffer.byteLength);
    read?.collect(level, i, (k) => {
      const i32 = a.i32;
      const e = i32[(k >> 2) + S_ENTRY];
      const p = Atomics.load(i32, e >> 2);
      if (p <= EXPUNGED) return;
      keys.push(this.#decodeKey(i32[(k >> 2) + 1], i32[k >> 2]));
      values.push(this.#decodeRecord(p));
    });
  }

  /** The read table, after promoting the dirty table if the read table is amended. */
  #promotedRead(): Table | null {
    const a = this.#arena;
    const core = this.#core;
    let read = Atomics.load(a.i32, R_READ);
    if ((read & AMENDED) !== 0) {
      core.locked(() => {
        if ((Atomics.load(a.i32, R_READ) & AMENDED) !== 0) core.promoteLocked();
      });
      read = Atomics.load(a.i32, R_READ);
    }
    return core.readTable(read);
  }

  /**
   * `core.locked(f)`, run again once if it ran out of memory while retired blocks wait: they
   * are freed first (the step was rolled back, so the call holds no shared reference). `f` must
   * be safe to run twice.
   */
  #lockedOrReclaim<T>(f: () => T): T {
    try {
      return this.#core.locked(f);
    } catch (error) {
      if (!(error instanceof MapFullError) || !this.#participant.reclaimNow()) throw error;
      return this.#core.locked(f);
    }
  }

  /** Reserves a participant slot for a worker; see src/workers/_share.ts. */
  #reserveShare(): { handle: SyncMapHandle; release: (graceMs?: number) => void } {
    const a = this.#arena;
    const registry = registryOf(a);
    const { index, generation } = reserveSlot(registry);
    return {
      handle: {
        kind: "SyncMap",
        buffer: a.buffer,
        census: census(),
        participant: index,
        generation,
      },
      // A worker that ends without closing the map may have been stopped mid-operation with
      // blocks in hand: a sweep is due (see _sync_recovery.ts).
      release: (graceMs = 0) =>
        releaseSlot(
          registry,
          index,
          generation,
          graceMs,
          (deadOwner) => {
            // A holder that died mid-step is rolled back now, before its lists are repaired.
            if (deadOwner !== 0 && ownerOf(Atomics.load(a.i32, R_MU)) === deadOwner) {
              this.#core.locked(() => {});
            }
            Atomics.store(a.i32, R_SWEEP_DUE, 1);
          },
        ),
    };
  }
}

/**
 * Internal: reserves a participant slot of `map` for a worker about to attach, and returns the
 * handle to post and the function that gives the slot back when the worker is gone (with a
 * grace in milliseconds when the worker may still be running; see registry.ts releaseSlot).
 */
export function shareSyncMap(
  map: SyncMap<never, never>,
): { handle: SyncMapHandle; release: (graceMs?: number) => void } {
  return reserveShare(map);
}
