// Copyright the shmap authors. MIT license.
// The census (src/_engine/census.ts) is known by its identity, not by the SharedArrayBuffer
// object that brought it: every postMessage of a handle brings a new object for the same
// memory, and a worker that took them for different censuses would lose the census check's
// fast path on every call for good (it passes only while a thread knows one census).

import assert from "node:assert/strict";
import { test } from "node:test";
import { TERMINATING } from "../src/_engine/census.ts";
import { SyncMap } from "../src/maps/sync_map.ts";
import { Mutex } from "../src/sync/mutex.ts";
import type { CensusMessage, CensusReply } from "./fixtures/census_worker.ts";
import { ReplyQueue } from "./fixtures/reply_queue.ts";
import { startWorker } from "./fixtures/spawn.ts";

test("census: handles of one census in separate messages make one census, fast path kept", async () => {
  const mu = new Mutex();
  const map = new SyncMap<number, number>();
  assert.notEqual(structuredClone(mu.handle).census, structuredClone(mu.handle).census);
  const replies = new ReplyQueue<CensusReply>();
  const worker = startWorker(
    new URL("./fixtures/census_worker.ts", import.meta.url),
    replies.listeners(() => ({ censuses: -1, fastPath: false, threadId: -1 })),
  );
  try {
    const messages: CensusMessage[] = [
      { mutex: mu.handle },
      { syncMap: map.handle },
      { mutex: mu.handle },
    ];
    for (const [i, message] of messages.entries()) {
      worker.postMessage(message);
      const reply = await replies.take(30_000, `reply ${i}`);
      assert.deepEqual(
        { censuses: reply.censuses, fastPath: reply.fastPath, error: reply.error },
        { censuses: 1, fastPath: true, error: undefined },
        `after message ${i}`,
      );
    }
  } finally {
    worker.terminate();
  }
});

// A thread that reads the census while an entry is reserved and not yet written (its word still
// 0: the appender is between its add and its store) must read that entry at a later call. The
// fast path compares the census's count with what this thread has read, so it must not pass
// until then; a worker that took the count for read never saw its own TERMINATING, and ran on
// as a zombie (the CI's zombie test: 57.8 M SyncMap stores in 20 s after it was marked).
test("census: an entry written after a thread looked is still seen by its next call", async () => {
  const mu = new Mutex();
  const replies = new ReplyQueue<CensusReply>();
  const worker = startWorker(
    new URL("./fixtures/census_worker.ts", import.meta.url),
    replies.listeners(() => ({ censuses: -1, fastPath: false, threadId: -1 })),
  );
  const ask = (message: CensusMessage, what: string): Promise<CensusReply> => {
    worker.postMessage(message);
    return replies.take(30_000, what);
  };
  try {
    const { threadId, error } = await ask({ mutex: mu.handle }, "the first lock");
    assert.equal(error, undefined);
    // An appender reserves an entry, and has not written it yet.
    const i32 = new Int32Array(mu.handle.census!);
    const index = Atomics.add(i32, 1, 1); // C_COUNT
    assert.ok(8 + index < i32.length, "the entry lies in the census as it is");
    const looked = await ask({ lock: true }, "the lock while the entry is being written");
    assert.equal(looked.error, undefined);
    assert.equal(looked.fastPath, false, "the fast path waits for the entry");
    // The appender writes it: the worker is terminating.
    Atomics.store(i32, 8 + index, (threadId << 2) | TERMINATING); // C_ENTRIES + index
    const stopped = await ask({ lock: true }, "the lock after the entry is written");
    assert.equal(stopped.error, "TerminatedError");
  } finally {
    worker.terminate();
  }
});
