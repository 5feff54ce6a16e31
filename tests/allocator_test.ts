// Engine unit tests of the allocator on its own: a model-checked random workload over small
// arenas, memory reuse across size classes, failure at maxBytes, and a death at every write of
// an operation rolled back by its journal.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  ALLOC_JOURNAL_ENTRIES,
  Arena,
  H_ALLOC,
  H_ALLOC_JOURNAL,
  H_ALLOC_LOCK,
  H_TOP,
  HEADER_BYTES,
  KIND_GO_MAP,
} from "../src/_engine/arena.ts";
import {
  allocate,
  allocateAtLeast,
  blockSize,
  bytesUsed,
  grantedBytes,
  lockedAllocate,
  lockedRelease,
  release,
  verifyHeap,
} from "../src/_engine/allocator.ts";
import {
  A_BITMAP,
  C_NEXT,
  CHUNK_HEADER,
  chunkSizeFor,
  sizeClass,
  SP_FREE,
  SPAN_HEADER,
  spanWords,
} from "../src/_engine/alloc_layout.ts";
import {
  cacheAllocate,
  cachedBytes,
  CacheLimits,
  cacheRelease,
  flushCache,
  newCache,
  spillAt,
  spillCap,
  verifyCache,
} from "../src/_engine/alloc_cache.ts";
import { Journal } from "../src/_engine/journal.ts";
import { MapFullError } from "../src/errors.ts";
import { diesAt } from "./fixtures/journal_death.ts";

const KiB = 1024;

/** An arena and a journal to write through (the allocator lock's own, used here unlocked). */
function setup(maxBytes = 256 * KiB): { arena: Arena; j: Journal } {
  const arena = Arena.create(KIND_GO_MAP, maxBytes, 0, "auto", "auto", false);
  return { arena, j: new Journal(arena, H_ALLOC_JOURNAL, ALLOC_JOURNAL_ENTRIES) };
}

function transaction<T>(j: Journal, f: () => T): T {
  j.begin();
  try {
    const result = f();
    j.commit();
    return result;
  } catch (error) {
    j.recover();
    throw error;
  }
}

/** Snapshot of everything the allocator owns: header words, top, and the heap walk. */
function snapshot(arena: Arena): string {
  const i32 = arena.i32;
  const words = Array.from(i32.subarray(H_ALLOC, 234));
  const report = verifyHeap(arena);
  return JSON.stringify({
    words,
    top: i32[H_TOP],
    used: bytesUsed(arena),
    blocks: [...report.blocks].sort((a, b) => a[0] - b[0]),
  });
}

const sizes = fc.oneof(
  fc.integer({ min: 1, max: 128 }),
  fc.integer({ min: 129, max: 1024 }),
  fc.integer({ min: 1025, max: 20_000 }),
);

/**
 * Up to `most` random steps: [allocate (else free), size to allocate, which live block to free
 * (modulo their number)].
 */
const randomSteps = (most: number) =>
  fc.array(fc.tuple(fc.boolean(), sizes, fc.nat()), { minLength: 1, maxLength: most });

/**
 * Checks `property` on `numRuns` random workloads of up to `most` steps (randomSteps), each on a
 * fresh arena of `maxBytes`. `property` does the steps: a step frees the live block that
 * `toFree` picks, or allocates when there is none.
 */
function checkWorkloads(
  most: number,
  maxBytes: number,
  numRuns: number,
  property: (arena: Arena, j: Journal, steps: [boolean, number, number][]) => void,
): void {
  fc.assert(
    fc.property(randomSteps(most), (steps) => {
      const { arena, j } = setup(maxBytes);
      property(arena, j, steps);
    }),
    { numRuns },
  );
}

/**
 * The block of `live` (offset -> requested size) that a step [alloc, size, pick] frees, or -1
 * when it allocates: every step allocates while nothing is live.
 */
function toFree(live: Map<number, number>, [alloc, , pick]: [boolean, number, number]): number {
  if (alloc || live.size === 0) return -1;
  const keys = [...live.keys()];
  return keys[pick % keys.length];
}

test("allocator: random allocations and frees match a model, blocks never overlap", () => {
  checkWorkloads(300, 4 * 1024 * KiB, 60, (arena, j, steps) => {
    const live = new Map<number, number>(); // offset -> requested size
    for (const step of steps) {
      const size = step[1];
      const freeing = toFree(live, step);
      if (freeing < 0) {
        const at = transaction(j, () => allocate(arena, size, true, j));
        assert.equal(at % 16, 0);
        for (let k = 0; k < size; k++) assert.equal(arena.u8[at + k], 0);
        arena.u8.fill(0xab, at, at + size); // the caller's data
        live.set(at, size);
      } else {
        transaction(j, () => release(arena, freeing, live.get(freeing)!, j));
        live.delete(freeing);
      }
      const report = verifyHeap(arena);
      // Every live block is handed out, and they do not overlap.
      const spans = [...live].map(([at, size]) => [at, at + size]).sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < spans.length; i++) assert.ok(spans[i - 1][1] <= spans[i][0]);
      for (const [at, size] of live) assert.ok(report.blocks.get(at)! >= size);
      assert.equal(report.blocks.size, live.size);
    }
    for (const [at, size] of live) transaction(j, () => release(arena, at, size, j));
    assert.equal(bytesUsed(arena), 0);
    verifyHeap(arena);
  });
});

/** Allocates `size`-byte blocks until the arena is full (a MapFullError); returns them. */
function fillWith(arena: Arena, j: Journal, size: number): number[] {
  const blocks: number[] = [];
  for (;;) {
    try {
      blocks.push(transaction(j, () => allocate(arena, size, false, j)));
    } catch (error) {
      assert.ok(error instanceof MapFullError);
      return blocks;
    }
  }
}

test("allocator: freed small blocks serve a large request, and large ones small requests", () => {
  const { arena, j } = setup(256 * KiB);
  // Fill the arena with 16-byte blocks.
  const small = fillWith(arena, j, 16);
  assert.throws(() => transaction(j, () => allocate(arena, 40_000, false, j)), MapFullError);
  for (const at of small) transaction(j, () => release(arena, at, 16, j));
  assert.equal(bytesUsed(arena), 0);
  // Every span went back to the heap: one big block fits where the small ones were.
  const big = transaction(j, () => allocate(arena, 150_000, false, j));
  transaction(j, () => release(arena, big, 150_000, j));
  // And the other way round: big blocks freed, small ones of every class fit again.
  const bigs = fillWith(arena, j, 30_000);
  assert.ok(bigs.length >= 4);
  for (const at of bigs) transaction(j, () => release(arena, at, 30_000, j));
  // Small blocks of any class take their spans out of the memory the big blocks had.
  const heap = 256 * KiB - HEADER_BYTES;
  for (const size of [96, 640]) {
    const got = fillWith(arena, j, size);
    const filled = got.length * size;
    assert.ok(filled > 0.85 * heap, `only ${filled} of ${heap} bytes refilled with ${size}s`);
    for (const at of got) transaction(j, () => release(arena, at, size, j));
    assert.equal(bytesUsed(arena), 0);
  }
  verifyHeap(arena);
});

test("allocator: a full arena serves allocateAtLeast from a larger class with room", () => {
  const { arena, j } = setup(64 * KiB);
  // Fill the arena with 320-byte blocks, then free every other one: the spans keep room for
  // their class, and no span of any other class can be made.
  const blocks = fillWith(arena, j, 320);
  for (let i = 0; i < blocks.length; i += 2) {
    transaction(j, () => release(arena, blocks[i], 320, j));
  }
  assert.throws(() => transaction(j, () => allocate(arena, 144, true, j)), MapFullError);
  const before = bytesUsed(arena);
  const got: number[] = [];
  for (let i = 0; i < blocks.length; i += 2) {
    got.push(transaction(j, () => allocateAtLeast(arena, 144, true, j)));
    assert.equal(grantedBytes, blockSize(320));
    assert.ok(arena.u8.subarray(got.at(-1)!, got.at(-1)! + grantedBytes).every((b) => b === 0));
  }
  assert.equal(bytesUsed(arena), before + got.length * blockSize(320));
  // Served as a 320-byte block, freed as one.
  for (const at of got) transaction(j, () => release(arena, at, grantedBytes, j));
  assert.equal(bytesUsed(arena), before);
  // With room for its own class, it is an ordinary allocation.
  const { arena: fresh, j: fj } = setup(64 * KiB);
  transaction(fj, () => allocateAtLeast(fresh, 144, false, fj));
  assert.equal(grantedBytes, blockSize(144));
  verifyHeap(arena);
});

test("allocator: sizes beyond maxBytes are MapFullError with nothing changed", () => {
  const { arena, j } = setup(256 * KiB);
  const before = snapshot(arena);
  for (const size of [256 * KiB, 2 ** 31, 2 ** 32 + 16, 2 ** 40]) {
    assert.throws(() => transaction(j, () => allocate(arena, size, false, j)), MapFullError);
    assert.equal(snapshot(arena), before);
  }
});

test("allocator: a death at any write of an operation is rolled back to the state before it", () => {
  checkWorkloads(30, 2 * 1024 * KiB, 40, (arena, j, steps) => {
    const live = new Map<number, number>();
    for (const step of steps) {
      const size = step[1];
      const freeing = toFree(live, step);
      const op = (): number =>
        freeing >= 0
          ? (release(arena, freeing, live.get(freeing)!, j), -1)
          : allocate(arena, size, false, j);
      const before = snapshot(arena);
      // Kill the operation after each of its writes in turn, and roll it back.
      for (let killAt = 0;; killAt++) {
        j.begin();
        const died = diesAt(j, killAt, op);
        j.recover(); // what the next holder does; also undoes the finished run
        assert.equal(snapshot(arena), before, `after a death at write ${killAt}`);
        if (!died) break;
      }
      j.begin();
      const at = op();
      j.commit();
      if (freeing >= 0) live.delete(freeing);
      else live.set(at, size);
    }
  });
});

test("allocator: the locked allocator of a SyncMap arena", () => {
  const arena = Arena.create(2, 256 * KiB, 0, "auto", "auto", true);
  const a = lockedAllocate(arena, 100, true);
  const b = lockedAllocate(arena, 5000, true);
  assert.equal(bytesUsed(arena), 112 + 5008);
  lockedRelease(arena, a, 100);
  lockedRelease(arena, b, 5000);
  assert.equal(bytesUsed(arena), 0);
  verifyHeap(arena);
});

test("allocator: a rollback restores the footer of a free chunk a span was carved from to its end", () => {
  // A free chunk that ends on a 4 KiB boundary, with room for a 4 KiB span at its end: the
  // span's last block then covers the chunk's footer. The transaction fills every block of
  // the span (28 of 144 bytes, a GoMap overflow bucket's size) and rolls back.
  const { arena, j } = setup();
  const first = transaction(j, () => allocate(arena, 2000, false, j));
  const start = first - CHUNK_HEADER + chunkSizeFor(2000); // where the next chunk starts
  const end = Math.ceil((start + 4096 + 64) / 4096) * 4096;
  const payload = end - start - CHUNK_HEADER;
  const f = transaction(j, () => allocate(arena, payload, false, j));
  const guard = transaction(j, () => allocate(arena, 2000, false, j));
  assert.equal(guard - CHUNK_HEADER, end, "the chunk ends on the boundary");
  transaction(j, () => release(arena, f, payload, j));
  const before = snapshot(arena);
  j.begin();
  let last = 0;
  for (let k = 0; k < (4096 - SPAN_HEADER) / 144; k++) {
    last = allocate(arena, 144, false, j);
    arena.u8.fill(0xee, last, last + 144);
  }
  assert.equal(last + 144, end, "the span's last block ends where the free chunk ended");
  j.recover();
  assert.equal(snapshot(arena), before);
});

test("allocator: a transaction of many allocations and frees rolls back exactly", () => {
  // As the maps' transactions do (tx.ts), the frees come after the allocations, so a block
  // freed is not handed out again by the same transaction; the allocator may still reuse its
  // own freed memory (spare spans) within one step. A rollback must restore every live block's
  // contents and the allocator's own words.
  fc.assert(
    fc.property(
      fc.array(sizes, { minLength: 5, maxLength: 80 }),
      randomSteps(40),
      (initial, steps) => {
        const { arena, j } = setup(64 * KiB);
        const live = new Map<number, number>();
        for (const size of initial) {
          try {
            const at = transaction(j, () => allocate(arena, size, false, j));
            arena.u8.fill(at & 255, at, at + size);
            live.set(at, size);
          } catch {
            break;
          }
        }
        // Free every other block: spans empty out (one per class is kept as a spare), and the
        // heap gets holes, so the transaction below meets both.
        let odd = false;
        for (const [at, size] of [...live]) {
          if ((odd = !odd)) continue;
          transaction(j, () => release(arena, at, size, j));
          live.delete(at);
        }
        const before = snapshot(arena);
        const contents = new Map(
          [...live].map(([at, size]) => [at, arena.u8.slice(at, at + size)]),
        );
        const mine = new Map(live);
        j.begin();
        const frees: number[] = [];
        try {
          for (const [alloc, size, pick] of steps) {
            const keys = [...mine.keys()].filter((at) => !frees.includes(at));
            if (!alloc && keys.length > 0) {
              frees.push(keys[pick % keys.length]);
            } else {
              const at = allocate(arena, size, false, j);
              arena.u8.fill(0xee, at, at + size); // overwrite whatever was there
              mine.set(at, size);
            }
          }
          for (const at of frees) release(arena, at, mine.get(at)!, j);
        } catch (error) {
          if (!(error instanceof MapFullError)) throw error;
        }
        j.recover();
        assert.equal(snapshot(arena), before);
        for (const [at, bytes] of contents) {
          assert.deepEqual(arena.u8.slice(at, at + bytes.length), bytes, `block ${at}`);
        }
      },
    ),
    {
      numRuns: 200,
      // A free that merged into the top a free chunk before it, whose header and links the
      // allocation after then overwrote: they were not journaled (found by this property).
      examples: [[[769, 8177, 1, 33, 769, 4081, 1025, 17], [[true, 16369, 0], [false, 1025, 0]]]],
    },
  );
});

test("allocator cache: a class holds 64 KiB of freed blocks, a 64th of maxBytes in a small map", () => {
  // A collect frees its retired blocks in bursts (with a second writer, the backlog of that
  // writer's lag); a cache that spilled and refilled across every burst took the allocator lock,
  // which every worker shares, once in about twenty stores.
  const cases: [maxBytes: number, size: number, holds: number][] = [
    [4096 * KiB, 16, 4096],
    [4096 * KiB, 64, 1024],
    [4096 * KiB, 1008, 65],
    [256 * KiB, 16, 256],
    [256 * KiB, 1008, 4],
  ];
  for (const [maxBytes, size, holds] of cases) {
    const what = `class ${size} of a ${maxBytes / KiB} KiB map`;
    assert.equal(spillAt(maxBytes, sizeClass(size)), holds, what);
    const arena = Arena.create(2, maxBytes, 0, "auto", "auto", true);
    const cache = newCache(arena);
    const limits = new CacheLimits(maxBytes);
    const blocks = Array.from({ length: holds }, () => lockedAllocate(arena, size, false));
    for (let i = 0; i < holds - 1; i++) cacheRelease(arena, cache, blocks[i], size, limits);
    assert.equal(cachedBytes(arena, cache), (holds - 1) * size, `${what}: kept them all`);
    cacheRelease(arena, cache, blocks[holds - 1], size, limits);
    assert.equal(cachedBytes(arena, cache), Math.max(0, holds - 32) * size, `${what}: spilled 32`);
    // Drained, the cache pops what it holds, then refills from the spans.
    for (let i = 0; i < holds; i++) cacheAllocate(arena, cache, size, limits);
    flushCache(arena, cache);
    assert.equal(cachedBytes(arena, cache), 0);
    verifyHeap(arena);
  }
});

test("allocator cache: a class that refills and spills by turns doubles its limit, up to 1 MiB or a 64th of maxBytes", () => {
  // A second writer's lag piles up the first's retired blocks, which it frees in a burst when the
  // lag ends: its cache refills through the lag and spills through the burst, under the lock
  // every worker shares. Such a class grows its limit; frees alone (deletes) do not.
  const cases: [maxBytes: number, cap: number][] = [[16 * 1024 * KiB, 16384], [
    1024 * 1024 * KiB,
    65536,
  ]];
  for (const [maxBytes, cap] of cases) {
    const what = `a ${maxBytes / KiB} KiB map`;
    const arena = Arena.create(2, maxBytes, 0, "auto", "auto", true);
    const cache = newCache(arena);
    const limits = new CacheLimits(maxBytes);
    const c = sizeClass(16);
    const base = spillAt(maxBytes, c);
    assert.equal(base, 4096, what);
    assert.equal(spillCap(maxBytes, c), cap, what);
    // Frees alone: spills at the limit, which stays where it began.
    const freed = Array.from({ length: 2 * base }, () => lockedAllocate(arena, 16, false));
    for (const b of freed) cacheRelease(arena, cache, b, 16, limits);
    assert.equal(limits.limits[c], base, `${what}: frees alone leave the limit`);
    assert.ok(cachedBytes(arena, cache) < base * 16, `${what}: and spill`);
    // Swings wider than the cache: each round's allocations refill it, its frees spill it.
    for (let round = 1, limit = base; limit < cap || round < 8; round++) {
      const taken = Array.from({ length: 2 * cap }, () => cacheAllocate(arena, cache, 16, limits));
      for (const b of taken) cacheRelease(arena, cache, b, 16, limits);
      limit = Math.min(cap, 2 * limit);
      assert.equal(limits.limits[c], limit, `${what}, round ${round}: the limit`);
      assert.ok(cachedBytes(arena, cache) <= limit * 16, `${what}, round ${round}: held`);
      assert.ok(cachedBytes(arena, cache) >= (limit - 32) * 16, `${what}, round ${round}: kept`);
    }
    // A flush (a write that ran the map out of memory gives its cache back) starts over.
    flushCache(arena, cache, limits);
    assert.equal(limits.limits[c], base, `${what}: the flush starts the limit over`);
    verifyCache(arena, cache, verifyHeap(arena));
  }
});

test("allocator: a corrupt bitmap bit, span word or cache head is an error, never the header handed out", () => {
  const magic = (arena: Arena) => arena.i32[0];
  const locked = (arena: Arena) => Atomics.load(arena.i32, H_ALLOC_LOCK);
  // A bitmap bit set over an empty bin: its head, 0, would be taken for a chunk at byte 0.
  {
    const arena = Arena.create(2, 1024 * KiB, 0, "auto", "auto", true);
    lockedAllocate(arena, 5000, false);
    const before = magic(arena);
    arena.i32[A_BITMAP + 3] |= 1 << 10;
    assert.throws(() => lockedAllocate(arena, 3000, false), /corrupt heap: a bin lists 0/);
    assert.equal(magic(arena), before);
    assert.equal(locked(arena), 0, "the allocator lock is free");
    arena.i32[A_BITMAP + 3] &= ~(1 << 10);
    lockedAllocate(arena, 3000, false);
    verifyHeap(arena);
  }
  // A free chunk's link naming the header: unlinking it would write through the link.
  {
    const arena = Arena.create(2, 1024 * KiB, 0, "auto", "auto", true);
    const a = lockedAllocate(arena, 5000, false);
    lockedAllocate(arena, 5000, false); // keeps `a` from merging into the top
    lockedRelease(arena, a, 5000);
    const top = arena.i32[H_TOP];
    const link = ((a - CHUNK_HEADER) >> 2) + C_NEXT;
    arena.i32[link] = 12;
    assert.throws(() => lockedAllocate(arena, 5000, false), /corrupt heap: the bin links/);
    assert.equal(arena.i32[H_TOP], top, "nothing written through the link");
    assert.equal(locked(arena), 0, "the allocator lock is free");
    arena.i32[link] = 0;
    assert.equal(lockedAllocate(arena, 5000, false), a);
    verifyHeap(arena);
  }
  // A span's free-list head naming the header.
  {
    const arena = Arena.create(2, 1024 * KiB, 0, "auto", "auto", true);
    const first = lockedAllocate(arena, 64, false);
    const second = lockedAllocate(arena, 64, false);
    lockedRelease(arena, first, 64); // the span's free list: first
    const span = first - SPAN_HEADER;
    const word = spanWords(span) + SP_FREE;
    assert.equal(arena.i32[word], first);
    arena.i32[word] = 16;
    assert.throws(() => lockedAllocate(arena, 64, false), /corrupt heap: class \d+'s span/);
    assert.equal(locked(arena), 0, "the allocator lock is free");
    arena.i32[word] = first;
    assert.equal(lockedAllocate(arena, 64, false), first);
    lockedRelease(arena, second, 64);
  }
  // A cache's list head naming the header.
  {
    const arena = Arena.create(2, 1024 * KiB, 0, "auto", "auto", true);
    const cache = newCache(arena);
    const limits = new CacheLimits(arena.maxBytes);
    cacheRelease(arena, cache, lockedAllocate(arena, 64, false), 64, limits);
    const w = (cache >> 2) + 2 * sizeClass(64);
    const head = arena.i32[w];
    arena.i32[w] = 16;
    assert.throws(() => cacheAllocate(arena, cache, 64, limits), /corrupt cache/);
    assert.equal(magic(arena) !== 0, true);
    arena.i32[w] = head;
    assert.equal(cacheAllocate(arena, cache, 64, limits), head);
  }
});
