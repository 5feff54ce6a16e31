// Copyright the shmap authors. MIT license.
// A GoMap handle keeps the string keys its iterations decoded, by key slot, under the entry
// memo's generation of the layout stamp (src/_engine/slot_strings.ts). A slot's key changes only
// with a new stamp, and the cache is emptied when the generations come round; checked here with
// a slot emptied and filled again by another key, between iterations.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { GoMap } from "../mod.ts";
import { EntryMemo } from "../src/maps/_entry_memo.ts";

// Longer than a slot holds inline: a blob, whose string an iteration makes anew.
const A = "alpha-key-of-a-few-units";
const B = "bravo-key-of-a-few-units";

/** The entry memo an iteration of `map` asks its generation of. */
function memoOf(map: GoMap<string, number>): EntryMemo {
  const proto = EntryMemo.prototype;
  const original = proto.generationAt;
  let memo: EntryMemo | null = null;
  proto.generationAt = function (this: EntryMemo, ...args) {
    memo ??= this;
    return original.apply(this, args);
  };
  try {
    [...map];
  } finally {
    proto.generationAt = original;
  }
  assert.ok(memo !== null, "the iteration asked the entry memo for a generation");
  return memo;
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
    const memo = memoOf(map);
    memo.setGenerationForTests(0); // the next stamp gets generation 1
    map.set("x", 0);
    assert.deepEqual(new Map(map), new Map([[A, 1], ["x", 0]])); // kept under generation 1
    map.delete(A);
    map.set(B, 2); // into A's slot, under a new stamp
    memo.setGenerationForTests(-1); // 2^32 - 1 generations on: the next one is 1 again
    assert.deepEqual(new Map(map), new Map([[B, 2], ["x", 0]]));
    map.verify();
  });
});
