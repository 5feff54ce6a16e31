// Copyright the shmap authors. MIT license.
// A terminated worker inside a SyncMap write never writes through a seat released under it.
// Deno's terminate() does not stop a worker running synchronous code: a zombie inside a store,
// running user code there (here the auto codec reading a getter that spins as it encodes the
// value), would go on with the store once that code returned: take its record's block from its
// seat's cache, publish it, and retire the record it replaced into its seat's retire list. Its
// seat is released once it has run past the grace (it holds nothing shared while the getter
// runs: the store has read nothing yet), so the store checks again as the user code returns
// (Participant.recheck): the zombie, recorded terminating, throws TerminatedError there and the
// store is not applied. Before, it went on, through a cache that was another participant's by
// then and a retire list that was gone (test 2: a record handed out and unreachable, which
// verify() reports). On Bun and Node terminate() stops the spinning worker inside the store.
// Either way the map verifies, and reads back what was stored, after the release and after the
// blocks it freed are used again.

import assert from "node:assert/strict";
import { test } from "node:test";
import { SyncMap } from "../mod.ts";
import { Arena, KIND_SYNC_MAP } from "../src/_engine/arena.ts";
import { ownerId } from "../src/_engine/census.ts";
import { CLAIM, OWNER, PARKED, SEAT_WORDS, seatHigh } from "../src/_engine/registry.ts";
import { registryOf } from "../src/maps/_sync_layout.ts";
import { attachOwnSeat } from "../src/maps/sync_map.ts";
import { Mailbox } from "./fixtures/adapter_harness.ts";
import { eventually, sleep } from "./fixtures/harness.ts";
import { runtime, spawnWorker, type TestWorker } from "./fixtures/spawn.ts";
import {
  BUILTIN_SPIN,
  ERROR_TERMINATED,
  errorText,
  MESSAGE_SPIN,
  SPIN_CTRL_WORDS,
} from "./fixtures/spin_encode_worker.ts";

/**
 * Starts fixtures/spin_encode_worker.ts on `map` in `mode` (its ctrl[6]), and returns it with its
 * control words once it has stored its keys.
 */
async function startWriter(
  map: SyncMap<number, unknown>,
  mode = 0,
): Promise<{ worker: TestWorker; ctrl: Int32Array<SharedArrayBuffer> }> {
  const box = new Mailbox();
  const ctrl = new Int32Array(new SharedArrayBuffer(SPIN_CTRL_WORDS * 4));
  ctrl[6] = mode;
  const worker = spawnWorker(new URL("./fixtures/spin_encode_worker.ts", import.meta.url), {
    map,
  }, { message: box.put, error: box.fail });
  try {
    assert.equal(await box.next(20_000), "ready");
    worker.postMessage(ctrl.buffer);
    assert.equal(await box.next(20_000), "stored");
  } catch (error) {
    worker.terminate();
    throw error;
  }
  return { worker, ctrl };
}

/**
 * Overwrites keys 0 to 99 from this thread for `ms` of wall time, in rounds with a turn of the
 * event loop between, so that retired records pile up and sweeps and releases run. Returns the
 * last round's number (its values are `round ${round} key ${k}`) and, if `seen` was given, when
 * (ms after the start) it first held true, or -1.
 */
async function churn(
  map: SyncMap<number, unknown>,
  ms: number,
  round: number,
  seen?: () => boolean,
): Promise<{ round: number; seenAt: number }> {
  const start = performance.now();
  let seenAt = -1;
  do {
    round++;
    for (let k = 0; k < 100; k++) map.store(k, `round ${round} key ${k}`);
    // Keys added and deleted too, so that blocks of other sizes are taken and freed.
    for (let k = 3000; k < 3020; k++) map.store(k, { k, round, pad: "x".repeat(k % 37) });
    for (let k = 3000; k < 3020; k += 2) map.delete(k);
    if (seenAt < 0 && seen?.()) seenAt = performance.now() - start;
    await sleep(5);
  } while (performance.now() - start < ms);
  return { round, seenAt };
}

/** Asserts what the parent stored last (in round `round`) reads back, and key 1000 as it was. */
function checkValues(map: SyncMap<number, unknown>, round: number): void {
  for (let k = 0; k < 100; k++) assert.equal(map.load(k), `round ${round} key ${k}`, `key ${k}`);
  for (let k = 3000; k < 3020; k++) {
    if (k % 2 === 0) assert.equal(map.has(k), false, `key ${k} deleted`);
    else assert.deepEqual(map.load(k), { k, round, pad: "x".repeat(k % 37) }, `key ${k}`);
  }
  // The zombie's store of 1000 is not applied: stopped inside it by terminate() (Bun, Node), or
  // as its getter returns (Deno).
  assert.deepEqual(map.load(1000), { x: 0 }, "key 1000");
}

test("a terminated worker's store stops as its user code returns, writing nothing", {
  timeout: 60_000,
}, async () => {
  const map = new SyncMap<number, unknown>();
  const { worker, ctrl } = await startWriter(map);
  try {
    assert.equal(map.stats().participants, 2);
    assert.ok(
      await eventually(20_000, () => Atomics.load(ctrl, 2) !== 0),
      "the worker's store did not run the value's getter",
    );
    worker.terminate();
    // Over a second (four graces, and well past the CPU time after which a zombie in user code
    // has its seat released), churn from this thread.
    let { round } = await churn(map, 1_200, 0);
    if (runtime === "deno") {
      const spun = Atomics.load(ctrl, 1);
      await sleep(50);
      assert.notEqual(Atomics.load(ctrl, 1), spun, "Deno: the zombie spins on");
      assert.equal(Atomics.load(ctrl, 3), 0, "Deno: the zombie's store has not returned");
    }
    // The getter returns: on Deno the store goes on, and must stop before it writes.
    Atomics.store(ctrl, 0, 1);
    if (runtime === "deno") {
      assert.ok(
        await eventually(5_000, () => Atomics.load(ctrl, 3) !== 0),
        "Deno: the zombie's store did not end within 5 s of its getter returning",
      );
      assert.equal(Atomics.load(ctrl, 3), ERROR_TERMINATED, errorText(ctrl));
    }
    assert.ok(
      await eventually(3_000, () => map.stats().participants === 1),
      "the zombie's seat was not released within 3 s of its store ending",
    );
    map.verify();
    checkValues(map, round);
    // Corruption may show only once the blocks freed are taken again.
    ({ round } = await churn(map, 500, round));
    map.verify();
    checkValues(map, round);
  } finally {
    Atomics.store(ctrl, 0, 1);
    worker.terminate();
  }
});

/**
 * The zombie of fixtures/spin_encode_worker.ts in `mode`, with a live worker attached beside it
 * (in another seat) that makes its allocation cache only once the zombie has spun for over a
 * second. Had the zombie's seat been released meanwhile and its store gone on, its cache block
 * freed would be the live worker's cache by then, and its retire list gone: the store would take
 * its record from the live worker's cache and then fail to retire the record it replaced, leaving
 * that one handed out and unreachable.
 */
async function storeBesideLiveWorker(mode: number): Promise<void> {
  const map = new SyncMap<number, unknown>();
  const { worker, ctrl } = await startWriter(map, mode);
  const box = new Mailbox();
  const live = spawnWorker(new URL("./fixtures/store_when_told_worker.ts", import.meta.url), {
    map,
  }, { message: box.put, error: box.fail });
  try {
    assert.equal(await box.next(20_000), "ready");
    assert.equal(map.stats().participants, 3);
    assert.ok(
      await eventually(20_000, () => Atomics.load(ctrl, 2) !== 0),
      "the worker's store did not reach its spin (a getter, or a patched built-in)",
    );
    worker.terminate();
    let { round } = await churn(map, 1_200, 0);
    live.postMessage("store");
    assert.equal(await box.next(20_000), "stored");
    Atomics.store(ctrl, 0, 1);
    if (runtime === "deno") {
      assert.ok(
        await eventually(5_000, () => Atomics.load(ctrl, 3) !== 0),
        "Deno: the zombie's store did not end within 5 s of its getter returning",
      );
    }
    assert.ok(
      await eventually(3_000, () => map.stats().participants === 2),
      "the zombie's seat was not released within 3 s of its store ending",
    );
    map.verify();
    if (runtime === "deno") {
      assert.equal(Atomics.load(ctrl, 3), ERROR_TERMINATED, errorText(ctrl));
    }
    checkValues(map, round);
    live.postMessage("store");
    assert.equal(await box.next(20_000), "stored");
    ({ round } = await churn(map, 500, round));
    map.verify();
    checkValues(map, round);
    for (let k = 5000; k < 5100; k++) assert.deepEqual(map.load(k), { x: k + 2 }, `key ${k}`);
  } finally {
    Atomics.store(ctrl, 0, 1);
    worker.terminate();
    live.terminate();
  }
}

test("a terminated worker's store writes through no seat handed on as its getter returns", {
  timeout: 60_000,
}, () => storeBesideLiveWorker(0));

test("... nor as a built-in it runs, patched by the user, returns (BigInt's toString)", {
  timeout: 60_000,
}, () => storeBesideLiveWorker(BUILTIN_SPIN));

test("Deno: a terminated worker's error handler leaves a seat handed on alone", {
  timeout: 60_000,
  skip: runtime !== "deno",
}, async () => {
  // Every SyncMap write's catch asks whether the error is the engine's stack overflow
  // (Participant.noteThrown), and then clears its seat's PARKED. The error may be the user's
  // (here thrown by a getter of the value), whose `message` getter spins: the zombie's seat is
  // released meanwhile, and a new participant claims it. That one's PARKED (set here by hand,
  // the stand-in for one asleep in the map's mutex with a record in flight, which a sweep must
  // then keep) stays as it is when the getter returns.
  const map = new SyncMap<number, unknown>();
  const arena = Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test");
  const registry = registryOf(arena);
  const i32 = arena.i32;
  const { worker, ctrl } = await startWriter(map, MESSAGE_SPIN);
  let other: SyncMap<number, unknown> | undefined;
  try {
    const me = ownerId();
    let at = -1;
    for (let i = 0; i < seatHigh(registry); i++) {
      const owner = Atomics.load(i32, registry.seats + i * SEAT_WORDS + OWNER);
      if (owner !== 0 && owner !== me) at = registry.seats + i * SEAT_WORDS;
    }
    assert.ok(at >= 0, "the worker's seat");
    const claim = Atomics.load(i32, at + CLAIM);
    assert.ok(await eventually(20_000, () => Atomics.load(ctrl, 2) !== 0), "the getter ran");
    worker.terminate();
    await churn(map, 1_200, 0);
    assert.ok(await eventually(5_000, () => map.stats().participants === 1), "seat released");
    other = attachOwnSeat<number, unknown>(map.handle);
    other.store(4242, 1);
    assert.notEqual(Atomics.load(i32, at + CLAIM), claim, "the seat is claimed again");
    assert.equal(Atomics.load(i32, at + OWNER), me, "by this thread's new object");
    await sleep(20); // its going offline (which clears a PARKED it finds) has run
    Atomics.store(i32, at + PARKED, 1);
    await sleep(100);
    assert.equal(Atomics.load(i32, at + PARKED), 1, "control: PARKED stays while it spins");
    Atomics.store(ctrl, 0, 1);
    assert.ok(
      await eventually(5_000, () => Atomics.load(ctrl, 3) !== 0),
      "the zombie's store ended",
    );
    await sleep(50);
    assert.equal(Atomics.load(i32, at + PARKED), 1, "the zombie cleared the new owner's PARKED");
    Atomics.store(i32, at + PARKED, 0);
    map.verify();
  } finally {
    Atomics.store(ctrl, 0, 1);
    worker.terminate();
    other?.close();
  }
});
