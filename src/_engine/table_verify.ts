/**
 * Internal. The shape of a table (table.ts), for stats(), and the check of its invariants, for
 * verify() and the tests.
 *
 * @module
 */

import type { GoMapStats } from "../maps/go_map.ts";
import { hashStored, sameStored } from "./slots.ts";
import { inViews } from "./arena.ts";
import {
  chainLimit,
  evacuated,
  oldBOf,
  overflowBytes,
  readHeader,
  type TableView,
  tophash,
} from "./table_layout.ts";
import * as table_layout from "./table_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const {
  BUCKET_SIZE,
  BUCKET_SLOTS,
  EMPTY_ONE,
  EMPTY_REST,
  KEYS,
  MAX_B,
  MIN_TOP_HASH,
  OVERFLOW,
  SAME_SIZE_GROW,
} = table_layout;

/** What {@linkcode stats} reports: the fields of GoMap.stats() that the table alone knows. */
export type TableStats = Omit<GoMapStats, "bytesUsed" | "bytesReserved">;

/** Shape and growth state, for stats() and tests. */
export function stats(table: TableView): TableStats {
  const hd = readHeader(table);
  return {
    count: hd.count,
    B: hd.B,
    buckets: 1 << hd.B,
    overflowBuckets: hd.noverflow + hd.oldoverflow,
    growing: hd.oldbuckets !== 0,
    sameSizeGrow: (hd.flags & SAME_SIZE_GROW) !== 0,
    nevacuate: hd.nevacuate,
  };
}

/**
 * Calls `block(offset, bytes)` for every block the table itself owns (bucket arrays and
 * overflow buckets) and `slot(keySlot)` for every live key, checking the table's invariants
 * on the way: header words in range, chains that end, counts that match, tophash marks, and
 * keys in the right buckets. Throws a RangeError naming the first broken one. With `keys`
 * false, keys are not rehashed (a retired SyncMap table's keys may point at freed blobs).
 */
export function verify(
  table: TableView,
  block: (offset: number, bytes: number) => void,
  slot: (keySlot: number) => void,
  keys = true,
): void {
  const a = table.arena;
  // The whole buffer, once: every offset below is checked against it before it is read.
  a.reach(a.buffer.byteLength);
  const i32 = a.i32;
  const hd = readHeader(table);
  const fail = (what: string): never => {
    throw new RangeError(`verify: table at ${table.h << 2}: ${what}`);
  };
  const B = hd.B;
  if (B < 0 || B > MAX_B) fail(`B is ${B}`);
  const buckets = hd.buckets;
  const n = 1 << B;
  if (!inViews(a, buckets, n * BUCKET_SIZE)) fail(`bucket array at ${buckets} is out of range`);
  block(buckets, n * BUCKET_SIZE);
  let live = 0;
  let overflow = 0;
  // The slots of the chain being walked by their keys' hashes: no key may be in two slots (a
  // key's chain is the only place it can be, so this finds every key stored twice). A key is
  // compared only with the keys of its own hash, not with the whole chain (a chain of colliding
  // keys may be long), and no text is made of it: a text of each key, the Map's key before,
  // made V8 compare every long key of a chain with every other (past 16,383 characters it hashes
  // a string by its length alone), and a verify of 20,000 keys of 10,000 units took 440 s on Deno
  // (helper-174). Keys that share a keyed 32-bit hash cannot be made without the map's key.
  const seen = new Map<number, number[]>();
  const walk = (first: number, check: (hash: number) => boolean, mask: number): void => {
    let sawEmptyRest = false;
    let limit = chainLimit(a);
    seen.clear();
    for (let b = first; b !== 0; b = i32[(b + OVERFLOW) >> 2]) {
      if (b !== first) {
        if (!inViews(a, b, BUCKET_SIZE)) fail(`an overflow link (${b}) lies outside the heap`);
        block(b, overflowBytes(a, b));
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
          const lo = i32[k >> 2];
          const hi = i32[(k >> 2) + 1];
          const hash = hashStored(a, lo, hi);
          if (tophash(hash) !== t) fail(`bucket ${b} slot ${i}: tophash does not match its key`);
          if (!check(hash)) fail(`bucket ${b} slot ${i}: key in the wrong bucket`);
          const same = seen.get(hash);
          let other: number | undefined;
          if (same === undefined) {
            seen.set(hash, [k]);
          } else {
            other = same.find((k2) =>
              k2 === k || sameStored(a, lo, hi, i32[k2 >> 2], i32[(k2 >> 2) + 1])
            );
            same.push(k);
          }
          if (other === k) fail("an overflow chain loops"); // the walk came round to this slot
          if (other !== undefined) {
            fail(`bucket ${b} slot ${i}: its key is also in the slot at ${other}`);
          }
        }
        live++;
        slot(k);
      }
    }
  };
  for (let j = 0; j < n; j++) {
    walk(buckets + j * BUCKET_SIZE, (hash) => (hash & (n - 1)) === j, 1);
  }
  const old = hd.oldbuckets;
  if (old === 0) {
    // The step that ends a growth clears both with the old array (table_grow.ts): left set,
    // they would misreport the table (stats) and skew the next growth's counts.
    if ((hd.flags & SAME_SIZE_GROW) !== 0) {
      fail("a table that is not growing is flagged SAME_SIZE_GROW");
    }
    if (hd.oldoverflow !== 0) {
      fail(`a table that is not growing counts ${hd.oldoverflow} old overflow buckets`);
    }
  } else {
    const oldB = oldBOf(table);
    const on = 1 << oldB;
    if (oldB < 0 || !inViews(a, old, on * BUCKET_SIZE)) {
      fail(`old bucket array at ${old} is out of range`);
    }
    block(old, on * BUCKET_SIZE);
    // Below `on`: the step that evacuates the last old bucket also drops the old array.
    const nev = hd.nevacuate;
    if (nev < 0 || nev >= on) fail(`nevacuate ${nev} out of range for ${on} old buckets`);
    let oldOverflow = 0;
    for (let j = 0; j < on; j++) {
      const ob = old + j * BUCKET_SIZE;
      if (evacuated(table.arena, ob)) {
        if (i32[(ob + OVERFLOW) >> 2] !== 0) fail(`evacuated old bucket ${j} keeps a chain`);
        continue;
      }
      if (j < nev) fail(`old bucket ${j} is below nevacuate but not evacuated`);
      // Its destinations must still be empty.
      const same = (hd.flags & SAME_SIZE_GROW) !== 0;
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
    if (oldOverflow !== hd.oldoverflow) {
      fail(`old overflow count ${hd.oldoverflow} but ${oldOverflow} found`);
    }
  }
  if (overflow !== hd.noverflow) {
    fail(`overflow count ${hd.noverflow} but ${overflow} found`);
  }
  if (live !== hd.count) fail(`count ${hd.count} but ${live} keys found`);
}
