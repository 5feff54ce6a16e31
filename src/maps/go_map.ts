/**
 * GoMap: Go's built-in map, in a SharedArrayBuffer.
 *
 * @module
 */

import { Arena, checkMaxBytes, H_ROOT, KIND_GO_MAP } from "../_engine/arena.ts";
import { bytesUsed } from "../_engine/allocator.ts";
import { hashWords } from "../_engine/hash.ts";
import { freeSlot, isNumberSlot, Probe, type SlotCodec, storesNumbers } from "../_engine/slots.ts";
import { BUCKET_SIZE, bucketsForHint, Table } from "../_engine/table.ts";
import { attachCodec, type Codec, slotCodecOf } from "../codec.ts";
import { ConcurrentMapWriteError } from "../errors.ts";

// Root layout: the write sequence word, then the table header.
//
// The sequence word is a seqlock. A writer moves it from even to odd with a compare-exchange
// (failing if it is already odd: another writer is inside), writes, then stores the next even
// value. A reader notes the word before reading (odd: a writer is inside) and checks with an
// atomic load afterwards that it has not moved; if it has, a write overlapped the read, which
// might have seen torn data, and the read throws instead of returning it.
const SEQ = H_ROOT;
const TABLE_AT = (H_ROOT + 8) * 4;

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
  /** Bytes of shared memory allocated and not freed. */
  bytesUsed: number;
  /** Bytes of shared memory the buffer currently spans. */
  bytesReserved: number;
}

const ABSENT: unique symbol = Symbol("absent");
// Scratch for splitting a number key into its slot words. Per thread, never shared.
const f64 = new Float64Array(1);
const w32 = new Int32Array(f64.buffer);
let attaching: Arena | undefined;

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
 * Iteration starts at a random bucket, so its order is not stable. An iteration during which
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
 * ```ts ignore
 * import { GoMap } from "@shmap/shmap";
 *
 * const map = new GoMap<number, string>();
 * map.set(1, "one");
 * const worker = new Worker(new URL("./reader.ts", import.meta.url), { type: "module" });
 * worker.postMessage(map.handle);
 * // reader.ts: self.onmessage = (e) => console.log(GoMap.attach(e.data).get(1));
 * ```
 *
 * @typeParam K The key type.
 * @typeParam V The value type.
 */
export class GoMap<K = unknown, V = unknown> implements Iterable<[K, V]> {
  #arena: Arena;
  #table: Table;
  #keys: SlotCodec<K>;
  #values: SlotCodec<V>;
  #probe = new Probe();
  #valueProbe = new Probe();
  /** Number keys are plain float64 slots: look them up without calling the codec. */
  #numberKeys: boolean;
  /** Number values are plain float64 slots: read them without calling the codec. */
  #numberValues: boolean;

  /** Makes a new, empty map in a new SharedArrayBuffer. */
  constructor(options: GoMapOptions<K, V> = {}) {
    const arena = attaching;
    attaching = undefined;
    if (arena !== undefined) {
      this.#arena = arena;
      this.#keys = attachCodec(options.keys, arena.keyCodecName, "keys");
      this.#values = attachCodec(options.values, arena.valueCodecName, "values");
    } else {
      if (typeof options !== "object" || options === null) {
        throw new TypeError("GoMap options must be an object");
      }
      const hint = options.hint ?? 0;
      if (!Number.isSafeInteger(hint) || hint < 0) {
        throw new RangeError(`hint must be a non-negative integer, got ${String(hint)}`);
      }
      const maxBytes = checkMaxBytes(options.maxBytes);
      this.#keys = slotCodecOf(options.keys, "keys");
      this.#values = slotCodecOf(options.values, "values");
      // Multiply, not shift: a shift wraps at 32 bits, so a huge hint (2^26, 2^31, ...) would
      // pass the check below with a wrapped size and make a table whose B its array lacks.
      const initialBytes = BUCKET_SIZE * 2 ** bucketsForHint(hint);
      if (initialBytes > maxBytes / 2) {
        throw new RangeError(`hint ${hint} needs more memory than maxBytes ${maxBytes} allows`);
      }
      this.#arena = Arena.create(
        KIND_GO_MAP,
        maxBytes,
        initialBytes,
        this.#keys.name,
        this.#values.name,
        false,
      );
      Table.create(this.#arena, TABLE_AT, hint);
    }
    this.#numberKeys = storesNumbers(this.#keys as SlotCodec<unknown>);
    this.#numberValues = storesNumbers(this.#values as SlotCodec<unknown>);
    this.#table = new Table(this.#arena, TABLE_AT, true, (hi, lo) => {
      freeSlot(this.#arena, hi, lo);
    });
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
    if (typeof handle !== "object" || handle === null) {
      throw new TypeError("GoMap.attach: the handle must be an object from GoMap#handle");
    }
    if (handle.kind !== "GoMap") {
      throw new TypeError(`GoMap.attach: the handle is for a ${String(handle.kind)}, not a GoMap`);
    }
    attaching = Arena.attach(handle.buffer, KIND_GO_MAP, false, "GoMap.attach");
    try {
      return new GoMap<K, V>(options);
    } finally {
      attaching = undefined;
    }
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
    return { kind: "GoMap", buffer: this.#arena.buffer };
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
    return this.#table.count;
  }

  /**
   * Returns the value stored for `key`, or undefined. Takes one atomic load.
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
      // The hot path: no codec call, no probe object.
      const a = this.#arena;
      const seq = a.i32[SEQ];
      if ((seq & 1) !== 0) throw new ConcurrentMapWriteError("read");
      f64[0] = key === 0 ? 0 : key === key ? key : NaN; // SameValueZero: -0 is 0, one NaN
      const lo = w32[0];
      const hi = w32[1];
      let value: V | undefined;
      try {
        const k = this.#table.findWords(lo, hi, hashWords(lo, hi, a.seed0, a.seed1));
        if (k < 0) {
          value = undefined;
        } else {
          const vhi = a.i32[(k >> 2) + 17];
          value = this.#numberValues && isNumberSlot(vhi)
            ? a.f64[(k + 64) >> 3] as V
            : this.#values.decode(a, vhi, a.i32[(k >> 2) + 16]);
        }
      } catch (error) {
        throw this.#readFailure(seq, error);
      }
      if (Atomics.load(a.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("read");
      return value;
    }
    const value = this.#lookup(key);
    return value === ABSENT ? undefined : value;
  }

  /**
   * Whether `key` is present.
   *
   * @example
   * ```ts
   * import { GoMap } from "@shmap/shmap";
   *
   * console.log(new GoMap().set(NaN, 0).has(NaN)); // true: keys compare by SameValueZero
   * ```
   */
  has(key: K): boolean {
    const a = this.#arena;
    const seq = a.i32[SEQ];
    if ((seq & 1) !== 0) throw new ConcurrentMapWriteError("read");
    this.#keys.toKey(key, this.#probe, a.seed0, a.seed1);
    let found: boolean;
    try {
      found = this.#table.find(this.#probe) >= 0;
    } catch (error) {
      throw this.#readFailure(seq, error);
    }
    if (Atomics.load(a.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("read");
    return found;
  }

  /**
   * Stores `value` for `key` and returns the map. Throws TypeError, with the map unchanged, for
   * a key or value the codecs cannot encode, and {@linkcode MapFullError} when maxBytes is
   * reached.
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
    const a = this.#arena;
    const p = this.#probe;
    const v = this.#valueProbe;
    this.#keys.toKey(key, p, a.seed0, a.seed1);
    this.#values.toValue(value, v);
    const seq = this.#beginWrite();
    try {
      const lo = v.materialize(a);
      let k: number;
      try {
        k = this.#table.insert(p, true);
      } catch (error) {
        freeSlot(a, v.hi, lo);
        throw error;
      }
      const w = (k >> 2) + 16;
      const i32 = a.i32;
      const oldLo = i32[w];
      const oldHi = i32[w + 1];
      i32[w] = lo;
      i32[w + 1] = v.hi;
      if (!this.#table.inserted) freeSlot(a, oldHi, oldLo);
    } finally {
      this.#endWrite(seq);
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
    this.#keys.toKey(key, this.#probe, this.#arena.seed0, this.#arena.seed1);
    const seq = this.#beginWrite();
    try {
      return this.#table.remove(this.#probe);
    } finally {
      this.#endWrite(seq);
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
    const seq = this.#beginWrite();
    try {
      this.#table.clear();
    } finally {
      this.#endWrite(seq);
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
    return this.#iterate();
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
  *keys(): IterableIterator<K> {
    for (const [key] of this.#iterate()) yield key;
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
  *values(): IterableIterator<V> {
    for (const [, value] of this.#iterate()) yield value;
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
    return this.#iterate();
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
    for (const [key, value] of this.#iterate()) callback.call(thisArg, value, key, this);
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
    return {
      ...this.#table.stats(),
      bytesUsed: bytesUsed(this.#arena),
      bytesReserved: this.#arena.buffer.byteLength,
    };
  }

  /** "GoMap". */
  get [Symbol.toStringTag](): string {
    return "GoMap";
  }

  /** Looks `key` up, returning ABSENT when it is missing. */
  #lookup(key: K): V | typeof ABSENT {
    const a = this.#arena;
    const seq = a.i32[SEQ];
    if ((seq & 1) !== 0) throw new ConcurrentMapWriteError("read");
    const p = this.#probe;
    this.#keys.toKey(key, p, a.seed0, a.seed1);
    let value: V | typeof ABSENT;
    try {
      const k = this.#table.find(p);
      value = k < 0 ? ABSENT : this.#decodeValue(k);
    } catch (error) {
      throw this.#readFailure(seq, error);
    }
    if (Atomics.load(a.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("read");
    return value;
  }

  /** Decodes the value of the key in slot `k`. */
  #decodeValue(k: number): V {
    const a = this.#arena;
    const hi = a.i32[(k >> 2) + 17];
    if (this.#numberValues && isNumberSlot(hi)) return a.f64[(k + 64) >> 3] as V;
    return this.#values.decode(a, hi, a.i32[(k >> 2) + 16]);
  }

  /** A read threw: blame an overlapping write if there was one, else rethrow as it is. */
  #readFailure(seq: number, error: unknown): unknown {
    return Atomics.load(this.#arena.i32, SEQ) !== seq ? new ConcurrentMapWriteError("read") : error;
  }

  #beginWrite(): number {
    // Cover memory other workers allocated since this worker's views were made: a writer
    // follows offsets without checking each against its views.
    const a = this.#arena;
    a.reach(a.buffer.byteLength);
    const i32 = a.i32;
    let seq = i32[SEQ];
    for (;;) {
      if ((seq & 1) !== 0) throw new ConcurrentMapWriteError("write");
      const found = Atomics.compareExchange(i32, SEQ, seq, seq + 1);
      if (found === seq) return seq;
      seq = found; // a write finished since our plain read; try again from its value
    }
  }

  #endWrite(seq: number): void {
    Atomics.store(this.#arena.i32, SEQ, seq + 2);
  }

  /**
   * Iterates in batches. Keys are partitioned by the low `level` bits of their hash, `level`
   * being B at the start; each batch is one such logical bucket, read whole and validated like a
   * lookup, so a batch is never torn. Batches are visited once each from a random start, so a
   * key is yielded at most once however the table grows. If the map was written between reading
   * a batch and yielding one of its entries, the entry is looked up again: skipped if deleted,
   * yielded with its current value otherwise.
   */
  *#iterate(): Generator<[K, V], undefined, undefined> {
    const a = this.#arena;
    const level = this.#table.B;
    const n = 1 << level;
    const start = Math.floor(Math.random() * n);
    const rotate = Math.floor(Math.random() * 8);
    const keys: K[] = [];
    const values: V[] = [];
    const collect = (k: number): void => {
      const hi = a.i32[(k >> 2) + 1];
      keys.push(
        this.#numberKeys && isNumberSlot(hi)
          ? a.f64[k >> 3] as K
          : this.#keys.decode(a, hi, a.i32[k >> 2]),
      );
      values.push(this.#decodeValue(k));
    };
    for (let step = 0; step < n; step++) {
      const seq = a.i32[SEQ];
      if ((seq & 1) !== 0) throw new ConcurrentMapWriteError("iteration");
      keys.length = 0;
      values.length = 0;
      try {
        this.#table.collect(level, (start + step) & (n - 1), collect);
      } catch (error) {
        throw this.#readFailure(seq, error);
      }
      if (Atomics.load(a.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("iteration");
      const count = keys.length;
      for (let j = 0; j < count; j++) {
        const at = (j + rotate) % count;
        const key = keys[at];
        // A write since the batch was read can only be this thread's own (another worker's
        // would have overlapped the read, or be misuse), so a plain read of the word sees it.
        if (a.i32[SEQ] === seq) {
          yield [key, values[at]];
        } else {
          const value = this.#lookup(key);
          if (value !== ABSENT) yield [key, value];
        }
      }
    }
  }
}
