// Copyright the shmap authors. MIT license.
//
// A SyncMap's dirty table built from a large read table (Go's dirtyLocked) in one locked step.
// Its overflow buckets took a journal entry each: a read table of about 70,000 keys or more
// needed more than the mutex's journal holds, and the first store of a new key after each
// promotion threw JournalFullError, for good. They are allocated unlisted now; these tests
// check the copy of a large table, a copy that throws part-way and a step that throws after it
// (their buckets freed by the step), and a copy cut short by its thread's death (its buckets stray, freed by the sweep).
import { test } from "node:test";
import assert from "node:assert/strict";
import { MapFullError, SyncMap, threadGone } from "../mod.ts";
import { OWNER_SHIFT, POISONED } from "../src/_engine/futex.ts";
import { Journal } from "../src/_engine/journal.ts";
import { LockedTx } from "../src/_engine/tx.ts";
import { R_DIRTY, R_MU, R_UNLISTED } from "../src/maps/_sync_layout.ts";

/**
 * The value of key k: k for even keys, an immediate (held in the entry word), and k + 0.5 for
 * odd ones, a value record, which a sweep after a death must keep.
 */
const valueOf = (k: number): number => k % 2 === 0 ? k : k + 0.5;

/** A map of keys 0..n-1 (key k to valueOf(k)), promoted: the next new key copies the read table. */
function promoted(n: number): SyncMap<number, number> {
  const m = new SyncMap<number, number>();
  for (let k = 0; k < n; k++) m.store(k, valueOf(k));
  for (let i = 0; i < 3 && m.stats().amended; i++) for (let k = 0; k < n; k++) m.load(k);
  assert.equal(m.stats().amended, false, "promoted");
  return m;
}

const N = 120_000;

test("SyncMap: a new key after the promotion of 120,000 keys copies them all", () => {
  const m = promoted(N);
  m.store(-1, -1);
  assert.equal(m.size, N + 1);
  for (let k = 0; k < N; k += 997) assert.equal(m.load(k), valueOf(k));
  assert.equal(m.load(-1), -1);
  m.verify();
});

test("SyncMap: a copy that throws part-way frees its overflow buckets and changes nothing", () => {
  const m = promoted(N);
  const used = m.stats().bytesUsed;
  const real = LockedTx.prototype.allocUnlisted;
  let calls = 0;
  LockedTx.prototype.allocUnlisted = function (this: LockedTx, size: number) {
    if (++calls >= 200) throw new MapFullError(size, 0); // the retry after reclaiming too
    return real.call(this, size);
  };
  try {
    assert.throws(() => m.store(-1, -1), MapFullError);
  } finally {
    LockedTx.prototype.allocUnlisted = real;
  }
  assert.ok(calls >= 200, `only ${calls} overflow buckets were allocated`);
  assert.equal(m.stats().bytesUsed, used, "the copy's blocks were all given back");
  assert.equal(new Int32Array(m.handle.buffer)[R_DIRTY], 0, "no dirty table");
  m.verify();
  m.store(-1, -1);
  assert.equal(m.size, N + 1);
  m.verify();
});

test("SyncMap: a step that fails after its copy, as a full map's new key does, frees the copy's buckets", () => {
  // The entry of the new key, allocated after the copy, finds no memory: the step is rolled
  // back, and the copy's unlisted overflow buckets, which its journal does not name, are
  // freed with it from the step's unlisted list (they leaked, and verify() named one "handed
  // out and unreachable").
  const m = promoted(20_000);
  const i32 = new Int32Array(m.handle.buffer);
  const used = m.stats().bytesUsed;
  const real = LockedTx.prototype.alloc;
  let copied = 0;
  LockedTx.prototype.alloc = function (this: LockedTx, size: number, zero: boolean) {
    const list = i32[R_UNLISTED];
    if (list !== 0) {
      copied = Math.max(copied, i32[list >> 2]); // the list's pairs
      throw new MapFullError(size, 0);
    }
    return real.call(this, size, zero);
  };
  try {
    assert.throws(() => m.store(-1, -1), MapFullError);
  } finally {
    LockedTx.prototype.alloc = real;
  }
  assert.ok(copied > 0, "the copy allocated overflow buckets");
  assert.equal(m.stats().bytesUsed, used, "the copy's blocks were all given back");
  assert.equal(new Int32Array(m.handle.buffer)[R_DIRTY], 0, "no dirty table");
  m.verify();
  m.store(-1, -1);
  assert.equal(m.load(-1), -1);
  m.verify();
});

test("SyncMap: a copy cut short by its thread's death is rolled back, its buckets swept", () => {
  const dead = 999_101;
  threadGone(dead);
  const m = promoted(N);
  const buffer = m.handle.buffer;
  // The death: memory as it was the instant before the step's commit, the mutex held by a gone
  // thread (tests/sync_map_step_failure_test.ts does the same).
  let image: Uint8Array | null = null;
  const commit = Journal.prototype.commit;
  let armed = true;
  Journal.prototype.commit = function (this: Journal, ...args) {
    if (armed && args[0] !== undefined) {
      armed = false;
      image = new Uint8Array(buffer).slice();
      throw new Error("injected");
    }
    return commit.apply(this, args);
  };
  try {
    assert.throws(() => m.store(-1, -1), /injected/);
  } finally {
    Journal.prototype.commit = commit;
  }
  new Uint8Array(buffer).set(image!);
  const i32 = new Int32Array(buffer);
  i32[R_MU] = ((dead + 1) << OWNER_SHIFT) | (i32[R_MU] & POISONED);
  m.store(-2, -2);
  assert.equal(i32[R_UNLISTED], 0, "the recovery freed the list");
  assert.equal(m.load(-2), -2);
  m.verify();
  for (let k = 0; k < N; k += 997) assert.equal(m.load(k), valueOf(k));
  assert.equal(m.size, N + 1);
});
