/**
 * SyncMap: Go's sync.Map, in a SharedArrayBuffer.
 *
 * @module
 */

import { allocate, bytesUsed, release } from "../_engine/allocator.ts";
import { Arena, checkMaxBytes, H_ROOT, KIND_SYNC_MAP, roundUp } from "../_engine/arena.ts";
import { lockWord, unlockWord } from "../_engine/futex.ts";
import { hashWords } from "../_engine/hash.ts";
import { Participant, type Registry, SLOT_WORDS, type Ticket } from "../_engine/reclaim.ts";
import {
  blobSize,
  freeSlot,
  hashStored,
  isBlob,
  isNumberSlot,
  MODE_BYTES,
  Probe,
  type SlotCodec,
  storesNumbers,
  UserSlots,
} from "../_engine/slots.ts";
import { BUCKET_SIZE, bucketsForHint, Table, TABLE_WORDS } from "../_engine/table.ts";
import { attachCodec, type Codec, slotCodecOf } from "../codec.ts";

// The design is Go's (sync/map.go, Go 1.20-1.23), in shared memory:
//
// - The read table holds the keys that may be read without the lock. It is immutable once
//   published: only the table itself is never written, the entries it points to are. Its
//   header offset and the `amended` bit ("the dirty table holds keys the read table lacks")
//   share one word, so one atomic load gives a reader both.
// - The dirty table, under the mutex, holds every key of the read table that is not expunged
//   plus the keys added since, so promoting it is a pointer swap.
// - An entry is one key's cell, shared by both tables: its `p` word is 0 (deleted, still in the
//   read table), EXPUNGED (deleted and absent from the dirty table) or the offset of a value
//   record. `p` changes only by atomic compare-exchange or exchange; a store to a key of the
//   read table is one such exchange, with no lock, which is why disjoint writers scale.
// - Misses (loads that had to lock) promote the dirty table once they reach its length; the
//   next store of a new key rebuilds the dirty table from the read table, expunging deleted
//   entries.
//
// Word layout of the root:
// The root is 64-byte aligned; words written at different rates sit on different cache lines,
// so that writing one does not evict the read-mostly words every load needs.
//
// Line 0, read by every operation, written rarely:
const R_READ = H_ROOT; // read table header offset | AMENDED; 0: empty and not amended
const R_SLOTS = H_ROOT + 1; // word index of the participant slots
const R_NSLOTS = H_ROOT + 2; // number of participant slots
// Line 1, the mutex and what it guards:
const R_MU = H_ROOT + 16; // the mutex
const R_DIRTY = H_ROOT + 17; // dirty table header offset, 0 when there is none
const R_MISSES = H_ROOT + 18;
// Line 2, reclamation (see reclaim.ts):
const R_EPOCH = H_ROOT + 32; // the global epoch
const R_ORPHANS = H_ROOT + 33; // released slots still holding retired blocks or a cache
const R_SLOTS_HIGH = H_ROOT + 34; // one past the highest participant slot ever claimed
// Line 3:
const R_COUNT = H_ROOT + 48; // keys with a value
const AMENDED = 1;

// An entry is 16 bytes: p, the key's slot words (lo, hi; the entry owns the key's blob), and
// `owner`: 0 while the entry lives, else the header of the retired table whose freeing frees it.
const E_P = 0;
const E_KEY_LO = 1;
const E_KEY_HI = 2;
const E_OWNER = 3;
const ENTRY_BYTES = 16;
// In a table, a key's value slot holds its entry's offset (word 16 from the key slot) and, in
// the second word (17), OWNS once the table is retired: 1 when freeing the table frees that
// entry, else 0. The mark lives in the table, not in the entry, because by the time a retired
// table is freed an entry it merely shared may have been freed (and reused) already: another
// participant can free a newer table, and the entries it owned, before the retirer of the older
// table runs its next collect. So freeing a table reads only its own slots, never the entries it
// does not own. Readers never read word 17.
const S_OWNS = 17;
const NIL = 0;
const EXPUNGED = 1;

// A value record: the value's slot words (lo, hi), then its blob, if any, inline. Immutable.
const RECORD_HEADER = 8;

// Retired blocks are tagged with their kind in the low bits of their 16-aligned offset.
const K_RECORD = 0;
const K_ENTRY = 1;
const K_TABLE = 2;

const TABLE_HEADER_BYTES = TABLE_WORDS * 4;
const DEFAULT_PARTICIPANTS = 256;

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

let attaching: { arena: Arena; ticket: Ticket } | undefined;
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
  #arena: Arena;
  #keys: SlotCodec<K>;
  #values: SlotCodec<V>;
  #participant: Participant;
  #probe = new Probe();
  #valueProbe = new Probe();
  #expectedProbe = new Probe();
  #numberKeys: boolean;
  #numberValues: boolean;
  /** The codecs run user code when decoding (see Participant.hold). */
  #userKeys: boolean;
  #userValues: boolean;
  // Table views, remade when the tables are replaced.
  #read: Table | null = null;
  #dirty: Table | null = null;

  static {
    reserveShare = (map) => map.#reserveShare();
  }

  /** Makes a new, empty map in a new SharedArrayBuffer. */
  constructor(options: SyncMapOptions<K, V> = {}) {
    const adopt = attaching;
    attaching = undefined;
    let ticket: Ticket;
    if (adopt !== undefined) {
      this.#arena = adopt.arena;
      this.#keys = attachCodec(options.keys, adopt.arena.keyCodecName, "keys");
      this.#values = attachCodec(options.values, adopt.arena.valueCodecName, "values");
      ticket = adopt.ticket;
    } else {
      if (typeof options !== "object" || options === null) {
        throw new TypeError("SyncMap options must be an object");
      }
      const hint = options.hint ?? 0;
      if (!Number.isSafeInteger(hint) || hint < 0) {
        throw new RangeError(`hint must be a non-negative integer, got ${String(hint)}`);
      }
      const slots = options.maxParticipants ?? DEFAULT_PARTICIPANTS;
      if (!Number.isInteger(slots) || slots < 1 || slots > 65536) {
        throw new RangeError(`maxParticipants must be an integer in [1, 65536], got ${slots}`);
      }
      const maxBytes = checkMaxBytes(options.maxBytes);
      this.#keys = slotCodecOf(options.keys, "keys");
      this.#values = slotCodecOf(options.values, "values");
      const initialBytes = BUCKET_SIZE << bucketsForHint(hint);
      if (initialBytes > maxBytes / 4) {
        throw new RangeError(`hint ${hint} needs more memory than maxBytes ${maxBytes} allows`);
      }
      const arena = Arena.create(
        KIND_SYNC_MAP,
        maxBytes,
        initialBytes + slots * SLOT_WORDS * 4,
        this.#keys.name,
        this.#values.name,
        true,
      );
      this.#arena = arena;
      // One 64-byte line a slot, the array line-aligned: participants write their own slots.
      const at = roundUp(allocate(arena, slots * SLOT_WORDS * 4 + 64, true), 64);
      arena.i32[R_SLOTS] = at >> 2;
      arena.i32[R_NSLOTS] = slots;
      arena.i32[R_EPOCH] = 1;
      if (hint > 0) {
        // Go's zero Map starts empty; with a hint, start with a dirty table of that size.
        const dirty = allocate(arena, TABLE_HEADER_BYTES, true);
        Table.create(arena, dirty, hint);
        arena.i32[R_DIRTY] = dirty;
      }
      ticket = Participant.claim(registryOf(arena));
    }
    this.#participant = new Participant(
      registryOf(this.#arena),
      ticket,
      (tag) => this.#free(tag),
    );
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
      throw new TypeError("SyncMap.attach: the handle must be an object from SyncMap#handle");
    }
    if (handle.kind !== "SyncMap") {
      throw new TypeError(
        `SyncMap.attach: the handle is for a ${String(handle.kind)}, not a SyncMap`,
      );
    }
    const arena = Arena.attach(handle.buffer, KIND_SYNC_MAP, true, "SyncMap.attach");
    const registry = registryOf(arena);
    let ticket: Ticket;
    if (handle.participant !== undefined) {
      // A slot the worker adapters reserved for this worker: it becomes in use exactly once.
      try {
        ticket = Participant.adopt(registry, handle.participant, handle.generation ?? -1);
      } catch (error) {
        throw new TypeError(`SyncMap.attach: ${(error as Error).message}`);
      }
    } else {
      ticket = Participant.claim(registry);
    }
    attaching = { arena, ticket };
    try {
      return new SyncMap<K, V>(options);
    } catch (error) {
      Participant.releaseSlot(registry, ticket.index, ticket.word >>> 2);
      throw error;
    } finally {
      attaching = undefined;
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
    return { kind: "SyncMap", buffer: this.#arena.buffer };
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
    const probe = this.#keyProbe(key);
    const vp = this.#valueProbe;
    this.#values.toValue(value, vp);
    let record = 0;
    try {
      const read = Atomics.load(a.i32, R_READ);
      let e = this.#findIn(this.#readTable(read), probe);
      if (e !== 0) {
        const p = Atomics.load(a.i32, e >> 2);
        if (p > EXPUNGED) return [this.#decodeRecord(p), true];
        if (p === NIL) {
          record = this.#newRecord(vp);
          const [actual, loaded, ok] = this.#tryLoadOrStore(e, record, value);
          if (ok) {
            if (loaded) this.#freeRecord(record);
            record = 0;
            return [actual, loaded];
          }
        }
      }
      if (record === 0) record = this.#newRecord(vp);
      this.#lock();
      try {
        const read2 = Atomics.load(a.i32, R_READ);
        e = this.#findIn(this.#readTable(read2), probe);
        let result: [V, boolean];
        if (e !== 0) {
          this.#unexpungeLocked(e, probe);
          const [actual, loaded] = this.#tryLoadOrStore(e, record, value);
          result = [actual, loaded];
          if (!loaded) record = 0;
        } else if ((e = this.#findIn(this.#dirtyTable(), probe)) !== 0) {
          const [actual, loaded] = this.#tryLoadOrStore(e, record, value);
          result = [actual, loaded];
          if (!loaded) record = 0;
          this.#missLocked();
        } else {
          this.#addLocked(probe, record, read2);
          record = 0;
          result = [value, false];
        }
        return result;
      } finally {
        this.#unlock();
      }
    } finally {
      if (record !== 0) this.#freeRecord(record);
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
    const probe = this.#keyProbe(key);
    const expected = this.#expectedProbe;
    this.#values.toValue(old, expected);
    // A codec may encode into scratch space that its next call reuses (the default codec
    // does, for objects and arrays): keep a copy of `old`'s bytes before encoding `next`.
    if (expected.mode === MODE_BYTES) expected.bytes = expected.bytes.slice();
    this.#values.toValue(next, this.#valueProbe);
    const read = Atomics.load(a.i32, R_READ);
    let e = this.#findIn(this.#readTable(read), probe);
    if (e === 0) {
      if ((read & AMENDED) === 0) return false;
      this.#lock();
      try {
        const read2 = Atomics.load(a.i32, R_READ);
        e = this.#findIn(this.#readTable(read2), probe);
        if (e === 0) {
          e = this.#findIn(this.#dirtyTable(), probe);
          if (e === 0) return false;
          // The key needed the lock and the set of keys did not change: count a miss, so
          // that the map moves on to its efficient state.
          const swapped = this.#tryCompareAndSwap(e, expected);
          this.#missLocked();
          return swapped;
        }
        return this.#tryCompareAndSwap(e, expected);
      } finally {
        this.#unlock();
      }
    }
    return this.#tryCompareAndSwap(e, expected);
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
    const expected = this.#expectedProbe;
    this.#values.toValue(old, expected);
    const e = this.#entryForDelete(key, false);
    if (e === 0) return false;
    for (;;) {
      const p = Atomics.load(a.i32, e >> 2);
      if (p <= EXPUNGED || !this.#recordEquals(p, expected)) return false;
      if (Atomics.compareExchange(a.i32, e >> 2, p, NIL) === p) {
        Atomics.sub(a.i32, R_COUNT, 1);
        this.#participant.retire(p | K_RECORD);
        return true;
      }
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
    this.#lock();
    try {
      const readWord = Atomics.load(a.i32, R_READ);
      const read = this.#readTable(readWord);
      const dirty = this.#dirtyTable();
      // Room to retire every value and both tables, made before anything changes. (Making
      // room may free retired blocks; the tables in hand are not retired: we hold the lock.)
      part.reserve((read?.count ?? 0) + (dirty?.count ?? 0) + 2);
      Atomics.store(a.i32, R_READ, 0);
      // Expunge every entry, so that a store racing with this clear through an entry of the
      // old read table fails its exchange and takes the lock, after the clear.
      if (read !== null) {
        read.collect(0, 0, (k) => {
          this.#killEntry(a.i32[(k >> 2) + 16], read.h << 2);
          a.i32[(k >> 2) + S_OWNS] = 1;
        });
        part.retire((read.h << 2) | K_TABLE);
      }
      if (dirty !== null) {
        dirty.collect(0, 0, (k) => {
          const e = a.i32[(k >> 2) + 16];
          // An entry also in the read table is that table's to free.
          const owns = a.i32[(e >> 2) + E_OWNER] === 0;
          if (owns) this.#killEntry(e, dirty.h << 2);
          a.i32[(k >> 2) + S_OWNS] = owns ? 1 : 0;
        });
        a.i32[R_DIRTY] = 0;
        part.retire((dirty.h << 2) | K_TABLE);
      }
      a.i32[R_MISSES] = 0;
    } finally {
      this.#unlock();
    }
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
    this.#participant.close();
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
    this.#lock();
    try {
      const a = this.#arena;
      const readWord = Atomics.load(a.i32, R_READ);
      const dirty = this.#dirtyTable();
      const participants = Participant.inUse(registryOf(a));
      return {
        count: Atomics.load(a.i32, R_COUNT),
        readKeys: this.#readTable(readWord)?.count ?? 0,
        dirtyKeys: dirty?.count ?? -1,
        amended: (readWord & AMENDED) !== 0,
        misses: a.i32[R_MISSES],
        participants,
        retired: part.pending,
        bytesUsed: bytesUsed(a) - Participant.cachedBytes(registryOf(a)),
        bytesReserved: a.buffer.byteLength,
      };
    } finally {
      this.#unlock();
    }
  }

  /** "SyncMap". */
  get [Symbol.toStringTag](): string {
    return "SyncMap";
  }

  // ---- Entries -------------------------------------------------------------------------------

  /** Encodes `key` into the key probe, hashed. */
  #keyProbe(key: K): Probe {
    const probe = this.#probe;
    if (typeof key === "number" && this.#numberKeys) {
      f64[0] = key === 0 ? 0 : key === key ? key : NaN;
      probe.lo = w32[0];
      probe.hi = w32[1];
      probe.mode = 0;
      probe.hash = hashWords(probe.lo, probe.hi, this.#arena.seed0, this.#arena.seed1);
    } else {
      this.#keys.toKey(key, probe, this.#arena.seed0, this.#arena.seed1);
    }
    return probe;
  }

  /** The entry of `probe` in `table`, or 0. */
  #findIn(table: Table | null, probe: Probe): number {
    if (table === null) return 0;
    const k = table.find(probe);
    return k < 0 ? 0 : this.#entryAt(k);
  }

  /**
   * The entry of key slot `k`, its 16 bytes covered by this worker's views. Lock-free paths
   * need the check: an entry may lie past this worker's views even when the bucket pointing
   * to it does not (another worker grew the buffer, then allocated the entry there), and an
   * out-of-view Atomics access throws. (Found by the cross-worker tests: a store/delete churn on
   * one key by two workers failed within 2000 operations.)
   */
  #entryAt(k: number): number {
    const a = this.#arena;
    const e = a.i32[(k >> 2) + 16];
    if (e + ENTRY_BYTES > a.bytes) a.reach(e + ENTRY_BYTES);
    return e;
  }

  /** The read table view for the read word `word`, or null when it is empty. */
  #readTable(word: number): Table | null {
    const h = word & ~AMENDED;
    if (h === 0) return null;
    const cached = this.#read;
    if (cached !== null && cached.h === h >> 2) return cached;
    // A new read table: its header may lie past this worker's views, when another worker grew
    // the buffer and then made the table there. Reading it unchecked gave undefined words, a
    // NaN bucket offset, and a walk through the arena header ("corrupt offset ..."). Cover the
    // whole buffer: everything the table references was allocated before it was published.
    // (A later table at the same offset is still covered for its header; its buckets, key
    // blobs, entries and records are checked where they are read.)
    const a = this.#arena;
    if (h + TABLE_HEADER_BYTES > a.bytes) a.reach(a.buffer.byteLength);
    return (this.#read = new Table(a, h, false, noop));
  }

  /** The dirty table view, or null when there is none. Under the lock. */
  #dirtyTable(): Table | null {
    const h = this.#arena.i32[R_DIRTY];
    if (h === 0) return null;
    const cached = this.#dirty;
    if (cached !== null && cached.h === h >> 2) return cached;
    return (this.#dirty = new Table(this.#arena, h, false, noop));
  }

  /**
   * Go's Load up to the entry for a number key (the codec stores it as a plain float64): the
   * hot path, one atomic load and no codec call when the key is in the read table. Kept apart
   * from the general path so that engines inline all of it.
   */
  #entryForNumber(key: number): number {
    const a = this.#arena;
    const read = Atomics.load(a.i32, R_READ);
    f64[0] = key === 0 ? 0 : key === key ? key : NaN; // SameValueZero: -0 is 0, one NaN
    const lo = w32[0];
    const hi = w32[1];
    const table = this.#readTable(read);
    const k = table === null ? -1 : table.findWords(lo, hi, hashWords(lo, hi, a.seed0, a.seed1));
    if (k >= 0) return this.#entryAt(k);
    if ((read & AMENDED) === 0) return 0;
    return this.#entryForReadLocked(this.#keyProbe(key as K));
  }

  /** Go's Load up to the entry: the read table, then, when amended, the dirty table. */
  #entryForRead(key: K): number {
    const a = this.#arena;
    const read = Atomics.load(a.i32, R_READ);
    const table = this.#readTable(read);
    const probe = this.#keyProbe(key);
    const k = table === null ? -1 : table.find(probe);
    if (k >= 0) return this.#entryAt(k);
    if ((read & AMENDED) === 0) return 0;
    return this.#entryForReadLocked(probe);
  }

  /** The slow half of {@linkcode #entryForRead}: under the lock, and counting a miss. */
  #entryForReadLocked(probe: Probe): number {
    const a = this.#arena;
    this.#lock();
    try {
      const read = Atomics.load(a.i32, R_READ);
      let e = this.#findIn(this.#readTable(read), probe);
      if (e === 0 && (read & AMENDED) !== 0) {
        e = this.#findIn(this.#dirtyTable(), probe);
        this.#missLocked();
      }
      return e;
    } finally {
      this.#unlock();
    }
  }

  /**
   * Go's LoadAndDelete and CompareAndDelete up to the entry. With `remove`, a key found only
   * in the dirty table is removed from it, and its entry retired once deleted.
   */
  #entryForDelete(key: K, remove: boolean): number {
    const a = this.#arena;
    const probe = this.#keyProbe(key);
    const read = Atomics.load(a.i32, R_READ);
    const e = this.#findIn(this.#readTable(read), probe);
    if (e !== 0 || (read & AMENDED) === 0) return e;
    this.#lock();
    try {
      const read2 = Atomics.load(a.i32, R_READ);
      let e2 = this.#findIn(this.#readTable(read2), probe);
      if (e2 === 0 && (read2 & AMENDED) !== 0) {
        const dirty = this.#dirtyTable();
        e2 = this.#findIn(dirty, probe);
        if (e2 !== 0 && remove) {
          dirty!.remove(probe);
          // The entry is in no table now. Other operations that found it under the lock may
          // still use it outside the lock, so it is retired, not freed. Its value is retired
          // by whoever deletes it, which happens before this operation returns.
          a.i32[(e2 >> 2) + E_OWNER] = -1;
          this.#participant.retire(e2 | K_ENTRY);
        }
        // Count a miss whether or not the key was there: it takes the slow path until the
        // dirty table is promoted.
        this.#missLocked();
      }
      return e2;
    } finally {
      this.#unlock();
    }
  }

  /** Sets an entry's value to nil; returns the record it held, or 0 (Go's entry.delete). */
  #deleteEntry(e: number): number {
    const i32 = this.#arena.i32;
    for (;;) {
      const p = Atomics.load(i32, e >> 2);
      if (p <= EXPUNGED) return 0;
      if (Atomics.compareExchange(i32, e >> 2, p, NIL) === p) {
        Atomics.sub(i32, R_COUNT, 1);
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
    const probe = this.#keyProbe(key);
    this.#values.toValue(value, this.#valueProbe);
    let record = this.#newRecord(this.#valueProbe, true);
    try {
      const read = Atomics.load(a.i32, R_READ);
      let e = this.#findIn(this.#readTable(read), probe);
      if (e !== 0) {
        // trySwap: exchange unless expunged.
        for (;;) {
          const p = Atomics.load(a.i32, e >> 2);
          if (p === EXPUNGED) break;
          if (Atomics.compareExchange(a.i32, e >> 2, p, record) === p) {
            record = 0;
            return this.#replaced(p, wantPrevious);
          }
        }
      }
      this.#lock();
      try {
        const read2 = Atomics.load(a.i32, R_READ);
        e = this.#findIn(this.#readTable(read2), probe);
        if (e !== 0) {
          this.#unexpungeLocked(e, probe);
        } else {
          e = this.#findIn(this.#dirtyTable(), probe);
        }
        if (e !== 0) {
          const p = Atomics.exchange(a.i32, e >> 2, record);
          record = 0;
          return this.#replaced(p, wantPrevious);
        }
        this.#addLocked(probe, record, read2);
        record = 0;
        return wantPrevious ? [undefined, false] : undefined;
      } finally {
        this.#unlock();
      }
    } finally {
      if (record !== 0) this.#freeRecord(record);
    }
  }

  /** After replacing record `p` (or nil): count, retire and report the previous value. */
  #replaced(p: number, wantPrevious: boolean): [V | undefined, boolean] | undefined {
    if (p <= EXPUNGED) {
      Atomics.add(this.#arena.i32, R_COUNT, 1);
      return wantPrevious ? [undefined, false] : undefined;
    }
    // Retired first: decoding may run user code, which may use the room reserved for this.
    // The record stays readable until this participant's next quiescent point.
    this.#participant.retire(p | K_RECORD);
    return wantPrevious ? [this.#decodeRecord(p), true] : undefined;
  }

  /**
   * Go's tryLoadOrStore on entry `e` with the new value already in `record`: returns
   * [actual, loaded, ok]; ok is false when the entry is expunged. The caller frees `record`
   * unless it was stored (ok && !loaded).
   */
  #tryLoadOrStore(e: number, record: number, value: V): [V, boolean, boolean] {
    const i32 = this.#arena.i32;
    let p = Atomics.load(i32, e >> 2);
    for (;;) {
      if (p === EXPUNGED) return [value, false, false];
      if (p !== NIL) return [this.#decodeRecord(p), true, true];
      const found = Atomics.compareExchange(i32, e >> 2, NIL, record);
      if (found === NIL) {
        Atomics.add(i32, R_COUNT, 1);
        return [value, false, true];
      }
      p = found;
    }
  }

  /** Go's tryCompareAndSwap, with the new value in the value probe. */
  #tryCompareAndSwap(e: number, expected: Probe): boolean {
    const i32 = this.#arena.i32;
    let p = Atomics.load(i32, e >> 2);
    if (p <= EXPUNGED || !this.#recordEquals(p, expected)) return false;
    const record = this.#newRecord(this.#valueProbe);
    for (;;) {
      const found = Atomics.compareExchange(i32, e >> 2, p, record);
      if (found === p) {
        this.#participant.retire(p | K_RECORD);
        return true;
      }
      p = found;
      if (p <= EXPUNGED || !this.#recordEquals(p, expected)) {
        this.#freeRecord(record);
        return false;
      }
    }
  }

  /**
   * Go's unexpungeLocked: an expunged entry of the read table is not in the dirty table;
   * put it back there before storing into it. Under the lock.
   */
  #unexpungeLocked(e: number, probe: Probe): void {
    const a = this.#arena;
    if (Atomics.compareExchange(a.i32, e >> 2, EXPUNGED, NIL) !== EXPUNGED) return;
    // Expunged entries exist only while there is a dirty table (dirtyLocked made them).
    const dirty = this.#dirtyTable()!;
    let k: number;
    try {
      probe.lo = a.i32[(e >> 2) + E_KEY_LO];
      k = dirty.insert(probe, false);
    } catch (error) {
      Atomics.store(a.i32, e >> 2, EXPUNGED);
      throw error;
    }
    a.i32[(k >> 2) + 16] = e;
    a.i32[(k >> 2) + 17] = 0;
  }

  /**
   * Adds a new key with value `record` to the dirty table, making the dirty table first if
   * there is none (Go's dirtyLocked) and marking the read table amended. Under the lock.
   * Failure-atomic: on MapFullError nothing visible has changed.
   */
  #addLocked(probe: Probe, record: number, read: number): void {
    const a = this.#arena;
    if ((read & AMENDED) === 0) this.#dirtyLocked(read);
    const dirty = this.#dirtyTable()!;
    const e = this.#participant.allocate(ENTRY_BYTES);
    let keyLo: number;
    try {
      keyLo = probe.materialize(a);
    } catch (error) {
      this.#participant.release(e, ENTRY_BYTES);
      throw error;
    }
    let k: number;
    try {
      const lo = probe.lo;
      probe.lo = keyLo;
      try {
        k = dirty.insert(probe, false);
      } finally {
        probe.lo = lo;
      }
    } catch (error) {
      freeSlot(a, probe.hi, keyLo);
      this.#participant.release(e, ENTRY_BYTES);
      throw error;
    }
    const i32 = a.i32;
    i32[(e >> 2) + E_P] = record;
    i32[(e >> 2) + E_KEY_LO] = keyLo;
    i32[(e >> 2) + E_KEY_HI] = probe.hi;
    i32[(e >> 2) + E_OWNER] = 0;
    i32[(k >> 2) + 16] = e;
    i32[(k >> 2) + 17] = 0;
    Atomics.add(i32, R_COUNT, 1);
    if ((read & AMENDED) === 0) Atomics.store(i32, R_READ, read | AMENDED);
  }

  /**
   * Go's dirtyLocked: when there is no dirty table, makes one holding every entry of the read
   * table that is not deleted, expunging the deleted ones. Failure-atomic.
   */
  #dirtyLocked(readWord: number): void {
    const a = this.#arena;
    if (a.i32[R_DIRTY] !== 0) return;
    const read = this.#readTable(readWord);
    const header = allocate(a, TABLE_HEADER_BYTES, true);
    try {
      Table.create(a, header, read?.count ?? 0);
    } catch (error) {
      release(a, header, TABLE_HEADER_BYTES);
      throw error;
    }
    const dirty = new Table(a, header, false, noop);
    const expunged: number[] = [];
    try {
      read?.collect(0, 0, (k) => {
        const i32 = a.i32;
        const e = i32[(k >> 2) + 16];
        // tryExpungeLocked
        let p = Atomics.load(i32, e >> 2);
        while (p === NIL) {
          p = Atomics.compareExchange(i32, e >> 2, NIL, EXPUNGED);
          if (p === NIL) {
            expunged.push(e);
            return;
          }
        }
        if (p === EXPUNGED) return;
        const lo = i32[k >> 2];
        const hi = i32[(k >> 2) + 1];
        const slot = dirty.insertUnique(lo, hi, hashStored(a, hi, lo));
        a.i32[(slot >> 2) + 16] = e;
      });
    } catch (error) {
      for (const e of expunged) Atomics.store(a.i32, e >> 2, NIL);
      dirty.destroy();
      release(a, header, TABLE_HEADER_BYTES);
      throw error;
    }
    a.i32[R_DIRTY] = header;
    this.#dirty = dirty;
  }

  /** Go's missLocked: counts a miss and promotes the dirty table once misses reach its size. */
  #missLocked(): void {
    const a = this.#arena;
    const misses = a.i32[R_MISSES] + 1;
    const dirty = this.#dirtyTable();
    if (dirty === null) return;
    if (misses < dirty.count) {
      a.i32[R_MISSES] = misses;
      return;
    }
    this.#promoteLocked();
  }

  /** Makes the dirty table the read table and retires the old read table. Under the lock. */
  #promoteLocked(): void {
    const a = this.#arena;
    const old = this.#readTable(Atomics.load(a.i32, R_READ));
    Atomics.store(a.i32, R_READ, a.i32[R_DIRTY]);
    a.i32[R_DIRTY] = 0;
    a.i32[R_MISSES] = 0;
    if (old === null) return;
    // Entries of the old read table that are expunged are in no table now: they die with it.
    // (One expunged later, while in the new read table, must not; hence marking them now.)
    const owner = old.h << 2;
    old.collect(0, 0, (k) => {
      const e = a.i32[(k >> 2) + 16];
      const owns = Atomics.load(a.i32, e >> 2) === EXPUNGED;
      if (owns) a.i32[(e >> 2) + E_OWNER] = owner;
      a.i32[(k >> 2) + S_OWNS] = owns ? 1 : 0;
    });
    this.#participant.retire(owner | K_TABLE);
  }

  /** Clear's step for one entry: expunge it, retire its value, and let `owner` free it. */
  #killEntry(e: number, owner: number): void {
    const i32 = this.#arena.i32;
    const p = Atomics.exchange(i32, e >> 2, EXPUNGED);
    if (p > EXPUNGED) {
      Atomics.sub(i32, R_COUNT, 1);
      this.#participant.retire(p | K_RECORD);
    }
    i32[(e >> 2) + E_OWNER] = owner;
  }

  #lock(): void {
    const a = this.#arena;
    lockWord(a.i32, R_MU);
    // Under the lock, cover memory other workers allocated since this worker's views were
    // made: the locked paths follow offsets without checking each against the views.
    a.reach(a.buffer.byteLength);
  }

  #unlock(): void {
    unlockWord(this.#arena.i32, R_MU);
  }

  // ---- Records -------------------------------------------------------------------------------

  /**
   * Writes a value record for the encoded value `v`; throws MapFullError, allocating nothing.
   * `quiescent`: called before the operation read anything shared (see Participant.allocate).
   */
  #newRecord(v: Probe, quiescent = false): number {
    const a = this.#arena;
    const r = this.#participant.allocate(RECORD_HEADER + v.blobBytes(), quiescent);
    const i32 = a.i32;
    i32[r >> 2] = v.mode === 0 ? v.lo : v.writeBlob(a, r + RECORD_HEADER);
    i32[(r >> 2) + 1] = v.hi;
    return r;
  }

  #decodeRecord(r: number): V {
    const a = this.#arena;
    if (r + RECORD_HEADER > a.bytes) a.reach(r + RECORD_HEADER);
    const hi = a.i32[(r >> 2) + 1];
    if (this.#numberValues && isNumberSlot(hi)) return a.f64[r >> 3] as V;
    const lo = a.i32[r >> 2];
    if (this.#userValues) return this.#participant.hold(() => this.#values.decode(a, hi, lo));
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
    if (this.#userKeys) return this.#participant.hold(() => this.#keys.decode(a, hi, lo));
    return this.#keys.decode(a, hi, lo);
  }

  /** Whether record `r` holds the encoded value `v`. */
  #recordEquals(r: number, v: Probe): boolean {
    const a = this.#arena;
    a.reach(r + RECORD_HEADER);
    return v.matches(a, a.i32[(r >> 2) + 1], a.i32[r >> 2]);
  }

  #freeRecord(r: number): void {
    const a = this.#arena;
    const hi = a.i32[(r >> 2) + 1];
    const size = RECORD_HEADER + (isBlob(hi) ? blobSize(a, hi, r + RECORD_HEADER) : 0);
    this.#participant.release(r, size);
  }

  #freeEntry(e: number): void {
    const a = this.#arena;
    a.reach(e + ENTRY_BYTES);
    freeSlot(a, a.i32[(e >> 2) + E_KEY_HI], a.i32[(e >> 2) + E_KEY_LO]);
    this.#participant.release(e, ENTRY_BYTES);
  }

  /** Frees a retired block: called by the participant once no one can be reading it. */
  #free(tag: number): void {
    const kind = tag & 15;
    const at = tag & ~15;
    if (kind === K_RECORD) {
      this.#freeRecord(at);
    } else if (kind === K_ENTRY) {
      this.#freeEntry(at);
    } else {
      const a = this.#arena;
      const table = new Table(a, at, false, noop);
      // Only the entries this table owns (see S_OWNS): the others may be gone already.
      table.collect(0, 0, (k) => {
        if (a.i32[(k >> 2) + S_OWNS] === 1) this.#freeEntry(a.i32[(k >> 2) + 16]);
      });
      table.destroy();
      release(a, at, TABLE_HEADER_BYTES);
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
      const e = i32[(k >> 2) + 16];
      const p = Atomics.load(i32, e >> 2);
      if (p <= EXPUNGED) return;
      keys.push(this.#decodeKey(i32[(k >> 2) + 1], i32[k >> 2]));
      values.push(this.#decodeRecord(p));
    });
  }

  /** The read table, after promoting the dirty table if the read table is amended. */
  #promotedRead(): Table | null {
    const a = this.#arena;
    let read = Atomics.load(a.i32, R_READ);
    if ((read & AMENDED) !== 0) {
      this.#lock();
      try {
        read = Atomics.load(a.i32, R_READ);
        if ((read & AMENDED) !== 0) {
          this.#promoteLocked();
          read = Atomics.load(a.i32, R_READ);
        }
      } finally {
        this.#unlock();
      }
    }
    return this.#readTable(read);
  }

  /** Reserves a participant slot for a worker; see src/workers/_share.ts. */
  #reserveShare(): { handle: SyncMapHandle; release: (graceMs?: number) => void } {
    const a = this.#arena;
    const registry = registryOf(a);
    const { index, generation } = Participant.reserve(registry);
    return {
      handle: { kind: "SyncMap", buffer: a.buffer, participant: index, generation },
      release: (graceMs = 0) => Participant.releaseSlot(registry, index, generation, graceMs),
    };
  }
}

/**
 * Internal: reserves a participant slot of `map` for a worker about to attach, and returns the
 * handle to post and the function that gives the slot back when the worker is gone (with a
 * grace in milliseconds when the worker may still be running; see Participant.releaseSlot).
 */
export function shareSyncMap(
  map: SyncMap<never, never>,
): { handle: SyncMapHandle; release: (graceMs?: number) => void } {
  return reserveShare(map);
}

function noop(): void {}

/** Where a SyncMap arena keeps its participants. */
function registryOf(arena: Arena): Registry {
  return {
    arena,
    epochWord: R_EPOCH,
    orphanWord: R_ORPHANS,
    highWord: R_SLOTS_HIGH,
    slots: arena.i32[R_SLOTS],
    count: arena.i32[R_NSLOTS],
  };
}
