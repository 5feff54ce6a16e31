// Copyright the shmap authors. MIT license.
// A participant with no room to retire in: its retire list is full of blocks a laggard holds
// back, and cannot grow (the map full). Writes then fail with MapFullError (back-pressure), and
// the calls that retire nothing, or only a clear's two tables, must still answer:
//
// - a load's miss under the mutex may promote the dirty table (Go's missLocked), which retires
//   the old read table; it threw "internal error: retire without room made for it", and in a
//   worker that error killed it (found by the full-map termination storm, helper-114). Such a
//   miss now leaves the promotion due, and the next miss made with room promotes;
// - stats(), verify() and iteration entered as writes do, and threw MapFullError at every call;
//   an iteration now needs room only to promote;
// - clear() needs room for its two tables only, and threw MapFullError at every call, as a
//   write's quiescent point found no room for a write: the way out a full map's documentation
//   promises;
// - a load, has or loadOk of a key under a user's key codec, by a participant with no retire list
//   yet in a full map: after the codec's encode the read made room to retire in, as a write does,
//   and threw MapFullError (helper-136); the same read under the built-in codec answered.

import assert from "node:assert/strict";
import { test } from "node:test";
import { MapFullError, SyncMap } from "../mod.ts";
import { failAllocationsForTests } from "../src/_engine/allocator.ts";
import { attachOwnSeat } from "../src/maps/sync_map.ts";

/** Whether `f` threw MapFullError; any other error is thrown on. */
function full(f: () => void): boolean {
  try {
    f();
    return false;
  } catch (error) {
    if (error instanceof MapFullError) return true;
    throw error;
  }
}

/**
 * Runs `f` with three participants of one map of keys k0..k299 in a read table: `a`, whose
 * retire list has run out of room (its deletes of k0..k{deleted - 1} filled it, and its growth
 * is refused), `b`, and a laggard that came online and never moves again (closed after `f`).
 */
function withNoRoom(
  f: (a: SyncMap<string, string>, b: SyncMap<string, string>, deleted: number) => void,
): SyncMap<string, string> {
  const a = new SyncMap<string, string>();
  const b = attachOwnSeat<string, string>(a.handle);
  const laggard = attachOwnSeat<string, string>(a.handle);
  for (let i = 0; i < 300; i++) a.store(`k${i}`, "y");
  for (let i = 0; i < 400; i++) a.load(`miss ${i}`);
  assert.equal(a.stats().amended, false, "promoted: the keys are in a read table");
  b.load("k0");
  laggard.load("k0"); // from here on, nothing retired is freed
  // A retire list's growth (4,104 bytes for 512 entries) finds the map full.
  failAllocationsForTests((size) => size > 4000);
  try {
    let deleted = 0;
    while (deleted < 300 && !full(() => a.delete(`k${deleted}`))) deleted++;
    assert.ok(deleted < 300, "a's retire list ran out of room");
    assert.ok(full(() => a.store("one more", "z")), "a's writes find the map full");
    f(a, b, deleted);
  } finally {
    failAllocationsForTests(undefined);
    laggard.close();
    b.close();
  }
  a.verify();
  return a;
}

test("a load whose miss would promote, with no room to retire, loads; stats() and verify() answer", () => {
  let deleted = 0;
  const a = withNoRoom((a, b, n) => {
    deleted = n;
    for (let round = 0; round < 20; round++) {
      b.store(`new ${round}`, "z"); // amended: the dirty table holds a key the read table lacks
      for (let i = 0; i < 400; i++) assert.equal(a.load(`missing ${round} ${i}`), undefined);
      assert.equal(a.load(`new ${round}`), "z");
      assert.equal(a.load(`k${n + 1}`), "y");
    }
    assert.equal(a.stats().amended, true, "no promotion without room");
    a.verify();
  });
  // With memory back and the laggard gone, a's misses promote again.
  for (let i = 0; i < 2_000 && a.stats().amended; i++) a.load(`later ${i}`);
  assert.equal(a.stats().amended, false, "a miss with room promoted");
  for (let round = 0; round < 20; round++) assert.equal(a.load(`new ${round}`), "z");
  assert.equal(a.size, 300 - deleted + 20);
  a.verify();
});

test("with no room to retire, iteration answers, and needs room only to promote", () => {
  withNoRoom((a, b, deleted) => {
    for (let i = 0; i < 100; i++) {
      assert.equal([...a.keys()].length, 300 - deleted);
      let n = 0;
      a.range(() => (n++, true));
      assert.equal(n, 300 - deleted);
    }
    // Amended: an iteration must promote, which retires the read table, and may find no room
    // then; b has room, and promotes.
    b.store("new", "z");
    let keys = 0;
    if (full(() => keys = [...a.keys()].length)) keys = [...b.keys()].length;
    assert.equal(keys, 300 - deleted + 1);
    assert.equal([...a.keys()].length, 300 - deleted + 1);
  });
});

test("with no room to retire, clear() clears, and after it the map takes keys again", () => {
  const a = withNoRoom((a, b) => {
    // A dirty table too, and a's room spent on deletes of dirty-only keys (each retires the
    // key's entry and its value record): the clear retires both tables.
    const long = (i: number) => `a dirty-only key, long enough to be a blob: ${i}`;
    for (let i = 0; i < 200; i++) b.store(long(i), `a value long enough to be a blob too: ${i}`);
    let gone = 0;
    while (gone < 200 && !full(() => a.delete(long(gone)))) gone++;
    assert.ok(gone < 200, "a's deletes of dirty-only keys found no room");
    for (let i = 0; i < 50; i++) a.range(() => true);
    a.clear();
    assert.equal(a.size, 0);
    assert.equal(a.load("k299"), undefined);
    a.clear(); // nothing to retire: no room needed
    a.verify();
  });
  for (let i = 0; i < 300; i++) a.store(`again ${i}`, "w");
  assert.equal(a.size, 300);
  a.verify();
});

test("with no retire list and a full map, a read under a user key codec answers", () => {
  const keys = {
    name: "utf8",
    encode: (key: string) => new TextEncoder().encode(key),
    decode: (bytes: Uint8Array) => new TextDecoder().decode(bytes),
  };
  for (const options of [{}, { keys }]) {
    const a = new SyncMap<string, string>(options);
    for (let i = 0; i < 300; i++) a.store(`k${i}`, "y");
    const c = attachOwnSeat<string, string>(a.handle, options);
    failAllocationsForTests(() => true);
    try {
      assert.equal(c.load("k5"), "y");
      assert.equal(c.has("k6"), true);
      assert.deepEqual(c.loadOk("k7"), ["y", true]);
      assert.equal(c.load("nope"), undefined);
      assert.ok(full(() => c.store("k8", "z")), "a write still meets the full map");
    } finally {
      failAllocationsForTests(undefined);
      c.close();
    }
    a.verify();
  }
});
