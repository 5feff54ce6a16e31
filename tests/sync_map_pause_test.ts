// Copyright the shmap authors. MIT license.
// A participant parked by a stop of the world must not run on into the next one. Between its
// reading the pause word lowered and its clearing of PARKED, another thread may raise a new
// pause and read it still parked: that thread then sweeps (frees what nothing reaches, recounts
// the keys) while the participant, had it gone on, would run an operation beside the sweep (a
// delete's count landed after the recount: the termination storm found "the count says 156
// keys but 157 have a value"). So the participant reads the pause word again after unparking
// (reclaim.ts, #pause). The window is a few instructions wide; this test opens it in one
// thread by raising the second pause from inside the unpark's own store.

import assert from "node:assert/strict";
import { test } from "node:test";
import { GONE, ownerId, record } from "../src/_engine/census.ts";
import { OWNER, PARKED, SEAT_WORDS } from "../src/_engine/registry.ts";
import { SyncMap } from "../src/maps/sync_map.ts";
import { R_PAUSE, R_SEATS, R_SEATS_HIGH } from "../src/maps/_sync_layout.ts";
import { sleep } from "./fixtures/harness.ts";

test("SyncMap: a participant parked by a pause looks at the pause word again once unparked", async () => {
  const map = new SyncMap<number, number>();
  map.store(1, 1);
  await sleep(0); // the task ends: the participant goes offline, its next call comes online
  const buffer = map.handle.buffer;
  const i32 = new Int32Array(buffer);
  // This thread's seat's PARKED word.
  const seats = i32[R_SEATS];
  let parked = -1;
  for (let i = 0; i < Atomics.load(i32, R_SEATS_HIGH); i++) {
    if (i32[seats + i * SEAT_WORDS + OWNER] === ownerId()) parked = seats + i * SEAT_WORDS + PARKED;
  }
  assert.ok(parked > 0, "this thread's seat");
  // Two pauses raised by threads that are gone, so that the parked participant lowers each
  // itself and the test needs no second thread.
  const ghost = 300_000 + Math.floor(Math.random() * 100_000) * 4;
  record(ghost, GONE);
  record(ghost + 1, GONE);
  const store = Atomics.store;
  const parkedStores: number[] = [];
  let raised = false;
  try {
    Atomics.store = ((view: Int32Array, index: number, value: number): number => {
      const result = store(view, index, value);
      if (view.buffer === buffer && index === parked) {
        parkedStores.push(value);
        if (value === 0 && !raised) {
          // The next pauser: raises its pause after this thread read the first one lowered.
          raised = true;
          store(i32, R_PAUSE, ghost + 1 + 1);
        }
      }
      return result;
    }) as typeof Atomics.store;
    Atomics.store(i32, R_PAUSE, ghost + 1); // the first pause (owner ids are thread ids + 1)
    map.store(2, 2); // comes online, finds the pause, parks
  } finally {
    Atomics.store = store;
  }
  assert.ok(raised, "the participant parked and unparked");
  assert.deepEqual(parkedStores, [1, 0, 1, 0], "it parked again for the second pause");
  assert.equal(Atomics.load(i32, R_PAUSE), 0);
  assert.equal(map.load(2), 2);
  map.verify();
});
