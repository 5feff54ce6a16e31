// Copyright the shmap authors. MIT license.
// The reader seat of a worker killed while it read-locked an RWMutex goes to the next thread's
// first rLock, at once after terminate() or later, whether the killed reader spun on rLock and
// rUnlock or slept holding a read lock. With one seat, the claim used to throw RangeError ("all
// belong to live threads") when the dead reader was declared gone between its look at the seats
// and its reap, and, on Deno, whenever the reader was asleep (helper-176: Node 7 of 7, Bun 23 of
// 23, Deno 13 of 13 runs).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Worker } from "node:worker_threads";
import { RWMutex } from "../mod.ts";
import { track } from "../src/workers/node.ts";
import { deadline } from "./fixtures/harness.ts";

const url = new URL("./fixtures/reader_seat_worker.ts", import.meta.url);

function reader(rw: RWMutex, mode: "asleep" | "spin" | "claim", ctrl: Int32Array): Worker {
  const worker = new Worker(url, { workerData: { handle: rw.handle, mode, ctrl } });
  track(worker);
  return worker;
}

/** Waits, without blocking this thread's event loop, until ctrl[0] is set. */
async function started(ctrl: Int32Array): Promise<void> {
  const until = performance.now() + 30_000;
  while (Atomics.load(ctrl, 0) === 0) {
    if (performance.now() > until) throw new Error("the reader never started");
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

describe("the reader seat of a killed reader", () => {
  for (const mode of ["spin", "asleep"] as const) {
    for (const delayMs of [0, 600]) {
      test(`goes to the next thread's first rLock (${mode}, claimed ${delayMs} ms after the kill)`, async () => {
        for (let round = 0; round < 3; round++) {
          const rw = new RWMutex({ maxReaderThreads: 1 });
          const ctrl = new Int32Array(new SharedArrayBuffer(16));
          const killed = reader(rw, mode, ctrl);
          await started(ctrl);
          if (mode === "spin") {
            // Killed while it loops on rLock and rUnlock: a few rounds in.
            const at = Atomics.load(ctrl, 2);
            while (Atomics.load(ctrl, 2) < at + 100) await new Promise((r) => setTimeout(r, 1));
          }
          await killed.terminate();
          if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
          const claimer = reader(rw, "claim", ctrl);
          const reply = await deadline(
            new Promise<{ ok?: true; error?: string }>((resolve, reject) => {
              claimer.once("message", resolve);
              claimer.once("error", reject);
            }),
            30_000,
            "the claimer's rLock",
          );
          await claimer.terminate();
          assert.deepEqual(reply, { ok: true }, `round ${round}`);
          // The dead reader's read lock was taken out with its seat: a writer gets in.
          assert.equal(rw.tryLock(), true);
          rw.unlock();
        }
      });
    }
  }
});
