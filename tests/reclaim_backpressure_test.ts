// Copyright the shmap authors. MIT license.
// Back-pressure (src/_engine/reclaim.ts, Participant's #awaitLaggards): a writer that finds the
// map full while another participant holds its retired blocks back waits for it, a millisecond
// at a time, up to 20 ms, before it throws MapFullError. The laggard here is a worker that
// stays online and reaches a quiescent point every 10 ms, as a worker the system deschedules in
// the middle of a call does with more busy workers than cores. Without the wait the writer's
// retired memory filled the map.

import assert from "node:assert/strict";
import { test } from "node:test";
import { MapFullError, SyncMap } from "../mod.ts";
import { Mailbox } from "./fixtures/adapter_harness.ts";
import { until } from "./fixtures/harness.ts";
import { startWorker } from "./fixtures/spawn.ts";

test("a writer held back by a lagging participant waits for it rather than find the map full", {
  timeout: 120_000,
}, async () => {
  const map = new SyncMap<number, string>({ maxBytes: 256 * 1024 });
  for (let k = 0; k < 8; k++) map.store(k, "first");
  const ctrl = new Int32Array(new SharedArrayBuffer(8));
  const box = new Mailbox();
  const worker = startWorker(new URL("./fixtures/laggard_worker.ts", import.meta.url), {
    message: box.put,
    error: box.fail,
  });
  try {
    worker.postMessage({ handle: map.handle, ctrl });
    await until(() => Atomics.load(ctrl, 0) === 1, "the laggard online", 30_000);
    let full = 0;
    const stores = 100_000;
    for (let i = 0; i < stores; i++) {
      try {
        map.store(i & 7, `value number ${i}`);
      } catch (error) {
        if (!(error instanceof MapFullError)) throw error;
        full++;
      }
    }
    Atomics.store(ctrl, 1, 1);
    Atomics.notify(ctrl, 1);
    assert.equal(await box.next(30_000), "done");
    assert.equal(full, 0, `${full} of ${stores} stores found the map full`);
    map.verify();
    assert.equal(map.load(7), `value number ${stores - 1}`);
  } finally {
    worker.terminate();
  }
});
