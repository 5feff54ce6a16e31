// Copyright the shmap authors. MIT license.
// A worker marked terminating in the middle of a critical section learns it at its next shmap
// call (TerminatedError), and then releases its lock in a `finally`, as user code does. That
// release must not hand the lock on clean: the section was cut short, so the next holder must
// get OwnerDeadError (a user trial found the next lock() returning normally over half-written
// data, 17 to 19 kills in 20 on Deno). The release poisons the lock as it lets it go, so the next
// lock() gets it at once, with OwnerDeadError, whether or not the zombie runs on (a Deno zombie
// that catches the error and goes on in code of its own would otherwise hold it for as long as
// it runs); a read lock is released as any, a reader's section writing nothing it guards.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { record, TERMINATING } from "../src/_engine/census.ts";
import { OwnerDeadError } from "../src/errors.ts";
import { GoMap } from "../src/maps/go_map.ts";
import { Mutex } from "../src/sync/mutex.ts";
import { RWMutex } from "../src/sync/rw_mutex.ts";
import { threadGone } from "../src/threads.ts";
import type {
  ZombieLock,
  ZombieUnlockReply,
  ZombieUnlockRequest,
} from "./fixtures/zombie_unlock_worker.ts";
import { until } from "./fixtures/harness.ts";
import { startWorker } from "./fixtures/spawn.ts";

const LOCKS: ZombieLock[] = ["Mutex", "RWMutex", "RWMutex read lock"];

describe("a zombie's release in a finally lets its lock go poisoned", () => {
  for (const kind of LOCKS) {
    it(kind, { timeout: 60_000 }, async () => {
      const go = new GoMap<number, number>();
      const mu = new Mutex();
      const rw = new RWMutex();
      const ctrl = new Int32Array(new SharedArrayBuffer(16));
      const { promise, resolve, reject } = Promise.withResolvers<ZombieUnlockReply>();
      const worker = startWorker(new URL("./fixtures/zombie_unlock_worker.ts", import.meta.url), {
        message: (data) => resolve(data as ZombieUnlockReply),
        error: reject,
      });
      try {
        worker.postMessage(
          {
            lock: kind,
            ctrl,
            goMap: go.handle,
            mutex: mu.handle,
            rwMutex: rw.handle,
          } satisfies ZombieUnlockRequest,
        );
        await until(() => Atomics.load(ctrl, 0) !== 0, "the worker holds the lock", 30_000);
        const threadId = Atomics.load(ctrl, 0) - 1;
        record(threadId, TERMINATING);
        Atomics.store(ctrl, 2, 1);
        Atomics.notify(ctrl, 2);
        const reply = await promise;
        assert.deepEqual(
          reply,
          { section: "TerminatedError", release: "none", writes: 0 },
          "the section stops at its first write, and its release returns",
        );
        // At once, while the zombie's thread still runs (not declared gone).
        if (kind === "RWMutex read lock") {
          // A reader's section writes nothing it guards: its read lock goes, unpoisoned.
          assert.equal(rw.tryLock(), true);
          assert.equal(rw.poisoned, false);
          rw.unlock();
        } else {
          const lock = kind === "Mutex" ? mu : rw;
          assert.equal(lock.poisoned, true, "released poisoned");
          assert.throws(() => lock.tryLock(), OwnerDeadError);
          lock.markConsistent();
          lock.unlock();
          assert.equal(lock.tryLock(), true, "marked consistent, it is an ordinary lock again");
          lock.unlock();
        }
        const stopped = worker.stopped(100);
        worker.terminate();
        await stopped;
        threadGone(threadId);
        go.verify();
      } finally {
        worker.terminate();
      }
    });
  }
});
