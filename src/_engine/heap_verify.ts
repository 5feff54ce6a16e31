/**
 * Internal. Verification of the allocator (allocator.ts): a walk of the whole heap and every span
 * that checks their invariants, for `verify()` and the tests.
 *
 * @module
 */

import type { Arena } from "./arena.ts";
import * as arena_module from "./arena.ts";
import { binOf, spanWords } from "./alloc_layout.ts";
import * as alloc_layout from "./alloc_layout.ts";
import { BlockMap } from "./block_map.ts";
import { isSpareSpan } from "./spans.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { H_BYTES_USED, H_TOP, HEADER_BYTES } = arena_module;
const {
  A_BINS,
  A_BITMAP,
  A_LISTS,
  A_SPARE,
  BITMAP_WORDS,
  C_NEXT,
  C_PREV,
  CHUNK_HEADER,
  CLASS_SIZES,
  FLAGS,
  INUSE,
  MIN_CHUNK,
  NBINS,
  NCLASSES,
  PREV_INUSE,
  SP_BUMP,
  SP_CLASS,
  SP_FREE,
  SP_INUSE,
  SP_LISTED,
  SP_NEXT,
  SP_PREV,
  SPAN_BYTES,
  SPAN_FLAG,
  SPAN_HEADER,
} = alloc_layout;

/** What {@linkcode verifyHeap} found. */
export interface HeapReport {
  /** Every block handed out and not freed: offset to bytes. Cached blocks included. */
  readonly blocks: BlockMap;
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
  const blocks = BlockMap.ofHeap(arena);
  let used = 0;
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
      used += size - CHUNK_HEADER;
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
  // The bitmap's bits past the last bin belong to no bin: one set would send a search for a
  // free chunk to a bin that is not there.
  for (let b = NBINS; b < BITMAP_WORDS * 32; b++) {
    if (((i32[A_BITMAP + (b >> 5)] >>> (b & 31)) & 1) !== 0) fail(`bitmap bit ${b} is set`);
  }
  const inLists = new Set<number>();
  const spanChunks = new Set(spans);
  for (let c = 0; c < NCLASSES; c++) {
    let prev = 0;
    for (let s = i32[A_LISTS + c]; s !== 0; s = i32[spanWords(s) + SP_NEXT]) {
      // Before its words are read as a span's: a list may only hold span chunks.
      if (!spanChunks.has(s)) fail(`class ${c}'s span list holds ${s}, which is not a span`);
      if (inLists.has(s)) fail(`class ${c}'s span list loops`);
      if (i32[spanWords(s) + SP_PREV] !== prev) fail(`span ${s}: bad back link`);
      if (i32[spanWords(s) + SP_CLASS] !== c + 1) fail(`span ${s} is in class ${c}'s list`);
      inLists.add(s);
      prev = s;
    }
  }
  const spares = new Set<number>();
  const allSpans = new Set(spans);
  for (let c = 0; c < NCLASSES; c++) {
    const s = i32[A_SPARE + c];
    if (s === 0) continue;
    // The allocator takes a spare for a new span of its class as it stands (newSpan).
    if (!allSpans.has(s) || spares.has(s) || !isSpareSpan(arena, c, s)) {
      fail(`class ${c}'s spare span ${s} is not an empty span of that class`);
    }
    spares.add(s);
  }
  for (const s of spans) {
    const h = spanWords(s);
    const cls = i32[h + SP_CLASS] - 1;
    if (cls < 0 || cls >= NCLASSES) fail(`span ${s} has class ${cls}`);
    const span = SPAN_BYTES;
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

/**
 * Checks a structure's marking against the allocator's walk: every block `used` reaches was
 * handed out with the size it is used as, and every block handed out is reached or free in a
 * participant's cache (`cached`). Calls `fail` (which throws) at the first that is not.
 */
export function checkHanded(
  used: BlockMap,
  handed: BlockMap,
  cached: ReadonlySet<number>,
  fail: (what: string) => never,
): void {
  used.forEach((offset, bytes) => {
    const size = handed.get(offset);
    if (size === undefined) fail(`block ${offset} is in use but was never handed out`);
    if (size !== bytes) fail(`block ${offset} is used as ${bytes} bytes but has ${size}`);
  });
  handed.forEach((offset, bytes) => {
    if (!used.has(offset) && !cached.has(offset)) {
      fail(`block ${offset} (${bytes} bytes) is handed out and unreachable`);
    }
  });
}
