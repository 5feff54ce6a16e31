// Copyright the shmap authors. MIT license.
// The census (src/_engine/census.ts) is known by its identity, not by the SharedArrayBuffer
// object that brought it: every postMessage of a handle brings a new object for the same
// memory, and a worker that took them for different censuses would lose the census check's
// fast path on every call for good (it passes only while a thread knows one census).

import assert from "node:assert/strict";
import { test } from "node:test";
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
    replies.listeners(() => ({ censuses: -1, fastPath: false })),
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
      assert.deepEqual(reply, { censuses: 1, fastPath: true }, `after message ${i}`);
    }
  } finally {
    worker.terminate();
  }
});
