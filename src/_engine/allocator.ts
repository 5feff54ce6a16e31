/**
 * Internal. The arena's allocator: size-class spans for small blocks, over a heap of
 * boundary-tagged chunks that splits and merges, so that freed memory serves any size.
 *
 * The parts: the heap of boundary-tagged chunks (heap.ts), the spans of small blocks (spans.ts),
 * the per-participant caches (alloc_cache.ts), their layout (alloc_layout.ts), and the check of
 * their invariants (heap_verify.ts). This file holds the entry points the rest of the engine calls.
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

import type { Arena } from "./arena.ts";
import * as arena_module from "./arena.ts";
import { liveOwnerId } from "./census.ts";
import { clearPoison, lockWord } from "./futex.ts";
import * as futex from "./futex.ts";
import { Journal } from "./journal.ts";
import { MapFullError } from "../errors.ts";
import { blockSize, chunkSizeFor, sizeClass } from "./alloc_layout.ts";
import * as alloc_layout from "./alloc_layout.ts";
import { largeAllocate, largeFree, releaseSpare } from "./heap.ts";
import { smallAllocate, smallFree } from "./spans.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { ALLOC_JOURNAL_ENTRIES, H_ALLOC_JOURNAL, H_ALLOC_LOCK, H_BYTES_USED, HEADER_BYTES } =
  arena_module;
const { ACQUIRED, CONTENDED, OWNER_SHIFT, POISONED } = futex;
const {
  A_LISTS,
  A_SPARE,
  CHUNK_HEADER,
  CLASS_SIZES,
  FLAGS,
  INUSE,
  NCLASSES,
  SMALL_MAX,
  SPAN_FLAG,
} = alloc_layout;

// The layout's sizing functions and the heap check are part of the allocator's entry points.
export { blockSize, footprint, HEADROOM_BYTES, SMALL_MAX } from "./alloc_layout.ts";
export { checkHanded, type HeapReport, verifyHeap } from "./heap_verify.ts";

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
    arena,
    H_ALLOC_JOURNAL,
    ALLOC_JOURNAL_ENTRIES,
  );
}

/**
 * Runs `f` under the allocator lock with the lock's journal begun, committing it after, and
 * rolling it back if `f` throws. A lock left by a dead thread is taken over and its operation
 * rolled back first. In a thread marked terminating, throws TerminatedError before the lock.
 */
export function underLock<T>(arena: Arena, f: (j: Journal) => T): T {
  // A thread marked terminating stops here (TerminatedError, or a Deno zombie's exit), before
  // the lock: a zombie in a long loop of steps (a collect's spills, a flush, a sweep's frees,
  // a rebuild's allocations) must not reach a step after the grace, when a waiter takes the
  // lock over and rolls back the journal it is still writing (census.ts, ownerGone).
  const me = liveOwnerId();
  // Taken before the lock: the release below must make no call (see the finally).
  const i32 = arena.i32;
  // No park hook (see SyncCore's): a step of the allocator never waits for anything else, so
  // a stop of the world need not go on without the threads queued here.
  const status = lockWord(i32, H_ALLOC_LOCK, me);
  // Whether the journal is idle again, the step committed or rolled back. Until then the lock
  // is released poisoned, whatever threw (a stack overflow can throw from any call, the
  // rollback's included), so that its next holder rolls the step back as a dead holder's.
  let settled = false;
  try {
    arena.reachTop();
    const j = allocatorJournal(arena);
    if (status !== ACQUIRED) {
      // The dead holder may have grown the buffer and journaled writes past these views
      // before it raised the top (a new span's first word lies at the old end): cover the
      // whole buffer, or the rollback would take those entries for corrupt ones.
      arena.reach(arena.buffer.byteLength);
      j.recover();
      clearPoison(arena.i32, H_ALLOC_LOCK, me);
    }
    // A begin that throws (a corrupt journal) has written nothing: released clean.
    settled = true;
    j.begin();
    settled = false;
    let result: T;
    try {
      result = f(j);
      // Inside the try: a commit that throws (a stack overflow as it is entered, before it
      // writes) is rolled back here too, before the caller goes on. Released unsettled
      // instead, the step would wait for the lock's next holder while this thread went on
      // with what it wrote (a refilled cache's list, whose blocks the spans still count free).
      j.commit();
    } catch (error) {
      j.recover(); // back, or forward if the commit had begun (the step then took effect)
      settled = true;
      throw error;
    }
    settled = true;
    return result;
  } finally {
    // The release, written out with builtins alone: a stack overflow is checked for as a
    // function of ours is entered, and this release must not fail (the lock would be held for
    // good by a thread that goes on). Unsettled, it leaves the lock poisoned: the next holder
    // rolls the step back as a dead holder's.
    let w = Atomics.load(i32, H_ALLOC_LOCK);
    while (w >>> OWNER_SHIFT === me) {
      const found = Atomics.compareExchange(
        i32,
        H_ALLOC_LOCK,
        w,
        settled ? w & POISONED : POISONED,
      );
      if (found === w) {
        if ((w & CONTENDED) !== 0) Atomics.notify(i32, H_ALLOC_LOCK, 1);
        break;
      }
      w = found;
    }
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

/**
 * Gives every empty span kept for reuse (one per class) back to the heap, each in its own step
 * under the allocator lock. For after a bulk free: the spans it emptied would otherwise stay
 * where they were, spares, and the next allocations of their classes would reuse them there,
 * between free chunks that each fall short of what a table's growth needs (a large chunk, or a
 * span on a 4 KiB boundary). Given back, they merge with their free neighbours, and new
 * spans are carved from the merged memory side by side. A step cut short by its thread's death
 * is rolled back by the lock's next holder: the spare stays one, as before the step.
 */
export function lockedReleaseSpares(arena: Arena): void {
  for (let c = 0; c < NCLASSES; c++) {
    // A plain read as a hint; the step reads the word again under the lock.
    if (arena.i32[A_SPARE + c] !== 0) underLock(arena, (j) => releaseSpare(arena, c, j));
  }
}
