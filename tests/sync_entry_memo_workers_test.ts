// Copyright the shmap authors. MIT license.
// The entry memo across workers: a reader whose memo is warm keeps reading the right entries
// while a writer in another worker replaces the read table all the time (tests/fixtures/
// entry_memo_worker.ts has the protocol). A memo that answered for a read table no longer
// current returns a deleted key's value, or a moved key's old one, and the reader reports it.

import assert from "node:assert/strict";
import { test } from "node:test";
import { SyncMap } from "../src/maps/sync_map.ts";
import {
  CTRL_WORDS,
  type EntryMemoReply,
  type EntryMemoRequest,
  EXACT,
  keyOf,
  N,
  OPS,
  READY,
  STOP,
  VAL,
} from "./fixtures/entry_memo_worker.ts";
import { deadline, until } from "./fixtures/harness.ts";
import { startWorker } from "./fixtures/spawn.ts";

const RUN_MS = 1500;
/** How long a failed test waits for its workers to stop before it terminates them. */
const STOP_MS = 10_000;

test(
  "a reader's entry memo follows a writer's read table changes",
  { timeout: 60_000 },
  async () => {
    const map = new SyncMap<number | string, number>();
    const ctrl = new Int32Array(new SharedArrayBuffer(CTRL_WORDS * 4));
    for (let i = 0; i < N; i++) {
      map.store(keyOf(i), 1024 + i);
      Atomics.store(ctrl, VAL + i, 1);
    }
    const workers = (["writer", "reader"] as const).map((role, n) => {
      const { promise, resolve, reject } = Promise.withResolvers<EntryMemoReply>();
      // Tracked: a worker terminated in the middle of a call of the map (below, if it did not
      // stop in time) may hold a lock of the map, which the next locker then takes over.
      const worker = startWorker(new URL("./fixtures/entry_memo_worker.ts", import.meta.url), {
        message: (data) => resolve(data as EntryMemoReply),
        error: reject,
      }, { track: true });
      worker.postMessage(
        { role, handle: map.handle, ctrl, seed: 0x9e37 * (n + 1) } satisfies EntryMemoRequest,
      );
      return { worker, promise };
    });
    try {
      // The run starts when both workers do: loading a worker's modules may take seconds on a
      // loaded machine.
      await until(() => Atomics.load(ctrl, READY) >= 2, "both workers are ready", 30_000);
      await new Promise((resolve) => setTimeout(resolve, RUN_MS));
      // And on until both have done enough, however little CPU a loaded machine gave them.
      await until(
        () => Atomics.load(ctrl, OPS) > 1000 && Atomics.load(ctrl, EXACT) > 1000,
        () =>
          `progress: ${Atomics.load(ctrl, OPS)} writes, ${Atomics.load(ctrl, EXACT)} exact reads`,
        30_000,
      );
      Atomics.store(ctrl, STOP, 1);
      const [writer, reader] = await Promise.all(workers.map((w) => w.promise));
      assert.equal(writer.error, undefined, writer.error);
      assert.equal(reader.error, undefined, reader.error);
      assert.deepEqual(reader.failures, []);
      assert.ok(writer.ops > 1000, `the writer made ${writer.ops} operations`);
      assert.ok(reader.exact > 1000, `the reader checked ${reader.exact} reads exactly`);
      assert.equal(Atomics.load(ctrl, OPS), writer.ops, "the writer's published count");
      map.verify();
    } finally {
      // After a failure the workers may still be in their loops: told to stop, they close the
      // map and reply, and only then are terminated. One that has not replied within the bound
      // is terminated all the same.
      Atomics.store(ctrl, STOP, 1);
      await deadline(
        Promise.allSettled(workers.map((w) => w.promise)),
        STOP_MS,
        "the workers to stop",
      ).catch(() => {});
      for (const { worker } of workers) worker.terminate();
    }
  },
);
