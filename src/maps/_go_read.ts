/**
 * Internal. GoMap's reads that go beyond one slot: a lookup through a codec, and iteration in
 * batches, each validated against the writer's seqlock (_go_writer.ts) as a read is.
 *
 * @module
 */

import type { Arena } from "../_engine/arena.ts";
import * as key_hash_cache from "../_engine/key_hash_cache.ts";
import * as entry_memo from "./_entry_memo.ts";
import {
  cachedKeyString,
  isNumberSlot,
  keyNumberWords,
  numberOf,
  numberWords,
  Probe,
  setCachedKeyString,
} from "../_engine/slots.ts";
import * as slots_module from "../_engine/slots.ts";
import { ConcurrentMapWriteError } from "../errors.ts";
import type { GoAccess } from "./_go_access.ts";
import * as go_hits from "./_go_hits.ts";
import * as go_layout from "./_go_layout.ts";
import { beginRead, readerBlocked, readFailure, validated } from "./_go_writer.ts";
import { BatchIterator, batchLevel, type Yield } from "./_iteration.ts";
import * as iteration from "./_iteration.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { MEMO_WORDS } = key_hash_cache;
const { HELD, HELD_ANY, HELD_INT } = entry_memo;
const { MODE_STRING } = slots_module;
const NOT_HELD: typeof go_hits.NOT_HELD = go_hits.NOT_HELD;
const { KEY_HI, LAYOUT, LAYOUT_WRAPS, SEQ, VALUE_BYTES, VALUE_HI, WRAPS } = go_layout;
const { KEYS } = iteration;

/** What {@linkcode lookup} returns for a missing key (a stored `undefined` is a value). */
export const ABSENT: unique symbol = Symbol("absent");

/**
 * {@linkcode lookup} of a number key in a map whose keys use the built-in codec, returning
 * `missing` for a missing key: no codec call and no probe. `word` is SEQ as the caller read it
 * (beginRead's read, done by the caller so that its lookup copy checks the same version). The
 * handle's entry memo answers for a key looked up at this version of the map before
 * (_entry_memo.ts); otherwise {@linkcode walkNumber} hashes the key and walks the table. A
 * number value is returned from its own branch, so that it is never boxed to share a variable
 * with a symbol.
 *
 * When the memo knows the key is absent at this layout stamp, or holds its number value at this
 * version of SEQ, nothing of the map is read but SEQ and the stamp: the answer is what the map
 * held then, read and validated when the memo learnt it, so there is no read to validate and no
 * atomic operation. (A thread that waits for another's write must synchronize with it, as Go's
 * rules require of every GoMap reader: a loop of plain reads may be left to see an old version.)
 */
export function lookupNumber<K, V, M>(
  s: GoAccess<K, V>,
  key: number,
  missing: M,
  word: number,
): V | M {
  const a = s.arena;
  const seq = (word & 1) === 0 ? word : readerBlocked(s, word, "read"); // beginRead's test
  const words = keyNumberWords(key);
  const lo = words[0];
  const hi = words[1];
  const memo = s.found;
  const j = memo.findAt(lo, hi, a.i32[LAYOUT], a.i32[LAYOUT_WRAPS], s.table);
  if (j < 0) return walkNumber(s, seq, lo, hi, missing);
  let k = memo.entryAt(j);
  if ((k & HELD) !== 0) {
    if (memo.heldAt(j) === seq) return memo.numberAt(j) as V;
    k ^= HELD; // kept at another version: read the slot
  }
  if (k === 0) return missing;
  // The slot holds the key at this version: a plain read of its value cannot fault, and is
  // returned only if the version still stands. Written out here and in lookupString rather than
  // in slotValue: JavaScriptCore leaves slotValue (it has a try) a call, and a GoMap.get hit of
  // an int key took 1.12x to 1.28x on Bun with the branch moved there (two runs).
  if (s.numberValues && isNumberSlot(a.i32[(k >> 2) + VALUE_HI])) {
    const value = a.f64[(k + VALUE_BYTES) >> 3];
    if (Atomics.load(a.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("read");
    memo.keepNumber(j, value, seq); // learnt by a has, or kept at another version
    return value as V;
  }
  return slotValue(s, seq, k);
}

/**
 * GoMap.get of a number key under the built-in codec that the handle's lookup copy did not
 * answer (_go_hits.ts; GoMap.get asks it): {@linkcode lookupNumber}, at `seq` as GoMap.get read
 * SEQ, whose answer, validated at that version (SEQ never comes back), is offered to the copy.
 */
export function getNumber<K, V>(s: GoAccess<K, V>, key: number, seq: number): V | undefined {
  const h = s.hits;
  const value = lookupNumber(s, key, NOT_HELD, seq);
  if (h.noted === seq && h.countdown > 0) h.countdown--; // offer's warmup, written out
  else if (s.userValues === null) h.offer(s.arena.i32, seq, key, value);
  return value === NOT_HELD ? undefined : value;
}

/**
 * Keeps number `value`, read and validated at version `seq` of SEQ, in the memo words at `at`
 * of `w` (a string key's cache entry) with their slot word `k` (unflagged): the slot word without
 * a flag first, then the value's words, then `seq`, then the slot word with its flag. A call cut
 * short leaves a slot word without a flag, or one whose flag and words are older than `seq`,
 * which SEQ never comes back to while the layout stamp stands.
 */
function holdNumber(w: Int32Array, at: number, k: number, value: number, seq: number): void {
  w[at + 1] = k;
  if ((value | 0) === value && (value !== 0 || 1 / value > 0)) { // an int32, not -0
    w[at + 2] = value;
    w[at + 4] = seq;
    w[at + 1] = k | HELD_INT;
    return;
  }
  const words = numberWords(value);
  w[at + 2] = words[0];
  w[at + 3] = words[1];
  w[at + 4] = seq;
  w[at + 1] = k | HELD;
}

/**
 * {@linkcode lookupNumber} when the memo does not know the key: hashes it and walks the table,
 * and once the read is validated tells the memo what it found (an unvalidated answer may be
 * torn, and the layout stamp it was read under may not be the one the table had), with the value
 * and its version when it is a number, before decode's user code runs.
 */
function walkNumber<K, V, M>(
  s: GoAccess<K, V>,
  seq: number,
  lo: number,
  hi: number,
  missing: M,
): V | M {
  const a = s.arena;
  let k: number;
  let value: unknown;
  try {
    k = s.table.findWords(lo, hi, a.memo.hash(lo, hi));
    if (k >= 0) value = s.readValue(k);
  } catch (error) {
    throw readFailure(s, seq, error);
  }
  if (Atomics.load(a.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("read");
  const j = s.found.rememberSlot(lo, hi, k, s.table);
  if (k < 0) return missing;
  if (s.userValues !== null) return s.decodeCopy(s.userValues, value);
  if (typeof value === "number" && j >= 0) s.found.keepNumber(j, value, seq);
  return value as V;
}

/** The value in slot `k`, which holds the key at version `seq`: read, validated, decoded. */
function slotValue<K, V>(s: GoAccess<K, V>, seq: number, k: number): V {
  let value: unknown;
  try {
    value = s.readValue(k);
  } catch (error) {
    throw readFailure(s, seq, error);
  }
  validated(s, seq, value);
  return s.userValues === null ? value as V : s.decodeCopy(s.userValues, value);
}

/** GoMap.has of a number key in a map whose keys use the built-in codec: {@linkcode lookupNumber} without the value. */
export function hasNumber<K, V>(s: GoAccess<K, V>, key: number): boolean {
  const a = s.arena;
  const seq = beginRead(s, "read");
  const words = keyNumberWords(key);
  const lo = words[0];
  const hi = words[1];
  const j = s.found.findAt(lo, hi, a.i32[LAYOUT], a.i32[LAYOUT_WRAPS], s.table);
  if (j >= 0) return s.found.entryAt(j) !== 0; // known at this layout: nothing to validate
  let k: number;
  try {
    k = s.table.findWords(lo, hi, a.memo.hash(lo, hi));
  } catch (error) {
    throw readFailure(s, seq, error);
  }
  if (Atomics.load(a.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("read");
  s.found.rememberSlot(lo, hi, k, s.table);
  return k > 0;
}

/**
 * {@linkcode lookup} of a string key under a built-in codec, returning `missing` for a missing
 * key (GoMap.get passes undefined). A key the handle's key hash cache holds is answered from its
 * cache entry's memo words when they were written at this version of the map, without making a
 * probe; otherwise the walk starts from the entry. Any other string takes {@linkcode find}'s
 * path, as does a nested call (its scratch is not the handle's).
 */
export function lookupString<K, V, M>(s: GoAccess<K, V>, key: string, missing: M): V | M {
  const a = s.arena;
  const p = s.probe;
  const entry = s.nested ? null : cachedKeyString(p, key, a.seed0, a.seed1);
  if (entry === null) {
    const value = find(s, key as K, true);
    return value === ABSENT ? missing : value as V;
  }
  const seq = beginRead(s, "read");
  const at = entry.length - MEMO_WORDS;
  // The generation first: coming round, it zeroes the memo words of every cached entry.
  const gen = s.found.generationAt(a.i32[LAYOUT], a.i32[LAYOUT_WRAPS], s.table);
  if (entry[at] === gen) {
    // Known at this layout: absent, or a number value held at this version (nothing of the
    // map to read, so nothing to validate, as in lookupNumber), or the slot to read from.
    let k = entry[at + 1];
    if (k < 0) return missing;
    if ((k & HELD_ANY) !== 0) {
      if (entry[at + 4] === seq) {
        if ((k & HELD_INT) !== 0) return entry[at + 2] as V;
        return numberOf(entry[at + 2], entry[at + 3]) as V;
      }
      k &= ~HELD_ANY; // held at another version: read the slot
    }
    if (s.numberValues && isNumberSlot(a.i32[(k >> 2) + VALUE_HI])) {
      const value = a.f64[(k + VALUE_BYTES) >> 3];
      if (Atomics.load(a.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("read");
      holdNumber(entry, at, k, value, seq);
      return value as V;
    }
    return slotValue(s, seq, k);
  }
  setCachedKeyString(p, key, entry);
  const value = findFrom(s, p, seq, true);
  return value === ABSENT ? missing : value as V;
}

/**
 * GoMap.has of a string key under a built-in codec: {@linkcode lookupString} without the value.
 * A key known at this version is answered from its memo words, with nothing of the map read.
 */
export function hasString<K, V>(s: GoAccess<K, V>, key: string): boolean {
  const a = s.arena;
  const p = s.probe;
  const entry = s.nested ? null : cachedKeyString(p, key, a.seed0, a.seed1);
  if (entry === null) return find(s, key as K, false) === PRESENT;
  const seq = beginRead(s, "read");
  const at = entry.length - MEMO_WORDS;
  const gen = s.found.generationAt(a.i32[LAYOUT], a.i32[LAYOUT_WRAPS], s.table);
  if (entry[at] === gen) return entry[at + 1] >= 0; // a slot, flagged or not; -1: absent
  setCachedKeyString(p, key, entry);
  return findFrom(s, p, seq, false) === PRESENT;
}

/** What {@linkcode find} returns for a present key when asked for no value. */
const PRESENT: unique symbol = Symbol("present");

/**
 * Looks `key` up, returning `missing` when it is absent: GoMap.get past its number-key path
 * (it calls {@linkcode lookupNumber} itself), getOk, and an iteration that meets a write. Apart
 * from `get`, so that `get` stays small: V8 inlines a loop's calls up to a shared bytecode
 * budget, and a `get` beside a lock's calls was left a call.
 */
export function lookup<K, V, M>(s: GoAccess<K, V>, key: K, missing: M): V | M {
  if (typeof key === "string" && s.stringKeys) return lookupString(s, key, missing);
  const value = find(s, key, true);
  return value === ABSENT ? missing : value as V;
}

/** Whether `key` is present: GoMap.has. */
export function contains<K, V>(s: GoAccess<K, V>, key: K): boolean {
  if (typeof key === "number" && s.numberKeys) return hasNumber(s, key);
  if (typeof key === "string" && s.stringKeys) return hasString(s, key);
  return find(s, key, false) === PRESENT;
}

/**
 * Looks `key` up, returning its value (with `valued` false, {@linkcode PRESENT}) or ABSENT when
 * it is missing. A string key found in the handle's key hash cache keeps the slot this found in
 * its cache entry's memo words, under the entry memo's generation for this version of the map
 * (_entry_memo.ts), written once the read is validated and before decode's user code runs.
 */
function find<K, V>(
  s: GoAccess<K, V>,
  key: K,
  valued: boolean,
): V | typeof ABSENT | typeof PRESENT {
  if (typeof key === "number" && s.numberKeys) {
    return valued
      ? lookupNumber(s, key, ABSENT, s.arena.i32[SEQ])
      : hasNumber(s, key)
      ? PRESENT
      : ABSENT;
  }
  // Encoded before the read begins: a user codec's encode may write the map.
  const p = s.encodeKey(key, s.nested ? new Probe() : s.probe);
  return findFrom(s, p, beginRead(s, "read"), valued);
}

/** {@linkcode find} once `p` holds the key and the read has begun at version `seq`. */
function findFrom<K, V>(
  s: GoAccess<K, V>,
  p: Probe,
  seq: number,
  valued: boolean,
): V | typeof ABSENT | typeof PRESENT {
  // The memo words are held here, not looked up through `p` after the read: the built-in
  // decode in readValue can run user code (an index setter on Array.prototype) that calls this
  // handle again, and that call makes `p` another key's probe.
  const at = p.memoAt;
  const w = p.words;
  const memo = at >= 0 && p.hasWords && p.mode === MODE_STRING;
  let gen = 0;
  let known = false;
  let k: number;
  let value: unknown = ABSENT;
  try {
    if (memo) {
      const i32 = s.arena.i32;
      gen = s.found.generationAt(i32[LAYOUT], i32[LAYOUT_WRAPS], s.table);
      known = w[at] === gen;
    }
    k = known ? w[at + 1] & ~HELD_ANY : s.table.find(p); // -1, absent, stays negative
    if (k >= 0) value = valued ? s.readValue(k) : PRESENT;
  } catch (error) {
    throw readFailure(s, seq, error);
  }
  // Known at this version, with nothing of the map read (an absent key, or a has): as in
  // lookupNumber, nothing to validate.
  if (!known || (valued && k >= 0)) validated(s, seq, value);
  if (memo && !known) {
    w[at] = gen;
    w[at + 1] = k;
    if (typeof value === "number" && s.userValues === null) holdNumber(w, at, k, value, seq);
  }
  return value === ABSENT || value === PRESENT || s.userValues === null
    ? value as V | typeof ABSENT | typeof PRESENT
    : s.decodeCopy(s.userValues, value);
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
 * A batch that begins at the version (SEQ, WRAPS) the handle's batch copy holds takes its
 * partition from there (_go_batches.ts), with no walk and no decode: a map iterated again and
 * again while nobody writes it.
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
  /** The current batch: decoded keys and values, this iterator's own or the batch copy's. */
  #keys: readonly unknown[] = [];
  #values: readonly unknown[] = [];
  /**
   * What a batch is read into, refilled in place (they keep their capacity), and the key slots
   * it was read from.
   */
  #ownKeys: unknown[] = [];
  #ownValues: unknown[] = [];
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
        // Written since the batch was read: the key is looked up again (a values() iteration
        // decodes keys for this), and for keys() only looked for.
        if (this.yields === KEYS) {
          if (contains(s, key)) return this.result(key, undefined);
          continue;
        }
        const value = lookup(s, key, ABSENT);
        if (value !== ABSENT) return this.result(key, value);
      }
      if (!this.#readBatch(s)) return this.finish();
    }
  }

  /** Reads the next batch, or returns false when every partition has been read. */
  #readBatch(s: GoAccess<K, V>): boolean {
    const a = s.arena;
    const first = this.#level < 0;
    if (first) {
      this.#level = batchLevel(s.table.B);
      this.#start = Math.floor(Math.random() * (1 << this.#level));
      this.#rotate = Math.floor(Math.random() * 8);
    }
    const level = this.#level;
    const n = 1 << level;
    if (this.#step >= n) return false;
    const i = (this.#start + this.#step++) & (n - 1);
    this.#j = 0;
    this.#count = 0;
    const seq = beginRead(s, "iteration");
    // Plainly, after SEQ, as every reader reads what writers write under the sequence. The
    // table's count only sizes the copy's first check: its limits count what is kept.
    const wraps = a.i32[WRAPS];
    const batches = s.batches;
    if (first) {
      const builtIn = s.userKeys === null && s.userValues === null;
      batches.begin(seq, wraps, level, s.table.count, builtIn);
    }
    const copy = batches.at(seq, wraps, level, i);
    if (copy !== undefined) {
      this.#keys = copy.keys;
      this.#values = copy.values;
      this.#seq = seq;
      this.#count = copy.keys.length;
      return true;
    }
    // Decoded keys and values; for a user codec, copies of its bytes until the batch is
    // validated, then decoded (see GoAccess.readValue).
    const keys = this.#ownKeys;
    const values = this.#ownValues;
    this.#keys = keys;
    this.#values = values;
    const slots = this.#slots;
    let count = 0;
    // Strings decoded from a slot under this layout's generation (slot_strings.ts).
    const strings = s.slotStrings();
    let gen = 0;
    let sawString = false;
    // keys() reads no value; values() reads the keys all the same (see read).
    const wantValues = this.yields !== KEYS;
    try {
      count = s.table.gatherKeySlots(this.#level, i, slots);
      // GoAccess.readKey's and readValue's number paths, here without a call per entry.
      const numberKeys = s.numberKeys;
      const numberValues = s.numberValues;
      const i32 = a.i32;
      const f64 = a.f64;
      if (strings !== null) gen = s.found.generationAt(i32[LAYOUT], i32[LAYOUT_WRAPS], s.table);
      for (let j = 0; j < count; j++) {
        const k = slots[j];
        if (numberKeys && isNumberSlot(i32[(k >> 2) + KEY_HI])) keys[j] = f64[k >> 3];
        else {
          const key = strings?.get(k, gen) ?? s.readKey(k);
          keys[j] = key;
          if (typeof key === "string") sawString = true;
        }
        if (wantValues) {
          values[j] = numberValues && isNumberSlot(i32[(k >> 2) + VALUE_HI])
            ? f64[(k + VALUE_BYTES) >> 3]
            : s.readValue(k);
        }
      }
    } catch (error) {
      throw readFailure(s, seq, error);
    }
    if (Atomics.load(a.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("iteration");
    // Kept only once validated: a read that overlapped a write keeps nothing. The first batch
    // with a string key makes the cache, for the next batches, which read their generation
    // first; a map that holds no string key never makes it.
    if (strings !== null) {
      for (let j = 0; j < count; j++) {
        const key = keys[j];
        if (typeof key === "string") strings.set(slots[j], gen, key);
      }
    } else if (sawString) {
      s.keepSlotStrings();
    }
    const userKeys = s.userKeys;
    const userValues = s.userValues;
    if (userKeys !== null) {
      for (let j = 0; j < count; j++) keys[j] = s.decodeCopy(userKeys, keys[j]);
    }
    if (userValues !== null && wantValues) {
      for (let j = 0; j < count; j++) values[j] = s.decodeCopy(userValues, values[j]);
    }
    if (wantValues) batches.keep(seq, wraps, level, i, keys, values, count);
    this.#seq = seq;
    this.#count = count;
    return true;
  }

  protected drop(): void {
    this.#keys = this.#ownKeys = [];
    this.#values = this.#ownValues = [];
    this.#count = 0;
  }
}
