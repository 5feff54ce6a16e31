// Copyright the shmap authors. MIT license.
// A worker that attached a SyncMap by hand and ended gives its participant seat back as soon as
// its end is learnt (track(), threadGone()), without waiting for a call of a live thread's: a
// pool worker started in its place attaches at once, though every seat was taken. Before, the
// seat came back only at the next call of some live object, so a map of a few seats whose
// parent made no call threw RangeError at every new worker's attach (helper-173: piscina with a
// task timeout stuck in 2 of 4 runs, tinypool failed 84 of 100 tasks).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Worker } from "node:worker_threads";
import { SyncMap, threadGone } from "../mod.ts";
import { shareSyncMap } from "../src/maps/sync_map.ts";
import { track } from "../src/workers/node.ts";
import { deadline, eventually } from "./fixtures/harness.ts";

const url = new URL("./fixtures/seat_worker.ts", import.meta.url);

/** A worker of seat_worker.ts that attached `map` and stored `key`; its thread id. */
async function attached(
  map: SyncMap<number, number>,
  key: number,
  options: { busy?: boolean; tracked?: boolean; end?: boolean; quiet?: boolean } = {},
): Promise<{ worker: Worker; threadId: number }> {
  const worker = new Worker(url, {
    workerData: {
      handle: map.handle,
      key,
      busy: options.busy ?? false,
      end: options.end,
      quiet: options.quiet,
    },
  });
  if (options.tracked ?? true) track(worker);
  const reply = await deadline(
    new Promise<{ attached?: number; error?: string }>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
    }),
    30_000,
    `worker ${key}'s attach`,
  );
  if (reply.error !== undefined) {
    await worker.terminate();
    throw new Error(`worker ${key}: ${reply.error}`);
  }
  return { worker, threadId: reply.attached! };
}

describe("the seat of a worker that ended", () => {
  for (const busy of [false, true]) {
    test(`is taken by the next worker with no call on the map meanwhile (${busy ? "terminated mid-store" : "idle"})`, async () => {
      // Two seats: the map's own object and one worker at a time.
      const map = new SyncMap<number, number>({ maxParticipants: 2 });
      map.store(-1, -1);
      for (let r = 0; r < 4; r++) {
        const { worker } = await attached(map, r, { busy });
        await worker.terminate(); // its end is learnt as this resolves; the main thread makes no call
      }
      // The last worker's seat too, once its end is declared (on Deno, after the grace).
      assert.ok(await eventually(5_000, () => map.stats().participants === 1));
      for (let r = 0; r < 4; r++) assert.equal(map.load(r), r, `key ${r}`);
      map.verify();
      map.close();
    });
  }

  test("of a thread declared gone by threadGone() is taken by the next worker", async () => {
    const map = new SyncMap<number, number>({ maxParticipants: 2 });
    map.store(-1, -1);
    for (let r = 0; r < 3; r++) {
      const { worker, threadId } = await attached(map, r, { tracked: false });
      await worker.terminate();
      threadGone(threadId);
    }
    assert.ok(await eventually(5_000, () => map.stats().participants === 1));
    map.verify();
    map.close();
  });

  test("that ended by itself, untracked and its object unclosed, is taken by the next worker", async () => {
    // Its seat is given back as it exits (census.ts onOwnExit): nobody watches it, and before,
    // with no call of a live object meanwhile, the next attach waited and threw (helper-175:
    // Node 5 of 5; Bun web workers about half).
    const map = new SyncMap<number, number>({ maxParticipants: 2 });
    map.store(-1, -1);
    for (let r = 0; r < 3; r++) {
      const { worker } = await attached(map, r, { tracked: false, end: true });
      await new Promise((resolve) => worker.once("exit", resolve));
    }
    for (let r = 0; r < 3; r++) assert.equal(map.load(r), r, `key ${r}`);
    assert.equal(map.stats().participants, 1);
    map.verify();
    map.close();
  });

  test("is reserved for a worker to share with, with no call on the map meanwhile", async () => {
    const map = new SyncMap<number, number>({ maxParticipants: 2 });
    map.store(-1, -1);
    const { worker } = await attached(map, 0, { busy: true });
    await worker.terminate();
    const { release } = shareSyncMap(map as SyncMap<never, never>);
    release();
    assert.ok(await eventually(5_000, () => map.stats().participants === 1));
    map.verify();
    map.close();
  });

  test("of an untracked worker terminated while its parent makes no call: the attach says so", async () => {
    // Nobody acts on that end: the parent's object is idle, and the attaching worker has no
    // object of the map to give the seat back with. The attach waits, then says how many seats
    // ended threads hold and how they come back. On Node and Bun the parent's next calls give
    // the seat back, the end learnt by that attach; on Deno, whose terminate() may leave a worker
    // running, an untracked worker's seat waits for its OS thread's end to be seen (README).
    const map = new SyncMap<number, number>({ maxParticipants: 2 });
    map.store(-1, -1);
    const { worker } = await attached(map, 0, { tracked: false });
    await worker.terminate();
    // (Deno's node:worker_threads worker may give its seat back as it ends: then it attaches.)
    const outcome = await attached(map, 1, { tracked: false, quiet: true }).then(
      (w) => w.worker,
      (e) => e,
    );
    if (outcome instanceof Worker) await outcome.terminate();
    else {
      assert.match(
        String(outcome),
        /all 2 participant seats .*; 1 of them held by threads that ended.*threadGone\(\)/,
      );
    }
    if (!("Deno" in globalThis)) {
      assert.ok(outcome instanceof Error, "the attach threw");
      assert.ok(await eventually(5_000, () => map.load(0) === 0 && map.stats().participants === 1));
      const { worker: next } = await attached(map, 2, { tracked: false });
      await next.terminate();
      assert.equal(map.load(2), 2);
    }
    map.verify();
    map.close();
  });

  test("held by a live worker is not waited for: the attach throws RangeError", async () => {
    const map = new SyncMap<number, number>({ maxParticipants: 2 });
    const { worker } = await attached(map, 0);
    try {
      await assert.rejects(attached(map, 1), /RangeError: all 2 participant seats/);
    } finally {
      await worker.terminate();
    }
    map.verify();
    map.close();
  });
});
