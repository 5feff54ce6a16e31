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

import { type Arena, H_ALLOC_LOCK, H_BYTES_USED, H_FREE, H_TOP } from "./arena.ts";
import { lockWord, unlockWord } from "./futex.ts";
import { MapFullError } from "../errors.ts";

/** Number of size classes; classes above the arena's maxBytes are never used. */
export const SIZE_CLASSES = 192;

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
