/**
 * Internal. What GoMap's and SyncMap's iterators share: the size of their batches, and base
 * classes that give an iterator object what a generator's has.
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

/**
 * What GoMap's and SyncMap's iterators share, over the access `S` of one map object: like a
 * generator's, an iterator starts on its first `next()`, is done for good once it has finished,
 * thrown or been returned, and throws a TypeError when `next()` or `return()` is called from
 * inside its own `next()` (a user codec's decode may call anything). A subclass yields from
 * its current batch in `next()` and, when that is used up, returns {@linkcode readOn}, which
 * runs its {@linkcode read} under those rules.
 */
export abstract class BatchIterator<S, T> extends IteratorBase implements IterableIterator<T> {
  /** The map; null once done. */
  #s: S | null;
  /**
   * What this iterator yields. A subclass decodes only what it yields (a key it must look
   * up again is read all the same): `keys()` runs no value codec, `values()` no key codec
   * where it can, so a value its codec cannot decode does not stop a walk of the keys.
   */
  protected readonly yields: Yield;
  /** Inside {@linkcode read}. */
  #running = false;

  constructor(s: S, what: Yield) {
    super();
    this.#s = s;
    this.yields = what;
  }

  /** "GoMap" or "SyncMap", for errors and the string tag. */
  protected abstract readonly kind: string;

  abstract next(): IteratorResult<T, undefined>;

  /** The result that yields the entry (`key`, `value`) as this iterator yields it. */
  protected result(key: unknown, value: unknown): IteratorResult<T, undefined> {
    const what = this.yields;
    return {
      value: (what === ENTRIES ? [key, value] : what === KEYS ? key : value) as T,
      done: false,
    };
  }

  /**
   * The rest of `next()`, once the current batch is used up (or, for GoMap, stale): reads on
   * from `s` and returns the next result, or {@linkcode finish}'s.
   */
  protected abstract read(s: S): IteratorResult<T, undefined>;

  /** Lets go of the current batch, once done. */
  protected abstract drop(): void;

  /** {@linkcode read}, guarded: done once done, and done for good if it throws. */
  protected readOn(): IteratorResult<T, undefined> {
    const s = this.#s;
    if (s === null) return { value: undefined, done: true };
    if (this.#running) {
      throw new TypeError(`${this.kind} iterator: next() called from inside next()`);
    }
    this.#running = true;
    try {
      return this.read(s);
    } catch (error) {
      this.finish();
      throw error;
    } finally {
      this.#running = false;
    }
  }

  /**
   * Ends the iteration (a `for...of` calls it on `break`), as a generator's return does; like
   * it, throws a TypeError when called from inside `next()`.
   */
  return(value?: undefined): IteratorResult<T, undefined> {
    if (this.#running) {
      throw new TypeError(`${this.kind} iterator: return() called from inside next()`);
    }
    this.finish();
    return { value, done: true };
  }

  /** Done for good: every later next() returns done. */
  protected finish(): IteratorResult<T, undefined> {
    this.#s = null;
    this.drop();
    return { value: undefined, done: true };
  }

  [Symbol.iterator](): this {
    return this;
  }

  get [Symbol.toStringTag](): string {
    return `${this.kind} Iterator`;
  }
}
