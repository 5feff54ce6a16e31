/**
 * Internal. The layout of a table (table.ts): its header words, its buckets, the tophash marks,
 * and the small steps on them that the table's parts share.
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
 * which promises that the rest of the bucket and its overflow chain are empty. The key and value
 * words of a slot whose mark is below {@linkcode MIN_TOP_HASH} (empty or evacuated) are never
 * read, and hold whatever they last held: a delete writes only the mark.
 *
 * @module
 */

import { grantedBytes } from "./allocator.ts";
import type { Arena } from "./arena.ts";
import * as arena_module from "./arena.ts";
import { blobSize, isBlob } from "./slots.ts";
import type { Tx } from "./tx.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { HEADER_BYTES } = arena_module;

/** Header word: live keys. */
export const T_COUNT = 0;
export const T_FLAGS = 1;
export const T_B = 2;
export const T_NOVERFLOW = 3;
export const T_BUCKETS = 4;
export const T_OLDBUCKETS = 5;
export const T_NEVACUATE = 6;
export const T_OLDOVERFLOW = 7;
/** Words in a table header. */
export const TABLE_WORDS = 8;

/** Flag: the current growth keeps the bucket count (it compacts overflow chains). */
export const SAME_SIZE_GROW = 1;

/** Bytes in a bucket. */
export const BUCKET_SIZE = 144;
/** Slots in a bucket. */
export const BUCKET_SLOTS = 8;
/** Byte offset of the key slots in a bucket. */
export const KEYS = 8;
/** Word distance from a key slot to its value slot: eight 8-byte key slots. */
export const VALUE_WORDS = 16;
/** Byte offset of the overflow link in a bucket. */
export const OVERFLOW = 136;
/**
 * Byte offset, in an overflow bucket, of the size of its block: a full arena may serve a bucket
 * from a larger size class (allocator.ts allocateAtLeast), and it is freed with that size. 0
 * (never written) in a bucket of an array.
 */
export const BLOCK_BYTES = 140;
/** The largest B: a bucket array of 144 * 2^B bytes must fit a 1 GiB arena. */
export const MAX_B = 22;
/**
 * The longest chain, in buckets, an insert extends while the table cannot grow for want of
 * memory. Evacuating a chain journals about five entries per bucket, and a step evacuates two.
 */
export const FULL_CHAIN_MAX = 8;

/**
 * The marks a tophash byte holds in place of a live key's tophash:
 *
 * - EMPTY_REST: this slot and every later one, in this bucket and its overflow chain, are empty.
 * - EMPTY_ONE: this slot is empty.
 * - EVACUATED_X, EVACUATED_Y: evacuated to the first, or the second, half of the bigger array.
 * - EVACUATED_EMPTY: was empty when its bucket was evacuated.
 */
export const EMPTY_REST = 0, EMPTY_ONE = 1, EVACUATED_X = 2, EVACUATED_Y = 3, EVACUATED_EMPTY = 4;
/** The smallest tophash of a live key. */
export const MIN_TOP_HASH = 5;

export const LOAD_FACTOR = 6.5;

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

/** The most keys a table of 2^`b` buckets holds without growing: {@linkcode bucketsForHint}'s inverse. */
export function keysWithoutGrowth(b: number): number {
  const keys = Math.floor(LOAD_FACTOR * pow2(b));
  return keys > BUCKET_SLOTS ? keys : BUCKET_SLOTS;
}

/** Bytes of the bucket array of a table sized for `hint` keys (no shift: no wrap). */
export function bucketBytesForHint(hint: number): number {
  return BUCKET_SIZE * pow2(bucketsForHint(hint));
}

/**
 * 2^`n`, for an integer `n`. A shift while the result fits in 31 bits: V8 compiles `2 ** n` with
 * a variable `n` to a call of its pow function, about 20 ns on Deno, and inserts, deletes and
 * table sizing compute one or two of these each.
 */
export function pow2(n: number): number {
  return n >>> 0 <= 30 ? 1 << n : 2 ** n;
}

/** Whether `count` keys in 2^`b` buckets are over the load factor. */
export function overLoadFactor(count: number, b: number): boolean {
  return count > BUCKET_SLOTS && count > LOAD_FACTOR * pow2(b);
}

/** Frees whatever a deleted or cleared key's value slot owns. */
export type FreeValue = (lo: number, hi: number, tx: Tx) => void;

/**
 * What the table's parts (table_grow.ts, table_clear.ts, table_iter.ts, table_verify.ts) see of
 * a Table (table.ts): where it is, how its slots are owned, and the transaction it writes
 * through.
 */
export interface TableView {
  readonly arena: Arena;
  /** Word index of the header. */
  readonly h: number;
  readonly ownsKeys: boolean;
  readonly freeValue: FreeValue;
  readonly tx: Tx;
}

/** A table header's words, named as Go's hmap names them, as {@linkcode readHeader} reads them. */
export interface TableHeader {
  count: number;
  flags: number;
  B: number;
  noverflow: number;
  buckets: number;
  oldbuckets: number;
  nevacuate: number;
  oldoverflow: number;
}

/** The header words of `table`, read plainly (for stats() and verify(), not for lookups). */
export function readHeader(table: TableView): TableHeader {
  const i32 = table.arena.i32;
  const h = table.h;
  return {
    count: i32[h + T_COUNT],
    flags: i32[h + T_FLAGS],
    B: i32[h + T_B],
    noverflow: i32[h + T_NOVERFLOW],
    buckets: i32[h + T_BUCKETS],
    oldbuckets: i32[h + T_OLDBUCKETS],
    nevacuate: i32[h + T_NEVACUATE],
    oldoverflow: i32[h + T_OLDOVERFLOW],
  };
}

/**
 * Throws a RangeError unless the table's bucket arrays (the current one, and the old one while
 * it grows) lie in the heap: above the arena's header, 16-byte aligned, and inside the buffer.
 * Every bucket address a walk derives from them is then a heap address; called before a walk
 * that writes what it finds (an insert, a delete, a clear step, a gather whose caller writes the
 * entries it names), so that a corrupt header is an error and never a write into the arena's
 * own words. Plain reads and compares, and the views' length (reach throws past the buffer).
 */
export function checkBucketArrays(table: TableView): void {
  const a = table.arena;
  const i32 = a.i32;
  const h = table.h;
  const B = i32[h + T_B];
  // The common case written out (a table not growing, its array inside the views): plain
  // compares, no call (JavaScriptCore did not inline inHeap's: 6% of a GoMap churn on Bun).
  const at = i32[h + T_BUCKETS];
  if (
    B >= 0 && B <= 30 && at >= HEADER_BYTES && (at & 15) === 0 &&
    at + BUCKET_SIZE * (1 << B) <= a.bytes && i32[h + T_OLDBUCKETS] === 0
  ) return;
  if (B >= 0 && B <= 30 && inHeap(a, i32[h + T_BUCKETS], BUCKET_SIZE * pow2(B))) {
    const old = i32[h + T_OLDBUCKETS];
    if (old === 0) return;
    const oldB = oldBOf(table);
    if (oldB >= 0 && inHeap(a, old, BUCKET_SIZE * pow2(oldB))) return;
  }
  throw new RangeError(`corrupt table at ${h << 2}: its bucket arrays lie outside the heap`);
}

/** Whether `bytes` at `at` lie in the heap, aligned as every block is (see checkBucketArrays). */
function inHeap(a: Arena, at: number, bytes: number): boolean {
  if (at < HEADER_BYTES || (at & 15) !== 0) return false;
  a.reach(at + bytes);
  return true;
}

/**
 * `b`, the next bucket of a chain (an overflow pointer read from shared memory), or a
 * RangeError when it is not 0 and not a heap address: a walk that writes never follows a
 * corrupt pointer into the arena's header. (Past the buffer, the walk's reach throws.)
 */
export function checkedNext(b: number): number {
  if (b !== 0 && (b < HEADER_BYTES || (b & 15) !== 0)) {
    throw new RangeError(`corrupt table: an overflow pointer (${b}) lies outside the heap`);
  }
  return b;
}

/**
 * The most buckets any chain may have: more means the chain loops. Every bucket lies below the
 * heap's top, which the caller's synchronisation (a lock, or the atomic publication of the table
 * or of its retirement) has made visible to a plain read; the views are made to cover it first,
 * so the bound is the views' length, a plain field. (The buffer's byteLength is a call into the
 * runtime for a growable buffer, 18 ns on Deno: reading it here cost a table's destroy, each
 * old bucket's evacuation and each iteration batch that much.)
 */
export function chainLimit(arena: Arena): number {
  arena.reachTop();
  return arena.bytes / BUCKET_SIZE;
}

/** The B of the old bucket array while the table grows. */
export function oldBOf(table: TableView): number {
  const i32 = table.arena.i32;
  return i32[table.h + T_B] - ((i32[table.h + T_FLAGS] & SAME_SIZE_GROW) !== 0 ? 0 : 1);
}

/** Whether old bucket `b` has been evacuated (its first tophash byte is an EVACUATED mark). */
export function evacuated(arena: Arena, b: number): boolean {
  arena.reach(b + BUCKET_SIZE);
  const t = arena.u8[b];
  return t > EMPTY_ONE && t < MIN_TOP_HASH;
}

/**
 * Allocates a zeroed overflow bucket, and records its block's size in it; `unlisted`: with
 * nothing recorded for a rollback (Tx.allocUnlisted), where the transaction has the way.
 */
export function allocOverflow(table: TableView, unlisted = false): number {
  const tx = table.tx;
  const overflow = unlisted && tx.allocUnlisted !== undefined
    ? tx.allocUnlisted(BUCKET_SIZE)
    : tx.allocAtLeast(BUCKET_SIZE, true);
  // A plain write: the block is this mutation's own (a rollback frees it).
  table.arena.i32[(overflow + BLOCK_BYTES) >> 2] = grantedBytes;
  return overflow;
}

/** Bytes of the block of overflow bucket `b`, to free it with. */
export function overflowBytes(arena: Arena, b: number): number {
  const bytes = arena.i32[(b + BLOCK_BYTES) >> 2];
  return bytes === 0 ? BUCKET_SIZE : bytes;
}

/** Chains a new overflow bucket after bucket `b` and counts it; returns it. */
export function newOverflow(table: TableView, b: number): number {
  const a = table.arena;
  const overflow = allocOverflow(table);
  table.tx.set((b + OVERFLOW) >> 2, overflow);
  table.tx.set(table.h + T_NOVERFLOW, a.i32[table.h + T_NOVERFLOW] + 1);
  return overflow;
}

/** Frees the blob of a key stored as the slot words (lo, hi), if it has one. */
export function freeBlob(table: TableView, lo: number, hi: number): void {
  if (isBlob(hi)) table.tx.free(lo, blobSize(table.arena, lo, hi));
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
export const CHAIN_CHECK = 64;

/** The error for an overflow chain that loops. */
export function loops(): RangeError {
  return new RangeError("corrupt table: an overflow chain loops");
}
