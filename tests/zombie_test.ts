// Copyright the shmap authors. MIT license.
// A thread marked terminating (as every adapter's terminate() marks its worker, and as Deno
// leaves a worker that spins in synchronous code running: a zombie) stops at its next call of
// every hot path, with TerminatedError, instead of touching shared memory again. Each hot path
// writes the census check out (census.ts, `fast`), so each is checked on its own, in a real
// worker that is running the path in a loop when it is marked.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { record, TERMINATING } from "../src/_engine/census.ts";
import { POISONED } from "../src/_engine/futex.ts";
import { OwnerDeadError } from "../src/errors.ts";
import { QUIESCE_EVERY } from "../src/_engine/reclaim.ts";
import { GoMap } from "../src/maps/go_map.ts";
import { SyncMap } from "../src/maps/sync_map.ts";
import { Mutex } from "../src/sync/mutex.ts";
import { RWMutex } from "../src/sync/rw_mutex.ts";
import { threadGone } from "../src/threads.ts";
import type { ZombiePath, ZombieReply, ZombieRequest } from "./fixtures/zombie_worker.ts";
import type {
  ZombieStep,
  ZombieStepReply,
  ZombieStepRequest,
} from "./fixtures/zombie_step_worker.ts";
import { until } from "./fixtures/harness.ts";
import { runtime, startWorker } from "./fixtures/spawn.ts";
import { spawn as nodeSpawn } from "../src/workers/node.ts";

const onDeno = "Deno" in globalThis && !("Bun" in globalThis);
// Mutex.lock checks the census only where terminate() can leave a thread running JavaScript:
// in Deno's and Bun's workers (census.ts, mayRunTerminated). On Node a worker marked terminating
// is one terminate() has stopped: none runs on marked, as this test's worker does. Bun's terminate()
// lets a worker run on only after a long native call: tests/terminated_in_native_call_test.ts.
const PATHS: ZombiePath[] = [
  "SyncMap.store",
  "SyncMap.load",
  ...(runtime !== "node" ? ["Mutex.lock" as const] : []),
  "Mutex+GoMap.set",
  "RWMutex.rLock",
  // A worker's write lock checks the census on every runtime (rw_mutex.ts), as its read lock
  // does: its fast path, from the object's owner word, is a main thread's without the check.
  "RWMutex.lock",
];

describe("a worker marked terminating stops at its next call", () => {
  for (const [path, waitForMark] of PATHS.flatMap((p) => [[p, false], [p, true]] as const)) {
    const name = waitForMark ? `${path}, its first call after the mark` : `${path}, in a loop`;
    it(name, { timeout: 60_000 }, async () => {
      const sync = new SyncMap<number, number>();
      for (let i = 0; i < 64; i++) sync.store(i, i);
      // Misses promote the keys into the read table: the worker's stores are then lock-free
      // (in the dirty table only, each would take the mutex, whose own check would stop it).
      for (let i = 0; i < 128; i++) sync.load(-1);
      assert.equal(sync.stats().dirtyKeys, -1, "every key in the read table");
      const go = new GoMap<number, number>();
      const mu = new Mutex();
      const rw = new RWMutex();
      const ctrl = new Int32Array(new SharedArrayBuffer(16));
      const { promise, resolve, reject } = Promise.withResolvers<ZombieReply>();
      const worker = startWorker(new URL("./fixtures/zombie_worker.ts", import.meta.url), {
        message: (data) => resolve(data as ZombieReply),
        error: reject,
      });
      try {
        worker.postMessage(
          {
            path,
            ctrl,
            syncMap: sync.handle,
            goMap: go.handle,
            mutex: mu.handle,
            rwMutex: rw.handle,
            waitForMark,
          } satisfies ZombieRequest,
        );
        await until(() => Atomics.load(ctrl, 0) !== 0, "the worker runs its path", 30_000);
        const threadId = Atomics.load(ctrl, 0) - 1;
        record(threadId, TERMINATING);
        Atomics.store(ctrl, 2, 1);
        Atomics.notify(ctrl, 2);
        const reply = await promise;
        assert.equal(reply.error, "TerminatedError", `after ${reply.calls} calls`);
        // The very next call stops, on every path that writes; a load, which checks at its
        // quiescent points only (Participant.enterRead), within QUIESCE_EVERY calls.
        const bound = path === "SyncMap.load" ? QUIESCE_EVERY : 0;
        assert.ok(reply.after <= bound, `${reply.after} calls returned after the mark`);
        // Everything it used is whole and free: it stopped before touching shared memory.
        const stopped = worker.stopped(100);
        worker.terminate();
        await stopped;
        threadGone(threadId);
        sync.verify();
        go.verify();
        for (const lock of [mu, rw]) {
          let taken: boolean;
          try {
            taken = lock.tryLock();
          } catch (error) {
            // Stopped inside its section (at the GoMap set), the worker's `finally` released the
            // lock poisoned (tests/zombie_unlock_test.ts).
            assert.ok(error instanceof OwnerDeadError, String(error));
            assert.equal(lock === mu && path === "Mutex+GoMap.set", true, `${path}: ${error}`);
            lock.markConsistent();
            taken = true;
          }
          assert.equal(taken, true);
          lock.unlock();
        }
      } finally {
        worker.terminate();
      }
    });
  }
});

// A zombie may be inside a long engine call when it is marked: a collect freeing a backlog of
// thousands of retirements, a flush of its cache, a sweep's frees, a dirty table's rebuild. It
// must stop there too, at its next free, allocator step or step under the mutex, long before the
// grace after which the others take its locks over and its seat is released: one that ran on
// past the grace wrote into an allocator step another thread had taken over (the pool test saw
// a corrupt heap). A step whose commit has begun has taken effect, though: it returns, and what
// is left of its commit is finished by the mutex's next holder (its caller would otherwise free
// what it published).
describe("a worker marked terminating inside a long engine call stops at its next step", () => {
  const stops: { step: ZombieStep; done: number; what: string }[] = [
    { step: "collect", done: 1, what: "tags freed: none after the one whose free marked it" },
    { step: "collect, seat releasing", done: 1, what: "tags freed: as for collect" },
    { step: "allocator step", done: 0, what: "steps run: none" },
    { step: "mutex step", done: 0, what: "steps run: none" },
  ];
  for (const { step, done, what } of stops) {
    it(step, { timeout: 60_000 }, async () => {
      const reply = await runStep(step);
      assert.equal(reply.error, "TerminatedError");
      assert.equal(reply.done, done, what);
      assert.deepEqual([reply.lock, reply.mutex], [0, 0], "the allocator lock and mutex are free");
      // Stopped between two frees, it holds nothing in hand: the hand word, raised for the
      // collect, is lowered as it stops, and its death needs no sweep (Participant's
      // #aliveBetweenFrees).
      // Also when the seat's release has begun (its claim word RELEASING, the grace running).
      if (step.startsWith("collect")) assert.equal(reply.hand, 0, "the hand word lowered");
      // Inside a step it stops at once. (At a call's start, on Node and Bun, it waits up to 200
      // ms for a terminate() under way, census.ts awaitTerminate: asleep inside a step, with
      // the engine's lock, it would be taken over after the grace while alive.)
      if (step !== "mutex step") {
        assert.ok(
          reply.stoppedMs >= 0 && reply.stoppedMs < 150,
          `stopped ${reply.stoppedMs} ms on`,
        );
      }
    });
  }

  it("GoMap clear: the zombie stops before its next bucket, the next writer finishes", {
    timeout: 60_000,
  }, async () => {
    const go = new GoMap<number, number>();
    for (let i = 0; i < 4096; i++) go.set(i, i);
    const buckets = go.stats().buckets;
    const reply = await runStep("clear", new SyncMap<number, number>(), go);
    assert.equal(reply.error, "TerminatedError");
    assert.equal(reply.done, 1, `buckets emptied of ${buckets}: none after the one that marked it`);
    assert.ok(reply.stoppedMs >= 0 && reply.stoppedMs < 150, `stopped ${reply.stoppedMs} ms on`);
    // The clear was cut short between steps: the next write finishes it from its intent.
    go.set(-1, -1);
    go.verify();
    assert.deepEqual([...go], [[-1, -1]]);
  });

  it("but a step whose commit began returns, and its commit is finished", {
    timeout: 60_000,
  }, async () => {
    const map = new SyncMap<number, number>();
    const reply = await runStep("commit", map);
    // The commit's deferred free met the check, so the step went no further: it is left to the
    // mutex's next holder, released poisoned. The caller still gets the result: the step had
    // taken effect (a store's caller would otherwise free the record it had just published).
    assert.equal(reply.error, "none", "the step took effect: it returns");
    assert.equal(reply.done, 42);
    assert.equal(reply.lock, 0, "the allocator lock is free");
    assert.equal(reply.mutex, POISONED, "the mutex is free, poisoned for its next holder");
    assert.ok(reply.leftover > 0, "the block the commit frees is not freed yet");
    // The next holder (this store) rolls the commit forward: the block is freed, and no block
    // is left that nothing reaches.
    map.store(1, 1);
    map.verify();
  });
});

/** Runs `step` in a worker of its own, on a map of its own, which is dropped unswept. */
async function runStep(
  step: ZombieStep,
  map = new SyncMap<number, number>(),
  go?: GoMap<number, number>,
): Promise<ZombieStepReply> {
  const { promise, resolve, reject } = Promise.withResolvers<ZombieStepReply>();
  const worker = startWorker(new URL("./fixtures/zombie_step_worker.ts", import.meta.url), {
    message: (data) => resolve(data as ZombieStepReply),
    error: reject,
  });
  try {
    worker.postMessage({ step, map: map.handle, go: go?.handle } satisfies ZombieStepRequest);
    return await promise;
  } finally {
    worker.terminate();
  }
}

// A read (load, loadOk, has) does not check the census as it begins (Participant.enterRead):
// a thread declared gone is stopped by its seat's claim check once its seat is released, with
// the error the census check would have thrown, not the TypeError of a released share.
describe("a worker declared gone whose seat was released", () => {
  it("stops at its next load with TerminatedError", { timeout: 60_000 }, async () => {
    const sync = new SyncMap<number, number>();
    for (let i = 0; i < 64; i++) sync.store(i, i);
    const ctrl = new Int32Array(new SharedArrayBuffer(16));
    const { promise, resolve, reject } = Promise.withResolvers<ZombieReply>();
    const worker = startWorker(new URL("./fixtures/zombie_worker.ts", import.meta.url), {
      message: (data) => resolve(data as ZombieReply),
      error: reject,
    });
    try {
      const handles = { goMap: new GoMap().handle, mutex: new Mutex().handle };
      worker.postMessage(
        {
          path: "SyncMap.load once released",
          ctrl,
          syncMap: sync.handle,
          rwMutex: new RWMutex().handle,
          waitForMark: false,
          ...handles,
        } satisfies ZombieRequest,
      );
      await until(() => Atomics.load(ctrl, 0) !== 0, "the worker loads", 30_000);
      assert.equal(sync.stats().participants, 2);
      threadGone(Atomics.load(ctrl, 0) - 1);
      // Reaped at this thread's next quiescent point (one call in 64).
      for (let i = 0; i < 200; i++) sync.load(i & 63);
      assert.equal(sync.stats().participants, 1, "its seat is released");
      Atomics.store(ctrl, 1, 1);
      Atomics.notify(ctrl, 1);
      assert.equal((await promise).error, "TerminatedError");
      sync.verify();
    } finally {
      worker.terminate();
    }
  });
});

// Deno only: Node's and Bun's terminate() stop the worker themselves.
if (onDeno) {
  describe("Deno: a terminated node:worker_threads worker exits at its next call", () => {
    // Deno's terminate() lets it run to the end of its task; what it would do after a
    // TerminatedError (a pool's worker posting the result of the task it was terminated in)
    // would reach its parent, so it exits instead, as Node's terminate() stops it.
    /**
     * Starts fixtures/zombie_node_worker.ts on `values` (a map to store into, or a mutex to lock),
     * lets it count past `warm`, terminates it, and checks that it exited: it stopped counting
     * and never saw the TerminatedError.
     */
    async function terminated(
      values: { map: SyncMap<number, number> } | { mu: Mutex },
      warm: number,
    ) {
      const ctrl = new Int32Array(new SharedArrayBuffer(8));
      const url = new URL("./fixtures/zombie_node_worker.ts", import.meta.url);
      const worker = nodeSpawn(url, values, { workerData: ctrl });
      await until(() => Atomics.load(ctrl, 0) > warm, "the worker's count", 30_000);
      worker.terminate(); // marks it terminating first (the adapter's wrapper)
      await new Promise((resolve) => setTimeout(resolve, 300));
      const count = Atomics.load(ctrl, 0);
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(Atomics.load(ctrl, 1), 0, "it never saw the TerminatedError: it exited");
      assert.equal(Atomics.load(ctrl, 0), count, "nothing runs in it any more");
    }

    it("stops counting, and never reports a TerminatedError", { timeout: 60_000 }, async () => {
      const map = new SyncMap<number, number>();
      await terminated({ map }, 1000);
      await new Promise((resolve) => setTimeout(resolve, 300)); // the grace
      map.verify();
      assert.equal(map.stats().participants, 1, "its seat is released");
    });

    // Its `lock` is the checking one (census.ts mayRunTerminated: a worker, not on Node): with
    // the bare compare-exchange it would lock and unlock on for good after terminate().
    it("stops at its next Mutex.lock, and leaves the mutex free", { timeout: 60_000 }, async () => {
      const mu = new Mutex();
      await terminated({ mu }, 100_000);
      assert.equal(mu.poisoned, false, "it stopped between two critical sections");
      assert.equal(mu.tryLock(), true, "the mutex is free");
      mu.unlock();
    });
  });
}
