/**
 * Internal. What GoMap's and SyncMap's iterators share: the size of their batches, and a base
 * class that gives an iterator object what a generator's has.
 *
 * @module
 */

/**
 * log2 of the buckets a batch spans when the table has at least that many: 16 buckets, about
 * 50 to 100 keys. A batch costs a fixed amount (SyncMap: a participant's enter and a read of
 * the root; GoMap: a validation against the seqlock), which a few keys a batch do not pay back;
 * and it is decoded whole before any of it is yielded, so it should stay small.
 */
const BATCH_BUCKETS_LOG = 4;

/**
 * The partition level of an iteration over a table of 2^`B` buckets: its keys are split by the
 * low bits of their hash into 2^level batches of about 2^{@linkcode BATCH_BUCKETS_LOG} buckets
 * each. Any level is correct (table_iter.ts gatherKeySlots reads a partition at any level from a
 * table of any size); this one only sets the batch size.
 */
export function batchLevel(B: number): number {
  return B > BATCH_BUCKETS_LOG ? B - BATCH_BUCKETS_LOG : 0;
}

/** %IteratorPrototype%, which the iterators of generators, arrays and Maps inherit from. */
const iteratorPrototype: object = Object.getPrototypeOf(
  Object.getPrototypeOf([][Symbol.iterator]()),
);

/**
 * A base class whose instances inherit %IteratorPrototype%, as a generator's do: iterator
 * helpers (`map`, `filter`, `toArray`, ...) where the runtime has them, and
 * `[Symbol.iterator]() { return this; }`. A class iterator, unlike a generator, costs no
 * generator resumption per entry.
 */
export const IteratorBase = function IteratorBase() {} as unknown as new () => object;
IteratorBase.prototype = iteratorPrototype;

/** What an iterator of either map yields: [key, value] pairs, keys or values. */
export type Yield = typeof ENTRIES | typeof KEYS | typeof VALUES;
export const ENTRIES = 0;
export const KEYS = 1;
export const VALUES = 2;
