/**
 * Internal. Per-participant allocation caches of the allocator (allocator.ts).
 *
 * **Caches.** A SyncMap allocates and frees a record on every store. Each participant keeps its
 * own lists of free small blocks in a cache block (like Go's per-P mcache), touched only by its
 * owner without a lock, refilled from spans and spilled back to them in batches under the lock.
 * Cached blocks count as in use for their spans and in `bytesUsed`.
 *
 * A cache block holds, for each small class, the head of a list of free blocks (threaded
 * through their first words) and their number; then the bytes the cache holds, and the
 * offset of the block as allocated. Only its owner touches it, with plain reads and writes,
 * except in refill and spill, which run under the allocator lock and journal their writes
 * with the lock's, so that a refill or spill cut short leaves the cache as it was. Between
 * those, a pop or push is one write of the list head; the count and byte words are advisory,
 * recomputed when a dead participant's cache is given back (see {@linkcode repairCache}).
 *
 * @module
 */

import { type Arena, roundUp } from "./arena.ts";
import * as arena_module from "./arena.ts";
import type { Journal } from "./journal.ts";
import { MapFullError } from "../errors.ts";
import { sizeClass } from "./alloc_layout.ts";
import * as alloc_layout from "./alloc_layout.ts";
import { allocate, lockedAllocate, lockedRelease, release, underLock } from "./allocator.ts";
import type { HeapReport } from "./heap_verify.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { HEADER_BYTES } = arena_module;
const { CLASS_SIZES, NCLASSES, SMALL_MAX } = alloc_layout;

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
 * Bytes of one class a cache holds before it spills, to begin with ({@linkcode spillAt}): 64 KiB,
 * or a 64th of maxBytes in a smaller map.
 *
 * A participant that allocates and frees at the same rate, as a store that overwrites does,
 * should keep its blocks between the refill at 0 and the spill: each refill or spill is a
 * journaled step under the allocator lock, which every worker shares, on span words that other
 * workers' steps write too. Its frees come in bursts, though. A collect frees only what every
 * other participant's announcement has passed (reclaim.ts), and a second writer's announcement
 * lags whenever that writer is descheduled or waits for the allocator lock: meanwhile the first
 * writer's retired blocks pile up, its allocations drain the cache and refill it from the spans,
 * and once the lag ends the burst of frees overflows the cache back into them. The swing is the
 * backlog of a lag, thousands of blocks. Measured with two workers storing disjoint number keys
 * (records of the 16-byte class) at 8 KiB a class: a refill in about 20 stores and a spill in 45
 * on Bun, and each worker spent a third of its time inside the allocator lock or waiting for it.
 * At 64 KiB, the two-worker throughput of bench/workers.ts's disjoint writers rose 1.54x on Deno
 * and 1.33x on Bun (same-run medians). A write that runs out of memory gives the cache back
 * first (reclaim.ts reclaimNow), and a small map keeps a small cache.
 */
const CACHE_CLASS_BYTES = 64 * 1024;

/**
 * Bytes of one class a cache holds at most once its limit has grown ({@linkcode growLimit}):
 * 1 MiB, and never more than a 64th of maxBytes.
 *
 * 64 KiB holds the backlog of a lag of about 0.3 ms (4,096 records of the 16-byte class at some
 * 70 ns a store), and a worker descheduled for a scheduler tick lags some milliseconds. With two
 * workers storing disjoint number keys for 3 s on this machine's two cores, each cache still
 * refilled about 10,000 times and spilled about 5,000 (Deno; one or the other worker, by turns),
 * and the two reached 0.84x to 0.90x the total of two workers on maps of their own. A class that
 * refills and spills by turns therefore doubles its limit at each spill that follows a refill, up
 * to this: a cache that only frees (deletes) or only allocates never grows, and a map whose
 * writes run it out of memory gives the cache back and its limits start over (flushCache).
 */
const CACHE_CLASS_MAX_BYTES = 1024 * 1024;

/**
 * Blocks of class `c` a cache of an arena of `maxBytes` holds to begin with: it spills
 * {@linkcode SPILL_BATCH} of them when it reaches this many ({@linkcode CACHE_CLASS_BYTES}),
 * never fewer than one, until its owner's {@linkcode CacheLimits} grow the class's limit toward
 * {@linkcode spillCap}.
 */
export function spillAt(maxBytes: number, c: number): number {
  const budget = Math.min(CACHE_CLASS_BYTES, Math.floor(maxBytes / 64));
  return Math.max(1, Math.floor(budget / CLASS_SIZES[c]));
}

/**
 * The most blocks of class `c` a cache of an arena of `maxBytes` holds once its limit has grown
 * ({@linkcode CACHE_CLASS_MAX_BYTES}), never fewer than {@linkcode spillAt}.
 */
export function spillCap(maxBytes: number, c: number): number {
  const budget = Math.min(CACHE_CLASS_MAX_BYTES, Math.floor(maxBytes / 64));
  return Math.max(spillAt(maxBytes, c), Math.floor(budget / CLASS_SIZES[c]));
}

/**
 * The limits of the cache its owner uses, in the owner's own memory: for each class, the blocks
 * it holds before it spills ({@linkcode spillAt} to {@linkcode spillCap}), and whether it was
 * refilled since its last spill ({@linkcode growLimit}). Not in the cache block: they steer only
 * how often the owner takes the allocator lock, and no one else reads them. A cache that
 * changes hands (a seat adopted with its cache) starts from {@linkcode spillAt} in its new
 * owner, as does one flushed ({@linkcode CacheLimits.reset}).
 */
export class CacheLimits {
  /** Blocks of class c held before a spill. */
  readonly limits: Int32Array = new Int32Array(NCLASSES);
  /** Bit c: class c refilled since its last spill. */
  refilled = 0;
  readonly #maxBytes: number;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
    this.reset();
  }

  /** Every class's limit where it begins, {@linkcode spillAt}. */
  reset(): void {
    for (let c = 0; c < NCLASSES; c++) this.limits[c] = spillAt(this.#maxBytes, c);
    this.refilled = 0;
  }
}

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
 * Frees a cache block, flushing what it holds first. `seatWord` is the word that points to
 * it, cleared in the same allocator step as the free: a thread stopped in between leaves the
 * word pointing to the cache or clear, never to a freed block.
 */
export function freeCache(arena: Arena, cache: number, seatWord: number): void {
  flushCache(arena, cache);
  underLock(arena, (j) => {
    j.set(seatWord, 0);
    release(arena, arena.i32[(cache >> 2) + CACHE_RAW], CACHE_BYTES, j);
  });
}

/**
 * {@linkcode allocate} through the cache at `cache` (contents unspecified). Blocks above
 * {@linkcode SMALL_MAX} go to the heap under the lock.
 */
export function cacheAllocate(
  arena: Arena,
  cache: number,
  size: number,
  limits: CacheLimits,
): number {
  if (size > SMALL_MAX) return lockedAllocate(arena, size, false);
  const c = sizeClass(size);
  let head = cacheReady(arena, cache, c);
  if (head === 0) head = cacheNext(arena, cache, c, limits);
  cacheTake(arena, cache, c, head);
  return head;
}

/**
 * The head of size class `c`'s list in the cache at `cache` if it can be taken as it is (the list
 * not empty, the head well formed and inside this thread's views), else 0, for
 * {@linkcode cacheNext} to refill or check. The fast path's test, kept apart from cacheNext's
 * slow paths so that JavaScriptCore inlines it: a `store` that called cacheNext for every block
 * took 1.09x on Bun (separate processes).
 */
export function cacheReady(arena: Arena, cache: number, c: number): number {
  const head = arena.i32[(cache >> 2) + 2 * c];
  return head >= HEADER_BYTES && (head & 15) === 0 && head + CLASS_SIZES[c] <= arena.bytes
    ? head
    : 0;
}

/**
 * The block of size class `c` that the cache at `cache` hands out next, refilling the class
 * first if it is empty: checked, in this thread's views, and still in the cache until
 * {@linkcode cacheTake} takes it. Apart from the take for a caller that notes the block as its
 * own before taking it (a SyncMap's hand log: reclaim.ts Participant.allocate).
 */
export function cacheNext(arena: Arena, cache: number, c: number, limits: CacheLimits): number {
  const w = (cache >> 2) + 2 * c;
  let head = arena.i32[w];
  if (head === 0) {
    lockedRefill(arena, cache, c, limits);
    head = arena.i32[w];
  }
  // A shared word: a corrupt head must not hand out the arena's header (past the buffer, reach
  // throws).
  if (head < HEADER_BYTES || (head & 15) !== 0) {
    throw new RangeError(`corrupt cache: class ${c}'s list begins at ${head}`);
  }
  const bytes = CLASS_SIZES[c];
  if (head + bytes > arena.bytes) arena.reach(head + bytes);
  return head;
}

/**
 * Takes `head`, which {@linkcode cacheNext} just gave for class `c`, off the cache at `cache`.
 * The pop is one write of the list head: a thread stopped before it leaves the block the head,
 * after it, taken.
 */
export function cacheTake(arena: Arena, cache: number, c: number, head: number): void {
  const w = (cache >> 2) + 2 * c;
  const i32 = arena.i32;
  i32[w] = i32[head >> 2]; // the pop: one write
  i32[head >> 2] = 0;
  i32[w + 1]--;
  i32[(cache >> 2) + CACHE_TOTAL] -= CLASS_SIZES[c];
}

/**
 * Whether `block` heads the list of size class `c` in the cache at `cache`: for the settling of
 * a dead owner's hand log (maps/_sync_hand_log.ts), a block noted before {@linkcode cacheTake}
 * and not taken, or put back by {@linkcode cachePutBack}.
 */
export function cacheHeads(arena: Arena, cache: number, c: number, block: number): boolean {
  return arena.i32[(cache >> 2) + 2 * c] === block;
}

/**
 * Puts `block` of size class `c` back at the head of its list in the cache at `cache`, with no
 * spill: for the releaser of a dead owner's seat (maps/_sync_hand_log.ts), which repairs the
 * cache's advisory counts and gives it back afterwards (registry.ts finishRelease). Done again
 * after a releaser stopped in it, it finds the block at the head ({@linkcode cacheHeads}).
 */
export function cachePutBack(arena: Arena, cache: number, c: number, block: number): void {
  const w = (cache >> 2) + 2 * c;
  const i32 = arena.i32;
  i32[block >> 2] = i32[w];
  i32[w] = block; // the push: one write, after the link
}

/** {@linkcode release} through the cache at `cache`. */
export function cacheRelease(
  arena: Arena,
  cache: number,
  offset: number,
  size: number,
  limits: CacheLimits,
): void {
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
  if (++i32[w + 1] >= limits.limits[c]) lockedSpill(arena, cache, c, limits);
}

// The allocator steps of the two functions above, apart from them: the variables a closure
// captures live in a context object that V8 makes as the enclosing function is entered, so a
// closure written inline would cost an allocation on every call, not only on these paths.

function lockedRefill(arena: Arena, cache: number, c: number, limits: CacheLimits): void {
  underLock(arena, (j) => refill(arena, cache, c, j));
  limits.refilled |= 1 << c;
}

function lockedSpill(arena: Arena, cache: number, c: number, limits: CacheLimits): void {
  if (growLimit(arena, cache, c, limits)) return;
  underLock(arena, (j) => spill(arena, cache, c, SPILL_BATCH, j));
}

/**
 * At a spill of class `c`: when the class was refilled since its last spill, its blocks swing
 * wider than its limit (a lag's backlog, see {@linkcode CACHE_CLASS_MAX_BYTES}), and its limit
 * doubles, up to {@linkcode spillCap}. Returns whether the cache now keeps its blocks without a
 * spill.
 */
function growLimit(arena: Arena, cache: number, c: number, limits: CacheLimits): boolean {
  if ((limits.refilled & (1 << c)) === 0) return false;
  limits.refilled &= ~(1 << c);
  const limit = limits.limits[c];
  const cap = spillCap(arena.maxBytes, c);
  if (limit >= cap) return false;
  const grown = 2 * limit < cap ? 2 * limit : cap;
  limits.limits[c] = grown;
  return arena.i32[(cache >> 2) + 2 * c + 1] < grown;
}

/**
 * Gives every cached block back to its span; the cache block stays, empty, and the owner's
 * `limits`, when given, start over. A batch at a time, so that each allocator step fits its
 * journal.
 */
export function flushCache(arena: Arena, cache: number, limits?: CacheLimits): void {
  for (let c = 0; c < NCLASSES; c++) {
    while (arena.i32[(cache >> 2) + 2 * c] !== 0) {
      underLock(arena, (j) => spill(arena, cache, c, SPILL_BATCH, j));
    }
  }
  limits?.reset();
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

/** Makes the views cover the words of cache `cache` (an adopted cache may lie past them). */
export function reachCache(arena: Arena, cache: number): void {
  arena.reach(cache + (CACHE_RAW + 1) * 4);
}

/** The raw block of a cache (for ownership checks). */
export function cacheBlock(arena: Arena, cache: number): number {
  return arena.i32[(cache >> 2) + CACHE_RAW];
}

/** Bytes a cache block takes as allocated. */
export const CACHE_BLOCK_BYTES: number = CACHE_BYTES;
