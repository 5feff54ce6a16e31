// Copyright the shmap authors. MIT license.
// A lock is never taken over while its holder can still run. Deno's terminate() does not stop a
// worker spinning in synchronous code: such a zombie holding a Mutex keeps it for as long as it
// runs (where its end can be seen: a Deno worker on Linux, src/_engine/os_thread.ts), and the
// lock is taken over, with OwnerDeadError, once its thread has ended. Before, the lock was taken
// over 250 ms after terminate() while the zombie still ran inside its critical section. On Bun
// and Node terminate() stops the spinning worker, and the same checks hold. A SyncMap seat is not
// a lock: it is released once the zombie can be in no call of the map, and not before.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Mutex, OwnerDeadError, RWMutex, SyncMap } from "../mod.ts";
import { Arena, KIND_SYNC_MAP } from "../src/_engine/arena.ts";
import {
  CALL_UNKNOWN,
  callState,
  IN_CALL,
  OUT_OF_CALLS,
  ownOsThread,
  setRunTimeForTests,
} from "../src/_engine/os_thread.ts";
import { seatsInUse } from "../src/_engine/registry.ts";
import { registryOf } from "../src/maps/_sync_layout.ts";
import type { Shareable } from "../src/workers/_share.ts";
import { Mailbox } from "./fixtures/adapter_harness.ts";
import { eventually, sleep } from "./fixtures/harness.ts";
import { runtime, spawnWorker, type TestWorker } from "./fixtures/spawn.ts";

/** tryLock, with a takeover (OwnerDeadError) counted as taken. */
function tryTake(mu: Mutex): boolean {
  try {
    return mu.tryLock();
  } catch (error) {
    assert.ok(error instanceof OwnerDeadError, String(error));
    return true;
  }
}

/**
 * Starts `fixture` (a worker of fixtures/: it says "ready", takes a control buffer, takes its
 * lock or seat, and says `said`) on `values`, and returns it with its control words once it has
 * said so.
 */
async function startHolder(
  fixture: string,
  values: Readonly<Record<string, Shareable>>,
  said: string,
): Promise<{ worker: TestWorker; ctrl: Int32Array<SharedArrayBuffer> }> {
  const box = new Mailbox();
  const ctrl = new Int32Array(new SharedArrayBuffer(12));
  const worker = spawnWorker(new URL(`./fixtures/${fixture}`, import.meta.url), values, {
    message: box.put,
    error: box.fail,
  });
  try {
    assert.equal(await box.next(20_000), "ready");
    worker.postMessage(ctrl.buffer);
    assert.equal(await box.next(20_000), said);
  } catch (error) {
    worker.terminate();
    throw error;
  }
  return { worker, ctrl };
}

test("a Mutex held by a terminated worker that still runs is not taken over until it ends", {
  timeout: 60_000,
}, async () => {
  const mu = new Mutex();
  const { worker, ctrl } = await startHolder("spin_mutex_worker.ts", { mu }, "held");
  try {
    worker.terminate();
    // For a second (four graces), the lock stays the worker's for as long as it counts on.
    let taken = false;
    let ranAfter = false;
    const start = performance.now();
    while (!taken && performance.now() - start < 1_000) {
      taken = tryTake(mu);
      if (!taken) await sleep(10);
    }
    if (taken) {
      // Taken over: the holder must have stopped.
      const before = Atomics.load(ctrl, 1);
      await sleep(100);
      ranAfter = Atomics.load(ctrl, 1) !== before;
    }
    assert.equal(ranAfter, false, "the lock was taken over while its holder still ran");
    if (runtime === "deno") {
      assert.equal(taken, false, "Deno: the spinning zombie's lock was taken over");
      const before = Atomics.load(ctrl, 1);
      await sleep(50);
      assert.notEqual(Atomics.load(ctrl, 1), before, "Deno: the zombie spins on");
    }
    // The loop ends, the task returns, and the thread ends: the lock is taken over.
    Atomics.store(ctrl, 0, 1);
    const end = performance.now();
    while (!taken && performance.now() - end < 5_000) {
      taken = tryTake(mu);
      if (!taken) await sleep(5);
    }
    assert.ok(taken, "the lock was not taken over 5 s after its holder ended");
    mu.markConsistent();
    mu.unlock();
  } finally {
    Atomics.store(ctrl, 0, 1);
    worker.terminate();
  }
});

test(
  "a Mutex held by a terminated worker asleep in a wait nothing ends is taken over after the grace",
  {
    timeout: 60_000,
  },
  async () => {
    // Deno's terminate() does not wake a worker in Atomics.wait, and nothing else will: its thread
    // stays for good. It cannot write while it sleeps, and waiting for its thread would wait for
    // ever: the lock is taken over after the grace, as where the thread cannot be seen.
    const mu = new Mutex();
    const { worker, ctrl } = await startHolder("sleep_mutex_worker.ts", { mu }, "held");
    try {
      worker.terminate();
      const start = performance.now();
      let taken = false;
      while (!taken && performance.now() - start < 5_000) {
        taken = tryTake(mu);
        if (!taken) await sleep(10);
      }
      assert.ok(taken, "the sleeping zombie's lock was not taken over in 5 s");
      mu.markConsistent();
      mu.unlock();
    } finally {
      Atomics.store(ctrl, 0, 1);
      Atomics.notify(ctrl, 0);
      worker.terminate();
    }
  },
);

test(
  "an RWMutex reader seat of a terminated worker that still runs, holding no read lock, is reaped",
  {
    timeout: 60_000,
  },
  async () => {
    // A seat is not a lock: with one seat, a zombie's empty seat must not shut every other reader
    // out for as long as the zombie runs.
    const rw = new RWMutex({ maxReaderThreads: 1 });
    const { worker, ctrl } = await startHolder("spin_reader_worker.ts", { rw }, "seated");
    try {
      worker.terminate();
      await sleep(1_000);
      rw.rLock(); // the one seat, reaped
      rw.rUnlock();
    } finally {
      Atomics.store(ctrl, 0, 1);
      worker.terminate();
    }
  },
);

test("a SyncMap seat of a terminated worker that spins in user code is released", {
  timeout: 60_000,
}, async () => {
  // Its announcement would otherwise hold reclamation back for as long as the zombie runs. On
  // Deno it is released once the zombie has run (RUN_PROOF_MS on a CPU) past the grace.
  const map = new SyncMap<number, string>();
  const { worker, ctrl } = await startHolder("spin_store_worker.ts", { map }, "stored");
  try {
    assert.equal(map.stats().participants, 2);
    worker.terminate();
    assert.ok(
      await eventually(3_000, () => map.stats().participants === 1),
      "the zombie's seat was not released within 3 s",
    );
    if (runtime === "deno") assert.equal(Atomics.load(ctrl, 0), 0, "it still spins");
    for (let k = 0; k < 100; k++) assert.equal(map.load(k), `value ${k}`);
    map.verify();
  } finally {
    Atomics.store(ctrl, 0, 1);
    worker.terminate();
  }
});

test("Deno: a SyncMap seat of a terminated worker that has not run since is not released", {
  timeout: 60_000,
  skip: runtime !== "deno" || Deno.build.os !== "linux",
}, async () => {
  // A zombie descheduled inside a store (between taking a block from its seat's cache and
  // publishing it) must not have its seat released beside it: the release repairs that cache and
  // clears its announcement. The parent cannot see where the zombie is, only whether it has run:
  // here its run time is made to stand still, as if it never got a CPU again. Its seat stays
  // RELEASING past the grace, and is released once it runs.
  const map = new SyncMap<number, string>();
  const { worker, ctrl } = await startHolder("spin_store_worker.ts", { map }, "stored");
  setRunTimeForTests(() => 0);
  try {
    worker.terminate();
    await sleep(1_000); // four graces
    // (verify() would wait for it: a stop of the world waits for a participant that may be
    // inside a call, and reports one that stays so.)
    assert.equal(map.stats().participants, 2, "released while its owner had not run since");
    setRunTimeForTests(undefined);
    assert.ok(
      await eventually(3_000, () => map.stats().participants === 1),
      "the seat was not released within 3 s of its owner running",
    );
    for (let k = 0; k < 100; k++) assert.equal(map.load(k), `value ${k}`);
    map.verify();
  } finally {
    setRunTimeForTests(undefined);
    Atomics.store(ctrl, 0, 1);
    worker.terminate();
  }
});

test("Deno: a put-off seat release is finished by another participant while its releaser is busy", {
  timeout: 60_000,
  skip: runtime !== "deno" || Deno.build.os !== "linux",
}, async () => {
  // The parent releases the zombie's share, but never sees the zombie run (its run time stands
  // still for this thread), so it puts the release off; then it blocks in a loop that makes no
  // map call. A live worker calling the map is let see the zombie run only then, and finishes the
  // release: a put-off release has no releaser, so anyone may. (Kept as its releaser, the parent
  // held it RELEASING for as long as it was busy.)
  const map = new SyncMap<number, string>();
  const registry = registryOf(Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test"));
  const zombie = await startHolder("spin_store_worker.ts", { map }, "stored");
  let live: Awaited<ReturnType<typeof startHolder>> | undefined;
  setRunTimeForTests(() => 0);
  try {
    live = await startHolder("loop_map_worker.ts", { map }, "looping");
    assert.equal(seatsInUse(registry), 3);
    zombie.worker.terminate();
    await sleep(600); // the grace, the declaration, and the release put off
    assert.equal(seatsInUse(registry), 3, "released while no thread saw its owner out of calls");
    Atomics.store(live.ctrl, 2, 1);
    const end = performance.now() + 5_000;
    while (seatsInUse(registry) > 2 && performance.now() < end) {
      // Busy: no map call, no turn of the event loop.
    }
    assert.equal(seatsInUse(registry), 2, "the live worker did not finish the release in 5 s");
    // It goes on once it has swept what piled up while the zombie's seat held reclamation back
    // (over a second of stores: a sweep of a second or two).
    const ran = Atomics.load(live.ctrl, 1);
    assert.ok(
      await eventually(20_000, () => Atomics.load(live!.ctrl, 1) > ran),
      "the live worker did not go on",
    );
    map.verify();
  } finally {
    setRunTimeForTests(undefined);
    Atomics.store(zombie.ctrl, 0, 1);
    if (live !== undefined) Atomics.store(live.ctrl, 0, 1);
    zombie.worker.terminate();
    live?.worker.terminate();
  }
});

test("os_thread callState: a running thread is in a call until it has run RUN_PROOF_MS", {
  skip: runtime !== "deno" || Deno.build.os !== "linux",
}, () => {
  const me = ownOsThread();
  assert.ok(me !== 0);
  try {
    setRunTimeForTests(() => undefined);
    assert.equal(callState(me), CALL_UNKNOWN, "run time unreadable: not known");
    setRunTimeForTests(() => 0);
    assert.equal(callState(me), IN_CALL, "first look");
    assert.equal(callState(me), IN_CALL, "has not run since");
    setRunTimeForTests(undefined);
    assert.equal(callState(me), IN_CALL, "first look at the real run time");
    const start = performance.now();
    while (callState(me) === IN_CALL) {
      if (performance.now() - start > 10_000) assert.fail("not out of calls after 10 s of running");
    }
    assert.equal(callState(me), OUT_OF_CALLS, "for good");
  } finally {
    setRunTimeForTests(undefined);
  }
});
