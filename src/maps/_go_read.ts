/**
 * Internal. GoMap's reads that go beyond one slot: a lookup through a codec, and iteration in
 * batches, each validated against the writer's seqlock (_go_writer.ts) as a read is.
 *
 * @module
 */

import type { Arena } from "../_engine/arena.ts";
import { isNumberSlot, keyNumberWords, Probe } from "../_engine/slots.ts";
import { ConcurrentMapWriteError } from "../errors.ts";
import type { GoAccess } from "./_go_access.ts";
import { KEY_HI, SEQ, VALUE_BYTES, VALUE_HI } from "./_go_layout.ts";
import { beginRead, readFailure, validated } from "./_go_writer.ts";
import { BatchIterator, batchLevel, type Yield } from "./_iteration.ts";

/** What {@linkcode lookup} returns for a missing key (a stored `undefined` is a value). */
export const ABSENT: unique symbol = Symbol("absent");

/**
 * The key slot of number key `key` (SameValueZero: -0 is 0, one NaN), or -1: the lookup of
 * get, getOk and has for a map whose keys use the built-in codec, made without a codec call or
 * a probe. The caller reads under the write sequence, and blames a throw on an overlapping
 * write (readFailure).
 */
export function findNumber<K, V>(s: GoAccess<K, V>, key: number): number {
  const a = s.arena;
  const words = keyNumberWords(key);
  const lo = words[0];
  const hi = words[1];
  return s.table.findWords(lo, hi, a.memo.hash(lo, hi));
}

/** {@linkcode lookup} of a number key in a map whose keys use the built-in codec. */
export function lookupNumber<K, V>(s: GoAccess<K, V>, key: number): V | typeof ABSENT {
  const a = s.arena;
  const seq = beginRead(s, "read");
  let value: unknown;
  try {
    const k = findNumber(s, key);
    if (k < 0) return validated(s, seq, ABSENT);
    value = s.numberValues && isNumberSlot(a.i32[(k >> 2) + VALUE_HI])
      ? a.f64[(k + VALUE_BYTES) >> 3]
      : s.readValue(k);
  } catch (error) {
    throw readFailure(s, seq, error);
  }
  if (Atomics.load(a.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("read");
  return s.userValues === null ? value as V : s.decodeCopy(s.userValues, value);
}

/** Looks `key` up, returning ABSENT when it is missing. */
export function lookup<K, V>(s: GoAccess<K, V>, key: K): V | typeof ABSENT {
  if (typeof key === "number" && s.numberKeys) return lookupNumber(s, key);
  // Encoded before the read begins: a user codec's encode may write the map.
  const p = s.encodeKey(key, s.nested ? new Probe() : s.probe);
  const seq = beginRead(s, "read");
  let value: unknown;
  try {
    const k = s.table.find(p);
    if (k < 0) return validated(s, seq, ABSENT);
    value = s.readValue(k);
  } catch (error) {
    throw readFailure(s, seq, error);
  }
  const read = validated(s, seq, value);
  return s.userValues === null ? read as V : s.decodeCopy(s.userValues, read);
}

/**
 * Iterates in batches. Keys are partitioned by the low `level` bits of their hash, `level`
 * taken from B at the start (_iteration.ts batchLevel); each batch is one such partition, read
 * whole and validated like a lookup, so a batch is never torn. Batches are visited once each
 * from a random start, and each is yielded from a random rotation, so a key is yielded at most
 * once however the table grows. If the map was written between reading a batch and yielding
 * one of its entries, the entry is looked up again: skipped if deleted, yielded with its
 * current value otherwise.
 *
 * A class, not a generator: no generator resumption per entry. It behaves as a generator does
 * otherwise (see BatchIterator).
 */
export class GoIterator<K, V, T> extends BatchIterator<GoAccess<K, V>, T> {
  /** The map's arena, for next()'s check of the write sequence without a call. */
  readonly #arena: Arena;
  /** The partition level, -1 until the first `next()`. */
  #level = -1;
  #start = 0;
  #rotate = 0;
  /** Partitions read so far. */
  #step = 0;
  /** The write sequence the current batch was read and validated at. */
  #seq = 0;
  /**
   * The current batch: decoded keys and values, refilled in place (they keep their capacity),
   * and the key slots it was read from.
   */
  #keys: unknown[] = [];
  #values: unknown[] = [];
  #slots: number[] = [];
  /** Entries in the current batch, and how many of them were yielded. */
  #count = 0;
  #j = 0;

  protected readonly kind = "GoMap";

  constructor(s: GoAccess<K, V>, what: Yield) {
    super(s, what);
    this.#arena = s.arena;
  }

  next(): IteratorResult<T, undefined> {
    const j = this.#j;
    const count = this.#count;
    // A write since the batch was read can only be this thread's own (another worker's would
    // have overlapped the read, or be misuse), so a plain read of the word sees it.
    if (j >= count || this.#arena.i32[SEQ] !== this.#seq) return this.readOn();
    this.#j = j + 1;
    let at = j + this.#rotate;
    if (at >= count) at %= count;
    return this.result(this.#keys[at] as K, this.#values[at] as V);
  }

  /** next() at the end of a batch, or after a write: reads batches, or looks entries up. */
  protected read(s: GoAccess<K, V>): IteratorResult<T, undefined> {
    for (;;) {
      while (this.#j < this.#count) {
        const count = this.#count;
        let at = this.#j++ + this.#rotate;
        if (at >= count) at %= count;
        const key = this.#keys[at] as K;
        if (s.arena.i32[SEQ] === this.#seq) return this.result(key, this.#values[at] as V);
        const value = lookup(s, key);
        if (value !== ABSENT) return this.result(key, value);
      }
      if (!this.#readBatch(s)) return this.finish();
    }
  }

  /** Reads the next batch, or returns false when every partition has been read. */
  #readBatch(s: GoAccess<K, V>): boolean {
    const a = s.arena;
    if (this.#level < 0) {
      this.#level = batchLevel(s.table.B);
      this.#start = Math.floor(Math.random() * (1 << this.#level));
      this.#rotate = Math.floor(Math.random() * 8);
    }
    const n = 1 << this.#level;
    if (this.#step >= n) return false;
    const i = (this.#start + this.#step++) & (n - 1);
    this.#j = 0;
    this.#count = 0;
    const seq = beginRead(s, "iteration");
    // Decoded keys and values; for a user codec, copies of its bytes until the batch is
    // validated, then decoded (see GoAccess.readValue).
    const keys = this.#keys;
    const values = this.#values;
    const slots = this.#slots;
    let count = 0;
    try {
      count = s.table.gatherKeySlots(this.#level, i, slots);
      // GoAccess.readKey's and readValue's number paths, here without a call per entry.
      const numberKeys = s.numberKeys;
      const numberValues = s.numberValues;
      const i32 = a.i32;
      const f64 = a.f64;
      for (let j = 0; j < count; j++) {
        const k = slots[j];
        keys[j] = numberKeys && isNumberSlot(i32[(k >> 2) + KEY_HI]) ? f64[k >> 3] : s.readKey(k);
        values[j] = numberValues && isNumberSlot(i32[(k >> 2) + VALUE_HI])
          ? f64[(k + VALUE_BYTES) >> 3]
          : s.readValue(k);
      }
    } catch (error) {
      throw readFailure(s, seq, error);
    }
    if (Atomics.load(a.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("iteration");
    const userKeys = s.userKeys;
    const userValues = s.userValues;
    if (userKeys !== null) {
      for (let j = 0; j < count; j++) keys[j] = s.decodeCopy(userKeys, keys[j]);
    }
    if (userValues !== null) {
      for (let j = 0; j < count; j++) values[j] = s.decodeCopy(userValues, values[j]);
    }
    this.#seq = seq;
    this.#count = count;
    return true;
  }

  protected drop(): void {
    this.#keys = [];
    this.#values = [];
    this.#count = 0;
  }
}
