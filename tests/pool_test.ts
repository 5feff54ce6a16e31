// Copyright the shmap authors. MIT license.
// A real worker pool (piscina) whose tasks time out: each task's first run gets an abort signal
// that fires 1-60 ms in, and piscina terminates the worker running it, in the middle of its map
// operations; the task is then run again to its end, as a caller retrying it would. The pool's
// workers attach by hand, and trackAll() is the only other thing the user adds. Afterwards the
// maps hold exactly what the tasks' steps, replayed on a plain Map, give; verify() passes on
// both; and bytesUsed is within a fresh map's holding the same entries.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Piscina } from "piscina";
import { GoMap, Mutex, OwnerDeadError, SyncMap } from "../mod.ts";
import process from "node:process";
import type { Worker } from "node:worker_threads";
import { GONE, stateOf, TERMINATING } from "../src/_engine/census.ts";
import { trackAll } from "../src/workers/node.ts";
import { until } from "./fixtures/harness.ts";
import { diagnoseSyncMap, sharesOfEnded } from "./fixtures/map_diagnosis.ts";
import { runtime } from "./fixtures/spawn.ts";
import { type PoolTask, step } from "./fixtures/pool_task.ts";

const TASKS = 30;
const STEPS = 20_000;
const THREADS = 2;

test(`piscina: ${TASKS} tasks, each first run aborted 1-60 ms in, then retried`, {
  timeout: 300_000,
}, async () => {
  trackAll();
  const threads: number[] = [];
  const exited = new Set<number>();
  const onWorker = (worker: Worker): void => {
    const id = worker.threadId;
    threads.push(id);
    worker.once("exit", () => exited.add(id));
  };
  process.on("worker", onWorker);
  const s = new SyncMap<number, number>();
  const g = new GoMap<number, number>();
  const mu = new Mutex();
  const progress = new Int32Array(new SharedArrayBuffer(4 * TASKS));
  const pool = new Piscina({
    filename: new URL("./fixtures/pool_task.ts", import.meta.url).href,
    minThreads: THREADS,
    maxThreads: THREADS,
  });
  let killedMidway = 0;
  let aborted = 0;
  try {
    const task = (t: number): PoolTask => ({
      s: s.handle,
      g: g.handle,
      mu: mu.handle,
      t,
      n: STEPS,
      progress,
    });
    // In waves of THREADS, so that each timer runs while its task does.
    for (let first = 0; first < TASKS; first += THREADS) {
      const wave = [];
      for (let t = first; t < Math.min(TASKS, first + THREADS); t++) {
        wave.push((async () => {
          try {
            await pool.run(task(t), {
              signal: AbortSignal.timeout(1 + Math.floor(Math.random() * 60)),
            });
          } catch (error) {
            if ((error as Error).name !== "AbortError") throw error;
            aborted++;
            const done = Atomics.load(progress, t);
            if (done > 0 && done < STEPS) killedMidway++;
            assert.equal(await pool.run(task(t)), STEPS);
          }
        })());
      }
      await Promise.all(wave);
    }
  } finally {
    await pool.destroy();
    process.off("worker", onWorker);
  }
  // Deno's adapter declares a terminated worker gone after a grace period (it may still run).
  // (Under Deno, piscina's destroy() sometimes leaves a worker running: alive and idle, it is
  // neither terminated nor gone, and holds nothing back.)
  const pending = (): number[] =>
    threads.filter((id) => stateOf(id) === TERMINATING || (exited.has(id) && stateOf(id) !== GONE));
  await until(
    () => pending().length === 0,
    () =>
      `every ended pool worker is gone (not yet: ${
        pending().map((id) => `thread ${id}, census state ${stateOf(id)}`)
      })`,
  );
  // The model: every task's steps, on plain Maps.
  const model = new Map<number, number>();
  for (let t = 0; t < TASKS; t++) {
    for (let j = 0; j < STEPS; j++) {
      const { key, value } = step(t, j);
      if (value === undefined) model.delete(key);
      else model.set(key, value);
    }
  }
  // verify() releases the shares of pool workers that are gone (a reclamation step does), and
  // then none may be left: a share still held, or still releasing, holds reclamation back.
  s.verify();
  await until(
    () => sharesOfEnded(s.handle.buffer) === 0,
    () => `every pool worker's share is released (${diagnoseSyncMap(s.handle.buffer)})`,
  );
  try {
    mu.lock();
  } catch (error) {
    if (!(error instanceof OwnerDeadError)) throw error;
    mu.markConsistent();
  }
  try {
    g.verify();
    assert.deepEqual(new Map(g), model, "the GoMap holds exactly what the tasks wrote");
  } finally {
    mu.unlock();
  }
  const got = new Map<number, number>();
  s.range((k, v) => {
    got.set(k, v);
    return true;
  });
  assert.deepEqual(got, model, "the SyncMap holds exactly what the tasks wrote");
  assert.equal(s.stats().count, model.size);
  const fresh = new SyncMap<number, number>();
  for (const [k, v] of model) fresh.store(k, v);
  // The dead workers' retire lists, released above, are freed at this thread's next quiescent
  // point: when it goes offline at the end of this task (Participant's #offline).
  const before = s.stats().bytesUsed;
  await new Promise((resolve) => setTimeout(resolve, 0));
  const used = s.stats().bytesUsed;
  assert.ok(
    used <= 2 * fresh.stats().bytesUsed + 64 * 1024,
    `bytesUsed ${used} (${before} before this thread went offline); a fresh map with the same ` +
      `entries uses ${fresh.stats().bytesUsed}; ${diagnoseSyncMap(s.handle.buffer)}`,
  );
  console.log(
    `[${runtime}] piscina: ${aborted} of ${TASKS} first runs aborted, ${killedMidway} of them ` +
      `midway through their steps; bytesUsed ${used}, ${before} before going offline ` +
      `(fresh: ${fresh.stats().bytesUsed})`,
  );
  assert.ok(killedMidway > 0, "some worker was killed in the middle of its map operations");
});
