/**
 * SyncMap: Go's sync.Map, in a SharedArrayBuffer.
 *
 * @module
 */

import { census } from "../_engine/census.ts";
import { isNumberSlot, keyNumberWords } from "../_engine/slots.ts";
import { holding, Participant } from "../_engine/reclaim.ts";
import * as reclaim from "../_engine/reclaim.ts";
import type { Codec } from "../codec.ts";
import * as computed from "../_computed.ts";
import { checkFunction } from "../_describe.ts";
import { defineInspect } from "../_inspect.ts";
import { inspectSyncMap, type SyncMapStats, syncMapStats } from "./_sync_stats.ts";
import type { IterationKeys } from "./_iteration_keys.ts";
import { SyncAccess } from "./_sync_access.ts";
import { closeAttach, lastAttach, noteAttached } from "./_sync_attached.ts";
import { entryForNumber, entryForRead, entryForString, entryPastMemo } from "./_sync_entries.ts";
import { deleteFound, entryToDelete } from "./_sync_delete.ts";
import * as iteration from "./_iteration.ts";
import { rangeOver, SyncIterator } from "./_sync_iterate.ts";
import * as sync_layout from "./_sync_layout.ts";
import {
  attachSyncMap,
  createSyncMap,
  OpenedSyncMap,
  reserveShare as reserveSeat,
} from "./_sync_open.ts";
import { awaitVerifiable, verifySyncMap } from "./_sync_recovery.ts";
import {
  compareAndDelete,
  compareAndSwap,
  compute,
  loadOrCompute,
  loadOrStore,
  swap,
} from "./_sync_store.ts";
import type { Found } from "../_found.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const CLEAR_RETIRES = reclaim.CLEAR_RETIRES;
const CANCEL: typeof computed.CANCEL = computed.CANCEL;
const DELETE: typeof computed.DELETE = computed.DELETE;
const ENTRIES = iteration.ENTRIES;
const KEYS = iteration.KEYS;
const VALUES = iteration.VALUES;
const AMENDED = sync_layout.AMENDED;
const EXPUNGED = sync_layout.EXPUNGED;
const R_DIRTY = sync_layout.R_DIRTY;
const R_READ = sync_layout.R_READ;
const REC_HI = sync_layout.REC_HI;
const RECORD_HEADER = sync_layout.RECORD_HEADER;

export type { SyncMapStats };

// The design is Go's (sync/map.go), in shared memory: _sync_entries.ts sums it up, and
// docs/design.md tabulates the memory layout. This file holds the public class;
// _sync_access.ts an object's state and its encoding and decoding; _sync_entries.ts the
// lock-free paths to an entry and the atomic steps on it; _sync_store.ts the writes;
// _sync_iterate.ts iteration; _sync_open.ts making, attaching and sharing; _sync_stats.ts
// stats and inspection; _sync_core.ts the steps under the mutex and their recovery;
// _sync_layout.ts the memory layout.

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
  /** A participant seat reserved for the attaching worker by the worker adapters. */
  readonly participant?: number;
  /** The generation of that seat's reservation. */
  readonly generation?: number;
  /** The census of ended threads of the process that made the handle (internal). */
  readonly census?: SharedArrayBuffer;
}

/** Set by the static block: this object's state, for {@linkcode shareSyncMap}. */
let accessOf: (map: SyncMap<never, never>) => SyncAccess<never, never>;

/**
 * Go's `sync.Map` in a SharedArrayBuffer: safe for concurrent use by any number of workers
 * without further locking, and fast in the two cases it is made for: (1) keys written once and
 * read many times, as in caches that only grow, and (2) workers that read, write and overwrite
 * disjoint sets of keys.
 *
 * The design is Go's: a read table read without a lock, a dirty table under a mutex, entries
 * shared by both whose value pointer is updated atomically, and a miss counter that promotes
 * the dirty table to be the read table. A load of a key in the read table takes no lock, and
 * no atomic operation once this object has looked the key up there; finding the entry for a
 * store, swap, compareAndSwap or delete of such a key takes one atomic load of its value
 * pointer, then one atomic compare-exchange.
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
 * pass. An integer value from 0 to 2^30 - 2 (under the `auto`, `float64` or `int32` codec) needs no
 * record at all: it is held in the key's entry, so storing it allocates and retires nothing. A
 * worker that is gone must give back its share: the worker adapters do it when the worker ends;
 * otherwise call {@linkcode close}.
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

  /** This object's state: its participant seat, codecs and scratch (see _sync_access.ts). */
  readonly #s: SyncAccess<K, V>;

  static {
    accessOf = (map) => map.#s;
  }

  /** Makes a new, empty map in a new SharedArrayBuffer. */
  constructor(options: SyncMapOptions<K, V> = {}) {
    // SyncMap.attach passes what it attached to in place of the options.
    // Participants of maps used in this task and dropped go offline early past a bound.
    Participant.shedOnline();
    const attached = options instanceof OpenedSyncMap;
    const opened = attached ? options as OpenedSyncMap<K, V> : createSyncMap(options);
    this.#s = new SyncAccess(opened, attached);
    // A new map is listed once its memory leaves this object (`handle`, shareSyncMap): until
    // then nothing can attach to it, and nothing here holds it (maps/_sync_attached.ts).
    if (attached) noteAttached(this, this.#s as SyncAccess<unknown, unknown>);
  }

  /**
   * Attaches to a map made elsewhere, from its {@linkcode handle}, taking a participant seat
   * (give it back with {@linkcode close} when this object is no longer used, or let the worker
   * adapters do it). A thread that already has a live object for the map, with the same codecs,
   * gets that object back, with one more attach counted, and no new seat: a pool's task may
   * attach the handle it is given on every task. Built-in codecs are found by name; a map made
   * with a user codec needs the same codec again (and shares an object only with the same codec
   * object). Throws TypeError for anything that is not a live SyncMap handle.
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
    return attachObject(handle, options, true);
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
    shared(this.#s, this);
    return { kind: "SyncMap", buffer: this.#s.arena.buffer, census: census() };
  }

  /**
   * The number of keys with a value. Exact when no other worker is writing. Each worker counts
   * the keys it adds and deletes in a word of its own, which `size` adds up one after another:
   * while others write, it may miss or count twice the changes made during the call, and it
   * shows 0 rather than below 0 (a new key is counted just after its step, so a delete of it by
   * another worker may be counted first). It reads one word for each worker that used the map,
   * and throws a RangeError if the map's memory is corrupt (a count of them out of range).
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   *
   * console.log(new SyncMap().set("a", 1).size); // 1
   * ```
   */
  get size(): number {
    this.#s.participant.checkOpen();
    return Math.max(0, this.#s.core.keyCount());
  }

  /**
   * Returns the value stored for `key`, or undefined (Go's Load). A key in the read table
   * costs no atomic operation and no lock (one the first time this object looks it up there).
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
    const s = this.#s;
    s.participant.enterRead();
    // The number-key hit, Go's LoadMostlyHits, written out: entryForNumber's read-table lookup
    // and decodeRecord's number path, which V8 left as calls (5 to 8 ns of a hit on Deno).
    // R_READ is read plainly, for the entry memo (EntryMemo.find) and for a walk of the table it
    // names (entryPastMemo); it is loaded atomically only for a table past this worker's views.
    // Whatever the memo does not answer is that one call (docs/design.md, `load` step 5).
    let e: number;
    if (typeof key === "number" && s.numberKeys) {
      const plain = s.arena.i32[R_READ];
      const words = keyNumberWords(key);
      e = s.entries.find(words[0], words[1], s.arena, plain);
      // A key the memo knows the table lacks, with the table not amended: absent, no call.
      if (e < 0 || (e === 0 && (plain & AMENDED) !== 0)) {
        e = entryPastMemo(s, plain, key, words[0], words[1], e);
      }
    } else if (typeof key === "string" && s.stringKeys) {
      e = entryForString(s, key);
    } else {
      e = entryForRead(s, key);
    }
    if (e === 0) return undefined;
    const a = s.arena;
    // E_P read plainly, and the record through it (docs/design.md, "The plain reads of a
    // lookup"): a record is immutable once published, and its words are read at offsets
    // computed from the word read.
    const p = a.i32[e >> 2];
    if (p <= EXPUNGED) return undefined;
    if ((p & 1) !== 0) return ((p >> 1) - 1) as V; // an immediate (immediateValue)
    if (s.numberValues && p + RECORD_HEADER <= a.bytes && isNumberSlot(a.i32[(p >> 2) + REC_HI])) {
      return a.f64[p >> 3] as V;
    }
    return s.decodeRecord(p);
  }

  /**
   * Returns the value stored for `key` and whether there is one, as Go's
   * `value, ok := m.Load(key)` does: unlike {@linkcode load}, it tells a stored `undefined`
   * from a missing key. It costs what `load` costs (a key in the read table: no atomic
   * operation, no lock) and has its guarantees.
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
  loadOk(key: K): [value: V, ok: true] | [value: undefined, ok: false] {
    const part = this.#s.participant;
    part.enterRead();
    const e = typeof key === "number" && this.#s.numberKeys
      ? entryForNumber(this.#s, key)
      : typeof key === "string" && this.#s.stringKeys
      ? entryForString(this.#s, key)
      : entryForRead(this.#s, key);
    if (e === 0) return [undefined, false];
    const p = this.#s.arena.i32[e >> 2]; // plainly, as load reads it
    return p <= EXPUNGED ? [undefined, false] : [this.#s.decodeRecord(p), true];
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
    try {
      swap(this.#s, key, value, false);
    } catch (error) {
      this.#s.participant.noteThrown(error);
      throw error;
    }
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
  swap(key: K, value: V): [previous: V, loaded: true] | [previous: undefined, loaded: false] {
    try {
      return swap(this.#s, key, value, true) as Found<V>;
    } catch (error) {
      this.#s.participant.noteThrown(error);
      throw error;
    }
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
    // No catch here: the steps that can leave a block behind note an overflow themselves
    // (_sync_store.ts, loadOrStoreRest), so that JavaScriptCore may inline this.
    return loadOrStore(this.#s, key, value);
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
   * - If the worker running `fn` dies (its worker is terminated, see the worker adapters; on
   *   Linux, also a death nobody reported, once its thread has ended), a waiting caller takes
   *   the key over within 50 ms of the death being recorded and runs its own `fn`; without
   *   one, the next `loadOrCompute` of the key does.
   * - A stack overflow inside `fn` (or inside this call) gives the key up as any throw does,
   *   even at the stack's very edge: the claim is given up by the first frame nearer the base
   *   that can, at the latest as the task ends. A call made while such a claim of this thread
   *   still waits to be given up, too near the stack's edge to do it first, throws RangeError.
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
    try {
      return loadOrCompute(this.#s, key, fn);
    } catch (error) {
      this.#s.participant.noteThrown(error);
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
  loadAndDelete(key: K): [value: V, loaded: true] | [value: undefined, loaded: false] {
    // No catch here: the steps that can leave a block behind note an overflow themselves
    // (_sync_delete.ts, deleteFound), so that JavaScriptCore may inline this. Its two steps are
    // called from here, one level above a helper calling them: JavaScriptCore inlines five
    // calls deep, and the entry memo's lookup sits four below this (LoadAndDeleteCollision
    // 1.19x as slow on Bun, DeleteCollision 1.29x, when it did not fit).
    const s = this.#s;
    const e = entryToDelete(s, key);
    const p = e === 0 ? 0 : deleteFound(s, key, e);
    // The value decoded after the delete, outside deleteFound's `try`, as `load` decodes: the
    // record is retired, and stays readable until this participant's next quiescent point.
    return p === 0 ? [undefined, false] : [s.decodeRecord(p), true];
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
    // No catch here, and the steps called from here, as in loadAndDelete.
    const s = this.#s;
    const e = entryToDelete(s, key);
    return e !== 0 && deleteFound(s, key, e) !== 0;
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
    try {
      return compareAndSwap(this.#s, key, old, next);
    } catch (error) {
      this.#s.participant.noteThrown(error);
      throw error;
    }
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
    try {
      return compareAndDelete(this.#s, key, old);
    } catch (error) {
      this.#s.participant.noteThrown(error);
      throw error;
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
   * key makes this call run `fn` again; `fn` writing it in every round, which would run for
   * good, throws an Error after 64 rounds). If it throws, nothing is written and the error
   * goes to the caller. A key being computed by {@linkcode loadOrCompute} has no value: `fn` gets
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
  ): [value: V, ok: true] | [value: undefined, ok: false] {
    try {
      return compute(this.#s, key, fn) as Found<V>;
    } catch (error) {
      this.#s.participant.noteThrown(error);
      throw error;
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
    checkFunction(f, "SyncMap.range", "f");
    rangeOver(this.#s, f);
  }

  /**
   * Deletes every key (Go 1.23's Clear). It needs no memory, so it is the way out of a full map
   * (one whose writes throw `MapFullError`), also while another worker's long task
   * holds freed memory back: the tables' memory is freed once no worker can be reading them.
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
    const part = this.#s.participant;
    try {
      // Allocates nothing, so that a full map can always be cleared: the tables are retired
      // whole, with the values they held (see SyncCore.clearLocked), which needs room for two
      // retirements only (reclaim.ts CLEAR_RETIRES), not a write's.
      part.enterClear();
      this.#s.iterationKeys.drop(); // its keys are gone: let them be collected now
      const a = this.#s.arena;
      if (Atomics.load(a.i32, R_READ) === 0 && a.i32[R_DIRTY] === 0) return;
      part.makeRoom(CLEAR_RETIRES);
      this.#s.core.locked(() => this.#s.core.clearLocked());
    } catch (error) {
      part.noteThrown(error);
      throw error;
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
    try {
      swap(this.#s, key, value, false);
    } catch (error) {
      this.#s.participant.noteThrown(error);
      throw error;
    }
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
    const part = this.#s.participant;
    part.enterRead();
    const e = typeof key === "number" && this.#s.numberKeys
      ? entryForNumber(this.#s, key)
      : typeof key === "string" && this.#s.stringKeys
      ? entryForString(this.#s, key)
      : entryForRead(this.#s, key);
    return e !== 0 && this.#s.arena.i32[e >> 2] > EXPUNGED; // plainly, as load reads it
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
    return new SyncIterator(this.#s, ENTRIES, this);
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
  keys(): IterableIterator<K> {
    return new SyncIterator(this.#s, KEYS, this);
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
  values(): IterableIterator<V> {
    return new SyncIterator(this.#s, VALUES, this);
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
    return new SyncIterator(this.#s, ENTRIES, this);
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
    checkFunction(callback, "SyncMap.forEach", "the callback");
    this.range((key, value) => {
      callback.call(thisArg, value, key, this);
    });
  }

  /**
   * Closes one attach of this object (its construction counts as one, and each
   * {@linkcode SyncMap.attach} that gave it back as one more); the last gives back its
   * participant seat, and the object throws afterwards. Call it when this object will not be
   * used again (the worker adapters do it for you when a worker ends). The map itself lives on
   * for every other object attached to it. Close once per attach: the object is shared by
   * every attach of its thread, so a close too many closes it for the others. Closing an object
   * closed for good does nothing.
   *
   * @example
   * ```ts
   * import { SyncMap } from "@shmap/shmap";
   * import assert from "node:assert/strict";
   *
   * const map = new SyncMap<string, number>();
   * const same = SyncMap.attach<string, number>(map.handle); // this thread's object again
   * assert.equal(same, map);
   * same.close(); // one attach of two
   * map.store("a", 1);
   * map.close(); // the last: the seat goes back
   * assert.throws(() => map.load("a"), TypeError);
   * ```
   */
  close(): void {
    // Inside user code run by a call of this object (a getter it is encoding, a codec), the
    // outer call still uses this object's participant seat: only the last attach's close, which
    // gives the seat back, is refused there (and counts nothing). An attach and close in a
    // helper that such user code calls are an attach more, and close as one.
    if (this.#s.nested && lastAttach(this)) {
      throw new TypeError("cannot close a SyncMap inside one of its calls");
    }
    if (closeAttach(this)) {
      this.#s.iterationKeys.drop();
      this.#s.participant.close();
    }
  }

  /**
   * Checks every invariant of the map's shared memory and throws a RangeError naming the first
   * one broken: the tables (counts, chains, tophash marks, keys in their buckets), that every
   * block the map reaches is reached once and was handed out with its size, that no block is
   * handed out and unreachable (leaked), the key count, the allocator's heap, spans, free lists
   * and the participants' caches, and that no participant seat still belongs to a thread that
   * is gone. Threads that are gone are reclaimed first, as any call would.
   *
   * It stops the other workers for the check (each parks at its next quiescent point), so call
   * it when the map is quiet, in tests or after an incident; it throws if another worker keeps
   * using the map for five seconds. It costs time in proportion to the map's size. It throws a
   * TypeError when called from a user codec's decode (the outer call holds a record that the
   * check's sweep would take for a leak).
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
    // It sweeps what dead threads left, which must not run beside a call of this thread that
    // holds a record (reclaim.ts threadHolds).
    if (holding()) throw new TypeError("cannot verify a SyncMap inside a user codec's decode");
    const part = this.#s.participant;
    // A pause of the world or an allocator lock that another thread holds for good (a corrupt
    // word) fails here, before the quiescent point and the reap that would wait for it.
    awaitVerifiable(this.#s.core);
    // A read's entry: it retires nothing, and must answer in a full map with no room to retire
    // in (the mutex it takes stops a thread marked terminating).
    part.enterRead();
    // A block left by a call a stack overflow cut short is swept now, not at the task's end.
    part.raiseOwedSweep();
    verifySyncMap(this.#s.core);
  }

  /**
   * Same as {@linkcode close}, for `using`: it closes one attach, so an object bound with
   * `using` is not closed by hand as well (that would be a close too many, which closes the
   * thread's shared object for the rest of its code).
   */
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
    return syncMapStats(this.#s);
  }

  /** "SyncMap". */
  get [Symbol.toStringTag](): string {
    return "SyncMap";
  }

  // What `console.log` shows, in every runtime: the entries as a `Map`'s,
  // `SyncMap(2) { "a" => 1, ... }`, at most the runtime's limit (100 by default) of them. Read as
  // range reads (no lock but a brief one to promote), and never throws.
  static {
    defineInspect(this.prototype, (map, request) => inspectSyncMap(request, map));
  }
}

/**
 * Internal: reserves a participant seat of `map` for a worker about to attach, and returns the
 * handle to post and the function that gives the seat back when the worker is gone (with a
 * grace in milliseconds when the worker may still be running; see releaseSeat).
 */
export function shareSyncMap(
  map: SyncMap<never, never>,
): { handle: SyncMapHandle; release: (graceMs?: number) => void } {
  const s = accessOf(map);
  const { handle, release } = reserveSeat(s);
  shared(s, map);
  // The release may run the map's steps after the caller dropped `map` (a worker that ended
  // holding its mutex is rolled back): it holds `map`, so that no finalizer closes the
  // participant under it first (maps/_sync_attached.ts).
  return {
    handle,
    release: (graceMs?: number) => {
      keep(map);
      release(graceMs);
    },
  };
}

/** Internal, for tests: `map`'s access, the state its methods work on (_sync_access.ts). */
export function syncAccessOf<K, V>(map: SyncMap<K, V>): SyncAccess<K, V> {
  return accessOf(map as SyncMap<never, never>) as unknown as SyncAccess<K, V>;
}

/** Internal, for tests: `map`'s iteration keys (_iteration_keys.ts). */
export function iterationKeysOf<K>(map: SyncMap<K, unknown>): IterationKeys<K> {
  return accessOf(map as SyncMap<never, never>).iterationKeys as IterationKeys<K>;
}

/**
 * Notes that the memory of `map`, whose state is `s`, has left it (a handle read, a share): it
 * is listed for attaches to find (maps/_sync_attached.ts), and its participant stops with this
 * thread (census.ts onStop). Once per object; a closed one is not listed.
 */
function shared(s: SyncAccess<unknown, unknown>, map: object): void {
  s.participant.watchStop();
  noteAttached(map, s);
}

/** Does nothing with `object`: a closure that calls it holds it. */
function keep(_object: object): void {}

/**
 * Internal, for tests: {@linkcode SyncMap.attach} that takes a participant seat of its own even
 * in a thread that has an object for the map, so that one thread can play several participants.
 */
export function attachOwnSeat<K = unknown, V = unknown>(
  handle: SyncMapHandle,
  options: SyncMapAttachOptions<K, V> = {},
): SyncMap<K, V> {
  return attachObject(handle, options, false);
}

/** {@linkcode SyncMap.attach}; with `again` false, always on a seat of its own. */
function attachObject<K, V>(
  handle: SyncMapHandle,
  options: SyncMapAttachOptions<K, V>,
  again: boolean,
): SyncMap<K, V> {
  return attachSyncMap(
    handle,
    options,
    (opened) => new SyncMap<K, V>(opened as unknown as SyncMapOptions<K, V>),
    again,
  );
}
