// Copyright the shmap authors. MIT license.
// A SyncMap's count of keys: each participant counts in a word of its own seat (registry.ts
// KEYS), and `size`, `stats()`, `verify()` and the sweep's recount add them to R_COUNT. The sum
// wraps as an int32 does, a sweep recounts against what the seats hold, and workers adding and
// deleting keys at once, or killed while they do, leave the count exact.

import assert from "node:assert/strict";
import { test } from "node:test";
import { SyncMap } from "../src/maps/sync_map.ts";
import { syncAccessOf } from "../src/maps/sync_map.ts";
import { KEYS, SEAT_WORDS } from "../src/_engine/registry.ts";
import { R_COUNT, R_SEATS, R_SWEEP_DUE } from "../src/maps/_sync_layout.ts";
import { sweepsForTests } from "../src/maps/_sync_recovery.ts";
import {
  type KeyCountReply,
  type KeyCountRequest,
  KEYS as WORKER_KEYS,
  OPS,
  RANGE,
  STOP,
} from "./fixtures/key_count_worker.ts";
import { deadline, until } from "./fixtures/harness.ts";
import { startWorker, type TestWorker } from "./fixtures/spawn.ts";

/** The word index of the KEYS word of `map`'s own seat, and the map's words. */
function keysWord(map: SyncMap<unknown, unknown>): { i32: Int32Array; at: number } {
  const s = syncAccessOf(map);
  const i32 = s.arena.i32;
  return { i32, at: i32[R_SEATS] + s.participant.index * SEAT_WORDS + KEYS };
}

/** The keys `range` visits. */
function visited(map: SyncMap<unknown, unknown>): number {
  let n = 0;
  map.range(() => void n++);
  return n;
}

/** Makes a sweep due and makes calls until one has swept. */
async function sweep(map: SyncMap<number, number | string>): Promise<void> {
  const { i32 } = keysWord(map as SyncMap<unknown, unknown>);
  const sweeps = sweepsForTests.count;
  Atomics.store(i32, R_SWEEP_DUE, 1);
  await until(() => {
    map.load(0);
    return sweepsForTests.count !== sweeps;
  }, "a sweep");
}

test("size adds up every seat's count, wrapping as an int32", () => {
  const map = new SyncMap<number, number>();
  const { i32, at } = keysWord(map);
  // A seat whose count is about to wrap, and a base that makes the sum 0: as if this seat had
  // counted in 2^31 - 3 keys that another took out, the other's count folded into the base.
  Atomics.store(i32, at, 2 ** 31 - 3);
  Atomics.store(i32, R_COUNT, -(2 ** 31 - 3));
  assert.equal(map.size, 0);
  for (let k = 0; k < 10; k++) map.store(k, k);
  assert.ok(Atomics.load(i32, at) < 0, "the seat's word wrapped");
  assert.equal(map.size, 10);
  assert.equal(map.stats().count, 10);
  map.verify();
  for (let k = 0; k < 4; k++) map.delete(k);
  assert.equal(map.size, 6);
  map.verify();
});

test("a sweep's recount sets the base so that the seats' counts still add up", async () => {
  const map = new SyncMap<number, number | string>();
  for (let k = 0; k < 100; k++) map.store(k, k);
  for (let k = 0; k < 30; k++) map.delete(k);
  const { i32, at } = keysWord(map as SyncMap<unknown, unknown>);
  assert.equal(Atomics.load(i32, at), 70, "counted in the seat");
  // A count gone wrong, as a death between an exchange and its count leaves it: the sweep
  // that death makes due recounts.
  Atomics.add(i32, R_COUNT, 5);
  assert.equal(map.size, 75);
  const sweeps = sweepsForTests.count;
  await sweep(map);
  assert.equal(sweepsForTests.count, sweeps + 1, "swept once");
  assert.equal(map.size, 70);
  assert.equal(visited(map as SyncMap<unknown, unknown>), 70);
  map.verify();
});

/** Starts the key count worker `index` on `map`; its reply, if it ends. */
function startCounter(
  map: SyncMap<number, number | string>,
  ctrl: Int32Array<SharedArrayBuffer>,
  index: number,
  ops: number,
): { worker: TestWorker; reply: Promise<KeyCountReply> } {
  const { promise, resolve, reject } = Promise.withResolvers<KeyCountReply>();
  // Tracked: its death, terminated in the middle of a call, is learned.
  const worker = startWorker(new URL("./fixtures/key_count_worker.ts", import.meta.url), {
    message: (data) => resolve(data as KeyCountReply),
    error: reject,
  }, { track: true });
  worker.postMessage({ handle: map.handle, ctrl, index, ops } satisfies KeyCountRequest);
  return { worker, reply: promise };
}

test(
  "workers adding and deleting keys at once leave the count exact",
  { timeout: 120_000 },
  async () => {
    const map = new SyncMap<number, number | string>();
    for (let k = 0; k < 50; k++) map.store(3 * RANGE + k, k); // the parent's own keys
    // And half of each worker's: the workers delete keys the parent counted in, and their own
    // seats' counts go below 0.
    for (let i = 0; i < 3; i++) {
      for (let k = 0; k < WORKER_KEYS; k += 2) map.store(i * RANGE + k, -k);
    }
    const ctrl = new Int32Array(new SharedArrayBuffer(16));
    const workers = [0, 1, 2].map((i) => startCounter(map, ctrl, i, 40_000));
    try {
      const replies = await deadline(
        Promise.all(workers.map((w) => w.reply)),
        90_000,
        "the workers' replies",
      );
      for (const r of replies) assert.equal(r.error, undefined, r.error);
      const expected = 50 + replies.reduce((sum, r) => sum + r.present, 0);
      assert.ok(expected > 50 + 100, `the workers left keys: ${expected}`);
      assert.equal(map.size, expected);
      assert.equal(visited(map as SyncMap<unknown, unknown>), expected);
      map.verify();
    } finally {
      for (const w of workers) w.worker.terminate();
    }
  },
);

test(
  "a worker terminated while it adds and deletes keys leaves a count that verify() finds exact",
  { timeout: 120_000 },
  async () => {
    const map = new SyncMap<number, number | string>();
    const ctrl = new Int32Array(new SharedArrayBuffer(32));
    for (let round = 0; round < 4; round++) {
      // A range of its own for each worker: the model of one starts empty.
      const index = round;
      const { worker, reply } = startCounter(map, ctrl, index, 0);
      let ended: KeyCountReply | undefined;
      reply.then((r) => ended = r, (e) => ended = { present: -1, error: String(e) });
      await until(
        () => ended !== undefined || Atomics.load(ctrl, OPS + index) > 2_000 + 997 * round,
        "the worker's calls",
        60_000,
      );
      assert.equal(ended, undefined, "the worker ended");
      worker.terminate();
      await worker.stopped(200);
      // verify() waits for the death to be learned and its sweep, if one is due.
      map.verify();
      const n = visited(map as SyncMap<unknown, unknown>);
      assert.equal(map.size, n, `round ${round}`);
      assert.ok(n <= 4 * WORKER_KEYS);
      // And a sweep of its own (a death made one due only if it struck inside a write): its
      // recount, beside the dead worker's seat and this thread's, keeps the count.
      await sweep(map);
      assert.equal(map.size, n, `round ${round}, swept`);
      map.verify();
    }
    Atomics.store(ctrl, STOP, 1);
  },
);
