/**
 * Internal. Growth of a table (table.ts), as Go grows a map: a bigger (or same-size) bucket array,
 * and the incremental evacuation of the old one, an old bucket (and its chain) at a time, as
 * writes touch them.
 *
 * Growth follows Go. An insert that would take the count past 6.5 keys a bucket (and past 8)
 * doubles the array; one that finds as many overflow buckets as buckets grows to the same size,
 * which compacts chains left sparse by deletes. Growth is incremental: the old array stays, every
 * write evacuates the old bucket it touches plus the next unevacuated one, and lookups read an
 * old bucket until it is evacuated. Invariant: a key lives either in an unevacuated old bucket
 * or in the new array, never both, and a new bucket receives keys only after its old bucket is
 * evacuated (so it is empty until then). Deletes never shrink the array.
 *
 * @module
 */

import { MapFullError } from "../errors.ts";
import { hashStored } from "./slots.ts";
import {
  allocOverflow,
  chainLimit,
  checkedNext,
  evacuated,
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
  EVACUATED_EMPTY,
  EVACUATED_X,
  EVACUATED_Y,
  KEYS,
  MAX_B,
  MIN_TOP_HASH,
  OVERFLOW,
  SAME_SIZE_GROW,
  T_B,
  T_BUCKETS,
  T_FLAGS,
  T_NEVACUATE,
  T_NOVERFLOW,
  T_OLDBUCKETS,
  T_OLDOVERFLOW,
  VALUE_WORDS,
} = table_layout;

/** Scratch for evacuation decisions (X or Y per slot), reused to avoid allocation. */
const sideScratch: number[] = [];

/**
 * Starts a growth: a bigger array when `bigger` (the table is over the load factor), else one of
 * the same size.
 */
export function hashGrow(table: TableView, bigger: boolean): void {
  const a = table.arena;
  const tx = table.tx;
  const h = table.h;
  const B = a.i32[h + T_B];
  const newB = bigger ? B + 1 : B;
  if (newB > MAX_B) throw new MapFullError(BUCKET_SIZE * 2 ** newB, a.maxBytes);
  const buckets = tx.alloc(BUCKET_SIZE * pow2(newB), true);
  const i32 = a.i32;
  tx.set(h + T_FLAGS, bigger ? 0 : SAME_SIZE_GROW);
  tx.set(h + T_OLDBUCKETS, i32[h + T_BUCKETS]);
  tx.set(h + T_BUCKETS, buckets);
  tx.set(h + T_B, newB);
  tx.set(h + T_NEVACUATE, 0);
  tx.set(h + T_OLDOVERFLOW, i32[h + T_NOVERFLOW]);
  tx.set(h + T_NOVERFLOW, 0);
}

/**
 * Journal entries the rest of a write may need after its growth work: the insert itself, an
 * overflow bucket, a value's blob, with room to spare.
 */
const WRITE_SPARE = 96;

/** Journal entries counted for each overflow bucket an evacuation allocates, or frees. */
const ENTRIES_PER_BUCKET = 6;

/** The overflow buckets chained to old bucket `oldbucket`, a bounded walk. */
function overflowCount(table: TableView, oldbucket: number): number {
  const a = table.arena;
  const old = a.i32[table.h + T_OLDBUCKETS];
  const ob = old + oldbucket * BUCKET_SIZE;
  let n = 0;
  let limit = chainLimit(a);
  a.reach(ob + BUCKET_SIZE);
  for (let b = checkedNext(a.i32[(ob + OVERFLOW) >> 2]); b !== 0; n++) {
    if (--limit < 0) throw loops();
    a.reach(b + BUCKET_SIZE);
    b = checkedNext(a.i32[(b + OVERFLOW) >> 2]);
  }
  return n;
}

/**
 * Evacuates the old bucket a write to `bucket` needs, then one more to make progress. The
 * second is only progress: when it finds no memory, or would leave the journal too little
 * room for the frees it defers to the commit and the rest of the write (a chain of keys
 * crafted to share a bucket), it is undone alone, and the first stands, so the write can go on
 * into its new bucket. (The growth then waits for a write to that bucket, whose own evacuation
 * it is.)
 */
export function growWork(table: TableView, bucket: number): void {
  const a = table.arena;
  evacuate(table, bucket & ((1 << oldBOf(table)) - 1));
  if (a.i32[table.h + T_OLDBUCKETS] === 0) return;
  const tx = table.tx;
  const next = a.i32[table.h + T_NEVACUATE];
  // A chain too long for the room left is not tried at all: each write would otherwise copy it
  // and roll the copy back. (Its buckets' allocations and frees, counted alike.)
  if (!tx.hasRoom(WRITE_SPARE + 2 * ENTRIES_PER_BUCKET * overflowCount(table, next))) return;
  const point = tx.savepoint();
  try {
    evacuate(table, next);
    if (!tx.hasRoom(WRITE_SPARE)) tx.rollbackTo(point);
  } catch (error) {
    if (!(error instanceof MapFullError)) throw error;
    tx.rollbackTo(point);
  }
}

/**
 * Moves old bucket `oldbucket` and its chain into the new array. Its destinations are empty
 * (invariant), so one ZERO journal entry each covers every write into them; overflow buckets
 * it adds are fresh blocks.
 */
function evacuate(table: TableView, oldbucket: number): void {
  const a = table.arena;
  const tx = table.tx;
  const h = table.h;
  const old = a.i32[h + T_OLDBUCKETS];
  const oldB = oldBOf(table);
  const newbit = 1 << oldB;
  // nevacuate, the bucket a growth step evacuates, is read from shared memory: past the old
  // array (written from outside), the step would write evacuation marks beyond it.
  if (!(oldbucket >= 0 && oldbucket < newbit)) {
    throw new RangeError(`corrupt table: old bucket ${oldbucket} of ${newbit} to evacuate`);
  }
  const sameSize = (a.i32[h + T_FLAGS] & SAME_SIZE_GROW) !== 0;
  const ob = old + oldbucket * BUCKET_SIZE;
  if (!evacuated(table.arena, ob)) {
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
    let added = 0; // overflow buckets chained to the destinations
    const sides = sideScratch;
    let n = 0;
    let limit = chainLimit(table.arena);
    for (let b = ob; b !== 0; b = checkedNext(a.i32[(b + OVERFLOW) >> 2])) {
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
          const hash = hashStored(a, a.i32[k >> 2], a.i32[(k >> 2) + 1]);
          useY = (hash & newbit) !== 0;
        }
        sides[n++] = useY ? EVACUATED_Y : EVACUATED_X;
        let db: number; // destination bucket and slot
        let di: number;
        if (useY) {
          if (yi === BUCKET_SLOTS) {
            yb = chainFresh(table, yb);
            added++;
            yi = 0;
          }
          db = yb;
          di = yi++;
        } else {
          if (xi === BUCKET_SLOTS) {
            xb = chainFresh(table, xb);
            added++;
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
    // Mark the old bucket's slots with where their keys went (its first mark is what says it
    // is evacuated), and free its overflow chain at commit. The chain's buckets keep no marks:
    // they are freed, and only a reader validated against the write sequence still reads them.
    // Each count is written once, so that a chain costs its journal one entry per bucket freed
    // and one per bucket allocated, plus the allocator's own: crafted keys make chains long.
    tx.set(ob >> 2, sides[0] | sides[1] << 8 | sides[2] << 16 | sides[3] << 24);
    tx.set((ob >> 2) + 1, sides[4] | sides[5] << 8 | sides[6] << 16 | sides[7] << 24);
    let freed = 0;
    for (let b = checkedNext(a.i32[(ob + OVERFLOW) >> 2]); b !== 0; freed++) {
      const next = checkedNext(a.i32[(b + OVERFLOW) >> 2]);
      tx.free(b, overflowBytes(table.arena, b));
      b = next;
    }
    tx.set((ob + OVERFLOW) >> 2, 0);
    if (freed !== 0) tx.set(h + T_OLDOVERFLOW, a.i32[h + T_OLDOVERFLOW] - freed);
    if (added !== 0) tx.set(h + T_NOVERFLOW, a.i32[h + T_NOVERFLOW] + added);
  }
  if (oldbucket === a.i32[h + T_NEVACUATE]) advanceEvacuationMark(table, newbit);
}

/**
 * Chains a new overflow bucket after destination bucket `b` and returns it. The link is a plain
 * write: `b` is a destination this evacuation made empty (covered by its ZERO entry) or a bucket
 * it allocated (freed by a rollback). The caller counts the buckets it adds.
 */
function chainFresh(table: TableView, b: number): number {
  const overflow = allocOverflow(table);
  table.arena.i32[(b + OVERFLOW) >> 2] = overflow;
  return overflow;
}

function advanceEvacuationMark(table: TableView, newbit: number): void {
  const a = table.arena;
  const tx = table.tx;
  const h = table.h;
  let n = a.i32[h + T_NEVACUATE] + 1;
  // Skip buckets already evacuated out of order, but bound the work (as Go does).
  const stop = Math.min(n + 1024, newbit);
  const old = a.i32[h + T_OLDBUCKETS];
  while (n !== stop && evacuated(table.arena, old + n * BUCKET_SIZE)) n++;
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
 * Evacuates the first old bucket not yet evacuated (the evacuation mark's), moving the mark on;
 * the last one ends the growth and frees the old array. One step of {@linkcode finishGrowth}, for
 * a writer that finishes a growth a transaction at a time (GoMap's set short of memory).
 */
export function evacuateNext(table: TableView): void {
  evacuate(table, table.arena.i32[table.h + T_NEVACUATE]);
}

/**
 * Finishes any growth under way by evacuating every remaining old bucket, in one mutation: for
 * tests that want a settled layout. (Nothing in the maps calls it: a large table's remaining
 * evacuations would overflow a journal.)
 */
export function finishGrowth(table: TableView): void {
  const a = table.arena;
  let limit = chainLimit(table.arena) + 1;
  while (a.i32[table.h + T_OLDBUCKETS] !== 0) {
    evacuateNext(table);
    if (--limit < 0) throw loops();
  }
}
