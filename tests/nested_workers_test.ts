// Copyright the shmap authors. MIT license.
// A worker started inside another worker (a nested worker) is watched by that worker alone, and
// the runtime ends it with that worker, whose watch then never runs. The census records who
// watches whom (census.ts, CHILD), so the nested worker counts as terminating once its watcher
// is: a lock it held is taken over after the grace, its SyncMap seat is given back, and if it
// still runs (a Deno worker spinning in synchronous code) it stops at its next call. Each case
// runs the runtime's own adapter at both levels: main → mid → leaf.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { OwnerDeadError } from "../src/errors.ts";
import { SyncMap } from "../src/maps/sync_map.ts";
import { Mutex } from "../src/sync/mutex.ts";
import { sleep, until } from "./fixtures/harness.ts";
import type { LeafOrder } from "./fixtures/nested_leaf_worker.ts";
import { runtime, spawnWorker, type TestWorker } from "./fixtures/spawn.ts";

interface Nest {
  readonly map: SyncMap<string, number>;
  readonly mu: Mutex;
  readonly ctrl: Int32Array;
  readonly mid: TestWorker;
  /** The leaf's thread id. */
  readonly leaf: number;
  /** Whether the middle worker has said it is about to block. */
  readonly midBlocking: () => boolean;
}

/** Starts main → mid → leaf, gives the leaf `mode`, and waits until it is under way. */
async function nest(mode: LeafOrder["mode"], underWay: (ctrl: Int32Array) => boolean) {
  const map = new SyncMap<string, number>();
  const mu = new Mutex();
  const ctrl = new Int32Array(new SharedArrayBuffer(32));
  const errors: string[] = [];
  let leafReady = false;
  let midBlocking = false;
  const mid = spawnWorker(new URL("./fixtures/nested_mid_worker.ts", import.meta.url), {
    map,
    mu,
  }, {
    message: (data) => {
      const reply = data as { leaf?: string; mid?: string; error?: string };
      if (reply.leaf === "ready") leafReady = true;
      if (reply.mid === "blocking") midBlocking = true;
      if (reply.error !== undefined) errors.push(reply.error);
    },
    error: (error) => errors.push(error.message),
  });
  await until(() => leafReady || errors.length > 0, "the leaf starts", 30_000);
  assert.deepEqual(errors, []);
  mid.postMessage({ mode, ctrl } satisfies LeafOrder);
  await until(() => underWay(ctrl), "the leaf is under way", 30_000);
  return {
    map,
    mu,
    ctrl,
    mid,
    leaf: Atomics.load(ctrl, 0) - 1,
    midBlocking: () => midBlocking,
  } satisfies Nest;
}

/** Takes the Mutex, which the leaf held, over: the OwnerDeadError, with the lock held. */
async function takeOver(mu: Mutex): Promise<OwnerDeadError> {
  const started = performance.now();
  for (;;) {
    try {
      assert.equal(mu.tryLock(), false, "taken without word of the dead holder");
    } catch (error) {
      if (!(error instanceof OwnerDeadError)) throw error;
      return error;
    }
    assert.ok(performance.now() - started < 10_000, "the leaf's Mutex is never taken over");
    await sleep(20);
  }
}

/** Terminates the middle worker, which ends the leaf with it. */
async function endMid({ mid }: Nest): Promise<void> {
  const stopped = mid.stopped(300);
  mid.terminate();
  await stopped;
}

/** Waits until the map's only participant is this thread's: the nested one's seat came back. */
async function seatsBack(map: SyncMap<string, number>): Promise<void> {
  await until(
    () => {
      map.load("mid"); // each call may sweep what ended participants left
      return map.stats().participants === 1;
    },
    "the ended workers' seats are given back",
    10_000,
  );
}

describe("a nested worker ends with the worker that started it", () => {
  it("one that had not attached yet gives back the seat its parent reserved", {
    timeout: 60_000,
  }, async () => {
    // The parent reserves the worker's seat as it shares the map; the parent's adapter would
    // give it back at the worker's end, but it ends with the parent. The seat names the parent
    // as its reserver, and goes back once the parent is known to be gone.
    const map = new SyncMap<string, number>();
    let ready = false;
    const errors: string[] = [];
    const mid = spawnWorker(new URL("./fixtures/nested_slow_mid_worker.ts", import.meta.url), {
      map,
    }, {
      message: (data) => {
        const reply = data as { mid?: string; error?: string };
        if (reply.mid === "ready") ready = true;
        if (reply.error !== undefined) errors.push(reply.error);
      },
      error: (error) => errors.push(error.message),
    });
    await until(() => ready || errors.length > 0, "the middle worker starts the leaf", 30_000);
    assert.deepEqual(errors, []);
    assert.equal(map.stats().participants, 3, "this thread, the middle worker, the leaf's seat");
    const stopped = mid.stopped(300);
    mid.terminate();
    await stopped;
    await seatsBack(map);
    map.verify();
    assert.equal(map.load("mid"), 1);
  });

  it("a Mutex it held is taken over, with OwnerDeadError naming it", {
    timeout: 60_000,
  }, async () => {
    const n = await nest("hold", (ctrl) => Atomics.load(ctrl, 1) === 1);
    await endMid(n);
    const dead = await takeOver(n.mu);
    assert.equal(dead.threadId, n.leaf);
    assert.equal(n.mu.poisoned, true);
    n.mu.markConsistent();
    n.mu.unlock();
    n.mu.lock();
    n.mu.unlock();
    await seatsBack(n.map);
    n.map.verify();
    assert.equal(n.map.load("leaf"), 1);
    assert.equal(n.map.load("mid"), 1);
  });

  // Neither a terminated worker nor the ones it started fire an exit event of their own on Node
  // and Bun, and the parent's exit event comes through this thread's event loop: a wait that
  // holds the loop up learns the nested worker's end from its OS thread (census.ts threadEnded).
  it("a Mutex it held is taken over by a wait that holds up the event loop", {
    timeout: 60_000,
  }, async () => {
    const n = await nest("hold", (ctrl) => Atomics.load(ctrl, 1) === 1);
    const nap = new Int32Array(new SharedArrayBuffer(4));
    const stopped = n.mid.stopped(300);
    n.mid.terminate();
    // Synchronous, as a lock() right after terminate() is: tryLock in a loop of Atomics.wait
    // naps, bounded, so that a failure cannot hang the suite.
    const started = performance.now();
    let dead: OwnerDeadError | undefined;
    while (dead === undefined && performance.now() - started < 10_000) {
      try {
        assert.equal(n.mu.tryLock(), false, "taken without word of the dead holder");
        Atomics.wait(nap, 0, 0, 10);
      } catch (error) {
        if (!(error instanceof OwnerDeadError)) throw error;
        dead = error;
      }
    }
    assert.ok(dead !== undefined, "the lock of the nested worker is never taken over");
    assert.equal(dead.threadId, n.leaf);
    n.mu.markConsistent();
    n.mu.unlock();
    await stopped;
    await seatsBack(n.map);
    n.map.verify();
  });

  // A terminated worker may sit in a blocking call for seconds before it stops: the workers it
  // started run on meanwhile, and must keep their locks. Node and Bun end them before the end
  // event of the worker that started them; Deno gives no such event, and stops their next call.
  it("one whose parent is blocked in a call keeps its lock while it runs", {
    timeout: 60_000,
  }, async () => {
    const n = await nest("hold", (ctrl) => Atomics.load(ctrl, 1) === 1);
    n.mid.postMessage({ blockMs: 1_500 });
    await until(n.midBlocking, "the middle worker blocks", 30_000);
    await sleep(50);
    const stopped = n.mid.stopped(300);
    n.mid.terminate();
    const dead = await takeOver(n.mu);
    assert.equal(dead.threadId, n.leaf);
    const ticks = Atomics.load(n.ctrl, 2);
    const stores = Atomics.load(n.ctrl, 4);
    await sleep(200);
    assert.equal(
      Atomics.load(n.ctrl, 4),
      stores,
      "the leaf wrote the map after its lock was taken",
    );
    if (runtime !== "deno") {
      assert.equal(Atomics.load(n.ctrl, 2), ticks, "the leaf ran after its lock was taken");
    }
    n.mu.markConsistent();
    n.mu.unlock();
    await stopped;
    await seatsBack(n.map);
    n.map.verify();
  });

  it("one spinning in synchronous code stops touching the map", {
    timeout: 60_000,
  }, async () => {
    const n = await nest("spin", (ctrl) => Atomics.load(ctrl, 2) > 1000);
    await endMid(n);
    // Node and Bun stop it outright; a Deno worker may run on until its next call, which throws.
    const started = performance.now();
    for (let last = -1;;) {
      const now = Atomics.load(n.ctrl, 2);
      if (now === last) break;
      assert.ok(performance.now() - started < 10_000, "the nested worker's calls never stop");
      last = now;
      await sleep(300);
    }
    assert.notEqual(
      Atomics.load(n.ctrl, 3),
      2,
      "it stopped with another error than TerminatedError",
    );
    await seatsBack(n.map);
    n.map.verify();
    assert.equal(n.map.load("mid"), 1);
  });
});
