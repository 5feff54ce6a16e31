// Copyright the shmap authors. MIT license.
// The parent terminates a worker that holds a lock, then waits for that lock synchronously:
// its event loop, which delivers the worker's end event, is blocked meanwhile, so the end can
// only be learned from terminate() itself. The adapters mark the thread terminating as
// terminate() is called, and a waiter takes a terminating holder's lock over once the grace has
// passed (src/_engine/census.ts). Before, this wait never ended.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Mutex, OwnerDeadError } from "../mod.ts";
import { TERMINATE_GRACE_MS } from "../src/_engine/census.ts";
import { Mailbox } from "./fixtures/adapter_harness.ts";
import { spawnWorker } from "./fixtures/spawn.ts";

const onLinux = (globalThis as { process?: { platform?: string } }).process?.platform === "linux";

/** How long the synchronous wait may take before the test gives up (it never returned). */
const GIVE_UP_MS = 5_000;

test("a lock held by a terminated worker is taken over by a synchronous wait in its parent", {
  timeout: 60_000,
}, async () => {
  const mu = new Mutex();
  const box = new Mailbox();
  const worker = spawnWorker(
    new URL("./fixtures/hold_mutex_worker.ts", import.meta.url),
    { mu },
    { message: box.put, error: box.fail },
  );
  assert.equal(await box.next(20_000), "held");
  assert.equal(mu.tryLock(), false, "the worker holds the lock");
  worker.terminate();
  // No await from here on: the worker's end event cannot be delivered.
  const start = performance.now();
  let taken = false;
  while (!taken && performance.now() - start < GIVE_UP_MS) {
    try {
      taken = mu.tryLock();
    } catch (error) {
      assert.ok(error instanceof OwnerDeadError, String(error));
      taken = true;
    }
  }
  const waited = performance.now() - start;
  assert.ok(taken, `the lock was not taken over in ${GIVE_UP_MS} ms`);
  // Not before the grace: a terminated thread may finish the call it is in. On Linux the
  // worker's end is learned from its OS thread instead (src/_engine/os_thread.ts), where it can
  // be seen: an idle worker's thread ends at once, and its lock is taken over then
  // (tests/zombie_holder_test.ts checks that a running Deno one keeps it).
  if (!onLinux) {
    assert.ok(waited >= TERMINATE_GRACE_MS * 0.9, `taken over after ${waited.toFixed(0)} ms`);
  }
  mu.markConsistent();
  mu.unlock();
});
