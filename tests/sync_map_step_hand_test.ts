// Copyright the shmap authors. MIT license.
// A store of a new key keeps its record's hand log through the mutex's step (maps/_sync_hand_log.ts,
// "In a step"): a worker that dies before the step, in it, or after it leaves the map whole with
// no sweep of the whole map; one that dies between the step's commit and its key's count is
// swept, which recounts. A real worker stops where the test says, holding the mutex where it
// would, and is declared gone; this thread then takes the mutex over and reaps its seat.

import assert from "node:assert/strict";
import { test } from "node:test";
import { SyncMap } from "../mod.ts";
import { HAND, HAND_STEP, HAND_TAKEN, OWNER, SEAT_WORDS } from "../src/_engine/registry.ts";
import { SyncCore } from "../src/maps/_sync_core.ts";
import { LockedTx } from "../src/_engine/tx.ts";
import { R_SEATS, R_SWEEP_DUE } from "../src/maps/_sync_layout.ts";
import { syncAccessOf } from "../src/maps/sync_map.ts";
import { sweepsForTests } from "../src/maps/_sync_recovery.ts";
import { threadGone } from "../src/threads.ts";
import { ReplyQueue } from "./fixtures/reply_queue.ts";
import { startWorker } from "./fixtures/spawn.ts";
import type { StepDeathReply, StepDeathRequest, StepStop } from "./fixtures/step_death_worker.ts";

const KEY = 1_000_000; // new to the map
const STEP_STOPS: readonly StepStop[] = [
  "before the mutex",
  "in the step",
  "at the commit's end",
  "after the commit",
  "after the step",
  "terminated at the mutex",
  "terminated in the step",
];

// `build`: the step builds the dirty table, whose overflow buckets are allocated unlisted (tx.ts
// allocUnlisted) and kept in the step's unlisted list, which the recovery frees: no sweep either.
// `full`: the list has no room; the buckets kept past it are stray after a death, and swept. A
// build copies 2,000 keys: some of its buckets overflow.
// `op`: the write, a `store` or a `loadOrStore` (which takes its record under a log too).
const CASES = [
  ...STEP_STOPS.map((stop) => ({ stop, build: false, full: false, op: "store" as const })),
  { stop: "in the step", build: true, full: false, op: "store" },
  { stop: "in the step", build: true, full: true, op: "store" },
  ...STEP_STOPS.map((stop) => ({ stop, build: false, full: false, op: "loadOrStore" as const })),
  // The key in the dirty table already: the step loads it, and the record the call took is in
  // hand until it frees it, the word raised (swept).
  { stop: "loaded, freeing its record", build: false, full: false, op: "loadOrStore" },
] as const;

for (const { stop, build, full, op } of CASES) {
  const loaded = stop === "loaded, freeing its record";
  const committed = stop === "after the commit" || stop === "after the step" ||
    stop === "at the commit's end";
  // Between the commit and the count the key is in, not counted: only a sweep recounts.
  const swept = stop === "after the commit" || stop === "at the commit's end" || full || loaded;
  const what = `${stop}${
    build ? `, its step building the dirty table${full ? " with no room in its list" : ""},` : ""
  }`;
  const whose = loaded ? "a key only the dirty table holds" : "a new key";
  test(`SyncMap: a ${op} of ${whose} that died ${what} ${swept ? "is swept" : "needs no sweep"}`, async () => {
    const map = new SyncMap<number, string>();
    const keys = build ? 2_000 : 100;
    for (let i = 0; i < keys; i++) map.store(i, `v${i}`);
    for (let i = 0; i < keys; i++) map.load(i); // promoted: the read table holds them
    if (loaded) map.store(KEY, "the parent's"); // the dirty table's only
    const i32 = new Int32Array(map.handle.buffer);
    const ctrl = new Int32Array(new SharedArrayBuffer(4));
    const replies = new ReplyQueue<StepDeathReply | { error: string }>();
    const worker = startWorker(
      new URL("./fixtures/step_death_worker.ts", import.meta.url),
      replies.listeners((error) => ({ error: String(error) })),
    );
    let thread = 0;
    try {
      worker.postMessage(
        { map: map.handle, key: KEY, stop, build, full, op, ctrl } satisfies StepDeathRequest,
      );
      const reply = await replies.take(30_000, `the worker stopped ${stop}`);
      assert.ok(!("error" in reply), "error" in reply ? reply.error : "");
      thread = reply.thread;
      // Its log names the record: taken, or handed to the step. Loaded: raised.
      if (loaded) assert.equal(reply.hand, 1, "raised");
      else assert.equal(reply.hand & 3, HAND_TAKEN, `hand word ${reply.hand}`);
      // Terminated in the step: its rollback cleared HAND_STEP as it began (unstepHand).
      const inStep = stop !== "before the mutex" && !stop.startsWith("terminated") && !loaded;
      assert.equal((reply.hand & HAND_STEP) !== 0, inStep, "handed to the step");
      const sweeps = sweepsForTests.count;
      threadGone(reply.thread);
      // A new key of this thread's: it takes the mutex (over from the dead holder, recovering
      // its step), then quiescent points reap the dead seat, and retry any sweep due.
      map.store(2000, "v2000");
      const end = performance.now() + 5_000;
      while (
        (Atomics.load(i32, R_SWEEP_DUE) !== 0 || Atomics.load(i32, reply.seat + OWNER) !== 0) &&
        performance.now() < end
      ) map.load(0);
      assert.equal(Atomics.load(i32, reply.seat + OWNER), 0, "the dead seat is released");
      assert.equal(Atomics.load(i32, R_SWEEP_DUE), 0, "no sweep left due");
      assert.equal(sweepsForTests.count - sweeps, swept ? 1 : 0, "sweeps");
      assert.equal(
        map.load(KEY),
        loaded ? "the parent's" : committed ? `v${KEY}` : undefined,
        "the store whole or not at all",
      );
      // The keys, the parent's new one and, unless the step built the dirty table, the worker's.
      assert.equal(
        map.size,
        keys + (build ? 1 : 2) + (committed || loaded ? 1 : 0),
        "the key count",
      );
      // Every block reached, listed or cached: the record neither leaked nor freed twice.
      map.verify();
      // And the map goes on: the dead key stored, deleted, stored again.
      map.store(KEY, "again");
      assert.equal(map.loadAndDelete(KEY)[0], "again");
      map.store(KEY, "third");
      map.verify();
    } finally {
      // The map closed before the worker is woken: woken, it unwinds its store (a zombie's
      // writes, which no guarantee covers), and it must write into no map still checked.
      try {
        if (thread !== 0) threadGone(thread);
        map.close();
      } finally {
        Atomics.store(ctrl, 0, 1);
        Atomics.notify(ctrl, 0);
        worker.terminate();
      }
    }
  });
}

// Under the mutex the log stays the record's only while a rollback takes the record back: the
// step of a new key has it (HAND_STEP); a step that exchanges it into an existing key's entry,
// which no rollback undoes, raises the word first, so that a death there is swept.
test("SyncMap: a store's step hands its record on for a new key only", () => {
  const map = new SyncMap<number, string>();
  map.store(1, "a"); // dirty only: a store of it exchanges under the mutex
  const i32 = new Int32Array(map.handle.buffer);
  const seat = i32[R_SEATS] + syncAccessOf(map).participant.index * SEAT_WORDS;
  const seen: Record<string, number> = {};
  const addLocked = SyncCore.prototype.addLocked;
  const missLocked = SyncCore.prototype.missLocked;
  SyncCore.prototype.addLocked = function (this: SyncCore, ...args) {
    seen.add = i32[seat + HAND];
    return addLocked.apply(this, args);
  };
  SyncCore.prototype.missLocked = function (this: SyncCore) {
    seen.miss ??= i32[seat + HAND];
    return missLocked.apply(this);
  };
  try {
    map.store(2, "b"); // a new key
    map.store(1, "c"); // the dirty table's key: missLocked, then the exchange
  } finally {
    SyncCore.prototype.addLocked = addLocked;
    SyncCore.prototype.missLocked = missLocked;
  }
  assert.equal(seen.add & 3, HAND_TAKEN, "the new key's step: the record taken");
  assert.notEqual(seen.add & HAND_STEP, 0, "handed to the step");
  assert.equal(seen.miss, 1, "the existing key's step: raised");
  assert.equal(i32[seat + HAND], 0, "the store ended its log");
  assert.equal(map.load(1), "c");
  assert.equal(map.load(2), "b");
  map.verify();
  map.close();
});

// A step that throws, alive, is rolled back by its own thread: the record is the caller's again
// before the rollback writes anything (a death in the rollback puts it back), and the caller frees
// it as it returns the error, its word raised.
test("SyncMap: a store's step rolled back alive takes its record back first", () => {
  const map = new SyncMap<number, string>();
  for (let i = 0; i < 10; i++) map.store(i, `v${i}`);
  for (let i = 0; i < 10; i++) map.load(i);
  map.store(10, "v10"); // the dirty table made: the next new key's step only adds
  const i32 = new Int32Array(map.handle.buffer);
  const seat = i32[R_SEATS] + syncAccessOf(map).participant.index * SEAT_WORDS;
  const addLocked = SyncCore.prototype.addLocked;
  const recover = LockedTx.prototype.recover;
  let atRollback = -1;
  SyncCore.prototype.addLocked = function (this: SyncCore, ...args) {
    addLocked.apply(this, args);
    throw new Error("the step failed");
  };
  LockedTx.prototype.recover = function (this: LockedTx) {
    atRollback = i32[seat + HAND];
    return recover.apply(this);
  };
  try {
    assert.throws(() => map.store(11, "v11"), /the step failed/);
  } finally {
    SyncCore.prototype.addLocked = addLocked;
    LockedTx.prototype.recover = recover;
  }
  assert.equal(atRollback & 3, HAND_TAKEN, `at the rollback: ${atRollback}`);
  assert.equal(atRollback & HAND_STEP, 0, "no longer the step's");
  assert.equal(i32[seat + HAND], 1, "raised as the error is returned");
  assert.equal(map.load(11), undefined);
  map.verify(); // the record freed once: nothing leaked, nothing freed twice
  map.close();
});
