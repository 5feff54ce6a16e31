// Copyright the shmap authors. MIT license.
// verify() called at once after terminate(), while the worker's seat is still being released:
// the seat's cache and retire list are on their way back to the heap, not handed out and lost.
// A Deno worker that filled and cleared a map was the case (helper-158: 7 in 12 verify() calls
// right after the kill found a block "handed out and unreachable", none a second later); verify
// now waits for a seat being released, as for a dead one.

import assert from "node:assert/strict";
import { test } from "node:test";
import { SyncMap } from "../mod.ts";
import { sleep, until } from "./fixtures/harness.ts";
import type { FillClearOrder } from "./fixtures/fill_clear_worker.ts";
import { spawnWorker } from "./fixtures/spawn.ts";

test("SyncMap.verify() right after terminate() of a worker that fills and clears", {
  timeout: 120_000,
}, async () => {
  const map = new SyncMap<number, string>();
  for (let round = 0; round < 8; round++) {
    const progress = new Int32Array(new SharedArrayBuffer(8));
    const errors: string[] = [];
    const worker = spawnWorker(
      new URL("./fixtures/fill_clear_worker.ts", import.meta.url),
      { map },
      { message: () => {}, error: (error) => errors.push(error.message) },
    );
    worker.postMessage({ progress, keys: 20_000 } satisfies FillClearOrder);
    // Once it has cleared the map, killed a moment after a clear (most rounds) or in a fill.
    await until(() => Atomics.load(progress, 1) > 0 || errors.length > 0, "a clear", 60_000);
    assert.deepEqual(errors, []);
    await sleep(round * 3);
    worker.terminate();
    map.verify(); // at once: the worker's seat may still be in its release
    await until(() => map.stats().participants === 1, "the worker's seat is free", 10_000);
    map.verify();
    map.clear();
  }
  assert.equal(map.size, 0);
});
