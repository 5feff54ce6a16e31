// Copyright the shmap authors. MIT license.
// A load never throws for want of memory. A load's miss under the mutex may promote the dirty
// table (Go's missLocked), which retires the old read table; but a load makes no room to retire
// in (Participant.enterRead), and a participant whose retire list could not grow (the map full)
// has none. It threw "internal error: retire without room made for it" (found by the full-map
// termination storm, helper-114): a worker's load died while another worker kept adding keys.
// Now such a miss leaves the promotion due, and the next miss made with room promotes; and
// stats() and verify(), which retire nothing either, no longer throw MapFullError there.

import assert from "node:assert/strict";
import { test } from "node:test";
import { MapFullError, SyncMap } from "../mod.ts";
import { failAllocationsForTests } from "../src/_engine/allocator.ts";
import { attachOwnSeat } from "../src/maps/sync_map.ts";

/** Whether `f` threw MapFullError; any other error is thrown on. */
function full(f: () => void): boolean {
  try {
    f();
    return false;
  } catch (error) {
    if (error instanceof MapFullError) return true;
    throw error;
  }
}

test("a load whose miss would promote, in a participant with no room to retire, loads; stats() and verify() answer", () => {
  const a = new SyncMap<string, string>(); // loads
  const b = attachOwnSeat<string, string>(a.handle); // adds new keys
  const c = attachOwnSeat<string, string>(a.handle); // online, and never moves again
  try {
    for (let i = 0; i < 300; i++) a.store(`k${i}`, "y");
    for (let i = 0; i < 400; i++) a.load(`miss ${i}`);
    assert.equal(a.stats().amended, false, "promoted: the keys are in a read table");
    b.load("k0");
    c.load("k0"); // from here on, nothing retired is freed
    // A retire list's growth (4,104 bytes for 512 entries) finds the map full.
    failAllocationsForTests((size) => size > 4000);
    let deleted = 0;
    try {
      while (deleted < 300 && !full(() => a.delete(`k${deleted}`))) deleted++;
      assert.ok(deleted < 300, "a's retire list ran out of room");
      for (let round = 0; round < 20; round++) {
        b.store(`new ${round}`, "z"); // amended: the dirty table holds a key the read table lacks
        for (let i = 0; i < 400; i++) {
          assert.equal(a.load(`missing ${round} ${i}`), undefined);
        }
        assert.equal(a.load(`new ${round}`), "z");
        assert.equal(a.load(`k${deleted + 1}`), "y");
      }
      // stats() and verify() retire nothing, and answer too.
      assert.equal(a.stats().amended, true, "no promotion without room");
      a.verify();
    } finally {
      failAllocationsForTests(undefined);
    }
    a.verify();
    // With memory back and the laggard gone, a's misses promote again.
    c.close();
    for (let i = 0; i < 2_000 && a.stats().amended; i++) a.load(`later ${i}`);
    assert.equal(a.stats().amended, false, "a miss with room promoted");
    for (let round = 0; round < 20; round++) assert.equal(a.load(`new ${round}`), "z");
    assert.equal(a.size, 300 - deleted + 20);
    a.verify();
  } finally {
    b.close();
  }
});
