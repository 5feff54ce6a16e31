/**
 * Internal. The spans of the allocator (allocator.ts), for small blocks.
 *
 * **Spans.** Blocks of up to 1,008 bytes come in 23 size classes (16-byte steps to 128, then
 * four per power of two up to 896, then 1,008, plus the sizes of small Go bucket arrays). A span
 * is a heap chunk of 4 KiB, aligned to 4 KiB: a header, then blocks of one class. A block's span
 * is therefore its offset rounded down to the span size, which is how a free finds it without a
 * header per block. The span header holds the class, the blocks in use, a free list threaded
 * through the free blocks' first words, a bump offset for blocks never handed out, and links in
 * its class's list of spans with room. A span whose last block is freed goes back to the heap
 * (one empty span per class is kept, so that a class hovering at a span boundary does not
 * thrash).
 *
 * Words are named in alloc_layout.ts; every write goes through the journal (see allocator.ts).
 *
 * @module
 */

import { type Arena, inViews } from "./arena.ts";
import type { Journal } from "./journal.ts";
import { spanWords } from "./alloc_layout.ts";
import * as alloc_layout from "./alloc_layout.ts";
import { keepSpanHeader, largeFree, spanChunk } from "./heap.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const {
  A_LISTS,
  A_SPARE,
  CLASS_SIZES,
  SP_BUMP,
  SP_CLASS,
  SP_FREE,
  SP_INUSE,
  SP_LISTED,
  SP_NEXT,
  SP_PREV,
  SPAN_BYTES,
  SPAN_HEADER,
} = alloc_layout;

export function smallAllocate(arena: Arena, c: number, j: Journal): number {
  const size = CLASS_SIZES[c];
  let span = arena.i32[A_LISTS + c];
  if (span === 0) span = newSpan(arena, c, j);
  const i32 = arena.i32;
  const h = spanWords(span);
  const free = i32[h + SP_FREE];
  let block: number;
  if (free !== 0) {
    block = free;
    checkBlock(arena, c, span, block);
    j.set(h + SP_FREE, i32[block >> 2]);
    j.set(block >> 2, 0);
  } else {
    block = i32[h + SP_BUMP];
    checkBlock(arena, c, span, block);
    const next = block + size;
    j.set(h + SP_BUMP, next + size <= span + SPAN_BYTES ? next : 0);
  }
  j.set(h + SP_INUSE, i32[h + SP_INUSE] + 1);
  if (i32[h + SP_FREE] === 0 && i32[h + SP_BUMP] === 0) unlinkSpan(arena, c, span, j);
  return block;
}

/**
 * Throws a RangeError unless `block`, read from span `span`'s free list or bump word (shared
 * words), is a block of that span of class `c`, in a span of that class in the heap: one
 * corrupt word must not hand out memory outside the span.
 */
function checkBlock(arena: Arena, c: number, span: number, block: number): void {
  const first = span + SPAN_HEADER;
  if (
    !isSpan(arena, c, span) || block < first || block + CLASS_SIZES[c] > span + SPAN_BYTES ||
    (block - first) % CLASS_SIZES[c] !== 0
  ) {
    throw new RangeError(`corrupt heap: class ${c}'s span ${span} hands out ${block}`);
  }
}

export function smallFree(arena: Arena, c: number, block: number, j: Journal): void {
  const span = block - (block % SPAN_BYTES);
  const i32 = arena.i32;
  const h = spanWords(span);
  const size = CLASS_SIZES[c];
  if (
    i32[h + SP_CLASS] !== c + 1 || (block - span - SPAN_HEADER) % size !== 0 ||
    block < span + SPAN_HEADER || i32[h + SP_INUSE] <= 0
  ) {
    throw new RangeError(`corrupt heap: freeing a ${size}-byte block at ${block}`);
  }
  j.set(block >> 2, i32[h + SP_FREE]);
  j.set(h + SP_FREE, block);
  const inUse = i32[h + SP_INUSE] - 1;
  j.set(h + SP_INUSE, inUse);
  if (i32[h + SP_LISTED] === 0) linkSpan(arena, c, span, j);
  if (inUse !== 0) return;
  unlinkSpan(arena, c, span, j);
  if (i32[A_SPARE + c] === 0) {
    // Keep one empty span per class, reset: all its blocks are free again.
    j.set(h + SP_FREE, 0);
    j.set(h + SP_BUMP, span + SPAN_HEADER);
    j.set(A_SPARE + c, span);
  } else {
    keepSpanHeader(j, i32, span);
    j.set(h + SP_CLASS, 0);
    largeFree(arena, span, j);
  }
}

function newSpan(arena: Arena, c: number, j: Journal): number {
  let span = arena.i32[A_SPARE + c];
  if (span !== 0) {
    // Taken as it stands: it must be what smallFree left.
    if (!isSpareSpan(arena, c, span)) {
      throw new RangeError(`corrupt heap: class ${c}'s spare span at ${span}`);
    }
    j.set(A_SPARE + c, 0);
  } else {
    span = spanChunk(arena, SPAN_BYTES, j);
    const h = spanWords(span);
    j.set(h + SP_CLASS, c + 1);
    j.set(h + SP_INUSE, 0);
    j.set(h + SP_FREE, 0);
    j.set(h + SP_BUMP, span + SPAN_HEADER);
    j.set(h + SP_LISTED, 0);
  }
  linkSpan(arena, c, span, j);
  return span;
}

/**
 * Whether `span` is what a spare of class `c` must be (smallFree makes one so): a span of that
 * class, off the class's list, with no block in use and every block free by its bump word.
 */
export function isSpareSpan(arena: Arena, c: number, span: number): boolean {
  const i32 = arena.i32;
  const h = spanWords(span);
  return isSpan(arena, c, span) && i32[h + SP_INUSE] === 0 && i32[h + SP_FREE] === 0 &&
    i32[h + SP_BUMP] === span + SPAN_HEADER && i32[h + SP_LISTED] === 0;
}

/** Whether `span` may be a span of class `c`: aligned to its size, in the views, of that class. */
function isSpan(arena: Arena, c: number, span: number): boolean {
  return inViews(arena, span, SPAN_BYTES) && span % SPAN_BYTES === 0 &&
    arena.i32[spanWords(span) + SP_CLASS] === c + 1;
}

function linkSpan(arena: Arena, c: number, span: number, j: Journal): void {
  const i32 = arena.i32;
  const h = spanWords(span);
  const head = i32[A_LISTS + c];
  // The list's words are shared, and written through: see unlinkSpan.
  if (head !== 0 && (!isSpan(arena, c, head) || i32[spanWords(head) + SP_PREV] !== 0)) {
    throw new RangeError(`corrupt heap: class ${c}'s span list begins at ${head}`);
  }
  j.set(h + SP_NEXT, head);
  j.set(h + SP_PREV, 0);
  if (head !== 0) j.set(spanWords(head) + SP_PREV, span);
  j.set(A_LISTS + c, span);
  j.set(h + SP_LISTED, 1);
}

function unlinkSpan(arena: Arena, c: number, span: number, j: Journal): void {
  const i32 = arena.i32;
  const h = spanWords(span);
  if (i32[h + SP_LISTED] === 0) return;
  const next = i32[h + SP_NEXT];
  const prev = i32[h + SP_PREV];
  // Safe unlinking (heap.ts binUnlink): each neighbour must name this span back.
  if (
    (prev === 0
      ? i32[A_LISTS + c] !== span
      : !isSpan(arena, c, prev) || i32[spanWords(prev) + SP_NEXT] !== span) ||
    (next !== 0 && (!isSpan(arena, c, next) || i32[spanWords(next) + SP_PREV] !== span))
  ) {
    throw new RangeError(`corrupt heap: the span links around span ${span}`);
  }
  if (prev !== 0) j.set(spanWords(prev) + SP_NEXT, next);
  else j.set(A_LISTS + c, next);
  if (next !== 0) j.set(spanWords(next) + SP_PREV, prev);
  j.set(h + SP_LISTED, 0);
}
