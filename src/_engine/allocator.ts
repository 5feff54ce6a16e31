/**
 * Internal. The arena's allocator: size classes with a free list each, and a bump pointer.
 *
 * Sizes up to 128 bytes come in steps of 16. Above that every power of two is split into eight
 * steps (144, 160, ..., 256, 288, 320, ...), so no block wastes more than an eighth of itself,
 * and a Go bucket array (144 bytes times a power of two) fits its class exactly.
 *
 * A free block's first word links to the next free block of its class; the list heads live in
 * the arena header. Blocks are never split or merged: a freed block is reused only by a request
 * of the same class. Callers pass the size back to {@linkcode release} (sized deallocation), so
 * blocks carry no header. Every block is 16-byte aligned, which keeps 8-byte fields aligned.
 *
 * Thread safety: when the arena is `locking` every operation holds the allocator lock (a futex
 * word in the header). A GoMap arena does not lock, because only its single writer allocates,
 * and the map's writing flag already excludes a second writer.
 *
 * @module
 */

import { type Arena, H_ALLOC_LOCK, H_BYTES_USED, H_FREE, H_TOP, roundUp } from "./arena.ts";
import { lockWord, unlockWord } from "./futex.ts";
import { MapFullError } from "../errors.ts";

// 192 size classes cover blocks of up to 2^30 bytes (the largest maxBytes); their free-list
// heads fill header words 42..233 (arena.ts).

/** The size class of a request of `size` bytes (1 <= size <= 2^30). */
export function sizeClass(size: number): number {
  if (size <= 128) return size <= 16 ? 0 : ((size + 15) >> 4) - 1;
  const k = 31 - Math.clz32(size - 1); // 2^k < size <= 2^(k+1)
  return 8 + ((k - 7) << 3) + ((size - 1 - (1 << k)) >> (k - 3));
}

/** The block size of class `c`. */
export function classSize(c: number): number {
  if (c < 8) return (c + 1) << 4;
  const k = 7 + ((c - 8) >> 3);
  return (1 << k) + (((c - 8) & 7) + 1) * (1 << (k - 3));
}

/**
 * Allocates a block of at least `size` bytes and returns its offset. Its contents are zero when
 * `zero` is set, unspecified otherwise. Throws {@linkcode MapFullError} when the arena would
 * pass maxBytes; nothing changes then.
 */
export function allocate(arena: Arena, size: number, zero: boolean): number {
  const c = sizeClass(size);
  const bytes = classSize(c);
  let offset: number;
  if (arena.locking) lockWord(arena.i32, H_ALLOC_LOCK);
  try {
    offset = arena.i32[H_FREE + c];
    if (offset !== 0) {
      arena.reach(offset + bytes);
      arena.i32[H_FREE + c] = arena.i32[offset >> 2];
      if (zero) arena.u8.fill(0, offset, offset + bytes);
      else arena.i32[offset >> 2] = 0;
    } else {
      offset = arena.i32[H_TOP];
      if (!arena.grow(offset + bytes)) throw new MapFullError(bytes, arena.maxBytes);
      // Memory past the top has never been handed out, so it is still zero.
      arena.i32[H_TOP] = offset + bytes;
    }
    arena.i32[H_BYTES_USED] += bytes;
  } finally {
    if (arena.locking) unlockWord(arena.i32, H_ALLOC_LOCK);
  }
  return offset;
}

/** Returns a block of `size` bytes (the size it was allocated with) to its free list. */
export function release(arena: Arena, offset: number, size: number): void {
  const c = sizeClass(size);
  if (arena.locking) lockWord(arena.i32, H_ALLOC_LOCK);
  arena.reach(offset + 4);
  arena.i32[offset >> 2] = arena.i32[H_FREE + c];
  arena.i32[H_FREE + c] = offset;
  arena.i32[H_BYTES_USED] -= classSize(c);
  if (arena.locking) unlockWord(arena.i32, H_ALLOC_LOCK);
}

/** Bytes allocated and not freed. */
export function bytesUsed(arena: Arena): number {
  return Atomics.load(arena.i32, H_BYTES_USED);
}

// ---- Per-participant caches --------------------------------------------------------------
//
// A SyncMap allocates a value record on every store and frees one for every store that
// replaced another. Taking the allocator lock for each would serialize workers that write
// disjoint keys, the very case sync.Map is for. So, like the per-processor caches of Go's
// allocator, each participant keeps its own free lists for small blocks, in a cache block of
// its own (in shared memory, so that the cache of a worker that is gone can be given back):
// one [head, count] pair per cached class, then the bytes the cache holds. Only the owner
// touches its cache, with plain reads and writes; it refills a class from the global lists, or
// spills half of it back, a batch at a time under the lock. The global count of bytes in use
// includes blocks sitting in caches; {@linkcode cachedBytes} says how many those are.

/** Classes kept in per-participant caches: blocks of up to 256 bytes. */
const CACHED_CLASSES = 16;
const CACHE_TOTAL = 2 * CACHED_CLASSES;
const CACHE_RAW = CACHE_TOTAL + 1; // the block as allocated, for freeing it
/**
 * Bytes of a cache block as allocated: its words rounded up to whole 64-byte lines, plus a
 * line's worth of slack to align them. Its owner writes it on every allocation, so it must not
 * share a cache line with anything another worker writes.
 */
const CACHE_BYTES = roundUp((CACHE_RAW + 1) * 4, 64) + 64;
const REFILL = 16;
const SPILL_AT = 64;

/** Makes an empty cache block and returns its (64-byte aligned) offset. */
export function newCache(arena: Arena): number {
  const raw = allocate(arena, CACHE_BYTES, true);
  const cache = roundUp(raw, 64);
  arena.i32[(cache >> 2) + CACHE_RAW] = raw;
  return cache;
}

/** Frees a cache block (flush it first). */
export function freeCache(arena: Arena, cache: number): void {
  release(arena, arena.i32[(cache >> 2) + CACHE_RAW], CACHE_BYTES);
}

/** {@linkcode allocate} through the cache at `cache` (its contents are then unspecified). */
export function cacheAllocate(arena: Arena, cache: number, size: number): number {
  const c = sizeClass(size);
  if (c >= CACHED_CLASSES) return allocate(arena, size, false);
  const w = (cache >> 2) + 2 * c;
  let head = arena.i32[w];
  if (head === 0) {
    refill(arena, cache, c);
    head = arena.i32[w];
  }
  const bytes = classSize(c);
  if (head + bytes > arena.bytes) arena.reach(head + bytes);
  const i32 = arena.i32;
  i32[w] = i32[head >> 2];
  i32[w + 1]--;
  i32[(cache >> 2) + CACHE_TOTAL] -= bytes;
  i32[head >> 2] = 0;
  return head;
}

/** {@linkcode release} through the cache at `cache`. */
export function cacheRelease(arena: Arena, cache: number, offset: number, size: number): void {
  const c = sizeClass(size);
  if (c >= CACHED_CLASSES) {
    release(arena, offset, size);
    return;
  }
  const w = (cache >> 2) + 2 * c;
  arena.reach(offset + 4);
  const i32 = arena.i32;
  i32[offset >> 2] = i32[w];
  i32[w] = offset;
  i32[(cache >> 2) + CACHE_TOTAL] += classSize(c);
  if (++i32[w + 1] >= SPILL_AT) spill(arena, cache, c, SPILL_AT / 2);
}

/** Gives every cached block back to the global lists; the cache block stays, empty. */
export function flushCache(arena: Arena, cache: number): void {
  for (let c = 0; c < CACHED_CLASSES; c++) {
    const n = arena.i32[(cache >> 2) + 2 * c + 1];
    if (n > 0) spill(arena, cache, c, n);
  }
}

/** Bytes sitting in the cache at `cache`, free but not in the global lists. */
export function cachedBytes(arena: Arena, cache: number): number {
  return arena.i32[(cache >> 2) + CACHE_TOTAL];
}

/** Moves up to {@linkcode REFILL} blocks of class `c` from the global lists into the cache. */
function refill(arena: Arena, cache: number, c: number): void {
  const bytes = classSize(c);
  const w = (cache >> 2) + 2 * c;
  let taken = 0;
  lockWord(arena.i32, H_ALLOC_LOCK);
  try {
    for (; taken < REFILL; taken++) {
      let block = arena.i32[H_FREE + c];
      if (block !== 0) {
        arena.reach(block + 4);
        arena.i32[H_FREE + c] = arena.i32[block >> 2];
      } else {
        block = arena.i32[H_TOP];
        if (!arena.grow(block + bytes)) {
          if (taken > 0) break;
          throw new MapFullError(bytes, arena.maxBytes);
        }
        arena.i32[H_TOP] = block + bytes;
      }
      arena.i32[block >> 2] = arena.i32[w];
      arena.i32[w] = block;
    }
    arena.i32[H_BYTES_USED] += taken * bytes;
  } finally {
    unlockWord(arena.i32, H_ALLOC_LOCK);
  }
  arena.i32[w + 1] += taken;
  arena.i32[(cache >> 2) + CACHE_TOTAL] += taken * bytes;
}

/** Moves `n` blocks of class `c` from the cache back to the global lists. */
function spill(arena: Arena, cache: number, c: number, n: number): void {
  const bytes = classSize(c);
  const w = (cache >> 2) + 2 * c;
  lockWord(arena.i32, H_ALLOC_LOCK);
  try {
    for (let j = 0; j < n; j++) {
      const block = arena.i32[w];
      arena.i32[w] = arena.i32[block >> 2];
      arena.i32[block >> 2] = arena.i32[H_FREE + c];
      arena.i32[H_FREE + c] = block;
    }
    arena.i32[H_BYTES_USED] -= n * bytes;
  } finally {
    unlockWord(arena.i32, H_ALLOC_LOCK);
  }
  arena.i32[w + 1] -= n;
  arena.i32[(cache >> 2) + CACHE_TOTAL] -= n * bytes;
}
