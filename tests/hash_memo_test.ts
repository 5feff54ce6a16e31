// Engine unit tests of the number-key hash memo (src/_engine/hash_memo.ts): whatever pairs of
// words it is asked for, in any order, under any hash key, it answers exactly what hashWords
// computes, slot-sharing pairs included; and maps whose number keys share memo slots keep
// finding every key, through any handle.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { GoMap, SyncMap } from "../mod.ts";
import { hashWords } from "../src/_engine/hash.ts";
import { numberOf } from "./fixtures/crafted_keys.ts";
import { HashMemo, MEMO_SLOTS, OFF_CALLS, WARMUP, WINDOW } from "../src/_engine/hash_memo.ts";

/**
 * `count` pairs of words that all share one memo slot (their lo ^ hi is equal), each a finite
 * number's: hi keeps an exponent of 1 and only its low 20 bits change.
 */
function slotSharers(count: number, seed: number): [number, number][] {
  const pairs: [number, number][] = [];
  for (let j = 0; j < count; j++) {
    const c = Math.imul(j + 1, 0x9e37) & 0xfffff;
    pairs.push([(seed ^ c) | 0, (0x3ff00000 | (seed & 0xfffff)) ^ c]);
  }
  return pairs;
}

const word = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });

describe("hash memo", () => {
  it("answers what hashWords computes, for any pairs in any order, under any key", () => {
    // Pairs drawn from a small pool, so that they repeat (hits), and pairs sharing a slot with
    // one another (evictions); (0, 0), the words every slot starts with, and (-1, -1) included.
    const pair = fc.oneof(
      fc.tuple(word, word),
      fc.constantFrom<[number, number]>([0, 0], [-1, -1], [0, -1], [1, 0], [0, 0x3ff00000]),
      fc.tuple(word, word, fc.integer({ min: 1, max: 2 ** 20 })).map(([lo, hi, c]) =>
        [lo ^ c, hi ^ c] as [number, number]
      ),
    );
    fc.assert(
      fc.property(word, word, fc.array(pair, { minLength: 1, maxLength: 200 }), (k0, k1, pairs) => {
        const memo = new HashMemo(k0, k1);
        for (let j = 0; j < WARMUP; j++) memo.hash(j, -j); // past the warm-up: the table in use
        for (const [lo, hi] of [...pairs, ...pairs.toReversed(), ...pairs]) {
          assert.equal(memo.hash(lo, hi), hashWords(lo, hi, k0, k1), `(${lo}, ${hi})`);
          assert.ok(memo.holds(lo, hi), "a pair just hashed is held");
        }
      }),
      { numRuns: 300 },
    );
  });

  it("without a table, answers what hashWords computes, for any pairs repeated or not", () => {
    // The warm-up's lookups (no table yet) keep the last pair hashed and its hash: a pair asked
    // again at once (a miss's second lookup, under the mutex) is answered from it.
    const pair = fc.oneof(
      fc.tuple(word, word),
      fc.constantFrom<[number, number]>([0, 0], [-1, -1], [0, -1], [1, 0]),
    );
    fc.assert(
      fc.property(word, word, fc.array(pair, { minLength: 1, maxLength: 100 }), (k0, k1, pairs) => {
        const memo = new HashMemo(k0, k1);
        const asked = pairs.flatMap((p, j) => j % 3 === 0 ? [p, p] : [p]);
        for (const [lo, hi] of asked.slice(0, WARMUP - 1)) {
          assert.equal(memo.hash(lo, hi), hashWords(lo, hi, k0, k1), `(${lo}, ${hi})`);
        }
        assert.equal(memo.on, false, "still without a table");
      }),
      { numRuns: 300 },
    );
  });

  it("a fresh memo makes its table after WARMUP lookups, holding (0, 0) with its true hash", () => {
    const memo = new HashMemo(0x12345678, -0x789abcd);
    const hash = (lo: number, hi: number) => hashWords(lo, hi, 0x12345678, -0x789abcd);
    for (let j = 0; j < WARMUP - 1; j++) assert.equal(memo.hash(j, 3), hash(j, 3));
    assert.equal(memo.on, false, "no table before WARMUP lookups");
    assert.equal(memo.holds(0, 0), false);
    assert.equal(memo.hash(5, 7), hash(5, 7));
    assert.equal(memo.on, true, "the table is made at the WARMUP-th lookup");
    assert.equal(memo.holds(0, 0), true);
    assert.equal(memo.hash(0, 0), hash(0, 0));
    // Every other slot also starts as (0, 0): a pair mapping there is not taken for it.
    for (const [lo, hi] of slotSharers(8, 0x5a5a5)) {
      assert.equal(memo.holds(lo, hi), false);
      assert.equal(memo.hash(lo, hi), hash(lo, hi));
      assert.equal(memo.holds(lo, hi), true);
    }
  });

  it("pairs sharing a slot evict one another and are each hashed right", () => {
    const memo = new HashMemo(1, 2);
    for (let j = 0; j < WARMUP; j++) memo.hash(j, 0x40000000);
    const pairs = slotSharers(4, 0x1234567);
    for (let round = 0; round < 3; round++) {
      for (const [lo, hi] of pairs) {
        assert.equal(memo.hash(lo, hi), hashWords(lo, hi, 1, 2));
        for (const [lo2, hi2] of pairs) assert.equal(memo.holds(lo2, hi2), lo2 === lo);
      }
    }
  });

  it("a working set far larger than the memo switches it off, and it comes back", () => {
    const memo = new HashMemo(7, 9);
    for (let j = 0; j < WARMUP; j++) memo.hash(j, 0x40000000);
    // A working set that fits: hits outnumber misses in every window; the memo stays on.
    for (let round = 0; round < 8; round++) {
      for (let j = 0; j < 1024; j++) {
        assert.equal(memo.hash(j, 0x40000000), hashWords(j, 0x40000000, 7, 9));
      }
    }
    for (let j = 0; j < 4 * WINDOW; j++) memo.hash(j & 1023, 0x40000000);
    assert.equal(memo.on, true, "a working set that fits keeps the memo on");
    // Fresh pairs only: the next window (WINDOW misses, whatever it began with) has far fewer
    // hits than misses and switches it off.
    let n = 1 << 20;
    for (let j = 0; j < 2 * WINDOW && memo.on; j++) memo.hash(n++, 0x41000000);
    assert.equal(memo.on, false, "a window of misses switches the memo off");
    assert.equal(memo.holds(5, 0x40000000), false, "nothing is read while off");
    // Off, it hashes every pair itself, rightly, for OFF_CALLS lookups, then comes back.
    for (let j = 0; j < OFF_CALLS - 1; j++) {
      const lo = j % 2048;
      const h = memo.hash(lo, 0x40000000);
      if (j % 4093 === 0) assert.equal(h, hashWords(lo, 0x40000000, 7, 9));
    }
    assert.equal(memo.on, false);
    assert.equal(memo.hash(3, 0x40000000), hashWords(3, 0x40000000, 7, 9));
    assert.equal(memo.on, true, "back on after OFF_CALLS lookups");
    assert.equal(memo.hash(3, 0x40000000), hashWords(3, 0x40000000, 7, 9));
    assert.equal(memo.holds(3, 0x40000000), true, "the table is in use again");
  });

  it("maps find every number key when the keys share memo slots, through any handle", () => {
    // More slot-sharing keys than the memo has slots, mixed with ordinary ones.
    const keys = [
      ...slotSharers(64, 0x2468a).map(([lo, hi]) => numberOf(lo, hi)),
      ...slotSharers(64, 0x13579).map(([lo, hi]) => numberOf(lo, hi)),
      ...Array.from({ length: MEMO_SLOTS + 100 }, (_, i) => i * 3),
    ];
    const go = new GoMap<number, number>();
    const sync = new SyncMap<number, number>();
    keys.forEach((k, i) => {
      go.set(k, i);
      sync.store(k, i);
    });
    const goCopy = GoMap.attach<number, number>(go.handle);
    const syncCopy = SyncMap.attach<number, number>(sync.handle);
    for (let round = 0; round < 2; round++) {
      keys.forEach((k, i) => {
        assert.equal(go.get(k), i, `GoMap get ${k}`);
        assert.equal(go.has(k), true);
        assert.equal(goCopy.get(k), i);
        assert.equal(sync.load(k), i, `SyncMap load ${k}`);
        assert.equal(syncCopy.load(k), i);
        assert.equal(go.get(k + 0.5), undefined, "a miss");
        assert.equal(sync.load(k + 0.5), undefined);
      });
    }
    assert.equal(go.size, keys.length);
    assert.equal(sync.size, keys.length);
    go.verify();
    sync.verify();
    sync.close();
    syncCopy.close();
  });
});
