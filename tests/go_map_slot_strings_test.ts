// Copyright the shmap authors. MIT license.
// A GoMap handle keeps the string keys its iterations decoded, by key slot, under the entry
// memo's generation of the layout stamp (src/_engine/slot_strings.ts). A slot's key changes only
// with a new stamp, and the cache is emptied when the generations come round; checked here with
// a slot emptied and filled again by another key, between iterations.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { GoMap } from "../mod.ts";
import { MAX_UNITS, SlotStrings } from "../src/_engine/slot_strings.ts";
import { EntryMemo } from "../src/maps/_entry_memo.ts";

// Longer than a slot holds inline: a blob, whose string an iteration makes anew.
const A = "alpha-key-of-a-few-units";
const B = "bravo-key-of-a-few-units";

/**
 * The entry memo that iterations of `map` ask their generation of, and how many times two
 * iterations asked it (the first, which meets the map's first string key, makes the cache; the
 * second asks once a batch).
 */
function memoOf(map: GoMap<unknown, number>): { memo: EntryMemo | null; asks: number } {
  const proto = EntryMemo.prototype;
  const original = proto.generationAt;
  let memo: EntryMemo | null = null;
  let asks = 0;
  proto.generationAt = function (this: EntryMemo, ...args) {
    memo ??= this;
    asks++;
    return original.apply(this, args);
  };
  try {
    [...map];
    [...map];
  } finally {
    proto.generationAt = original;
  }
  return { memo, asks };
}

describe("GoMap iteration: string keys kept by slot", () => {
  test("a slot emptied and filled by another key yields the new key", () => {
    const map = new GoMap<string, number>().set(A, 1);
    assert.deepEqual([...map], [[A, 1]]);
    assert.deepEqual([...map], [[A, 1]]); // from the cache
    map.set(A, 2); // an overwrite: the same key, a new value
    assert.deepEqual([...map], [[A, 2]]);
    map.delete(A);
    map.set(B, 3); // the bucket's first free slot: the one A had
    assert.deepEqual([...map], [[B, 3]]);
    assert.deepEqual([...map.keys()], [B]);
    map.verify();
  });

  test("the generations coming round empty the cache", () => {
    const map = new GoMap<string, number>().set(A, 1);
    const { memo } = memoOf(map);
    assert.ok(memo !== null, "the iterations asked the entry memo for a generation");
    memo.setGenerationForTests(0); // the next stamp gets generation 1
    map.set("x", 0);
    assert.deepEqual(new Map(map), new Map([[A, 1], ["x", 0]])); // kept under generation 1
    map.delete(A);
    map.set(B, 2); // into A's slot, under a new stamp
    memo.setGenerationForTests(-1); // 2^32 - 1 generations on: the next one is 1 again
    assert.deepEqual(new Map(map), new Map([[B, 2], ["x", 0]]));
    map.verify();
  });

  test("a map of number keys makes no cache, and strings past 32 units are not kept", () => {
    const numbers = new GoMap<number, number>();
    for (let k = 0; k < 100; k++) numbers.set(k, k);
    assert.equal(memoOf(numbers).asks, 0, "no batch of a map of number keys asks a generation");
    const strings = new SlotStrings();
    strings.set(8, 1, "u".repeat(MAX_UNITS));
    strings.set(16, 1, "u".repeat(MAX_UNITS + 1));
    assert.equal(strings.get(8, 1), "u".repeat(MAX_UNITS));
    assert.equal(strings.get(16, 1), undefined);
    assert.equal(strings.get(8, 2), undefined);
  });
});
