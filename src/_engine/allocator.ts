/**
 * Internal. The arena's allocator: size-class spans for small blocks, over a heap of
 * boundary-tagged chunks that splits and merges, so that freed memory serves any size.
 *
 * **Heap.** From the end of the arena header to the *top* (header word 5), memory is a row of
 * chunks. A chunk starts with a 16-byte header whose first word is its size in bytes (a
 * multiple of 16, header included) with three flags in the low bits: INUSE, PREV_INUSE (the
 * chunk before it is in use) and SPAN (it holds a span, below). The block handed out is the
 * chunk's payload, 16 bytes in, so every block is 16-byte aligned. A free chunk keeps its
 * bin's list links in header words 1 and 2 and its size in its last word (a footer), so
 * a chunk being freed finds a free neighbour on either side and merges with it: no two free
 * chunks are ever adjacent, and a free chunk that ends at the top becomes part of the
 * wilderness beyond it. Free chunks sit in 108 bins, four per power of two, with a bitmap of
 * the bins that are not empty. An allocation takes the first chunk that fits from its bin (a
 * bounded walk) or the next bin up, splitting off the rest, or else carves from the top,
 * growing the buffer up to maxBytes.
 *
 * **Spans.** Blocks of up to 1,024 bytes come in 23 size classes (16-byte steps to 128, then
 * four per power of two, plus the sizes of small Go bucket arrays). A span is a heap chunk of
 * 4 KiB (classes up to 256 bytes) or 8 KiB, aligned to its size: a header, then blocks of one
 * class. A block's span is therefore its offset rounded down to its span size, which is how a
 * free finds it without a header per block. The span header holds the
 * class, the blocks in use, a free list threaded through the free blocks' first words, a bump
 * offset for blocks never handed out, and links in its class's list of spans with room. A span
 * whose last block is freed goes back to the heap (one empty span per class is kept, so that a
 * class hovering at a span boundary does not thrash).
 *
 * **Caches.** A SyncMap allocates and frees a record on every store. Each participant keeps its
 * own lists of free small blocks in a cache block (like Go's per-P mcache), touched only by its
 * owner without a lock, refilled from spans and spilled back to them in batches under the lock.
 * Cached blocks count as in use for their spans and in `bytesUsed`.
 *
 * **Journaling.** Every write the allocator makes to shared memory goes through a
 * {@linkcode Journal}, so that an allocator operation cut short by the death of its thread is
 * rolled back by the next one: under the allocator lock with the lock's own journal (SyncMap),
 * or as part of the writer's journal (GoMap, whose single writer needs no allocator lock). When
 * a block is handed out, the words it held as a free block (list links, footer) are journaled,
 * so that the caller may then write its payload without journaling it. See journal.ts.
 *
 * Sizes are checked in floating point before any shift: a request above what maxBytes allows
 * is a {@linkcode MapFullError} with nothing changed.
 *
 * @module
 */

import {
  type Arena,
  H_ALLOC,
  H_ALLOC_JOURNAL,
  H_ALLOC_LOCK,
  H_BYTES_USED,
  H_TOP,
  HEADER_BYTES,
  roundUp,
} from "./arena.ts";
import { ownerId } from "./census.ts";
import { ACQUIRED, clearPoison, lockWord, unlockWord } from "./futex.ts";
import { Journal } from "./journal.ts";
import { MapFullError } from "../errors.ts";

// ---- Size classes ------------------------------------------------------------------------

// 16-byte steps to 128, then four per power of two, plus 144, 288 and 576: a Go bucket array
// of 1, 2 or 4 buckets (144 bytes each) fits its class exactly.
const CLASS_SIZES = [
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
  1024,
];
const NCLASSES = CLASS_SIZES.length;
/** The largest block a span holds; larger ones are heap chunks. */
export const SMALL_MAX = 1024;
/** Class of a request, indexed by its size in 16-byte units, rounded up. */
const CLASS_OF = new Uint8Array(SMALL_MAX / 16 + 1);
for (let u = 0, c = 0; u <= SMALL_MAX / 16; u++) {
  while (CLASS_SIZES[c] < u * 16) c++;
  CLASS_OF[u] = c;
}

/** The size class of a small request of `size` bytes (1 <= size <= 1024). */
function sizeClass(size: number): number {
  return CLASS_OF[(size + 15) >> 4];
}

/**
 * Bytes of arena a lone block of `size` may take: a whole span for a small one (the first of
 * its class), its heap chunk otherwise. For sizing checks.
 */
export function footprint(size: number): number {
  return size <= SMALL_MAX ? spanBytes(sizeClass(size)) : chunkSizeFor(size);
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
const A_LISTS = H_ALLOC;
/** Per class: an empty span kept for reuse, 0 when none. */
const A_SPARE = H_ALLOC + NCLASSES;
const NBINS = 108;
const A_BINS = H_ALLOC + 2 * NCLASSES;
const A_BITMAP = A_BINS + NBINS;
const BITMAP_WORDS = 4;

// ---- Heap chunks ---------------------------------------------------------------------------

const CHUNK_HEADER = 16;
/** A free chunk needs only its header: size, the two bin links, and (last word) its footer. */
const MIN_CHUNK = 16;
/** Word of a free chunk's next link, from its first word. */
const C_NEXT = 1;
/** Word of a free chunk's previous link. */
const C_PREV = 2;
const INUSE = 1;
const PREV_INUSE = 2;
const SPAN_FLAG = 4;
const FLAGS = 15;
/** How many chunks of a bin an allocation looks at before trying the next bin up. */
const BIN_WALK = 32;

function chunkSizeFor(size: number): number {
  return roundUp(size + CHUNK_HEADER, 16);
}

function binOf(size: number): number {
  const k = 31 - Math.clz32(size); // 4 <= k <= 29
  return 4 * (k - 4) + ((size >>> (k - 2)) & 3);
}

// ---- Spans --------------------------------------------------------------------------------

/**
 * Bytes of a span of class `c`: 4 KiB for blocks of up to 256 bytes (16 of them or more), 8 KiB
 * above (7 to 14), so that a class used for a few blocks takes little memory in a small arena,
 * and no span wastes more than an eighth of itself.
 */
function spanBytes(c: number): number {
  return CLASS_SIZES[c] <= 256 ? 4096 : 8192;
}
/** Blocks start this far into a span: the chunk header, then the span's header words. */
const SPAN_HEADER = 64;
const SP_CLASS = 0; // class + 1
const SP_INUSE = 1;
const SP_FREE = 2;
const SP_BUMP = 3;
const SP_NEXT = 4;
const SP_PREV = 5;
const SP_LISTED = 6;

// ---- Public operations -------------------------------------------------------------------

/**
 * Allocates a block of at least `size` bytes and returns its offset; its bytes are zero when
 * `zero` is set, unspecified otherwise. Writes through `j`. Throws {@linkcode MapFullError},
 * having changed nothing that `j` cannot roll back, when maxBytes forbids it.
 */
export function allocate(arena: Arena, size: number, zero: boolean, j: Journal): number {
  if (!(size >= 1)) throw new RangeError(`internal: allocation of ${size} bytes`);
  if (size > arena.maxBytes - HEADER_BYTES || (failing !== undefined && failing(size))) {
    throw new MapFullError(size, arena.maxBytes);
  }
  let offset: number;
  let bytes: number;
  if (size <= SMALL_MAX) {
    const c = sizeClass(size);
    offset = smallAllocate(arena, c, j);
    bytes = CLASS_SIZES[c];
  } else {
    const chunk = largeAllocate(arena, chunkSizeFor(size), j);
    offset = chunk + CHUNK_HEADER;
    bytes = (arena.i32[chunk >> 2] & ~FLAGS) - CHUNK_HEADER;
  }
  j.set(H_BYTES_USED, arena.i32[H_BYTES_USED] + bytes);
  if (zero) arena.u8.fill(0, offset, offset + bytes);
  return offset;
}

/**
 * Bytes of the block the last {@linkcode allocateAtLeast} handed out. Read it right after the
 * call, before anything else allocates.
 */
export let grantedBytes = 0;

/**
 * {@linkcode allocate} of at least `size` bytes, for a caller that records the size it got
 * ({@linkcode grantedBytes}) and frees the block with that size. When memory has run out, a small
 * request is served from the smallest larger class whose spans have room: a full map's buckets
 * then use what deleted values of other sizes freed.
 */
export function allocateAtLeast(arena: Arena, size: number, zero: boolean, j: Journal): number {
  try {
    const offset = allocate(arena, size, zero, j);
    grantedBytes = blockSize(size);
    return offset;
  } catch (error) {
    if (!(error instanceof MapFullError) || size > SMALL_MAX) throw error;
    for (let c = sizeClass(size) + 1; c < NCLASSES; c++) {
      if (arena.i32[A_LISTS + c] === 0) continue;
      const offset = allocate(arena, CLASS_SIZES[c], zero, j);
      grantedBytes = CLASS_SIZES[c];
      return offset;
    }
    throw error;
  }
}

/** Frees the block at `offset`, allocated with `size`. Writes through `j`. */
export function release(arena: Arena, offset: number, size: number, j: Journal): void {
  arena.reach(offset + 4);
  let bytes: number;
  if (size <= SMALL_MAX) {
    const c = sizeClass(size);
    smallFree(arena, c, offset, j);
    bytes = CLASS_SIZES[c];
  } else {
    const chunk = offset - CHUNK_HEADER;
    const h = arena.i32[chunk >> 2];
    if ((h & (INUSE | SPAN_FLAG)) !== INUSE || (h & ~FLAGS) !== chunkSizeFor(size)) {
      throw new RangeError(`corrupt heap: freeing ${size} bytes at ${offset}, chunk word ${h}`);
    }
    bytes = (h & ~FLAGS) - CHUNK_HEADER;
    largeFree(arena, chunk, j);
  }
  j.set(H_BYTES_USED, arena.i32[H_BYTES_USED] - bytes);
}

let failing: ((size: number) => boolean) | undefined;

/**
 * Test-only: while `fail` is set, an allocation of `size` bytes for which it returns true
 * throws MapFullError, as if the arena were full. Pass undefined to stop.
 */
export function failAllocationsForTests(fail: ((size: number) => boolean) | undefined): void {
  failing = fail;
}

/** Bytes allocated and not freed (blocks in participant caches included). */
export function bytesUsed(arena: Arena): number {
  return Atomics.load(arena.i32, H_BYTES_USED);
}

/** The allocator lock's journal of a locking arena. */
export function allocatorJournal(arena: Arena): Journal {
  return (arena as { allocJournal?: Journal }).allocJournal ??= new Journal(
    () => arena.i32,
    H_ALLOC_JOURNAL,
  );
}

/**
 * Runs `f` under the allocator lock with the lock's journal begun, committing it after, and
 * rolling it back if `f` throws. A lock left by a dead thread is taken over and its operation
 * rolled back first.
 */
export function underLock<T>(arena: Arena, f: (j: Journal) => T): T {
  const me = ownerId();
  // No park hook (see SyncCore's): a step of the allocator never waits for anything else, so
  // a stop of the world need not go on without the threads queued here.
  const status = lockWord(arena.i32, H_ALLOC_LOCK, me);
  arena.reach(arena.buffer.byteLength);
  const j = allocatorJournal(arena);
  try {
    if (status !== ACQUIRED) {
      j.recover();
      clearPoison(arena.i32, H_ALLOC_LOCK, me);
    }
    j.begin();
    let result: T;
    try {
      result = f(j);
    } catch (error) {
      j.recover();
      throw error;
    }
    j.commit();
    return result;
  } finally {
    unlockWord(arena.i32, H_ALLOC_LOCK, me);
  }
}

/** {@linkcode allocate} under the allocator lock. */
export function lockedAllocate(arena: Arena, size: number, zero: boolean): number {
  return underLock(arena, (j) => allocate(arena, size, zero, j));
}

/**
 * {@linkcode release} under the allocator lock. With `truncate`, also sets word
 * `truncate[0]` to `truncate[1]` in the same journaled step (a journal's count: journal.ts).
 */
export function lockedRelease(
  arena: Arena,
  offset: number,
  size: number,
  truncate?: readonly [number, number],
): void {
  underLock(arena, (j) => {
    release(arena, offset, size, j);
    if (truncate !== undefined) j.set(truncate[0], truncate[1]);
  });
}

// ---- Small blocks ---------------------------------------------------------------------------

function smallAllocate(arena: Arena, c: number, j: Journal): number {
  const size = CLASS_SIZES[c];
  let span = arena.i32[A_LISTS + c];
  if (span === 0) span = newSpan(arena, c, j);
  const i32 = arena.i32;
  const h = spanWords(span);
  const free = i32[h + SP_FREE];
  let block: number;
  if (free !== 0) {
    block = free;
    j.set(h + SP_FREE, i32[block >> 2]);
    j.set(block >> 2, 0);
  } else {
    block = i32[h + SP_BUMP];
    const next = block + size;
    j.set(h + SP_BUMP, next + size <= span + spanBytes(c) ? next : 0);
  }
  j.set(h + SP_INUSE, i32[h + SP_INUSE] + 1);
  if (i32[h + SP_FREE] === 0 && i32[h + SP_BUMP] === 0) unlinkSpan(arena, c, span, j);
  return block;
}

function smallFree(arena: Arena, c: number, block: number, j: Journal): void {
  const span = block - (block % spanBytes(c));
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
    j.set(A_SPARE + c, 0);
  } else {
    span = spanChunk(arena, spanBytes(c), j);
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

/** Word index of the header words of the span at `span` (after its chunk header). */
function spanWords(span: number): number {
  return (span + CHUNK_HEADER) >> 2;
}

function linkSpan(arena: Arena, c: number, span: number, j: Journal): void {
  const i32 = arena.i32;
  const h = spanWords(span);
  const head = i32[A_LISTS + c];
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
  if (prev !== 0) j.set(spanWords(prev) + SP_NEXT, next);
  else j.set(A_LISTS + c, next);
  if (next !== 0) j.set(spanWords(next) + SP_PREV, prev);
  j.set(h + SP_LISTED, 0);
}

// ---- Heap chunks --------------------------------------------------------------------------

function binInsert(arena: Arena, chunk: number, size: number, j: Journal): void {
  const b = binOf(size);
  const w = chunk >> 2;
  const head = arena.i32[A_BINS + b];
  j.set(w + C_NEXT, head);
  j.set(w + C_PREV, 0);
  if (head !== 0) j.set((head >> 2) + C_PREV, chunk);
  j.set(A_BINS + b, chunk);
  const m = A_BITMAP + (b >> 5);
  const bit = 1 << (b & 31);
  if ((arena.i32[m] & bit) === 0) j.set(m, arena.i32[m] | bit);
}

function binUnlink(arena: Arena, chunk: number, size: number, j: Journal): void {
  const i32 = arena.i32;
  const b = binOf(size);
  const w = chunk >> 2;
  const next = i32[w + C_NEXT];
  const prev = i32[w + C_PREV];
  if (prev !== 0) j.set((prev >> 2) + C_NEXT, next);
  else j.set(A_BINS + b, next);
  if (next !== 0) j.set((next >> 2) + C_PREV, prev);
  if (i32[A_BINS + b] === 0) {
    const w = A_BITMAP + (b >> 5);
    j.set(w, i32[w] & ~(1 << (b & 31)));
  }
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
 * Marks free chunk `chunk` (of `csize` bytes, unlinked) in use for its first `need` bytes,
 * splitting off the rest as a free chunk when it is big enough, and journals the words the
 * caller will overwrite. Returns `chunk`.
 */
function takeChunk(arena: Arena, chunk: number, csize: number, need: number, j: Journal): number {
  const i32 = arena.i32;
  const prevFlag = i32[chunk >> 2] & PREV_INUSE;
  const rest = csize - need;
  if (rest !== 0) {
    j.set(chunk >> 2, need | INUSE | prevFlag);
    const r = chunk + need;
    j.set(r >> 2, rest | PREV_INUSE);
    j.set(((r + rest) >> 2) - 1, rest);
    binInsert(arena, r, rest, j);
  } else {
    // The free chunk's footer becomes the caller's payload: remember it.
    j.set(((chunk + csize) >> 2) - 1, 0);
    j.set(chunk >> 2, csize | INUSE | prevFlag);
    const next = chunk + csize;
    if (next !== i32[H_TOP]) j.set(next >> 2, i32[next >> 2] | PREV_INUSE);
  }
  return chunk;
}

function largeAllocate(arena: Arena, need: number, j: Journal): number {
  const i32 = arena.i32;
  let b = binOf(need);
  // The chunk's own bin may hold smaller chunks: look at a few. Any chunk of a bin above fits.
  let c = i32[A_BINS + b];
  for (let n = 0; c !== 0 && n < BIN_WALK; n++) {
    const csize = i32[c >> 2] & ~FLAGS;
    if (csize >= need) {
      binUnlink(arena, c, csize, j);
      return takeChunk(arena, c, csize, need, j);
    }
    c = i32[(c >> 2) + C_NEXT];
  }
  b = nextBin(arena, b + 1);
  if (b >= 0) {
    c = i32[A_BINS + b];
    const csize = i32[c >> 2] & ~FLAGS;
    binUnlink(arena, c, csize, j);
    return takeChunk(arena, c, csize, need, j);
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

function largeFree(arena: Arena, chunk: number, j: Journal): void {
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
  j.set(start >> 2, size | prevFlag);
  j.set(((start + size) >> 2) - 1, size);
  binInsert(arena, start, size, j);
}

/** Records word `w`'s value in the journal without changing it. */
function keep(j: Journal, i32: Int32Array, w: number): void {
  j.set(w, i32[w]);
}

/** Records a span's header words before its chunk goes back to the heap (see largeFree). */
function keepSpanHeader(j: Journal, i32: Int32Array, span: number): void {
  const h = spanWords(span);
  for (let w = h; w <= h + SP_LISTED; w++) keep(j, i32, w);
}

/**
 * Allocates a heap chunk of `bytes` that starts on a multiple of `bytes`, flagged SPAN, and
 * returns it: the span.
 */
function spanChunk(arena: Arena, bytes: number, j: Journal): number {
  const i32 = arena.i32;
  for (let b = nextBin(arena, binOf(bytes)); b >= 0; b = nextBin(arena, b + 1)) {
    let c = i32[A_BINS + b];
    for (let n = 0; c !== 0 && n < BIN_WALK; n++) {
      const csize = i32[c >> 2] & ~FLAGS;
      const placed = placeSpan(c, csize, bytes);
      if (placed >= 0) {
        binUnlink(arena, c, csize, j);
        return carveSpan(arena, c, csize, placed, bytes, j);
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
    j.set(top >> 2, lead | PREV_INUSE);
    j.set((span >> 2) - 1, lead);
    binInsert(arena, top, lead, j);
    prevFlag = 0;
  }
  j.set(span >> 2, bytes | INUSE | SPAN_FLAG | prevFlag);
  j.set(H_TOP, span + bytes);
  return span;
}

/** Gives every empty span kept for reuse back to the heap; returns whether there was any. */
function releaseSpares(arena: Arena, j: Journal): boolean {
  let any = false;
  for (let c = 0; c < NCLASSES; c++) {
    const span = arena.i32[A_SPARE + c];
    if (span === 0) continue;
    j.set(A_SPARE + c, 0);
    keepSpanHeader(j, arena.i32, span);
    j.set(spanWords(span) + SP_CLASS, 0);
    largeFree(arena, span, j);
    any = true;
  }
  return any;
}

/** Where an aligned span fits inside free chunk `c` of `csize` bytes, or -1. */
function placeSpan(c: number, csize: number, bytes: number): number {
  const span = roundUp(c, bytes);
  return span + bytes <= c + csize ? span : -1;
}

function carveSpan(
  arena: Arena,
  c: number,
  csize: number,
  span: number,
  bytes: number,
  j: Journal,
): number {
  const i32 = arena.i32;
  let prevFlag = i32[c >> 2] & PREV_INUSE;
  const lead = span - c;
  if (lead !== 0) {
    j.set(c >> 2, lead | prevFlag);
    j.set((span >> 2) - 1, lead);
    binInsert(arena, c, lead, j);
    prevFlag = 0;
  }
  const end = c + csize;
  const tail = end - (span + bytes);
  if (tail !== 0) {
    const r = span + bytes;
    j.set(r >> 2, tail | PREV_INUSE);
    j.set((end >> 2) - 1, tail);
    binInsert(arena, r, tail, j);
  } else if (end !== i32[H_TOP]) {
    j.set(end >> 2, i32[end >> 2] | PREV_INUSE);
  }
  j.set(span >> 2, bytes | INUSE | SPAN_FLAG | prevFlag);
  return span;
}

// ---- Per-participant caches ----------------------------------------------------------------
//
// A cache block holds, for each small class, the head of a list of free blocks (threaded
// through their first words) and their number; then the bytes the cache holds, and the
// offset of the block as allocated. Only its owner touches it, with plain reads and writes,
// except in refill and spill, which run under the allocator lock and journal their writes
// with the lock's, so that a refill or spill cut short leaves the cache as it was. Between
// those, a pop or push is one write of the list head; the count and byte words are advisory,
// recomputed when a dead participant's cache is given back (see {@linkcode reclaimCache}).

const CACHE_TOTAL = 2 * NCLASSES;
const CACHE_RAW = CACHE_TOTAL + 1;
/**
 * Bytes of a cache block as allocated: its words rounded up to whole 64-byte lines, plus a
 * line of slack to align them. Its owner writes it on every allocation, so it must not share a
 * cache line with anything another worker writes.
 */
const CACHE_BYTES = roundUp((CACHE_RAW + 1) * 4, 64) + 64;
const REFILL = 16;
/**
 * A class's cache spills {@linkcode SPILL_BATCH} blocks when it reaches this many. Twice a
 * quiescent period (reclaim.ts: the blocks one participant's quiescent point frees at once, an
 * operation retiring one), so that a participant that allocates and frees at the same rate, as
 * a store that overwrites does, keeps its blocks between the refill at 0 and the spill: each
 * refill or spill is a journaled step under the allocator lock. A write that runs out of memory
 * gives the cache back first (reclaim.ts reclaimNow).
 */
const SPILL_AT = 128;
/** Most blocks one allocator step moves out of a cache (each free journals a dozen words). */
const SPILL_BATCH = 32;
/**
 * Journal entries one block's free may take at most: the span's words, and when the span
 * empties, its unlinking and its chunk's merge with both neighbours. A spill stops while the
 * allocator's journal has less room than this, so that it never overflows.
 */
const FREE_ENTRIES_MAX = 64;

/** Makes an empty cache block and returns its (64-byte aligned) offset. */
export function newCache(arena: Arena): number {
  const raw = lockedAllocate(arena, CACHE_BYTES, true);
  const cache = roundUp(raw, 64);
  arena.i32[(cache >> 2) + CACHE_RAW] = raw;
  return cache;
}

/**
 * Frees a cache block, flushing what it holds first. `slotWord` is the word that points to
 * it, cleared in the same allocator step as the free: a thread stopped in between leaves the
 * word pointing to the cache or clear, never to a freed block.
 */
export function freeCache(arena: Arena, cache: number, slotWord: number): void {
  flushCache(arena, cache);
  underLock(arena, (j) => {
    j.set(slotWord, 0);
    release(arena, arena.i32[(cache >> 2) + CACHE_RAW], CACHE_BYTES, j);
  });
}

/**
 * {@linkcode allocate} through the cache at `cache` (contents unspecified). Blocks above
 * {@linkcode SMALL_MAX} go to the heap under the lock.
 */
export function cacheAllocate(arena: Arena, cache: number, size: number): number {
  if (size > SMALL_MAX) return lockedAllocate(arena, size, false);
  const c = sizeClass(size);
  const w = (cache >> 2) + 2 * c;
  let head = arena.i32[w];
  if (head === 0) {
    lockedRefill(arena, cache, c);
    head = arena.i32[w];
  }
  const bytes = CLASS_SIZES[c];
  if (head + bytes > arena.bytes) arena.reach(head + bytes);
  const i32 = arena.i32;
  i32[w] = i32[head >> 2]; // the pop: one write
  i32[head >> 2] = 0;
  i32[w + 1]--;
  i32[(cache >> 2) + CACHE_TOTAL] -= bytes;
  return head;
}

/** {@linkcode release} through the cache at `cache`. */
export function cacheRelease(arena: Arena, cache: number, offset: number, size: number): void {
  if (size > SMALL_MAX) {
    lockedRelease(arena, offset, size);
    return;
  }
  const c = sizeClass(size);
  const w = (cache >> 2) + 2 * c;
  arena.reach(offset + 4);
  const i32 = arena.i32;
  i32[offset >> 2] = i32[w];
  i32[w] = offset; // the push: one write, after the link
  i32[(cache >> 2) + CACHE_TOTAL] += CLASS_SIZES[c];
  if (++i32[w + 1] >= SPILL_AT) lockedSpill(arena, cache, c);
}

// The allocator steps of the two functions above, apart from them: the variables a closure
// captures live in a context object that V8 makes as the enclosing function is entered, so a
// closure written inline would cost an allocation on every call, not only on these paths.

function lockedRefill(arena: Arena, cache: number, c: number): void {
  underLock(arena, (j) => refill(arena, cache, c, j));
}

function lockedSpill(arena: Arena, cache: number, c: number): void {
  underLock(arena, (j) => spill(arena, cache, c, SPILL_BATCH, j));
}

/**
 * Gives every cached block back to its span; the cache block stays, empty. A batch at a time,
 * so that each allocator step fits its journal.
 */
export function flushCache(arena: Arena, cache: number): void {
  for (let c = 0; c < NCLASSES; c++) {
    while (arena.i32[(cache >> 2) + 2 * c] !== 0) {
      underLock(arena, (j) => spill(arena, cache, c, SPILL_BATCH, j));
    }
  }
}

/** Bytes sitting in the cache at `cache`, free but not in their spans. */
export function cachedBytes(arena: Arena, cache: number): number {
  return arena.i32[(cache >> 2) + CACHE_TOTAL];
}

/**
 * Makes a dead participant's cache consistent again: a pop or push cut short between its
 * list-head write and the advisory count writes leaves the counts off, so they are recomputed
 * from the lists. Call it before flushing or freeing that cache.
 */
export function repairCache(arena: Arena, cache: number): void {
  // Its blocks may lie past this thread's views: another worker grew the buffer for them.
  arena.reach(arena.buffer.byteLength);
  const i32 = arena.i32;
  let total = 0;
  for (let c = 0; c < NCLASSES; c++) {
    let n = 0;
    for (let b = i32[(cache >> 2) + 2 * c]; b !== 0; b = i32[b >> 2]) {
      if (++n > arena.bytes / 16) throw new RangeError("corrupt cache: its free list loops");
    }
    i32[(cache >> 2) + 2 * c + 1] = n;
    total += n * CLASS_SIZES[c];
  }
  i32[(cache >> 2) + CACHE_TOTAL] = total;
}

/** Moves up to {@linkcode REFILL} blocks of class `c` into the cache. */
function refill(arena: Arena, cache: number, c: number, j: Journal): void {
  const w = (cache >> 2) + 2 * c;
  const bytes = CLASS_SIZES[c];
  let taken = 0;
  for (; taken < REFILL; taken++) {
    let block: number;
    try {
      block = allocate(arena, bytes, false, j);
    } catch (error) {
      if (taken > 0 && error instanceof MapFullError) break;
      throw error;
    }
    j.set(block >> 2, arena.i32[w]);
    j.set(w, block);
  }
  j.set(w + 1, arena.i32[w + 1] + taken);
  j.set((cache >> 2) + CACHE_TOTAL, arena.i32[(cache >> 2) + CACHE_TOTAL] + taken * bytes);
}

/** Moves up to `n` blocks of class `c` from the cache back to their spans. */
function spill(arena: Arena, cache: number, c: number, n: number, j: Journal): void {
  const w = (cache >> 2) + 2 * c;
  const bytes = CLASS_SIZES[c];
  let moved = 0;
  for (; moved < n && arena.i32[w] !== 0 && j.room > FREE_ENTRIES_MAX; moved++) {
    const block = arena.i32[w];
    j.set(w, arena.i32[block >> 2]);
    release(arena, block, bytes, j);
  }
  j.set(w + 1, Math.max(0, arena.i32[w + 1] - moved));
  j.set(
    (cache >> 2) + CACHE_TOTAL,
    Math.max(0, arena.i32[(cache >> 2) + CACHE_TOTAL] - moved * bytes),
  );
}

// ---- Verification -------------------------------------------------------------------------

/** What {@linkcode verifyHeap} found. */
export interface HeapReport {
  /** Every block handed out and not freed: offset to bytes. Cached blocks included. */
  readonly blocks: Map<number, number>;
  /** Free bytes in bins and spans. */
  readonly freeBytes: number;
  /** Spans in use. */
  readonly spans: number;
}

/**
 * Walks the whole heap and every span and checks the allocator's invariants: chunk sizes and
 * flags, footers, no adjacent free chunks, bins and their bitmap, span free lists, bump
 * offsets, in-use counts and class lists, and `bytesUsed`. Throws a RangeError naming the first
 * broken one. Call it with the structure quiet (no allocation under way).
 */
export function verifyHeap(arena: Arena): HeapReport {
  arena.reach(arena.buffer.byteLength);
  const i32 = arena.i32;
  const fail = (what: string): never => {
    throw new RangeError(`verify: allocator: ${what}`);
  };
  const top = i32[H_TOP];
  if (top < HEADER_BYTES || top > arena.bytes || top % 16 !== 0) fail(`top ${top} out of range`);
  const blocks = new Map<number, number>();
  const freeChunks = new Set<number>();
  const spans: number[] = [];
  let freeBytes = 0;
  let prevInUse = true;
  for (let c = HEADER_BYTES; c < top;) {
    const h = i32[c >> 2];
    const size = h & ~FLAGS;
    if (size < MIN_CHUNK || size % 16 !== 0 || c + size > top) {
      fail(`chunk at ${c} has size ${size}`);
    }
    if (((h & PREV_INUSE) !== 0) !== prevInUse) fail(`chunk at ${c} has a wrong PREV_INUSE`);
    const inUse = (h & INUSE) !== 0;
    if (!inUse) {
      if (!prevInUse) fail(`free chunks at ${c} and before it are not merged`);
      if (i32[((c + size) >> 2) - 1] !== size) fail(`free chunk at ${c} has a wrong footer`);
      if ((h & SPAN_FLAG) !== 0) fail(`free chunk at ${c} is flagged SPAN`);
      freeChunks.add(c);
      freeBytes += size;
    } else if ((h & SPAN_FLAG) !== 0) {
      spans.push(c);
    } else {
      blocks.set(c + CHUNK_HEADER, size - CHUNK_HEADER);
    }
    prevInUse = inUse;
    c += size;
  }
  if (!prevInUse) fail("the chunk before the top is free (it should have merged into it)");
  let listed = 0;
  for (let b = 0; b < NBINS; b++) {
    const bit = (i32[A_BITMAP + (b >> 5)] >>> (b & 31)) & 1;
    let prev = 0;
    let n = 0;
    for (let c = i32[A_BINS + b]; c !== 0; c = i32[(c >> 2) + C_NEXT]) {
      if (!freeChunks.has(c)) fail(`bin ${b} lists ${c}, which is not a free chunk`);
      if (binOf(i32[c >> 2] & ~FLAGS) !== b) fail(`chunk ${c} sits in the wrong bin ${b}`);
      if (i32[(c >> 2) + C_PREV] !== prev) fail(`bin ${b}: bad back link at ${c}`);
      if (++n > freeChunks.size) fail(`bin ${b} loops`);
      prev = c;
    }
    if ((n !== 0) !== (bit === 1)) fail(`bin ${b}: bitmap bit ${bit} but ${n} chunks`);
    listed += n;
  }
  if (listed !== freeChunks.size) {
    fail(`${freeChunks.size} free chunks but ${listed} in bins`);
  }
  let used = 0;
  for (const size of blocks.values()) used += size;
  const inLists = new Set<number>();
  for (let c = 0; c < NCLASSES; c++) {
    let prev = 0;
    for (let s = i32[A_LISTS + c]; s !== 0; s = i32[spanWords(s) + SP_NEXT]) {
      if (inLists.has(s)) fail(`class ${c}'s span list loops`);
      if (i32[spanWords(s) + SP_PREV] !== prev) fail(`span ${s}: bad back link`);
      if (i32[spanWords(s) + SP_CLASS] !== c + 1) fail(`span ${s} is in class ${c}'s list`);
      inLists.add(s);
      prev = s;
    }
  }
  const spares = new Set<number>();
  for (let c = 0; c < NCLASSES; c++) if (i32[A_SPARE + c] !== 0) spares.add(i32[A_SPARE + c]);
  for (const s of spans) {
    const h = spanWords(s);
    const cls = i32[h + SP_CLASS] - 1;
    if (cls < 0 || cls >= NCLASSES) fail(`span ${s} has class ${cls}`);
    const span = spanBytes(cls);
    if (s % span !== 0) fail(`span ${s} is not aligned`);
    if ((i32[s >> 2] & ~FLAGS) !== span) fail(`span ${s} has a chunk of the wrong size`);
    const size = CLASS_SIZES[cls];
    const first = s + SPAN_HEADER;
    const capacity = Math.floor((span - SPAN_HEADER) / size);
    const bump = i32[h + SP_BUMP];
    if (bump !== 0 && (bump < first || (bump - first) % size !== 0 || bump + size > s + span)) {
      fail(`span ${s} has bump ${bump}`);
    }
    const bumped = bump === 0 ? capacity : (bump - first) / size;
    const free = new Set<number>();
    for (let b = i32[h + SP_FREE]; b !== 0; b = i32[b >> 2]) {
      if (b < first || (b - first) % size !== 0 || b >= first + bumped * size) {
        fail(`span ${s}: free block ${b} out of place`);
      }
      if (free.has(b)) fail(`span ${s}: its free list loops`);
      free.add(b);
      freeBytes += size;
    }
    const inUse = bumped - free.size;
    if (i32[h + SP_INUSE] !== inUse) {
      fail(`span ${s} counts ${i32[h + SP_INUSE]} blocks in use, but ${inUse} are`);
    }
    const room = free.size > 0 || bump !== 0;
    const isSpare = spares.has(s);
    if (isSpare && inUse !== 0) fail(`spare span ${s} has blocks in use`);
    if ((i32[h + SP_LISTED] === 1) !== inLists.has(s)) fail(`span ${s}: listed flag is wrong`);
    if (!isSpare && room !== inLists.has(s)) fail(`span ${s}: room ${room} but listed ${!room}`);
    if (!isSpare && inUse === 0) fail(`empty span ${s} was not given back`);
    freeBytes += (capacity - bumped) * size;
    for (let k = 0; k < bumped; k++) {
      const b = first + k * size;
      if (!free.has(b)) {
        blocks.set(b, size);
        used += size;
      }
    }
  }
  if (used !== i32[H_BYTES_USED]) {
    fail(`bytesUsed says ${i32[H_BYTES_USED]} but ${used} bytes are handed out`);
  }
  return { blocks, freeBytes, spans: spans.length };
}

/** Verifies a participant cache against the heap report: its blocks are handed out. */
export function verifyCache(arena: Arena, cache: number, report: HeapReport): number[] {
  const i32 = arena.i32;
  const out: number[] = [];
  for (let c = 0; c < NCLASSES; c++) {
    let n = 0;
    for (let b = i32[(cache >> 2) + 2 * c]; b !== 0; b = i32[b >> 2]) {
      if (report.blocks.get(b) !== CLASS_SIZES[c]) {
        throw new RangeError(
          `verify: cache ${cache} holds ${b}, not a ${CLASS_SIZES[c]}-byte block`,
        );
      }
      if (++n > report.blocks.size) throw new RangeError(`verify: cache ${cache}'s list loops`);
      out.push(b);
    }
  }
  return out;
}

/** The raw block of a cache (for ownership checks). */
export function cacheBlock(arena: Arena, cache: number): number {
  return arena.i32[(cache >> 2) + CACHE_RAW];
}

/** Bytes a cache block takes as allocated. */
export const CACHE_BLOCK_BYTES: number = CACHE_BYTES;
