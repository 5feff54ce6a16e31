// A SyncMap whose mutex was held by a thread that died: the operation that takes the mutex over
// recovers it, and the reclamation of what the dead thread left must not free what that
// operation itself still holds. Deterministic, in one thread: the dead holder is a thread id
// recorded gone in the census, written into the mutex word as its owner.

import assert from "node:assert/strict";
import { test } from "node:test";
import { SyncMap } from "../mod.ts";
import { census, GONE, record } from "../src/_engine/census.ts";
import { OWNER_SHIFT } from "../src/_engine/futex.ts";
import { Arena, KIND_SYNC_MAP } from "../src/_engine/arena.ts";
import {
  adoptSeat,
  ANNOUNCE,
  CACHE,
  CLAIM,
  finishRelease,
  HAND,
  INFLIGHT,
  OWNER,
  PARKED,
  pauseBlocker,
  RELEASER,
  RELEASES_PUT_OFF,
  SEAT_FREE,
  SEAT_RELEASING,
  SEAT_WORDS,
  stateOf,
} from "../src/_engine/registry.ts";
import { registryOf } from "../src/maps/_sync_layout.ts";
import { R_DIRTY, R_MU, R_READ, R_SEATS, R_SWEEP_DUE } from "../src/maps/_sync_layout.ts";
import { shareSyncMap, syncAccessOf } from "../src/maps/sync_map.ts";
import { entryForDelete } from "../src/maps/_sync_delete.ts";
import { SyncCore } from "../src/maps/_sync_core.ts";
import { sweepsForTests } from "../src/maps/_sync_recovery.ts";
import { COLLECT_BUDGET } from "../src/_engine/reclaim.ts";
import type { FutexReply, FutexRequest } from "./fixtures/futex_worker.ts";
import { ReplyQueue } from "./fixtures/reply_queue.ts";
import { startWorker } from "./fixtures/spawn.ts";
import type {
  CachedAllocDeathReply,
  CachedAllocDeathRequest,
} from "./fixtures/cached_alloc_death_worker.ts";
import { lockedAllocate, lockedRelease, verifyHeap } from "../src/_engine/allocator.ts";
import { threadGone } from "../src/threads.ts";

/** Makes the map's mutex held by a thread that is gone, as if it had died holding it. */
function dieHoldingMutex(map: SyncMap<unknown, unknown>, threadId: number): void {
  record(threadId, GONE);
  const i32 = new Int32Array(map.handle.buffer);
  Atomics.store(i32, R_MU, (threadId + 1) << OWNER_SHIFT);
  // A sweep is due, as after a worker's share is released (sync_map.ts #reserveShare).
  Atomics.store(i32, R_SWEEP_DUE, 1);
}

test("SyncMap: a delete that recovers a dead holder's mutex frees the deleted value once", () => {
  for (const [i, op] of (["delete", "loadAndDelete"] as const).entries()) {
    const map = new SyncMap<string, string>();
    map.store("k", "a value in a record");
    map.store("other", "x");
    const i32 = new Int32Array(map.handle.buffer);
    // "k" is in the dirty table only: its delete removes its entry from that table and retires
    // it under the mutex, then takes the value out of the entry.
    assert.notEqual(Atomics.load(i32, R_DIRTY), 0);
    assert.equal(Atomics.load(i32, R_READ) & ~1, 0, "no read table yet");
    dieHoldingMutex(map, 2 ** 27 + 100 + i);
    if (op === "delete") assert.equal(map.delete("k"), true);
    else assert.deepEqual(map.loadAndDelete("k"), ["a value in a record", true]);
    // The record the deleted entry held is retired once, and freed once.
    map.verify();
    for (let n = 0; n < 1000; n++) map.store(`n${n}`, `v${n}`);
    for (let n = 0; n < 1000; n++) map.delete(`n${n}`);
    map.verify();
    assert.deepEqual([...map.keys()], ["other"]);
    map.close();
  }
});

// A worker ends while another thread holds the map's mutex, say one that took it over from the
// worker and is rolling the worker's step back: that step's journal may name words of the
// worker's retire list. Its share must not be released (its list repaired, then adopted or
// swept and freed) before that holder is done, or the rollback would write into freed memory.
test("SyncMap: a dead worker's share is released only once the mutex's holder is done", async () => {
  const map = new SyncMap<string, number>();
  const { handle, release } = shareSyncMap(map as SyncMap<never, never>);
  const share = SyncMap.attach<string, number>(handle);
  share.store("k", 1);
  // The share's owner died: its seat names a thread that is gone (named once the mutex is held
  // below, so that the reap this thread's objects make as the death is recorded, census.ts
  // onGone, finds no dead seat, and the release is what gives it back).
  const ghost = 2 ** 27 + 400 + Math.floor(Math.random() * 1000);
  record(ghost, GONE);
  const i32 = new Int32Array(map.handle.buffer);
  const ownerWord = i32[R_SEATS] + handle.participant! * SEAT_WORDS + OWNER;
  // A live thread holds the mutex for a while.
  const replies = new ReplyQueue<FutexReply>();
  const worker = startWorker(
    new URL("./fixtures/futex_worker.ts", import.meta.url),
    replies.listeners((error) => ({ op: "error", error: String(error) })),
  );
  const ask = (req: FutexRequest): Promise<FutexReply> => {
    worker.postMessage(req);
    return replies.take(30_000, `the worker's reply to ${req.op}`);
  };
  try {
    assert.equal((await ask({ op: "init", census: census() })).error, undefined);
    // Long beside the "held" reply's trip, which a loaded machine may stretch past 100 ms. The
    // worker sets `done` just before it unlocks: a release that did not wait for the holder
    // finds it unset (a duration would not tell, on a machine that delays the reply past the
    // hold: CI once saw "released after 0 ms").
    const HOLD_MS = 1000;
    const done = new Int32Array(new SharedArrayBuffer(4));
    const held = await ask({
      op: "holdFor",
      buffer: map.handle.buffer,
      index: R_MU,
      ms: HOLD_MS,
      done,
    });
    assert.equal(held.error, undefined);
    Atomics.store(i32, ownerWord, ghost + 1);
    release();
    assert.equal(Atomics.load(done, 0), 1, "released only after the mutex's holder unlocked");
    // Reachable until here: collected, `share` would close its participant, releasing the seat
    // (whose owner word this test forged) before `release()`, which then had nothing to wait
    // for (CI saw it on Bun: "released after 0 ms", then the flag unset).
    assert.equal(share.size, 1);
    assert.equal(Atomics.load(i32, ownerWord), 0, "the seat is released");
    assert.equal(map.load("k"), 1);
    map.verify();
  } finally {
    worker.terminate();
    map.close();
  }
});

/**
 * A second object on `map`, attached through a share so that its participant seat is known,
 * after one store (0 -> `first`, 0 unless given): it is online and announced until this task
 * ends.
 */
function secondObject<V = number>(map: SyncMap<number, V>, first = 0 as V) {
  const { handle } = shareSyncMap(map as SyncMap<never, never>);
  const other = SyncMap.attach<number, V>(handle);
  other.store(0, first);
  const i32 = new Int32Array(map.handle.buffer);
  return { other, i32, seat: i32[R_SEATS] + handle.participant! * SEAT_WORDS };
}

/**
 * Thread ids for ownedByGone, each used once: a death recorded again for an id already gone does
 * not change the census, and no reap would follow.
 */
let nextGhost = 2 ** 27 + 50_000 + Math.floor(Math.random() * 1_000) * 100;

/** Makes seat `seat` owned by a thread that is recorded gone, as if its owner had died. */
function ownedByGone(i32: Int32Array, seat: number): void {
  const ghost = nextGhost++;
  Atomics.store(i32, seat + OWNER, ghost + 1);
  record(ghost, GONE);
}

// A recovery that cannot stop the world (a live participant of another thread sits in one long
// task, online) leaves its sweep due. Participants retry it at their quiescent points, so the
// sweep happens once that task ends, with no further death and no verify() to prompt it.
// Deterministic, in one thread: a second object's seat plays the busy participant, its owner
// word naming a thread that is alive and not this one. The wall clock steps an hour ahead while
// the reap waits: the wait runs on the monotonic clock, and lasts as long all the same.
test("SyncMap: a sweep deferred by a busy participant runs at a later quiescent point", () => {
  const map = new SyncMap<number, number>();
  const { other: busy, i32, seat } = secondObject(map);
  const mine = Atomics.load(i32, seat + OWNER);
  assert.notEqual(Atomics.load(i32, seat + ANNOUNCE), 0, "the busy seat is announced");
  const someoneElse = 2 ** 27 + 700 + Math.floor(Math.random() * 1000);
  Atomics.store(i32, seat + OWNER, someoneElse + 1);
  // A thread died (the census changes), leaving a sweep due.
  record(2 ** 27 + 1800 + Math.floor(Math.random() * 1000), GONE);
  Atomics.store(i32, R_SWEEP_DUE, 1);
  try {
    // The next quiescent point reaps: it waits for the busy participant, in vain.
    const start = performance.now();
    const wallClock = Date.now;
    let reads = 0;
    Date.now = () => wallClock() + (reads++ > 0 ? 3_600_000 : 0);
    try {
      for (let n = 0; n < 200; n++) map.store(n, n);
    } finally {
      Date.now = wallClock;
    }
    const waited = performance.now() - start;
    assert.ok(
      waited >= 200,
      `the reap waited for the busy participant: ${waited.toFixed(1)} ms, sweep due ` +
        `${Atomics.load(i32, R_SWEEP_DUE)}, last blocker "${pauseBlocker}"`,
    );
    assert.equal(Atomics.load(i32, R_SWEEP_DUE), 1, "the sweep is left due");
    // Still busy: a retry gives up quickly, and the sweep stays due.
    const spin = performance.now();
    while (performance.now() - spin < 150) map.load(0);
    assert.equal(Atomics.load(i32, R_SWEEP_DUE), 1, "still due while the participant is busy");
    // Its task ends: it withdraws its announcement.
    Atomics.store(i32, seat + ANNOUNCE, 0);
    const end = performance.now() + 5_000;
    while (Atomics.load(i32, R_SWEEP_DUE) !== 0 && performance.now() < end) map.load(0);
    assert.equal(Atomics.load(i32, R_SWEEP_DUE), 0, "a later quiescent point swept");
    assert.ok(performance.now() < end - 4_000, "within a second of the task's end");
  } finally {
    Atomics.store(i32, seat + OWNER, mine);
  }
  for (let n = 0; n < 200; n++) assert.equal(map.load(n), n);
  map.verify();
  busy.close();
  map.close();
});

// A participant that died online, in a thread nobody released a share for (a tracked worker
// that attached by hand): its death must be noticed by participants that make one call a task,
// which never reach a quiescent point inside a task, or its announcement holds reclamation back
// for good and every overwrite leaks its old record. The overwrites store fractions, each a
// value record that the dead announcement would hold back; integers (immediates, held in the
// entry word, with no record to leak) check the reap alone.
for (
  const [kind, value] of [["records", (i: number) => i + 0.5], [
    "immediates",
    (i: number) => i,
  ]] as const
) {
  test(`SyncMap: a dead participant is reaped by a thread that makes one call a task (${kind})`, async () => {
    const map = new SyncMap<number, number>();
    const { other, i32, seat } = secondObject(map);
    await null; // its task ends: it goes offline
    // It died online, with an old announcement, in a thread now recorded gone.
    Atomics.store(i32, seat + ANNOUNCE, 1);
    ownedByGone(i32, seat);
    const before = map.stats().bytesUsed;
    for (let i = 0; i < 3000; i++) {
      map.store(i % 8, value(i));
      await null; // one call a task
    }
    assert.equal(Atomics.load(i32, seat + OWNER), 0, "the dead participant's seat is released");
    // By the reap, not by `other`'s finalizer: reachable until here, it is not collected.
    assert.ok(other instanceof SyncMap);
    const grown = map.stats().bytesUsed - before;
    assert.ok(grown < 16_384, `bytesUsed grew ${grown} bytes over 3000 overwrites of 8 keys`);
    for (let k = 0; k < 8; k++) assert.equal(map.load(k), value(2992 + k));
    map.verify();
    map.close();
  });
}

// A participant dead online holds back what the others retire from then on: a worker storing in
// a loop retired tens of thousands of records before the reap. The reap releases the seat
// first, frees that backlog by collects (a slice at each quiescent point), and only then stops
// the world to sweep: marked with the world stopped, the backlog made the pause 14 to 27 ms on
// Bun (bench/kill_stall.ts).
test("SyncMap: a reap frees what a dead seat held back before its sweep marks", () => {
  const map = new SyncMap<number, number>();
  const { other, i32, seat } = secondObject(map); // online, announced, for the rest of this task
  // Its word raised, as a write with a block in hand leaves it: its death needs a sweep.
  Atomics.store(i32, seat + HAND, 1);
  for (let i = 0; i < 20_000; i++) map.store(i % 8, i + 0.5);
  const held = map.stats().retired;
  assert.ok(held >= 15_000, `the other seat holds back ${held} retired records`);
  const sweeps = sweepsForTests.count;
  ownedByGone(i32, seat); // the census changes: the next quiescent point reaps
  for (let n = 0; n < 64; n++) map.load(0);
  assert.equal(Atomics.load(i32, seat + OWNER), 0, "the dead participant's seat is released");
  // The backlog goes a slice at each quiescent point (a single collect of it all would stall
  // this thread as long as the marking did), and a retry sweeps once it is gone.
  const left = map.stats().retired;
  assert.ok(left >= held - 2 * COLLECT_BUDGET && left < held, `${left} of ${held} left`);
  const end = performance.now() + 5_000;
  while (sweepsForTests.count === sweeps && performance.now() < end) map.load(0);
  assert.equal(sweepsForTests.count, sweeps + 1, "swept once");
  assert.ok(
    sweepsForTests.reached < 1000,
    `the sweep marked ${sweepsForTests.reached} blocks, ${held} retired records held back`,
  );
  assert.ok(map.stats().retired < 1024, `${map.stats().retired} retired records left`);
  for (let k = 0; k < 8; k++) assert.equal(map.load(k), 19_992 + k + 0.5);
  map.verify();
  assert.ok(other instanceof SyncMap); // not collected (its finalizer would release the seat)
  map.close();
});

// A seat being released (by a releaser at work in another thread, or put off while its owner, a
// Deno zombie, may be in a call) still holds back what the others retired: a reap leaves the
// sweep due instead of marking that backlog with the world stopped, and a retry sweeps once the
// seat is free.
test("SyncMap: a reap leaves the sweep due while a seat is being released", () => {
  const map = new SyncMap<number, number>();
  const { other, i32, seat } = secondObject(map);
  for (let i = 0; i < 5_000; i++) map.store(i % 8, i + 0.5);
  const claim = Atomics.load(i32, seat + CLAIM);
  const mine = Atomics.load(i32, seat + OWNER);
  const releaser = 2 ** 27 + 5100 + Math.floor(Math.random() * 1000); // alive, not this thread
  Atomics.store(i32, seat + RELEASER, releaser + 1);
  Atomics.store(i32, seat + CLAIM, (claim & ~3) | SEAT_RELEASING);
  const sweeps = sweepsForTests.count;
  try {
    // A death elsewhere (the census changes) with a sweep due: the next quiescent point reaps.
    record(2 ** 27 + 6200 + Math.floor(Math.random() * 1000), GONE);
    Atomics.store(i32, R_SWEEP_DUE, 1);
    for (let n = 0; n < 64; n++) map.load(0);
    assert.equal(sweepsForTests.count, sweeps, "no sweep beside a seat being released");
    assert.equal(Atomics.load(i32, R_SWEEP_DUE), 1, "the sweep is left due");
  } finally {
    Atomics.store(i32, seat + CLAIM, claim);
    Atomics.store(i32, seat + RELEASER, 0);
  }
  // The release done (here: the seat as it was, its owner this thread's live object), a retry
  // sweeps at a later quiescent point.
  assert.equal(Atomics.load(i32, seat + OWNER), mine);
  const end = performance.now() + 5_000;
  while (Atomics.load(i32, R_SWEEP_DUE) !== 0 && performance.now() < end) map.load(0);
  assert.equal(Atomics.load(i32, R_SWEEP_DUE), 0, "a retry swept");
  assert.equal(sweepsForTests.count, sweeps + 1);
  map.verify();
  other.close();
  map.close();
});

// A participant that died asleep in the map's mutex, with the record it meant to store in
// flight (its seat PARKED, INFLIGHT naming the record): it never publishes the record, so the
// sweep that reaps it must free the record, not keep it as a live sleeper's.
test("SyncMap: a record in flight of a participant that died asleep in the mutex is swept", () => {
  const map = new SyncMap<number, number>();
  const { i32, seat } = secondObject(map);
  // Its record, allocated and not published.
  const arena = Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test");
  const inflight = lockedAllocate(arena, 16, false);
  i32[seat + INFLIGHT] = inflight;
  Atomics.store(i32, seat + HAND, 1); // as a write that took the record unlogged leaves it
  Atomics.store(i32, seat + PARKED, 1);
  ownedByGone(i32, seat);
  // verify() reaps it first (a sweep), then checks that no block is handed out and unreached.
  map.verify();
  assert.equal(Atomics.load(i32, seat + OWNER), 0, "the dead participant's seat is released");
  assert.equal(map.load(0), 0);
  map.close();
});

// A locked step takes a small block from its thread's cache, then records it in the mutex's
// journal (tx.ts LockedTx.alloc). A holder that dies between the two leaves the block popped
// and unrecorded: the rollback cannot give it back, and only the sweep that follows a
// participant's death online can. A real worker stops there, holding the mutex, and is declared
// gone; the next store takes the mutex over, and the map must come out whole, the block freed.
// Its value is an integer (an immediate, held in the entry word), or a fraction, whose record
// the worker allocated before the step and holds in flight as it dies: the sweep frees it too.
for (const value of [1, 1.5]) {
  test(`SyncMap: a holder that died between a cached block's pop and its journal entry (value ${value})`, async () => {
    const map = new SyncMap<number, number>();
    for (let i = 0; i < 100; i++) map.store(i, i);
    const ctrl = new Int32Array(new SharedArrayBuffer(4));
    const replies = new ReplyQueue<CachedAllocDeathReply | { error: string }>();
    const worker = startWorker(
      new URL("./fixtures/cached_alloc_death_worker.ts", import.meta.url),
      replies.listeners((error) => ({ error: String(error) })),
    );
    try {
      worker.postMessage(
        { map: map.handle, key: 1000, value, ctrl } satisfies CachedAllocDeathRequest,
      );
      const reply = await replies.take(30_000, "the worker inside its step");
      assert.ok(!("error" in reply), "error" in reply ? reply.error : "");
      const arena = Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test");
      assert.equal(
        verifyHeap(arena).blocks.get(reply.offset) !== undefined,
        true,
        "the popped block is handed out",
      );
      threadGone(reply.thread);
      map.store(100, 100); // takes the mutex over: the step is rolled back
      map.verify(); // a sweep first, then every invariant: no block handed out and unreached
      assert.equal(map.load(1000), undefined, "the dead step's key is not there");
      assert.equal(map.load(-1), -1);
      assert.equal(map.size, 102);
    } finally {
      Atomics.store(ctrl, 0, 1);
      Atomics.notify(ctrl, 0);
      worker.terminate();
      map.close();
    }
  });
}

test("verify() reaps a participant whose thread died after verify's own reap, rather than fail", () => {
  // A worker terminated while verify() runs: its seat is found dead by the check, after the reap
  // verify made first. That is a death to reap, not a reap that failed (helper-114 saw verify
  // name such a seat in a termination storm).
  const m = new SyncMap<number, string>();
  m.store(1, "one");
  const { handle } = shareSyncMap(m as SyncMap<never, never>);
  const i32 = new Int32Array(m.handle.buffer);
  const ghost = 2 ** 27 + 20_000 + Math.floor(Math.random() * 10_000);
  Atomics.store(i32, i32[R_SEATS] + handle.participant! * SEAT_WORDS + OWNER, ghost + 1);
  // verify()'s reap finds no one dead and takes no lock: its first locked step is its check's.
  const locked = SyncCore.prototype.locked;
  let armed = true;
  let died = false;
  SyncCore.prototype.locked = function (
    this: SyncCore,
    f: (arg: unknown) => unknown,
    arg?: unknown,
  ) {
    if (armed) {
      armed = false;
      died = true;
      record(ghost, GONE); // after verify's reap, before its check
    }
    return locked.call(this, f, arg) as never;
  } as typeof locked;
  try {
    m.verify();
  } finally {
    SyncCore.prototype.locked = locked;
  }
  assert.ok(died, "the seat's thread died inside verify()");
  m.store(2, "two");
  m.verify();
});

test("verify() right after a worker is declared gone sweeps what it held, its release in its grace", () => {
  // A Deno worker's share is released with a grace (the adapter's 250 ms, for a call the worker
  // may still be in), and the worker is declared gone by another timer of the same length.
  // verify() called once it is gone, before the release's timer fired, found the record the
  // worker had allocated and not published handed out and unreachable (the full storm, about
  // one run in ten on Deno): the sweep that frees it comes with the release's end. The reap
  // finishes a release of its own thread's whose owner is gone, and the timer then does nothing.
  const m = new SyncMap<number, string>();
  m.store(1, "one");
  const empty = m.stats().bytesUsed;
  const { handle, release } = shareSyncMap(m as SyncMap<never, never>);
  const arena = Arena.attach(m.handle.buffer, KIND_SYNC_MAP, true, "test");
  const registry = registryOf(arena);
  const index = handle.participant!;
  const ghost = 2 ** 27 + 30_000 + Math.floor(Math.random() * 10_000);
  // The worker adopts its seat, comes online (announced, as before any call's first step),
  // enters a write (its hand word raised), allocates a record and is stopped before publishing it.
  adoptSeat(registry, index, handle.generation!);
  Atomics.store(arena.i32, registry.seats + index * SEAT_WORDS + OWNER, ghost + 1);
  Atomics.store(arena.i32, registry.seats + index * SEAT_WORDS + ANNOUNCE, 1);
  Atomics.store(arena.i32, registry.seats + index * SEAT_WORDS + HAND, 1);
  const inHand = lockedAllocate(arena, 1296, false);
  assert.ok(m.stats().bytesUsed > empty);
  // Terminated: its share released with a grace far longer than the test, then declared gone.
  release(60_000);
  assert.equal(stateOf(arena.i32[registry.seats + index * SEAT_WORDS + CLAIM]), SEAT_RELEASING);
  record(ghost, GONE);
  m.verify();
  assert.equal(stateOf(arena.i32[registry.seats + index * SEAT_WORDS + CLAIM]), SEAT_FREE);
  assert.ok(!verifyHeap(arena).blocks.has(inHand), "the record in hand was freed");
  assert.equal(m.stats().bytesUsed, empty);
  m.store(2, "two");
  m.verify();
});

// A sweep walks the whole map with the world stopped, for the blocks a participant that died
// inside a call held in hand. One that died between calls (an idle worker a pool retires) held
// none, nor did one that died in a read (a read-mostly worker a pool's timeout kills: its seat's
// hand word is 0): its seat goes back with no sweep, and nothing is left behind.
for (const where of ["between calls", "inside a read", "inside a write"] as const) {
  const swept = where === "inside a write";
  test(`SyncMap: a seat whose owner died ${where} is ${swept ? "" : "not "}swept`, async () => {
    const map = new SyncMap<number, number>();
    for (let i = 0; i < 100; i++) map.store(i, i + 0.5);
    const { other, i32, seat } = secondObject(map);
    other.store(1, 1.5); // a record retired in its list
    await null; // its task ends: it goes offline
    assert.equal(Atomics.load(i32, seat + ANNOUNCE), 0, "offline");
    if (where === "inside a read") {
      assert.equal(other.load(2), 2.5); // comes online, and stays so for this task
      assert.notEqual(Atomics.load(i32, seat + ANNOUNCE), 0, "online");
      assert.equal(Atomics.load(i32, seat + HAND), 0, "nothing in hand");
    } else if (where === "inside a write") {
      // Died in a write: announced, as it was then, with its hand word raised.
      Atomics.store(i32, seat + ANNOUNCE, 1);
      Atomics.store(i32, seat + HAND, 1);
    }
    assert.equal(Atomics.load(i32, R_SWEEP_DUE), 0);
    const sweeps = sweepsForTests.count;
    ownedByGone(i32, seat); // the census changes: the next quiescent point reaps
    for (let n = 0; n < 64; n++) map.load(0);
    assert.equal(Atomics.load(i32, seat + OWNER), 0, "the dead participant's seat is released");
    if (swept) {
      const end = performance.now() + 5_000;
      while (sweepsForTests.count === sweeps && performance.now() < end) map.load(0);
      assert.equal(sweepsForTests.count, sweeps + 1, "swept once");
    } else {
      for (let n = 0; n < 256; n++) map.store(200 + (n % 8), n + 0.5);
      assert.equal(Atomics.load(i32, R_SWEEP_DUE), 0, "no sweep is due");
      assert.equal(sweepsForTests.count, sweeps, "nothing swept");
    }
    assert.ok(other instanceof SyncMap); // reachable until here: not released by its finalizer
    map.verify(); // nothing left behind unreached either way
    assert.equal(map.load(1), 1.5);
    map.close();
  });
}

// A number key's delete that finds the key in the dirty table only takes its entry out under the
// mutex and retires it, then deletes the record the entry still names: between the two, that
// record is reached through a retired entry only, which no marking follows. The word is raised
// before the step (helper-139): a death between the two, after a read had lowered it, is swept.
test("SyncMap: a delete that died between a dirty-only entry's removal and its record's is swept", async () => {
  const map = new SyncMap<number, number>();
  for (let i = 0; i < 100; i++) map.store(i, i + 0.5);
  for (let i = 0; i < 100; i++) map.load(i); // promoted: the keys are in the read table
  const { other, i32, seat } = secondObject(map);
  other.store(500, 500.5); // a new key: in the dirty table only
  assert.equal(other.load(1), 1.5); // a read lowers the hand word
  assert.equal(Atomics.load(i32, seat + HAND), 0);
  // The delete's first half, as loadAndDelete makes it; the thread dies before the second.
  const e = entryForDelete(syncAccessOf(other), 500, true);
  assert.ok(e > 0);
  ownedByGone(i32, seat);
  const sweeps = sweepsForTests.count;
  const end = performance.now() + 5_000;
  while (sweepsForTests.count === sweeps && performance.now() < end) map.load(0);
  assert.equal(sweepsForTests.count, sweeps + 1, "swept");
  map.verify(); // the record is freed and the count taken from the tables
  assert.equal(map.size, 100);
  assert.equal(map.load(500), undefined);
  assert.ok(other instanceof SyncMap); // reachable until here: not released by its finalizer
  await null;
  map.close();
});

// A release put off (its owner, a Deno zombie, may still be in a call) raises the sweep word as a
// hint only (RELEASES_PUT_OFF): the retries it prompts finish the release, whose end makes a sweep
// due if the owner may have held blocks in hand. A hint found with no release put off is dropped
// with no sweep (it swept the whole map, for a zombie that died in a read: helper-140).
test("SyncMap: a hint of a put-off release with none left is dropped with no sweep", () => {
  const map = new SyncMap<number, number>();
  for (let i = 0; i < 100; i++) map.store(i, i + 0.5);
  const i32 = new Int32Array(map.handle.buffer);
  Atomics.store(i32, R_SWEEP_DUE, RELEASES_PUT_OFF);
  const sweeps = sweepsForTests.count;
  const end = performance.now() + 5_000;
  while (Atomics.load(i32, R_SWEEP_DUE) !== 0 && performance.now() < end) map.load(0);
  assert.equal(Atomics.load(i32, R_SWEEP_DUE), 0, "the hint is dropped");
  assert.equal(sweepsForTests.count, sweeps, "nothing swept");
  map.verify();
  map.close();
});

// The hand word through a participant's calls: raised by a write and by a quiescent point,
// lowered by a read's fast path, raised again by a write whose user code ran a read.
test("SyncMap: the hand word is raised by writes and quiescent points, lowered by reads", () => {
  const map = new SyncMap<number, unknown>();
  map.store(1, 1);
  const { other, i32, seat } = secondObject<unknown>(map);
  const hand = () => Atomics.load(i32, seat + HAND);
  other.load(1);
  assert.equal(hand(), 0, "after a read");
  other.delete(1);
  assert.equal(hand(), 1, "after a write");
  other.load(1);
  assert.equal(hand(), 0, "after a read again");
  for (let n = 0; n < 200; n++) {
    other.load(1); // quiescent points among them, each lowered again as it returns
    assert.equal(hand(), 0, `after read ${n}`);
  }
  // A value whose getter reads the map: the write raises the word again before it stores (a
  // compare-and-swap, which takes its record unlogged and leaves the word raised).
  other.store(3, 0);
  other.load(3);
  let seen = -1;
  other.compareAndSwap(3, 0, {
    get n() {
      other.load(1);
      seen = hand();
      return 3;
    },
  });
  assert.equal(seen, 0, "the read in the getter lowered it");
  assert.equal(hand(), 1, "the write raised it again");
  map.close();
});

/**
 * Leaves an error deferred to `map`'s next call, as a share release that fails in a timer does
 * (reserveShare's deferError): here its repairCache meets a cache whose list loops.
 */
function plantDeferred(map: SyncMap<number, unknown>): void {
  const { handle, release } = shareSyncMap(map as SyncMap<never, never>);
  const arena = Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test");
  const registry = registryOf(arena);
  const at = registry.seats + handle.participant! * SEAT_WORDS;
  const fake = lockedAllocate(arena, 256, true);
  arena.i32[fake >> 2] = fake + 128;
  arena.i32[(fake + 128) >> 2] = fake + 128;
  Atomics.store(arena.i32, at + CACHE, fake);
  release(); // throws inside: deferred to map's participant
  Atomics.store(arena.i32, at + CACHE, 0);
  lockedRelease(arena, fake, 256);
  finishRelease(registry, handle.participant!);
}

// A call that ran user code comes back online before it writes (Participant.recheck): that code
// may have left its participant withdrawn (a nested loadOrCompute withdraws while its fn runs,
// and returns withdrawn when an error deferred to its next call is thrown as it comes back).
// Gone on withdrawn, the write was protected from no collect, waited for by no stop of the
// world, and, stopped there, left what it held in hand to no sweep (helper-138's review).
test("SyncMap: a write whose value's getter left its participant withdrawn writes online", async () => {
  const map = new SyncMap<number, unknown>();
  for (let i = 0; i < 100; i++) map.store(i, { n: i });
  const { other, i32, seat } = secondObject(map, { n: 0 });
  await null; // its task ends: it goes offline
  let inGetter = -1;
  let thrown: unknown;
  const value = {
    get n() {
      try {
        other.loadOrCompute(1000, () => {
          plantDeferred(other);
          throw new Error("fn failed");
        });
      } catch (error) {
        thrown = error;
      }
      inGetter = Atomics.load(i32, seat + ANNOUNCE);
      return 42;
    },
  };
  other.store(1, value); // allocates a record, publishes it, retires the old one
  assert.equal((thrown as Error).message, "fn failed");
  assert.equal(inGetter, 0, "withdrawn as the getter returned");
  assert.notEqual(Atomics.load(i32, seat + ANNOUNCE), 0, "the store came back online");
  assert.deepEqual(map.load(1), { n: 42 });
  map.verify();
  other.close();
  map.close();
});
