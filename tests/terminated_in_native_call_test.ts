// Copyright the shmap authors. MIT license.
// A worker terminated inside a call that terminate() does not cut short (a long native call on
// Bun, `Atomics.wait` on Deno) returns from it later. Bun then runs a few statements before it
// stops, Deno runs on: either way its next `lock()` must not take the mutex, or it would begin a
// critical section its parent's next `lock()` then finds half done, poisoned (and, once the
// grace has passed, a second thread could hold the lock with it). So `lock` checks the census in
// every thread that can run after terminate() (src/_engine/census.ts, mayRunTerminated); on
// Node the worker never runs again, and the test checks the same outcome there.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Mutex } from "../mod.ts";
import { TERMINATE_GRACE_MS } from "../src/_engine/census.ts";
import { Mailbox } from "./fixtures/adapter_harness.ts";
import { until } from "./fixtures/harness.ts";
import { spawnWorker } from "./fixtures/spawn.ts";

test("a worker terminated inside a blocking call takes no lock once the call returns", {
  timeout: 60_000,
}, async () => {
  const mu = new Mutex();
  const c = new Int32Array(new SharedArrayBuffer(16));
  const box = new Mailbox();
  const worker = spawnWorker(
    new URL("./fixtures/native_call_worker.ts", import.meta.url),
    { mu },
    { message: box.put, error: box.fail },
  );
  try {
    assert.equal(await box.next(20_000), "listening");
    worker.postMessage(c);
    await until(() => Atomics.load(c, 0) === 1, "the worker's warm-up", 30_000);
    await new Promise((resolve) => setTimeout(resolve, 100)); // into its blocking call
    worker.terminate(); // the adapter's: marks it terminating first
    // The call returns 1 s after it began; the worker has run whatever it runs after it.
    await new Promise((resolve) => setTimeout(resolve, 1_500 + TERMINATE_GRACE_MS));
    assert.equal(c[1], 0, "no critical section begun after terminate()");
    assert.notEqual(Atomics.load(c, 2), 2, "nothing but a TerminatedError thrown");
    assert.equal(mu.poisoned, false, "the mutex is not poisoned");
    assert.equal(mu.tryLock(), true, "the mutex is free");
    mu.unlock();
  } finally {
    worker.terminate();
  }
});
