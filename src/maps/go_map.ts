/**
 * GoMap: Go's built-in map, in a SharedArrayBuffer.
 *
 * @module
 */

import {
  Arena,
  checkMaxBytes,
  H_ALLOC_JOURNAL,
  H_ROOT,
  H_TOP,
  HEADER_BYTES,
  KIND_GO_MAP,
} from "../_engine/arena.ts";
import {
  allocate,
  blockSize,
  bytesUsed,
  footprint,
  HEADROOM_BYTES,
  verifyHeap,
} from "../_engine/allocator.ts";
import { adoptCensus, census, liveOwnerId, ownerGone, ownerId } from "../_engine/census.ts";
import { hashWords } from "../_engine/hash.ts";
import { Journal, journalWords } from "../_engine/journal.ts";
import {
  blobSize,
  freeSlot,
  isBlob,
  isNumberSlot,
  Probe,
  type SlotCodec,
  storesNumbers,
  UserSlots,
} from "../_engine/slots.ts";
import { bucketBytesForHint, bucketsForHint, MAX_B, Table, VALUE_WORDS } from "../_engine/table.ts";
import { WriterTx } from "../_engine/tx.ts";
import { attachCodec, type Codec, slotCodecOf } from "../codec.ts";
import { ConcurrentMapWriteError } from "../errors.ts";
import { describe, wrongKind } from "../_describe.ts";
import {
  denoRequest,
  describeError,
  inspectMap,
  type InspectRequest,
  nodeRequest,
} from "../_inspect.ts";
import { checkOptions } from "../_options.ts";

// Root layout (docs/design.md, "GoMap root"):
//
// SEQ is a seqlock that also names the writer. Idle, it holds an even version. A writer moves
// it to `(owner << 1) | 1` with a compare-exchange (failing if it is already odd: another
// writer is inside), writes through its journal, then stores the next even version. A reader
// notes the word before reading (odd: a writer is inside) and checks with an atomic load
// afterwards that it has not moved; if it has, a write overlapped the read, which might have
// seen torn data, and the read throws instead of returning it. LAST_SEQ keeps the version the
// writer started from (a plain write after the compare-exchange: the owner id replaced it in
// SEQ), so that whoever recovers from a dead writer can publish the version after it.
const SEQ = H_ROOT;
const LAST_SEQ = H_ROOT + 1;
/** Root word holding the byte offset of the writer's journal. */
const JOURNAL = H_ROOT + 2;
/** Internal: the byte offset of the table header in a GoMap's arena. */
export const TABLE_AT = (H_ROOT + 8) * 4;
/**
 * Entries in a GoMap writer's journal (8 KiB). A write touches a few dozen words; the most, an
 * insert that evacuates two old buckets, about 20 per bucket of their overflow chains.
 */
const JOURNAL_ENTRIES = 1024;
/** Journal intent: a clear is under way; argument 0 is the next step (table.ts clearStep). */
const INTENT_CLEAR = 1;

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

const OPTIONS = ["hint", "keys", "values", "maxBytes"] as const;
const ATTACH_OPTIONS = ["keys", "values"] as const;

const ABSENT: unique symbol = Symbol("absent");
// Scratch for splitting a number key into its slot words. Per thread, never shared.
const f64 = new Float64Array(1);
const w32 = new Int32Array(f64.buffer);

/** An arena to attach to; only {@linkcode GoMap.attach} makes one. */
class Attachment {
  readonly arena: Arena;
  readonly options: AttachOptions<unknown, unknown>;
  constructor(arena: Arena, options: AttachOptions<unknown, unknown>) {
    this.arena = arena;
    this.options = options;
  }
}

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
  #arena: Arena;
  #table: Table;
  #keys: SlotCodec<K>;
  #values: SlotCodec<V>;
  #tx: WriterTx;
  /**
   * A value's blob allocated, and a replaced value's blob freed, in the current write. Made
   * once: a closure written inside {@linkcode set} would make V8 allocate a context for the
   * variables it captures on every call.
   */
  readonly #allocBlob = (size: number): number => this.#tx.alloc(size, false);
  readonly #freeBlob = (offset: number, size: number): void => this.#tx.free(offset, size);
  /** Scratch for the key and the value of a call; a nested call makes its own (#inUser). */
  #probe = new Probe();
  #valueProbe = new Probe();
  /**
   * How many calls of this object are running user code: a getter or Proxy trap read by the
   * default codec, or a user codec's encode or decode. That code may call this map again; the
   * nested call must not touch the scratch (probes, and the default codec's writer inside them)
   * the outer call is still using, so while this is nonzero calls use fresh probes. It is
   * raised only around what can run user code: number keys and values never pay for it.
   */
  #inUser = 0;
  /** Number keys are plain float64 slots: look them up without calling the codec. */
  #numberKeys: boolean;
  /** Number values are plain float64 slots: read them without calling the codec. */
  #numberValues: boolean;
  /** The key codec when it is a user's (its encode and decode run user code), else null. */
  #userKeys: UserSlots<K> | null;
  /** The value codec when it is a user's, else null. */
  #userValues: UserSlots<V> | null;

  /** Makes a new, empty map in a new SharedArrayBuffer. */
  constructor(options: GoMapOptions<K, V> = {}) {
    if (options instanceof Attachment) {
      // Options checked by attach.
      const arena = options.arena;
      this.#arena = arena;
      const given = options.options as AttachOptions<K, V>;
      this.#keys = attachCodec(given.keys, arena.keyCodecName, "keys");
      this.#values = attachCodec(given.values, arena.valueCodecName, "values");
    } else {
      options = checkOptions(options, OPTIONS, "GoMap options");
      const hint = options.hint ?? 0;
      if (typeof hint !== "number") {
        throw new TypeError(`hint must be a number, got ${describe(hint)}`);
      }
      if (!Number.isSafeInteger(hint) || hint < 0) {
        throw new RangeError(`hint must be a non-negative safe integer, got ${hint}`);
      }
      const maxBytes = checkMaxBytes(options.maxBytes);
      this.#keys = slotCodecOf(options.keys, "keys");
      this.#values = slotCodecOf(options.values, "values");
      // Multiply, not shift: a shift wraps at 32 bits, so a huge hint (2^26, 2^31, ...) would
      // pass the check below with a wrapped size and make a table whose B its array lacks.
      const initialBytes = bucketBytesForHint(hint);
      const fixedBytes = HEADER_BYTES + footprint(journalWords(JOURNAL_ENTRIES) * 4) +
        footprint(initialBytes) + HEADROOM_BYTES;
      // The bucket array may take half of maxBytes, leaving the rest for what the keys bring.
      if (bucketsForHint(hint) > MAX_B || initialBytes > maxBytes / 2 || fixedBytes > maxBytes) {
        throw new RangeError(`hint ${hint} needs more memory than maxBytes ${maxBytes} allows`);
      }
      const arena = Arena.create(
        KIND_GO_MAP,
        maxBytes,
        initialBytes + journalWords(JOURNAL_ENTRIES) * 4,
        this.#keys.name,
        this.#values.name,
        false,
      );
      this.#arena = arena;
      // The writer's journal. Nothing can die half-way through making a map no one else has
      // seen yet, so these first allocations go through the allocator's idle journal.
      const boot = new Journal(() => arena.i32, H_ALLOC_JOURNAL);
      boot.begin();
      const journal = allocate(arena, journalWords(JOURNAL_ENTRIES) * 4, false, boot);
      Journal.format(arena.i32, journal >> 2, JOURNAL_ENTRIES);
      arena.i32[JOURNAL] = journal;
      Table.create(new WriterTx(arena, boot), arena, TABLE_AT, hint);
      boot.commit();
      census();
    }
    const arena = this.#arena;
    this.#tx = new WriterTx(arena, new Journal(() => arena.i32, arena.i32[JOURNAL] >> 2));
    // Sizes are checked when encoding: what cannot fit in maxBytes fails before the work.
    this.#keys.limit = arena.maxBytes;
    this.#values.limit = arena.maxBytes;
    this.#numberKeys = storesNumbers(this.#keys as SlotCodec<unknown>);
    this.#numberValues = storesNumbers(this.#values as SlotCodec<unknown>);
    this.#userKeys = this.#keys instanceof UserSlots ? this.#keys : null;
    this.#userValues = this.#values instanceof UserSlots ? this.#values : null;
    this.#table = new Table(arena, TABLE_AT, true, (hi, lo, tx) => {
      freeSlot(arena, hi, lo, (offset, size) => tx.free(offset, size));
    }, this.#tx);
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
      throw new TypeError(
        `GoMap.attach: the handle must be the object GoMap#handle returns, got ${describe(handle)}`,
      );
    }
    const kind: unknown = handle.kind;
    if (kind !== "GoMap") throw wrongKind("GoMap.attach", "GoMap", kind);
    options = checkOptions(options, ATTACH_OPTIONS, "GoMap.attach options");
    const arena = Arena.attach(handle.buffer, KIND_GO_MAP, false, "GoMap.attach");
    if (handle.census !== undefined) adoptCensus(handle.census);
    const from = new Attachment(arena, options ?? {}) as unknown as GoMapOptions<K, V>;
    return new GoMap<K, V>(from);
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
    return { kind: "GoMap", buffer: this.#arena.buffer, census: census() };
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
      let seq = a.i32[SEQ];
      if ((seq & 1) !== 0) seq = this.#readerBlocked(seq, "read");
      f64[0] = key === 0 ? 0 : key === key ? key : NaN; // SameValueZero: -0 is 0, one NaN
      const lo = w32[0];
      const hi = w32[1];
      let value: unknown;
      try {
        const k = this.#table.findWords(lo, hi, hashWords(lo, hi, a.seed0, a.seed1));
        if (k < 0) return this.#validated(seq, undefined);
        const vhi = a.i32[(k >> 2) + 17];
        value = this.#numberValues && isNumberSlot(vhi) ? a.f64[(k + 64) >> 3] : this.#readValue(k);
      } catch (error) {
        throw this.#readFailure(seq, error);
      }
      if (Atomics.load(a.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("read");
      return this.#userValues === null ? value as V : this.#decodeCopy(this.#userValues, value);
    }
    const value = this.#lookup(key);
    return value === ABSENT ? undefined : value;
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
  getOk(key: K): [value: V | undefined, ok: boolean] {
    const value = this.#lookup(key);
    return value === ABSENT ? [undefined, false] : [value, true];
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
    // Encoded before the read begins: a user codec's encode may write the map.
    const p = this.#encodeKey(key, this.#inUser === 0 ? this.#probe : new Probe());
    let seq = a.i32[SEQ];
    if ((seq & 1) !== 0) seq = this.#readerBlocked(seq, "read");
    let found: boolean;
    try {
      found = this.#table.find(p) >= 0;
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
    const nested = this.#inUser !== 0;
    const p = this.#encodeKey(key, nested ? new Probe() : this.#probe);
    const v = this.#encodeValue(value, nested ? new Probe() : this.#valueProbe);
    p.storable(); // a key too large for maxBytes, refused before the table changes
    // From here on no user code runs: the probes refer to nothing user code can reach.
    const seq = this.#beginWrite();
    const tx = this.#tx;
    try {
      tx.begin();
      const lo = v.materialize(a, this.#allocBlob);
      const k = this.#table.insert(p, true);
      const w = (k >> 2) + VALUE_WORDS;
      const oldLo = a.i32[w];
      const oldHi = a.i32[w + 1];
      tx.set(w, lo);
      tx.set(w + 1, v.hi);
      if (!this.#table.inserted) freeSlot(a, oldHi, oldLo, this.#freeBlob);
      tx.commit();
    } catch (error) {
      tx.abort();
      throw error;
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
    const p = this.#encodeKey(key, this.#inUser === 0 ? this.#probe : new Probe());
    const seq = this.#beginWrite();
    const tx = this.#tx;
    try {
      tx.begin();
      const removed = this.#table.remove(p);
      tx.commit();
      // The last key gone: give back the overflow buckets too, as a clear does (Go keeps them
      // until a growth, which a map short of memory may never afford). A map that never needed
      // one does not pay for this.
      if (removed && this.#table.count === 0 && this.#table.hasOverflow) {
        tx.journal.setIntent(INTENT_CLEAR, 0);
        this.#finishClear();
      }
      return removed;
    } catch (error) {
      tx.abort();
      throw error;
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
      // A clear frees every key's memory: too much for one journal. It runs as a row of small
      // transactions, one bucket each, recorded as an intent: a writer that dies part-way
      // leaves the intent, and whoever recovers finishes the clear (docs/design.md).
      this.#tx.journal.setIntent(INTENT_CLEAR, 0);
      this.#finishClear();
    } finally {
      this.#endWrite(seq);
    }
  }

  /** Runs the remaining steps of the clear recorded in the journal's intent. */
  #finishClear(): void {
    const tx = this.#tx;
    const journal = tx.journal;
    const steps = this.#table.clearSteps;
    for (let step = journal.arg(0); step < steps; step++) {
      tx.begin();
      this.#table.clearStep(step);
      tx.set(journal.argWord(0), step + 1);
      tx.commit();
    }
    tx.begin();
    this.#table.finishClear();
    tx.set(journal.intentWord, 0); // the intent, cleared in the same transaction
    tx.commit();
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
    if (typeof callback !== "function") {
      throw new TypeError(
        `GoMap.forEach: the callback must be a function, got ${describe(callback)}`,
      );
    }
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
      // The writer's journal is fixed bookkeeping, not the map's data.
      bytesUsed: bytesUsed(this.#arena) - blockSize(journalWords(JOURNAL_ENTRIES) * 4),
      bytesReserved: this.#arena.buffer.byteLength,
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
    const seq = this.#beginWrite();
    try {
      const a = this.#arena;
      const fail = (what: string): never => {
        throw new RangeError(`verify: GoMap: ${what}`);
      };
      if (this.#tx.journal.dirty) fail("the writer's journal is not empty");
      const blocks = new Map<number, number>();
      const own = (offset: number, bytes: number, what: string): void => {
        if (offset <= 0) fail(`${what} at ${offset}: not a block`);
        if (blocks.has(offset)) fail(`${what} at ${offset} is owned twice`);
        blocks.set(offset, blockSize(bytes));
      };
      own(a.i32[JOURNAL], journalWords(JOURNAL_ENTRIES) * 4, "the writer's journal");
      const blob = (hi: number, lo: number, what: string): void => {
        if (isBlob(hi)) own(lo, blobSize(a, hi, lo), what);
      };
      this.#table.verify((offset, bytes) => own(offset, bytes, "a table block"), (k) => {
        const w = k >> 2;
        blob(a.i32[w + 1], a.i32[w], "a key blob");
        blob(a.i32[w + VALUE_WORDS + 1], a.i32[w + VALUE_WORDS], "a value blob");
      });
      const heap = verifyHeap(a);
      for (const [offset, bytes] of blocks) {
        const handed = heap.blocks.get(offset);
        if (handed === undefined) fail(`block ${offset} is in use but was never handed out`);
        if (handed !== bytes) fail(`block ${offset} is used as ${bytes} bytes but has ${handed}`);
      }
      for (const [offset, bytes] of heap.blocks) {
        if (!blocks.has(offset)) {
          fail(`block ${offset} (${bytes} bytes) is handed out and unreachable`);
        }
      }
    } finally {
      this.#endWrite(seq);
    }
  }

  /** "GoMap". */
  get [Symbol.toStringTag](): string {
    return "GoMap";
  }

  /**
   * What `console.log` shows in Deno: the entries as a `Map`'s, `GoMap(2) { "a" => 1, ... }`,
   * at most `iterableLimit` (100) of them. A read like any other: while another worker writes,
   * it shows that instead of the entries. Never throws.
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
      "GoMap",
      () => this.size,
      (limit) => {
        const entries: [unknown, unknown][] = [];
        if (limit <= 0) return entries;
        for (const entry of this.#iterate()) {
          entries.push(entry);
          if (entries.length >= limit) break;
        }
        return entries;
      },
      (error) =>
        error instanceof ConcurrentMapWriteError ? "a write is in progress" : describeError(error),
    );
  }

  /** Looks `key` up, returning ABSENT when it is missing. */
  #lookup(key: K): V | typeof ABSENT {
    const a = this.#arena;
    // Encoded before the read begins: a user codec's encode may write the map.
    const p = this.#encodeKey(key, this.#inUser === 0 ? this.#probe : new Probe());
    let seq = a.i32[SEQ];
    if ((seq & 1) !== 0) seq = this.#readerBlocked(seq, "read");
    let value: unknown;
    try {
      const k = this.#table.find(p);
      if (k < 0) return this.#validated(seq, ABSENT);
      value = this.#readValue(k);
    } catch (error) {
      throw this.#readFailure(seq, error);
    }
    if (Atomics.load(a.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("read");
    return this.#userValues === null ? value as V : this.#decodeCopy(this.#userValues, value);
  }

  /** Returns `result` once the read that began at `seq` is validated. */
  #validated<T>(seq: number, result: T): T {
    if (Atomics.load(this.#arena.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("read");
    return result;
  }

  /**
   * Reads the value of the key in slot `k`, inside a read the caller validates afterwards. A
   * user codec's value is only copied out here, to be decoded by {@linkcode #decodeCopy} once
   * the read is validated: the user's decode may write the map, which between the read and its
   * validation would look like another worker's write.
   */
  #readValue(k: number): unknown {
    const a = this.#arena;
    const hi = a.i32[(k >> 2) + 17];
    if (this.#numberValues && isNumberSlot(hi)) return a.f64[(k + 64) >> 3];
    const lo = a.i32[(k >> 2) + 16];
    return this.#userValues === null
      ? this.#values.decode(a, hi, lo)
      : this.#userValues.copy(a, lo);
  }

  /** The key of slot `k`, read as {@linkcode #readValue} reads values. */
  #readKey(k: number): unknown {
    const a = this.#arena;
    const hi = a.i32[(k >> 2) + 1];
    if (this.#numberKeys && isNumberSlot(hi)) return a.f64[k >> 3];
    const lo = a.i32[k >> 2];
    return this.#userKeys === null ? this.#keys.decode(a, hi, lo) : this.#userKeys.copy(a, lo);
  }

  /** Runs the user's decode on bytes a validated read copied out. */
  #decodeCopy<T>(codec: UserSlots<T>, copy: unknown): T {
    this.#inUser++;
    try {
      return codec.fromCopy(copy as Uint8Array);
    } finally {
      this.#inUser--;
    }
  }

  /**
   * Encodes `key` into `p` and hashes it. Only a user's key codec runs user code here (the
   * built-in ones take primitives and Uint8Arrays, checked by brand), so only it raises
   * #inUser.
   */
  #encodeKey(key: K, p: Probe): Probe {
    if (this.#userKeys === null) {
      this.#keys.toKey(key, p, this.#arena.seed0, this.#arena.seed1);
      return p;
    }
    this.#inUser++;
    try {
      this.#keys.toKey(key, p, this.#arena.seed0, this.#arena.seed1);
    } finally {
      this.#inUser--;
    }
    return p;
  }

  /**
   * Encodes `value` into `v`. User code can run for an object (the default codec reads its
   * properties, which may be getters or a Proxy's traps) or under a user's codec.
   */
  #encodeValue(value: V, v: Probe): Probe {
    if (typeof value !== "object" && this.#userValues === null) {
      this.#values.toValue(value, v);
      return v;
    }
    this.#inUser++;
    try {
      this.#values.toValue(value, v);
    } finally {
      this.#inUser--;
    }
    return v;
  }

  /** A read threw: blame an overlapping write if there was one, else rethrow as it is. */
  #readFailure(seq: number, error: unknown): unknown {
    return Atomics.load(this.#arena.i32, SEQ) !== seq ? new ConcurrentMapWriteError("read") : error;
  }

  /** Takes the write sequence for this thread; returns the version it started from. */
  #beginWrite(): number {
    const a = this.#arena;
    const i32 = a.i32;
    const mine = (liveOwnerId() << 1) | 1;
    let seq = i32[SEQ];
    for (;;) {
      if ((seq & 1) !== 0) {
        seq = this.#recoverWriter(seq);
        if ((seq & 1) !== 0) throw new ConcurrentMapWriteError("write");
      }
      const found = Atomics.compareExchange(i32, SEQ, seq, mine);
      if (found === seq) break;
      seq = found; // a write finished since our plain read; try again from its value
    }
    i32[LAST_SEQ] = seq;
    // Cover memory other workers allocated since this worker's views were made: a writer
    // follows offsets without checking each against its views. Every block in use lies below
    // the heap's top, which the previous writer published before its release of SEQ, read by
    // the compare-exchange above; only when the top lies past the views is the buffer's
    // length read (a call into the runtime for a growable buffer).
    if (i32[H_TOP] > a.bytes) a.reach(a.buffer.byteLength);
    return seq;
  }

  #endWrite(seq: number): void {
    Atomics.store(this.#arena.i32, SEQ, (seq + 2) | 0);
  }

  /**
   * The write sequence reads `seq`, odd: a writer is inside. If that writer's thread is gone
   * (census.ts), takes the sequence over, rolls the interrupted write back from its journal
   * (or finishes an interrupted clear), and publishes the version after the one the dead
   * writer started from. Returns the sequence word to go on from: even if the map is
   * writable now, odd if a live writer holds it.
   */
  #recoverWriter(seq: number): number {
    const owner = seq >>> 1;
    if (owner === ownerId() || !ownerGone(owner)) return seq;
    const a = this.#arena;
    const i32 = a.i32;
    const mine = (ownerId() << 1) | 1;
    if (Atomics.compareExchange(i32, SEQ, seq, mine) !== seq) return Atomics.load(i32, SEQ);
    a.reach(a.buffer.byteLength);
    const journal = this.#tx.journal;
    journal.recover();
    if (journal.intent === INTENT_CLEAR) this.#finishClear();
    const next = (i32[LAST_SEQ] + 2) | 0;
    Atomics.store(i32, SEQ, next);
    return next;
  }

  /**
   * A reader found the write sequence odd: throws ConcurrentMapWriteError, unless the writer
   * is gone, in which case the write it left is recovered and the read may start over.
   */
  #readerBlocked(seq: number, operation: string): number {
    const next = this.#recoverWriter(seq);
    if ((next & 1) !== 0) throw new ConcurrentMapWriteError(operation);
    return next;
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
    // Decoded keys and values; for a user codec, copies of its bytes until the batch is
    // validated, then decoded (see #readValue).
    const keys: unknown[] = [];
    const values: unknown[] = [];
    const collect = (k: number): void => {
      keys.push(this.#readKey(k));
      values.push(this.#readValue(k));
    };
    for (let step = 0; step < n; step++) {
      let seq = a.i32[SEQ];
      if ((seq & 1) !== 0) seq = this.#readerBlocked(seq, "iteration");
      keys.length = 0;
      values.length = 0;
      try {
        this.#table.collect(level, (start + step) & (n - 1), collect);
      } catch (error) {
        throw this.#readFailure(seq, error);
      }
      if (Atomics.load(a.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("iteration");
      const count = keys.length;
      const userKeys = this.#userKeys;
      const userValues = this.#userValues;
      if (userKeys !== null) {
        for (let j = 0; j < count; j++) keys[j] = this.#decodeCopy(userKeys, keys[j]);
      }
      if (userValues !== null) {
        for (let j = 0; j < count; j++) values[j] = this.#decodeCopy(userValues, values[j]);
      }
      for (let j = 0; j < count; j++) {
        const at = (j + rotate) % count;
        const key = keys[at] as K;
        // A write since the batch was read can only be this thread's own (another worker's
        // would have overlapped the read, or be misuse), so a plain read of the word sees it.
        if (a.i32[SEQ] === seq) {
          yield [key, values[at] as V];
        } else {
          const value = this.#lookup(key);
          if (value !== ABSENT) yield [key, value];
        }
      }
    }
  }
}
