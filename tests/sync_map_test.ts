// Copyright the shmap authors. MIT license.
//
// SyncMap on one thread: Go's API (sync/map.go, Go 1.23) in camelCase and the Map-like API,
// key and value semantics, the internal paths Go's design takes (misses promote the dirty
// table, a new key rebuilds it and expunges deleted entries, stores unexpunge them), and Range
// with nested calls (Go's TestMapRangeNestedCall). Attaching, closing and bad input are in
// sync_map_handles_test.ts.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Codec, codecs, SyncMap } from "../mod.ts";
import { attachOwnSeat } from "../src/maps/sync_map.ts";
import { sleep } from "./fixtures/harness.ts";
import { rangeEntries, sorted } from "./fixtures/map_pairs.ts";

const tick = (): Promise<void> => sleep(0);

describe("SyncMap: Go's API", () => {
  test("load, store, and the zero map", () => {
    const m = new SyncMap<string, number>();
    assert.equal(m.size, 0);
    assert.equal(m.load("a"), undefined);
    assert.equal(m.store("a", 1), undefined);
    assert.equal(m.load("a"), 1);
    m.store("a", 2);
    assert.equal(m.load("a"), 2);
    assert.equal(m.size, 1);
    assert.equal(m.load("b"), undefined);
  });

  test("an explicitly stored undefined is a value, unlike a missing key", () => {
    const m = new SyncMap<string, unknown>();
    m.store("u", undefined);
    assert.equal(m.has("u"), true);
    assert.equal(m.size, 1);
    assert.deepStrictEqual(m.loadOrStore("u", 1), [undefined, true]);
    assert.deepStrictEqual(m.swap("u", null), [undefined, true]);
    assert.deepStrictEqual(m.loadAndDelete("u"), [null, true]);
    assert.deepStrictEqual(m.loadAndDelete("u"), [undefined, false]);
  });

  test("loadOrStore returns [actual, loaded] on every path", () => {
    const m = new SyncMap<number, string>();
    // New key: the dirty table.
    assert.deepStrictEqual(m.loadOrStore(1, "a"), ["a", false]);
    // Key in the dirty table only.
    assert.deepStrictEqual(m.loadOrStore(1, "b"), ["a", true]);
    // Promote, so that 1 is in the read table.
    m.range(() => {});
    assert.equal(m.stats().dirtyKeys, -1);
    assert.deepStrictEqual(m.loadOrStore(1, "c"), ["a", true]);
    // Deleted while in the read table (nil): stored without the lock.
    assert.equal(m.delete(1), true);
    assert.deepStrictEqual(m.loadOrStore(1, "d"), ["d", false]);
    assert.equal(m.stats().dirtyKeys, -1, "a nil entry of the read table is reused in place");
    // Expunged: delete, then a new key rebuilds the dirty table without it.
    m.delete(1);
    m.store(2, "x");
    assert.deepStrictEqual(m.loadOrStore(1, "e"), ["e", false]);
    assert.deepStrictEqual(m.loadOrStore(1, "f"), ["e", true]);
    assert.equal(m.size, 2);
    assert.deepStrictEqual(sorted(m), [[1, "e"], [2, "x"]]);
  });

  test("loadAndDelete and delete report whether there was a value", () => {
    const m = new SyncMap<string, number>();
    m.store("a", 1);
    m.store("b", 2);
    assert.deepStrictEqual(m.loadAndDelete("a"), [1, true]);
    assert.deepStrictEqual(m.loadAndDelete("a"), [undefined, false]);
    assert.deepStrictEqual(m.loadAndDelete("zz"), [undefined, false]);
    assert.equal(m.delete("b"), true);
    assert.equal(m.delete("b"), false);
    assert.equal(m.delete("zz"), false);
    assert.equal(m.size, 0);
    // The same from the read table.
    m.store("c", 3);
    m.store("d", 4);
    m.range(() => {});
    assert.equal(m.stats().readKeys, 2);
    assert.deepStrictEqual(m.loadAndDelete("c"), [3, true]);
    assert.deepStrictEqual(m.loadAndDelete("c"), [undefined, false]);
    assert.equal(m.delete("d"), true);
    assert.equal(m.delete("d"), false);
    assert.equal(m.size, 0);
    assert.deepStrictEqual(rangeEntries(m), []);
  });

  test("swap returns [previous, loaded]", () => {
    const m = new SyncMap<string, number>();
    assert.deepStrictEqual(m.swap("n", 1), [undefined, false]);
    assert.deepStrictEqual(m.swap("n", 2), [1, true]);
    m.range(() => {}); // into the read table
    assert.deepStrictEqual(m.swap("n", 3), [2, true]);
    m.delete("n");
    assert.deepStrictEqual(m.swap("n", 4), [undefined, false]);
    m.delete("n");
    m.store("other", 0); // expunges n
    assert.deepStrictEqual(m.swap("n", 5), [undefined, false]);
    assert.equal(m.load("n"), 5);
    assert.equal(m.size, 2);
  });

  test("compareAndSwap on a missing key fails (Go's TestCompareAndSwap_NonExistingKey)", () => {
    const m = new SyncMap<unknown, unknown>();
    assert.equal(m.compareAndSwap("k", undefined, 42), false);
    assert.equal(m.compareAndSwap("k", null, 42), false);
    assert.equal(m.has("k"), false);
    // Also when the dirty table holds other keys, and when the key was deleted.
    m.store("other", 1);
    assert.equal(m.compareAndSwap("k", undefined, 42), false);
    m.store("k", 1);
    m.delete("k");
    assert.equal(m.compareAndSwap("k", undefined, 42), false);
    assert.equal(m.compareAndSwap("k", 1, 42), false);
    assert.equal(m.has("k"), false);
    assert.equal(m.size, 1);
  });

  test("compareAndSwap and compareAndDelete on every table state", () => {
    const m = new SyncMap<string, number>();
    m.store("a", 1); // dirty only
    assert.equal(m.compareAndSwap("a", 2, 3), false);
    assert.equal(m.compareAndSwap("a", 1, 3), true);
    assert.equal(m.load("a"), 3);
    assert.equal(m.compareAndDelete("a", 1), false);
    assert.equal(m.compareAndDelete("a", 3), true);
    assert.equal(m.has("a"), false);
    assert.equal(m.compareAndDelete("a", 3), false);
    m.store("a", 1);
    m.range(() => {}); // read table
    assert.equal(m.stats().dirtyKeys, -1);
    assert.equal(m.compareAndSwap("a", 0, 3), false);
    assert.equal(m.compareAndSwap("a", 1, 3), true);
    assert.equal(m.compareAndDelete("a", 1), false);
    assert.equal(m.compareAndDelete("a", 3), true);
    assert.equal(m.compareAndSwap("a", 3, 4), false, "deleted (nil) entry");
    m.store("b", 1); // expunges a
    assert.equal(m.compareAndSwap("a", 3, 4), false, "expunged entry");
    assert.equal(m.compareAndDelete("a", 3), false);
    assert.equal(m.has("a"), false);
    assert.equal(m.size, 1);
  });

  test("compare-and-X compares encoded values: NaN equals NaN, -0 differs from 0", () => {
    const m = new SyncMap<string, unknown>();
    m.store("nan", NaN);
    assert.equal(m.compareAndSwap("nan", NaN, 1), true);
    m.store("nan", NaN);
    assert.equal(m.compareAndDelete("nan", NaN), true);
    m.store("z", -0);
    assert.equal(m.compareAndSwap("z", 0, 1), false);
    assert.ok(Object.is(m.load("z"), -0));
    assert.equal(m.compareAndSwap("z", -0, 0), true);
    assert.ok(Object.is(m.load("z"), 0));
    assert.equal(m.compareAndDelete("z", -0), false);
    assert.equal(m.compareAndDelete("z", 0), true);
    // 1, 1n, "1" and true are different values.
    m.store("one", 1);
    for (const other of [1n, "1", true, [1], { 1: 1 }]) {
      assert.equal(m.compareAndSwap("one", other, 2), false, String(other));
      assert.equal(m.compareAndDelete("one", other), false);
    }
    assert.equal(m.compareAndSwap("one", 1, 2), true);
  });

  test("compare-and-X compares objects, arrays, bytes and long strings by their encoding", () => {
    const m = new SyncMap<string, unknown>();
    m.store("o", { a: 1, b: [2, "three", null] });
    assert.equal(m.compareAndSwap("o", { a: 1, b: [2, "three"] }, 0), false);
    assert.equal(m.compareAndSwap("o", { a: 1, b: [2, "three", undefined] }, 0), false);
    // Property order is part of the encoding.
    assert.equal(m.compareAndSwap("o", { b: [2, "three", null], a: 1 }, 0), false);
    assert.equal(m.compareAndSwap("o", { a: 1, b: [2, "three", null] }, { c: 1 }), true);
    assert.deepStrictEqual(m.load("o"), { c: 1 });
    // Both old and new are objects: the new value's encoding must not stand in for the old's.
    assert.equal(m.compareAndSwap("o", { d: 2 }, { c: 1 }), false);
    assert.equal(m.compareAndSwap("o", [1], [1]), false);
    assert.equal(m.compareAndSwap("o", { c: 1 }, [2]), true);
    assert.deepStrictEqual(m.load("o"), [2]);
    m.store("bytes", new Uint8Array([1, 2, 3]));
    assert.equal(m.compareAndSwap("bytes", [1, 2, 3], 0), false);
    assert.equal(m.compareAndSwap("bytes", new Uint8Array([1, 2]), 0), false);
    assert.equal(m.compareAndDelete("bytes", new Uint8Array([1, 2, 3])), true);
    const long = "ü".repeat(300);
    m.store("s", long);
    assert.equal(m.compareAndSwap("s", long.slice(1), 0), false);
    assert.equal(m.compareAndSwap("s", "ü".repeat(300), "ab"), true);
    assert.equal(m.compareAndDelete("s", "a"), false);
    assert.equal(m.compareAndDelete("s", "ab"), true);
    m.store("big", 2n ** 80n);
    assert.equal(m.compareAndDelete("big", 2n ** 80n + 1n), false);
    assert.equal(m.compareAndDelete("big", 2n ** 80n), true);
    assert.equal(m.size, 1);
  });

  test("range visits every pair and stops only when f returns false", () => {
    const m = new SyncMap<number, number>();
    for (let i = 0; i < 500; i++) m.store(i, i * 2);
    const seen = new Map<number, number>();
    m.range((k, v) => {
      assert.equal(seen.has(k), false, `key ${k} visited twice`);
      seen.set(k, v);
      return k % 2 === 0 ? true : undefined;
    });
    assert.equal(seen.size, 500);
    for (const [k, v] of seen) assert.equal(v, k * 2);
    let calls = 0;
    m.range(() => ++calls < 7);
    assert.equal(calls, 7);
    calls = 0;
    // Only a boolean false stops: other falsy results do not.
    m.range(() => {
      calls++;
      return 0 as unknown as boolean;
    });
    assert.equal(calls, 500);
    calls = 0;
    new SyncMap().range(() => {
      calls++;
    });
    assert.equal(calls, 0);
  });

  test("clear removes every key from both tables", () => {
    const m = new SyncMap<number, string>();
    const zero = m.stats().bytesUsed;
    m.clear(); // on the zero map: nothing to do, nothing allocated (Go's TestMapClearNoAllocations)
    assert.equal(m.size, 0);
    assert.equal(m.stats().bytesUsed, zero);
    for (let i = 0; i < 50; i++) m.store(i, `v${i}`);
    m.range(() => {}); // promote: 50 keys in the read table
    for (let i = 50; i < 80; i++) m.store(i, `v${i}`); // and 30 more in a dirty table
    m.delete(3);
    const s = m.stats();
    assert.equal(s.readKeys, 50);
    assert.equal(s.dirtyKeys, 80, "the dirty table keeps deleted keys of the read table");
    m.clear();
    assert.equal(m.size, 0);
    assert.deepStrictEqual(rangeEntries(m), []);
    for (let i = 0; i < 80; i++) assert.equal(m.load(i), undefined);
    const after = m.stats();
    assert.equal(after.readKeys, 0);
    assert.equal(after.dirtyKeys, -1);
    assert.equal(after.amended, false);
    assert.equal(after.count, 0);
    m.store(5, "again");
    assert.deepStrictEqual([...m], [[5, "again"]]);
  });
});

describe("SyncMap: the Map-like API", () => {
  test("get, set, has, delete, size", () => {
    // Fractions: an integer value is an immediate, with no record to retire (checked below).
    const m = new SyncMap<string, number>();
    assert.equal(m.set("a", 1.5), m);
    m.set("b", 2.5).set("a", 3.5);
    assert.equal(m.get("a"), 3.5);
    assert.equal(m.get("b"), 2.5);
    assert.equal(m.get("c"), undefined);
    assert.equal(m.has("a"), true);
    assert.equal(m.has("c"), false);
    assert.equal(m.size, 2);
    assert.equal(m.delete("a"), true);
    assert.equal(m.has("a"), false);
    assert.equal(m.size, 1);
    assert.equal(String(m), "[object SyncMap]");
    const s = m.stats();
    for (const k of ["count", "readKeys", "dirtyKeys", "misses", "participants", "retired"]) {
      assert.equal(typeof s[k as keyof typeof s], "number", k);
    }
    assert.equal(typeof s.amended, "boolean");
    assert.equal(s.count, 1);
    assert.equal(s.participants, 1);
    assert.ok(s.bytesUsed > 0 && s.bytesUsed <= s.bytesReserved);
    assert.ok(s.retired >= 1, "the deleted value waits for a quiescent point");
  });

  test("iterators: [Symbol.iterator], entries, keys, values, forEach", () => {
    const m = new SyncMap<string, number>();
    const expected = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      m.set(`k${i}`, i);
      expected.set(`k${i}`, i);
    }
    assert.deepStrictEqual(sorted(m), sorted(expected));
    assert.deepStrictEqual(sorted(m.entries()), sorted(expected));
    assert.deepStrictEqual([...m.keys()].sort(), [...expected.keys()].sort());
    assert.deepStrictEqual([...m.values()].sort((a, b) => a - b), [...expected.values()]);
    assert.deepStrictEqual(sorted(new Map(m)), sorted(expected));
    const seen: [string, number][] = [];
    const thisArg = { tag: 1 };
    m.forEach(function (this: unknown, value, key, map) {
      assert.equal(this, thisArg);
      assert.equal(map, m);
      seen.push([key, value]);
    }, thisArg);
    assert.deepStrictEqual(sorted(seen), sorted(expected));
    // Breaking out of a for-of leaves the map usable.
    let n = 0;
    for (const _ of m) if (++n === 3) break;
    assert.equal(n, 3);
    m.set("after", 1);
    assert.equal(m.get("after"), 1);
    assert.equal([...m.keys()].length, 301);
  });

  test("iterating a dirty-only map promotes the dirty table first, as Go's Range does", () => {
    const m = new SyncMap<number, number>();
    for (let i = 0; i < 20; i++) m.store(i, i);
    assert.equal(m.stats().amended, true);
    assert.equal([...m.keys()].length, 20);
    const s = m.stats();
    assert.equal(s.amended, false);
    assert.equal(s.dirtyKeys, -1);
    assert.equal(s.readKeys, 20);
  });
});

describe("SyncMap: keys and values", () => {
  test("keys compare by SameValueZero", () => {
    const m = new SyncMap<unknown, string>();
    m.store(NaN, "nan");
    assert.equal(m.load(NaN), "nan");
    assert.equal(m.load(0 / 0), "nan");
    m.store(-0, "zero");
    assert.equal(m.load(0), "zero");
    m.store(0, "zero2");
    assert.equal(m.load(-0), "zero2");
    m.store(1, "number");
    m.store(1n, "bigint");
    m.store("1", "string");
    m.store(true, "bool");
    assert.equal(m.load(1), "number");
    assert.equal(m.load(1n), "bigint");
    assert.equal(m.load("1"), "string");
    assert.equal(m.load(true), "bool");
    m.store(null, "null");
    m.store(undefined, "undefined");
    assert.equal(m.load(null), "null");
    assert.equal(m.load(undefined), "undefined");
    const long = "long key ".repeat(40);
    m.store(long, "long");
    assert.equal(m.load("long key ".repeat(40)), "long");
    assert.equal(m.load(long.slice(0, -1)), undefined);
    m.store("naïve — ünïcödé \u{1F600}", "unicode");
    m.store("\ud800", "lone");
    assert.equal(m.load("naïve — ünïcödé \u{1F600}"), "unicode");
    assert.equal(m.load("\ud800"), "lone");
    assert.equal(m.load("\udc00"), undefined);
    m.store(2n ** 100n, "huge");
    assert.equal(m.load(2n ** 100n), "huge");
    assert.equal(m.size, 12);
    // Keys come back canonical: -0 as 0.
    const keys = [...m.keys()];
    assert.ok(keys.some((k) => Object.is(k, 0)));
    assert.ok(!keys.some((k) => Object.is(k, -0)));
    assert.ok(keys.some((k) => Number.isNaN(k)));
  });

  test("values round-trip as copies", () => {
    const m = new SyncMap<string, unknown>();
    const values: [string, unknown][] = [
      ["negzero", -0],
      ["nan", NaN],
      ["inf", -Infinity],
      ["float", 0.1],
      ["short", "ab"],
      ["string", "a longer string, ünïcödé \u{1F600}"],
      ["empty", ""],
      ["null", null],
      ["undefined", undefined],
      ["true", true],
      ["bigint", -(2n ** 70n)],
      ["bytes", new Uint8Array([0, 1, 255])],
      ["object", { a: 1, b: { c: [1, "x", null, -0] } }],
      ["array", [1, [2, [3]], { d: new Uint8Array([9]) }]],
    ];
    for (const [k, v] of values) m.store(k, v);
    for (const [k, v] of values) assert.deepStrictEqual(m.load(k), v, k);
    assert.ok(Object.is(m.load("negzero"), -0));
    // Changing a value after storing it, or after loading it, changes nothing in the map.
    const obj = { n: 1 };
    m.store("obj", obj);
    obj.n = 2;
    const loaded = m.load("obj") as { n: number };
    assert.deepStrictEqual(loaded, { n: 1 });
    loaded.n = 3;
    assert.deepStrictEqual(m.load("obj"), { n: 1 });
    assert.notEqual(m.load("obj"), m.load("obj"));
    const bytes = m.load("bytes") as Uint8Array;
    bytes[0] = 42;
    assert.deepStrictEqual(m.load("bytes"), new Uint8Array([0, 1, 255]));
  });

  test("typed codecs, and a user codec", () => {
    const m = new SyncMap<string, number>({ keys: codecs.string, values: codecs.float64 });
    m.store("pi", Math.PI);
    m.store("negzero", -0);
    assert.equal(m.load("pi"), Math.PI);
    assert.ok(Object.is(m.load("negzero"), -0));
    assert.equal(m.compareAndSwap("negzero", 0, 1), false);
    const upper: Codec<string> = {
      name: "upper",
      encode: (s) => new TextEncoder().encode(s.toUpperCase()),
      decode: (b) => new TextDecoder().decode(b),
    };
    const u = new SyncMap<string, string>({ keys: upper, values: upper });
    u.store("abc", "def");
    assert.equal(u.load("ABC"), "DEF");
    assert.deepStrictEqual(u.loadOrStore("Abc", "x"), ["DEF", true]);
    const same = SyncMap.attach<string, string>(u.handle, { keys: upper, values: upper });
    assert.equal(same.load("aBc"), "DEF");
    same.close();
    assert.throws(() => SyncMap.attach(u.handle), TypeError);
    const b = new SyncMap<Uint8Array, number>({ keys: codecs.bytes, values: codecs.int32 });
    b.store(new Uint8Array([1, 2]), 7);
    assert.equal(b.load(new Uint8Array([1, 2])), 7);
    assert.equal(b.load(new Uint8Array([1])), undefined);
  });
});

describe("SyncMap: Go's paths, seen through stats()", () => {
  test("misses promote the dirty table once they reach its size", () => {
    const m = new SyncMap<number, number>();
    const n = 40;
    for (let i = 0; i < n; i++) m.store(i, i);
    let s = m.stats();
    assert.deepStrictEqual(
      [s.count, s.readKeys, s.dirtyKeys, s.amended, s.misses],
      [n, 0, n, true, 0],
    );
    for (let j = 1; j < n; j++) {
      // Hits in the dirty table and misses everywhere both count.
      assert.equal(j % 2 === 0 ? m.load(-j) : m.load(j), j % 2 === 0 ? undefined : j);
      s = m.stats();
      assert.equal(s.misses, j);
      assert.equal(s.dirtyKeys, n);
    }
    m.load(-1000);
    s = m.stats();
    assert.deepStrictEqual(
      [s.count, s.readKeys, s.dirtyKeys, s.amended, s.misses],
      [n, n, -1, false, 0],
    );
    // Loads now take no lock and count no miss, hit or not.
    for (let j = 0; j < 3 * n; j++) m.load(j);
    assert.equal(m.stats().misses, 0);
  });

  test("a small dirty table waits for eight misses, unless the map has used a quarter of its room", () => {
    // Two keys' dirty table, then misses: a map with room promotes it at the eighth, not at the
    // second (Go's count), so that a key added and deleted beside a few others does not build a
    // table each round. A 64 KiB map has used more than a quarter of its maxBytes from its first
    // keys (its journal, seats and tables): Go's count, which keeps the fewest tables alive.
    for (const maxBytes of [undefined, 65536]) {
      const m = new SyncMap<number, number>({ maxBytes });
      m.store(1, 1);
      m.store(2, 2);
      const small = maxBytes !== undefined;
      if (small) assert.ok(m.stats().bytesUsed > 65536 / 4, `bytesUsed ${m.stats().bytesUsed}`);
      const promotedAt = small ? 2 : 8;
      for (let j = 1; j <= 8; j++) {
        assert.equal(m.load(-j), undefined);
        const s = m.stats();
        const promoted = j >= promotedAt;
        assert.deepStrictEqual(
          [s.dirtyKeys, s.readKeys, s.misses],
          promoted ? [-1, 2, 0] : [2, 0, j],
          `maxBytes ${maxBytes}, miss ${j}`,
        );
      }
      assert.deepStrictEqual([m.load(1), m.load(2), m.load(3)], [1, 2, undefined]);
      m.verify();
    }
  });

  test("a read table of deleted keys only is replaced as a new key comes: no lock a toggle", () => {
    const m = new SyncMap<number, number>();
    const tables = () => {
      const s = m.stats();
      return [s.readKeys, s.dirtyKeys, s.amended, s.misses];
    };
    m.store(0, 0); // a new map: the key waits in the dirty table, as in Go
    assert.deepStrictEqual(tables(), [0, 1, true, 0]);
    assert.deepStrictEqual(m.loadAndDelete(0), [0, true]); // a miss: the emptied table promoted
    assert.deepStrictEqual(tables(), [0, -1, false, 0]);
    m.store(0, 1); // the read table holds no key: the new dirty table is promoted at once
    assert.deepStrictEqual(tables(), [1, -1, false, 0]);
    for (let i = 1; i <= 100; i++) {
      assert.deepStrictEqual(m.loadAndDelete(0), [i, true]);
      assert.equal(m.load(0), undefined);
      m.store(0, i + 1);
    }
    // Every round on the read table's entry: no dirty table made, no miss counted.
    assert.deepStrictEqual(tables(), [1, -1, false, 0]);
    m.delete(0);
    m.store(1, 1); // its one key deleted: the read table is replaced by one of the new key
    assert.deepStrictEqual(tables(), [1, -1, false, 0]);
    assert.deepStrictEqual([m.load(0), m.load(1), m.size], [undefined, 1, 1]);
    m.store(2, 2); // a live key to copy: Go's path, the new key in the dirty table
    assert.deepStrictEqual(tables(), [1, 2, true, 0]);
    m.verify();
  });

  test("loadOrStore, has, CAS, delete and stores count misses on the dirty table", () => {
    const m = new SyncMap<number, number>();
    for (let i = 0; i < 10; i++) m.store(i, i);
    m.loadOrStore(1, 0);
    m.has(2);
    m.has(-2);
    m.compareAndSwap(3, 3, 33);
    m.compareAndDelete(4, 0);
    m.delete(-5);
    m.loadAndDelete(-6);
    assert.equal(m.stats().misses, 7);
    // Stores and swaps of dirty keys take the lock and count a miss too (Go's do not: a key
    // stored again and again would take the lock until loads missed enough).
    m.store(5, 55);
    m.swap(6, 66);
    assert.equal(m.stats().misses, 9);
    assert.equal(m.stats().dirtyKeys, 10);
    m.store(7, 77);
    assert.equal(m.stats().dirtyKeys, -1, "the tenth miss promoted the dirty table");
    assert.equal(m.stats().readKeys, 10);
    assert.deepStrictEqual([m.load(3), m.load(5), m.load(6), m.load(7)], [33, 55, 66, 77]);
    m.verify();
  });

  test("a key stored again and again is promoted after as many stores as there are keys", () => {
    const m = new SyncMap<number, number>();
    for (let i = 0; i < 8; i++) m.store(i, i);
    for (let n = 1; n < 8; n++) {
      m.store(0, 100 + n);
      assert.deepStrictEqual([m.stats().misses, m.stats().dirtyKeys], [n, 8]);
    }
    m.store(0, 108); // the eighth: promoted, and later stores take the read table's entry
    for (let n = 9; n < 20; n++) m.swap(0, 100 + n);
    const s = m.stats();
    assert.deepStrictEqual([s.readKeys, s.dirtyKeys, s.amended, s.misses], [8, -1, false, 0]);
    assert.equal(m.load(0), 119);
    m.verify();
  });

  test("a new key rebuilds the dirty table, expunging deleted entries; a store unexpunges", () => {
    const m = new SyncMap<number, string>();
    const n = 30;
    for (let i = 0; i < n; i++) m.store(i, `v${i}`);
    m.range(() => {}); // promote
    for (let i = 0; i < 10; i++) assert.equal(m.delete(i), true);
    let s = m.stats();
    assert.deepStrictEqual([s.count, s.readKeys, s.dirtyKeys, s.amended], [n - 10, n, -1, false]);
    // Overwriting a deleted key of the read table needs no dirty table.
    m.store(0, "back");
    s = m.stats();
    assert.deepStrictEqual([s.count, s.readKeys, s.dirtyKeys, s.amended], [n - 9, n, -1, false]);
    m.delete(0);
    // A new key: the dirty table is built from the read table's live entries, plus the key.
    m.store(100, "new");
    s = m.stats();
    assert.deepStrictEqual(
      [s.count, s.readKeys, s.dirtyKeys, s.amended],
      [n - 10 + 1, n, n - 10 + 1, true],
    );
    // Unexpunge: a store to an expunged key puts it back into the dirty table.
    m.store(3, "three");
    assert.deepStrictEqual(m.loadOrStore(4, "four"), ["four", false]);
    assert.deepStrictEqual(m.swap(5, "five"), [undefined, false]);
    s = m.stats();
    assert.equal(s.dirtyKeys, n - 10 + 4);
    assert.equal(s.count, n - 10 + 4);
    // compareAndSwap and delete do not unexpunge.
    assert.equal(m.compareAndSwap(6, "v6", "x"), false);
    assert.equal(m.delete(7), false);
    assert.equal(m.stats().dirtyKeys, n - 10 + 4);
    // Promote again: the read table becomes exactly the dirty table.
    for (let j = 0; j < n; j++) m.load(-1 - j);
    s = m.stats();
    assert.deepStrictEqual([s.readKeys, s.dirtyKeys, s.amended], [n - 10 + 4, -1, false]);
    const expected = new Map<number, string>();
    for (let i = 10; i < n; i++) expected.set(i, `v${i}`);
    expected.set(100, "new").set(3, "three").set(4, "four").set(5, "five");
    assert.deepStrictEqual(sorted(m), sorted(expected));
  });

  test("loadAndDelete and delete of a dirty-only key remove it from the dirty table", () => {
    const m = new SyncMap<string, number>();
    m.store("r", 0);
    m.range(() => {});
    m.store("d1", 1.5); // a record (an integer would be an immediate, with none to retire)
    m.store("d2", 2);
    m.store("d3", 3);
    // Enough other keys that the misses below do not promote the dirty table.
    for (let i = 0; i < 10; i++) m.store(`f${i}`, i);
    let s = m.stats();
    assert.deepStrictEqual([s.readKeys, s.dirtyKeys, s.amended], [1, 14, true]);
    const retired = s.retired;
    assert.deepStrictEqual(m.loadAndDelete("d1"), [1.5, true]);
    s = m.stats();
    assert.equal(s.dirtyKeys, 13);
    assert.equal(s.misses, 1);
    assert.equal(s.retired, retired + 2, "the entry and its value are retired");
    assert.equal(m.delete("d2"), true);
    assert.equal(m.stats().dirtyKeys, 12);
    // compareAndDelete leaves the (deleted) entry in the dirty table, as Go's does.
    assert.equal(m.compareAndDelete("d3", 3), true);
    s = m.stats();
    assert.equal(s.dirtyKeys, 12);
    assert.equal(s.count, 11);
    assert.deepStrictEqual(m.loadAndDelete("d3"), [undefined, false]);
    s = m.stats();
    assert.equal(s.dirtyKeys, 11);
    assert.equal(s.misses, 4);
    assert.deepStrictEqual(
      sorted(rangeEntries(m)),
      sorted([["r", 0], ...Array.from({ length: 10 }, (_, i) => [`f${i}`, i] as [string, number])]),
    );
  });

  test("clear with a read table, a dirty table, nil and expunged entries", async () => {
    const m = new SyncMap<number, string>();
    const empty = m.stats().bytesUsed;
    for (let i = 0; i < 200; i++) m.store(i, "v".repeat(i % 50));
    m.range(() => {});
    for (let i = 0; i < 20; i++) m.delete(i);
    for (let i = 200; i < 300; i++) m.store(i, "w".repeat(i % 50)); // expunges 0..19
    m.delete(250);
    m.store(5, "unexpunged");
    const s = m.stats();
    assert.equal(s.readKeys, 200);
    assert.equal(s.dirtyKeys, 180 + 99 + 1);
    assert.equal(s.count, 280);
    m.clear();
    assert.equal(m.size, 0);
    // Both tables retired whole, with every value and entry they held: a clear allocates
    // nothing (it must work in a full map). They own many keys, so they are freed as the next
    // call begins, this being the only participant online: no need to wait for the task's end.
    const next = m.stats();
    assert.equal(next.retired, 0);
    assert.ok(next.bytesUsed - empty <= 8 * 600, `${next.bytesUsed} vs empty ${empty}`);
    assert.deepStrictEqual(rangeEntries(m), []);
    await tick();
    // Everything the map held is freed: the same bytes as before the first store, give or
    // take the retire list.
    const after = m.stats();
    assert.equal(after.retired, 0);
    assert.ok(after.bytesUsed - empty <= 8 * 600, `${after.bytesUsed} vs empty ${empty}`);
  });
});

describe("SyncMap: range with nested calls", () => {
  test("Go's TestMapRangeNestedCall", () => {
    const m = new SyncMap<number, string>();
    ["hello", "world", "Go"].forEach((v, i) => m.store(i, v));
    let outer = 0;
    m.range((key, _value) => {
      outer++;
      let inner = 0;
      m.range((k, v) => {
        inner++;
        // The key offered by Range loads with the value offered.
        assert.equal(m.load(k), v);
        // 42 was never kept: it must store.
        assert.deepStrictEqual(m.loadOrStore(42, "dummy"), ["dummy", false]);
        // Store, then loadAndDelete it again: later ranges do not see 42.
        m.store(42, "sync.Map");
        assert.deepStrictEqual(m.loadAndDelete(42), ["sync.Map", true]);
        return true;
      });
      // The outer callback deletes its key only after the inner range: the inner range sees
      // every key not yet deleted.
      assert.equal(inner, 3 - outer + 1);
      m.delete(key);
      return true;
    });
    assert.equal(outer, 3);
    let length = 0;
    m.range(() => {
      length++;
    });
    assert.equal(length, 0);
    assert.equal(m.size, 0);
  });

  test("every operation inside range, checked against a model", () => {
    const m = new SyncMap<number, number>();
    const model = new Map<number, number>();
    for (let i = 0; i < 64; i++) {
      m.store(i, i);
      model.set(i, i);
    }
    const visited = new Set<number>();
    // Every value each key had during the range: Range may report any of them (Go: "Range may
    // reflect any mapping for that key from any point during the Range call").
    const history = new Map<number, Set<number>>();
    for (const [k, v] of model) history.set(k, new Set([v]));
    const set = (k: number, v: number) => {
      model.set(k, v);
      if (!history.has(k)) history.set(k, new Set());
      history.get(k)!.add(v);
    };
    m.range((k, v) => {
      assert.equal(visited.has(k), false, `key ${k} visited twice`);
      visited.add(k);
      assert.ok(history.get(k)?.has(v), `value ${v} of ${k} was never stored`);
      // Nested range sees exactly the model.
      const nested = new Map(rangeEntries(m));
      assert.deepStrictEqual(sorted(nested), sorted(model));
      assert.equal(m.load(k), model.get(k));
      const fresh = 1000 + k;
      const b = k + 1;
      assert.deepStrictEqual(m.loadOrStore(fresh, b), [b, false]);
      set(fresh, b);
      m.store(fresh, -b);
      set(fresh, -b);
      assert.deepStrictEqual(m.swap(fresh, 2 * b), [-b, true]);
      set(fresh, 2 * b);
      assert.equal(m.compareAndSwap(fresh, 2 * b, 3 * b), true);
      set(fresh, 3 * b);
      assert.equal(m.compareAndSwap(fresh, 2 * b, 4 * b), false);
      if (k % 3 === 0) {
        assert.deepStrictEqual(m.loadAndDelete(fresh), [3 * b, true]);
        model.delete(fresh);
      }
      // Delete a key ahead of the iteration (which may or may not have been visited).
      const ahead = (k + 17) % 64;
      assert.equal(m.delete(ahead), model.delete(ahead));
      // Overwrite another.
      const other = (k + 5) % 64;
      if (model.has(other)) {
        m.store(other, other + 100);
        set(other, other + 100);
      }
      return true;
    });
    // Each original key was visited at most once; keys never deleted were visited.
    for (let i = 0; i < 64; i++) {
      if (model.has(i)) assert.ok(visited.has(i), `surviving key ${i} visited`);
    }
    assert.deepStrictEqual(sorted(rangeEntries(m)), sorted(model));
    assert.deepStrictEqual(sorted(m), sorted(model));
    assert.equal(m.size, model.size);
  });

  test("range visits each key at most once while the callback stores and deletes", () => {
    // Large enough for several batches and for the tables to grow and be promoted meanwhile.
    const m = new SyncMap<number, number>();
    const n = 3000;
    for (let i = 0; i < n; i++) m.store(i, i);
    const visits = new Map<number, number>();
    let next = n;
    m.range((k) => {
      visits.set(k, (visits.get(k) ?? 0) + 1);
      if (k < n) {
        // Every visit of an original key adds two keys, deletes itself and a key already
        // visited or not, and loads a missing key (misses promote the dirty table).
        m.store(next++, 0);
        m.store(next++, 0);
        m.delete(k);
        m.load(-k - 1);
      }
      return true;
    });
    for (const [k, count] of visits) assert.equal(count, 1, `key ${k} visited ${count} times`);
    for (let i = 0; i < n; i++) assert.ok(visits.has(i), `key ${i} present throughout`);
    assert.equal(m.size, 2 * n);
    assert.deepStrictEqual(
      new Set(m.keys()),
      new Set(Array.from({ length: 2 * n }, (_, i) => n + i)),
    );
  });

  test("a single-threaded TestConcurrentRange: values seen are ones stored", () => {
    const m = new SyncMap<number, number>();
    const mapSize = 1 << 10;
    for (let n = 1; n <= mapSize; n++) m.store(n, n);
    for (let round = 1; round <= 20; round++) {
      const seen = new Set<number>();
      m.range((k, v) => {
        assert.ok(v % k === 0, `while storing multiples of ${k}, range loaded ${v}`);
        assert.equal(seen.has(k), false, `range visited ${k} twice`);
        seen.add(k);
        // The writers of Go's test, inlined: overwrite keys visited and not yet visited.
        const other = ((k * 7 + round) % mapSize) + 1;
        m.store(other, other * (round + 1));
        m.store(k, k * round);
        return true;
      });
      assert.equal(seen.size, mapSize);
    }
  });

  test("close inside a range callback ends the range with a TypeError", () => {
    const m = new SyncMap<number, number>();
    for (let i = 0; i < 5000; i++) m.store(i, i);
    const view = attachOwnSeat<number, number>(m.handle);
    let calls = 0;
    assert.throws(() =>
      view.range(() => {
        if (++calls === 1) view.close();
      }), TypeError);
    assert.ok(calls >= 1 && calls < 5000);
    assert.equal(m.size, 5000);
  });
});
