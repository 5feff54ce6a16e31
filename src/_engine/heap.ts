/**
 * Internal. The heap of the allocator (allocator.ts): boundary-tagged chunks that split and
 * merge, so that freed memory serves any size.
 *
 * **Heap.** From the end of the arena header to the *top* (header word 5), memory is a row of
 * chunks. A chunk starts with a 16-byte header whose first word is its size in bytes (a
 * multiple of 16, header included) with three flags in the low bits: INUSE, PREV_INUSE (the
 * chunk before it is in use) and SPAN (it holds a span: spans.ts). The block handed out is the
 * chunk's payload, 16 bytes in, so every block is 16-byte aligned. A free chunk keeps its
 * bin's list links in header words 1 and 2 and its size in its last word (a footer), so
 * a chunk being freed finds a free neighbour on either side and merges with it: no two free
 * chunks are ever adjacent, and a free chunk that ends at the top becomes part of the
 * wilderness beyond it. Free chunks sit in 108 bins, four per power of two, with a bitmap of
 * the bins that are not empty. An allocation takes the first chunk that fits from its bin (a
 * bounded walk) or the next bin up, splitting off the rest, or else carves from the top,
 * growing the buffer up to maxBytes.
 *
 * Words are named in alloc_layout.ts; every write goes through the journal (see allocator.ts).
 *
 * @module
 */

import { type Arena, roundUp } from "./arena.ts";
import * as arena_module from "./arena.ts";
import type { Journal } from "./journal.ts";
import { MapFullError } from "../errors.ts";
import { binOf, spanWords } from "./alloc_layout.ts";
import * as alloc_layout from "./alloc_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { H_TOP, HEADER_BYTES } = arena_module;
const {
  A_BINS,
  A_BITMAP,
  A_SPARE,
  BITMAP_WORDS,
  C_NEXT,
  C_PREV,
  FLAGS,
  INUSE,
  NCLASSES,
  PREV_INUSE,
  SP_CLASS,
  SP_LISTED,
  SPAN_FLAG,
} = alloc_layout;

/** How many chunks of a bin an allocation looks at before trying the next bin up. */
const BIN_WALK = 32;
export function binInsert(arena: Arena, chunk: number, size: number, j: Journal): void {
  const b = binOf(size);
  const w = chunk >> 2;
  const head = arena.i32[A_BINS + b];
  if (head !== 0 && (!inHeap(arena, head) || arena.i32[(head >> 2) + C_PREV] !== 0)) {
    throw new RangeError(`corrupt heap: bin ${b} begins at ${head}`);
  }
  j.set(w + C_NEXT, head);
  j.set(w + C_PREV, 0);
  if (head !== 0) j.set((head >> 2) + C_PREV, chunk);
  j.set(A_BINS + b, chunk);
  const m = A_BITMAP + (b >> 5);
  const bit = 1 << (b & 31);
  if ((arena.i32[m] & bit) === 0) j.set(m, arena.i32[m] | bit);
}

/**
 * Makes the `size` bytes at `chunk` a free chunk: its header (the size with `flags`, the
 * PREV_INUSE of the chunk before it), its footer, and its place in its bin.
 */
function addFreeChunk(arena: Arena, chunk: number, size: number, flags: number, j: Journal): void {
  j.set(chunk >> 2, size | flags);
  j.set(((chunk + size) >> 2) - 1, size);
  binInsert(arena, chunk, size, j);
}

export function binUnlink(arena: Arena, chunk: number, size: number, j: Journal): void {
  const i32 = arena.i32;
  const b = binOf(size);
  const w = chunk >> 2;
  const next = i32[w + C_NEXT];
  const prev = i32[w + C_PREV];
  // Safe unlinking, as glibc's: the links are shared words, written through below, so each
  // neighbour must name this chunk back (and a chunk with none before it must head its bin).
  if (
    (prev === 0
      ? i32[A_BINS + b] !== chunk
      : !inHeap(arena, prev) || i32[(prev >> 2) + C_NEXT] !== chunk) ||
    (next !== 0 && (!inHeap(arena, next) || i32[(next >> 2) + C_PREV] !== chunk))
  ) {
    throw new RangeError(`corrupt heap: the bin links around chunk ${chunk}`);
  }
  if (prev !== 0) j.set((prev >> 2) + C_NEXT, next);
  else j.set(A_BINS + b, next);
  if (next !== 0) j.set((next >> 2) + C_PREV, prev);
  if (i32[A_BINS + b] === 0) {
    const w = A_BITMAP + (b >> 5);
    j.set(w, i32[w] & ~(1 << (b & 31)));
  }
}

/** Whether `c` may be a chunk of the heap: aligned, above the arena's header, below the top. */
function inHeap(arena: Arena, c: number): boolean {
  return c >= HEADER_BYTES && (c & 15) === 0 && c < arena.i32[H_TOP];
}

/**
 * The size of `c`, a chunk read from a bin's head or link, or a RangeError when it is not a free
 * chunk of the heap: the bins, their links and the bitmap are shared words, and one corrupt bit
 * or link must not hand out the arena's header (a set bit over an empty bin reads chunk 0).
 */
function freeChunkSize(arena: Arena, c: number): number {
  const i32 = arena.i32;
  const top = i32[H_TOP];
  if (inHeap(arena, c)) {
    const word = i32[c >> 2];
    const csize = word & ~FLAGS;
    if ((word & INUSE) === 0 && csize > 0 && (csize & 15) === 0 && c + csize <= top) return csize;
  }
  throw new RangeError(`corrupt heap: a bin lists ${c}, which is not a free chunk`);
}

/** The first bin at or above `b` that is not empty, or -1. */
function nextBin(arena: Arena, b: number): number {
  for (let w = b >> 5; w < BITMAP_WORDS; w++) {
    let bits = arena.i32[A_BITMAP + w];
    if (w === b >> 5) bits &= -1 << (b & 31);
    if (bits !== 0) return (w << 5) + (31 - Math.clz32(bits & -bits));
  }
  return -1;
}

/**
 * Marks free chunk `chunk` (of `csize` bytes, unlinked) in use for its first `need` bytes, its
 * header flagged INUSE and `flags` (PREV_INUSE as the chunk before it is, and SPAN_FLAG for a
 * span), splitting off the rest as a free chunk when there is any, and journals the words the
 * caller will overwrite. Returns `chunk`.
 */
function takeChunk(
  arena: Arena,
  chunk: number,
  csize: number,
  need: number,
  flags: number,
  j: Journal,
): number {
  const i32 = arena.i32;
  const rest = csize - need;
  if (rest !== 0) {
    j.set(chunk >> 2, need | INUSE | flags);
    addFreeChunk(arena, chunk + need, rest, PREV_INUSE, j);
  } else {
    // The free chunk's footer becomes the caller's payload (a span's last block, which the same
    // mutation may write): remember it, so that a rollback restores the chunk, footer included.
    j.set(((chunk + csize) >> 2) - 1, 0);
    j.set(chunk >> 2, csize | INUSE | flags);
    const next = chunk + csize;
    if (next !== i32[H_TOP]) j.set(next >> 2, i32[next >> 2] | PREV_INUSE);
  }
  return chunk;
}

export function largeAllocate(arena: Arena, need: number, j: Journal): number {
  const i32 = arena.i32;
  let b = binOf(need);
  // The chunk's own bin may hold smaller chunks: look at a few. Any chunk of a bin above fits.
  let c = i32[A_BINS + b];
  for (let n = 0; c !== 0 && n < BIN_WALK; n++) {
    const csize = freeChunkSize(arena, c);
    if (csize >= need) {
      binUnlink(arena, c, csize, j);
      return takeChunk(arena, c, csize, need, i32[c >> 2] & PREV_INUSE, j);
    }
    c = i32[(c >> 2) + C_NEXT];
  }
  b = nextBin(arena, b + 1);
  if (b >= 0) {
    c = i32[A_BINS + b];
    const csize = freeChunkSize(arena, c);
    binUnlink(arena, c, csize, j);
    return takeChunk(arena, c, csize, need, i32[c >> 2] & PREV_INUSE, j);
  }
  const top = i32[H_TOP];
  if (!arena.grow(top + need)) {
    // Out of room: give the empty spans kept for reuse back to the heap, and look again.
    if (releaseSpares(arena, j)) return largeAllocate(arena, need, j);
    throw new MapFullError(need, arena.maxBytes);
  }
  // The chunk before the top is always in use: a free one merges into the wilderness.
  j.set(top >> 2, need | INUSE | PREV_INUSE);
  j.set(H_TOP, top + need);
  return top;
}

export function largeFree(arena: Arena, chunk: number, j: Journal): void {
  const i32 = arena.i32;
  const h = i32[chunk >> 2];
  if ((h & INUSE) === 0) throw new RangeError(`corrupt heap: double free of chunk ${chunk}`);
  // Words that stop being anyone's metadata here (this chunk's header, a neighbour's header,
  // links or footer inside the merged chunk) are not rewritten, yet a rollback needs their old
  // values if a later step of the same transaction hands the memory out and overwrites them:
  // record them (a write of the same value).
  keep(j, i32, chunk >> 2);
  let size = h & ~FLAGS;
  let start = chunk;
  let prevFlag = h & PREV_INUSE;
  if (prevFlag === 0) {
    const psize = i32[(chunk >> 2) - 1];
    keep(j, i32, (chunk >> 2) - 1);
    start = chunk - psize;
    binUnlink(arena, start, psize, j);
    size += psize;
    prevFlag = i32[start >> 2] & PREV_INUSE;
  }
  const next = chunk + (h & ~FLAGS);
  const top = i32[H_TOP];
  if (next === top) {
    // Merged into the top, a free chunk before this one stops being a chunk too: its header
    // and links are no one's metadata now. (Merged into a free chunk instead, they are written
    // below, journaled.)
    if (start !== chunk) {
      keep(j, i32, start >> 2);
      keep(j, i32, (start >> 2) + C_NEXT);
      keep(j, i32, (start >> 2) + C_PREV);
    }
    j.set(H_TOP, start);
    return;
  }
  const nh = i32[next >> 2];
  if ((nh & INUSE) === 0) {
    const nsize = nh & ~FLAGS;
    binUnlink(arena, next, nsize, j);
    keep(j, i32, next >> 2);
    keep(j, i32, (next >> 2) + C_NEXT);
    keep(j, i32, (next >> 2) + C_PREV);
    size += nsize;
  } else {
    j.set(next >> 2, nh & ~PREV_INUSE);
  }
  addFreeChunk(arena, start, size, prevFlag, j);
}

/** Records word `w`'s value in the journal without changing it. */
function keep(j: Journal, i32: Int32Array, w: number): void {
  j.set(w, i32[w]);
}

/** Records a span's header words before its chunk goes back to the heap (see largeFree). */
export function keepSpanHeader(j: Journal, i32: Int32Array, span: number): void {
  const h = spanWords(span);
  for (let w = h; w <= h + SP_LISTED; w++) keep(j, i32, w);
}

/**
 * Allocates a heap chunk of `bytes` that starts on a multiple of `bytes`, flagged SPAN, and
 * returns it: the span.
 */
export function spanChunk(arena: Arena, bytes: number, j: Journal): number {
  const i32 = arena.i32;
  for (let b = nextBin(arena, binOf(bytes)); b >= 0; b = nextBin(arena, b + 1)) {
    let c = i32[A_BINS + b];
    if (c === 0) freeChunkSize(arena, c); // a bit set over an empty bin
    for (let n = 0; c !== 0 && n < BIN_WALK; n++) {
      const csize = freeChunkSize(arena, c);
      const placed = placeSpan(c, csize, bytes);
      if (placed >= 0) {
        binUnlink(arena, c, csize, j);
        // The gap before the aligned span, if any, stays a free chunk.
        const lead = placed - c;
        let prevFlag = i32[c >> 2] & PREV_INUSE;
        if (lead !== 0) {
          addFreeChunk(arena, c, lead, prevFlag, j);
          prevFlag = 0;
        }
        return takeChunk(arena, placed, csize - lead, bytes, SPAN_FLAG | prevFlag, j);
      }
      c = i32[(c >> 2) + C_NEXT];
    }
  }
  const top = i32[H_TOP];
  const span = roundUp(top, bytes);
  if (!arena.grow(span + bytes)) {
    if (releaseSpares(arena, j)) return spanChunk(arena, bytes, j);
    throw new MapFullError(bytes, arena.maxBytes);
  }
  const lead = span - top;
  let prevFlag = PREV_INUSE;
  if (lead !== 0) {
    // The gap before the aligned span becomes a free chunk.
    addFreeChunk(arena, top, lead, PREV_INUSE, j);
    prevFlag = 0;
  }
  j.set(span >> 2, bytes | INUSE | SPAN_FLAG | prevFlag);
  j.set(H_TOP, span + bytes);
  return span;
}

/** Gives every empty span kept for reuse back to the heap; returns whether there was any. */
function releaseSpares(arena: Arena, j: Journal): boolean {
  let any = false;
  for (let c = 0; c < NCLASSES; c++) any = releaseSpare(arena, c, j) || any;
  return any;
}

/**
 * Gives the empty span kept for reuse by class `c` back to the heap; returns whether there was
 * one. About 30 journal entries.
 */
export function releaseSpare(arena: Arena, c: number, j: Journal): boolean {
  const span = arena.i32[A_SPARE + c];
  if (span === 0) return false;
  j.set(A_SPARE + c, 0);
  keepSpanHeader(j, arena.i32, span);
  j.set(spanWords(span) + SP_CLASS, 0);
  largeFree(arena, span, j);
  return true;
}

/** Where an aligned span fits inside free chunk `c` of `csize` bytes, or -1. */
function placeSpan(c: number, csize: number, bytes: number): number {
  const span = roundUp(c, bytes);
  return span + bytes <= c + csize ? span : -1;
}
