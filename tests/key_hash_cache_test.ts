// Engine unit tests of the string-key hash cache (src/_engine/key_hash_cache.ts) behind a map
// handle's key probe (slots.ts keyProbe): a cached probe gives exactly the hash and units an
// uncached one computes, under any mix of strings, repeats, restarts and hash keys; a working
// set larger than the cache switches it off and it comes back; and maps with string keys keep
// finding their keys through it.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { GoMap, SyncMap } from "../mod.ts";
import {
  CAPACITY,
  MAX_UNITS,
  OFF_CALLS,
  WINDOW,
  WORD_BUDGET,
} from "../src/_engine/key_hash_cache.ts";
import { keyProbe, Probe, StringSlots } from "../src/_engine/slots.ts";

const codec = new StringSlots();

/** What an uncached probe makes of `s` under (k0, k1): the hash, and the units' words. */
function reference(s: string, k0: number, k1: number): { hash: number; words: number[] } {
  const p = new Probe();
  codec.toKey(s, p, k0, k1);
  return {
    hash: p.hash,
    words: p.hasWords ? Array.from(p.words.subarray(0, (s.length + 1) >> 1)) : [],
  };
}

function keyed(p: Probe, s: string, k0: number, k1: number): { hash: number; words: number[] } {
  codec.toKey(s, p, k0, k1);
  return {
    hash: p.hash,
    words: p.hasWords ? Array.from(p.words.subarray(0, (s.length + 1) >> 1)) : [],
  };
}

/** Any UTF-16 units, lone surrogates included, up to a little past the cached length. */
const units = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: MAX_UNITS + 8 })
  .map((codes) => String.fromCharCode(...codes));

describe("key hash cache", () => {
  it("a cached probe gives the hash and words an uncached one computes", () => {
    const seeds = fc.tuple(
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    );
    fc.assert(
      fc.property(
        fc.array(units, { minLength: 1, maxLength: 40 }),
        seeds,
        seeds,
        fc.array(fc.nat(), { minLength: 1, maxLength: 300 }),
        (pool, a, b, picks) => {
          const p = keyProbe();
          for (const [n, pick] of picks.entries()) {
            const s = pool[pick % pool.length];
            // Two hash keys on one probe: a cached entry must never answer for the other key.
            const [k0, k1] = (pick >> 3) % 2 === 0 ? a : b;
            assert.deepEqual(
              keyed(p, s, k0, k1),
              reference(s, k0, k1),
              `call ${n}: ${JSON.stringify(s)}`,
            );
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("keeps answering exactly with more strings than it holds, each seen often", () => {
    const p = keyProbe();
    const strings = Array.from(
      { length: CAPACITY + 300 },
      (_, i) => `key:${i}:${"x".repeat(i % 20)}`,
    );
    const expected = strings.map((s) => reference(s, 7, -9));
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < strings.length; i += round + 1) {
        assert.deepEqual(keyed(p, strings[i], 7, -9), expected[i], `round ${round}, string ${i}`);
      }
    }
    assert.ok(p.keyCache!.size <= CAPACITY);
  });

  it("a working set larger than the cache switches it off for a while, then it tries again", () => {
    const p = keyProbe();
    const cache = p.keyCache!;
    const few = Array.from({ length: 64 }, (_, i) => `hot key ${i}`);
    for (let i = 0; i < 2 * WINDOW; i++) keyed(p, few[i % few.length], 1, 2);
    assert.equal(cache.on, true, "a small working set keeps it on");
    assert.equal(cache.size, few.length);
    const many = Array.from({ length: 2 * CAPACITY }, (_, i) => `cold key ${i}`);
    let i = 0;
    while (cache.on && i < 4 * WINDOW) keyed(p, many[i++ % many.length], 1, 2);
    assert.equal(cache.on, false, "a working set twice its size switches it off");
    assert.ok(i <= 2 * WINDOW, `off within two windows, took ${i} calls`);
    // Off, it still answers exactly.
    assert.deepEqual(keyed(p, few[0], 1, 2), reference(few[0], 1, 2));
    for (let j = 0; j < OFF_CALLS; j++) keyed(p, few[j % few.length], 1, 2);
    assert.equal(cache.on, true, "back on after its off period");
    for (let j = 0; j < 2 * WINDOW; j++) keyed(p, few[j % few.length], 1, 2);
    assert.equal(cache.on, true);
  });

  it("a key cycle somewhat larger than the cache keeps hitting on the part the cache holds", () => {
    const p = keyProbe();
    const cache = p.keyCache!;
    const cycle = Array.from({ length: CAPACITY + CAPACITY / 4 }, (_, i) => `cycling key ${i}`);
    const expected = cycle.map((s) => reference(s, 3, 4));
    for (let i = 0; i < 3 * WINDOW; i++) {
      const j = i % cycle.length;
      assert.deepEqual(keyed(p, cycle[j], 3, 4), expected[j], `call ${i}`);
    }
    // Starting over when full would make a cycle longer than the cache miss on every lookup.
    assert.equal(cache.on, true, "four in five lookups hit: it stays on");
    assert.equal(cache.size, CAPACITY, "full, it keeps what it holds");
  });

  it("holds strings up to its longest, and long strings only up to its word budget", () => {
    const p = keyProbe();
    const cache = p.keyCache!;
    // A UUID-sized key and the longest cached one are held; one unit more is not.
    const uuid = "2f1c9a54-7d3e-4b8a-9c61-0e5f4a7b2d19";
    for (const s of [uuid, "L".repeat(MAX_UNITS), "M".repeat(MAX_UNITS + 1)]) {
      assert.deepEqual(keyed(p, s, 1, 2), reference(s, 1, 2));
    }
    assert.equal(cache.size, 2, "a string longer than MAX_UNITS is not held");
    // Long strings fill the word budget long before CAPACITY, and stay exact past it.
    const long = Array.from({ length: 600 }, (_, i) => `${i}:`.padEnd(MAX_UNITS - (i % 7), "~"));
    const expected = long.map((s) => reference(s, 1, 2));
    for (let round = 0; round < 2; round++) {
      for (const [i, s] of long.entries()) {
        assert.deepEqual(keyed(p, s, 1, 2), expected[i], `round ${round}, string ${i}`);
      }
    }
    assert.ok(cache.words <= WORD_BUDGET, `${cache.words} words held`);
    assert.ok(cache.words > WORD_BUDGET - MAX_UNITS, `full by words: ${cache.words} held`);
    assert.ok(cache.size < CAPACITY / 2, `${cache.size} strings held`);
    assert.equal(cache.on, true, "the strings it holds hit: it stays on");
    cache.clear();
    assert.equal(cache.words, 0);
    assert.deepEqual(keyed(p, long[0], 1, 2), expected[0]);
    assert.equal(cache.size, 1, "emptied, it learns again");
  });

  it("a full cache whose working set moved on learns the new one after its off period", () => {
    const p = keyProbe();
    const cache = p.keyCache!;
    const before = Array.from({ length: CAPACITY }, (_, i) => `earlier key ${i}`);
    for (let i = 0; i < 2 * WINDOW; i++) keyed(p, before[i % before.length], 5, 6);
    assert.equal(cache.size, CAPACITY);
    assert.equal(cache.on, true);
    const now = Array.from({ length: 64 }, (_, i) => `later key ${i}`);
    let i = 0;
    while (cache.on && i < 2 * WINDOW) keyed(p, now[i++ % now.length], 5, 6);
    assert.equal(cache.on, false, "a window of misses switches it off");
    for (let j = 0; j < OFF_CALLS; j++) keyed(p, now[j % now.length], 5, 6);
    assert.equal(cache.on, true);
    for (let j = 0; j < 2 * WINDOW; j++) {
      assert.deepEqual(keyed(p, now[j % now.length], 5, 6), reference(now[j % now.length], 5, 6));
    }
    assert.equal(cache.on, true, "the new working set is learned: the cache stays on");
    assert.equal(cache.size, now.length);
  });

  it("maps with string keys find every key, short and long, through their cached probes", () => {
    const keys = Array.from(
      { length: 3 * CAPACITY },
      (_, i) => `k${i}`.padEnd(3 + (i % (MAX_UNITS + 4)), "·"),
    );
    const sync = new SyncMap<string, number>();
    const go = new GoMap<string, number>();
    for (let round = 0; round < 3; round++) {
      for (const [i, k] of keys.entries()) {
        sync.store(k, i + round);
        go.set(k, i + round);
      }
      for (const [i, k] of keys.entries()) {
        assert.equal(sync.load(k), i + round);
        assert.equal(go.get(k), i + round);
        assert.equal(sync.load(k + "?"), undefined);
        assert.equal(go.has(k + "?"), false);
      }
    }
    sync.verify();
    go.verify();
  });
});
