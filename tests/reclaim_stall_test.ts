// Copyright the shmap authors. MIT license.
// A stall's backlog, across real workers on shared memory: a worker holds its announcement in one
// long synchronous task while this thread overwrites keys, so every record it retires waits.
// Once the worker announces again, this thread's backlog goes within a few slices of
// COLLECT_BUDGET records, one slice every QUIESCE_EVERY calls (src/_engine/reclaim.ts, "A stall's
// backlog" in docs/design.md). Before, it waited until half as many again had been retired (the
// collect threshold), then went in one call. Counted in calls, not timed.

import assert from "node:assert/strict";
import { test } from "node:test";
import { SyncMap } from "../mod.ts";
import { COLLECT_BUDGET, QUIESCE_EVERY } from "../src/_engine/reclaim.ts";
import { Mailbox } from "./fixtures/adapter_harness.ts";
import { spawnWorker } from "./fixtures/spawn.ts";

const BACKLOG = 100_000;

test("a stalled worker's backlog is freed within a few slices once it announces again", async () => {
  const map = new SyncMap<number, string>();
  const box = new Mailbox();
  const worker = spawnWorker(new URL("./fixtures/stall_worker.ts", import.meta.url), { map }, {
    message: box.put,
    error: box.fail,
  });
  const ctrl = new Int32Array(new SharedArrayBuffer(4));
  try {
    assert.equal(await box.next(20_000), "ready");
    worker.postMessage(ctrl.buffer);
    assert.equal(await box.next(20_000), "holding");
    // From here to the end, one synchronous task: awaited, this thread would go offline, and
    // going offline frees all it can at once.
    for (let i = 0; i < BACKLOG; i++) map.store(i % 100, `value ${i}`);
    const held = map.stats().retired;
    assert.ok(held >= BACKLOG - 200, `only ${held} retired records waited for the stalled worker`);
    Atomics.store(ctrl, 0, 1);
    Atomics.notify(ctrl, 0);
    const end = performance.now() + 20_000;
    while (map.load(-2) === undefined) {
      assert.ok(performance.now() < end, "the worker did not store again within 20 s");
    }
    // Slices of COLLECT_BUDGET, one each QUIESCE_EVERY calls (a store here, and a stats() call
    // that may count as one), with a slack of four periods: 1,088 stores for 13 slices. Before,
    // 31,165 (the threshold: half the backlog again, less what the stores before had retired).
    const slices = Math.ceil(BACKLOG / COLLECT_BUDGET);
    const within = (slices + 4) * QUIESCE_EVERY;
    let calls = 0;
    while (map.stats().retired > 2 * QUIESCE_EVERY && calls < BACKLOG) {
      map.store(calls % 100, `after ${calls}`);
      calls++;
    }
    assert.ok(
      calls <= within,
      `the backlog of ${held} took ${calls} stores to go (at most ${within} expected)`,
    );
    assert.equal(await box.next(20_000), "let go");
    map.verify();
  } finally {
    Atomics.store(ctrl, 0, 1);
    Atomics.notify(ctrl, 0);
    worker.terminate();
  }
});
