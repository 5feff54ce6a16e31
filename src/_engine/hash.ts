/**
 * Internal. Seeded 32-bit hashing of encoded keys.
 *
 * Every arena draws a random seed, so the bucket a key lands in differs from map to map and an
 * attacker cannot precompute keys that collide (Go seeds each map the same way). Keys that fit
 * in a 64-bit slot are hashed from their two words with no allocation; strings are hashed from
 * their UTF-16 code units, two at a time, whether they come from a JavaScript string or from a
 * blob in shared memory, so a stored key rehashes to the same value during growth. Bytes keys
 * (user codecs, big bigints) are hashed four bytes at a time.
 *
 * The string and byte hashes follow MurmurHash3's x86_32 block and finalizer steps. The word
 * hash is a shorter mix of the same family: the tables use both the low bits of a hash (the
 * bucket) and the top byte (the tophash), so both ends must depend on every input bit.
 *
 * @module
 */

const C1 = 0xcc9e2d51 | 0;
const C2 = 0x1b873593;

/** Hashes the 64-bit slot value (lo, hi). */
export function hashWords(lo: number, hi: number, seed: number): number {
  let h = Math.imul(lo ^ seed, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 16) ^ hi, 0xc2b2ae35);
  h ^= h >>> 15;
  h = Math.imul(h ^ seed, 0x27d4eb2f);
  return h ^ (h >>> 16);
}

function block(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, C2);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function tail(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return h ^ Math.imul(k, C2);
}

function finish(h: number, length: number): number {
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Hashes the UTF-16 code units of `s`. Equals {@linkcode hashUnits} over the same units. */
export function hashString(s: string, seed: number): number {
  const n = s.length;
  let h = seed;
  let i = 0;
  for (; i + 1 < n; i += 2) h = block(h, s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16));
  if (i < n) h = tail(h, s.charCodeAt(i));
  return finish(h, n);
}

/** Hashes `n` code units of `u16` from index `start`. */
export function hashUnits(u16: Uint16Array, start: number, n: number, seed: number): number {
  let h = seed;
  let i = 0;
  for (; i + 1 < n; i += 2) h = block(h, u16[start + i] | (u16[start + i + 1] << 16));
  if (i < n) h = tail(h, u16[start + i]);
  return finish(h, n);
}

/** Hashes `n` bytes of `u8` from index `start`. */
export function hashBytes(u8: Uint8Array, start: number, n: number, seed: number): number {
  let h = seed;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    const p = start + i;
    h = block(h, u8[p] | (u8[p + 1] << 8) | (u8[p + 2] << 16) | (u8[p + 3] << 24));
  }
  let k = 0;
  for (let s = 0; i < n; i++, s += 8) k |= u8[start + i] << s;
  if ((n & 3) !== 0) h = tail(h, k);
  return finish(h, n);
}
