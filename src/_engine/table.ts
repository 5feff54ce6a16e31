/**
 * Internal. The hash table both maps are built on, laid out the way Go's runtime lays out a map
 * (runtime/map.go up to Go 1.23), in an arena.
 *
 * The layout (header words, buckets, tophash marks) is in table_layout.ts; growth in
 * table_grow.ts, clearing in table_clear.ts, iteration in table_iter.ts, and stats and
 * verification in table_verify.ts. This file holds the lookups, inserts and deletes.
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

import type { Arena } from "./arena.ts";
import { MapFullError } from "../errors.ts";
import { JournalFullError } from "./journal.ts";
import type { Probe } from "./slots.ts";
import * as slots from "./slots.ts";
import type { Savepoint, Tx } from "./tx.ts";
import {
  allocOverflow,
  bucketsForHint,
  chainLimit,
  checkBucketArrays,
  checkedNext,
  evacuated,
  freeBlob,
  type FreeValue,
  loops,
  newOverflow,
  overLoadFactor,
  pow2,
  tophash,
} from "./table_layout.ts";
import * as table_layout from "./table_layout.ts";
import { clearStep, clearSteps, destroy, finishClear } from "./table_clear.ts";
import { evacuateNext, finishGrowth, growWork, hashGrow } from "./table_grow.ts";
import { forEachKeySlot, gatherKeySlots } from "./table_iter.ts";
import { stats, type TableStats, verify } from "./table_verify.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { MODE_INLINE, MODE_STRING } = slots;
const {
  BUCKET_SIZE,
  BUCKET_SLOTS,
  CHAIN_CHECK,
  EMPTY_ONE,
  EMPTY_REST,
  FULL_CHAIN_MAX,
  KEYS,
  MAX_B,
  MIN_TOP_HASH,
  OVERFLOW,
  SAME_SIZE_GROW,
  T_B,
  T_BUCKETS,
  T_COUNT,
  T_FLAGS,
  T_NOVERFLOW,
  T_OLDBUCKETS,
  T_OLDOVERFLOW,
  TABLE_WORDS,
  VALUE_WORDS,
} = table_layout;

// The layout and the parts of a table live beside it; these are the table's public names.
export {
  BUCKET_SIZE,
  bucketAt,
  bucketBytesForHint,
  bucketsForHint,
  type FreeValue,
  MAX_B,
  TABLE_WORDS,
  tophash,
  VALUE_WORDS,
} from "./table_layout.ts";
export type { TableStats } from "./table_verify.ts";

/** Whether this platform stores a word's low byte first, as findWords' mark matching assumes. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** The most inserts a table that could not grow makes before it tries again (Table.#growSkip). */
export const GROW_RETRY_MAX = 1024;

/**
 * A view of one table in an arena. Cheap to make; holds no shared state of its own beyond where
 * the table is, how its slots are owned, and the transaction its mutations write through (its
 * growth wait and last find are this handle's, in its own memory).
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
  /**
   * Whether {@linkcode insertUnique}'s overflow buckets (of a table its transaction made) are
   * allocated unlisted (Tx.allocUnlisted): set while a SyncMap copies its read table.
   */
  unlistedOverflow = false;
  /**
   * Whether {@linkcode insert} and {@linkcode remove} skip the evacuation a write owes a growth
   * under way, as when it finds no room: set by a GoMap write done again after its commit found
   * no journal room for the frees of its evacuation (go_map.ts, `withoutGrowWork`).
   */
  growWorkOff = false;
  /**
   * Inserts of new keys that may skip a growth the table is due, after one found no memory: a
   * failed growth costs a large allocation's search of the heap and a MapFullError, and tried
   * again by every insert into a table that could not grow, it made those inserts 10 to 20 times
   * slower. Each failure doubles the wait, up to {@linkcode GROW_RETRY_MAX} inserts; a growth
   * that succeeds ends it, and a delete through this handle, which frees memory, ends the wait
   * (not its length). An insert that would make a chain longer than FULL_CHAIN_MAX tries
   * anyway, as every insert did, so chains stay as short as before. This handle's own count:
   * another handle's inserts retry on their own schedule.
   */
  #growSkip = 0;
  /** The wait set by the last failure, 0 after a growth. */
  #growWait = 0;
  /** Set by {@linkcode find} when it finds a key: the bucket holding the slot it returned. */
  foundBucket = 0;
  /** Set with {@linkcode foundBucket}: the first bucket of that bucket's chain. */
  foundHead = 0;

  /** The byte offset of the tophash mark of key slot `k`, which the last find returned. */
  foundMark(k: number): number {
    const b = this.foundBucket;
    return b + ((k - b - KEYS) >> 3);
  }

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
    const bytes = BUCKET_SIZE * pow2(b);
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
    return chainLimit(this.arena);
  }

  /**
   * Whether a walk that has made `hops` hops along one chain has gone round a loop. The lookup
   * paths ask after every hop but read the buffer's size only past {@linkcode CHAIN_CHECK} hops:
   * that read is a call into the runtime where the buffer is growable, dearer than a short walk.
   */
  #looped(hops: number): boolean {
    return hops > CHAIN_CHECK && hops > this.#chainLimit();
  }

  /** Whether the table is growing: an old bucket array remains to be evacuated. */
  get growing(): boolean {
    return this.arena.i32[this.h + T_OLDBUCKETS] !== 0;
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
        if (p.matches(a, a.i32[w], a.i32[w + 1])) {
          this.foundBucket = b;
          this.foundHead = head;
          return w << 2;
        }
      }
      b = checkedNext(a.i32[(b + OVERFLOW) >> 2]);
      if (this.#looped(++hops)) throw loops();
    }
    return -1;
  }

  /**
   * {@linkcode find} for a key stored inline as the words (lo, hi): the hot path of a lookup.
   * A key in its home bucket, or absent from it and its chain ending there, is found or missed
   * in straight-line code: the bucket's eight tophash marks read as two words and matched four
   * at a time (little-endian: slot i's mark is byte i). The rest of a chain, a table that is
   * growing, and a bucket past this worker's views take {@linkcode #findWordsFrom}.
   */
  findWords(lo: number, hi: number, hash: number): number {
    const a = this.arena;
    const i32 = a.i32;
    const h = this.h;
    const t0 = hash >>> 24;
    const top = t0 < MIN_TOP_HASH ? t0 + MIN_TOP_HASH : t0;
    const b = i32[h + T_BUCKETS] + (hash & ((1 << i32[h + T_B]) - 1)) * BUCKET_SIZE;
    if (i32[h + T_OLDBUCKETS] !== 0 || b + BUCKET_SIZE > a.bytes || !LITTLE_ENDIAN) {
      return this.#findWordsFrom(this.#home(hash), lo, hi, top);
    }
    // Buckets are word-aligned (blocks are 16-byte aligned, BUCKET_SIZE is 144): the marks
    // are words w and w + 1.
    const w = b >> 2;
    const tops = top * 0x01010101;
    for (let j = 0; j < 2; j++) {
      const t = i32[w + j];
      // `rest` flags exactly the first EMPTY_REST mark (0) of the four; `hits` flags every
      // mark equal to `top` below it, and may flag more above a true one (a borrow), so each
      // is checked against its mark. Written out, here and in findString: JavaScriptCore left
      // these two as calls (int hits 1.04x to 1.17x slower on Bun).
      const rest = (t - 0x01010101) & ~t & 0x80808080;
      const x = t ^ tops;
      let hits = (x - 0x01010101) & ~x & 0x80808080;
      if (rest !== 0) hits &= (rest & -rest) - 1;
      while (hits !== 0) {
        const bit = 31 - Math.clz32(hits & -hits);
        const k = w + (KEYS >> 2) + 2 * (4 * j + (bit >> 3));
        if (((t >>> (bit - 7)) & 0xff) === top && i32[k] === lo && i32[k + 1] === hi) {
          this.foundBucket = b;
          this.foundHead = b;
          return k << 2;
        }
        hits &= hits - 1;
      }
      if (rest !== 0) return -1;
    }
    const next = i32[(b + OVERFLOW) >> 2];
    return next === 0 ? -1 : this.#findWordsFrom(b, lo, hi, top);
  }

  /**
   * {@linkcode findWords}'s walk along the chain from bucket `head`, the first of its chain
   * (findWords passes the home bucket it has just looked at when the chain goes on), a mark at
   * a time, every bucket brought into this worker's views first.
   */
  #findWordsFrom(head: number, lo: number, hi: number, top: number): number {
    const a = this.arena;
    let b = head;
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
          const w = (b >> 2) + (KEYS >> 2) + 2 * i;
          if (i32[w] === lo && i32[w + 1] === hi) {
            this.foundBucket = b;
            this.foundHead = head;
            return w << 2;
          }
        } else if (t === EMPTY_REST) {
          return -1;
        }
      }
      b = checkedNext(i32[(b + OVERFLOW) >> 2]);
      if (++hops > CHAIN_CHECK && hops * BUCKET_SIZE > a.buffer.byteLength) throw loops();
    }
    return -1;
  }

  /**
   * {@linkcode find} for a string key whose units the probe holds as words
   * ({@linkcode Probe.hasWords}): {@linkcode findWords}'s straight-line look at the home bucket
   * (the marks matched four at a time), each candidate's tag word compared and then its blob a
   * word at a time ({@linkcode Probe.matchesWords}); the rest of a chain, a table that is
   * growing, and a bucket past this worker's views take {@linkcode #findStringFrom}.
   */
  findString(p: Probe): number {
    const a = this.arena;
    const i32 = a.i32;
    const h = this.h;
    const hash = p.hash;
    const t0 = hash >>> 24;
    const top = t0 < MIN_TOP_HASH ? t0 + MIN_TOP_HASH : t0;
    const b = i32[h + T_BUCKETS] + (hash & ((1 << i32[h + T_B]) - 1)) * BUCKET_SIZE;
    if (i32[h + T_OLDBUCKETS] !== 0 || b + BUCKET_SIZE > a.bytes || !LITTLE_ENDIAN) {
      return this.#findStringFrom(p, this.#home(hash), top);
    }
    const tag = p.hi;
    const w = b >> 2;
    const tops = top * 0x01010101;
    for (let j = 0; j < 2; j++) {
      // `i32` stays good for this bucket after matchesWords, which may remake the arena's
      // views: the bucket lay inside them.
      const t = i32[w + j];
      const rest = (t - 0x01010101) & ~t & 0x80808080; // as in findWords
      const x = t ^ tops;
      let hits = (x - 0x01010101) & ~x & 0x80808080;
      if (rest !== 0) hits &= (rest & -rest) - 1;
      while (hits !== 0) {
        const bit = 31 - Math.clz32(hits & -hits);
        const k = w + (KEYS >> 2) + 2 * (4 * j + (bit >> 3));
        if (
          ((t >>> (bit - 7)) & 0xff) === top && i32[k + 1] === tag && p.matchesWords(a, i32[k])
        ) {
          this.foundBucket = b;
          this.foundHead = b;
          return k << 2;
        }
        hits &= hits - 1;
      }
      if (rest !== 0) return -1;
    }
    const next = i32[(b + OVERFLOW) >> 2];
    return next === 0 ? -1 : this.#findStringFrom(p, b, top);
  }

  /**
   * {@linkcode findString}'s walk along the chain from bucket `head`, the first of its chain, a
   * mark at a time, every bucket brought into this worker's views first.
   */
  #findStringFrom(p: Probe, head: number, top: number): number {
    const a = this.arena;
    const tag = p.hi;
    let b = head;
    // Local views as in #findWordsFrom, taken again after matchesWords, which may remake them.
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
          const w = (b >> 2) + (KEYS >> 2) + 2 * i;
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
      b = checkedNext(i32[(b + OVERFLOW) >> 2]);
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
   * owns its blob), else from `p.lo` and `p.hi` as they are. The new key's value slot is left for
   * the caller to write. Throws MapFullError with the table's contents unchanged.
   */
  insert(p: Probe, materialize: boolean): number {
    const a = this.arena;
    const tx = this.tx;
    const h = this.h;
    checkBucketArrays(this);
    const hash = p.hash;
    const top = tophash(hash);
    let grew = false;
    // The savepoint before the growth this insert began, until its first evacuation is done.
    let growPoint: Savepoint | null = null;
    // Why this insert could not grow the table, when it could not.
    let noGrowth: MapFullError | null = null;
    // Whether this insert evacuated for a growth under way. If that finished the growth, the
    // next one starts with the next write: its first evacuation (this key's old bucket, a
    // crafted chain perhaps, as was the one just finished) would add its frees to this write's,
    // and the commit's frees could overflow the journal (1 seed in about 200 with 750 crafted
    // keys, tests/crafted_chain_test.ts).
    let evacuated = false;
    for (;;) {
      const bucket = hash & ((1 << a.i32[h + T_B]) - 1);
      if (a.i32[h + T_OLDBUCKETS] !== 0) {
        const point = tx.savepoint();
        try {
          this.#growWork(bucket);
          evacuated = growPoint === null;
        } catch (error) {
          if (!(error instanceof MapFullError)) throw error;
          if (growPoint !== null) {
            // The growth this insert began found no memory for its first evacuation: undo the
            // growth too, and insert into the table as it was, as when the growth itself
            // found none (a new key must not wait for an evacuation that cannot be made).
            tx.rollbackTo(growPoint);
            growPoint = null;
            noGrowth = error;
            continue;
          }
          // The evacuation this write owes needed memory the arena lacks: undo it. An existing
          // key is still overwritten in place, wherever it lives: an overwrite needs no memory.
          // A new key may enter the new array only once its old bucket is evacuated.
          tx.rollbackTo(point);
          const k = this.find(p);
          if (k >= 0) {
            this.inserted = false;
            return k;
          }
          if (this.#home(hash) !== a.i32[h + T_BUCKETS] + bucket * BUCKET_SIZE) throw error;
        }
      }
      growPoint = null;
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
          if (p.matches(a, a.i32[k >> 2], a.i32[(k >> 2) + 1])) {
            this.inserted = false;
            return k;
          }
        }
        last = b;
        chain++;
        b = checkedNext(a.i32[(b + OVERFLOW) >> 2]);
        if (this.#looped(chain)) throw loops();
      }
      // Not present. Grow first if the table is due, then search again (Go's "goto again").
      const count = a.i32[h + T_COUNT];
      const B = a.i32[h + T_B];
      if (
        !grew && !evacuated && a.i32[h + T_OLDBUCKETS] === 0 &&
        (overLoadFactor(count + 1, B) || a.i32[h + T_NOVERFLOW] >= pow2(Math.min(B, 30)))
      ) {
        if (this.#growSkip > 0 && (freeB !== 0 || chain < FULL_CHAIN_MAX)) {
          this.#growSkip--;
        } else {
          grew = true;
          const point = tx.savepoint();
          try {
            this.#hashGrow(overLoadFactor(count + 1, B));
            growPoint = point;
            this.#growWait = this.#growSkip = 0;
            continue;
          } catch (error) {
            if (!(error instanceof MapFullError)) throw error;
            tx.rollbackTo(point);
            noGrowth = error;
            this.#growSkip = this.#growWait = Math.min(2 * this.#growWait + 1, GROW_RETRY_MAX);
          }
        }
      }
      // No room to grow: insert into the table as it is, if that still fits. Chains stay short
      // (FULL_CHAIN_MAX buckets) so that evacuating one, when memory returns and the table can
      // grow again, fits in one mutation's journal.
      if (noGrowth !== null && freeB === 0 && chain >= FULL_CHAIN_MAX) throw noGrowth;
      const keyLo = materialize ? p.materialize(a, tx) : p.lo;
      if (freeB === 0) {
        freeB = this.#newOverflow(last);
        freeI = 0;
      }
      return this.#putKey(freeB, freeI, top, keyLo, p.hi, count);
    }
  }

  /**
   * Puts a new key, slot words (lo, hi) and mark `top`, into empty slot `i` of bucket `b`, the
   * table holding `count` keys before it; returns the key slot.
   */
  #putKey(b: number, i: number, top: number, lo: number, hi: number, count: number): number {
    const k = b + KEYS + 8 * i;
    this.#writeEmptySlot(k >> 2, lo, hi);
    this.tx.setByte(b + i, top);
    this.tx.set(this.h + T_COUNT, count + 1);
    this.inserted = true;
    return k;
  }

  /**
   * Writes words `w` and `w + 1` of a slot that was empty as the key went in (its key words, or
   * its value words). The slot is empty (its mark below MIN_TOP_HASH), and no one reads an empty
   * slot's words (table_layout.ts): unless this mutation emptied a slot, they take no journal
   * entries, and a rollback restores the mark, which empties the slot again, whatever its words
   * then hold. (A slot this mutation emptied comes back live with a rollback, and needs its words
   * back.)
   */
  #writeEmptySlot(w: number, lo: number, hi: number): void {
    if (this.tx.journal.slotEmptied) {
      this.tx.set(w, lo);
      this.tx.set(w + 1, hi);
    } else {
      const i32 = this.arena.i32;
      i32[w] = lo;
      i32[w + 1] = hi;
    }
  }

  /**
   * {@linkcode insert} of a key whose slot words are `p.lo` and `p.hi` as they stand (an inline
   * key, or one whose blob the caller put in `p.lo`), which a lookup in this table under the same
   * lock has just missed: into the first empty slot of its home bucket, with no walk, when the
   * table is not growing, no growth is due (load factor, overflow buckets), and that bucket has
   * an empty slot. Returns the key slot, or -1, with nothing written, when any of that does not
   * hold: insert's general way then. The slot is the one insert would take (the first empty one
   * of the chain, the key being absent), written as insert writes it (#putKey).
   */
  insertAbsent(p: Probe): number {
    checkBucketArrays(this);
    const a = this.arena;
    const i32 = a.i32;
    const h = this.h;
    const B = i32[h + T_B];
    const count = i32[h + T_COUNT];
    // insert's test of a growth due, written out here too: shared through a method, which
    // JavaScriptCore left a call here, it cost a churn of new keys 1.07x on Bun (medians of 8
    // processes).
    if (
      i32[h + T_OLDBUCKETS] !== 0 || overLoadFactor(count + 1, B) ||
      i32[h + T_NOVERFLOW] >= pow2(Math.min(B, 30)) || !LITTLE_ENDIAN
    ) return -1;
    const hash = p.hash;
    const b = i32[h + T_BUCKETS] + (hash & ((1 << B) - 1)) * BUCKET_SIZE;
    if (b + BUCKET_SIZE > a.bytes) return -1;
    // The bucket's marks as two words, as findWords reads them: `free` flags exactly the first
    // mark below 2 (EMPTY_REST or EMPTY_ONE) of the four, and may flag more above it.
    let i = -1;
    for (let j = 0; j < 2; j++) {
      const t = i32[(b >> 2) + j];
      const free = (t - 0x02020202) & ~t & 0x80808080;
      if (free !== 0) {
        i = 4 * j + ((31 - Math.clz32(free & -free)) >> 3);
        break;
      }
    }
    return i < 0 ? -1 : this.#putKey(b, i, tophash(hash), p.lo, p.hi, count);
  }

  /**
   * Writes the value words (lo, hi) of key slot `k`, which {@linkcode insert} or
   * {@linkcode insertAbsent} just returned: as the key words of a key put in, when the key was put
   * in (#writeEmptySlot), else through the journal.
   */
  setValueWords(k: number, lo: number, hi: number): void {
    const w = (k >> 2) + VALUE_WORDS;
    if (this.inserted) {
      this.#writeEmptySlot(w, lo, hi);
    } else {
      this.tx.set(w, lo);
      this.tx.set(w + 1, hi);
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
    checkBucketArrays(this);
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
    // What the key held is freed: the next insert due to grow may find the memory now.
    this.#growSkip = 0;
    return true;
  }

  /** Buckets a clear walks (table_clear.ts). */
  get clearSteps(): number {
    return clearSteps(this);
  }

  /** One step of a clear (table_clear.ts). */
  clearStep(step: number): boolean {
    return clearStep(this, step);
  }

  /** The last step of a clear (table_clear.ts). */
  finishClear(): void {
    finishClear(this);
  }

  /** Frees every block of a table no one can reach any more (table_clear.ts). */
  destroy(free: (offset: number, size: number) => void): void {
    destroy(this, free);
  }

  /** Visits every live key whose hash has `i` in its low `level` bits (table_iter.ts). */
  forEachKeySlot(level: number, i: number, visit: (keySlot: number) => void): void {
    forEachKeySlot(this, level, i, visit);
  }

  /**
   * Writes into `out` the key slots that {@linkcode forEachKeySlot} would visit and returns how
   * many (table_iter.ts gatherKeySlots).
   */
  gatherKeySlots(level: number, i: number, out: number[]): number {
    return gatherKeySlots(this, level, i, out);
  }

  /** Shape and growth state, for stats() and tests (table_verify.ts). */
  stats(): TableStats {
    return stats(this);
  }

  /** Checks the table's invariants, visiting its blocks and live keys (table_verify.ts). */
  verify(
    block: (offset: number, bytes: number) => void,
    slot: (keySlot: number) => void,
    keys = true,
  ): void {
    verify(this, block, slot, keys);
  }

  /** Evacuates the old bucket at the evacuation mark (table_grow.ts); the table must be growing. */
  evacuateNext(): void {
    evacuateNext(this);
  }

  /** Finishes any growth under way (table_grow.ts; for tests). */
  finishGrowth(): void {
    finishGrowth(this);
  }

  #hashGrow(bigger: boolean): void {
    hashGrow(this, bigger);
  }

  #growWork(bucket: number): void {
    // Skipped as an evacuation that found no room is (see growWorkOff).
    if (this.growWorkOff) throw new JournalFullError();
    growWork(this, bucket);
  }

  /** The current B. Iterations partition keys by the low bits of B taken at their start. */
  get B(): number {
    return this.arena.i32[this.h + T_B];
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
    const h = this.h;
    // A journaled insert may meet a growth under way (SyncMap's repair after a death): the key's
    // old bucket is evacuated first, so that its new bucket may take keys. Finishing the whole
    // growth instead overflowed the journal for tables of a few hundred keys and up.
    if (journaled && a.i32[h + T_OLDBUCKETS] !== 0) {
      this.#growWork(hash & ((1 << a.i32[h + T_B]) - 1));
    }
    const b = a.i32[h + T_BUCKETS] + (hash & ((1 << a.i32[h + T_B]) - 1)) * BUCKET_SIZE;
    return this.#insertFrom(b, lo, hi, tophash(hash), journaled);
  }

  /**
   * {@linkcode insertUnique} of a key whose bucket number (`bucket`, below 2^B) and tophash
   * (`top`) the caller has already: a key copied from a table of the same B, whose bucket and
   * tophash it keeps, with no hash computed. Unjournaled, into a table that is not growing.
   */
  insertUniqueIn(bucket: number, top: number, lo: number, hi: number): number {
    const b = this.arena.i32[this.h + T_BUCKETS] + bucket * BUCKET_SIZE;
    return this.#insertFrom(b, lo, hi, top, false);
  }

  /** {@linkcode insertUnique} from the key's first bucket `b`, with tophash `top`. */
  #insertFrom(b: number, lo: number, hi: number, top: number, journaled: boolean): number {
    const a = this.arena;
    const tx = this.tx;
    const h = this.h;
    let hops = 0;
    for (;;) {
      a.reach(b + BUCKET_SIZE);
      for (let i = 0; i < BUCKET_SLOTS; i++) {
        if (a.u8[b + i] <= EMPTY_ONE) {
          const w = (b + KEYS + 8 * i) >> 2;
          if (journaled) {
            tx.set(w, lo);
            tx.set(w + 1, hi);
            tx.setByte(b + i, top);
            tx.set(h + T_COUNT, a.i32[h + T_COUNT] + 1);
          } else {
            a.i32[w] = lo;
            a.i32[w + 1] = hi;
            a.u8[b + i] = top;
            a.i32[h + T_COUNT]++;
          }
          return w << 2;
        }
      }
      const next = checkedNext(a.i32[(b + OVERFLOW) >> 2]);
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
      if (this.#looped(++hops)) throw loops();
    }
  }

  #evacuated(b: number): boolean {
    return evacuated(this.arena, b);
  }

  #allocOverflow(): number {
    return allocOverflow(this, this.unlistedOverflow);
  }

  #newOverflow(b: number): number {
    return newOverflow(this, b);
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
    if (this.ownsKeys) this.#freeBlob(i32[w], i32[w + 1]);
    this.freeValue(i32[w + VALUE_WORDS], i32[w + VALUE_WORDS + 1], tx);
    // The key and value words stay as they are: nothing reads the words of a slot whose mark
    // is below MIN_TOP_HASH (table_layout.ts), so the mark alone empties the slot.
    tx.journal.slotEmptied = true; // see #writeEmptySlot
    let i = (k - b - KEYS) >> 3;
    tx.setByte(b + i, EMPTY_ONE);
    // The walk below follows overflow links without a reach() per bucket, so first make the
    // views cover every block: another worker may have grown the buffer since this worker's
    // views were made. Removal is a locked mutation, so reachTop's condition holds.
    a.reachTop();
    // If this slot ends the live run, turn the trailing empty-one marks into empty-rest, walking
    // back through the chain, so lookups stop early (Go's mapdelete does the same).
    if (i === BUCKET_SLOTS - 1) {
      const next = a.i32[(b + OVERFLOW) >> 2];
      if (next !== 0 && a.u8[next] !== EMPTY_REST) return;
    } else if (a.u8[b + i + 1] !== EMPTY_REST) {
      return;
    }
    // The views cover the buffer (above): its size in buckets, without reading it again.
    const limit = a.bytes / BUCKET_SIZE;
    for (;;) {
      tx.setByte(b + i, EMPTY_REST);
      if (i === 0) {
        if (b === first) break;
        let prev = first;
        for (let hops = 0; a.i32[(prev + OVERFLOW) >> 2] !== b; hops++) {
          if (hops > limit) throw loops();
          prev = checkedNext(a.i32[(prev + OVERFLOW) >> 2]);
          if (prev === 0) throw loops();
        }
        b = prev;
        i = BUCKET_SLOTS - 1;
      } else {
        i--;
      }
      if (a.u8[b + i] !== EMPTY_ONE) break;
    }
  }

  #freeBlob(lo: number, hi: number): void {
    freeBlob(this, lo, hi);
  }
}
