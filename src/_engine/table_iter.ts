/**
 * Internal. Iteration over a table (table.ts): the keys whose hash has given low bits, wherever
 * growth has put them, so that an iteration that spans growths visits each key once.
 *
 * @module
 */

import { hashStored } from "./slots.ts";
import {
  BUCKET_SIZE,
  BUCKET_SLOTS,
  chainLimit,
  EMPTY_REST,
  evacuated,
  KEYS,
  loops,
  MIN_TOP_HASH,
  oldBOf,
  OVERFLOW,
  T_B,
  T_BUCKETS,
  T_OLDBUCKETS,
  type TableView,
} from "./table_layout.ts";

/**
 * Calls `visit(keySlot)` for every live key whose hash has `i` in its low `level` bits. Such
 * a key lives in new buckets congruent to `i` modulo 2^level, or in the matching unevacuated
 * old buckets, never both; the union over all `i` is every key exactly once, however far the
 * table has grown since `level` was taken. `visit` must not mutate the table.
 */
export function collect(
  table: TableView,
  level: number,
  i: number,
  visit: (keySlot: number) => void,
): void {
  const a = table.arena;
  const h = table.h;
  const B = a.i32[h + T_B];
  const buckets = a.i32[h + T_BUCKETS];
  if (B >= level) {
    for (let j = i; j < 1 << B; j += 1 << level) {
      visitChain(table, buckets + j * BUCKET_SIZE, -1, 0, visit);
    }
  } else {
    // A smaller table than the one `level` was taken from (SyncMap replaces its tables).
    const b = buckets + (i & ((1 << B) - 1)) * BUCKET_SIZE;
    visitChain(table, b, (1 << level) - 1, i, visit);
  }
  const old = a.i32[h + T_OLDBUCKETS];
  if (old === 0) return;
  const oldB = oldBOf(table);
  if (oldB >= level) {
    for (let j = i; j < 1 << oldB; j += 1 << level) {
      const ob = old + j * BUCKET_SIZE;
      if (!evacuated(table.arena, ob)) visitChain(table, ob, -1, 0, visit);
    }
  } else {
    // The iteration began while this growth was under way: an old bucket holds the keys of
    // two logical buckets, so keep only those hashing to `i`.
    const ob = old + (i & ((1 << oldB) - 1)) * BUCKET_SIZE;
    if (!evacuated(table.arena, ob)) visitChain(table, ob, (1 << level) - 1, i, visit);
  }
}

function visitChain(
  table: TableView,
  b: number,
  mask: number,
  want: number,
  visit: (keySlot: number) => void,
): void {
  const a = table.arena;
  let limit = chainLimit(table.arena);
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
