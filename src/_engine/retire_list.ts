/**
 * Internal. The retire list: the block in which a participant (reclaim.ts) keeps the blocks it
 * retired and has not freed yet, each with an epoch loaded after its unlink. Its owner writes
 * that epoch lazily, at its next quiescent point or collect (Participant's #stamp); until then an
 * entry's epoch word is 0, which no stamp is, and whoever sweeps the list stamps such an entry
 * instead of freeing it. Its seat's LIST word (registry.ts) points to it. Only the seat's holder
 * (its owner, a sweeper that borrowed it, or the releaser of a seat whose owner is gone) reads
 * or writes it, with plain reads and writes.
 * Its offset, count and capacity are shared memory, read through {@linkcode listCount}, which
 * checks them before anyone indexes the list with them.
 *
 * | Word       | Holds                                             |
 * | ---------- | ------------------------------------------------- |
 * | 0          | count: the entries in use                         |
 * | 1          | capacity: the entries the block has room for      |
 * | 2 + 2j     | entry j's tag (what Participant.retire was given) |
 * | 3 + 2j     | entry j's epoch                                   |
 *
 * @module
 */

import type { Arena } from "./arena.ts";

/** Word of a retire list holding the number of entries in use. */
export const RL_COUNT = 0;
/** Word of a retire list holding the number of entries it has room for. */
export const RL_CAPACITY = 1;
/**
 * An entry's epoch until its owner stamps it (Participant's #stamp). No stamp is 0: an epoch
 * loaded as 0 is stamped 1, as it is announced. Whoever sweeps the list stamps such an entry
 * instead of freeing it.
 */
export const UNSTAMPED = 0;

/**
 * The count of the retire list at byte `list`, checked: the list is a 16-aligned block inside
 * the arena (whose views are made to cover it), and its count lies within its capacity, with
 * room for `append` more entries. Every walk of the list and every append is bounded by it,
 * so a corrupt list is a RangeError naming it instead of a walk over, or writes into,
 * whatever lies past it.
 */
export function listCount(arena: Arena, list: number, append = 0): number {
  if (!(list > 0 && (list & 15) === 0)) throw corruptList(list, "not a block offset");
  arena.reach(list + 8);
  const w = list >> 2;
  const count = arena.i32[w + RL_COUNT];
  const capacity = arena.i32[w + RL_CAPACITY];
  if (!(capacity >= 0 && count >= 0 && count <= capacity - append)) {
    throw corruptList(list, `count ${count}, capacity ${capacity}`);
  }
  arena.reach(list + listBytes(capacity));
  return count;
}

function corruptList(list: number, what: string): RangeError {
  return new RangeError(`corrupt retire list at byte ${list}: ${what}`);
}

/** Bytes of a retire list with room for `capacity` entries. */
export function listBytes(capacity: number): number {
  return 8 + 8 * capacity;
}

/** Word of entry `j`'s tag in the retire list at word `w`. */
export function tagAt(w: number, j: number): number {
  return w + 2 + 2 * j;
}

/** Word of entry `j`'s epoch in the retire list at word `w`. */
export function epochAt(w: number, j: number): number {
  return w + 3 + 2 * j;
}

/**
 * Moves entry `from` of the retire list at word `w` into place `to`: the epoch first, then the
 * tag (see Participant's #sweep for why this order).
 */
export function moveEntry(i32: Int32Array, w: number, from: number, to: number): void {
  i32[epochAt(w, to)] = i32[epochAt(w, from)];
  i32[tagAt(w, to)] = i32[tagAt(w, from)];
}

/**
 * Removes from the retire list at byte `list` the entries whose tag another entry has too: an
 * owner stopped in the middle of {@linkcode moveEntry} left one block listed twice, which would
 * be freed twice.
 */
export function dropDuplicates(arena: Arena, list: number): void {
  let n = listCount(arena, list);
  const i32 = arena.i32;
  const w = list >> 2;
  const seen = new Set<number>();
  for (let j = n - 1; j >= 0; j--) {
    const tag = i32[tagAt(w, j)];
    if (!seen.has(tag)) {
      seen.add(tag);
      continue;
    }
    // Stopped here, this leaves at worst another duplicate for the next repair.
    n--;
    moveEntry(i32, w, n, j);
    i32[w + RL_COUNT] = n;
  }
}
