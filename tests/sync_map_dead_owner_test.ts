// A SyncMap whose mutex was held by a thread that died: the operation that takes the mutex over
// recovers it, and the reclamation of what the dead thread left must not free what that
// operation itself still holds. Deterministic, in one thread: the dead holder is a thread id
// recorded gone in the census, written into the mutex word as its owner.

import assert from "node:assert/strict";
import { test } from "node:test";
import { SyncMap } from "../mod.ts";
import { GONE, record } from "../src/_engine/census.ts";
import { OWNER_SHIFT } from "../src/_engine/futex.ts";
import { R_DIRTY, R_MU, R_READ, R_SWEEP_DUE } from "../src/maps/_sync_layout.ts";

/** Makes the map's mutex held by a thread that is gone, as if it had died holding it. */
function dieHoldingMutex(map: SyncMap<unknown, unknown>, threadId: number): void {
  record(threadId, GONE);
  const i32 = new Int32Array(map.handle.buffer);
  Atomics.store(i32, R_MU, (threadId + 1) << OWNER_SHIFT);
  // A sweep is due, as after a worker's share is released (sync_map.ts #reserveShare).
  Atomics.store(i32, R_SWEEP_DUE, 1);
}

test("SyncMap: a delete that recovers a dead holder's mutex frees the deleted value once", () => {
  for (const [i, op] of (["delete", "loadAndDelete"] as const).entries()) {
    const map = new SyncMap<string, string>();
    map.store("k", "a value in a record");
    map.store("other", "x");
    const i32 = new Int32Array(map.handle.buffer);
    // "k" is in the dirty table only: its delete removes its entry from that table and retires
    // it under the mutex, then takes the value out of the entry.
    assert.notEqual(Atomics.load(i32, R_DIRTY), 0);
    assert.equal(Atomics.load(i32, R_READ) & ~1, 0, "no read table yet");
    dieHoldingMutex(map, 2 ** 27 + 100 + i);
    if (op === "delete") assert.equal(map.delete("k"), true);
    else assert.deepEqual(map.loadAndDelete("k"), ["a value in a record", true]);
    // The record the deleted entry held is retired once, and freed once.
    map.verify();
    for (let n = 0; n < 1000; n++) map.store(`n${n}`, `v${n}`);
    for (let n = 0; n < 1000; n++) map.delete(`n${n}`);
    map.verify();
    assert.deepEqual([...map.keys()], ["other"]);
    map.close();
  }
});
