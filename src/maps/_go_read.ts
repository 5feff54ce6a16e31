/**
 * Internal. GoMap's reads that go beyond one slot: a lookup through a codec, and iteration in
 * batches, each validated against the writer's seqlock (_go_writer.ts) as a read is.
 *
 * @module
 */

import { Probe } from "../_engine/slots.ts";
import { ConcurrentMapWriteError } from "../errors.ts";
import type { GoAccess } from "./_go_access.ts";
import { SEQ } from "./_go_layout.ts";
import { readerBlocked, readFailure, validated } from "./_go_writer.ts";

/** What {@linkcode lookup} returns for a missing key (a stored `undefined` is a value). */
export const ABSENT: unique symbol = Symbol("absent");

/** Looks `key` up, returning ABSENT when it is missing. */
export function lookup<K, V>(s: GoAccess<K, V>, key: K): V | typeof ABSENT {
  const a = s.arena;
  // Encoded before the read begins: a user codec's encode may write the map.
  const p = s.encodeKey(key, s.nested ? new Probe() : s.probe);
  let seq = a.i32[SEQ];
  if ((seq & 1) !== 0) seq = readerBlocked(s, seq, "read");
  let value: unknown;
  try {
    const k = s.table.find(p);
    if (k < 0) return validated(s, seq, ABSENT);
    value = s.readValue(k);
  } catch (error) {
    throw readFailure(s, seq, error);
  }
  if (Atomics.load(a.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("read");
  return s.userValues === null ? value as V : s.decodeCopy(s.userValues, value);
}

/**
 * Iterates in batches. Keys are partitioned by the low `level` bits of their hash, `level`
 * being B at the start; each batch is one such logical bucket, read whole and validated like a
 * lookup, so a batch is never torn. Batches are visited once each from a random start, so a
 * key is yielded at most once however the table grows. If the map was written between reading
 * a batch and yielding one of its entries, the entry is looked up again: skipped if deleted,
 * yielded with its current value otherwise.
 */
export function* iterate<K, V>(s: GoAccess<K, V>): Generator<[K, V], undefined, undefined> {
  const a = s.arena;
  const level = s.table.B;
  const n = 1 << level;
  const start = Math.floor(Math.random() * n);
  const rotate = Math.floor(Math.random() * 8);
  // Decoded keys and values; for a user codec, copies of its bytes until the batch is
  // validated, then decoded (see GoAccess.readValue).
  const keys: unknown[] = [];
  const values: unknown[] = [];
  const collect = (k: number): void => {
    keys.push(s.readKey(k));
    values.push(s.readValue(k));
  };
  for (let step = 0; step < n; step++) {
    let seq = a.i32[SEQ];
    if ((seq & 1) !== 0) seq = readerBlocked(s, seq, "iteration");
    keys.length = 0;
    values.length = 0;
    try {
      s.table.collect(level, (start + step) & (n - 1), collect);
    } catch (error) {
      throw readFailure(s, seq, error);
    }
    if (Atomics.load(a.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("iteration");
    const count = keys.length;
    const userKeys = s.userKeys;
    const userValues = s.userValues;
    if (userKeys !== null) {
      for (let j = 0; j < count; j++) keys[j] = s.decodeCopy(userKeys, keys[j]);
    }
    if (userValues !== null) {
      for (let j = 0; j < count; j++) values[j] = s.decodeCopy(userValues, values[j]);
    }
    for (let j = 0; j < count; j++) {
      const at = (j + rotate) % count;
      const key = keys[at] as K;
      // A write since the batch was read can only be this thread's own (another worker's
      // would have overlapped the read, or be misuse), so a plain read of the word sees it.
      if (a.i32[SEQ] === seq) {
        yield [key, values[at] as V];
      } else {
        const value = lookup(s, key);
        if (value !== ABSENT) yield [key, value];
      }
    }
  }
}
