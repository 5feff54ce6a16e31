// Copyright the shmap authors. MIT license.
// A thread waiting in lock() gets the lock while other threads take it in a loop, as in Go,
// whose sync.Mutex hands the lock to a waiter that has waited 1 ms (starvation mode): here a
// fair locker that has waited STARVE_MS gets the next turn (futex.ts, STARVING). Before it,
// the thread that unlocked took the lock again at once nearly every time: a main thread's
// lock() waited up to 5 to 20 s behind two workers holding the lock 2 ms a turn, and one
// worker could take 16,000 turns to the other's 40 (helper-176). The bound here is for
// liveness, many times what the waits take (a few ms), not for speed.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Worker } from "node:worker_threads";
import { Mutex, RWMutex } from "../mod.ts";
import { track } from "../src/workers/node.ts";

const url = new URL("./fixtures/lock_loop_worker.ts", import.meta.url);
/** A wait past this is starvation, not a slow machine: the waits take a few ms. */
const STARVED_MS = 2000;

async function loopers(lock: Mutex | RWMutex, ctrl: Int32Array, n: number): Promise<Worker[]> {
  const workers: Worker[] = [];
  for (let index = 0; index < n; index++) {
    const worker = new Worker(url, {
      workerData: { handle: lock.handle, holdMs: 2, ctrl, index },
    });
    track(worker);
    workers.push(worker);
  }
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once("message", resolve))));
  return workers;
}

async function stop(workers: Worker[], ctrl: Int32Array): Promise<void> {
  Atomics.store(ctrl, 0, 1);
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once("exit", resolve))));
}

describe("a waiter is not starved by threads that take the lock in a loop", () => {
  for (const kind of ["Mutex", "RWMutex write lock"] as const) {
    test(kind, async () => {
      const lock = kind === "Mutex" ? new Mutex() : new RWMutex();
      const ctrl = new Int32Array(new SharedArrayBuffer(16));
      const workers = await loopers(lock, ctrl, 2);
      const waits: number[] = [];
      try {
        // Both workers busy in their loops before the first wait.
        while (Atomics.load(ctrl, 1) < 5 || Atomics.load(ctrl, 2) < 5) {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        for (let i = 0; i < 20; i++) {
          const t0 = performance.now();
          lock.lock();
          waits.push(performance.now() - t0);
          lock.unlock();
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        // The workers take turns with each other too.
        const turns = [Atomics.load(ctrl, 1), Atomics.load(ctrl, 2)];
        await new Promise((resolve) => setTimeout(resolve, 200));
        const later = [Atomics.load(ctrl, 1) - turns[0], Atomics.load(ctrl, 2) - turns[1]];
        assert.ok(later[0] > 0 && later[1] > 0, `each worker got turns in 200 ms: ${later}`);
      } finally {
        await stop(workers, ctrl);
      }
      const longest = Math.max(...waits);
      assert.ok(longest < STARVED_MS, `a lock() waited ${longest.toFixed(0)} ms`);
    });
  }
});
