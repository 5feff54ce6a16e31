/**
 * Internal. The hash table both maps are built on, laid out the way Go's runtime lays out a map
 * (runtime/map.go up to Go 1.23), in an arena.
 *
 * A table header (eight words, anywhere in the arena; docs/design.md tabulates who writes and
 * reads each):
 *
 * | word | meaning                                                          |
 * | ---- | ---------------------------------------------------------------- |
 * | 0    | count: live keys                                                 |
 * | 1    | flags: {@linkcode SAME_SIZE_GROW}                                |
 * | 2    | B: the bucket array has 2^B buckets                              |
 * | 3    | overflow buckets hanging off the current array                   |
 * | 4    | offset of the bucket array                                       |
 * | 5    | offset of the old bucket array while growing, else 0             |
 * | 6    | nevacuate: old buckets below it are all evacuated                |
 * | 7    | overflow buckets hanging off the old array                       |
 *
 * A bucket is 144 bytes: eight tophash bytes, eight 8-byte key slots, eight 8-byte value slots,
 * an overflow link and padding. A key's bucket is the low B bits of its hash; its tophash is the
 * hash's top byte, raised by {@linkcode MIN_TOP_HASH} when it falls on a mark. Lookups compare
 * tophash bytes first and whole keys only on a tophash match, and stop at an empty-rest mark,
 * which promises that the rest of the bucket and its overflow chain are empty.
 *
 * Growth follows Go. An insert that would take the count past 6.5 keys a bucket (and past 8)
 * doubles the array; one that finds as many overflow buckets as buckets grows to the same size,
 * which compacts chains left sparse by deletes. Growth is incremental: the old array stays, every
 * write evacuates the old bucket it touches plus the next unevacuated one, and lookups read an
 * old bucket until it is evacuated. Invariant: a key lives either in an unevacuated old bucket
 * or in the new array, never both, and a new bucket receives keys only after its old bucket is
 * evacuated (so it is empty until then). Deletes never shrink the array.
 *
 * Every mutation writes through a transaction (tx.ts): journaled, so that a writer that dies
 * part-way is rolled back by the next one, and so that a step that runs out of memory is
 * undone to a savepoint. A {@linkcode MapFullError} therefore leaves the table as it was, or
 * one complete evacuation further, which changes no contents.
 *
 * Concurrency is the caller's business: a table is mutated by one writer at a time (GoMap's
 * write sequence, SyncMap's mutex), and a table no one mutates may be read by any number of
 * workers. Readers that might race a writer must validate what they read (GoMap does) or only
 * read tables that are immutable (SyncMap's read table).
 *
 * Every walk along an overflow chain is bounded by the number of buckets the arena could hold,
 * so a corrupt chain that loops is reported, never followed forever.
 *
 * @module
 */

import { grantedBytes } from "./allocator.ts";
import type { Arena } from "./arena.ts";
import { MapFullError } from "../errors.ts";
import { blobSize, hashStored, isBlob, MODE_INLINE, MODE_STRING, type Probe } from "./slots.ts";
import type { Tx } from "./tx.ts";

const T_COUNT = 0;
const T_FLAGS = 1;
const T_B = 2;
const T_NOVERFLOW = 3;
const T_BUCKETS = 4;
const T_OLDBUCKETS = 5;
const T_NEVACUATE = 6;
const T_OLDOVERFLOW = 7;
/** Words in a table header. */
export const TABLE_WORDS = 8;

/** Flag: the current growth keeps the bucket count (it compacts overflow chains). */
const SAME_SIZE_GROW = 1;

/** Bytes in a bucket. */
export const BUCKET_SIZE = 144;
/** Slots in a bucket. */
const BUCKET_SLOTS = 8;
/** Byte offset of the key slots in a bucket. */
const KEYS = 8;
/** Word distance from a key slot to its value slot: eight 8-byte key slots. */
export const VALUE_WORDS = 16;
/** Byte offset of the overflow link in a bucket. */
const OVERFLOW = 136;
/**
 * Byte offset, in an overflow bucket, of the size of its block: a full arena may serve a bucket
 * from a larger size class (allocator.ts allocateAtLeast), and it is freed with that size. 0
 * (never written) in a bucket of an array.
 */
const BLOCK_BYTES = 140;
/** The largest B: a bucket array of 144 * 2^B bytes must fit a 1 GiB arena. */
export const MAX_B = 22;
/**
 * The longest chain, in buckets, an insert extends while the table cannot grow for want of
 * memory. Evacuating a chain journals about five entries per bucket, and a step evacuates two.
 */
const FULL_CHAIN_MAX = 8;

/** This slot and every later one, in this bucket and its overflow chain, are empty. */
const EMPTY_REST = 0;
/** This slot is empty. */
const EMPTY_ONE = 1;
/** Evacuated to the first half of the bigger array. */
const EVACUATED_X = 2;
/** Evacuated to the second half. */
const EVACUATED_Y = 3;
/** Was empty when its bucket was evacuated. */
const EVACUATED_EMPTY = 4;
/** The smallest tophash of a live key. */
const MIN_TOP_HASH = 5;

const LOAD_FACTOR = 6.5;

/** The tophash byte of `hash`. */
export function tophash(hash: number): number {
  const top = hash >>> 24;
  return top < MIN_TOP_HASH ? top + MIN_TOP_HASH : top;
}

/** The smallest B whose array holds `hint` keys without growing. */
export function bucketsForHint(hint: number): number {
  let b = 0;
  while (overLoadFactor(hint, b)) b++;
  return b;
}

/** Bytes of the bucket array of a table sized for `hint` keys (no shift: no wrap). */
export function bucketBytesForHint(hint: number): number {
  return BUCKET_SIZE * 2 ** bucketsForHint(hint);
}

function overLoadFactor(count: number, b: number): boolean {
  return count > BUCKET_SLOTS && count > LOAD_FACTOR * 2 ** b;
}

/** What {@linkcode Table.stats} reports. */
export interface TableStats {
  count: number;
  B: number;
  buckets: number;
  overflowBuckets: number;
  growing: boolean;
  sameSizeGrow: boolean;
  nevacuate: number;
}

/** Frees whatever a deleted or cleared key's value slot owns. */
export type FreeValue = (hi: number, lo: number, tx: Tx) => void;

/**
 * A view of one table in an arena. Cheap to make; holds no state of its own beyond where the
 * table is, how its slots are owned, and the transaction its mutations write through.
 */
export class Table {
  readonly arena: Arena;
  /** Word index of the header. */
  readonly h: number;
  /**
   * Whether deleting a key frees its blob. False for SyncMap, whose key blobs belong to entries
   * shared by its two tables.
   */
  readonly ownsKeys: boolean;
  /** Called for the value slot of a key that is deleted or cleared, to free what it owns. */
  readonly freeValue: FreeValue;
  /** The transaction mutations write through. */
  tx: Tx;
  /** Set by {@linkcode insert}: whether the last insert added a new key. */
  inserted = false;
  /** Set by {@linkcode find} when it finds a key: the bucket holding the slot it returned. */
  foundBucket = 0;
  /** Set with {@linkcode foundBucket}: the first bucket of that bucket's chain. */
  foundHead = 0;
  // Scratch for evacuation decisions (X or Y per slot), reused to avoid allocation.
  #sides: number[] = [];

  constructor(
    arena: Arena,
    headerOffset: number,
    ownsKeys: boolean,
    freeValue: FreeValue,
    tx: Tx,
  ) {
    this.arena = arena;
    this.h = headerOffset >> 2;
    this.ownsKeys = ownsKeys;
    this.freeValue = freeValue;
    this.tx = tx;
  }

  /**
   * Writes a fresh empty table at `headerOffset` (a block the caller allocated in this
   * transaction), sized for `hint` keys. Throws MapFullError, allocating nothing, when the
   * bucket array cannot fit in maxBytes.
   */
  static create(tx: Tx, arena: Arena, headerOffset: number, hint: number): void {
    const b = bucketsForHint(hint);
    // Multiply, not shift: `BUCKET_SIZE << b` wraps at 32 bits (b >= 24), and a wrapped size
    // made a table whose B its array lacked.
    const bytes = BUCKET_SIZE * 2 ** b;
    if (b > MAX_B || bytes > arena.maxBytes) throw new MapFullError(bytes, arena.maxBytes);
    const buckets = tx.alloc(bytes, true);
    const i32 = arena.i32;
    const h = headerOffset >> 2;
    i32.fill(0, h, h + TABLE_WORDS);
    i32[h + T_B] = b;
    i32[h + T_BUCKETS] = buckets;
  }

  /** Live keys. */
  get count(): number {
    return this.arena.i32[this.h + T_COUNT];
  }

  /** The most buckets any chain may have: more means the chain loops. */
  #chainLimit(): number {
    return this.arena.buffer.byteLength / BUCKET_SIZE;
  }

  /**
   * Whether a walk that has made `hops` hops along one chain has gone round a loop. The lookup
   * paths ask after every hop but read the buffer's size only past {@linkcode CHAIN_CHECK} hops:
   * that read is a call into the runtime where the buffer is growable, dearer than a short walk.
   */
  #looped(hops: number): boolean {
    return hops > CHAIN_CHECK && hops > this.#chainLimit();
  }

  /** Whether any overflow bucket hangs off the bucket arrays (or an old array remains). */
  get hasOverflow(): boolean {
    const i32 = this.arena.i32;
    const h = this.h;
    return i32[h + T_NOVERFLOW] !== 0 || i32[h + T_OLDOVERFLOW] !== 0 ||
      i32[h + T_OLDBUCKETS] !== 0;
  }

  /**
   * Finds the key `p` (hashed) and returns the byte offset of its key slot, or -1. The value
   * slot is 64 bytes (16 words) further.
   */
  find(p: Probe): number {
    if (p.mode === MODE_INLINE) return this.findWords(p.lo, p.hi, p.hash);
    if (p.mode === MODE_STRING && p.hasWords) return this.findString(p);
    const a = this.arena;
    const hash = p.hash;
    const top = tophash(hash);
    const head = this.#home(hash);
    let b = head;
    let hops = 0;
    while (b !== 0) {
      if (b + BUCKET_SIZE > a.bytes) a.reach(b + BUCKET_SIZE);
      for (let i = 0; i < BUCKET_SLOTS; i++) {
        const t = a.u8[b + i];
        if (t !== top) {
          if (t === EMPTY_REST) return -1;
          continue;
        }
        const w = (b + KEYS + 8 * i) >> 2;
        if (p.matches(a, a.i32[w + 1], a.i32[w])) {
          this.foundBucket = b;
          this.foundHead = head;
          return w << 2;
        }
      }
      b = a.i32[(b + OVERFLOW) >> 2];
      if (this.#looped(++hops)) throw loops();
    }
    return -1;
  }

  /**
   * {@linkcode find} for a key stored inline as the words (lo, hi): the hot path of a lookup,
   * kept small so that engines inline it.
   */
  findWords(lo: number, hi: number, hash: number): number {
    const a = this.arena;
    const h = this.h;
    let b = a.i32[h + T_BUCKETS] + (hash & ((1 << a.i32[h + T_B]) - 1)) * BUCKET_SIZE;
    if (a.i32[h + T_OLDBUCKETS] !== 0) b = this.#home(hash);
    const head = b;
    const t0 = hash >>> 24;
    const top = t0 < MIN_TOP_HASH ? t0 + MIN_TOP_HASH : t0;
    // Local views, taken after #home (which may remake the arena's views) and checked against
    // their own length: a local view older than `a.bytes` would read past its end as undefined.
    let i32 = a.i32;
    let u8 = a.u8;
    let bytes = u8.length;
    let hops = 0;
    while (b !== 0) {
      if (b + BUCKET_SIZE > bytes) {
        a.reach(b + BUCKET_SIZE);
        i32 = a.i32;
        u8 = a.u8;
        bytes = u8.length;
      }
      for (let i = 0; i < BUCKET_SLOTS; i++) {
        const t = u8[b + i];
        if (t === top) {
          const w = (b >> 2) + 2 + 2 * i;
          if (i32[w] === lo && i32[w + 1] === hi) {
            this.foundBucket = b;
            this.foundHead = head;
            return w << 2;
          }
        } else if (t === EMPTY_REST) {
          return -1;
        }
      }
      b = i32[(b + OVERFLOW) >> 2];
      if (++hops > CHAIN_CHECK && hops * BUCKET_SIZE > a.buffer.byteLength) throw loops();
    }
    return -1;
  }

  /**
   * {@linkcode find} for a string key whose units the probe holds as words
   * ({@linkcode Probe.hasWords}): {@linkcode findWords}'s walk, comparing the tag word and then
   * the blob a word at a time ({@linkcode Probe.matchesWords}).
   */
  findString(p: Probe): number {
    const a = this.arena;
    const h = this.h;
    const hash = p.hash;
    const tag = p.hi;
    let b = a.i32[h + T_BUCKETS] + (hash & ((1 << a.i32[h + T_B]) - 1)) * BUCKET_SIZE;
    if (a.i32[h + T_OLDBUCKETS] !== 0) b = this.#home(hash);
    const head = b;
    const t0 = hash >>> 24;
    const top = t0 < MIN_TOP_HASH ? t0 + MIN_TOP_HASH : t0;
    // Local views as in findWords, taken again after matchesWords, which may remake them.
    let i32 = a.i32;
    let u8 = a.u8;
    let bytes = u8.length;
    let hops = 0;
    while (b !== 0) {
      if (b + BUCKET_SIZE > bytes) {
        a.reach(b + BUCKET_SIZE);
        i32 = a.i32;
        u8 = a.u8;
        bytes = u8.length;
      }
      for (let i = 0; i < BUCKET_SLOTS; i++) {
        const t = u8[b + i];
        if (t === top) {
          const w = (b >> 2) + 2 + 2 * i;
          if (i32[w + 1] === tag) {
            if (p.matchesWords(a, i32[w])) {
              this.foundBucket = b;
              this.foundHead = head;
              return w << 2;
            }
            i32 = a.i32;
            u8 = a.u8;
            bytes = u8.length;
          }
        } else if (t === EMPTY_REST) {
          return -1;
        }
      }
      b = i32[(b + OVERFLOW) >> 2];
      if (++hops > CHAIN_CHECK && hops * BUCKET_SIZE > a.buffer.byteLength) throw loops();
    }
    return -1;
  }

  /** The bucket where a lookup of `hash` starts: the old one while it is not evacuated. */
  #home(hash: number): number {
    const i32 = this.arena.i32;
    const h = this.h;
    let mask = (1 << i32[h + T_B]) - 1;
    const b = i32[h + T_BUCKETS] + (hash & mask) * BUCKET_SIZE;
    const old = i32[h + T_OLDBUCKETS];
    if (old === 0) return b;
    if ((i32[h + T_FLAGS] & SAME_SIZE_GROW) === 0) mask >>>= 1;
    const ob = old + (hash & mask) * BUCKET_SIZE;
    return this.#evacuated(ob) ? b : ob;
  }

  /**
   * Finds or adds the key `p` (hashed) and returns its key slot. Sets {@linkcode inserted}.
   * A new key's slot words come from `p.materialize` when `materialize` is set (the table then
   * owns its blob), else from `p.hi` and `p.lo` as they are. The new key's value slot is left for
   * the caller to write. Throws MapFullError with the table's contents unchanged.
   */
  insert(p: Probe, materialize: boolean): number {
    const a = this.arena;
    const tx = this.tx;
    const h = this.h;
    const hash = p.hash;
    const top = tophash(hash);
    let grew = false;
    for (;;) {
      const bucket = hash & ((1 << a.i32[h + T_B]) - 1);
      if (a.i32[h + T_OLDBUCKETS] !== 0) {
        const point = tx.savepoint();
        try {
          this.#growWork(bucket);
        } catch (error) {
          if (!(error instanceof MapFullError)) throw error;
          // The evacuation this write owes needed memory the arena lacks: undo it. An existing
          // key is still overwritten in place, wherever it lives: an overwrite needs no memory.
          // A new key may enter the new array only once its old bucket is evacuated.
          tx.rollbackTo(point);
          const k = this.find(p);
          if (k >= 0) {
            this.inserted = false;
            return k;
          }
          const old = a.i32[h + T_OLDBUCKETS];
          const mask = (1 << this.#oldB()) - 1;
          if (old !== 0 && !this.#evacuated(old + (bucket & mask) * BUCKET_SIZE)) throw error;
        }
      }
      let b = a.i32[h + T_BUCKETS] + bucket * BUCKET_SIZE;
      let freeB = 0; // first empty slot seen: its bucket and index
      let freeI = 0;
      let last = b;
      let chain = 0;
      search: while (b !== 0) {
        a.reach(b + BUCKET_SIZE);
        const u8 = a.u8;
        for (let i = 0; i < BUCKET_SLOTS; i++) {
          const t = u8[b + i];
          if (t !== top) {
            if (t <= EMPTY_ONE && freeB === 0) {
              freeB = b;
              freeI = i;
            }
            if (t === EMPTY_REST) break search;
            continue;
          }
          const k = b + KEYS + 8 * i;
          if (p.matches(a, a.i32[(k >> 2) + 1], a.i32[k >> 2])) {
            this.inserted = false;
            return k;
          }
        }
        last = b;
        chain++;
        b = a.i32[(b + OVERFLOW) >> 2];
        if (this.#looped(chain)) throw loops();
      }
      // Not present. Grow first if the table is due, then search again (Go's "goto again").
      const count = a.i32[h + T_COUNT];
      const B = a.i32[h + T_B];
      if (
        !grew && a.i32[h + T_OLDBUCKETS] === 0 &&
        (overLoadFactor(count + 1, B) || a.i32[h + T_NOVERFLOW] >= 2 ** Math.min(B, 30))
      ) {
        grew = true;
        const point = tx.savepoint();
        try {
          this.#hashGrow();
          continue;
        } catch (error) {
          // No room to grow: insert into the table as it is, if that still fits. Chains stay
          // short (FULL_CHAIN_MAX buckets) so that evacuating one, when memory returns and the
          // table can grow again, fits in one mutation's journal.
          if (!(error instanceof MapFullError)) throw error;
          tx.rollbackTo(point);
          if (freeB === 0 && chain >= FULL_CHAIN_MAX) throw error;
        }
      }
      const keyLo = materialize ? p.materialize(a, (size) => tx.alloc(size, false)) : p.lo;
      if (freeB === 0) {
        freeB = this.#newOverflow(last);
        freeI = 0;
      }
      const k = freeB + KEYS + 8 * freeI;
      tx.set(k >> 2, keyLo);
      tx.set((k >> 2) + 1, p.hi);
      tx.setByte(freeB + freeI, top);
      tx.set(h + T_COUNT, count + 1);
      this.inserted = true;
      return k;
    }
  }

  /**
   * Deletes the key `p` (hashed). Returns whether it was present. Frees the key's blob (when the
   * table owns keys) and hands the value slot to `freeValue`. Never throws MapFullError: the
   * evacuation a delete performs is skipped when memory is short.
   */
  remove(p: Probe): boolean {
    const a = this.arena;
    const h = this.h;
    const hash = p.hash;
    if (a.i32[h + T_OLDBUCKETS] !== 0) {
      const point = this.tx.savepoint();
      try {
        this.#growWork(hash & ((1 << a.i32[h + T_B]) - 1));
      } catch (error) {
        if (!(error instanceof MapFullError)) throw error;
        this.tx.rollbackTo(point);
      }
    }
    const k = this.find(p);
    if (k < 0) return false;
    this.#clearSlot(k, this.foundBucket, this.foundHead);
    this.tx.set(h + T_COUNT, a.i32[h + T_COUNT] - 1);
    return true;
  }

  /** Buckets a clear walks: the old array's (while growing), then the current array's. */
  get clearSteps(): number {
    const i32 = this.arena.i32;
    const old = i32[this.h + T_OLDBUCKETS] === 0 ? 0 : 1 << this.#oldB();
    return old + (1 << i32[this.h + T_B]);
  }

  /**
   * One step of a clear: empties bucket `step` of {@linkcode clearSteps} (an old bucket first,
   * then a current one), freeing what its keys own and its overflow chain. A clear is a row of
   * such steps, each a transaction of its own, then {@linkcode finishClear}; the steps change
   * no count, so a lookup between them may still find keys of buckets not yet cleared. The
   * bucket count must not change between steps (nothing else writes meanwhile).
   */
  clearStep(step: number): void {
    const a = this.arena;
    const h = this.h;
    const old = a.i32[h + T_OLDBUCKETS];
    const oldBuckets = old === 0 ? 0 : 1 << this.#oldB();
    if (step < oldBuckets) {
      const ob = old + step * BUCKET_SIZE;
      if (!this.#evacuated(ob)) this.#freeChainSlots(ob);
      this.#freeOverflows(ob, T_OLDOVERFLOW);
      return;
    }
    const b = a.i32[h + T_BUCKETS] + (step - oldBuckets) * BUCKET_SIZE;
    this.#freeChainSlots(b);
    this.#freeOverflows(b, T_NOVERFLOW);
    a.reach(b + BUCKET_SIZE);
    for (let w = b >> 2; w < (b + BUCKET_SIZE) >> 2; w++) {
      if (a.i32[w] !== 0) this.tx.set(w, 0);
    }
  }

  /** The last step of a clear: the header says empty, and an old array is freed. Keeps B. */
  finishClear(): void {
    const a = this.arena;
    const h = this.h;
    const tx = this.tx;
    const old = a.i32[h + T_OLDBUCKETS];
    if (old !== 0) tx.free(old, BUCKET_SIZE * 2 ** this.#oldB());
    tx.set(h + T_COUNT, 0);
    tx.set(h + T_FLAGS, 0);
    tx.set(h + T_NOVERFLOW, 0);
    tx.set(h + T_OLDBUCKETS, 0);
    tx.set(h + T_NEVACUATE, 0);
    tx.set(h + T_OLDOVERFLOW, 0);
  }

  /**
   * Frees every block of a table no one can reach any more, key blobs included when the table
   * owns keys, through `free`; the header itself is the caller's. Not journaled: it runs when a
   * retired table is reclaimed (reclaim.ts).
   */
  destroy(free: (offset: number, size: number) => void): void {
    const a = this.arena;
    const h = this.h;
    a.reach(a.buffer.byteLength);
    const old = a.i32[h + T_OLDBUCKETS];
    if (old !== 0) {
      const n = 1 << this.#oldB();
      for (let j = 0; j < n; j++) this.#freeChainOf(old + j * BUCKET_SIZE, free);
      free(old, BUCKET_SIZE * n);
    }
    const n = 1 << a.i32[h + T_B];
    const buckets = a.i32[h + T_BUCKETS];
    for (let j = 0; j < n; j++) this.#freeChainOf(buckets + j * BUCKET_SIZE, free);
    free(buckets, BUCKET_SIZE * n);
  }

  #freeChainOf(b: number, free: (offset: number, size: number) => void): void {
    const a = this.arena;
    let next = a.i32[(b + OVERFLOW) >> 2];
    let limit = this.#chainLimit();
    while (next !== 0) {
      const after = a.i32[(next + OVERFLOW) >> 2];
      free(next, this.#overflowBytes(next));
      next = after;
      if (--limit < 0) throw loops();
    }
  }

  /** The current B. Iterations partition keys by the low bits of B taken at their start. */
  get B(): number {
    return this.arena.i32[this.h + T_B];
  }

  /**
   * Calls `visit(keySlot)` for every live key whose hash has `i` in its low `level` bits. Such
   * a key lives in new buckets congruent to `i` modulo 2^level, or in the matching unevacuated
   * old buckets, never both; the union over all `i` is every key exactly once, however far the
   * table has grown since `level` was taken. `visit` must not mutate the table.
   */
  collect(level: number, i: number, visit: (keySlot: number) => void): void {
    const a = this.arena;
    const h = this.h;
    const B = a.i32[h + T_B];
    const buckets = a.i32[h + T_BUCKETS];
    if (B >= level) {
      for (let j = i; j < 1 << B; j += 1 << level) {
        this.#visitChain(buckets + j * BUCKET_SIZE, -1, 0, visit);
      }
    } else {
      // A smaller table than the one `level` was taken from (SyncMap replaces its tables).
      const b = buckets + (i & ((1 << B) - 1)) * BUCKET_SIZE;
      this.#visitChain(b, (1 << level) - 1, i, visit);
    }
    const old = a.i32[h + T_OLDBUCKETS];
    if (old === 0) return;
    const oldB = this.#oldB();
    if (oldB >= level) {
      for (let j = i; j < 1 << oldB; j += 1 << level) {
        const ob = old + j * BUCKET_SIZE;
        if (!this.#evacuated(ob)) this.#visitChain(ob, -1, 0, visit);
      }
    } else {
      // The iteration began while this growth was under way: an old bucket holds the keys of
      // two logical buckets, so keep only those hashing to `i`.
      const ob = old + (i & ((1 << oldB) - 1)) * BUCKET_SIZE;
      if (!this.#evacuated(ob)) this.#visitChain(ob, (1 << level) - 1, i, visit);
    }
  }

  /**
   * Adds a key known to be absent, as the slot words (lo, hi) with `hash`, and returns its key
   * slot: for copying keys between tables (SyncMap builds its dirty table from its read table).
   * No comparison and no growth (size the table with a hint). Writes plainly, into a table this
   * transaction made (its buckets need no journal), unless `journaled`. Throws MapFullError if
   * an overflow bucket cannot be had (the caller rolls the transaction back).
   */
  insertUnique(lo: number, hi: number, hash: number, journaled = false): number {
    const a = this.arena;
    const tx = this.tx;
    const h = this.h;
    if (journaled && a.i32[h + T_OLDBUCKETS] !== 0) this.finishGrowth();
    let b = a.i32[h + T_BUCKETS] + (hash & ((1 << a.i32[h + T_B]) - 1)) * BUCKET_SIZE;
    let limit = this.#chainLimit();
    for (;;) {
      a.reach(b + BUCKET_SIZE);
      for (let i = 0; i < BUCKET_SLOTS; i++) {
        if (a.u8[b + i] <= EMPTY_ONE) {
          const w = (b + KEYS + 8 * i) >> 2;
          if (journaled) {
            tx.set(w, lo);
            tx.set(w + 1, hi);
            tx.setByte(b + i, tophash(hash));
            tx.set(h + T_COUNT, a.i32[h + T_COUNT] + 1);
          } else {
            a.i32[w] = lo;
            a.i32[w + 1] = hi;
            a.u8[b + i] = tophash(hash);
            a.i32[h + T_COUNT]++;
          }
          return w << 2;
        }
      }
      const next = a.i32[(b + OVERFLOW) >> 2];
      if (next !== 0) {
        b = next;
      } else if (journaled) {
        b = this.#newOverflow(b);
      } else {
        const overflow = this.#allocOverflow();
        a.i32[(b + OVERFLOW) >> 2] = overflow;
        a.i32[h + T_NOVERFLOW]++;
        b = overflow;
      }
      if (--limit < 0) throw loops();
    }
  }

  /** Shape and growth state, for stats() and tests. */
  stats(): TableStats {
    const i32 = this.arena.i32;
    const h = this.h;
    return {
      count: i32[h + T_COUNT],
      B: i32[h + T_B],
      buckets: 1 << i32[h + T_B],
      overflowBuckets: i32[h + T_NOVERFLOW] + i32[h + T_OLDOVERFLOW],
      growing: i32[h + T_OLDBUCKETS] !== 0,
      sameSizeGrow: (i32[h + T_FLAGS] & SAME_SIZE_GROW) !== 0,
      nevacuate: i32[h + T_NEVACUATE],
    };
  }

  /**
   * Calls `block(offset, bytes)` for every block the table itself owns (bucket arrays and
   * overflow buckets) and `slot(keySlot)` for every live key, checking the table's invariants
   * on the way: header words in range, chains that end, counts that match, tophash marks, and
   * keys in the right buckets. Throws a RangeError naming the first broken one. With `keys`
   * false, keys are not rehashed (a retired SyncMap table's keys may point at freed blobs).
   */
  verify(
    block: (offset: number, bytes: number) => void,
    slot: (keySlot: number) => void,
    keys = true,
  ): void {
    const a = this.arena;
    const i32 = a.i32;
    const h = this.h;
    const fail = (what: string): never => {
      throw new RangeError(`verify: table at ${h << 2}: ${what}`);
    };
    const B = i32[h + T_B];
    if (B < 0 || B > MAX_B) fail(`B is ${B}`);
    const buckets = i32[h + T_BUCKETS];
    const n = 1 << B;
    if (buckets <= 0 || buckets % 16 !== 0 || buckets + n * BUCKET_SIZE > a.buffer.byteLength) {
      fail(`bucket array at ${buckets} is out of range`);
    }
    block(buckets, n * BUCKET_SIZE);
    let live = 0;
    let overflow = 0;
    const walk = (first: number, check: (hash: number) => boolean, mask: number): void => {
      let sawEmptyRest = false;
      let limit = this.#chainLimit();
      for (let b = first; b !== 0; b = i32[(b + OVERFLOW) >> 2]) {
        if (b !== first) {
          block(b, this.#overflowBytes(b));
          if (mask >= 0) overflow++;
        }
        if (--limit < 0) fail("an overflow chain loops");
        for (let i = 0; i < BUCKET_SLOTS; i++) {
          const t = a.u8[b + i];
          if (t === EMPTY_REST) {
            sawEmptyRest = true;
            continue;
          }
          if (sawEmptyRest && t !== EMPTY_REST) {
            fail(`bucket ${b}: a slot after an empty-rest mark`);
          }
          if (t < MIN_TOP_HASH) {
            if (t !== EMPTY_ONE) fail(`bucket ${b}: mark ${t} outside an evacuated bucket`);
            continue;
          }
          const k = b + KEYS + 8 * i;
          if (keys) {
            const hash = hashStored(a, i32[(k >> 2) + 1], i32[k >> 2]);
            if (tophash(hash) !== t) fail(`bucket ${b} slot ${i}: tophash does not match its key`);
            if (!check(hash)) fail(`bucket ${b} slot ${i}: key in the wrong bucket`);
          }
          live++;
          slot(k);
        }
      }
    };
    for (let j = 0; j < n; j++) {
      walk(buckets + j * BUCKET_SIZE, (hash) => (hash & (n - 1)) === j, 1);
    }
    const old = i32[h + T_OLDBUCKETS];
    if (old !== 0) {
      const oldB = this.#oldB();
      const on = 1 << oldB;
      block(old, on * BUCKET_SIZE);
      const nev = i32[h + T_NEVACUATE];
      if (nev < 0 || nev > on) fail(`nevacuate ${nev} out of range`);
      let oldOverflow = 0;
      for (let j = 0; j < on; j++) {
        const ob = old + j * BUCKET_SIZE;
        if (this.#evacuated(ob)) {
          if (i32[(ob + OVERFLOW) >> 2] !== 0) fail(`evacuated old bucket ${j} keeps a chain`);
          continue;
        }
        if (j < nev) fail(`old bucket ${j} is below nevacuate but not evacuated`);
        // Its destinations must still be empty.
        const same = (i32[h + T_FLAGS] & SAME_SIZE_GROW) !== 0;
        for (const d of same ? [j] : [j, j + on]) {
          const db = buckets + d * BUCKET_SIZE;
          if (a.u8[db] !== EMPTY_REST || i32[(db + OVERFLOW) >> 2] !== 0) {
            fail(`new bucket ${d} holds keys before its old bucket ${j} was evacuated`);
          }
        }
        const before = overflow;
        walk(ob, (hash) => (hash & (on - 1)) === j, 1);
        oldOverflow += overflow - before;
        overflow = before;
      }
      if (oldOverflow !== i32[h + T_OLDOVERFLOW]) {
        fail(`old overflow count ${i32[h + T_OLDOVERFLOW]} but ${oldOverflow} found`);
      }
    }
    if (overflow !== i32[h + T_NOVERFLOW]) {
      fail(`overflow count ${i32[h + T_NOVERFLOW]} but ${overflow} found`);
    }
    if (live !== i32[h + T_COUNT]) fail(`count ${i32[h + T_COUNT]} but ${live} keys found`);
  }

  /** Finishes any growth under way by evacuating every remaining old bucket. */
  finishGrowth(): void {
    const a = this.arena;
    let limit = this.#chainLimit() + 1;
    while (a.i32[this.h + T_OLDBUCKETS] !== 0) {
      this.#evacuate(a.i32[this.h + T_NEVACUATE]);
      if (--limit < 0) throw loops();
    }
  }

  #visitChain(b: number, mask: number, want: number, visit: (keySlot: number) => void): void {
    const a = this.arena;
    let limit = this.#chainLimit();
    while (b !== 0) {
      a.reach(b + BUCKET_SIZE);
      for (let i = 0; i < BUCKET_SLOTS; i++) {
        const t = a.u8[b + i];
        if (t < MIN_TOP_HASH) {
          if (t === EMPTY_REST) return;
          continue;
        }
        const k = b + KEYS + 8 * i;
        if (mask >= 0) {
          const hash = hashStored(a, a.i32[(k >> 2) + 1], a.i32[k >> 2]);
          if ((hash & mask) !== want) continue;
        }
        visit(k);
      }
      b = a.i32[(b + OVERFLOW) >> 2];
      if (--limit < 0) throw loops();
    }
  }

  #oldB(): number {
    const i32 = this.arena.i32;
    return i32[this.h + T_B] - ((i32[this.h + T_FLAGS] & SAME_SIZE_GROW) !== 0 ? 0 : 1);
  }

  #evacuated(b: number): boolean {
    this.arena.reach(b + BUCKET_SIZE);
    const t = this.arena.u8[b];
    return t > EMPTY_ONE && t < MIN_TOP_HASH;
  }

  /** Starts a growth: a bigger array when over the load factor, else one of the same size. */
  #hashGrow(): void {
    const a = this.arena;
    const tx = this.tx;
    const h = this.h;
    const B = a.i32[h + T_B];
    const bigger = overLoadFactor(a.i32[h + T_COUNT] + 1, B);
    const newB = bigger ? B + 1 : B;
    if (newB > MAX_B) throw new MapFullError(BUCKET_SIZE * 2 ** newB, a.maxBytes);
    const buckets = tx.alloc(BUCKET_SIZE * 2 ** newB, true);
    const i32 = a.i32;
    tx.set(h + T_FLAGS, bigger ? 0 : SAME_SIZE_GROW);
    tx.set(h + T_OLDBUCKETS, i32[h + T_BUCKETS]);
    tx.set(h + T_BUCKETS, buckets);
    tx.set(h + T_B, newB);
    tx.set(h + T_NEVACUATE, 0);
    tx.set(h + T_OLDOVERFLOW, i32[h + T_NOVERFLOW]);
    tx.set(h + T_NOVERFLOW, 0);
  }

  /** Evacuates the old bucket a write to `bucket` needs, then one more to make progress. */
  #growWork(bucket: number): void {
    const a = this.arena;
    this.#evacuate(bucket & ((1 << this.#oldB()) - 1));
    if (a.i32[this.h + T_OLDBUCKETS] !== 0) this.#evacuate(a.i32[this.h + T_NEVACUATE]);
  }

  /**
   * Moves old bucket `oldbucket` and its chain into the new array. Its destinations are empty
   * (invariant), so one ZERO journal entry each covers every write into them; overflow buckets
   * it adds are fresh blocks.
   */
  #evacuate(oldbucket: number): void {
    const a = this.arena;
    const tx = this.tx;
    const h = this.h;
    const old = a.i32[h + T_OLDBUCKETS];
    const oldB = this.#oldB();
    const newbit = 1 << oldB;
    const sameSize = (a.i32[h + T_FLAGS] & SAME_SIZE_GROW) !== 0;
    const ob = old + oldbucket * BUCKET_SIZE;
    if (!this.#evacuated(ob)) {
      const buckets = a.i32[h + T_BUCKETS];
      const x = buckets + oldbucket * BUCKET_SIZE;
      const y = sameSize ? 0 : buckets + (oldbucket + newbit) * BUCKET_SIZE;
      // Another worker may have allocated the new array after growing the buffer, past this
      // worker's views; a write there would be dropped silently and the keys lost. Cover it.
      a.reach((y !== 0 ? y : x) + BUCKET_SIZE);
      tx.zeroed(x >> 2, (x + BUCKET_SIZE) >> 2);
      if (y !== 0) tx.zeroed(y >> 2, (y + BUCKET_SIZE) >> 2);
      // Destination bucket and next free slot for each half.
      let xb = x, xi = 0, yb = y, yi = 0;
      const sides = this.#sides;
      let n = 0;
      let limit = this.#chainLimit();
      for (let b = ob; b !== 0; b = a.i32[(b + OVERFLOW) >> 2]) {
        if (--limit < 0) throw loops();
        a.reach(b + BUCKET_SIZE);
        for (let i = 0; i < BUCKET_SLOTS; i++) {
          const top = a.u8[b + i];
          if (top < MIN_TOP_HASH) {
            sides[n++] = EVACUATED_EMPTY;
            continue;
          }
          const k = b + KEYS + 8 * i;
          let useY = false;
          if (!sameSize) {
            const hash = hashStored(a, a.i32[(k >> 2) + 1], a.i32[k >> 2]);
            useY = (hash & newbit) !== 0;
          }
          sides[n++] = useY ? EVACUATED_Y : EVACUATED_X;
          let db: number; // destination bucket and slot
          let di: number;
          if (useY) {
            if (yi === BUCKET_SLOTS) {
              yb = this.#newOverflow(yb);
              yi = 0;
            }
            db = yb;
            di = yi++;
          } else {
            if (xi === BUCKET_SLOTS) {
              xb = this.#newOverflow(xb);
              xi = 0;
            }
            db = xb;
            di = xi++;
          }
          // Plain writes: the destination was empty (a ZERO entry) or is a fresh block.
          a.u8[db + di] = top;
          const from = k >> 2;
          const to = (db + KEYS + 8 * di) >> 2;
          const i32 = a.i32;
          i32[to] = i32[from];
          i32[to + 1] = i32[from + 1];
          i32[to + VALUE_WORDS] = i32[from + VALUE_WORDS];
          i32[to + VALUE_WORDS + 1] = i32[from + VALUE_WORDS + 1];
        }
      }
      // Mark every old slot, in chain order, with where its key went, and free the old chain.
      let m = 0;
      for (let b = ob; b !== 0;) {
        const w0 = sides[m] | sides[m + 1] << 8 | sides[m + 2] << 16 | sides[m + 3] << 24;
        const w1 = sides[m + 4] | sides[m + 5] << 8 | sides[m + 6] << 16 | sides[m + 7] << 24;
        tx.set(b >> 2, w0);
        tx.set((b >> 2) + 1, w1);
        m += BUCKET_SLOTS;
        const next = a.i32[(b + OVERFLOW) >> 2];
        if (b !== ob) {
          tx.free(b, this.#overflowBytes(b));
          tx.set(h + T_OLDOVERFLOW, a.i32[h + T_OLDOVERFLOW] - 1);
        }
        b = next;
      }
      tx.set((ob + OVERFLOW) >> 2, 0);
    }
    if (oldbucket === a.i32[h + T_NEVACUATE]) this.#advanceEvacuationMark(newbit);
  }

  /** Allocates a zeroed overflow bucket, and records its block's size in it. */
  #allocOverflow(): number {
    const overflow = this.tx.allocAtLeast(BUCKET_SIZE, true);
    // A plain write: the block is this mutation's own (a rollback frees it).
    this.arena.i32[(overflow + BLOCK_BYTES) >> 2] = grantedBytes;
    return overflow;
  }

  /** Bytes of the block of overflow bucket `b`, to free it with. */
  #overflowBytes(b: number): number {
    const bytes = this.arena.i32[(b + BLOCK_BYTES) >> 2];
    return bytes === 0 ? BUCKET_SIZE : bytes;
  }

  #newOverflow(b: number): number {
    const a = this.arena;
    const overflow = this.#allocOverflow();
    this.tx.set((b + OVERFLOW) >> 2, overflow);
    this.tx.set(this.h + T_NOVERFLOW, a.i32[this.h + T_NOVERFLOW] + 1);
    return overflow;
  }

  #advanceEvacuationMark(newbit: number): void {
    const a = this.arena;
    const tx = this.tx;
    const h = this.h;
    let n = a.i32[h + T_NEVACUATE] + 1;
    // Skip buckets already evacuated out of order, but bound the work (as Go does).
    const stop = Math.min(n + 1024, newbit);
    const old = a.i32[h + T_OLDBUCKETS];
    while (n !== stop && this.#evacuated(old + n * BUCKET_SIZE)) n++;
    tx.set(h + T_NEVACUATE, n);
    if (n === newbit) {
      // Growth is done: no old bucket holds a key any more.
      tx.free(old, BUCKET_SIZE * newbit);
      tx.set(h + T_OLDBUCKETS, 0);
      tx.set(h + T_FLAGS, a.i32[h + T_FLAGS] & ~SAME_SIZE_GROW);
      tx.set(h + T_OLDOVERFLOW, 0);
    }
  }

  /**
   * Empties key slot `k` of bucket `b` (in the chain starting at `first`), frees what it owns,
   * and maintains the empty-rest marks.
   */
  #clearSlot(k: number, b: number, first: number): void {
    const a = this.arena;
    const tx = this.tx;
    const w = k >> 2;
    const i32 = a.i32;
    if (this.ownsKeys) this.#freeBlob(i32[w + 1], i32[w]);
    this.freeValue(i32[w + VALUE_WORDS + 1], i32[w + VALUE_WORDS], tx);
    tx.set(w, 0);
    tx.set(w + 1, 0);
    tx.set(w + VALUE_WORDS, 0);
    tx.set(w + VALUE_WORDS + 1, 0);
    let i = (k - b - KEYS) >> 3;
    tx.setByte(b + i, EMPTY_ONE);
    // The walk below follows overflow links without a reach() per bucket, so first make the
    // views cover the whole buffer: another worker may have grown it since this worker's views
    // were made.
    a.reach(a.buffer.byteLength);
    // If this slot ends the live run, turn the trailing empty-one marks into empty-rest, walking
    // back through the chain, so lookups stop early (Go's mapdelete does the same).
    if (i === BUCKET_SLOTS - 1) {
      const next = a.i32[(b + OVERFLOW) >> 2];
      if (next !== 0 && a.u8[next] !== EMPTY_REST) return;
    } else if (a.u8[b + i + 1] !== EMPTY_REST) {
      return;
    }
    const limit = this.#chainLimit();
    for (;;) {
      tx.setByte(b + i, EMPTY_REST);
      if (i === 0) {
        if (b === first) break;
        let prev = first;
        for (let hops = 0; a.i32[(prev + OVERFLOW) >> 2] !== b; hops++) {
          if (hops > limit) throw loops();
          prev = a.i32[(prev + OVERFLOW) >> 2];
        }
        b = prev;
        i = BUCKET_SLOTS - 1;
      } else {
        i--;
      }
      if (a.u8[b + i] !== EMPTY_ONE) break;
    }
  }

  #freeBlob(hi: number, lo: number): void {
    if (isBlob(hi)) this.tx.free(lo, blobSize(this.arena, hi, lo));
  }

  /** Frees what the live keys of the chain from `b` own (key blobs, values). */
  #freeChainSlots(b: number): void {
    const a = this.arena;
    let limit = this.#chainLimit();
    for (; b !== 0; b = a.i32[(b + OVERFLOW) >> 2]) {
      if (--limit < 0) throw loops();
      a.reach(b + BUCKET_SIZE);
      for (let i = 0; i < BUCKET_SLOTS; i++) {
        if (a.u8[b + i] < MIN_TOP_HASH) continue;
        const w = (b + KEYS + 8 * i) >> 2;
        if (this.ownsKeys) this.#freeBlob(a.i32[w + 1], a.i32[w]);
        this.freeValue(a.i32[w + VALUE_WORDS + 1], a.i32[w + VALUE_WORDS], this.tx);
      }
    }
  }

  /** Frees the overflow buckets chained after bucket `b`, unlinks them, and counts them out. */
  #freeOverflows(b: number, counter: number): void {
    const a = this.arena;
    const tx = this.tx;
    let next = a.i32[(b + OVERFLOW) >> 2];
    if (next === 0) return;
    tx.set((b + OVERFLOW) >> 2, 0);
    let n = 0;
    let limit = this.#chainLimit();
    while (next !== 0) {
      const after = a.i32[(next + OVERFLOW) >> 2];
      tx.free(next, this.#overflowBytes(next));
      n++;
      next = after;
      if (--limit < 0) throw loops();
    }
    tx.set(this.h + counter, a.i32[this.h + counter] - n);
  }
}

/**
 * The byte offset of bucket `bucket` in the current bucket array of the table whose header is
 * at byte `headerOffset`, and the word index of its overflow link (for tests that corrupt a
 * chain on purpose).
 */
export function bucketAt(
  arena: Arena,
  headerOffset: number,
  bucket: number,
): { offset: number; overflowWord: number } {
  const offset = arena.i32[(headerOffset >> 2) + T_BUCKETS] + bucket * BUCKET_SIZE;
  return { offset, overflowWord: (offset + OVERFLOW) >> 2 };
}

/** Hops a lookup makes along a chain before it checks the chain for a loop. */
const CHAIN_CHECK = 64;

function loops(): RangeError {
  return new RangeError("corrupt table: an overflow chain loops");
}
