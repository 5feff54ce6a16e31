// Copyright the shmap authors. MIT license.
//
// A worker terminated between its calls of a SyncMap (an idle worker a pool retires), or in the
// middle of its loads, held no block in hand: its seat is released with no sweep, the stop of the
// world that walks the whole map (docs/design.md, "The marking grows with the map"), and nothing
// it owned is lost. Nor did one terminated in the middle of its stores of keys the map holds,
// which log what they hold (_sync_hand_log.ts): its seat's release gives that back. A worker
// terminated in the middle of other writes still gets its sweep. Real workers, through the
// runtime's adapter, on every runtime.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SyncMap } from "../mod.ts";
import { R_READ, R_SWEEP_DUE } from "../src/maps/_sync_layout.ts";
import { sweepsForTests } from "../src/maps/_sync_recovery.ts";
import { Mailbox } from "./fixtures/adapter_harness.ts";
import { sleep, until } from "./fixtures/harness.ts";
import type { IdleDeathTask } from "./fixtures/idle_death_worker.ts";
import { runtime, spawnWorker, type TestWorker } from "./fixtures/spawn.ts";

const KEYS = 2_000;
/** Where the worker's keys start: past the parent's. */
const WORKER_KEYS = 1_000_000;

/** A worker on `map`, ready for its task, and its mailbox. */
async function start(map: SyncMap<number, string>): Promise<[TestWorker, Mailbox]> {
  const box = new Mailbox();
  const url = new URL("./fixtures/idle_death_worker.ts", import.meta.url);
  const w = spawnWorker(url, { map }, { message: box.put, error: box.fail });
  try {
    assert.equal(await box.next(20_000), "ready");
  } catch (error) {
    w.terminate();
    throw error;
  }
  return [w, box];
}

/** Calls of this thread (one a task) until the worker's seat is given back. */
async function untilReleased(map: SyncMap<number, string>): Promise<void> {
  await until(() => {
    map.store(0, "parent");
    return map.stats().participants === 1;
  }, "the worker's seat is released");
}

// Terminated between calls (an idle worker a pool retires), or in a loop of loads (a read-mostly
// worker a pool's timeout kills): either holds nothing in hand, since a read's fast path lowers its
// seat's hand word (registry.ts HAND). On Deno, terminate() lets the loop of loads run to a
// quiescent point, whose census check throws before the point does anything: the same.
for (const mode of ["idle", "reads"] as const) {
  const where = mode === "idle" ? "between calls" : "inside its loads";
  test(`SyncMap: a worker terminated ${where} is reaped with no sweep, nothing lost`, async () => {
    const map = new SyncMap<number, string>();
    for (let k = 0; k < KEYS; k++) map.store(k, `parent ${k}`);
    const [w, box] = await start(map);
    try {
      w.postMessage({ mode, base: WORKER_KEYS, keys: KEYS } satisfies IdleDeathTask);
      assert.equal(await box.next(20_000), mode === "idle" ? "idle" : "looping");
      if (mode === "reads") await sleep(20);
      const i32 = new Int32Array(map.handle.buffer);
      assert.equal(Atomics.load(i32, R_SWEEP_DUE), 0);
      const sweeps = sweepsForTests.count;
      w.terminate();
      await untilReleased(map);
      for (let n = 0; n < 100; n++) {
        map.store(n % 10, `after ${n}`);
        await sleep(0);
      }
      assert.equal(Atomics.load(i32, R_SWEEP_DUE), 0, "no sweep is due");
      assert.equal(sweepsForTests.count, sweeps, "nothing was swept");
      map.verify(); // nothing unreached was left behind
      for (let k = 0; k < KEYS; k++) assert.equal(map.load(WORKER_KEYS + k), "round 1");
      assert.equal(map.size, 2 * KEYS);
    } finally {
      w.terminate();
      map.close();
    }
  });
}

/** Starts `task`, a loop of writes, in `w`, terminates it 20 ms in, and waits for its release. */
async function killLooping(
  map: SyncMap<number, string>,
  w: TestWorker,
  box: Mailbox,
  task: IdleDeathTask,
): Promise<void> {
  w.postMessage(task);
  assert.equal(await box.next(20_000), "looping");
  await sleep(20);
  w.terminate();
  await untilReleased(map);
}

// Stores over the keys the worker holds (in the read table: stored and loaded by the parent first)
// log what they hold in hand, and a kill there is settled by the release with no sweep. A kill in
// the quiescent point's collect, or in a store of the first keys of a replacement's loop, is swept
// as before (kills in ten of kill_stall.ts's runs: one to three of ten swept on Bun and Node), so
// each kill is looked at alone: the map is whole after each, and at least one of eight left no
// sweep. A Deno worker goes on until its next call throws TerminatedError, before it touches
// anything, with the word lowered by the store before it: never swept.
for (const fractions of [false, true]) {
  const values = fractions ? "fractions (a record each, logged as it is taken)" : "strings";
  test(`SyncMap: a worker terminated inside its stores of ${values} is settled from its hand log`, async () => {
    const map = new SyncMap<number, string>();
    for (let k = 0; k < KEYS; k++) map.store(k, `parent ${k}`);
    let unswept = 0;
    const kills = 8;
    for (let kill = 0; kill < kills && unswept === 0; kill++) {
      const base = WORKER_KEYS + 1000 * kill;
      for (let k = 0; k < 100; k++) map.store(base + k, "parent");
      // Promoted: a miss of each key the dirty table holds, and the keys are in the read table.
      for (let k = 0; k < KEYS; k++) map.load(k);
      for (let k = 0; k < 1000 * kills; k++) map.load(WORKER_KEYS + k);
      const i32 = new Int32Array(map.handle.buffer);
      assert.equal(Atomics.load(i32, R_READ) & 1, 0, "not amended: every key in the read table");
      const [w, box] = await start(map);
      try {
        const sweeps = sweepsForTests.count;
        await killLooping(map, w, box, { mode: "loop", base, fractions });
        await until(() => {
          map.store(1, "parent");
          return Atomics.load(i32, R_SWEEP_DUE) === 0;
        }, "no sweep left due");
        if (sweepsForTests.count === sweeps) unswept++;
        map.verify(); // nothing unreached left behind, nothing freed twice, the count right
        for (let k = 0; k < 100; k++) {
          assert.match(String(map.load(base + k)), /^(parent|value \d+|\d+\.5)$/);
        }
        assert.equal(map.size, KEYS + 100 * (kill + 1));
      } finally {
        w.terminate();
      }
    }
    map.close();
    assert.ok(unswept > 0, `every one of ${kills} kills inside stores was swept`);
  });
}

// The control: what the change must not lose. Bun's and Node's terminate() stop the worker
// inside its loop of computes and compare-and-swaps, which no hand log covers; a Deno worker goes on
// until its next call throws TerminatedError, before it touches anything (so it may leave nothing
// to sweep), and is checked by the termination storms instead.
test("SyncMap: a worker terminated inside writes no log covers gets its sweep", {
  skip: runtime === "deno" && "Deno's terminate() lets the loop run to its next call",
}, async () => {
  const map = new SyncMap<number, string>();
  for (let k = 0; k < KEYS; k++) map.store(k, `parent ${k}`);
  const [w, box] = await start(map);
  try {
    const sweeps = sweepsForTests.count;
    await killLooping(map, w, box, { mode: "churn", base: WORKER_KEYS });
    await until(() => {
      map.store(1, "parent");
      return sweepsForTests.count > sweeps;
    }, "the dead worker's leftovers are swept");
    map.verify();
  } finally {
    w.terminate();
    map.close();
  }
});
