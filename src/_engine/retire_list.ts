/**
 * Internal. The retire list: the block in which a participant (reclaim.ts) keeps the blocks it
 * retired and has not freed yet, each with the epoch read after its unlink. Its slot's LIST word
 * (registry.ts) points to it. Only the slot's holder (its owner, a sweeper that borrowed it, or
 * the releaser of a slot whose owner is gone) reads or writes it, with plain reads and writes.
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

/**
 * Moves entry `from` of the retire list at word `w` into place `to`: the epoch first, then the
 * tag (see Participant's #sweep for why this order).
 */
export function moveEntry(i32: Int32Array, w: number, from: number, to: number): void {
  i32[w + 3 + 2 * to] = i32[w + 3 + 2 * from];
  i32[w + 2 + 2 * to] = i32[w + 2 + 2 * from];
}
