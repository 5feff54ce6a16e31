// Copyright the shmap authors. MIT license.
// A death nobody reports: a worker started by hand and never tracked is terminated while it holds
// a Mutex. No adapter learns its end, and before its workers noted their OS threads, a lock() for
// that Mutex waited for good. On Linux every worker notes its OS thread in the census
// (os_thread.ts), and a waiter that finds the holder's thread ended takes the lock over
// (census.ts unreportedEnd), even a wait that holds up its own event loop.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Mutex, OwnerDeadError } from "../mod.ts";
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
