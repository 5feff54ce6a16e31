/**
 * GoMap: Go's built-in map, in a SharedArrayBuffer.
 *
 * @module
 */

import type { GoBatches } from "./_go_batches.ts";
import { blockSize, bytesUsed, checkHanded, verifyHeap } from "../_engine/allocator.ts";
import { BlockMap } from "../_engine/block_map.ts";
import { census } from "../_engine/census.ts";
import { blobSize, freeSlot, isBlob, Probe } from "../_engine/slots.ts";
import * as slots from "../_engine/slots.ts";
import type { Codec } from "../codec.ts";
import { ConcurrentMapWriteError, MapFullError } from "../errors.ts";
import { checkFunction } from "../_describe.ts";
import { defineInspect, describeError, inspectMap } from "../_inspect.ts";
import { GoAccess } from "./_go_access.ts";
import * as go_layout from "./_go_layout.ts";
import { attachGoMap, createGoMap, OpenedGoMap } from "./_go_open.ts";
import { contains, getNumber, GoIterator, lookup, lookupNumber } from "./_go_read.ts";
import type { GoHits } from "./_go_hits.ts";
import * as go_hits from "./_go_hits.ts";
import * as iteration from "./_iteration.ts";
import {
  beginWrite,
  clearBroken,
  finishClear,
  growthForRoom,
  overwriteNumber,
  settleDeadWrite,
  withoutGrowWork,
} from "./_go_writer.ts";
import * as go_writer from "./_go_writer.ts";
import { JournalFullError } from "../_engine/journal.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const MODE_INLINE = slots.MODE_INLINE;
const INTENT_CLEAR = go_layout.INTENT_CLEAR;
const JOURNAL = go_layout.JOURNAL;
const JOURNAL_BYTES = go_layout.JOURNAL_BYTES;
const KEY_HI = go_layout.KEY_HI;
const KEY_LO = go_layout.KEY_LO;
const LAYOUT = go_layout.LAYOUT;
const LAYOUT_WRAPS = go_layout.LAYOUT_WRAPS;
const SEQ = go_layout.SEQ;
const TABLE_AT = go_layout.TABLE_AT;
const VALUE_HI = go_layout.VALUE_HI;
const VALUE_LO = go_layout.VALUE_LO;
const WRAPS = go_layout.WRAPS;
const NOT_HELD: typeof go_hits.NOT_HELD = go_hits.NOT_HELD;
const ENTRIES = iteration.ENTRIES;
const KEYS = iteration.KEYS;
const VALUES = iteration.VALUES;
const ABANDONED = go_writer.ABANDONED;
const NOT_BEGUN = go_writer.NOT_BEGUN;
const OVERWRITTEN = go_writer.OVERWRITTEN;

// This file holds the public class; _go_access.ts an object's state and its encoding and
// decoding; _go_writer.ts the writer protocol (a seqlock) and clear's steps; _go_read.ts
// lookups through a codec and iteration; _go_open.ts making and attaching; _go_layout.ts the
// root words (docs/design.md tabulates them). Buckets and growth are table.ts's.

/** Internal: the byte offset of the table header in a GoMap's arena. */
export { TABLE_AT } from "./_go_layout.ts";

/**
 * A set's table work, in the transaction begun: the key's slot found or added (insert; with
 * `absent`, the key is inline and the number fast path's walk under this write's hold of SEQ
 * missed it, so Table.insertAbsent may put it in without a walk), the value written into it,
 * and an old value's blob freed.
 */
function putSlot<K, V>(s: GoAccess<K, V>, p: Probe, v: Probe, absent: boolean): void {
  const a = s.arena;
  const lo = v.materialize(a, s.tx);
  let k = absent ? s.table.insertAbsent(p) : -1;
  if (k < 0) k = s.table.insert(p, true);
  const w = k >> 2;
  const oldLo = a.i32[w + VALUE_LO];
  const oldHi = a.i32[w + VALUE_HI];
  s.table.setValueWords(k, lo, v.hi);
  if (!s.table.inserted) freeSlot(a, oldLo, oldHi, s.tx);
}

/** Options for {@linkcode GoMap}. */
export interface GoMapOptions<K, V> {
  /** How many keys to size the bucket array for, as Go's make(map[K]V, hint). */
  hint?: number;
  /** Codec for keys; defaults to {@linkcode codecs}.auto. */
  keys?: Codec<K>;
  /** Codec for values; defaults to {@linkcode codecs}.auto. */
  values?: Codec<V>;
  /** Most bytes of shared memory the map may use (default 1 GiB of address space). */
  maxBytes?: number;
}

/** Options for {@linkcode GoMap.attach}: the codecs, when not built-in. */
export interface AttachOptions<K, V> {
  /** The keys codec the map was made with; needed only for a user codec. */
  keys?: Codec<K>;
  /** The values codec the map was made with; needed only for a user codec. */
  values?: Codec<V>;
}

/** A structured-cloneable reference to a {@linkcode GoMap}, to post to a worker. */
export interface GoMapHandle {
  /** Always "GoMap". */
  readonly kind: "GoMap";
  /** The map's shared memory. */
  readonly buffer: SharedArrayBuffer;
  /** The census of ended threads of the process that made the handle (internal). */
  readonly census?: SharedArrayBuffer;
}

/** What {@linkcode GoMap.stats} reports. */
export interface GoMapStats {
  /** Live keys. */
  count: number;
  /** log2 of the bucket count. */
  B: number;
  /** Buckets in the current array (2^B). */
  buckets: number;
  /** Overflow buckets in use, in the current and old arrays. */
  overflowBuckets: number;
  /** Whether a growth is under way (an old array is still being evacuated). */
  growing: boolean;
  /** Whether the growth under way keeps the size (compacting overflow chains). */
  sameSizeGrow: boolean;
  /** Old buckets below this index are evacuated. */
  nevacuate: number;
  /**
   * Bytes of shared memory the map's data takes (tables, keys and values, as the allocator
   * hands them out). Fixed bookkeeping (the header, the writer's journal) is not counted.
   */
  bytesUsed: number;
  /** Bytes of shared memory the buffer currently spans. */
  bytesReserved: number;
}

/**
 * GoMap.set's hot path: when `p`'s key is present, its old value and the new one `v` are both
 * inline (no blob to free or allocate) and the table is not growing (a write then owes an
 * evacuation step), overwrites the value's two words as one journaled mutation and returns
 * true. Otherwise returns false, having written nothing: the general path does the write.
 * Called inside the write sequence.
 */
function overwriteInline<K, V>(s: GoAccess<K, V>, p: Probe, v: Probe): boolean {
  const table = s.table;
  if (table.growing) return false;
  const i32 = s.arena.i32;
  const k = table.find(p);
  if (k < 0) return false;
  const w = k >> 2;
  if (isBlob(i32[w + VALUE_HI])) return false;
  s.tx.journal.setPair(i32, w + VALUE_LO, v.lo, v.hi);
  return true;
}

/** Set by GoMap's static block: an object's batch copy, for {@linkcode batchesOf}. */
let batchesOfMap: (map: GoMap<unknown, unknown>) => GoBatches;
/** Set by GoMap's static block: an object's lookup copy, for {@linkcode hitsOf}. */
let hitsOfMap: (map: GoMap<unknown, unknown>) => GoHits;

/**
 * Go's built-in map, built the way Go's runtime builds it (8-slot buckets with tophash bytes,
 * overflow buckets, incremental growth), living in a SharedArrayBuffer so that every worker
 * holding its {@linkcode handle} sees the same map.
 *
 * Like Go's map it is not safe for concurrent writes: any number of workers may read it while
 * nobody writes, and writes must be serialized by the caller, for instance with a
 * {@linkcode Mutex} or {@linkcode RWMutex}. Misuse is detected, never silent: a write that
 * overlaps another write, or a read that overlaps a write in another worker, throws
 * {@linkcode ConcurrentMapWriteError} and has no effect.
 *
 * Keys and values are copied in and out through codecs (see {@linkcode codecs}); a caller never
 * holds a reference into shared memory. Keys compare by SameValueZero, like a `Map`.
 *
 * Iteration starts at a random place, so its order is not stable. An iteration during which
 * the map grows or is written (by the iterating worker) yields every key present at its start
 * and not deleted since exactly once, and no key twice; keys added meanwhile may or may not
 * appear.
 *
 * @example Quick start
 * ```ts
 * import { GoMap } from "@shmap/shmap";
 *
 * const ages = new GoMap<string, number>();
 * ages.set("ada", 36).set("alan", 41);
 * console.log(ages.get("ada"), ages.size); // 36 2
 * for (const [name, age] of ages) console.log(name, age);
 * ```
 *
 * @example Sharing with a worker
 * ```ts
 * import { GoMap } from "@shmap/shmap";
 *
 * const map = new GoMap<number, string>();
 * map.set(1, "one");
 * // Post `map.handle` to a worker (or use an adapter's spawn/share); there, attach() gives the
 * // same map over the same memory. Attached here, for the example:
 * const same = GoMap.attach<number, string>(map.handle);
 * console.log(same.get(1)); // "one"
 * ```
 *
 * @typeParam K The key type.
 * @typeParam V The value type.
 */
export class GoMap<K = unknown, V = unknown> implements Iterable<[K, V]> {
  /** This object's state: its table, codecs and scratch (see _go_access.ts). */
  readonly #s: GoAccess<K, V>;
  /**
   * The map's header words up to the table (SEQ, WRAPS, LAYOUT ...: _go_layout.ts), through a view
   * of their own. The header never moves and the buffer only grows in place, so this view, made
   * once, stays valid while the arena remakes its own views as the buffer grows. With it and
   * {@linkcode #hits} held here, a lookup answered by the lookup copy reads SEQ two loads from
   * this object rather than four (`#s`, `arena`, `i32`): an int hit 8.0-8.8 -> 7.3-7.6 ns on Bun,
   * 13.7-14.3 -> 13.5-13.7 on Deno (alternating processes, 2026-12-06).
   */
  readonly #head: Int32Array;
  /** `#s.hits`: this object's lookup copy (_go_hits.ts). */
  readonly #hits: GoHits;
  /** `#s.numberKeys`: number keys under the built-in codec. */
  readonly #numberKeys: boolean;
  /** `#s.stringKeys`: string keys under the built-in codec. */
  readonly #stringKeys: boolean;

  /** Makes a new, empty map in a new SharedArrayBuffer. */
  constructor(options: GoMapOptions<K, V> = {}) {
    // GoMap.attach passes what it attached to in place of the options.
    const opened = options instanceof OpenedGoMap
      ? options as OpenedGoMap<K, V>
      : createGoMap(options);
    const s = this.#s = new GoAccess(opened);
    this.#head = new Int32Array(s.arena.buffer, 0, TABLE_AT >> 2);
    this.#hits = s.hits;
    this.#numberKeys = s.numberKeys;
    this.#stringKeys = s.stringKeys;
  }

  /**
   * Attaches to a map made in another worker from its {@linkcode handle}. Built-in codecs are
   * found by the names the map recorded; a map made with a user codec needs the same codec
   * again. Throws TypeError for anything that is not a live GoMap handle.
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * const map = new GoMap<string, number>();
   * map.set("x", 1);
   * const same = GoMap.attach<string, number>(structuredClone(map.handle));
   * console.log(same.get("x")); // 1
   * ```
   */
  static attach<K = unknown, V = unknown>(
    handle: GoMapHandle,
    options: AttachOptions<K, V> = {},
  ): GoMap<K, V> {
    const opened = attachGoMap(handle, options);
    return new GoMap<K, V>(opened as unknown as GoMapOptions<K, V>);
  }

  /**
   * A structured-cloneable reference to this map: post it to a worker and call
   * {@linkcode GoMap.attach} there.
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * const map = new GoMap();
   * console.log(map.handle.kind); // "GoMap"
   * ```
   */
  get handle(): GoMapHandle {
    const s = this.#s;
    return { kind: "GoMap", buffer: s.arena.buffer, census: census() };
  }

  /**
   * The number of keys.
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * console.log(new GoMap().set("a", 1).size); // 1
   * ```
   */
  get size(): number {
    const s = this.#s;
    settleDeadWrite(s);
    return s.table.count;
  }

  /**
   * Returns the value stored for `key`, or undefined. Takes one atomic load, or none when this
   * handle looked the key (a number, or a string of 3 to 256 units) up before at the same version
   * of the map and found it absent or holding a number: the answer is then remembered, not read.
   * While nobody writes the map, a handle keeps what its lookups of number and string keys found
   * (a primitive value, or the key's absence) in a native `Map`, and answers from it.
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * const map = new GoMap<number, string>().set(1, "one");
   * console.log(map.get(1), map.get(2)); // "one" undefined
   * ```
   */
  get(key: K): V | undefined {
    if (typeof key === "number" && this.#numberKeys) {
      const i32 = this.#head;
      const seq = i32[SEQ];
      // GoHits.answer, written out here, in the number key's branch: the hottest lookup. A call
      // away, in getNumber, an int hit took 1.05x to 1.10x on Deno and Bun (bench/main.ts
      // gomap, same sitting). Other keys' lookup sits apart, in #getOther: in this body, a
      // str16 hit took 1.04x on Deno; string keys have a branch of their own below.
      const h = this.#hits;
      if (h.seq === seq && h.wraps === i32[WRAPS]) {
        const held = h.held.get(key);
        if (held !== undefined) {
          h.answered = (h.answered + 1) | 0;
          return held === NOT_HELD ? undefined : held as V;
        }
      }
      return getNumber(this.#s, key, seq);
    }
    if (typeof key === "string" && this.#stringKeys) {
      // The same for a string key under the built-in codec, written out in a branch of its
      // own (one shared with number keys would give the copy's `get` both key types): through
      // #getOther's call and GoHits.answer, a str16 hit took 1.04x to 1.16x this on Bun and
      // 1.01x to 1.27x on Deno, int hits unchanged (bench/string_keys.ts, same runs, 2026-12-07).
      const i32 = this.#head;
      const seq = i32[SEQ];
      const h = this.#hits;
      if (h.seq === seq && h.wraps === i32[WRAPS]) {
        const held = h.held.get(key);
        if (held !== undefined) {
          h.answered = (h.answered + 1) | 0;
          return held === NOT_HELD ? undefined : held as V;
        }
      }
      const value = this.#lookup(this.#s, key, seq);
      return value === NOT_HELD ? undefined : value;
    }
    return this.#getOther(key);
  }

  /** {@linkcode get} of a key that is not a number under the built-in codec. */
  #getOther(key: K): V | undefined {
    const head = this.#head;
    const seq = head[SEQ];
    const held = this.#hits.answer(head, seq, key);
    if (held !== undefined) return held === NOT_HELD ? undefined : held as V;
    const value = this.#lookup(this.#s, key, seq);
    return value === NOT_HELD ? undefined : value;
  }

  /**
   * {@linkcode get}'s and {@linkcode getOk}'s lookup when the lookup copy does not answer: the
   * value, or NOT_HELD. `seq` is SEQ read before it; the answer is offered to the copy.
   */
  #lookup(s: GoAccess<K, V>, key: K, seq: number): V | typeof NOT_HELD {
    // For a number key under the built-in codec: no codec call, no probe object.
    const number = typeof key === "number" && s.numberKeys;
    const value = number ? lookupNumber(s, key, NOT_HELD, seq) : lookup(s, key, NOT_HELD);
    if (s.userValues === null && (number || (typeof key === "string" && s.stringKeys))) {
      s.hits.offer(s.arena.i32, seq, key, value);
    }
    return value;
  }

  /**
   * Returns the value stored for `key` and whether the key is present, as Go's
   * `value, ok := m[key]` does: unlike {@linkcode get}, it tells a stored `undefined` from a
   * missing key. A read, with `get`'s cost and rules.
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * const map = new GoMap<string, number | undefined>().set("set", undefined);
   * console.log(map.getOk("set"), map.getOk("unset")); // [undefined, true] [undefined, false]
   * ```
   */
  getOk(key: K): [value: V, ok: true] | [value: undefined, ok: false] {
    const head = this.#head;
    const seq = head[SEQ];
    const held = this.#hits.answer(head, seq, key);
    if (held !== undefined) return held === NOT_HELD ? [undefined, false] : [held as V, true];
    const value = this.#lookup(this.#s, key, seq);
    return value === NOT_HELD ? [undefined, false] : [value, true];
  }

  /**
   * Whether `key` is present. Costs what {@linkcode get} costs, without reading the value: none
   * of its atomic load when this handle looked the key up before at the same version of the map.
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * console.log(new GoMap().set(NaN, 0).has(NaN)); // true: keys compare by SameValueZero
   * ```
   */
  has(key: K): boolean {
    return contains(this.#s, key);
  }

  /**
   * Stores `value` for `key` and returns the map. Throws TypeError, with the map unchanged, for
   * a key or value the codecs cannot encode, and {@linkcode MapFullError}, with the map
   * unchanged too, when maxBytes is reached. A full map that cannot grow takes new keys into
   * the table as it is while they fit; an overwrite of a key with a number value (under the
   * built-in codec) needs no memory, and never throws MapFullError.
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * const map = new GoMap<string, { n: number }>();
   * map.set("a", { n: 1 }).set("b", { n: 2 });
   * console.log(map.get("b")); // { n: 2 }
   * ```
   */
  set(key: K, value: V): this {
    const s = this.#s;
    const a = s.arena;
    const nested = s.nested;
    let p: Probe;
    let v: Probe;
    let seq = NOT_BEGUN;
    if (typeof key === "number" && typeof value === "number" && s.numberKeys && s.numberValues) {
      // What the codecs do with numbers (they store them as plain float64 slots), without their
      // calls; a number key always fits. An overwrite is done there and then; otherwise SEQ may
      // be held from here, and nothing but plain steps comes before the `try`.
      p = nested ? new Probe() : s.probe;
      v = nested ? new Probe() : s.valueProbe;
      seq = overwriteNumber(s, key, value, p, v);
      if (seq === OVERWRITTEN) return this;
      // The key's hash, which overwriteNumber may leave to this path: here before a write is
      // begun, or under the `try` when one was handed over (a stack overflow then unwinds
      // through it, which releases SEQ).
      if (seq === NOT_BEGUN) p.hash = a.memo.hash(p.lo, p.hi);
    } else {
      p = s.encodeKey(key, nested ? new Probe() : s.probe);
      // A key too large for maxBytes, refused before the value is encoded (its getters and
      // codec are user code) and before the table changes.
      p.storable();
      v = s.encodeValue(value, nested ? new Probe() : s.valueProbe);
    }
    // From here on no user code runs: the probes refer to nothing user code can reach.
    // A write overwriteNumber began has found no inline value to overwrite in place, and owes
    // beginWrite's reachTop (below, inside the `try`).
    const handedOver = seq !== NOT_BEGUN;
    const absent = handedOver && s.walkedAbsent;
    if (!handedOver) seq = beginWrite(s);
    const tx = s.tx;
    let settled = false; // see ABANDONED
    let begun = false; // a begin that throws (a corrupt journal) has written nothing
    // Whether a key moved or came (an insert, an evacuation): the layout is stamped anew
    // (LAYOUT; beginWrite stamps a write that wraps SEQ). A write undone or refused moved nothing.
    let moved = false;
    try {
      if (handedOver) {
        if (s.hashOwed) p.hash = a.memo.hash(p.lo, p.hi);
        a.reachTop();
      } else if (v.mode === MODE_INLINE && overwriteInline(s, p, v)) {
        settled = true;
        return this;
      }
      tx.begin();
      begun = true;
      const table = s.table;
      let growing = table.growing; // an insert into a growing table evacuates buckets
      for (let retried = false;;) {
        try {
          putSlot(s, p, v, absent);
          tx.commit();
        } catch (error) {
          if (growing && error instanceof JournalFullError) {
            withoutGrowWork(s, () => putSlot(s, p, v, absent));
          } else if (!retried && error instanceof MapFullError && table.growing) {
            // The write is undone first: a growth it began itself is undone with it.
            tx.abort();
            // Keys move from the first step on, whether or not the write fits then, and a step
            // may throw (a zombie stopped mid-row): stamped as moved before any.
            moved = table.growing;
            if (!growthForRoom(s)) throw error;
            retried = true;
            growing = table.growing;
            tx.begin();
            continue;
          } else {
            throw error;
          }
        }
        break;
      }
      settled = true;
      moved ||= growing || s.table.inserted;
    } catch (error) {
      if (begun) tx.abort();
      settled = true;
      throw error;
    } finally {
      const i32 = s.arena.i32;
      if (moved) {
        i32[LAYOUT_WRAPS] = i32[WRAPS];
        i32[LAYOUT] = (seq + 2) | 0;
      }
      Atomics.store(i32, SEQ, settled ? (seq + 2) | 0 : ABANDONED); // see ABANDONED
    }
    return this;
  }

  /**
   * Deletes `key`; returns whether it was present. Never shrinks the bucket array.
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * const map = new GoMap().set("a", 1);
   * console.log(map.delete("a"), map.delete("a")); // true false
   * ```
   */
  delete(key: K): boolean {
    const s = this.#s;
    const p = s.encodeKey(key, s.nested ? new Probe() : s.probe);
    const seq = beginWrite(s);
    const tx = s.tx;
    let settled = false; // see ABANDONED
    let begun = false; // as in set
    let moved = false; // as in set: a key went, or buckets were evacuated
    try {
      tx.begin();
      begun = true;
      const growing = s.table.growing;
      let removed: boolean;
      try {
        removed = s.table.remove(p);
        tx.commit();
      } catch (error) {
        if (!growing || !(error instanceof JournalFullError)) throw error;
        removed = withoutGrowWork(s, () => s.table.remove(p));
      }
      moved = removed || growing;
      // The last key gone: give back the overflow buckets too, as a clear does (Go keeps them
      // until a growth, which a map short of memory may never afford). A map that never needed
      // one does not pay for this.
      if (removed && s.table.count === 0 && s.table.hasOverflow) {
        tx.journal.setIntent(INTENT_CLEAR, 0);
        finishClear(s);
      }
      settled = true;
      return removed;
    } catch (error) {
      if (begun) tx.abort();
      // A clear's step that threw was rolled back (finishClear), the clear left to finish.
      settled = tx.journal.intent === 0 || clearBroken(s, error);
      throw error;
    } finally {
      const i32 = s.arena.i32;
      if (moved) {
        i32[LAYOUT_WRAPS] = i32[WRAPS];
        i32[LAYOUT] = (seq + 2) | 0;
      }
      Atomics.store(i32, SEQ, settled ? (seq + 2) | 0 : ABANDONED); // see ABANDONED
    }
  }

  /**
   * Deletes every key, keeping the bucket array (as Go's clear does).
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * const map = new GoMap().set("a", 1);
   * map.clear();
   * console.log(map.size); // 0
   * ```
   */
  clear(): void {
    const s = this.#s;
    s.batches.drop(); // its keys are gone: let the copies be collected now
    s.hits.drop();
    const seq = beginWrite(s);
    let settled = false; // see ABANDONED
    try {
      // A clear frees every key's memory: too much for one journal. It runs as a row of small
      // transactions, one bucket each, recorded as an intent: a writer that dies part-way
      // leaves the intent, and whoever recovers finishes the clear (docs/design.md).
      s.tx.journal.setIntent(INTENT_CLEAR, 0);
      finishClear(s);
      settled = true;
    } catch (error) {
      // Cut short, the clear is finished by whoever comes next (see clearBroken).
      settled = clearBroken(s, error);
      throw error;
    } finally {
      const i32 = s.arena.i32;
      i32[LAYOUT_WRAPS] = i32[WRAPS];
      i32[LAYOUT] = (seq + 2) | 0;
      Atomics.store(i32, SEQ, settled ? (seq + 2) | 0 : ABANDONED); // see ABANDONED
    }
  }

  /**
   * Iterates over `[key, value]` pairs, starting at a random bucket.
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * const map = new GoMap<string, number>().set("a", 1);
   * console.log([...map.entries()]); // [["a", 1]]
   * ```
   */
  entries(): IterableIterator<[K, V]> {
    return new GoIterator(this.#s, ENTRIES);
  }

  /**
   * Iterates over the keys.
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * console.log([...new GoMap().set("a", 1).keys()]); // ["a"]
   * ```
   */
  keys(): IterableIterator<K> {
    return new GoIterator(this.#s, KEYS);
  }

  /**
   * Iterates over the values.
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * console.log([...new GoMap().set("a", 1).values()]); // [1]
   * ```
   */
  values(): IterableIterator<V> {
    return new GoIterator(this.#s, VALUES);
  }

  /**
   * Same as {@linkcode entries}.
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * const copy = new Map(new GoMap<string, number>().set("a", 1));
   * console.log(copy.get("a")); // 1
   * ```
   */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return new GoIterator(this.#s, ENTRIES);
  }

  /**
   * Calls `callback(value, key, map)` for every entry, like `Map.prototype.forEach`.
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * new GoMap<string, number>().set("a", 1).forEach((v, k) => console.log(k, v));
   * ```
   */
  forEach(callback: (value: V, key: K, map: GoMap<K, V>) => void, thisArg?: unknown): void {
    checkFunction(callback, "GoMap.forEach", "the callback");
    const entries = new GoIterator<K, V, [K, V]>(this.#s, ENTRIES);
    for (const [key, value] of entries) callback.call(thisArg, value, key, this);
  }

  /**
   * The shape of the table and the memory it uses.
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * const map = new GoMap<number, number>();
   * for (let i = 0; i < 100; i++) map.set(i, i);
   * console.log(map.stats().B); // 4: 16 buckets hold up to 104 keys
   * ```
   */
  stats(): GoMapStats {
    const s = this.#s;
    settleDeadWrite(s);
    return {
      ...s.table.stats(),
      // The writer's journal is fixed bookkeeping, not the map's data.
      bytesUsed: bytesUsed(s.arena) - blockSize(JOURNAL_BYTES),
      bytesReserved: s.arena.buffer.byteLength,
    };
  }

  /**
   * Checks every invariant of the map's shared memory and throws a RangeError naming the first
   * one broken: the table (count, chains, tophash marks, keys in their buckets, a growth's
   * progress), that every block the map reaches (bucket arrays, overflow buckets, key and value
   * blobs) is reached once and was handed out with its size, that no block is handed out and
   * unreachable (leaked), and the allocator's heap, spans and free lists. A write a dead
   * writer left half-done is recovered first, as any call would.
   *
   * It is a write as far as misuse goes: call it when no other worker writes (under the lock
   * that serializes your writers), or it throws ConcurrentMapWriteError. It costs time in
   * proportion to the map's size.
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * const map = new GoMap<string, number>().set("a", 1);
   * map.verify(); // throws if anything is inconsistent
   * ```
   */
  verify(): void {
    const s = this.#s;
    const seq = beginWrite(s);
    try {
      const a = s.arena;
      const fail = (what: string): never => {
        throw new RangeError(`verify: GoMap: ${what}`);
      };
      const journal = s.tx.journal.idleProblem();
      if (journal !== null) fail(`the writer's journal ${journal}`);
      const blocks = BlockMap.ofHeap(a);
      const own = (offset: number, bytes: number, what: string): void => {
        if (offset <= 0) fail(`${what} at ${offset}: not a block`);
        if (blocks.add(offset, blockSize(bytes)) !== undefined) {
          fail(`${what} at ${offset} is owned twice`);
        }
      };
      own(a.i32[JOURNAL], JOURNAL_BYTES, "the writer's journal");
      const blob = (lo: number, hi: number, what: string): void => {
        if (isBlob(hi)) own(lo, blobSize(a, lo, hi), what);
      };
      s.table.verify((offset, bytes) => own(offset, bytes, "a table block"), (k) => {
        const w = k >> 2;
        blob(a.i32[w + KEY_LO], a.i32[w + KEY_HI], "a key blob");
        blob(a.i32[w + VALUE_LO], a.i32[w + VALUE_HI], "a value blob");
      });
      checkHanded(blocks, verifyHeap(a).blocks, new Set(), fail);
    } finally {
      Atomics.store(s.arena.i32, SEQ, (seq + 2) | 0); // verify writes nothing
    }
  }

  /** "GoMap". */
  get [Symbol.toStringTag](): string {
    return "GoMap";
  }

  // What `console.log` shows, in every runtime: the entries as a `Map`'s,
  // `GoMap(2) { "a" => 1, ... }`, at most the runtime's limit (100 by default) of them. A read
  // like any other: while another worker writes, it shows that instead of the entries. Never
  // throws.
  static {
    batchesOfMap = (map) => map.#s.batches;
    hitsOfMap = (map) => map.#s.hits;
    defineInspect(this.prototype, (map, request) =>
      inspectMap(
        request,
        "GoMap",
        () => map.size,
        () => map.entries(),
        (error) =>
          error instanceof ConcurrentMapWriteError
            ? "a write is in progress"
            : describeError(error),
      ));
  }
}

/** Internal, for tests: `map`'s batch copy (_go_batches.ts). */
export function batchesOf(map: GoMap<unknown, unknown>): GoBatches {
  return batchesOfMap(map);
}

/** Internal, for tests: `map`'s lookup copy (_go_hits.ts). */
export function hitsOf(map: GoMap<unknown, unknown>): GoHits {
  return hitsOfMap(map);
}
