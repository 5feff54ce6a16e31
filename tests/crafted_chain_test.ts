// Keys crafted with a map's hash seed to share one bucket make one long overflow chain, and a
// growth step evacuates a whole chain in one journaled mutation. Evacuation used to journal
// about 14 entries per bucket of chain (marks on buckets about to be freed, a count written per
// bucket), so about 590 such keys made an evacuation no journal took: the step failed with
// JournalFullError, and so did every later new key owed that step. It now journals one entry
// per bucket freed or allocated plus the allocator's own, and 750 keys grow through.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { GoMap, SyncMap } from "../mod.ts";
import { numbersInBucket } from "./fixtures/go_map_helpers.ts";

const CRAFTED = 750;

for (const kind of ["GoMap", "SyncMap"] as const) {
  describe(`${kind}: ${CRAFTED} keys crafted to share a bucket`, () => {
    test("they, and 20,000 other keys after them, are all stored through every growth", () => {
      const go = kind === "GoMap" ? new GoMap<number, number>() : null;
      const sync = go === null ? new SyncMap<number, number>() : null;
      const set = (k: number) => go !== null ? go.set(k, k * 2) : sync!.store(k, k * 2);
      const get = (k: number) => go !== null ? go.get(k) : sync!.load(k);
      // The low 12 bits of their hash alike: one bucket up to 4,096 buckets (26,624 keys).
      const crafted = numbersInBucket((go ?? sync) as GoMap<number, number>, 4095, 5, CRAFTED);
      for (const k of crafted) set(k);
      for (let i = 1; i <= 20_000; i++) set(-i);
      assert.equal((go ?? sync)!.size, CRAFTED + 20_000);
      for (const k of crafted) assert.equal(get(k), k * 2);
      for (let i = 1; i <= 20_000; i += 7) assert.equal(get(-i), -i * 2);
      (go ?? sync)!.verify();
    });
  });
}
