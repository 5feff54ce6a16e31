// Copyright the shmap authors. MIT license.
// The benchmark cases of bench/cases.ts do what their names say: each case's op, run from a
// fresh setup for a few passes over its key set, returns what the shape must return (a hit
// finds the value, a miss finds nothing, a churn's deletes delete) and leaves the map as the
// shape must. A broken case then fails here, quickly, instead of timing the wrong thing.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CASES } from "../bench/cases.ts";

/** Calls per case: three passes over the 1,024 keys, and an odd count (churn ends on a store). */
const CALLS = 3 * 1024 + 1;

describe("bench cases", () => {
  it("are many, in every section, with unique names in each group", () => {
    const sections = new Set(CASES.map((c) => c.section));
    assert.deepEqual([...sections].sort(), ["gomap", "syncmap", "workers"]);
    const names = CASES.map((c) => `${c.group} / ${c.name}`);
    assert.equal(new Set(names).size, names.length);
  });

  it("cover Go's shapes, string keys and the churn", () => {
    const groups = new Set(CASES.map((c) => c.group));
    for (
      const g of [
        "LoadMostlyHits",
        "LoadMostlyHits, str16",
        "LoadMostlyMisses, str16",
        "LoadOrStoreCollision",
        "LoadAndDeleteCollision",
        "AdversarialAlloc",
        "AdversarialDelete",
        "StoreDeleteChurn",
        "StoreDeleteChurn, str16",
        "get hit, int keys",
        "read-mostly, int keys",
        "disjoint writers",
      ]
    ) {
      assert.ok(groups.has(g), `no group ${g}`);
    }
  });

  for (const c of CASES) {
    it(`${c.group} / ${c.name}`, () => {
      const run = c.setup();
      const results: unknown[] = [];
      for (let j = 0; j < CALLS; j++) results.push(run.op());
      run.check(results);
    });
  }

  it("a check fails when the op does something else", () => {
    const hits = CASES.find((c) => c.group === "LoadMostlyHits" && c.name === "SyncMap")!;
    const misses = CASES.find((c) => c.group === "LoadMostlyMisses" && c.name === "SyncMap")!;
    const wrong = misses.setup();
    const results = Array.from({ length: 2048 }, () => wrong.op());
    assert.throws(() => hits.setup().check(results), /call 1: got undefined, want 1/);
  });
});
