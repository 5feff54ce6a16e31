// Copyright the shmap authors. MIT license.
// Real worker pools kill workers in the middle of their map operations, and the maps come out
// exact. piscina and tinypool (its fork, which Vitest uses) terminate a worker when its task's
// abort signal fires: each task's first run gets one that fires 1-60 ms in, and the task is then
// run again to its end, as a caller retrying it would. tinypool with isolateWorkers (a fresh
// worker for every task, as Vitest runs it) too, the signal firing 0-20 ms after the first step. poolifier's aborts are cooperative (a
// synchronous task runs on), so its workers are terminated from outside while they run tasks, as
// a crash would end them, and a new pool runs the unfinished tasks again. The pools' workers attach by hand, and trackAll() is the only other
// thing the user adds. Afterwards the maps hold exactly what the tasks' steps, replayed on a
// plain Map, give; verify() passes on both; and bytesUsed is within a fresh map's holding the
// same entries.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Piscina } from "piscina";
import { FixedThreadPool } from "poolifier";
import { Tinypool } from "tinypool";
import { GoMap, Mutex, OwnerDeadError, SyncMap, TerminatedError } from "../mod.ts";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { GONE, stateOf, threadState } from "../src/_engine/census.ts";
import { trackAll } from "../src/workers/node.ts";
import { deadline, until } from "./fixtures/harness.ts";
import { diagnoseSyncMap, sharesOfEnded } from "./fixtures/map_diagnosis.ts";
import { runChild } from "./fixtures/child.ts";
import { runtime } from "./fixtures/spawn.ts";
import { type PoolTask, step } from "./fixtures/pool_task.ts";

const TASKS = 30;
const STEPS = 20_000;
const THREADS = 2;

/** What the test needs of piscina and tinypool: run a task, with an abort signal or none, and end. */
interface AbortingPool {
  run(task: PoolTask, options?: { signal: AbortSignal }): Promise<number>;
  destroy(): Promise<void>;
}

const filename = new URL("./fixtures/pool_task.ts", import.meta.url).href;
const abortingPools: Record<string, () => AbortingPool> = {
  piscina: () => new Piscina({ filename, minThreads: THREADS, maxThreads: THREADS }),
  tinypool: () => new Tinypool({ filename, minThreads: THREADS, maxThreads: THREADS }),
  // Vitest's way: every task on a fresh worker, the last one terminated as its task ends. Short
  // lives overlap other workers' looks at free seats (registry.ts claimFree, helper-168).
  "tinypool isolateWorkers": () =>
    new Tinypool({ filename, minThreads: THREADS, maxThreads: THREADS, isolateWorkers: true }),
};

// Under Deno 2.9, tinypool itself loses tasks once it has terminated a worker: a task given to a
// replacement is never run (its promise never settles), with no shmap call in the workers and no
// trackAll() (reproduced with a task module that only imports fast-check and counts). Bun and
// Node run tinypool; piscina runs everywhere.
const unsupported: Record<string, string | undefined> = {
  tinypool: runtime === "deno" ? "tinypool loses tasks under Deno after a terminate" : undefined,
  "tinypool isolateWorkers": runtime === "deno"
    ? "tinypool loses tasks under Deno after a terminate"
    : undefined,
};

for (const [name, makePool] of Object.entries(abortingPools)) {
  const afterStart = name.includes("isolateWorkers");
  const when = afterStart ? "0-20 ms after its first step" : "1-60 ms in";
  test(`${name}: ${TASKS} tasks, each first run aborted ${when}, then retried`, {
    timeout: 300_000,
    skip: unsupported[name],
  }, () => withPoolWorkers(name, (task) => abortedTasks(makePool, task, afterStart)));
}

test(`poolifier: ${TASKS} tasks, pools' workers terminated mid-task, unfinished tasks run again`, {
  timeout: 300_000,
}, () => withPoolWorkers("poolifier", killedPools));

// Deno (2.9) emits the process's `worker` event, which trackAll() listens on, late: after
// timers and the worker's own events (a pool's first workers were heard of some 80-300 ms after
// piscina had made them, and one of them after an abort signal had made piscina terminate it).
// A pool may therefore terminate a worker before trackAll() knows it. Here that moment is made
// certain: this thread blocks, never returning to its event loop, until the worker holds a lock,
// and terminates it then. Its end must still be declared, for its lock to be taken over.
test("a pool worker terminated before trackAll() hears of it: its end is still declared", async () => {
  trackAll();
  const mu = new Mutex();
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    fileURLToPath(new URL("./fixtures/pool_task_hold.ts", import.meta.url)),
    { workerData: { mu: mu.handle, flag } },
  );
  const id = worker.threadId;
  try {
    assert.notEqual(Atomics.wait(flag, 0, 0, 30_000), "timed-out", "the worker locked the mutex");
    await worker.terminate();
    if ("Deno" in globalThis) {
      // Deno's terminate() leaves it running, holding the lock: a thread that can still write
      // what the lock guards keeps it (src/_engine/os_thread.ts), past the grace too, until its
      // task returns and its thread ends.
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(mu.tryLock(), false, "the lock of a worker still running");
      Atomics.store(flag, 0, 2);
      Atomics.notify(flag, 0);
    }
    await until(() => {
      try {
        return mu.tryLock();
      } catch (error) {
        if (!(error instanceof OwnerDeadError)) throw error;
        mu.markConsistent();
        return true;
      }
    }, () => `the lock of thread ${id} is taken over (its census state: ${stateOf(id)})`);
    mu.unlock();
    await until(() => stateOf(id) === GONE, () => `thread ${id} is gone (${stateOf(id)})`);
  } finally {
    Atomics.store(flag, 0, 2);
    Atomics.notify(flag, 0);
  }
});

test("workers terminated before trackAll() hears of them are passed over without an error", async () => {
  // Deno keeps an exited worker's threadId readable: trackAll()'s listener, coming late, would
  // track an exited worker, and throw, uncaught, from the process's event.
  const script = new URL("./fixtures/track_all_early_exit.ts", import.meta.url);
  const { code, stdout, stderr, timedOut } = await runChild(script, [], 30_000);
  assert.equal(timedOut, false);
  assert.equal(code, 0, `${stdout}${stderr}`);
  assert.match(stdout, /ended normally/);
});

/** Whether a task failed because its worker was terminated under it (tinypool's words). */
function killedWithItsWorker(error: unknown): boolean {
  return error instanceof Error && error.message === "Terminating worker thread";
}

/** Whether a task failed because its worker, told to terminate, met its next shmap call. */
function terminatedUnder(error: unknown): boolean {
  return error instanceof Error && error.message === new TerminatedError().message;
}

/** Task `t`, as posted to a pool: the maps' handles, its number and its progress word. */
type TaskOf = (t: number) => PoolTask;

/** What a pool run reports: tasks killed, and of those, how many midway through their steps. */
interface Kills {
  killed: number;
  midway: number;
}

/**
 * An abort signal that fires 1-60 ms from now, or, `afterStart`, 0-20 ms after task `t` has
 * made its first step (a pool that starts a worker for each task: on Node, starting one takes
 * longer than 60 ms, and every abort would land before the task began).
 */
function abortSoon(task: PoolTask, afterStart: boolean): AbortSignal {
  if (!afterStart) return AbortSignal.timeout(1 + Math.floor(Math.random() * 60));
  const controller = new AbortController();
  const started = performance.now();
  const poll = setInterval(() => {
    // Given up after 10 s: a task that never started is the pool's failure, which run() reports.
    if (Atomics.load(task.progress, task.t) === 0 && performance.now() - started < 10_000) return;
    clearInterval(poll);
    setTimeout(() => controller.abort(), Math.random() * 20);
  }, 1);
  return controller.signal;
}

/**
 * Each task's first run aborted 1-60 ms in (`afterStart`: 0-20 ms after its first step), in
 * waves of THREADS, then retried to its end.
 */
async function abortedTasks(
  makePool: () => AbortingPool,
  task: TaskOf,
  afterStart: boolean,
): Promise<Kills> {
  const kills = { killed: 0, midway: 0 };
  const pool = makePool();
  try {
    // In waves of THREADS, so that each timer runs while its task does.
    for (let first = 0; first < TASKS; first += THREADS) {
      const wave = [];
      for (let t = first; t < Math.min(TASKS, first + THREADS); t++) {
        wave.push((async () => {
          try {
            await pool.run(task(t), {
              signal: abortSoon(task(t), afterStart),
            });
          } catch (error) {
            // tinypool may also give a first run to a worker it is terminating (one whose
            // TerminatedError reply for an aborted task came in before it ended), as it may a
            // retry (below): that run is killed as an aborted one is.
            const killed = (error as Error).name === "AbortError" || killedWithItsWorker(error) ||
              terminatedUnder(error);
            if (!killed) throw error;
            countKill(kills, task(t));
            // Retried until it runs to its end: tinypool may give a retry to a worker that is
            // busy with the other task of the wave, and an abort of that task terminates the
            // worker, retry and all.
            for (let attempt = 1;; attempt++) {
              try {
                assert.equal(await pool.run(task(t)), STEPS);
                break;
              } catch (error) {
                const killed = killedWithItsWorker(error) || terminatedUnder(error);
                if (!killed || attempt === 5) throw error;
              }
            }
          }
        })());
      }
      await Promise.all(wave);
    }
  } finally {
    await pool.destroy();
  }
  return kills;
}

/**
 * Pools of THREADS poolifier workers, each given the unfinished tasks and killed while they run
 * them: once a task is under way, and 0-20 ms later, the pool is told to stop (so that it starts
 * no replacement) and its workers are terminated, as a crash or an out-of-memory kill would end
 * them (poolifier's own aborts are cooperative, and its destroy() lets a synchronous task run to
 * its end). A task killed so never settles; the next pool runs it again. The last pool runs
 * what is left to its end.
 */
async function killedPools(task: TaskOf): Promise<Kills> {
  const kills = { killed: 0, midway: 0 };
  const workerFile = fileURLToPath(new URL("./fixtures/pool_task_poolifier.ts", import.meta.url));
  const finished = new Set<number>();
  const failures: unknown[] = [];
  let started: Worker[] = [];
  const onWorker = (worker: Worker): void => void started.push(worker);
  process.on("worker", onWorker);
  try {
    for (let round = 0; finished.size < TASKS; round++) {
      const last = round >= 4;
      started = [];
      const pool = new FixedThreadPool<PoolTask, number>(THREADS, workerFile);
      const runs = [];
      for (let t = 0; t < TASKS; t++) {
        if (finished.has(t)) continue;
        Atomics.store(task(t).progress, t, 0);
        runs.push(
          pool.execute(task(t)).then((n) => {
            assert.equal(n, STEPS);
            finished.add(t);
          }, (error) => {
            // A worker told to terminate stops at its next shmap call with TerminatedError, and
            // poolifier may pass that on as the task's failure before the worker is gone. Any
            // other failure, or one in the last pool (which kills nothing), fails the test.
            if (last || !terminatedUnder(error)) failures.push(error);
          }),
        );
      }
      if (last) {
        await Promise.all(runs);
        // Bounded, so that a destroy() that never settles fails the test instead of hanging
        // it: see why its workers are kept alive in pool_task_poolifier.ts.
        await deadline(pool.destroy(), 30_000, "the last poolifier pool's destroy()");
        break;
      }
      const progress = task(0).progress;
      await until(
        () => progress.some((done) => done > 0 && done < STEPS),
        () => "a poolifier task under way",
      );
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 20));
      const destroyed = pool.destroy().catch(() => {});
      await Promise.all(started.map((w) => w.terminate()));
      // destroy() waits for answers the terminated workers never give: not past a bound.
      await Promise.race([destroyed, new Promise((resolve) => setTimeout(resolve, 200))]);
      for (let t = 0; t < TASKS; t++) if (!finished.has(t)) countKill(kills, task(t));
    }
    if (failures.length > 0) throw failures[0];
  } finally {
    process.off("worker", onWorker);
  }
  return kills;
}

/** Counts task `task`'s run as killed, and as killed midway if it had begun its steps. */
function countKill(kills: Kills, task: PoolTask): void {
  kills.killed++;
  const done = Atomics.load(task.progress, task.t);
  if (done > 0 && done < STEPS) kills.midway++;
}

/**
 * Makes a SyncMap, a GoMap and its Mutex, tracks every worker the process starts, runs `drive`
 * on them, and then checks that the maps hold exactly what the tasks' steps give.
 */
async function withPoolWorkers(
  name: string,
  drive: (task: TaskOf) => Promise<Kills>,
): Promise<void> {
  trackAll();
  const threads: number[] = [];
  const onWorker = (worker: Worker): void => void threads.push(worker.threadId);
  process.on("worker", onWorker);
  const s = new SyncMap<number, number>();
  const g = new GoMap<number, number>();
  const mu = new Mutex();
  const progress = new Int32Array(new SharedArrayBuffer(4 * TASKS));
  const task = (t: number): PoolTask => ({
    s: s.handle,
    g: g.handle,
    mu: mu.handle,
    t,
    n: STEPS,
    progress,
  });
  let kills: Kills;
  try {
    kills = await drive(task);
  } finally {
    process.off("worker", onWorker);
  }
  // Every worker the pools started has ended: terminated by them or by killedPools(), however
  // early (see the test above), or ended by itself. Deno's adapter declares a terminated worker
  // gone after a grace period (it may still run).
  const pending = (): number[] => threads.filter((id) => stateOf(id) !== GONE);
  await until(
    () => pending().length === 0,
    () =>
      `every pool worker is gone (not yet: ${
        pending().map((id) =>
          `thread ${id}, census state ${stateOf(id)}, OS thread state ${threadState(id)}`
        )
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
    `[${runtime}] ${name}: ${kills.killed} runs of ${TASKS} tasks killed, ${kills.midway} of ` +
      `them midway through their steps; bytesUsed ${used}, ${before} before going offline ` +
      `(fresh: ${fresh.stats().bytesUsed})`,
  );
  assert.ok(kills.midway > 0, "some worker was killed in the middle of its map operations");
}
