// Copyright the shmap authors. MIT license.
// SyncMap's reads (load, has, loadOk) begin without the census check (Participant.enterRead): a
// thread marked terminating or gone may go on reading. It must write nothing shared all the
// same: a read that must take the mutex checks the census first, and the work a participant does
// outside its calls (going offline as its task ends, close()) leaves a seat alone once the census
// marks its thread. Each case: a worker is declared gone while it waits, then reads; its seat's
// words must be as they were when it was declared gone (the others may be reaping it).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setGoneHooksForTests } from "../src/_engine/census.ts";
import { RL_COUNT } from "../src/_engine/retire_list.ts";
import { ANNOUNCE, CLAIM, LIST, OWNER, SEAT_WORDS } from "../src/_engine/registry.ts";
import { R_NSEATS, R_READ, R_SEATS } from "../src/maps/_sync_layout.ts";
import { SyncMap } from "../src/maps/sync_map.ts";
import { threadGone } from "../src/threads.ts";
import type {
  ZombieRead,
  ZombieReadsReply,
  ZombieReadsRequest,
} from "./fixtures/zombie_reads_worker.ts";
import { until } from "./fixtures/harness.ts";
import { startWorker } from "./fixtures/spawn.ts";

/** The words of the seat that thread `owner` - 1 holds, read without a call of the map. */
function seatOf(i32: Int32Array, owner: number): () => Record<string, number> {
  let seat = -1;
  for (let i = 0; i < i32[R_NSEATS]; i++) {
    const at = i32[R_SEATS] + i * SEAT_WORDS;
    if (Atomics.load(i32, at + OWNER) === owner) seat = at;
  }
  assert.notEqual(seat, -1, "the worker's seat");
  return () => {
    const list = Atomics.load(i32, seat + LIST);
    return {
      claim: Atomics.load(i32, seat + CLAIM),
      announce: Atomics.load(i32, seat + ANNOUNCE),
      list,
      retired: list === 0 ? 0 : Atomics.load(i32, (list >> 2) + RL_COUNT),
    };
  };
}

interface Case {
  read: ZombieRead;
  close: boolean;
  /** Whether the read table is amended, so that a miss takes the mutex. */
  amended: boolean;
}

const CASES: Case[] = [
  { read: "load hit", close: false, amended: false },
  { read: "load hit", close: true, amended: false },
  { read: "load miss", close: false, amended: true },
  { read: "has miss", close: false, amended: true },
  { read: "loadOk miss", close: true, amended: true },
];

describe("a thread declared gone that only reads writes nothing shared", () => {
  for (const c of CASES) {
    const name = `${c.read}${c.amended ? " (read table amended)" : ""}${
      c.close ? ", close()" : ""
    }`;
    it(name, { timeout: 60_000 }, async () => {
      const map = new SyncMap<number, number>();
      for (let i = 0; i < 64; i++) map.store(i, i);
      for (let i = 0; i < 200; i++) map.load(i & 63); // promoted: the read table holds them
      if (c.amended) map.store(1000, 0); // a dirty table with a key the read table lacks
      const i32 = new Int32Array(map.handle.buffer);
      assert.equal(Atomics.load(i32, R_READ) & 1, c.amended ? 1 : 0);
      const ctrl = new Int32Array(new SharedArrayBuffer(8));
      const { promise, resolve, reject } = Promise.withResolvers<ZombieReadsReply>();
      const worker = startWorker(new URL("./fixtures/zombie_reads_worker.ts", import.meta.url), {
        message: (data) => resolve(data as ZombieReadsReply),
        error: reject,
      });
      try {
        worker.postMessage(
          { read: c.read, close: c.close, handle: map.handle, ctrl } satisfies ZombieReadsRequest,
        );
        await until(() => Atomics.load(ctrl, 0) !== 0, "the worker waits", 30_000);
        const owner = Atomics.load(ctrl, 0);
        const seat = seatOf(i32, owner);
        const before = seat();
        assert.ok(before.retired > 0, "it has retired records waiting");
        // No call of the map from here until the worker reports, and no reap as its end is
        // recorded (census.ts onGone): nothing of this thread reaps its seat.
        setGoneHooksForTests(false);
        threadGone(owner - 1);
        Atomics.store(ctrl, 1, 1);
        Atomics.notify(ctrl, 1);
        const reply = await promise;
        if (c.amended) {
          assert.deepEqual(
            [reply.reads, reply.error],
            [0, "TerminatedError"],
            "stopped at the mutex",
          );
        } else {
          assert.ok(["none", "TerminatedError"].includes(reply.error), reply.error);
        }
        assert.equal(reply.closeError, "none", "close() in a stopped thread throws nothing");
        assert.deepEqual(seat(), before, "its seat untouched: no collect, no withdraw, no release");
        for (let i = 0; i < 200; i++) map.load(i & 63); // reaps the seat
        assert.equal(map.stats().participants, 1);
        map.verify();
      } finally {
        setGoneHooksForTests(true);
        worker.terminate();
      }
    });
  }
});
