/**
 * Internal. Emptying a table (table.ts): a clear, as a row of steps that each empty one bucket
 * and free what its keys own, and the freeing of a whole table no one can reach any more.
 *
 * @module
 */

import {
  chainLimit,
  checkBucketArrays,
  checkedNext,
  evacuated,
  freeBlob,
  loops,
  oldBOf,
  overflowBytes,
  pow2,
  type TableView,
} from "./table_layout.ts";
import * as table_layout from "./table_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const {
  BUCKET_SIZE,
  BUCKET_SLOTS,
  KEYS,
  MIN_TOP_HASH,
  OVERFLOW,
  T_B,
  T_BUCKETS,
  T_NOVERFLOW,
  T_OLDBUCKETS,
  T_OLDOVERFLOW,
  TABLE_WORDS,
  VALUE_WORDS,
} = table_layout;

/** Buckets a clear walks: the old array's (while growing), then the current array's. */
export function clearSteps(table: TableView): number {
  const i32 = table.arena.i32;
  const old = i32[table.h + T_OLDBUCKETS] === 0 ? 0 : 1 << oldBOf(table);
  return old + (1 << i32[table.h + T_B]);
}

/**
 * One step of a clear: empties bucket `step` of {@linkcode clearSteps} (an old bucket first,
 * then a current one) part of the way, and returns whether it is empty now. A step frees the
 * last overflow bucket of the bucket's chain and what its keys own; once no overflow bucket is
 * left, the bucket's own keys, and a current bucket's words. So a step journals at most what
 * one bucket's 8 keys own, however long the chain: a clear step that took a whole chain ran out
 * of journal on a chain of about 100 keys with blobs (keys crafted to collide), and every call
 * after it, retrying it, failed the same way. A clear is a row of such steps, each a
 * transaction of its own, repeated on one bucket until it returns true, then
 * {@linkcode finishClear}; the steps change no count, so a lookup between them may still find
 * keys of buckets not yet cleared. The bucket count must not change between steps (nothing else
 * writes meanwhile).
 */
export function clearStep(table: TableView, step: number): boolean {
  checkBucketArrays(table);
  const a = table.arena;
  const h = table.h;
  const old = a.i32[h + T_OLDBUCKETS];
  const oldBuckets = old === 0 ? 0 : 1 << oldBOf(table);
  if (step < oldBuckets) {
    const ob = old + step * BUCKET_SIZE;
    // An evacuated bucket's keys, and its chain's, are the new array's now.
    const owns = !evacuated(table.arena, ob);
    if (freeLastOverflow(table, ob, T_OLDOVERFLOW, owns)) return false;
    if (owns) freeSlots(table, ob);
    return true;
  }
  const b = a.i32[h + T_BUCKETS] + (step - oldBuckets) * BUCKET_SIZE;
  if (freeLastOverflow(table, b, T_NOVERFLOW, true)) return false;
  freeSlots(table, b);
  a.reach(b + BUCKET_SIZE);
  for (let w = b >> 2; w < (b + BUCKET_SIZE) >> 2; w++) {
    if (a.i32[w] !== 0) table.tx.set(w, 0);
  }
  return true;
}

/**
 * The last step of a clear: an old array is freed, and the header says empty: every word but B
 * and the bucket array's offset is 0.
 */
export function finishClear(table: TableView): void {
  const a = table.arena;
  const h = table.h;
  const tx = table.tx;
  const old = a.i32[h + T_OLDBUCKETS];
  if (old !== 0) tx.free(old, BUCKET_SIZE * pow2(oldBOf(table)));
  for (let w = 0; w < TABLE_WORDS; w++) if (w !== T_B && w !== T_BUCKETS) tx.set(h + w, 0);
}

/**
 * Frees every block of a table no one can reach any more, key blobs included when the table
 * owns keys, through `free`; the header itself is the caller's. Not journaled: it runs when a
 * retired table is reclaimed (reclaim.ts).
 */
export function destroy(table: TableView, free: (offset: number, size: number) => void): void {
  const a = table.arena;
  const h = table.h;
  // Its blocks may lie past this thread's views; all lie below the top, which the table's
  // retirement (an atomic write after its last allocation) makes visible here.
  a.reachTop();
  const old = a.i32[h + T_OLDBUCKETS];
  if (old !== 0) {
    const n = 1 << oldBOf(table);
    for (let b = old; b < old + BUCKET_SIZE * n; b += BUCKET_SIZE) {
      freeOverflowChain(table, a.i32[(b + OVERFLOW) >> 2], free);
    }
    free(old, BUCKET_SIZE * n);
  }
  const n = 1 << a.i32[h + T_B];
  const buckets = a.i32[h + T_BUCKETS];
  for (let b = buckets; b < buckets + BUCKET_SIZE * n; b += BUCKET_SIZE) {
    freeOverflowChain(table, a.i32[(b + OVERFLOW) >> 2], free);
  }
  free(buckets, BUCKET_SIZE * n);
}

/**
 * Frees, through `free`, the chain of overflow buckets from `first` (0: none); returns how
 * many it freed.
 */
function freeOverflowChain(
  table: TableView,
  first: number,
  free: (offset: number, size: number) => void,
): number {
  const a = table.arena;
  let next = first;
  let n = 0;
  let limit = chainLimit(table.arena);
  while (next !== 0) {
    checkedNext(next);
    a.reach(next + BUCKET_SIZE);
    const after = a.i32[(next + OVERFLOW) >> 2];
    free(next, overflowBytes(table.arena, next));
    n++;
    next = after;
    if (--limit < 0) throw loops();
  }
  return n;
}

/** Frees what the live keys of bucket `b` alone own (key blobs, values). */
function freeSlots(table: TableView, b: number): void {
  const a = table.arena;
  a.reach(b + BUCKET_SIZE);
  for (let i = 0; i < BUCKET_SLOTS; i++) {
    if (a.u8[b + i] < MIN_TOP_HASH) continue;
    const w = (b + KEYS + 8 * i) >> 2;
    if (table.ownsKeys) freeBlob(table, a.i32[w], a.i32[w + 1]);
    table.freeValue(a.i32[w + VALUE_WORDS], a.i32[w + VALUE_WORDS + 1], table.tx);
  }
}

/**
 * Frees the last overflow bucket chained after bucket `b` (the walk to it, bounded, is what finds
 * a chain that loops: freeing the first instead would free a looping chain's blocks twice, as
 * the cycle came round), and first what its keys own when
 * `owns`; unlinks it and counts it out of the header's `counter`. Returns false, doing nothing,
 * when `b` has no overflow bucket.
 */
function freeLastOverflow(table: TableView, b: number, counter: number, owns: boolean): boolean {
  const a = table.arena;
  const tx = table.tx;
  let before = b;
  let last = checkedNext(a.i32[(b + OVERFLOW) >> 2]);
  if (last === 0) return false;
  let limit = chainLimit(table.arena);
  for (;;) {
    a.reach(last + BUCKET_SIZE);
    const next = checkedNext(a.i32[(last + OVERFLOW) >> 2]);
    if (next === 0) break;
    before = last;
    last = next;
    if (--limit < 0) throw loops();
  }
  if (owns) freeSlots(table, last);
  tx.set((before + OVERFLOW) >> 2, 0);
  tx.free(last, overflowBytes(table.arena, last));
  tx.set(table.h + counter, a.i32[table.h + counter] - 1);
  return true;
}
