// Copyright the shmap authors. MIT license.
//
// A worker terminated between its calls of a SyncMap (an idle worker a pool retires), or in the
// middle of its loads, held no block in hand: its seat is released with no sweep, the stop of the
// world that walks the whole map (docs/design.md, "The marking grows with the map"), and nothing
// it owned is lost. A worker terminated in the middle of its stores still gets its sweep. Real workers, through the
// runtime's adapter, on every runtime.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SyncMap } from "../mod.ts";
import { R_SWEEP_DUE } from "../src/maps/_sync_layout.ts";
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

// The control: what the change must not lose. Bun's and Node's terminate() stop the worker
// inside its loop of stores; a Deno worker goes on until its next call throws TerminatedError,
// before it touches anything (so it may leave nothing to sweep), and is checked by the
// termination storms instead.
test("SyncMap: a worker terminated inside its calls gets its sweep", {
  skip: runtime === "deno" && "Deno's terminate() lets the loop run to its next call",
}, async () => {
  const map = new SyncMap<number, string>();
  for (let k = 0; k < KEYS; k++) map.store(k, `parent ${k}`);
  const [w, box] = await start(map);
  try {
    const sweeps = sweepsForTests.count;
    w.postMessage({ mode: "loop", base: WORKER_KEYS } satisfies IdleDeathTask);
    assert.equal(await box.next(20_000), "looping");
    await sleep(20);
    w.terminate();
    await untilReleased(map);
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
