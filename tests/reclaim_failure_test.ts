// Reclamation cut short by an error in a live thread: a stack overflow, injected by making a
// method throw as one would, at the one call where each bug was. Each left memory or a seat
// wrong:
// - an allocator step whose commit threw was left to the lock's next holder, while this thread
//   went on using what it wrote (a refilled cache list, whose blocks the spans still counted
//   free): values read back as other keys';
// - close() that threw past marking itself closed never gave its seat back;
// - a participant that borrowed a released seat to sweep it, and threw, kept the seat for good;
// - a reap released a dead seat whose owner's step the mutex still held, when the sweep's own
//   locked step threw before it took the mutex.

import { test } from "node:test";
import assert from "node:assert/strict";
import { SyncMap } from "../mod.ts";
import { attachOwnSeat, shareSyncMap } from "../src/maps/sync_map.ts";
import { SyncCore } from "../src/maps/_sync_core.ts";
import { Journal } from "../src/_engine/journal.ts";
import { GONE, record } from "../src/_engine/census.ts";
import { OWNER_SHIFT } from "../src/_engine/futex.ts";
import { OWNER, SEAT_WORDS } from "../src/_engine/registry.ts";
import { R_MU, R_SEATS } from "../src/maps/_sync_layout.ts";

const overflow = () => new RangeError("Maximum call stack size exceeded (injected)");
const tick = () => new Promise((resolve) => setTimeout(resolve, 10));

/** Makes allocator steps' commits (the ones given no releaser) throw when `fails(n)` says. */
function failAllocatorCommits(fails: (n: number) => boolean): () => void {
  const commit = Journal.prototype.commit;
  let n = 0;
  Journal.prototype.commit = function (this: Journal, ...args) {
    if (args[0] === undefined && fails(++n)) throw overflow();
    return commit.apply(this, args);
  };
  return () => Journal.prototype.commit = commit;
}

test("an allocator step whose commit throws is rolled back before its thread goes on", () => {
  const m = new SyncMap<number, string>();
  for (let k = 0; k < 8; k++) m.store(k, "a");
  const value = (k: number) => `value-${k}-`.padEnd(300, "x"); // a size class not used yet
  const restore = failAllocatorCommits((n) => n === 1); // the refill of that class's cache
  try {
    assert.throws(() => m.store(0, value(0)), /injected/);
  } finally {
    restore();
  }
  for (let k = 1; k < 8; k++) m.store(k, value(k)); // from this thread's cache
  m.store(100, "y".repeat(1500)); // the next allocator step
  for (let k = 200; k < 216; k++) m.store(k, `other-${k}-`.padEnd(300, "z"));
  for (let k = 1; k < 8; k++) assert.equal(m.load(k), value(k));
  m.verify();
});

test("close() that throws part-way still gives its seat back", async () => {
  for (let failAt = 1; failAt <= 12; failAt++) {
    const m = new SyncMap<number, string>({ maxParticipants: 2 });
    const m2 = attachOwnSeat<number, string>(m.handle);
    for (let i = 0; i < 20; i++) m2.store(i, `value ${i}`);
    await tick();
    const restore = failAllocatorCommits((n) => n === failAt);
    let threw = false;
    try {
      m2.close();
    } catch (error) {
      assert.match(String(error), /injected/);
      threw = true;
    } finally {
      restore();
    }
    m2.close(); // does nothing, whatever the first did
    await tick();
    assert.equal(m.stats().participants, 1, `failAt ${failAt}`);
    attachOwnSeat(m.handle).close(); // the seat is free for another
    m.verify();
    if (!threw) return; // every commit of close() has failed in turn
  }
  assert.fail("close() made more than 12 allocator steps");
});

test("a sweep of a borrowed seat that throws gives the seat back", async () => {
  const m = new SyncMap<number, string>({ maxParticipants: 2 });
  for (let k = 0; k < 50; k++) m.store(k, `v${k}`);
  for (let i = 0; i < 200; i++) m.load(i % 50);
  const m2 = attachOwnSeat<number, string>(m.handle);
  for (let i = 0; i < 100; i++) m2.store(i % 50, `w${i}`); // retirements m2 leaves behind
  m2.close(); // m is announced: m2's seat is released holding its retire list
  const free = SyncCore.prototype.free;
  let armed = true;
  SyncCore.prototype.free = function (this: SyncCore, tag: number) {
    if (armed) {
      armed = false;
      throw overflow();
    }
    return free.call(this, tag);
  };
  try {
    await tick(); // m goes offline; its next collect borrows m2's seat to sweep it
    for (let i = 0; i < 300; i++) m.load(i % 50);
  } catch (error) {
    assert.match(String(error), /injected/);
  } finally {
    SyncCore.prototype.free = free;
  }
  assert.equal(armed, false, "the sweep's free threw");
  for (let round = 0; round < 2; round++) {
    await tick();
    for (let i = 0; i < 300; i++) m.load(i % 50);
  }
  assert.equal(m.stats().participants, 1);
  attachOwnSeat(m.handle).close(); // the borrowed seat is free again
  // (The block whose free threw is left to a sweep: it left the list first, so it is never
  // freed twice.)
});

test("a reap whose sweep throws before the mutex releases no seat the mutex's step names", async () => {
  const m = new SyncMap<string, string>();
  for (let i = 0; i < 10; i++) m.store(`r${i}`, "x");
  for (let i = 0; i < 40; i++) m.load(`missing${i}`); // promoted: the r keys are read keys
  const { handle } = shareSyncMap(m as SyncMap<never, never>);
  const m2 = attachOwnSeat<string, string>(handle);
  m2.store("k", "a value of k"); // in the dirty table only
  const buffer = m.handle.buffer;
  const i32 = new Int32Array(buffer);
  const seat = i32[R_SEATS] + handle.participant! * SEAT_WORDS;
  // m2 dies at the commit of its delete of "k" (its step retires k's entry into its list).
  let image: Uint8Array | null = null;
  const commit = Journal.prototype.commit;
  Journal.prototype.commit = function (this: Journal, ...args) {
    if (image === null && args[0] !== undefined) {
      image = new Uint8Array(buffer).slice();
      throw new Error("died");
    }
    return commit.apply(this, args);
  };
  try {
    assert.throws(() => m2.delete("k"), /died/);
  } finally {
    Journal.prototype.commit = commit;
  }
  new Uint8Array(buffer).set(image!);
  const ghost = 2 ** 27 + 5000 + Math.floor(Math.random() * 10000);
  record(ghost, GONE);
  Atomics.store(i32, R_MU, (ghost + 1) << OWNER_SHIFT);
  Atomics.store(i32, seat + OWNER, ghost + 1);
  // The reap's sweep: its locked step throws before it takes the mutex.
  const locked = SyncCore.prototype.locked;
  SyncCore.prototype.locked = function (
    this: SyncCore,
    f: (arg: unknown) => unknown,
    arg?: unknown,
  ) {
    if (new Error().stack!.includes("sweepDue")) throw overflow();
    return locked.call(this, f, arg) as never;
  } as typeof locked;
  try {
    for (let i = 0; i < 200; i++) m.load(`r${i % 10}`);
  } catch (error) {
    assert.match(String(error), /injected/);
  } finally {
    SyncCore.prototype.locked = locked;
  }
  for (let t = 0; t < 4; t++) { // collects that borrow the released seat and sweep its list
    await tick();
    for (let i = 0; i < 200; i++) m.load(`r${i % 10}`);
  }
  m.store("z", "z");
  assert.equal(m.load("k"), "a value of k"); // the delete died: undone
  m.verify();
});
