// Copyright the shmap authors. MIT license.
//
// Strings read back out of shared memory (readString in src/_engine/read_string.ts) are built by a
// fixed-arity `fromCharCode` up to 16 units and by `fromCharCode.apply` beyond. These
// properties round-trip strings of every length from 0 to 300, made of any UTF-16 code units
// (lone surrogates, surrogate pairs, NUL, Latin-1, the rest of the BMP), through GoMap and
// SyncMap as keys and as values, under the default and the string codecs, against a Map.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { codecs, GoMap, SyncMap } from "../mod.ts";

/** One code unit, drawn so that every class of unit turns up often. */
const unit = fc.oneof(
  fc.integer({ min: 0x20, max: 0x7e }),
  fc.integer({ min: 0, max: 0xff }),
  fc.integer({ min: 0xd800, max: 0xdfff }),
  fc.integer({ min: 0, max: 0xffff }),
);

/** A string of `length` code units: lone surrogates included; pairs form non-BMP characters. */
const unitsOf = (length: number) =>
  fc.array(
    fc.oneof(
      { weight: 4, arbitrary: unit.map((u) => String.fromCharCode(u)) },
      {
        weight: 1,
        arbitrary: fc.integer({ min: 0x10000, max: 0x10ffff }).map((c) => String.fromCodePoint(c)),
      },
    ),
    { minLength: length, maxLength: length },
  ).map((parts) => parts.join("").slice(0, length).padEnd(length, "\ud800"));

/** Strings of every length in [0, 300], a length picked first so that all are as likely. */
const anyString = fc.integer({ min: 0, max: 300 }).chain(unitsOf);

/** Same units, one by one: assert.equal would pass for strings equal in value anyway. */
function sameUnits(actual: unknown, expected: string): void {
  assert.equal(typeof actual, "string");
  const s = actual as string;
  assert.equal(s.length, expected.length);
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) !== expected.charCodeAt(i)) {
      assert.fail(
        `unit ${i} of a ${s.length}-unit string: ${s.charCodeAt(i)}, not ` +
          `${expected.charCodeAt(i)}`,
      );
    }
  }
}

interface Target {
  name: string;
  make(): {
    set(k: string, v: string): void;
    get(k: string): unknown;
    delete(k: string): void;
    entries(): Iterable<[unknown, unknown]>;
  };
}

const targets: Target[] = [
  { name: "GoMap, default codec", make: () => new GoMap<string, string>() },
  {
    name: "GoMap, string codec",
    make: () => new GoMap<string, string>({ keys: codecs.string, values: codecs.string }),
  },
  ...[{}, { keys: codecs.string, values: codecs.string }].map((options, i) => ({
    name: `SyncMap, ${i === 0 ? "default" : "string"} codec`,
    make: () => {
      const m = new SyncMap<string, string>(options);
      return {
        set: (k: string, v: string) => m.store(k, v),
        get: (k: string) => m.load(k),
        delete: (k: string) => m.delete(k),
        entries: () => m.entries(),
      };
    },
  })),
];

describe("strings of every length round-trip through the maps", () => {
  for (const target of targets) {
    test(`${target.name}: lengths 0 to 300 in turn`, () => {
      const m = target.make();
      const model = new Map<string, string>();
      for (let n = 0; n <= 300; n++) {
        // Every unit class in one string: a pair, a lone high and low surrogate, NUL, Latin-1.
        const k = "\ud83d\ude00\ud800a\udfff\0\xe9".repeat(n).slice(0, n);
        const v = "\udc00\xff\ud83d\ude00z".repeat(n).slice(n > 0 ? 1 : 0, n + 1);
        m.set(k, v);
        model.set(k, v);
      }
      for (const [k, v] of model) sameUnits(m.get(k), v);
      let count = 0;
      for (const [k, v] of m.entries()) {
        const expected = model.get(k as string);
        assert.notEqual(expected, undefined, `unexpected key of ${(k as string).length} units`);
        sameUnits(v, expected!);
        count++;
      }
      assert.equal(count, model.size);
    });

    test(`${target.name}: random strings, keys and values, against a Map`, () => {
      fc.assert(
        fc.property(
          fc.array(fc.tuple(anyString, anyString, fc.boolean()), { maxLength: 40 }),
          (ops) => {
            const m = target.make();
            const model = new Map<string, string>();
            for (const [k, v, remove] of ops) {
              if (remove) {
                m.delete(k);
                model.delete(k);
              } else {
                m.set(k, v);
                model.set(k, v);
              }
            }
            for (const [k, v] of model) sameUnits(m.get(k), v);
            const seen = new Map<string, unknown>();
            for (const [k, v] of m.entries()) {
              assert.equal(typeof k, "string");
              assert.equal(seen.has(k as string), false);
              seen.set(k as string, v);
            }
            assert.equal(seen.size, model.size);
            for (const [k, v] of model) {
              assert.equal(seen.has(k), true, `key of ${k.length} units missing`);
              sameUnits(seen.get(k), v);
            }
          },
        ),
        { numRuns: 60 },
      );
    });
  }
});
