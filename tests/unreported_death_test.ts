// Copyright the shmap authors. MIT license.
// A death nobody reports: a worker started by hand and never tracked is terminated while it holds
// a Mutex. No adapter learns its end, and before its workers noted their OS threads, a lock() for
// that Mutex waited for good. On Linux every worker notes its OS thread in the census
// (os_thread.ts), and a waiter that finds the holder's thread ended takes the lock over
// (census.ts unreportedEnd), even a wait that holds up its own event loop.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Mutex, OwnerDeadError, SyncMap } from "../mod.ts";
import { startWorker } from "./fixtures/spawn.ts";

const onLinux = (globalThis as { process?: { platform?: string } }).process?.platform === "linux";

test("a Mutex held by a worker nobody tracked is taken over once its thread has ended", {
  skip: !onLinux && "the OS thread is read from /proc",
  timeout: 60_000,
}, async () => {
  const mu = new Mutex();
  const { promise, resolve, reject } = Promise.withResolvers<{ held: number }>();
  const worker = startWorker(new URL("./fixtures/untracked_holder_worker.ts", import.meta.url), {
    message: (data) => resolve(data as { held: number }),
    error: reject,
  });
  worker.postMessage({ handle: mu.handle });
  const { held } = await promise;
  assert.equal(mu.tryLock(), false, "the worker holds it");
  worker.terminate();
  // Synchronous, as a lock() right after terminate() is, and bounded, so that a failure cannot
  // hang the suite: tryLock in a loop of Atomics.wait naps.
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const started = performance.now();
  let dead: OwnerDeadError | undefined;
  while (dead === undefined && performance.now() - started < 10_000) {
    try {
      assert.equal(mu.tryLock(), false, "taken without word of the dead holder");
      Atomics.wait(nap, 0, 0, 10);
    } catch (error) {
      if (!(error instanceof OwnerDeadError)) throw error;
      dead = error;
    }
  }
  assert.ok(dead !== undefined, "the lock of the terminated worker is never taken over");
  assert.equal(dead.threadId, held);
  mu.markConsistent();
  mu.unlock();
  mu.lock();
  mu.unlock();
});

test("the SyncMap seats of untracked workers that ended by themselves are given back", {
  skip: !onLinux && "the OS thread is read from /proc",
  timeout: 60_000,
}, async () => {
  // Each records itself terminating as it exits, and nobody declares it gone: a seat waited for
  // a thread to see its owner terminating twice, the grace apart, and short-lived workers each
  // saw the ones before once, then ended. 256 such workers took every seat (helper-164).
  const map = new SyncMap<string, number>({ maxParticipants: 8 });
  const workers = 12; // more than the seats: each attach needs the seats of the ones before
  for (let i = 0; i < workers; i++) {
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    const worker = startWorker(
      new URL("./fixtures/self_ending_attach_worker.ts", import.meta.url),
      {
        message: resolve,
        error: reject,
      },
    );
    worker.postMessage({ handle: map.handle, key: `w${i}` });
    assert.equal(await promise, "stored", `worker ${i}`);
    await worker.stopped(200);
  }
  // The main thread, which has not used the map meanwhile, finds them gone as it does (or the
  // later workers found the earlier ones gone).
  map.store("main", -1);
  const started = performance.now();
  // Up to 30 s: under three CI runs at once, the last worker's OS thread had not ended in 10.
  while (map.stats().participants > 1 && performance.now() - started < 30_000) {
    for (let i = 0; i < 1_000; i++) map.store("main", i);
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(map.stats().participants, 1, "the seats of the ended workers");
  assert.equal(map.size, workers + 1);
  map.verify();
});
