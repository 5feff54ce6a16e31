// Copyright the shmap authors. MIT license.
//
// Hash flooding: keys crafted to collide under the MurmurHash3-style hash shmap used before
// (tests/fixtures/crafted_keys.ts) must spread over a map's buckets like random keys under the
// keyed hash. Checked by structure, not by timing (bench/hash.ts has the timings): the overflow
// buckets a GoMap needs for them, and the distribution of their bucket indexes and tophashes
// under random keys, bounded where random keys fail with negligible probability.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Codec, GoMap, type GoMapStats } from "../mod.ts";
import { hashBytes, hashString, hashUnits, hashWords } from "../src/_engine/hash.ts";
import * as murmur3 from "./fixtures/murmur3_hash.ts";
import {
  bigintBytes,
  collidingNumberPairs,
  craftedBigints,
  craftedBytes,
  craftedStrings,
  wordsOf,
} from "./fixtures/crafted_keys.ts";

function randomWord(): number {
  return crypto.getRandomValues(new Int32Array(1))[0];
}

/** The UTF-16 code units of `s`, as a stored string blob holds them. */
function unitsOf(s: string): Uint16Array {
  return Uint16Array.from({ length: s.length }, (_, i) => s.charCodeAt(i));
}

/** A user codec that stores byte strings as themselves. */
const rawBytes: Codec<Uint8Array> = {
  name: "test-raw-bytes",
  encode: (bytes) => bytes,
  decode: (bytes) => bytes,
};

/**
 * Pearson's statistic of `hashes` over 256 bins: the low byte (the bucket while B = 8) or the
 * top byte (the tophash).
 */
function chiSquare(hashes: readonly number[], top: boolean): number {
  const bins = new Array<number>(256).fill(0);
  for (const h of hashes) bins[top ? h >>> 24 : h & 255]++;
  const expected = hashes.length / 256;
  return bins.reduce((sum, n) => sum + (n - expected) ** 2 / expected, 0);
}

/**
 * The bound on chiSquare for 4096 hashes: for 255 degrees of freedom, P(X >= 255 + 2 sqrt(255 x)
 * + 2x) <= e^-x (Laurent and Massart), which is 490 for x = 30. Keys in one bin score 261,120.
 */
const CHI_SQUARE_BOUND = 490;

/**
 * The most overflow buckets a GoMap may need for 1024 keys that hash like random ones: at B = 8
 * each bucket holds about Poisson(4) keys and overflows with probability 0.021, so about 5.5
 * buckets overflow, and 32 or more do with probability below 1e-12 (Chernoff). Keys with one
 * hash make one chain of 127 overflow buckets.
 */
const OVERFLOW_BOUND = 32;

describe("the crafted keys collide under the old hash, whatever the seed", () => {
  // These check the fixture: the crafted sets are what the regression tests below claim.
  test("strings, stored units, bytes and bigints: one hash per set under random seeds", () => {
    const strings = craftedStrings(10, { prefix: "ab", suffix: "z" });
    const bytes = craftedBytes(10);
    const bigints = craftedBigints(10).map(bigintBytes);
    assert.equal(new Set(strings).size, 1024);
    assert.equal(new Set(bytes.map((b) => b.join())).size, 1024);
    assert.equal(new Set(bigints.map((b) => b.join())).size, 1024);
    for (let trial = 0; trial < 4; trial++) {
      const seed = randomWord();
      assert.equal(new Set(strings.map((s) => murmur3.hashString(s, seed))).size, 1);
      assert.equal(
        new Set(strings.map((s) => murmur3.hashUnits(unitsOf(s), 0, s.length, seed))).size,
        1,
      );
      assert.equal(new Set(bytes.map((b) => murmur3.hashBytes(b, 0, b.length, seed))).size, 1);
      assert.equal(new Set(bigints.map((b) => murmur3.hashBytes(b, 0, b.length, seed))).size, 1);
    }
  });

  test("numbers: each crafted pair has one word hash under random seeds", () => {
    const pairs = collidingNumberPairs(1000);
    for (const [x, y] of pairs) {
      assert.ok(Number.isFinite(x) && Number.isFinite(y) && x !== y && x !== 0);
      const [lo, hi] = wordsOf(x);
      const [lo2, hi2] = wordsOf(y);
      const seed = randomWord();
      assert.equal(murmur3.hashWords(lo, hi, seed), murmur3.hashWords(lo2, hi2, seed));
    }
  });
});

/** Stores keys[i] = i for the 1,024 `keys` and reads them back; returns the map's stats. */
function storeAll<K>(map: GoMap<K, number>, keys: readonly K[]): GoMapStats {
  keys.forEach((k, i) => map.set(k, i));
  assert.equal(map.size, 1024);
  keys.forEach((k, i) => assert.equal(map.get(k), i));
  return map.stats();
}

/** Asserts the keys needed no more overflow buckets than random keys would. */
function assertSpread(s: GoMapStats): void {
  assert.ok(s.overflowBuckets < OVERFLOW_BOUND, `${s.overflowBuckets} overflow buckets`);
}

describe("crafted keys spread like random keys under the keyed hash", () => {
  test("GoMap: 1024 crafted strings need no more overflow buckets than random keys", () => {
    const keys = craftedStrings(10);
    const map = new GoMap<string, number>();
    const s = storeAll(map, keys);
    assert.equal(s.B, 8);
    assertSpread(s);
  });

  test("GoMap: 1024 crafted byte keys (a user codec) need no more than random keys", () => {
    const keys = craftedBytes(10, { prefix: Uint8Array.of(1, 2, 3, 4) });
    const map = new GoMap<Uint8Array, number>({ keys: rawBytes });
    assertSpread(storeAll(map, keys));
  });

  test("GoMap: 1024 crafted big bigints need no more overflow buckets than random keys", () => {
    const keys = craftedBigints(10);
    const map = new GoMap<bigint, number>();
    assertSpread(storeAll(map, keys));
  });

  test("bucket and tophash bytes of crafted strings, units, bytes and bigints are uniform", () => {
    const strings = craftedStrings(12, { seed: 9 });
    const bytes = craftedBytes(12, { seed: 9 });
    const bigints = craftedBigints(12, 9).map(bigintBytes);
    const k0 = randomWord();
    const k1 = randomWord();
    const sets: [string, number[]][] = [
      ["strings", strings.map((s) => hashString(s, k0, k1))],
      [
        "stored units",
        strings.map((s) => hashUnits(unitsOf(s), 0, s.length, k0, k1)),
      ],
      ["bytes", bytes.map((b) => hashBytes(b, 0, b.length, k0, k1))],
      ["bigints", bigints.map((b) => hashBytes(b, 0, b.length, k0, k1))],
    ];
    for (const [what, hashes] of sets) {
      assert.equal(hashes.length, 4096);
      for (const top of [false, true]) {
        const x = chiSquare(hashes, top);
        assert.ok(x < CHI_SQUARE_BOUND, `${what}, ${top ? "top" : "low"} byte: chi-square ${x}`);
      }
    }
  });

  test("numbers: the crafted pairs do not collide", () => {
    const k0 = randomWord();
    const k1 = randomWord();
    let collisions = 0;
    for (const [x, y] of collidingNumberPairs(1000)) {
      const [lo, hi] = wordsOf(x);
      const [lo2, hi2] = wordsOf(y);
      if (hashWords(lo, hi, k0, k1) === hashWords(lo2, hi2, k0, k1)) collisions++;
    }
    // Random pairs collide with probability 2^-32 each: two or more in 1000 has P < 1e-13.
    assert.ok(collisions <= 1, `${collisions} of 1000 pairs collide`);
  });
});
