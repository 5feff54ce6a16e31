/**
 * Internal. Keyed 32-bit hashing of encoded keys: HalfSipHash-1-3.
 *
 * Every arena draws a secret 64-bit key from `crypto.getRandomValues` (the header words
 * `H_SEED0` and `H_SEED1`, see arena.ts), and every key is hashed under it with HalfSipHash-1-3:
 * the keyed hash the Linux kernel uses for its hash tables in 32-bit arithmetic (`hsiphash`), the
 * 32-bit sibling of the SipHash-1-3 that Rust's and Python's tables use. Each output bit depends
 * on the key and on every input bit, so the bucket (the hash's low B bits) and the tophash (its
 * top byte) are both good.
 *
 * What it guarantees. Keys chosen without knowledge of a map's key, precomputed sets included,
 * land in its buckets and tophashes like random keys, so their chains are as long as random
 * keys' would be. Collisions cannot be precomputed: every map has its own key, and nothing about
 * the inputs alone predicts how they compare under it. (The MurmurHash3-style mixes this replaced
 * took a per-map seed too, but had differences that cancel whatever the seed: 32,768 crafted
 * 60-character strings shared one hash in every map. SipHash was designed against that.)
 *
 * What it does not guarantee:
 *
 * - Secrecy of the key from whoever holds the buffer. Every worker the map is shared with can
 *   read the key from the header; that is fine, since such a worker can write the map anyway.
 *   Keys may come from untrusted parties; the buffer must not go to them.
 * - Immunity to adaptive attacks. An attacker that inserts keys and times the map's operations
 *   can tell which of its keys share a bucket. As a pseudorandom function, HalfSipHash tells it
 *   nothing about keys it has not tried, so each colliding key costs it about as many tries as
 *   the table has buckets, and growth splits buckets again: the damage grows with the attacker's
 *   own work, never the 2^n keys for n units of work of a precomputed multicollision. The key
 *   lasts as long as the map (clear() keeps it), and so does what was learned about it.
 * - A cryptographic margin. HalfSipHash-1-3 with a 64-bit key and 32-bit output is a hash-table
 *   PRF, not a MAC; no attack on it is known that would matter here, but its margin is thinner
 *   than SipHash-2-4's.
 *
 * Inputs. A key that fits in its 64-bit slot is hashed as its two words (lo, hi): the 8 bytes lo
 * then hi, the kernel's `hsiphash_2u32(lo, hi, key)`, written out flat so that engines inline it
 * into the lookups. Strings are hashed from their UTF-16 code units, two to a 32-bit word (their
 * UTF-16LE bytes), whether they come from a JavaScript string or from a blob in shared memory: a
 * stored key rehashes to the value its probe had, as growth and iteration require. Bytes keys
 * (user codecs, big bigints) are hashed as their bytes. Outputs are HalfSipHash-1-3's, as int32,
 * and match the kernel's test vectors (tests/hash_test.ts).
 *
 * @module
 */

// HalfSipHash's initial constants for v2 and v3 ("lyge", "tedb").
const IV2 = 0x6c796765;
const IV3 = 0x74656462;

/**
 * The finalization: the last block `b` (the input length's low byte in the top byte, the
 * remaining one to three bytes below), one compression round, then three finalization rounds.
 */
function finish(v0: number, v1: number, v2: number, v3: number, b: number): number {
  v3 ^= b;
  v0 = (v0 + v1) | 0;
  v1 = ((v1 << 5) | (v1 >>> 27)) ^ v0;
  v0 = (v0 << 16) | (v0 >>> 16);
  v2 = (v2 + v3) | 0;
  v3 = ((v3 << 8) | (v3 >>> 24)) ^ v2;
  v0 = (v0 + v3) | 0;
  v3 = ((v3 << 7) | (v3 >>> 25)) ^ v0;
  v2 = (v2 + v1) | 0;
  v1 = ((v1 << 13) | (v1 >>> 19)) ^ v2;
  v2 = (v2 << 16) | (v2 >>> 16);
  v0 ^= b;
  v2 ^= 0xff;
  for (let r = 0; r < 3; r++) {
    v0 = (v0 + v1) | 0;
    v1 = ((v1 << 5) | (v1 >>> 27)) ^ v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = ((v3 << 8) | (v3 >>> 24)) ^ v2;
    v0 = (v0 + v3) | 0;
    v3 = ((v3 << 7) | (v3 >>> 25)) ^ v0;
    v2 = (v2 + v1) | 0;
    v1 = ((v1 << 13) | (v1 >>> 19)) ^ v2;
    v2 = (v2 << 16) | (v2 >>> 16);
  }
  return v1 ^ v3;
}

/**
 * Hashes the 64-bit slot value (lo, hi) under the key (k0, k1): 8 bytes, lo first. The six
 * rounds (two words, the length block, three finalization rounds) are written out: with
 * {@linkcode finish} called, JavaScriptCore did not inline it, and the call cost more than the
 * rounds' work.
 */
export function hashWords(lo: number, hi: number, k0: number, k1: number): number {
  let v0 = k0;
  let v1 = k1;
  let v2 = k0 ^ IV2;
  let v3 = k1 ^ IV3 ^ lo;
  v0 = (v0 + v1) | 0;
  v1 = ((v1 << 5) | (v1 >>> 27)) ^ v0;
  v0 = (v0 << 16) | (v0 >>> 16);
  v2 = (v2 + v3) | 0;
  v3 = ((v3 << 8) | (v3 >>> 24)) ^ v2;
  v0 = (v0 + v3) | 0;
  v3 = ((v3 << 7) | (v3 >>> 25)) ^ v0;
  v2 = (v2 + v1) | 0;
  v1 = ((v1 << 13) | (v1 >>> 19)) ^ v2;
  v2 = (v2 << 16) | (v2 >>> 16);
  v0 ^= lo;
  v3 ^= hi;
  v0 = (v0 + v1) | 0;
  v1 = ((v1 << 5) | (v1 >>> 27)) ^ v0;
  v0 = (v0 << 16) | (v0 >>> 16);
  v2 = (v2 + v3) | 0;
  v3 = ((v3 << 8) | (v3 >>> 24)) ^ v2;
  v0 = (v0 + v3) | 0;
  v3 = ((v3 << 7) | (v3 >>> 25)) ^ v0;
  v2 = (v2 + v1) | 0;
  v1 = ((v1 << 13) | (v1 >>> 19)) ^ v2;
  v2 = (v2 << 16) | (v2 >>> 16);
  v0 ^= hi;
  v3 ^= 8 << 24;
  v0 = (v0 + v1) | 0;
  v1 = ((v1 << 5) | (v1 >>> 27)) ^ v0;
  v0 = (v0 << 16) | (v0 >>> 16);
  v2 = (v2 + v3) | 0;
  v3 = ((v3 << 8) | (v3 >>> 24)) ^ v2;
  v0 = (v0 + v3) | 0;
  v3 = ((v3 << 7) | (v3 >>> 25)) ^ v0;
  v2 = (v2 + v1) | 0;
  v1 = ((v1 << 13) | (v1 >>> 19)) ^ v2;
  v2 = (v2 << 16) | (v2 >>> 16);
  v0 ^= 8 << 24;
  v2 ^= 0xff;
  v0 = (v0 + v1) | 0;
  v1 = ((v1 << 5) | (v1 >>> 27)) ^ v0;
  v0 = (v0 << 16) | (v0 >>> 16);
  v2 = (v2 + v3) | 0;
  v3 = ((v3 << 8) | (v3 >>> 24)) ^ v2;
  v0 = (v0 + v3) | 0;
  v3 = ((v3 << 7) | (v3 >>> 25)) ^ v0;
  v2 = (v2 + v1) | 0;
  v1 = ((v1 << 13) | (v1 >>> 19)) ^ v2;
  v2 = (v2 << 16) | (v2 >>> 16);
  v0 = (v0 + v1) | 0;
  v1 = ((v1 << 5) | (v1 >>> 27)) ^ v0;
  v0 = (v0 << 16) | (v0 >>> 16);
  v2 = (v2 + v3) | 0;
  v3 = ((v3 << 8) | (v3 >>> 24)) ^ v2;
  v0 = (v0 + v3) | 0;
  v3 = ((v3 << 7) | (v3 >>> 25)) ^ v0;
  v2 = (v2 + v1) | 0;
  v1 = ((v1 << 13) | (v1 >>> 19)) ^ v2;
  v2 = (v2 << 16) | (v2 >>> 16);
  v0 = (v0 + v1) | 0;
  v1 = ((v1 << 5) | (v1 >>> 27)) ^ v0;
  v0 = (v0 << 16) | (v0 >>> 16);
  v2 = (v2 + v3) | 0;
  v3 = ((v3 << 8) | (v3 >>> 24)) ^ v2;
  v0 = (v0 + v3) | 0;
  v3 = ((v3 << 7) | (v3 >>> 25)) ^ v0;
  v2 = (v2 + v1) | 0;
  v1 = ((v1 << 13) | (v1 >>> 19)) ^ v2;
  v2 = (v2 << 16) | (v2 >>> 16);
  return v1 ^ v3;
}

/** Hashes the UTF-16 code units of `s`. Equals {@linkcode hashUnits} over the same units. */
export function hashString(s: string, k0: number, k1: number): number {
  const n = s.length;
  let v0 = k0;
  let v1 = k1;
  let v2 = k0 ^ IV2;
  let v3 = k1 ^ IV3;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const m = s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16);
    v3 ^= m;
    v0 = (v0 + v1) | 0;
    v1 = ((v1 << 5) | (v1 >>> 27)) ^ v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = ((v3 << 8) | (v3 >>> 24)) ^ v2;
    v0 = (v0 + v3) | 0;
    v3 = ((v3 << 7) | (v3 >>> 25)) ^ v0;
    v2 = (v2 + v1) | 0;
    v1 = ((v1 << 13) | (v1 >>> 19)) ^ v2;
    v2 = (v2 << 16) | (v2 >>> 16);
    v0 ^= m;
  }
  // n << 25 is the byte length 2n, mod 256, in the top byte.
  return finish(v0, v1, v2, v3, i < n ? (n << 25) | s.charCodeAt(i) : n << 25);
}

/**
 * {@linkcode hashString}, also writing the units it reads to `out`, two to an int32 word as a
 * little-endian Uint16Array would hold them (an odd last unit alone in its word, high half 0):
 * `out` must have room for `(s.length + 1) >> 1` words. A lookup then compares a stored blob's
 * units with `out` a word at a time instead of reading the string a second time.
 */
export function hashStringWords(s: string, k0: number, k1: number, out: Int32Array): number {
  const n = s.length;
  let v0 = k0;
  let v1 = k1;
  let v2 = k0 ^ IV2;
  let v3 = k1 ^ IV3;
  let i = 0;
  let j = 0;
  for (; i + 1 < n; i += 2, j++) {
    const m = s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16);
    out[j] = m;
    v3 ^= m;
    v0 = (v0 + v1) | 0;
    v1 = ((v1 << 5) | (v1 >>> 27)) ^ v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = ((v3 << 8) | (v3 >>> 24)) ^ v2;
    v0 = (v0 + v3) | 0;
    v3 = ((v3 << 7) | (v3 >>> 25)) ^ v0;
    v2 = (v2 + v1) | 0;
    v1 = ((v1 << 13) | (v1 >>> 19)) ^ v2;
    v2 = (v2 << 16) | (v2 >>> 16);
    v0 ^= m;
  }
  if (i < n) {
    const last = s.charCodeAt(i);
    out[j] = last;
    return finish(v0, v1, v2, v3, (n << 25) | last);
  }
  return finish(v0, v1, v2, v3, n << 25);
}

/** Hashes `n` code units of `u16` from index `start`. */
export function hashUnits(
  u16: Uint16Array,
  start: number,
  n: number,
  k0: number,
  k1: number,
): number {
  let v0 = k0;
  let v1 = k1;
  let v2 = k0 ^ IV2;
  let v3 = k1 ^ IV3;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const m = u16[start + i] | (u16[start + i + 1] << 16);
    v3 ^= m;
    v0 = (v0 + v1) | 0;
    v1 = ((v1 << 5) | (v1 >>> 27)) ^ v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = ((v3 << 8) | (v3 >>> 24)) ^ v2;
    v0 = (v0 + v3) | 0;
    v3 = ((v3 << 7) | (v3 >>> 25)) ^ v0;
    v2 = (v2 + v1) | 0;
    v1 = ((v1 << 13) | (v1 >>> 19)) ^ v2;
    v2 = (v2 << 16) | (v2 >>> 16);
    v0 ^= m;
  }
  return finish(v0, v1, v2, v3, i < n ? (n << 25) | u16[start + i] : n << 25);
}

/** Hashes `n` bytes of `u8` from index `start`. */
export function hashBytes(
  u8: Uint8Array,
  start: number,
  n: number,
  k0: number,
  k1: number,
): number {
  let v0 = k0;
  let v1 = k1;
  let v2 = k0 ^ IV2;
  let v3 = k1 ^ IV3;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    const p = start + i;
    const m = u8[p] | (u8[p + 1] << 8) | (u8[p + 2] << 16) | (u8[p + 3] << 24);
    v3 ^= m;
    v0 = (v0 + v1) | 0;
    v1 = ((v1 << 5) | (v1 >>> 27)) ^ v0;
    v0 = (v0 << 16) | (v0 >>> 16);
    v2 = (v2 + v3) | 0;
    v3 = ((v3 << 8) | (v3 >>> 24)) ^ v2;
    v0 = (v0 + v3) | 0;
    v3 = ((v3 << 7) | (v3 >>> 25)) ^ v0;
    v2 = (v2 + v1) | 0;
    v1 = ((v1 << 13) | (v1 >>> 19)) ^ v2;
    v2 = (v2 << 16) | (v2 >>> 16);
    v0 ^= m;
  }
  let b = n << 24;
  for (let s = 0; i < n; i++, s += 8) b |= u8[start + i] << s;
  return finish(v0, v1, v2, v3, b);
}
