/**
 * Internal. Iteration over a table (table.ts): the keys whose hash has given low bits, wherever
 * growth has put them, so that an iteration that spans growths visits each key once.
 *
 * @module
 */

import { hashStored } from "./slots.ts";
import {
  chainLimit,
  checkBucketArrays,
  checkedNext,
  evacuated,
  loops,
  oldBOf,
  type TableView,
} from "./table_layout.ts";
import * as table_layout from "./table_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const {
  BUCKET_SIZE,
  BUCKET_SLOTS,
  EMPTY_REST,
  KEYS,
  MIN_TOP_HASH,
  OVERFLOW,
  T_B,
  T_BUCKETS,
  T_COUNT,
  T_OLDBUCKETS,
} = table_layout;

/**
 * Calls `visit(keySlot)` for every live key whose hash has `i` in its low `level` bits (see
 * {@linkcode gatherKeySlots}, which gathers them first). `visit` must not mutate the table.
 */
export function forEachKeySlot(
  table: TableView,
  level: number,
  i: number,
  visit: (keySlot: number) => void,
): void {
  const slots = level === 0 ? keySlotsFor(table) : [];
  const count = gatherKeySlots(table, level, i, slots);
  for (let j = 0; j < count; j++) visit(slots[j]);
}

/** The most slots {@linkcode keySlotsFor} makes room for: V8 makes a larger `new Array` slow. */
const PRESIZED_MAX = 65536;

/**
 * An array to gather all of `table`'s key slots into ({@linkcode gatherKeySlots} at level 0),
 * made with room for its count (up to {@linkcode PRESIZED_MAX}), so that the gathering does
 * not grow it step by step: each growth is a builtin call and a copy (1.5% of a SyncMap
 * AdversarialDelete on Node 24, whose dirty-table rebuilds gather 1,024 keys).
 */
export function keySlotsFor(table: TableView): number[] {
  const count = table.arena.i32[table.h + T_COUNT];
  return new Array<number>(count > 0 ? Math.min(count, PRESIZED_MAX) : 0);
}

/**
 * Writes into `out`, from index 0, the key slot of every live key whose hash has `i` in its low
 * `level` bits, and returns how many it wrote (`out` may be longer: its length is left alone,
 * so that a caller reusing it keeps its capacity). Such a key lives in new buckets congruent to
 * `i` modulo 2^level, or in the matching unevacuated old buckets, never both; the union over
 * all `i` is every key exactly once, however far the table has grown or shrunk since `level`
 * was taken. A plain walk with no call per key: iteration's batches read through it.
 */
export function gatherKeySlots(table: TableView, level: number, i: number, out: number[]): number {
  checkBucketArrays(table);
  const a = table.arena;
  const h = table.h;
  // Taken once for the batch.
  const limit = chainLimit(a);
  const B = a.i32[h + T_B];
  const buckets = a.i32[h + T_BUCKETS];
  let n = 0;
  if (B >= level) {
    for (let j = i; j < 1 << B; j += 1 << level) {
      n = chainSlots(table, buckets + j * BUCKET_SIZE, -1, 0, limit, out, n);
    }
  } else {
    // A smaller table than the one `level` was taken from (SyncMap replaces its tables).
    const b = buckets + (i & ((1 << B) - 1)) * BUCKET_SIZE;
    n = chainSlots(table, b, (1 << level) - 1, i, limit, out, n);
  }
  const old = a.i32[h + T_OLDBUCKETS];
  if (old === 0) return n;
  const oldB = oldBOf(table);
  if (oldB >= level) {
    for (let j = i; j < 1 << oldB; j += 1 << level) {
      const ob = old + j * BUCKET_SIZE;
      if (!evacuated(a, ob)) n = chainSlots(table, ob, -1, 0, limit, out, n);
    }
  } else {
    // The iteration began while this growth was under way: an old bucket holds the keys of
    // two logical buckets, so keep only those hashing to `i`.
    const ob = old + (i & ((1 << oldB) - 1)) * BUCKET_SIZE;
    if (!evacuated(a, ob)) n = chainSlots(table, ob, (1 << level) - 1, i, limit, out, n);
  }
  return n;
}

/**
 * Writes into `out`, from index 0, the key slot of every live key in the chain of bucket number
 * `bucket` (below 2^B) of `table`'s bucket array, and into `tops` at the same index its tophash;
 * returns how many it wrote. For a table that is not growing: its keys are all in that array.
 */
export function gatherChainSlots(
  table: TableView,
  bucket: number,
  out: number[],
  tops: number[],
): number {
  checkBucketArrays(table);
  const a = table.arena;
  const b = a.i32[table.h + T_BUCKETS] + bucket * BUCKET_SIZE;
  return chainSlots(table, b, -1, 0, chainLimit(a), out, 0, tops);
}

/**
 * Writes the live key slots of the chain from bucket `b` into `out` from index `n` (only those
 * whose hash has `want` under `mask`, unless `mask` is -1) and returns the new count; with
 * `tops`, each one's tophash at the same index there. `limit` is the most buckets a chain may
 * have.
 */
function chainSlots(
  table: TableView,
  b: number,
  mask: number,
  want: number,
  limit: number,
  out: number[],
  n: number,
  tops: number[] | null = null,
): number {
  const a = table.arena;
  while (b !== 0) {
    a.reach(b + BUCKET_SIZE);
    const u8 = a.u8;
    for (let i = 0; i < BUCKET_SLOTS; i++) {
      const t = u8[b + i];
      if (t < MIN_TOP_HASH) {
        if (t === EMPTY_REST) return n;
        continue;
      }
      const k = b + KEYS + 8 * i;
      if (mask >= 0) {
        const hash = hashStored(a, a.i32[k >> 2], a.i32[(k >> 2) + 1]);
        if ((hash & mask) !== want) continue;
      }
      if (tops !== null) tops[n] = t;
      out[n++] = k;
    }
    b = checkedNext(a.i32[(b + OVERFLOW) >> 2]);
    if (--limit < 0) throw loops();
  }
  return n;
}
