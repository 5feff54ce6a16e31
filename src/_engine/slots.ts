/**
 * Internal. How keys and values sit in a table's 8-byte slots.
 *
 * A slot holds two 32-bit words, `lo` then `hi`, which read together as a float64. Numbers are
 * stored as themselves. Every other value is NaN-boxed: its `hi` word has the top twelve bits
 * set (a negative NaN) and a nonzero kind in bits 16..19, a pattern no stored number has,
 * because NaN is always stored as the one canonical NaN (0x7ff80000 00000000) and -Infinity has
 * kind 0. Kinds:
 *
 * | kind | meaning                 | lo                  | hi bits 0..15   |
 * | ---- | ----------------------- | ------------------- | --------------- |
 * | 1    | boolean                 | 0 or 1              |                 |
 * | 2    | undefined               | 0                   |                 |
 * | 3    | null                    | 0                   |                 |
 * | 4    | bigint in int32 range   | the value           |                 |
 * | 5    | string of <= 2 units    | unit 0, unit 1 << 16| length          |
 * | 6    | string (blob)           | blob offset         |                 |
 * | 7    | bigint (blob)           | blob offset         |                 |
 * | 8    | bytes (blob)            | blob offset         |                 |
 * | 9    | structured value (blob) | blob offset         |                 |
 *
 * A blob is an arena block: a 32-bit count, then the payload (UTF-16 units for strings, bytes
 * otherwise). Blobs are immutable once written and published.
 *
 * Keys compare equal when their slots are equal word for word and, for blobs, byte for byte.
 * Encoding maps -0 to 0 and every NaN to the canonical NaN, and gives each type its own
 * pattern, so equality is JavaScript's SameValueZero: `NaN` equals `NaN`, `-0` equals `0`, and
 * `1`, `1n` and `"1"` are three keys. Values keep -0.
 *
 * @module
 */

import type { HashMemo } from "./hash_memo.ts";
import type { Arena } from "./arena.ts";
import { KeyHashCache } from "./key_hash_cache.ts";
import * as key_hash_cache from "./key_hash_cache.ts";
import { readString } from "./read_string.ts";
import { hashBytes, hashString, hashStringWords, hashUnits, hashWords } from "./hash.ts";
import {
  copyBytes,
  decodeStructured,
  ownBytes,
  StructuredWriter,
  typedArrayByteLength,
  typedArraySet,
} from "./structured.ts";
import * as structured from "./structured.ts";
import { describe, withArticle } from "../_describe.ts";
import { MapFullError } from "../errors.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { MAX_UNITS: CACHED_UNITS_MAX, MEMO_WORDS } = key_hash_cache;
const { MAX_ENCODED_BYTES } = structured;

const tag = (kind: number): number => (0xfff00000 | (kind << 16)) | 0;
const TAG_BOOL: number = tag(1);
export const TAG_UNDEFINED: number = tag(2);
export const TAG_NULL: number = tag(3);
const TAG_BIGINT32: number = tag(4);
export const TAG_SHORT_STRING: number = tag(5);
export const TAG_STRING: number = tag(6);
const TAG_BIGINT: number = tag(7);
export const TAG_BYTES: number = tag(8);
/**
 * The tag of a structured value's blob. Its decode can run user code: the built-in decoder fills
 * arrays and objects by assignment, which setters on `Array.prototype` or `Object.prototype` see.
 */
export const TAG_STRUCT: number = tag(9);
/** The tag of a key too large for its map: never stored, so it matches no stored key. */
const TAG_TOO_LARGE: number = tag(15);

/** Whether the slot's value lives in a blob (kinds 6..9). */
export function isBlob(hi: number): boolean {
  return (hi >>> 20) === 0xfff && ((hi >>> 16) & 15) >= 6;
}

/** Bytes of the blob at `offset` whose slot has `hi`, as allocated. */
export function blobSize(arena: Arena, offset: number, hi: number): number {
  arena.reach(offset + 4);
  const count = arena.i32[offset >> 2] >>> 0;
  return 4 + (hi === TAG_STRING ? count * 2 : count);
}

/**
 * Frees, through `tx` (a transaction's `free`), the blob a slot points to, if it has one. An
 * object, not a callback: a closure made at each call would be garbage at each delete.
 */
export function freeSlot(
  arena: Arena,
  lo: number,
  hi: number,
  tx: { free(offset: number, size: number): void },
): void {
  if (isBlob(hi)) tx.free(lo, blobSize(arena, lo, hi));
}

/** Probe mode: compare the two words only. */
export const MODE_INLINE = 0;
/** Probe mode: the slot is a string blob; compare with `Probe.str`. */
export const MODE_STRING = 1;
/** Probe mode: the slot is a bytes-like blob tagged `Probe.hi`; compare with `Probe.bytes`. */
export const MODE_BYTES = 2;
/**
 * Probe mode: a key whose blob cannot fit in the map's maxBytes (`Probe.needed` bytes). No
 * stored key matches it (its `hi` is {@linkcode TAG_TOO_LARGE}), so a lookup finds nothing;
 * storing it throws MapFullError ({@linkcode Probe.storable}). Hashed as 0, unread.
 */
export const MODE_TOO_LARGE = 3;

const EMPTY_BYTES = new Uint8Array(0);

/**
 * The most words of a probe's {@linkcode Probe.words}: string keys of up to twice as many units
 * (4 KiB of scratch) are compared a word at a time; longer ones unit by unit, from the string.
 */
const MAX_WORDS = 1024;
const FIRST_WORDS = 16;
const EMPTY_WORDS = new Int32Array(0);

/**
 * An encoded key or value, before it is written to shared memory. Lookups compare it with
 * stored slots directly, so a lookup never allocates shared memory.
 *
 * Once encoded, a probe refers to nothing user code can change or intercept: `str` is a
 * primitive, and `bytes` is either the probe's own writer's scratch or a fresh fixed-length
 * view made by {@linkcode ownBytes}. So no user code runs while a map uses it (under a lock, or
 * inside a GoMap write). A map call whose encoding runs user code that calls the same map uses
 * a fresh probe for the nested call (see the maps' `#inUser`): a probe is never shared by two
 * calls in progress, and neither is its writer.
 */
export class Probe {
  hi = 0;
  lo = 0;
  mode = MODE_INLINE;
  str = "";
  bytes: Uint8Array = EMPTY_BYTES;
  /**
   * The length of `bytes`, taken once, as it is set, from the built-in byteLength (or known to
   * the code that made the array): a blob is sized, written and compared by this count, never
   * by a `length` a patched prototype could answer differently from one read to the next.
   */
  byteCount = 0;
  hash = 0;
  /** The default codec's scratch for structured values; `bytes` may be a view of it. */
  writer: StructuredWriter | undefined = undefined;
  /** In MODE_TOO_LARGE: the bytes the key's blob needs, and the limit it passes. */
  needed = 0;
  limit = 0;
  /**
   * A value encoded only to be compared with stored ones (a compare-and-X's old value): one too
   * large for maxBytes becomes MODE_TOO_LARGE, as a key does, which matches nothing, instead of
   * a MapFullError: no stored value can equal it.
   */
  compareOnly = false;
  /**
   * Whether `words` holds the units of `str`, two to a word as a string blob holds them (an odd
   * last unit alone, high half 0): set when a string key is hashed (see
   * {@linkcode hashStringWords}), for keys of at most 2 * MAX_WORDS units.
   */
  hasWords = false;
  /**
   * The units for `hasWords`: {@linkcode scratch}, or the words of a {@linkcode keyCache} entry,
   * which nothing writes through this probe.
   */
  words: Int32Array = EMPTY_WORDS;
  /** Scratch for `words`: grows, up to MAX_WORDS, with the longest key this probe has hashed. */
  scratch: Int32Array = EMPTY_WORDS;
  /** The hashes of short string keys this probe has held (a map handle's key probe only). */
  keyCache: KeyHashCache | null = null;
  /**
   * While `hasWords`: the index in `words` of the entry memo's words when `words` is a
   * {@linkcode keyCache} entry (maps/_entry_memo.ts), else -1.
   */
  memoAt = -1;

  /** Throws MapFullError if this key cannot be stored (it is too large for the map). */
  storable(): void {
    if (this.mode === MODE_TOO_LARGE) throw new MapFullError(this.needed, this.limit);
  }

  /** Whether the stored slot (lo, hi) holds this key. */
  matches(arena: Arena, lo: number, hi: number): boolean {
    if (this.mode === MODE_INLINE) return hi === this.hi && lo === this.lo;
    if (hi !== this.hi) return false;
    arena.reach(lo + 4);
    const count = arena.i32[lo >> 2];
    if (this.mode === MODE_STRING) {
      if (this.hasWords) return this.matchesWords(arena, lo);
      const s = this.str;
      if (count !== s.length) return false;
      arena.reach(lo + 4 + count * 2);
      const u16 = arena.u16;
      const base = (lo + 4) >> 1;
      for (let i = 0; i < count; i++) if (u16[base + i] !== s.charCodeAt(i)) return false;
      return true;
    }
    const b = this.bytes;
    if (count !== this.byteCount) return false;
    arena.reach(lo + 4 + count);
    const u8 = arena.u8;
    for (let i = 0; i < count; i++) if (u8[lo + 4 + i] !== b[i]) return false;
    return true;
  }

  /**
   * Makes this probe hold a copy of the stored slot (lo, hi), so that {@linkcode matches} can
   * later tell whether a stored slot holds the same encoding, when the blob copied from may
   * have been freed already. Returns this probe.
   */
  snapshot(arena: Arena, lo: number, hi: number): this {
    this.hi = hi;
    this.lo = lo;
    // The string is held as a string: `words` is for keys hashed by setKeyString only.
    this.hasWords = false;
    if (!isBlob(hi)) {
      this.mode = MODE_INLINE;
    } else if (hi === TAG_STRING) {
      this.str = readString(arena, lo);
      this.mode = MODE_STRING;
    } else {
      arena.reach(lo + 4);
      const count = arena.i32[lo >> 2];
      arena.reach(lo + 4 + count);
      this.bytes = arena.u8.slice(lo + 4, lo + 4 + count);
      this.byteCount = count;
      this.mode = MODE_BYTES;
    }
    return this;
  }

  /**
   * Whether the string blob at `lo` holds this probe's string, whose units are in `words`
   * (`hasWords`): the count, then the units a word at a time. Blocks are 16-byte aligned, so a
   * blob's units start on a word, and its last word lies inside its block; an offset that is not
   * word-aligned (only a corrupt one) is compared unit by unit.
   */
  matchesWords(arena: Arena, lo: number): boolean {
    if (lo + 4 > arena.bytes) arena.reach(lo + 4);
    const n = this.str.length;
    if (arena.i32[lo >> 2] !== n) return false;
    const end = lo + 4 + ((n + 1) >> 1) * 4;
    if (end > arena.bytes) arena.reach(end);
    const i32 = arena.i32;
    const words = this.words;
    const half = n >> 1;
    if ((lo & 3) !== 0) {
      const u16 = arena.u16;
      const base = (lo + 4) >> 1;
      for (let i = 0; i < n; i++) {
        const m = words[i >> 1];
        if (u16[base + i] !== ((i & 1) === 0 ? m & 0xffff : m >>> 16)) return false;
      }
      return true;
    }
    const base = (lo >> 2) + 1;
    for (let j = 0; j < half; j++) if (i32[base + j] !== words[j]) return false;
    return (n & 1) === 0 || (i32[base + half] & 0xffff) === words[half];
  }

  /** Bytes of the blob this probe needs: 0 when it fits in the slot. */
  blobBytes(): number {
    if (this.mode === MODE_INLINE) return 0;
    return 4 + (this.mode === MODE_STRING ? this.str.length * 2 : this.byteCount);
  }

  /** Writes this probe's blob at `at` (which has {@linkcode blobBytes} bytes) and returns `at`. */
  writeBlob(arena: Arena, at: number): number {
    if (this.mode === MODE_STRING) {
      const s = this.str;
      arena.i32[at >> 2] = s.length;
      if (this.hasWords && (at & 3) === 0) {
        // Whole words, then an odd last unit alone: the block ends at 4 + 2n bytes.
        const i32 = arena.i32;
        const words = this.words;
        const half = s.length >> 1;
        const base = (at >> 2) + 1;
        for (let j = 0; j < half; j++) i32[base + j] = words[j];
        if ((s.length & 1) !== 0) arena.u16[(at + 4 + 4 * half) >> 1] = words[half];
        return at;
      }
      const u16 = arena.u16;
      const base = (at + 4) >> 1;
      for (let i = 0; i < s.length; i++) u16[base + i] = s.charCodeAt(i);
    } else {
      // Built-ins only, as blobBytes: the count and the copy must be the bytes the block holds.
      // The count the block was sized by (blobBytes), and the built-in set: a patched
      // prototype must not decide what is written into shared memory.
      arena.i32[at >> 2] = this.byteCount;
      typedArraySet(arena.u8, this.bytes, at + 4);
    }
    return at;
  }

  /**
   * Writes the blob this probe needs, if any, in a block from `tx` (a transaction's `alloc`, not
   * zeroed), and returns the slot's `lo` word. Throws MapFullError (allocating nothing) when the
   * arena is full. An object, not a callback: a closure made at each call would be garbage at
   * each insert.
   */
  materialize(arena: Arena, tx: { alloc(size: number, zero: boolean): number }): number {
    if (this.mode === MODE_INLINE) return this.lo;
    this.storable();
    return this.writeBlob(arena, tx.alloc(this.blobBytes(), false));
  }
}

/** The hash of a stored key slot under the arena's key; equals the hash its probe had. */
export function hashStored(arena: Arena, lo: number, hi: number): number {
  const k0 = arena.seed0;
  const k1 = arena.seed1;
  if (!isBlob(hi)) return hashWords(lo, hi, k0, k1);
  arena.reach(lo + 4);
  const count = arena.i32[lo >> 2];
  if (hi === TAG_STRING) {
    arena.reach(lo + 4 + count * 2);
    return hashUnits(arena.u16, (lo + 4) >> 1, count, k0, k1);
  }
  arena.reach(lo + 4 + count);
  return hashBytes(arena.u8, lo + 4, count, k0, k1);
}

/** Whether stored key slots (lo, hi) and (lo2, hi2) hold the same key. */
export function sameStored(
  arena: Arena,
  lo: number,
  hi: number,
  lo2: number,
  hi2: number,
): boolean {
  if (hi !== hi2) return false;
  if (lo === lo2 || !isBlob(hi)) return lo === lo2;
  const bytes = blobSize(arena, lo, hi);
  if (blobSize(arena, lo2, hi) !== bytes) return false;
  arena.reach(Math.max(lo, lo2) + bytes);
  const u8 = arena.u8;
  for (let i = 4; i < bytes; i++) if (u8[lo + i] !== u8[lo2 + i]) return false;
  return true;
}

/**
 * The engine's side of a codec: encodes into a {@linkcode Probe} and decodes from a slot. Keys
 * use {@linkcode toKey}, which also hashes; values use {@linkcode toValue}.
 */
export interface SlotCodec<T> {
  /** The name recorded in the arena header. */
  readonly name: string;
  /**
   * Most bytes a blob may take: the map's maxBytes. An encoding that cannot fit throws
   * MapFullError, checked before the work where the size is known in advance.
   */
  limit: number;
  /** Encodes a key, canonicalizing it for SameValueZero, and sets `p.hash`. */
  toKey(key: T, p: Probe, k0: number, k1: number): void;
  /** Encodes a value. */
  toValue(value: T, p: Probe): void;
  /** Decodes the slot (lo, hi). The result holds no reference into shared memory. */
  decode(arena: Arena, lo: number, hi: number): T;
}

/**
 * Whether a codec stores every number it accepts as a plain float64 slot and accepts all of
 * them (auto, float64): the maps then look number keys up and read number values without
 * calling the codec.
 */
export function storesNumbers(codec: SlotCodec<unknown>): boolean {
  return codec instanceof AutoSlots || codec instanceof Float64Slots;
}

/**
 * Whether every number `codec` stores sits in its slot as the float64 a number key or value
 * would (auto, float64, int32, which only accepts fewer): a SyncMap then holds small integer
 * values as immediates, whose slot words are those float64 words.
 */
export function slotsAsFloat64(codec: SlotCodec<unknown>): boolean {
  return storesNumbers(codec) || codec instanceof Int32Slots;
}

/**
 * Whether `codec` makes string keys' probes with `setKeyString` (through the probe's key hash
 * cache), so that a map may take the cache's entry for a string key without calling it.
 */
export function cachesStringKeys(codec: SlotCodec<unknown>): boolean {
  return codec instanceof AutoSlots || codec instanceof StringSlots;
}

/** Whether the slot with this `hi` word holds a plain number. */
export function isNumberSlot(hi: number): boolean {
  return (hi >>> 20) !== 0xfff || (hi & 0xf0000) === 0;
}

// Scratch for splitting a float64 into words. Per thread, not shared.
const f64 = new Float64Array(1);
const w32 = new Int32Array(f64.buffer);

/**
 * The slot words of number key `n` as keys compare (SameValueZero: -0 is 0, every NaN one
 * NaN): `[lo, hi]`, in per-thread scratch to read before the next call.
 */
export function keyNumberWords(n: number): Int32Array {
  f64[0] = n === 0 ? 0 : n === n ? n : NaN;
  return w32;
}

/**
 * The slot words of number `n` as a value holds them (its float64 as it is): `[lo, hi]`, in the
 * scratch {@linkcode keyNumberWords} uses, to read before the next call.
 */
export function numberWords(n: number): Int32Array {
  f64[0] = n;
  return w32;
}

// Scratch for joining words into a number, apart from the splitting scratch above: a caller may
// still hold the words keyNumberWords or numberWords returned.
const joinF64 = new Float64Array(1);
const joinW32 = new Int32Array(joinF64.buffer);

/** The number whose slot words are (lo, hi). */
export function numberOf(lo: number, hi: number): number {
  joinW32[0] = lo;
  joinW32[1] = hi;
  return joinF64[0];
}

/** Makes `p` the slot of number `n`, a value (its float64 as it is). */
export function setNumber(p: Probe, n: number): void {
  f64[0] = n;
  p.lo = w32[0];
  p.hi = w32[1];
  p.mode = MODE_INLINE;
}

/** Makes `p` the probe of number key `n` (SameValueZero) under the hash key (k0, k1). */
export function setKeyNumber(p: Probe, n: number, k0: number, k1: number): void {
  const words = keyNumberWords(n);
  p.lo = words[0];
  p.hi = words[1];
  p.mode = MODE_INLINE;
  p.hash = hashWords(p.lo, p.hi, k0, k1);
}

/**
 * {@linkcode setKeyNumber} with the hash taken from `memo`, the thread's memo of the map's
 * number keys (the maps' own number paths).
 */
export function setKeyNumberMemo(p: Probe, n: number, memo: HashMemo): void {
  const words = keyNumberWords(n);
  p.lo = words[0];
  p.hi = words[1];
  p.mode = MODE_INLINE;
  p.hash = memo.hash(p.lo, p.hi);
}

/**
 * A blob of `bytes` bytes cannot fit `limit`: a value is a MapFullError, before anything is
 * written; a key, or a value only compared ({@linkcode Probe.compareOnly}), becomes a probe that
 * matches nothing (a lookup finds nothing) and that {@linkcode Probe.storable} refuses.
 */
function tooLarge(p: Probe, bytes: number, limit: number, key: boolean): void {
  if (!key && !p.compareOnly) throw new MapFullError(bytes, limit);
  p.hi = TAG_TOO_LARGE;
  p.lo = 0;
  p.mode = MODE_TOO_LARGE;
  p.needed = bytes;
  p.limit = limit;
}

function setString(p: Probe, s: string, limit: number, key: boolean): void {
  p.hasWords = false;
  if (s.length <= 2) {
    p.hi = TAG_SHORT_STRING | s.length;
    p.lo = (s.charCodeAt(0) || 0) | (s.charCodeAt(1) || 0) << 16;
    p.mode = MODE_INLINE;
  } else if (4 + 2 * s.length > limit) {
    tooLarge(p, 4 + 2 * s.length, limit, key);
  } else {
    p.hi = TAG_STRING;
    p.lo = 0;
    p.str = s;
    p.mode = MODE_STRING;
  }
}

/**
 * The key hash cache entry of string key `s` in `p`'s cache (hashed under k0, k1), or null:
 * none, the cache is off, or `s` is not a key the cache takes (of 3 to 256 units). A map's fast
 * path for string keys under a built-in codec asks this first, then reads the entry's memo
 * words, and makes the probe with {@linkcode setCachedKeyString} only when it must walk.
 */
export function cachedKeyString(p: Probe, s: string, k0: number, k1: number): Int32Array | null {
  const n = s.length;
  const cache = p.keyCache;
  return n > 2 && n <= CACHED_UNITS_MAX && cache !== null ? cache.find(s, k0, k1) : null;
}

/**
 * Makes `p` the probe of string key `s` from its key hash cache entry `entry`
 * ({@linkcode cachedKeyString}), as {@linkcode setKeyString} makes it when the cache holds `s`.
 */
export function setCachedKeyString(p: Probe, s: string, entry: Int32Array): void {
  const need = entry.length - 1 - MEMO_WORDS;
  p.hi = TAG_STRING;
  p.lo = 0;
  p.str = s;
  p.mode = MODE_STRING;
  p.hasWords = true;
  p.words = entry;
  p.hash = entry[need];
  p.memoAt = need + 1;
}

/**
 * {@linkcode setString} for a key, and its hash: a blob string's units are read once, by
 * {@linkcode hashStringWords}, which leaves them in the probe's `words` for the lookup to compare.
 */
function setKeyString(p: Probe, s: string, limit: number, k0: number, k1: number): void {
  const n = s.length;
  if (n <= 2 || 4 + 2 * n > limit || n > 2 * MAX_WORDS) {
    setString(p, s, limit, true);
    hashProbe(p, k0, k1);
    return;
  }
  const entry = cachedKeyString(p, s, k0, k1);
  if (entry !== null) {
    // The entry's words, read in place: the cache never changes the units or the hash of an
    // entry it has handed out.
    setCachedKeyString(p, s, entry);
    return;
  }
  p.hi = TAG_STRING;
  p.lo = 0;
  p.str = s;
  p.mode = MODE_STRING;
  p.hasWords = true;
  const cache = n <= CACHED_UNITS_MAX ? p.keyCache : null;
  const need = (n + 1) >> 1;
  p.memoAt = -1;
  let words = p.scratch;
  if (words.length < need) {
    words = p.scratch = new Int32Array(
      Math.min(MAX_WORDS, Math.max(need, FIRST_WORDS, 2 * words.length)),
    );
  }
  p.words = words;
  p.hash = hashStringWords(s, k0, k1, words);
  if (cache !== null) cache.add(s, k0, k1, p.hash, words, need);
}

/**
 * A probe for a map handle's keys: one that caches the hashes of the short string keys it is
 * given (key_hash_cache.ts). Nested calls' fresh probes go without.
 */
export function keyProbe(): Probe {
  const p = new Probe();
  p.keyCache = new KeyHashCache();
  return p;
}

function setBytes(p: Probe, bytes: Uint8Array, limit: number, key: boolean): void {
  // The built-in byteLength, not length: see typedArrayByteLength (V8's 2 GiB typed arrays, and
  // a patched prototype, which could make the size checked differ from the size written).
  const n = typedArrayByteLength(bytes);
  if (4 + n > limit) return tooLarge(p, 4 + n, limit, key);
  p.hi = TAG_BYTES;
  p.lo = 0;
  p.bytes = bytes;
  p.byteCount = n;
  p.mode = MODE_BYTES;
}

function hashProbe(p: Probe, k0: number, k1: number): void {
  if (p.mode === MODE_INLINE) p.hash = hashWords(p.lo, p.hi, k0, k1);
  else if (p.mode === MODE_STRING) p.hash = hashString(p.str, k0, k1);
  else if (p.mode === MODE_BYTES) {
    p.hash = hashBytes(p.bytes, 0, p.byteCount, k0, k1);
  } else p.hash = 0;
}

function setBigint(p: Probe, n: bigint, limit: number, key: boolean): void {
  if (BigInt.asIntN(32, n) === n) {
    p.hi = TAG_BIGINT32;
    p.lo = Number(n);
    p.mode = MODE_INLINE;
    return;
  }
  // Sign byte, then the magnitude little-endian: one encoding per value. Through hex, which
  // engines convert in linear time (shifting a byte at a time is quadratic).
  const negative = n < 0n;
  const hex = (negative ? -n : n).toString(16);
  const count = (hex.length + 1) >>> 1;
  if (5 + count > limit) return tooLarge(p, 5 + count, limit, key);
  const bytes = new Uint8Array(1 + count);
  bytes[0] = negative ? 1 : 0;
  // Byte i (from 1, least significant first) holds the hex digits at [end - 2, end).
  for (let i = 1, end = hex.length; end > 0; i++, end -= 2) {
    const low = hexDigit(hex.charCodeAt(end - 1));
    bytes[i] = end >= 2 ? (hexDigit(hex.charCodeAt(end - 2)) << 4) | low : low;
  }
  p.hi = TAG_BIGINT;
  p.lo = 0;
  p.bytes = bytes;
  p.byteCount = 1 + count;
  p.mode = MODE_BYTES;
}

function setInline(p: Probe, lo: number, hi: number): void {
  p.hi = hi;
  p.lo = lo;
  p.mode = MODE_INLINE;
}

/**
 * Encodes `v` if it is a boolean, a bigint (`key`: as a key), undefined or null, the primitives
 * keys and values encode alike; returns false, the probe untouched, for anything else.
 */
function setAtom(p: Probe, v: unknown, limit: number, key: boolean): boolean {
  if (typeof v === "boolean") setInline(p, v ? 1 : 0, TAG_BOOL);
  else if (typeof v === "bigint") setBigint(p, v, limit, key);
  else if (v === undefined) setInline(p, 0, TAG_UNDEFINED);
  else if (v === null) setInline(p, 0, TAG_NULL);
  else return false;
  return true;
}

/** Copies the payload of a bytes-like blob at `offset` out of shared memory. */
function readBytes(arena: Arena, offset: number): Uint8Array {
  arena.reach(offset + 4);
  const count = arena.i32[offset >> 2] >>> 0;
  arena.reach(offset + 4 + count);
  return arena.u8.slice(offset + 4, offset + 4 + count);
}

function hexDigit(code: number): number {
  // `bigint.toString(16)` produces only 0-9 and a-f.
  return code <= 0x39 ? code - 0x30 : code - 0x57;
}

const HEX_BYTES: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function readBigint(arena: Arena, offset: number): bigint {
  const bytes = readBytes(arena, offset);
  // Through hex, in linear time, as setBigint encodes.
  let hex = "0x0";
  for (let i = bytes.length - 1; i >= 1; i--) hex += HEX_BYTES[bytes[i]];
  const m = BigInt(hex);
  return bytes[0] === 1 ? -m : m;
}

/**
 * The error the default codec's writer throws for a value that cannot fit. The writer's limit
 * is maxBytes less the blob's 4-byte count, so both are reported 4 bytes larger.
 */
function mapFull(needed: number, limit: number): Error {
  return new MapFullError(needed + 4, limit + 4);
}

/**
 * What a compare-only probe's writer throws for an encoding past its limit, caught where it
 * encodes (module-private: no user code can throw it).
 */
const PAST_LIMIT = new RangeError("past the limit");
function pastLimit(): Error {
  return PAST_LIMIT;
}

/** The default codec: every JavaScript primitive, Uint8Array, arrays and plain objects. */
export class AutoSlots implements SlotCodec<unknown> {
  readonly name = "auto";
  limit = MAX_ENCODED_BYTES;

  toKey(key: unknown, p: Probe, k0: number, k1: number): void {
    if (typeof key === "number") setKeyNumber(p, key, k0, k1);
    else if (typeof key === "string") setKeyString(p, key, this.limit, k0, k1);
    else if (setAtom(p, key, this.limit, true)) hashProbe(p, k0, k1);
    else {
      throw new TypeError(
        `cannot use ${describe(key)} as a key: the default codec takes strings, numbers, ` +
          "bigints, booleans, null and undefined as keys (pass a `keys` codec for others)",
      );
    }
  }

  toValue(value: unknown, p: Probe): void {
    if (typeof value === "number") setNumber(p, value === value ? value : NaN);
    else if (typeof value === "string") setString(p, value, this.limit, false);
    else if (setAtom(p, value, this.limit, false)) return;
    else if (typeof value === "object") {
      const bytes = ownBytes(value);
      if (bytes !== undefined) {
        setBytes(p, bytes, this.limit, false);
        return;
      }
      // The writer belongs to the probe: a getter that calls the map while this one is being
      // read gets a fresh probe, and so a writer of its own.
      let writer = p.writer;
      if (writer === undefined || writer.busy) {
        writer = p.writer = new StructuredWriter(p.compareOnly ? pastLimit : mapFull);
      }
      // Throws TypeError for what it cannot encode; MapFullError, before the work where it can,
      // for what cannot fit in maxBytes (4 bytes are the blob's count); PAST_LIMIT instead for a
      // value only compared, which then matches nothing.
      try {
        writer.encode(value, this.limit - 4);
      } catch (error) {
        if (error !== PAST_LIMIT) throw error;
        tooLarge(p, this.limit + 1, this.limit, false);
        return;
      }
      p.hi = TAG_STRUCT;
      p.lo = 0;
      p.bytes = writer.bytes;
      p.byteCount = writer.length;
      p.mode = MODE_BYTES;
    } else {
      throw new TypeError(`cannot store ${describe(value)}: the default codec cannot encode it`);
    }
  }

  decode(arena: Arena, lo: number, hi: number): unknown {
    if ((hi >>> 20) !== 0xfff || (hi & 0xf0000) === 0) {
      w32[0] = lo;
      w32[1] = hi;
      return f64[0];
    }
    switch (hi & 0xffff0000) {
      case TAG_BOOL:
        return lo === 1;
      case TAG_UNDEFINED:
        return undefined;
      case TAG_NULL:
        return null;
      case TAG_BIGINT32:
        return BigInt(lo);
      case TAG_SHORT_STRING: {
        const n = hi & 0xffff;
        return n === 0
          ? ""
          : n === 1
          ? String.fromCharCode(lo & 0xffff)
          : String.fromCharCode(lo & 0xffff, lo >>> 16);
      }
      case TAG_STRING:
        return readString(arena, lo);
      case TAG_BIGINT:
        return readBigint(arena, lo);
      case TAG_BYTES:
        return readBytes(arena, lo);
      case TAG_STRUCT: {
        arena.reach(lo + 4);
        const count = arena.i32[lo >> 2] >>> 0;
        arena.reach(lo + 4 + count);
        return decodeStructured(arena.u8, lo + 4, count);
      }
    }
    throw new RangeError(`corrupt slot tag 0x${(hi >>> 0).toString(16)}`);
  }
}

/** Numbers only, stored as float64. */
export class Float64Slots implements SlotCodec<number> {
  readonly name = "float64";
  limit = MAX_ENCODED_BYTES;

  toKey(key: number, p: Probe, k0: number, k1: number): void {
    if (typeof key !== "number") throw notA("number", key);
    setKeyNumber(p, key, k0, k1);
  }

  toValue(value: number, p: Probe): void {
    if (typeof value !== "number") throw notA("number", value);
    setNumber(p, value === value ? value : NaN);
  }

  decode(_arena: Arena, lo: number, hi: number): number {
    w32[0] = lo;
    w32[1] = hi;
    return f64[0];
  }
}

/** Integers in the int32 range, stored as float64 like every number, so lookups share a path. */
export class Int32Slots implements SlotCodec<number> {
  readonly name = "int32";
  limit = MAX_ENCODED_BYTES;

  toKey(key: number, p: Probe, k0: number, k1: number): void {
    setKeyNumber(p, checkInt32(key), k0, k1);
  }

  toValue(value: number, p: Probe): void {
    setNumber(p, checkInt32(value));
  }

  decode(_arena: Arena, lo: number, hi: number): number {
    w32[0] = lo;
    w32[1] = hi;
    return f64[0];
  }
}

function checkInt32(value: number): number {
  // The type first: `|` would call an object's valueOf, and throws for a bigint.
  if (typeof value !== "number") throw notA("number", value);
  // value | 0, not value: -0 is stored as 0, as the codec's bytes hold it (an int32 has no -0),
  // so that a load gives 0 back and 0 compares equal to it.
  if ((value | 0) === value) return value | 0;
  throw new RangeError(`the int32 codec takes integers in [-2^31, 2^31), got ${value}`);
}

/** Strings only. */
export class StringSlots implements SlotCodec<string> {
  readonly name = "string";
  limit = MAX_ENCODED_BYTES;

  toKey(key: string, p: Probe, k0: number, k1: number): void {
    if (typeof key !== "string") throw notA("string", key);
    setKeyString(p, key, this.limit, k0, k1);
  }

  toValue(value: string, p: Probe): void {
    if (typeof value !== "string") throw notA("string", value);
    setString(p, value, this.limit, false);
  }

  decode(arena: Arena, lo: number, hi: number): string {
    if (hi === TAG_STRING) return readString(arena, lo);
    const n = hi & 0xffff;
    return n === 0 ? "" : n === 1 ? String.fromCharCode(lo & 0xffff) : String.fromCharCode(
      lo & 0xffff,
      lo >>> 16,
    );
  }
}

/** Uint8Arrays only, copied in and out. */
export class BytesSlots implements SlotCodec<Uint8Array> {
  readonly name = "bytes";
  limit = MAX_ENCODED_BYTES;

  toKey(key: Uint8Array, p: Probe, k0: number, k1: number): void {
    const bytes = ownBytes(key);
    if (bytes === undefined) throw notA("Uint8Array", key);
    setBytes(p, bytes, this.limit, true);
    // A copy: a getter of the value, encoded after the key was hashed, may write the key's
    // memory (copyBytes).
    if (p.mode === MODE_BYTES) p.bytes = copyBytes(p.bytes);
    hashProbe(p, k0, k1);
  }

  toValue(value: Uint8Array, p: Probe): void {
    const bytes = ownBytes(value);
    if (bytes === undefined) throw notA("Uint8Array", value);
    setBytes(p, bytes, this.limit, false);
  }

  decode(arena: Arena, lo: number, _hi: number): Uint8Array {
    return readBytes(arena, lo);
  }
}

/** The public codec shape, as the engine sees a user's codec. */
export interface BytesCodec<T> {
  readonly name: string;
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/**
 * What a user codec's encode() returned, when it is not a Uint8Array: as describe() names it,
 * but an object whose prototype is Uint8Array's (a Proxy of one, or one made with
 * Object.create) is not named a Uint8Array, which the error would then contradict.
 */
function describeNotBytes(value: unknown): string {
  const named = describe(value);
  return named === "a Uint8Array" ? "an object that is not a real Uint8Array (a Proxy?)" : named;
}

/** Adapts a user's {@linkcode BytesCodec}: every key or value is a bytes blob. */
export class UserSlots<T> implements SlotCodec<T> {
  readonly name: string;
  limit = MAX_ENCODED_BYTES;
  #codec: BytesCodec<T>;

  /** `name`: the codec's name as read once and checked (slotCodecOf). */
  constructor(codec: BytesCodec<T>, name: string) {
    this.name = name;
    this.#codec = codec;
  }

  /** The user's codec this wraps (two objects attached with the same one may share a seat). */
  get codec(): BytesCodec<T> {
    return this.#codec;
  }

  // The codec's bytes are copied once their size is checked: see copyBytes.
  toKey(key: T, p: Probe, k0: number, k1: number): void {
    setBytes(p, this.#encode(key), this.limit, true);
    if (p.mode === MODE_BYTES) p.bytes = copyBytes(p.bytes);
    hashProbe(p, k0, k1);
  }

  toValue(value: T, p: Probe): void {
    setBytes(p, this.#encode(value), this.limit, false);
    if (p.mode === MODE_BYTES) p.bytes = copyBytes(p.bytes);
  }

  #encode(value: T): Uint8Array {
    const encoded = this.#codec.encode(value);
    const bytes = ownBytes(encoded);
    if (bytes === undefined) {
      throw new TypeError(
        `codec "${this.name}" encode() returned ${describeNotBytes(encoded)}, not a Uint8Array`,
      );
    }
    return bytes;
  }

  decode(arena: Arena, lo: number, _hi: number): T {
    return this.#codec.decode(readBytes(arena, lo));
  }

  /**
   * The first half of {@linkcode decode}: copies the encoded bytes of the slot out of shared
   * memory, running no user code, so that a reader can validate what it read before the user's
   * decode runs (and perhaps calls the map).
   */
  copy(arena: Arena, lo: number): Uint8Array {
    return readBytes(arena, lo);
  }

  /** The second half of {@linkcode decode}: the user's decode of bytes from {@linkcode copy}. */
  fromCopy(bytes: Uint8Array): T {
    return this.#codec.decode(bytes);
  }
}

function notA(what: string, value: unknown): TypeError {
  return new TypeError(`expected ${withArticle(what)}, got ${describe(value)}`);
}
