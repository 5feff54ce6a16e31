/**
 * Internal. The allocator's layout (allocator.ts): its size classes, its words in the arena
 * header, and the headers of heap chunks (heap.ts) and spans (spans.ts). The other allocator
 * files reach these words only through the names defined here.
 *
 * @module
 */

import { roundUp } from "./arena.ts";
import * as arena from "./arena.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { H_ALLOC } = arena;

// ---- Size classes ------------------------------------------------------------------------

// 16-byte steps to 128, then four per power of two, plus 144, 288 and 576: a Go bucket array
// of 1, 2 or 4 buckets (144 bytes each) fits its class exactly. The largest is 1008, not 1024:
// four of them fill a 4 KiB span's 4,032 bytes of blocks, where three of 1024 would leave 960.
export const CLASS_SIZES = [
  16,
  32,
  48,
  64,
  80,
  96,
  112,
  128,
  144,
  160,
  192,
  224,
  256,
  288,
  320,
  384,
  448,
  512,
  576,
  640,
  768,
  896,
  1008,
];
export const NCLASSES = CLASS_SIZES.length;
/** The largest block a span holds; larger ones are heap chunks. */
export const SMALL_MAX = 1008;
/** Class of a request, indexed by its size in 16-byte units, rounded up. */
const CLASS_OF = new Uint8Array(SMALL_MAX / 16 + 1);
for (let u = 0, c = 0; u <= SMALL_MAX / 16; u++) {
  while (CLASS_SIZES[c] < u * 16) c++;
  CLASS_OF[u] = c;
}

/** The size class of a small request of `size` bytes (1 <= size <= SMALL_MAX). */
export function sizeClass(size: number): number {
  return CLASS_OF[(size + 15) >> 4];
}

/**
 * Bytes of arena a lone block of `size` may take: a whole span for a small one (the first of
 * its class), its heap chunk otherwise. For sizing checks.
 */
export function footprint(size: number): number {
  return size <= SMALL_MAX ? SPAN_BYTES : chunkSizeFor(size);
}

/**
 * Room a map needs beyond its fixed blocks to be of any use: spans for its first entries,
 * records and keys, a participant's cache and retire list, and a table's growth.
 */
export const HEADROOM_BYTES = 32 * 1024;

/** Bytes a block of `size` takes, as `bytesUsed` counts it: its class, or its heap chunk. */
export function blockSize(size: number): number {
  return size <= SMALL_MAX ? CLASS_SIZES[sizeClass(size)] : chunkSizeFor(size) - CHUNK_HEADER;
}

// ---- Allocator state in the arena header (words from H_ALLOC) -----------------------------

/** Per class: the first span with room, 0 when none. */
export const A_LISTS = H_ALLOC;
/** Per class: an empty span kept for reuse, 0 when none. */
export const A_SPARE = H_ALLOC + NCLASSES;
export const NBINS = 108;
export const A_BINS = H_ALLOC + 2 * NCLASSES;
export const A_BITMAP = A_BINS + NBINS;
export const BITMAP_WORDS = 4;

// ---- Heap chunks ---------------------------------------------------------------------------

export const CHUNK_HEADER = 16;
/** A free chunk needs only its header: size, the two bin links, and (last word) its footer. */
export const MIN_CHUNK = 16;
/** Words of a free chunk's next and previous links in its bin, from its first word. */
export const C_NEXT = 1, C_PREV = 2;
/**
 * The flags in the low bits of a chunk's size word: in use, the chunk before it in use, a span;
 * FLAGS masks them all.
 */
export const INUSE = 1, PREV_INUSE = 2, SPAN_FLAG = 4, FLAGS = 15;

export function chunkSizeFor(size: number): number {
  return roundUp(size + CHUNK_HEADER, 16);
}

export function binOf(size: number): number {
  const k = 31 - Math.clz32(size); // 4 <= k <= 29
  return 4 * (k - 4) + ((size >>> (k - 2)) & 3);
}

// ---- Spans --------------------------------------------------------------------------------

/**
 * Bytes of a span, of every class (so a block's span is its offset rounded down to it): 4 KiB (4 to 252 blocks), so that a class used for a few
 * blocks takes little memory in a small arena, no span wastes more than an eighth of itself,
 * and any free 4 KiB on a 4 KiB boundary serves any class. Spans of 8 KiB for the classes above
 * 256 bytes would need 8 KiB free on an 8 KiB boundary: with them, a 64 KiB SyncMap with a second
 * participant, its spans of seven classes and its retire lists scattered over the heap, threw
 * MapFullError for an 8 KiB span with 4 KiB free on a 4 KiB boundary, 6.6 KB free in chunks and
 * 25 KB free in spans, while 27 KB of its 64 were in use.
 */
export const SPAN_BYTES = 4096;
/** Blocks start this far into a span: the chunk header, then the span's header words. */
export const SPAN_HEADER = 64;
/**
 * A span's header words, from {@linkcode spanWords}: its class + 1, its blocks in use, its free
 * list, its bump offset (0: no block left that was never handed out), its links in its class's
 * list of spans with room, and whether it is in that list.
 */
export const SP_CLASS = 0, SP_INUSE = 1, SP_FREE = 2, SP_BUMP = 3;
export const SP_NEXT = 4, SP_PREV = 5, SP_LISTED = 6;

/** Word index of the header words of the span at `span` (after its chunk header). */
export function spanWords(span: number): number {
  return (span + CHUNK_HEADER) >> 2;
}
