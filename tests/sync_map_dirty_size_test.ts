// Copyright the shmap authors. MIT license.
//
// The size of the dirty table a SyncMap builds when a new key comes after a promotion (Go's
// dirtyLocked): the read table's buckets while the keys with a value fill a quarter of them or
// more (the read table is the last dirty table, grown to what it took in; sized for the live keys
// alone, every dirty table of a store/delete churn grew once), and the live keys' size when fewer
// are left, or when the larger array would take the map past half its maxBytes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SyncMap } from "../mod.ts";
import { Arena, KIND_SYNC_MAP } from "../src/_engine/arena.ts";
import { bucketsForHint, keysWithoutGrowth, T_B } from "../src/_engine/table_layout.ts";
import { AMENDED, R_DIRTY, R_READ } from "../src/maps/_sync_layout.ts";

/** The B of the map's read table and of its dirty table (-1: none). */
function sizes(m: SyncMap<number, number>): { read: number; dirty: number } {
  const a = Arena.attach(m.handle.buffer, KIND_SYNC_MAP, true, "test");
  const read = a.i32[R_READ] & ~AMENDED;
  const dirty = a.i32[R_DIRTY];
  return {
    read: read === 0 ? -1 : a.i32[(read >> 2) + T_B],
    dirty: dirty === 0 ? -1 : a.i32[(dirty >> 2) + T_B],
  };
}

/**
 * The B of the table the last new key built: the dirty table, or the read table when it was
 * promoted at once (most of the read table deleted: SyncCore's #dirtyLocked).
 */
function built(m: SyncMap<number, number>): number {
  const { read, dirty } = sizes(m);
  return dirty >= 0 ? dirty : read;
}

/** A map of keys 0..n-1 whose dirty table grew to hold them, promoted to the read table. */
function promoted(n: number, maxBytes?: number): SyncMap<number, number> {
  const m = new SyncMap<number, number>(maxBytes === undefined ? {} : { maxBytes });
  for (let k = 0; k < n; k++) m.store(k, k + 0.5);
  for (let i = 0; i < 3 && m.stats().amended; i++) for (let k = 0; k < n; k++) m.load(k);
  assert.equal(m.stats().amended, false, "promoted");
  return m;
}

test("SyncMap: the dirty table keeps the read table's buckets while the live keys fill a quarter", () => {
  const n = 1000;
  const m = promoted(n);
  const { read: b } = sizes(m);
  assert.equal(b, bucketsForHint(n), "the read table is the dirty table that took the keys in");
  const room = keysWithoutGrowth(b);
  // Deleted down to a quarter of the room, and a new key: the dirty table has the read's B.
  for (let k = Math.ceil(room / 4); k < n; k++) m.delete(k);
  m.store(-1, -1);
  assert.equal(built(m), b, `live ${m.size - 1} of room ${room}`);
  assert.ok(bucketsForHint(m.size) < b, "where the live keys alone would take fewer buckets");
  m.verify();
  // Promoted again, then one key fewer than a quarter, and a new key: sized for the live keys.
  for (let i = 0; i < 3 && m.stats().amended; i++) for (let k = 0; k < n; k++) m.load(k);
  assert.equal(m.stats().amended, false);
  assert.equal(sizes(m).read, b);
  m.delete(-1);
  m.delete(0);
  const live = m.size;
  assert.ok(4 * live < room, `${live} live, below a quarter of ${room}`);
  m.store(-2, -2);
  assert.equal(
    built(m),
    bucketsForHint(live + 1),
    "sized for the live keys, then took the new one",
  );
  m.verify();
});

test("SyncMap: a churn of a fixed key set builds dirty tables that do not grow", () => {
  // Go's StoreDeleteChurn: 512 keys live of 1024, stored and deleted in turn.
  const m = new SyncMap<number, number>();
  for (let k = 512; k < 1024; k++) m.store(k, k);
  let built = 0;
  let grown = 0;
  let last = sizes(m).dirty;
  for (let i = 0; i < 200_000; i++) {
    const k = i >> 1;
    if ((i & 1) === 0) m.store(k & 1023, k);
    else m.delete((k + 512) & 1023);
    const now = sizes(m).dirty;
    if (now !== last && now >= 0) {
      if (last < 0) built++;
      else grown++;
    }
    last = now;
  }
  assert.ok(built >= 10, `${built} dirty tables built`);
  assert.ok(grown <= 2, `${grown} of ${built} dirty tables grew`);
  m.verify();
});

test("SyncMap: a map past half its maxBytes sizes the dirty table for the live keys", () => {
  const n = 1000;
  // Small enough that the read table's buckets beside the live keys' would pass half of it.
  const m = promoted(n, 128 * 1024);
  const { read: b } = sizes(m);
  const room = keysWithoutGrowth(b);
  // A quarter of the room and a few more: the live keys and the new one fit the buckets sized
  // for the live keys without growth. (At exactly a quarter, the new key would grow the table,
  // which this tight map does only when the memory it retired has been freed: not yet, under
  // load. The read table's own B depends on that too, so it is read, not assumed.)
  const live = Math.ceil(room / 4) + 8;
  for (let k = live; k < n; k++) m.delete(k);
  assert.equal(bucketsForHint(live + 1), bucketsForHint(live));
  m.store(-1, -1);
  assert.ok(built(m) < b, "not the read table's buckets");
  assert.equal(built(m), bucketsForHint(live), "sized for the live keys");
  m.verify();
});
