// Copyright the shmap authors. MIT license.
// A tracked worker's terminate() marks the thread terminating just before it asks the runtime to
// stop it. A call the worker makes in between sees the mark. On Node and Bun it must wait there
// for the stop, not throw: the TerminatedError would end the worker as an uncaught error, which
// the runtime still delivers to the parent as an `error` event after terminate() (a CI run of
// rw_seat_of_killed_test crashed so on Node). On Deno the worker ends itself
// quietly (census.ts stop). The window is widened here: the mark is written, and terminate()
// called about 40 ms later.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Worker } from "node:worker_threads";
import { RWMutex, SyncMap } from "../mod.ts";
import { markTerminating } from "../src/_engine/census.ts";
import { track } from "../src/workers/node.ts";
import { sleep, until } from "./fixtures/harness.ts";

const url = new URL("./fixtures/marked_spin_worker.ts", import.meta.url);

describe("a worker that sees its terminate mark before the runtime stops it", () => {
  for (const kind of ["RWMutex.rLock", "SyncMap.store", "SyncMap.load"] as const) {
    test(`${kind}: waits for the stop, with no error event`, async () => {
      const rw = new RWMutex();
      const map = new SyncMap<number, number>();
      const ctrl = new Int32Array(new SharedArrayBuffer(8));
      const worker = new Worker(url, {
        workerData: { kind, rw: rw.handle, map: map.handle, ctrl },
      });
      track(worker);
      const errors: unknown[] = [];
      worker.on("error", (error) => errors.push(error));
      let exited = false;
      worker.once("exit", () => exited = true);
      try {
        await until(() => Atomics.load(ctrl, 0) > 1000, "the worker loops", 30_000);
        markTerminating(worker.threadId);
        await sleep(20);
        // It stopped at its next call, at once: no rounds in the next 20 ms. (It waits up to
        // 200 ms there: terminate() comes well within that.)
        const rounds = Atomics.load(ctrl, 0);
        await sleep(20);
        assert.equal(Atomics.load(ctrl, 0), rounds, "the worker ran on after its mark");
        await worker.terminate();
        await until(() => exited, "the worker's exit", 10_000);
        assert.deepEqual(errors.map(String), []);
        // What it held is free: a writer gets in, and the map takes a store.
        assert.equal(rw.tryLock(), true);
        rw.unlock();
        map.store(1, 1);
        assert.equal(map.load(1), 1);
      } finally {
        await worker.terminate();
        map.close();
      }
    });
  }
});
