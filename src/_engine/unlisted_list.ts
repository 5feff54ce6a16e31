/**
 * Internal. The unlisted list: where a step under a lock records, in shared memory, the blocks it
 * allocates with no FREE entry in its journal (tx.ts LockedTx.allocUnlisted: a dirty-table
 * build's overflow buckets, thousands for a large table, more than a journal holds), so that a
 * rollback after its holder's death gives them back with no sweep of the whole map.
 *
 * The list is one heap block, named by a word of the structure's root (SyncMap: R_UNLISTED),
 * which only the lock's holder writes:
 *
 * | word       | meaning                                        |
 * | ---------- | ---------------------------------------------- |
 * | 0          | pairs in use                                   |
 * | 1          | the block's bytes, as allocated                |
 * | 2 + 2i     | pair i: a block's offset                       |
 * | 3 + 2i     | pair i: its bytes, as allocated                |
 *
 * Each write is part of an allocator step (allocator.ts underLock), so that a death anywhere
 * leaves the list and the allocator agreeing: the list is allocated and named in one step
 * ({@linkcode newUnlistedList}: a death after it leaves an empty list, freed as any); a block
 * is allocated and appended in one step (its pair written past the count, then the count
 * through the allocator's journal: {@linkcode listUnlisted}); and each is freed in a step that
 * also lowers the count, the list last with the root word ({@linkcode freeListed}), so that
 * freeing can be cut short and done again. At its commit the
 * step drops the list through its own journal (the root word cleared, the block freed when the
 * commit can no longer be rolled back), and the blocks listed stay its table's.
 *
 * Who frees: the step's own rollback, alive (SyncCore.locked), or the recovery of its dead
 * holder, after the journal's rollback, which may write into the listed blocks (an overflow link
 * of the step's own insert) and restores the root word if the step had dropped the list.
 *
 * @module
 */

import { allocateAtLeast, grantedBytes, lockedRelease } from "./allocator.ts";
import type { Arena } from "./arena.ts";
import type { Journal } from "./journal.ts";

const U_COUNT = 0;
const U_BYTES = 1;
const U_PAIRS = 2;

/**
 * Allocates a list with room for `capacity` pairs and names it in root word `word`, in the
 * allocator step of journal `j`. Returns its offset.
 */
export function newUnlistedList(arena: Arena, word: number, capacity: number, j: Journal): number {
  const list = allocateAtLeast(arena, 4 * (U_PAIRS + 2 * capacity), true, j);
  arena.i32[(list >> 2) + U_BYTES] = grantedBytes; // fresh memory: freed if the step rolls back
  j.set(word, list);
  return list;
}

/**
 * Appends block `offset` of `size` bytes, just allocated in the allocator step of journal `j`,
 * to list `list`, which the caller found with room ({@linkcode unlistedHasRoom}) before it took
 * the block: a block taken for a list with none would be recorded nowhere.
 */
export function listUnlisted(
  arena: Arena,
  list: number,
  offset: number,
  size: number,
  j: Journal,
): void {
  const i32 = arena.i32;
  const w = list >> 2;
  const n = i32[w + U_COUNT];
  i32[w + U_PAIRS + 2 * n] = offset; // past the count: no entry needed
  i32[w + U_PAIRS + 2 * n + 1] = size;
  j.set(w + U_COUNT, n + 1);
}

/** Whether list `list` has room for another pair. */
export function unlistedHasRoom(arena: Arena, list: number): boolean {
  const w = list >> 2;
  return U_PAIRS + 2 * (arena.i32[w + U_COUNT] + 1) <= arena.i32[w + U_BYTES] >> 2;
}

/**
 * Frees every block the list in root word `word` names, newest first, each in an allocator step
 * that lowers the count, then the list itself with the root word cleared. Nothing when the word
 * is 0. Throws RangeError, having freed nothing more, at a list or pair that is not one.
 */
export function freeListed(arena: Arena, word: number): void {
  const list = arena.i32[word];
  if (list === 0) return;
  arena.reachTop();
  const bytes = arena.bytes;
  const w = list >> 2;
  if ((list & 15) !== 0 || list < 0 || list + 4 * U_PAIRS > bytes) {
    throw new RangeError(`corrupt unlisted list: offset ${list} at word ${word}`);
  }
  const size = arena.i32[w + U_BYTES];
  if (!(size >= 4 * U_PAIRS && list + size <= bytes)) {
    throw new RangeError(`corrupt unlisted list at ${list}: ${size} bytes`);
  }
  for (let n = arena.i32[w + U_COUNT]; n > 0; n = arena.i32[w + U_COUNT]) {
    const at = w + U_PAIRS + 2 * (n - 1);
    const offset = arena.i32[at];
    const bytesOf = arena.i32[at + 1];
    if (
      U_PAIRS + 2 * n > size >> 2 || (offset & 15) !== 0 || offset <= 0 || bytesOf <= 0 ||
      offset + bytesOf > bytes
    ) throw new RangeError(`corrupt unlisted list at ${list}: pair ${n - 1}`);
    lockedRelease(arena, offset, bytesOf, [w + U_COUNT, n - 1]);
  }
  lockedRelease(arena, list, size, [word, 0]);
}

/** The bytes of list `list`, as allocated (for its free at the step's commit). */
export function unlistedListBytes(arena: Arena, list: number): number {
  return arena.i32[(list >> 2) + U_BYTES];
}
