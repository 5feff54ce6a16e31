// Copyright the shmap authors. MIT license.
// A load that misses the read table of an amended map looks at the dirty table under the mutex
// in a read step (SyncCore's #readLocked): no journal, one plain write (R_MISSES). A miss that
// reaches the dirty table's size still promotes it, through a journaled step. A holder that dies
// in a read step leaves its recovery nothing to roll back and nothing to sweep.

import assert from "node:assert/strict";
import { test } from "node:test";
import { SyncMap } from "../mod.ts";
import { attachOwnSeat, shareSyncMap } from "../src/maps/sync_map.ts";
import { SyncCore } from "../src/maps/_sync_core.ts";
import { J_HAND, J_HAND_CLEAN, Journal } from "../src/_engine/journal.ts";
import { LockedTx } from "../src/_engine/tx.ts";
import { GONE, record } from "../src/_engine/census.ts";
import { OWNER_SHIFT } from "../src/_engine/futex.ts";
import { OWNER, SEAT_WORDS } from "../src/_engine/registry.ts";
import { R_JOURNAL, R_MU, R_SEATS, R_SWEEP_DUE } from "../src/maps/_sync_layout.ts";
import { sweepsForTests } from "../src/maps/_sync_recovery.ts";

/** A map whose read table holds keys 0..n-1 and whose dirty table also holds `extra` new keys. */
function amended(n: number, extra: number): SyncMap<number, number> {
  const map = new SyncMap<number, number>();
  for (let k = 0; k < n; k++) map.store(k, k);
  for (let i = 0; i < 4 * n; i++) map.load(-1 - i); // misses: the dirty table is promoted
  for (let k = 0; k < extra; k++) map.store(1000 + k, 1000 + k); // dirty-only: amended
  return map;
}

test("a miss of the read table counts a miss with no journaled step, and promotes at the dirty table's size", () => {
  const map = amended(20, 5);
  assert.equal(map.stats().amended, true);
  const begins: number[] = [];
  const begin = Journal.prototype.begin;
  Journal.prototype.begin = function (this: Journal) {
    begins.push(1);
    return begin.call(this);
  };
  try {
    const dirtyKeys = map.stats().dirtyKeys;
    begins.length = 0;
    // A dirty-only key found, and an absent one: each a miss, neither journaled.
    assert.equal(map.load(1000), 1000);
    assert.equal(map.load(-5000), undefined);
    assert.equal(map.stats().misses, 2);
    const journaled = begins.length;
    assert.equal(journaled, 1, "only stats() began a journaled step");
    // The miss that reaches the dirty table's size promotes it.
    for (let i = 2; i < dirtyKeys - 1; i++) map.load(-6000 - i);
    assert.equal(map.stats().misses, dirtyKeys - 1);
    assert.equal(map.stats().amended, true);
    map.load(1001);
    const stats = map.stats();
    assert.equal(stats.amended, false, "promoted");
    assert.equal(stats.misses, 0);
    assert.equal(stats.readKeys, 25);
  } finally {
    Journal.prototype.begin = begin;
  }
  for (let k = 0; k < 5; k++) assert.equal(map.load(1000 + k), 1000 + k);
  map.verify();
});

test("a thread that dies inside a read step leaves the next holder nothing to sweep", async () => {
  const m = amended(30, 4);
  const { handle } = shareSyncMap(m as SyncMap<never, never>);
  const m2 = attachOwnSeat<number, number>(handle);
  const buffer = m.handle.buffer;
  const i32 = new Int32Array(buffer);
  const seat = i32[R_SEATS] + handle.participant! * SEAT_WORDS;
  assert.equal(m2.load(1002), 1002); // warm: m2's read step works
  // m2 dies in its read step's lookup of the dirty table, holding the mutex: the memory as it
  // was then is put back, and the mutex and seat named as a gone thread's.
  let image: Uint8Array | null = null;
  const core2 = participantOf(m2);
  const findIn = SyncCore.prototype.findIn;
  SyncCore.prototype.findIn = function (this: SyncCore, ...args) {
    if (image === null && this.participant === core2) {
      image = new Uint8Array(buffer).slice();
      throw new Error("died");
    }
    return findIn.apply(this, args);
  };
  try {
    assert.throws(() => m2.load(1003), /died/);
  } finally {
    SyncCore.prototype.findIn = findIn;
  }
  assert.ok(image !== null, "the read step ran");
  new Uint8Array(buffer).set(image!);
  assert.equal(Atomics.load(i32, R_MU) >>> OWNER_SHIFT, i32[seat + OWNER], "held by m2");
  const ghost = 2 ** 27 + 9000 + Math.floor(Math.random() * 10000);
  record(ghost, GONE);
  Atomics.store(i32, R_MU, (ghost + 1) << OWNER_SHIFT);
  Atomics.store(i32, seat + OWNER, ghost + 1);
  const sweeps = sweepsForTests.count;
  // The next holder recovers the mutex: nothing rolled back, no sweep made due for the step.
  assert.equal(m.load(1003), 1003);
  assert.equal(Atomics.load(i32, R_MU) >>> OWNER_SHIFT, 0, "released");
  assert.equal(Atomics.load(i32, R_SWEEP_DUE), 0, "no sweep due");
  for (let t = 0; t < 3; t++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    for (let i = 0; i < 300; i++) m.load(i % 40);
  }
  assert.equal(sweepsForTests.count, sweeps, "nothing swept");
  for (let k = 0; k < 30; k++) assert.equal(m.load(k), k);
  for (let k = 0; k < 4; k++) assert.equal(m.load(1000 + k), 1000 + k);
  m.verify();
});

test("a throw inside a read step releases the mutex clean and writes nothing", () => {
  const map = amended(20, 3);
  const i32 = new Int32Array(map.handle.buffer);
  const misses = map.stats().misses;
  const findIn = SyncCore.prototype.findIn;
  SyncCore.prototype.findIn = function () {
    throw new RangeError("Maximum call stack size exceeded (injected)");
  };
  try {
    assert.throws(() => map.load(1001), /injected/);
  } finally {
    SyncCore.prototype.findIn = findIn;
  }
  assert.equal(Atomics.load(i32, R_MU), 0, "free and not poisoned");
  assert.equal(map.stats().misses, misses, "no miss counted");
  assert.equal(map.load(1001), 1001);
  map.verify();
});

test(
  "a step whose commit threw and was rolled forward leaves J_HAND clean, as a read step expects",
  () => {
    const map = new SyncMap<number, { v: string }>();
    const i32 = new Int32Array(map.handle.buffer);
    const journal = i32[R_JOURNAL] >> 2;
    // The first deferred free of a commit throws (a stack overflow there, say): locked() rolls
    // the commit forward and settles the step.
    const releaser = Object.getOwnPropertyDescriptor(LockedTx.prototype, "releaser")!;
    let armed = true;
    Object.defineProperty(LockedTx.prototype, "releaser", {
      configurable: true,
      get(this: LockedTx) {
        const release = releaser.get!.call(this);
        return (...args: Parameters<typeof release>) => {
          if (armed) {
            armed = false;
            throw new Error("injected in a commit's free");
          }
          return release(...args);
        };
      },
    });
    let k = 0;
    try {
      for (; k < 100_000 && armed; k++) {
        try {
          map.store(k, { v: `value ${k}` });
        } catch (error) {
          assert.match(String(error), /injected/);
        }
      }
    } finally {
      Object.defineProperty(LockedTx.prototype, "releaser", releaser);
    }
    assert.equal(armed, false, "a commit freed a block");
    assert.equal(Atomics.load(i32, R_MU), 0, "released clean");
    assert.equal(i32[journal + J_HAND], J_HAND_CLEAN, "the step is over");
    assert.equal(Atomics.load(i32, R_SWEEP_DUE), 0);
    for (let i = 0; i < k; i++) assert.deepEqual(map.load(i), { v: `value ${i}` });
    map.verify();
  },
);

/** The participant of `map`'s access (SyncCore.participant), to tell its steps apart. */
function participantOf(map: SyncMap<number, number>): unknown {
  let found: unknown;
  const findIn = SyncCore.prototype.findIn;
  SyncCore.prototype.findIn = function (this: SyncCore, ...args) {
    found ??= this.participant;
    return findIn.apply(this, args);
  };
  try {
    map.load(-123456); // a miss of an amended map: a read step
  } finally {
    SyncCore.prototype.findIn = findIn;
  }
  return found;
}
