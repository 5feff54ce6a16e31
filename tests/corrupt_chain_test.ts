// Copyright the shmap authors. MIT license.
// A corrupt overflow chain, made by one 4-byte write, is reported, never followed forever: every
// walk along a chain (lookups, inserts, deletes, iteration, clear, verify) is bounded by the
// number of buckets the arena could hold, so the corruption becomes a RangeError at once.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { GoMap, SyncMap } from "../mod.ts";
import { Arena, H_ROOT, H_TOP, KIND_GO_MAP, KIND_SYNC_MAP } from "../src/_engine/arena.ts";
import { Probe, setKeyNumber } from "../src/_engine/slots.ts";
import { KEYS, MIN_TOP_HASH, T_BUCKETS } from "../src/_engine/table_layout.ts";
import { AMENDED, R_READ } from "../src/maps/_sync_layout.ts";
import { bucketAt } from "../src/_engine/table.ts";
import { TABLE_AT } from "../src/maps/go_map.ts";

/** A GoMap of one bucket (B = 0) holding `n` keys, whose bucket's overflow link points to itself. */
function looped(n: number): GoMap<number, number> {
  const map = new GoMap<number, number>();
  for (let k = 0; k < n; k++) map.set(k, k);
  assert.equal(map.stats().B, 0);
  const arena = Arena.attach(map.handle.buffer, KIND_GO_MAP, false, "test");
  const { offset, overflowWord } = bucketAt(arena, TABLE_AT, 0);
  assert.equal(arena.i32[overflowWord], 0, "the bucket had no overflow bucket");
  // The one write: the bucket's overflow link now names the bucket itself.
  arena.i32[overflowWord] = offset;
  return map;
}

const LOOPS = /overflow chain loops|corrupt/;

describe("GoMap: an overflow chain that loops is an error, not a hang", () => {
  // A full bucket: a lookup of a missing key, an insert of a new one and a clear all walk on
  // past it, into the loop.
  test("get and has of a missing key", () => {
    const map = looped(8);
    const start = performance.now();
    assert.throws(() => map.get(1000), LOOPS);
    assert.throws(() => map.has(1000), LOOPS);
    assert.ok(performance.now() - start < 5000);
  });

  test("set of a new key", () => {
    const map = looped(8);
    const start = performance.now();
    assert.throws(() => map.set(1000, 1), LOOPS);
    assert.ok(performance.now() - start < 5000);
  });

  test("delete of a missing key, and iteration", () => {
    const map = looped(8);
    assert.throws(() => map.delete(1000), LOOPS);
    assert.throws(() => [...map], LOOPS);
  });

  test("clear()", () => {
    const map = looped(8);
    const start = performance.now();
    assert.throws(() => map.clear(), LOOPS);
    assert.ok(performance.now() - start < 5000);
    // The step that met the loop was undone: the journal is idle, and writes go on.
    map.set(0, 42);
    assert.equal(map.get(0), 42);
  });

  test("verify() names the loop", () => {
    const map = looped(8);
    assert.throws(() => map.verify(), RangeError);
  });

  test("keys found before the loop are still found", () => {
    const map = looped(8);
    for (let k = 0; k < 8; k++) assert.equal(map.get(k), k);
  });
});

describe("an overflow link that names no bucket is an error, never followed", () => {
  // A full home bucket (B = 0) whose overflow link names a crafted bucket 4 bytes past a block's
  // start (links are 16-byte aligned), in free memory above the heap's top, holding key 1000:
  // followed, a write of key 1000's value would land over the words of the two blocks it
  // straddles.
  function misaligned(): { map: GoMap<number, unknown>; arena: Arena; fake: number } {
    const map = new GoMap<number, unknown>();
    for (let k = 0; k < 8; k++) map.set(k, k);
    const arena = Arena.attach(map.handle.buffer, KIND_GO_MAP, false, "test");
    const { overflowWord } = bucketAt(arena, TABLE_AT, 0);
    // Far enough above the top that a string value's blob is not allocated over it.
    const fake = ((arena.i32[H_TOP] + 2048) & ~15) + 4;
    assert.ok(fake + 144 <= arena.bytes, "the crafted bucket lies within the buffer");
    const p = new Probe();
    setKeyNumber(p, 1000, arena.seed0, arena.seed1);
    const t0 = p.hash >>> 24;
    arena.u8[fake] = t0 < MIN_TOP_HASH ? t0 + MIN_TOP_HASH : t0;
    arena.i32[(fake + KEYS) >> 2] = p.lo;
    arena.i32[(fake + KEYS + 4) >> 2] = p.hi;
    arena.i32[overflowWord] = fake;
    return { map, arena, fake };
  }
  const CORRUPT = /corrupt table: an overflow pointer \(\d+\) lies outside the heap/;

  test("GoMap: get, and set of a number or a string, refuse it and write nothing there", () => {
    for (const value of [1.5, "a string"]) {
      const { map, arena, fake } = misaligned();
      const before = Array.from(arena.i32.subarray(fake >> 2, (fake >> 2) + 40));
      assert.throws(() => map.get(1000), CORRUPT);
      assert.throws(() => map.set(1000, value), CORRUPT);
      assert.deepEqual(Array.from(arena.i32.subarray(fake >> 2, (fake >> 2) + 40)), before);
      map.set(3, 33); // the write sequence is free
      assert.equal(map.get(3), 33);
    }
  });
});

describe("a table whose bucket array lies outside the heap is an error, never a write there", () => {
  /** The words before the root: the arena's header and the allocator's state. */
  const headerWords = (arena: Arena) => Array.from(arena.i32.subarray(0, H_ROOT));

  for (const buckets of [-1, 64]) {
    test(`GoMap: bucket array at ${buckets}`, () => {
      const map = new GoMap<number, number>();
      for (let k = 0; k < 100; k++) map.set(k, k);
      const arena = Arena.attach(map.handle.buffer, KIND_GO_MAP, false, "test");
      arena.i32[(TABLE_AT >> 2) + T_BUCKETS] = buckets;
      const before = headerWords(arena);
      const outside = /bucket arrays lie outside the heap/;
      assert.throws(() => map.set(1000, 1), outside);
      assert.throws(() => map.delete(5), outside);
      assert.throws(() => map.clear(), outside);
      assert.deepEqual(headerWords(arena), before, "nothing written into the header");
    });

    test(`SyncMap: read table's bucket array at ${buckets}, then clear()`, () => {
      const map = new SyncMap<number, number>();
      for (let k = 0; k < 100; k++) map.store(k, k);
      for (let i = 0; i < 200 && map.stats().amended; i++) map.load(-1); // promote
      const arena = Arena.attach(map.handle.buffer, KIND_SYNC_MAP, false, "test");
      const table = Atomics.load(arena.i32, R_READ) & ~AMENDED;
      assert.notEqual(table, 0);
      arena.i32[(table >> 2) + T_BUCKETS] = buckets;
      const before = headerWords(arena);
      assert.throws(() => map.clear(), RangeError);
      assert.deepEqual(headerWords(arena), before, "nothing written into the header");
    });
  }
});
