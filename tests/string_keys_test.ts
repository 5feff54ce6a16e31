// Copyright the shmap authors. MIT license.
//
// String keys stored as blobs (3 units or more) are looked up by comparing the stored units a
// 32-bit word at a time with the words the key's hash left in the probe (hashStringWords,
// Probe.matchesWords, Table.findString). These tests pin down the edges of that comparison:
// odd lengths (the last unit shares its word with whatever follows the blob), keys that differ in
// one unit anywhere, lone surrogates, lengths around the probe's word scratch limit, and a probe
// reused for a shorter key after a longer one.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { GoMap, SyncMap } from "../mod.ts";
import { H_SEED0, H_SEED1 } from "../src/_engine/arena.ts";
import { hashString, hashStringWords } from "../src/_engine/hash.ts";

/** A string of `n` units, unit i being `unit(i)`. */
function build(n: number, unit: (i: number) => number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += String.fromCharCode(unit(i));
  return s;
}

/** `s` with unit `i` replaced by `u`. */
function withUnit(s: string, i: number, u: number): string {
  return s.slice(0, i) + String.fromCharCode(u) + s.slice(i + 1);
}

// Around 2 * MAX_WORDS (2048 units): the longest keys compared by words, and the first not.
const LENGTHS = [3, 4, 5, 6, 7, 8, 15, 16, 17, 31, 32, 33, 2046, 2047, 2048, 2049, 2050, 5001];

describe("hashStringWords", () => {
  test("equals hashString and leaves the units in the words, two to a word", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", maxLength: 40 }),
        fc.integer(),
        fc.integer(),
        (s, k0, k1) => {
          const out = new Int32Array(21).fill(-1);
          assert.equal(hashStringWords(s, k0 | 0, k1 | 0, out), hashString(s, k0 | 0, k1 | 0));
          for (let j = 0; j < (s.length + 1) >> 1; j++) {
            const lo = s.charCodeAt(2 * j);
            const hi = 2 * j + 1 < s.length ? s.charCodeAt(2 * j + 1) : 0;
            assert.equal(out[j], lo | (hi << 16), `word ${j} of ${JSON.stringify(s)}`);
          }
        },
      ),
    );
  });
});

for (
  const [name, make] of [
    ["GoMap", () => new GoMap<string, number>()],
    ["SyncMap", () => new SyncMap<string, number>()],
  ] as const
) {
  // The two maps share the lookup; a small adapter gives them one shape.
  const open = () => {
    const m = make();
    return m instanceof GoMap
      ? { set: (k: string, v: number) => void m.set(k, v), get: (k: string) => m.get(k) }
      : { set: (k: string, v: number) => m.store(k, v), get: (k: string) => m.load(k) };
  };

  describe(`${name}: string keys compared a word at a time`, () => {
    test("keys differing in one unit, at the start, the middle or the end, are distinct", () => {
      for (const n of LENGTHS) {
        const m = open();
        const base = build(n, (i) => 0x61 + (i % 26));
        const variants = [0, n >> 1, n - 1].flatMap((i) => [
          withUnit(base, i, 0x41),
          withUnit(base, i, base.charCodeAt(i) | 0x100), // the high byte of the unit
          withUnit(base, i, 0xd800), // a lone surrogate
        ]);
        m.set(base, -1);
        variants.forEach((v, j) => assert.equal(m.get(v), undefined, `${n} units, variant ${j}`));
        variants.forEach((v, j) => m.set(v, j));
        assert.equal(m.get(base), -1, `${n} units`);
        variants.forEach((v, j) => assert.equal(m.get(v), j, `${n} units, variant ${j}`));
        // A prefix and an extension: same units, other counts.
        assert.equal(m.get(base.slice(0, n - 1)), undefined);
        assert.equal(m.get(base + "a"), undefined);
      }
    });

    test("keys whose hashes agree in bucket and tophash are told apart by their units", () => {
      // Variants of `base` found, with the map's own hash key, to share its hash's top byte and
      // low 4 bits (these maps stay under 16 buckets), so that lookups compare their units.
      const m = make();
      const header = new Int32Array(m.handle.buffer, 0, 256);
      const hash = (s: string) => hashString(s, header[H_SEED0], header[H_SEED1]);
      const same = (a: number, b: number) => (a >>> 24) === (b >>> 24) && ((a ^ b) & 0xf) === 0;
      const set = (k: string, v: number) => m instanceof GoMap ? m.set(k, v) : m.store(k, v);
      const get = (k: string) => m instanceof GoMap ? m.get(k) : m.load(k);
      for (const n of [7, 8, 17]) {
        const base = build(n, (i) => 0x61 + i);
        const h = hash(base);
        set(base, -1);
        for (const i of [0, 1, n >> 1, n - 2, n - 1]) {
          let variant = "";
          for (let u = 0x100; u < 0x10000 && variant === ""; u++) {
            const v = withUnit(base, i, u);
            if (same(hash(v), h)) variant = v;
          }
          assert.notEqual(variant, "", `no variant of ${n} units at ${i}`);
          assert.equal(get(variant), undefined, `${n} units, unit ${i}`);
          set(variant, i);
          assert.equal(get(variant), i, `${n} units, unit ${i}`);
          assert.equal(get(base), -1, `${n} units, unit ${i}`);
        }
      }
      if (m instanceof SyncMap) m.close();
    });

    test("lone surrogates and every unit value round-trip", () => {
      const m = open();
      const keys = [
        "\ud800\ud800\ud800",
        "\udfff\ud800\udfff\ud800",
        "a\ud83d",
        "\ud83da\ude00",
        "\uffff\uffff\uffff",
        "\u0000\u0000\u0000",
        "\u0000\u0000\u0000\u0000",
        build(257, (i) => (i * 257) & 0xffff),
      ];
      keys.forEach((k, i) => m.set(k, i));
      keys.forEach((k, i) => assert.equal(m.get(k), i));
      assert.equal(m.get("\ud800\ud800\udc00"), undefined);
    });

    test("a probe reused for a shorter key compares only that key's words", () => {
      const m = open();
      const long = build(41, (i) => 0x30 + (i % 10));
      m.set(long.slice(0, 5), 5);
      m.set(long.slice(0, 6), 6);
      for (let round = 0; round < 3; round++) {
        assert.equal(m.get(long), undefined);
        assert.equal(m.get(long.slice(0, 5)), 5);
        assert.equal(m.get(long.slice(0, 6)), 6);
        assert.equal(m.get(long.slice(0, 7)), undefined);
      }
    });

    test("random strings behave like a Map's keys", () => {
      fc.assert(
        fc.property(
          fc.array(fc.string({ unit: "binary", maxLength: 24 }), { maxLength: 60 }),
          fc.array(fc.string({ unit: "binary", maxLength: 24 }), { maxLength: 20 }),
          (stored, others) => {
            const m = open();
            const ref = new Map<string, number>();
            stored.forEach((k, i) => {
              m.set(k, i);
              ref.set(k, i);
            });
            for (const k of [...stored, ...others]) assert.equal(m.get(k), ref.get(k));
          },
        ),
        { numRuns: 60 },
      );
    });
  });
}

describe("GoMap: an odd-length key's last word", () => {
  test("a key in a reused block matches whatever the block held after its last unit", () => {
    // "abcdef" and "abcde" need the same block size: after the first is deleted, the second
    // gets its block, with "f" still after its last unit.
    const m = new GoMap<string, number>();
    for (let i = 0; i < 50; i++) {
      const even = `k${i}bcdef`.slice(0, 6);
      const odd = even.slice(0, 5);
      m.set(even, 1);
      m.delete(even);
      m.set(odd, 2);
      assert.equal(m.get(odd), 2, odd);
      assert.equal(m.get(even), undefined, even);
      m.delete(odd);
    }
  });
});
