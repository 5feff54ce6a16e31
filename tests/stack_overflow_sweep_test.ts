// Copyright the shmap authors. MIT license.
// A stack overflow inside a SyncMap step that takes no lock (between a record's allocation and
// its publication or free, between the exchange that replaces a record and its retirement, or
// in a collect between taking a block off a retire list and freeing it) leaves that block
// handed out and reachable from nowhere. The public method's catch notes the overflow
// (Participant.noteThrown), and the participant's next quiescent point has a sweep free it:
// verify() finds nothing leaked, the key count is right, and the block is used again.
//
// The injected cases make the retirement after the exchange throw the engine's own overflow
// error, deterministically; the sweeps make real overflows at every depth near the limit.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Arena, KIND_SYNC_MAP } from "../src/_engine/arena.ts";
import { GONE, ownerId, record } from "../src/_engine/census.ts";
import { OWNER_SHIFT } from "../src/_engine/futex.ts";
import { Participant } from "../src/_engine/reclaim.ts";
import {
  ANNOUNCE,
  claimSeat,
  OWNER,
  PARKED,
  PARKED_CLEAN,
  PARKED_HOLDING,
  parkedHolding,
  SEAT_WORDS,
} from "../src/_engine/registry.ts";
import { SyncCore } from "../src/maps/_sync_core.ts";
import { attachSyncMap } from "../src/maps/_sync_open.ts";
import { R_MU, R_PAUSE, R_SEATS, registryOf } from "../src/maps/_sync_layout.ts";
import { attachOwnSeat, shareSyncMap, SyncMap } from "../src/maps/sync_map.ts";
import { startWorker } from "./fixtures/spawn.ts";
import {
  type ComputeWaiterRequest,
  CTL_WORDS as WAITER_CTL_WORDS,
  DONE,
  GO as WAITER_GO,
  KEYS,
  READY as WAITER_READY,
} from "./fixtures/compute_waiter_worker.ts";
import { engineOverflow, PADS, sweep } from "./fixtures/stack_sweep.ts";
import {
  CTL_WORDS,
  GO,
  READY,
  THREW,
  type UnparkRequest,
} from "./fixtures/unpark_overflow_worker.ts";

const overflow = engineOverflow;

/** Makes the next retirement of a block throw `error`; returns a restore. */
function failNextRetire(error: unknown): { fired: () => boolean; restore: () => void } {
  const proto = Participant.prototype;
  const retire = proto.retire;
  let armed = true;
  proto.retire = function (this: Participant, tag: number) {
    if (armed) {
      armed = false;
      throw error;
    }
    return retire.call(this, tag);
  };
  return { fired: () => !armed, restore: () => void (proto.retire = retire) };
}

/** The map's pause word: the thread stopping the world, 0 when none. */
function pauseWord(map: SyncMap<number, string>): number {
  return new Int32Array(map.handle.buffer)[R_PAUSE];
}

/** A map of keys 0..49, every key in the read table, so that writes take no lock. */
function promoted(): SyncMap<number, string> {
  const map = new SyncMap<number, string>();
  for (let i = 0; i < 50; i++) map.store(i, `v${i}`);
  for (let i = 0; i < 50; i++) map.load(i);
  return map;
}

describe("a stack overflow in a SyncMap step without a lock leaks nothing for long", () => {
  // First, before the injected cases patch the prototype (which leaves V8 compiling the calls
  // into frames that a sweep meets only as they are entered).
  it("real overflows at every depth near the limit, with 16 frame sizes", () => {
    let overflows = 0;
    for (const pad of PADS) {
      const map = promoted();
      // One write a call, taken in turn: a call site that sees four functions inlines none.
      const writes = [
        (i: number) => map.store(i % 50, `s${i}`),
        (i: number) => map.delete((i + 25) % 50),
        (i: number) => map.loadAndDelete((i + 10) % 50),
        (i: number) => map.store((i + 10) % 50, i % 3 === 0 ? `t${i}` : "u"),
      ];
      overflows += sweep((i) => writes[i & 3](i), pad);
      assert.equal(pauseWord(map), 0, "no stop of the world left raised");
      map.verify();
      for (let i = 0; i < 100; i++) map.store(i % 50, "after");
      map.verify();
    }
    // Not at every frame size: a frame that overflowed may leave room for the whole call.
    assert.ok(overflows > 0, "the sweeps reached the stack's limit inside the calls");
  });

  const CUTS: [string, (map: SyncMap<number, string>) => void, (string | undefined)[]][] = [
    ["delete", (map) => map.delete(3), [undefined, "v4"]],
    ["loadAndDelete", (map) => map.loadAndDelete(3), [undefined, "v4"]],
    ["store over a value", (map) => map.store(3, "new"), ["new", "v4"]],
    ["swap", (map) => map.swap(3, "new"), ["new", "v4"]],
    ["compareAndDelete", (map) => map.compareAndDelete(3, "v3"), [undefined, "v4"]],
    ["compareAndSwap", (map) => map.compareAndSwap(3, "v3", "new"), ["new", "v4"]],
  ];
  for (const [name, cut, [at3, at4]] of CUTS) {
    it(`${name}: the record replaced and not retired is swept`, () => {
      const map = promoted();
      const injected = failNextRetire(overflow);
      try {
        assert.throws(() => cut(map), (error) => error === overflow);
        assert.ok(injected.fired(), "the step retired after its exchange");
      } finally {
        injected.restore();
      }
      // The exchange was the step's commit: it stays applied.
      assert.equal(map.load(3), at3);
      assert.equal(map.load(4), at4);
      map.verify();
      assert.equal(map.size, at3 === undefined ? 49 : 50);
      assert.equal(map.stats().count, map.size);
      for (let i = 0; i < 200; i++) map.store(i % 60, `w${i}`);
      map.verify();
    });
  }

  it("loadOrStore: its own record, unused, whose free is cut short is swept", () => {
    // Key 7 in the dirty table only: the call takes the mutex with its record made, finds the
    // value there, and frees the record it did not store.
    const map = new SyncMap<number, string>();
    map.store(7, "first");
    const proto = SyncCore.prototype;
    const freeRecord = proto.freeRecord;
    let fired = false;
    proto.freeRecord = function (this: SyncCore, ...args: Parameters<SyncCore["freeRecord"]>) {
      if (!fired) {
        fired = true;
        throw overflow;
      }
      return freeRecord.apply(this, args);
    };
    try {
      assert.throws(() => map.loadOrStore(7, "second"), (error) => error === overflow);
    } finally {
      proto.freeRecord = freeRecord;
    }
    assert.ok(fired, "loadOrStore freed its unused record");
    assert.equal(map.load(7), "first");
    map.verify();
    assert.equal(map.size, 1);
  });

  it("another object's verify() sweeps at once, while the object that overflowed goes on", () => {
    const map = promoted();
    const injected = failNextRetire(overflow);
    try {
      assert.throws(() => map.delete(3), (error) => error === overflow);
    } finally {
      injected.restore();
    }
    // The task goes on: no end-of-task sweep yet. The map's sweep word is raised, so a verify
    // by any object (another thread's, or here another seat's) sweeps first.
    for (let i = 0; i < 200; i++) map.load(i % 50);
    const other = attachOwnSeat<number, string>(map.handle);
    other.verify();
    assert.equal(map.load(3), undefined);
    other.close();
  });

  it("a close() in the task that overflowed leaves the sweep due for the others", async () => {
    const map = promoted();
    const handle = map.handle;
    const injected = failNextRetire(overflow);
    try {
      assert.throws(() => map.delete(3), (error) => error === overflow);
    } finally {
      injected.restore();
    }
    map.close(); // before the end of the task, where the sweep would have run
    await new Promise((resolve) => setTimeout(resolve, 5));
    const again = attachOwnSeat<number, string>(handle);
    for (let i = 0; i < 200; i++) again.load(i % 50);
    again.verify();
    assert.equal(again.size, 49);
    again.close();
  });

  it("a close() cut short by an overflow as it frees leaves the block to a sweep", async () => {
    const map = promoted();
    const other = attachOwnSeat<number, string>(map.handle);
    // The map's own object goes offline (the end of the task): its announcement holds back no
    // record `other` retires, which the close then frees.
    await new Promise((resolve) => setTimeout(resolve, 5));
    for (let i = 0; i < 10; i++) other.store(i, `w${i}`);
    const proto = SyncCore.prototype;
    const free = proto.free;
    let fired = false;
    proto.free = function (this: SyncCore, ...args: Parameters<SyncCore["free"]>) {
      if (!fired) {
        fired = true;
        throw overflow;
      }
      return free.apply(this, args);
    };
    try {
      assert.throws(() => other.close(), (error) => error === overflow);
    } finally {
      proto.free = free;
    }
    assert.ok(fired, "close freed a retired record");
    // The end of the task: the object that threw goes offline, and sweeps what it owes.
    await new Promise((resolve) => setTimeout(resolve, 5));
    for (let i = 0; i < 200; i++) map.store(i % 50, `x${i}`);
    map.verify();
  });
});

describe("a stop of the world is never left raised or unsafe", () => {
  it("a throw as it waits for the others gives the pause word back", () => {
    const map = promoted();
    const real = performance.now;
    let fired = false;
    // The first clock read inside the wait, after the pause word is raised: on Deno
    // performance.now() is JavaScript, where a stack overflow can throw.
    performance.now = function (this: Performance) {
      if (!fired && (new Error().stack ?? "").includes("awaitParked")) {
        fired = true;
        throw overflow;
      }
      return real.call(this);
    };
    try {
      assert.throws(() => map.verify(), (error) => error === overflow);
    } finally {
      performance.now = real;
    }
    assert.ok(fired, "verify stopped the world");
    assert.equal(pauseWord(map), 0, "the pause word given back");
    map.store(1, "after");
    map.verify();
  });

  it("a participant parked inside a hold holds back every sweep, not the stop", () => {
    const map = promoted();
    const registry = registryOf(Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test"));
    const p = new Participant(registry, claimSeat(registry), () => false);
    const parked = () => registry.arena.i32[registry.seats + p.index * SEAT_WORDS + PARKED];
    p.enter();
    p.hold(() => {
      p.park(0);
      assert.equal(parked(), PARKED_HOLDING, "parked holding, inside a hold");
      // Only another thread's participant holds a sweep back (the worker test in
      // sync_map_nested_reap_test.ts): none of this thread's waits while this thread sweeps.
      assert.equal(parkedHolding(registry), false, "this thread's own seat");
      p.unpark();
    });
    assert.equal(parked(), 0);
    p.park(0);
    assert.equal(parked(), PARKED_CLEAN, "parked clean outside one");
    p.unpark();
    p.close();
  });

  // The worker sleeps in the mutex (parked), and its unpark is cut short as it is entered: its
  // store throws the overflow, which raises the sweep word. Left parked, the parent's verify()
  // took it for stopped while it went on overwriting, and its sweep took a record the worker had
  // freed for in flight: "a record in flight ... points to its blob at ...", then a block owned
  // twice for good (helper-108, 20 runs of 20 on Deno).
  it("an unpark cut short by an overflow leaves no participant parked while it runs", async () => {
    const map = promoted();
    const ctl = new Int32Array(new SharedArrayBuffer(CTL_WORDS * 4));
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    const worker = startWorker(new URL("./fixtures/unpark_overflow_worker.ts", import.meta.url), {
      message: resolve,
      error: reject,
    });
    try {
      worker.postMessage({ handle: map.handle, ctl } satisfies UnparkRequest);
      while (Atomics.load(ctl, READY) === 0) await new Promise((r) => setTimeout(r, 5));
      const i32 = new Int32Array(map.handle.buffer);
      assert.equal(Atomics.compareExchange(i32, R_MU, 0, ownerId() << OWNER_SHIFT), 0);
      Atomics.store(ctl, GO, 1);
      Atomics.notify(ctl, GO);
      Atomics.wait(ctl, THREW, 0, 100); // the worker sleeps in the mutex, parked
      Atomics.store(i32, R_MU, 0);
      Atomics.notify(i32, R_MU);
      while (Atomics.load(ctl, THREW) === 0) Atomics.wait(ctl, THREW, 0, 1);
      assert.equal(Atomics.load(ctl, THREW), 1, "the worker's unpark was cut short");
      map.verify(); // while the worker overwrites, in the task that overflowed
      assert.equal(await promise, "done");
      map.verify();
      for (let i = 0; i < 50; i++) map.store(i, `z${i}`);
      for (let i = 0; i < 50; i++) assert.equal(map.load(i), `z${i}`);
      map.verify();
    } finally {
      worker.terminate();
    }
  });

  it("a queueMicrotask cut short as a call comes online leaves it to go offline all the same", async () => {
    const map = promoted();
    await new Promise((resolve) => setTimeout(resolve, 5)); // offline
    const real = globalThis.queueMicrotask;
    let fired = false;
    globalThis.queueMicrotask = function (callback: VoidFunction) {
      if (!fired) {
        fired = true;
        throw overflow;
      }
      return real(callback);
    };
    try {
      assert.throws(() => map.store(2, "two"), (error) => error === overflow);
    } finally {
      globalThis.queueMicrotask = real;
    }
    assert.ok(fired, "the call came online");
    for (let t = 0; t < 2; t++) {
      map.load(1); // online again, in a task of its own
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const i32 = new Int32Array(map.handle.buffer);
    const seat = i32[R_SEATS]; // seat 0: the map's maker's object
    assert.equal(Atomics.load(i32, seat + ANNOUNCE), 0, "offline between tasks");
    map.verify();
  });

  it("loadOrCompute: a claim whose abandon is cut short is given up as the task ends", async () => {
    const map = new SyncMap<string, string>();
    map.store("other", "x"); // amended: the abandon of a dirty-table claim takes the mutex
    const proto = SyncCore.prototype;
    const findIn = proto.findIn;
    let fired = false;
    proto.findIn = function (this: SyncCore, ...args: Parameters<SyncCore["findIn"]>) {
      if (!fired && (new Error().stack ?? "").includes("abandon")) {
        fired = true;
        throw overflow;
      }
      return findIn.apply(this, args);
    };
    try {
      assert.throws(
        () =>
          map.loadOrCompute("k", () => {
            throw overflow; // fn overflowed, and its abandon, deeper still, overflows too
          }),
        (error) => error === overflow,
      );
    } finally {
      proto.findIn = findIn;
    }
    assert.ok(fired, "the abandon was cut short");
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual(map.loadOrCompute("k", () => "v"), ["v", false]);
    map.verify();
  });

  it("loadOrCompute: a recursion to the stack's limit leaves no key claimed once it unwinds", async () => {
    // Each fn computes the next key: the stack overflows at the deepest, and the abandons of
    // the deepest claims overflow too. Every claim must be given up by the time the recursion
    // has unwound, with no task's end or later call of this thread: a worker computes each key
    // while this thread blocks in Atomics.wait, running nothing.
    const map = new SyncMap<string, number>();
    const ctl = new Int32Array(new SharedArrayBuffer(WAITER_CTL_WORDS * 4));
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    const worker = startWorker(new URL("./fixtures/compute_waiter_worker.ts", import.meta.url), {
      message: resolve,
      error: reject,
    });
    try {
      worker.postMessage({ handle: map.handle, ctl } satisfies ComputeWaiterRequest);
      while (Atomics.load(ctl, WAITER_READY) === 0) await new Promise((r) => setTimeout(r, 5));
      let depth = 0;
      const f = (i: number): number =>
        map.loadOrCompute(`k${i}`, () => {
          depth = i + 1;
          return f(i + 1);
        })[0];
      assert.throws(() => f(0), RangeError);
      assert.ok(depth > 100, `${depth} keys claimed`);
      Atomics.store(ctl, KEYS, depth + 1);
      Atomics.store(ctl, WAITER_GO, 1);
      Atomics.notify(ctl, WAITER_GO);
      Atomics.wait(ctl, DONE, 0, 10_000);
      assert.equal(Atomics.load(ctl, DONE), 1, "the worker computed every key");
      assert.equal(await promise, "done");
      for (let i = 0; i <= depth; i++) assert.equal(map.load(`k${i}`), -i);
      map.verify();
    } finally {
      worker.terminate();
    }
  });

  /**
   * Runs `release` (a seat release of a map of two seats, one taken by `map`) with the engine's
   * overflow thrown in the release's list repair; then, as the task ends, the seat must be free
   * again: the map's two seats take a new object.
   */
  async function releaseCutShort(map: SyncMap<number, string>, release: () => void) {
    const proto = Arena.prototype;
    const reach = proto.reach;
    let fired = false;
    proto.reach = function (this: Arena, end: number) {
      if (!fired && (new Error().stack ?? "").includes("repairList")) {
        fired = true;
        throw overflow;
      }
      return reach.call(this, end);
    };
    try {
      assert.throws(release, (error) => error === overflow);
    } finally {
      proto.reach = reach;
    }
    assert.ok(fired, "the release repaired the seat's list");
    await new Promise((resolve) => setTimeout(resolve, 5));
    attachOwnSeat<number, string>(map.handle).close();
    map.store(3, "three");
    map.verify();
  }

  it("close(): a seat release cut short is finished as the task ends", async () => {
    const map = new SyncMap<number, string>({ maxParticipants: 2 });
    map.store(1, "one");
    const other = attachOwnSeat<number, string>(map.handle);
    other.store(2, "two");
    await releaseCutShort(map, () => other.close());
  });

  it("attach: the seat of an object not made, whose release is cut short, is freed as the task ends", async () => {
    // helper-111: in a worker, SyncMap.attach overflowed as it made the object, then again as
    // it gave the seat back, and the seat stayed RELEASING, with a live releaser nobody takes
    // over, until the worker ended: each such attach took a seat for good.
    const map = new SyncMap<number, string>({ maxParticipants: 2 });
    map.store(1, "one");
    const fail = () => {
      throw overflow;
    };
    await releaseCutShort(map, () => attachSyncMap(map.handle, {}, fail, false));
  });

  it("a reap: the release of a dead participant's seat, cut short, is finished as the task ends", async () => {
    // The reaping thread, alive, stays the release's releaser, and no other thread takes over a
    // live releaser's release: left RELEASING, the seat was lost until this thread ended.
    const map = new SyncMap<number, string>({ maxParticipants: 2 });
    map.store(1, "one");
    const { handle } = shareSyncMap(map as SyncMap<never, never>);
    attachOwnSeat<number, string>(handle).store(2, "two");
    const i32 = new Int32Array(map.handle.buffer);
    const ghost = 2 ** 27 + 7000 + Math.floor(Math.random() * 10000);
    record(ghost, GONE);
    Atomics.store(i32, i32[R_SEATS] + handle.participant! * SEAT_WORDS + OWNER, ghost + 1);
    await releaseCutShort(map, () => map.verify());
  });
});
