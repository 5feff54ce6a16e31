// Copyright the shmap authors. MIT license.
//
// GoMap on one thread: the Map-like API, key equality, value round trips, codecs, attaching in
// the same thread, and iteration semantics while the table grows or is written.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { codecs, GoMap, type GoMapHandle } from "../mod.ts";
import { H_SEED0, H_SEED1 } from "../src/_engine/arena.ts";
import { hashString } from "../src/_engine/hash.ts";
import { numbersInBucket } from "./fixtures/go_map_helpers.ts";
import { INT32_EDGE_BIGINTS } from "./fixtures/special_keys.ts";

/** Runs `body` on a fresh iterator over `map`, then checks Go's iteration rule. */
function iterateWith<K, V>(
  map: GoMap<K, V>,
  between: (step: number, visited: ReadonlySet<K>) => void,
): { yielded: [K, V][]; atStart: Map<K, V> } {
  const atStart = new Map(map);
  const yielded: [K, V][] = [];
  const visited = new Set<K>();
  let step = 0;
  for (const [key, value] of map) {
    if (visited.has(key)) assert.fail(`key ${String(key)} yielded twice`);
    visited.add(key);
    yielded.push([key, value]);
    between(step++, visited);
  }
  return { yielded, atStart };
}

describe("GoMap basics", () => {
  test("set, get, has, delete, size and clear behave like a Map", () => {
    const map = new GoMap<string, number>();
    assert.equal(map.size, 0);
    assert.equal(map.get("a"), undefined);
    assert.equal(map.has("a"), false);
    assert.equal(map.set("a", 1), map);
    map.set("b", 2).set("a", 3);
    assert.equal(map.size, 2);
    assert.equal(map.get("a"), 3);
    assert.equal(map.get("b"), 2);
    assert.equal(map.has("b"), true);
    assert.equal(map.delete("a"), true);
    assert.equal(map.delete("a"), false);
    assert.equal(map.has("a"), false);
    assert.equal(map.get("a"), undefined);
    assert.equal(map.size, 1);
    map.clear();
    assert.equal(map.size, 0);
    assert.equal(map.get("b"), undefined);
    map.set("c", 4);
    assert.deepStrictEqual([...map], [["c", 4]]);
  });

  test("keys compare by SameValueZero: NaN is one key, -0 is 0, 1, 1n and '1' are three", () => {
    const map = new GoMap<unknown, string>();
    map.set(NaN, "nan").set(-0, "zero").set(1, "number").set(1n, "bigint").set("1", "string");
    assert.equal(map.size, 5);
    assert.equal(map.get(NaN), "nan");
    assert.equal(map.get(0 / 0), "nan");
    assert.equal(map.get(Number("x")), "nan");
    assert.equal(map.get(0), "zero");
    assert.equal(map.get(-0), "zero");
    assert.equal(map.get(1), "number");
    assert.equal(map.get(1n), "bigint");
    assert.equal(map.get("1"), "string");
    assert.equal(map.has(true), false);
    // The key comes back as +0, as a Map gives it back.
    const zero = [...map.keys()].find((k) => k === 0);
    assert.ok(Object.is(zero, 0));
    assert.ok(Object.is([...new Map([[-0, 1]]).keys()][0], zero));
    assert.equal(map.delete(0), true);
    assert.equal(map.has(-0), false);
  });

  test("distinct keys that look alike stay distinct", () => {
    const keys: unknown[] = [
      "",
      "\0",
      "\0\0",
      "\0\0\0",
      "a",
      "a\0",
      "ab",
      "abc",
      "\ud800",
      "\udc00",
      "\ud800\udc00",
      "\u{10000}x",
      "x".repeat(101),
      "x".repeat(102),
      "é",
      "e\u0301",
      true,
      false,
      null,
      undefined,
      0,
      1,
      -1,
      0.5,
      Infinity,
      -Infinity,
      2 ** 53,
      2 ** 53 + 2,
      0n,
      1n,
      -1n,
      ...INT32_EDGE_BIGINTS,
      2n ** 32n,
      -(2n ** 32n),
      2n ** 64n,
      2n ** 64n + 1n,
      -(2n ** 64n),
      2n ** 200n,
      -(2n ** 200n),
      "0",
      "true",
      "null",
      "undefined",
    ];
    const map = new GoMap<unknown, number>();
    keys.forEach((k, i) => map.set(k, i));
    assert.equal(map.size, keys.length);
    keys.forEach((k, i) => assert.equal(map.get(k), i, `key #${i}`));
    const back = new Map(map);
    assert.equal(back.size, keys.length);
    keys.forEach((k, i) => assert.equal(back.get(k), i, `iterated key #${i}`));
  });

  test("values round-trip by copy, -0 and NaN included", () => {
    const nested = {
      a: [1, -0, "two", null, undefined, { b: 3n, c: new Uint8Array([1, 2]) }],
      "": true,
    };
    const values: unknown[] = [
      -0,
      0,
      NaN,
      Infinity,
      -Infinity,
      Number.MIN_VALUE,
      -Number.MAX_VALUE,
      "",
      "s",
      "long ".repeat(50),
      "\ud800 lone",
      2n ** 100n,
      -(2n ** 100n),
      -7n,
      true,
      false,
      null,
      undefined,
      new Uint8Array(0),
      new Uint8Array([0, 255, 7]),
      [],
      {},
      [[[]]],
      nested,
    ];
    const map = new GoMap<number, unknown>();
    values.forEach((v, i) => map.set(i, v));
    values.forEach((v, i) => assert.deepStrictEqual(map.get(i), v, `value #${i}`));
    assert.ok(Object.is(map.get(0), -0));
    assert.ok(Object.is(map.get(1), 0));
    // Values are copies: mutating what was stored or what was read changes nothing.
    const stored = map.get(values.length - 1) as typeof nested;
    assert.notEqual(stored, nested);
    stored.a.push(99);
    nested.a.length = 0;
    const again = map.get(values.length - 1) as typeof nested;
    assert.equal(again.a.length, 6);
    const bytes = new Uint8Array([1, 2, 3]);
    map.set(100, bytes);
    bytes[0] = 9;
    assert.deepStrictEqual(map.get(100), new Uint8Array([1, 2, 3]));
    // undefined is a value: has() tells it from a missing key.
    assert.equal(map.has(17), true);
    assert.equal(map.get(17), undefined);
  });

  test("entries, keys, values, forEach and spreading agree", () => {
    const map = new GoMap<number, string>();
    for (let i = 0; i < 300; i++) map.set(i, `v${i}`);
    const entries = [...map.entries()];
    const keys = [...map.keys()];
    const values = [...map.values()];
    const viaForEach: [number, string][] = [];
    const self: unknown[] = [];
    map.forEach(function (this: unknown, value, key, m) {
      viaForEach.push([key, value]);
      self.push(this, m);
    }, "this");
    const sort = (list: [number, string][]) => [...list].sort((x, y) => x[0] - y[0]);
    const expected = Array.from({ length: 300 }, (_, i): [number, string] => [i, `v${i}`]);
    assert.deepStrictEqual(sort(entries), expected);
    assert.deepStrictEqual(sort([...map]), expected);
    assert.deepStrictEqual(sort(viaForEach), expected);
    assert.deepStrictEqual([...keys].sort((x, y) => x - y), expected.map(([k]) => k));
    assert.deepStrictEqual([...values].sort(), expected.map(([, v]) => v).sort());
    assert.ok(self.every((x, i) => (i % 2 === 0 ? x === "this" : x === map)));
    assert.equal(Object.prototype.toString.call(map), "[object GoMap]");
  });

  test("typed codecs store and return their types", () => {
    const f = new GoMap<number, number>({ keys: codecs.float64, values: codecs.float64 });
    f.set(-0, -0).set(NaN, 1.5).set(2 ** 60, Number.EPSILON);
    assert.ok(Object.is(f.get(0), -0));
    assert.equal(f.get(NaN), 1.5);
    assert.equal(f.get(2 ** 60), Number.EPSILON);
    const i = new GoMap<number, number>({ keys: codecs.int32, values: codecs.int32 });
    i.set(2 ** 31 - 1, -(2 ** 31)).set(-0, 5);
    assert.equal(i.get(2 ** 31 - 1), -(2 ** 31));
    assert.equal(i.get(0), 5);
    // An int32 has no -0, as the codec's bytes hold it: stored as 0 (the float64 codec keeps it).
    i.set(7, -0);
    assert.ok(Object.is(i.get(7), 0));
    assert.deepStrictEqual([...i].find(([k]) => k === 7), [7, 0]);
    const s = new GoMap<string, string>({ keys: codecs.string, values: codecs.string });
    s.set("", "\ud800").set("k".repeat(300), "").set("\u{1F600}", "x");
    assert.equal(s.get(""), "\ud800");
    assert.equal(s.get("k".repeat(300)), "");
    assert.equal(s.get("\u{1F600}"), "x");
    const b = new GoMap<Uint8Array, Uint8Array>({ keys: codecs.bytes, values: codecs.bytes });
    b.set(new Uint8Array([1, 2]), new Uint8Array([3])).set(new Uint8Array(0), new Uint8Array(500));
    assert.deepStrictEqual(b.get(new Uint8Array([1, 2])), new Uint8Array([3]));
    assert.deepStrictEqual(b.get(new Uint8Array(0)), new Uint8Array(500));
    assert.equal(b.get(new Uint8Array([1, 2, 0])), undefined);
    // The auto codec spelled out is the default.
    const a = new GoMap({ keys: codecs.auto, values: codecs.auto });
    a.set(1n, { x: 1 });
    assert.deepStrictEqual(a.get(1n), { x: 1 });
  });

  test("a user codec encodes keys by content", () => {
    const calls = { encode: 0, decode: 0 };
    const pair = {
      name: "pair",
      encode(p: [number, number]): Uint8Array {
        calls.encode++;
        return new Uint8Array(new Float64Array(p).buffer);
      },
      decode(bytes: Uint8Array): [number, number] {
        calls.decode++;
        const f = new Float64Array(bytes.slice().buffer);
        return [f[0], f[1]];
      },
    };
    const map = new GoMap<[number, number], string>({ keys: pair });
    map.set([1, 2], "a").set([2, 1], "b").set([1, 2], "c");
    assert.equal(map.size, 2);
    assert.equal(map.get([1, 2]), "c");
    assert.equal(map.get([2, 1]), "b");
    assert.ok(calls.encode >= 5);
    assert.deepStrictEqual([...map.keys()].sort(), [[1, 2], [2, 1]]);
    assert.ok(calls.decode >= 2);
  });
});

describe("GoMap.attach in the same thread", () => {
  test("an attached map sees the same data and writes through, both ways", () => {
    const map = new GoMap<string, unknown>();
    map.set("a", 1).set("b", { deep: ["x"] });
    const other = GoMap.attach<string, unknown>(map.handle);
    assert.equal(other.size, 2);
    assert.deepStrictEqual(other.get("b"), { deep: ["x"] });
    other.set("c", 3n);
    assert.equal(map.get("c"), 3n);
    map.delete("a");
    assert.equal(other.has("a"), false);
    // Grow through one view and read through the other.
    for (let i = 0; i < 5000; i++) other.set(`k${i}`, i);
    assert.equal(map.size, 5002);
    for (let i = 0; i < 5000; i += 97) assert.equal(map.get(`k${i}`), i);
    assert.deepStrictEqual(map.stats(), other.stats());
    map.clear();
    assert.equal(other.size, 0);
  });

  test("a view made before another view grew the buffer follows links into the new memory", () => {
    // Two views of one map keep separate typed-array views of the buffer, like two workers.
    // Keys are chosen by their hash under this map's key: 9 in bucket 1 and 9 in bucket 0 of a
    // 16-bucket table, so each bucket has one overflow bucket. Bucket 1's comes first, within
    // the buffer's first 64 KiB; then a big value grows the buffer through `a`, and bucket 0's
    // overflow bucket lands past what `b`'s views cover. Deleting bucket 1's last key through
    // `b` walks bucket 0's chain to find the head of bucket 1's (before the fix in
    // Table#clearSlot, that walk read undefined past b's views and never ended).
    const a = new GoMap<number, unknown>({ hint: 100 });
    assert.equal(a.stats().B, 4);
    const b = GoMap.attach<number, unknown>(a.handle);
    const ones = numbersInBucket(a, 15, 1, 9);
    const zeros = numbersInBucket(a, 15, 0, 9);
    for (const k of ones) a.set(k, k);
    const reserved = a.stats().bytesReserved;
    a.set(ones[0], new Uint8Array(reserved + 1000)); // grows the buffer
    assert.ok(a.stats().bytesReserved > reserved);
    for (const k of zeros) a.set(k, -k);
    assert.equal(a.stats().overflowBuckets, 2);
    assert.equal(b.delete(ones[8]), true);
    assert.equal(a.has(ones[8]), false);
    assert.equal(b.size, 17);
    for (const k of zeros) assert.equal(b.get(k), -k);
    for (const k of ones.slice(1, 8)) assert.equal(a.get(k), k);
    assert.deepStrictEqual(new Map(b).get(ones[0]), new Uint8Array(reserved + 1000));
    for (const k of [...zeros].reverse()) assert.equal(b.delete(k), true);
    assert.equal(a.size, 8);
  });

  test("a view made before another view grew the buffer evacuates into the new memory", () => {
    // `a` grows the buffer, then starts a doubling whose new bucket array lies past what `b`'s
    // views cover; `b`'s next write evacuates old buckets into that array (before the fix in
    // Table#evacuate, those writes were dropped and the evacuated keys lost).
    for (let trial = 0; trial < 3; trial++) {
      const a = new GoMap<number, unknown>();
      const b = GoMap.attach<number, unknown>(a.handle);
      let n = 0;
      while (a.stats().B < 4 || a.stats().growing) a.set(n, n++);
      const reserved = a.stats().bytesReserved;
      a.set(-1, new Uint8Array(reserved)); // grows the buffer through a
      assert.ok(a.stats().bytesReserved > reserved);
      while (!a.stats().growing) a.set(n, n++);
      const { nevacuate } = a.stats();
      b.set(0, 7); // an inline value: b allocates nothing that would refresh its views
      assert.ok(a.stats().nevacuate > nevacuate, "b's write evacuated nothing");
      b.delete(-2);
      b.set(1, 8);
      for (let i = 2; i < n; i++) {
        if (a.get(i) !== i) assert.fail(`key ${i} lost (trial ${trial})`);
        if (b.get(i) !== i) assert.fail(`key ${i} lost, seen through b (trial ${trial})`);
      }
      assert.equal(a.get(0), 7);
      assert.equal(a.get(1), 8);
      assert.equal(new Map(b).size, n + 1);
    }
  });

  test("a structured clone of the handle attaches to the same map", () => {
    const map = new GoMap<number, string>({ keys: codecs.int32, values: codecs.string });
    map.set(7, "seven");
    const handle: GoMapHandle = structuredClone(map.handle);
    assert.equal(handle.kind, "GoMap");
    assert.ok(handle.buffer instanceof SharedArrayBuffer);
    assert.equal(handle.buffer.byteLength, map.handle.buffer.byteLength);
    const other = GoMap.attach<number, string>(handle);
    assert.equal(other.get(7), "seven");
    // The recorded codecs came along: int32 still rejects a fraction.
    assert.throws(() => other.set(1.5, "x"), RangeError);
    other.set(8, "eight");
    assert.equal(map.get(8), "eight");
  });

  test("a map made with a user codec attaches with the same codec", () => {
    const upper = {
      name: "upper",
      encode: (s: string) => new TextEncoder().encode(s.toUpperCase()),
      decode: (b: Uint8Array) => new TextDecoder().decode(b),
    };
    const map = new GoMap<string, string>({ keys: upper, values: upper });
    map.set("a", "b");
    const other = GoMap.attach<string, string>(map.handle, { keys: upper, values: upper });
    assert.equal(other.get("A"), "B");
    assert.equal(other.get("a"), "B");
  });
});

describe("GoMap iteration", () => {
  test("an empty map iterates over nothing, and a finished iterator stays finished", () => {
    const map = new GoMap();
    assert.deepStrictEqual([...map], []);
    map.set(1, 1);
    const it = map.entries();
    assert.deepStrictEqual(it.next(), { value: [1, 1], done: false });
    assert.equal(it.next().done, true);
    map.set(2, 2);
    assert.equal(it.next().done, true);
  });

  test("iteration order varies between iterations (random start)", () => {
    const map = new GoMap<number, number>();
    for (let i = 0; i < 50; i++) map.set(i, i);
    const orders = new Set<string>();
    for (let run = 0; run < 20; run++) orders.add([...map.keys()].join(","));
    // 8 buckets times 8 rotations: 20 identical orders would have odds of 64^-19.
    assert.ok(orders.size > 1, "20 iterations all came out in the same order");
    for (const order of orders) {
      assert.deepStrictEqual(order.split(",").map(Number).sort((a, b) => a - b), [
        ...Array(50).keys(),
      ]);
    }
  });

  test("writes between next() calls: deleted keys are skipped, values are current", () => {
    const map = new GoMap<number, string>();
    for (let i = 0; i < 500; i++) map.set(i, `old${i}`);
    const deleted = new Set<number>();
    const overwritten = new Set<number>();
    const { yielded, atStart } = iterateWith(map, (step, visited) => {
      // Delete a key not visited yet, delete one already visited, overwrite one not visited.
      const unvisited = [...Array(500).keys()].filter((k) => !visited.has(k) && !deleted.has(k));
      if (unvisited.length > 2) {
        const gone = unvisited[(step * 7) % unvisited.length];
        map.delete(gone);
        deleted.add(gone);
        const changed = unvisited.find((k) => k !== gone && !overwritten.has(k));
        if (changed !== undefined) {
          map.set(changed, `new${changed}`);
          overwritten.add(changed);
        }
      }
      const seen = [...visited].find((k) => !deleted.has(k));
      if (seen !== undefined && step % 3 === 0) {
        map.delete(seen);
        deleted.add(seen);
      }
    });
    const yieldedKeys = new Set(yielded.map(([k]) => k));
    for (const key of atStart.keys()) {
      if (!deleted.has(key)) assert.ok(yieldedKeys.has(key), `missed ${key}`);
    }
    for (const [key, value] of yielded) {
      assert.equal(value, overwritten.has(key) ? `new${key}` : `old${key}`);
    }
    // A key deleted before its visit was never yielded: every yielded key was present when
    // yielded, which the value check above implies only for live keys, so check directly.
    const deletedUnvisited = [...deleted].filter((k) => !yieldedKeys.has(k));
    assert.ok(deletedUnvisited.length > 50, "the test deleted too few unvisited keys");
    assert.equal(map.size, 500 - deleted.size);
  });

  test("inserting enough keys mid-iteration to double the table several times", () => {
    for (let trial = 0; trial < 5; trial++) {
      const map = new GoMap<number, number>();
      for (let i = 0; i < 200; i++) map.set(i, i);
      const b0 = map.stats().B;
      let sawGrowing = false;
      let next = 1000;
      const deleted = new Set<number>();
      const { yielded, atStart } = iterateWith(map, (step) => {
        if (step < 10) {
          // 10 batches of 600 new keys: several doublings, each observed in progress.
          for (let i = 0; i < 600; i++) {
            map.set(next, next);
            next++;
            if (map.stats().growing) sawGrowing = true;
          }
          // Delete a key from the start set; its fate is whether it was visited yet.
          const victim = (step * 37 + trial) % 200;
          if (map.delete(victim)) deleted.add(victim);
        }
        // Overwrite an initial key: if it is yielded later, with this value.
        map.set((step * 13) % 200, -step);
      });
      assert.ok(sawGrowing, "the table never grew during the iteration");
      assert.ok(map.stats().B >= b0 + 3, `B went from ${b0} only to ${map.stats().B}`);
      const seen = new Map(yielded);
      assert.equal(seen.size, yielded.length);
      for (const key of atStart.keys()) {
        if (!deleted.has(key)) assert.ok(seen.has(key), `missed initial key ${key}`);
      }
      for (const [key, value] of yielded) {
        // The value yielded was current when yielded; later overwrites may have changed it, so
        // check it is one the key ever had: its own number or an overwrite's -step.
        assert.ok(value === key || value <= 0, `key ${key} yielded value ${value}`);
      }
    }
  });

  test("values yielded are the values at the time of yielding", () => {
    const map = new GoMap<number, number>();
    for (let i = 0; i < 1000; i++) map.set(i, 0);
    const it = map.entries();
    const first = it.next();
    assert.equal(first.done, false);
    const seen = new Set([first.value![0]]);
    // Overwrite everything not seen yet, then grow the table.
    for (let i = 0; i < 1000; i++) if (!seen.has(i)) map.set(i, i + 1);
    for (let i = 1000; i < 9000; i++) map.set(i, -1);
    for (let r = it.next(); !r.done; r = it.next()) {
      const [key, value] = r.value;
      assert.ok(!seen.has(key));
      seen.add(key);
      if (key < 1000) assert.equal(value, key + 1);
      else assert.equal(value, -1);
    }
    for (let i = 0; i < 1000; i++) assert.ok(seen.has(i), `missed ${i}`);
  });

  test("an iteration that starts while a doubling is under way", () => {
    for (let trial = 0; trial < 5; trial++) {
      const map = new GoMap<string, number>();
      let n = 0;
      // Grow to 1024 buckets and stop while the last doubling is still evacuating.
      while (!(map.stats().growing && map.stats().B === 10)) map.set(`k${n}`, n++);
      const { nevacuate } = map.stats();
      assert.ok(nevacuate < 512);
      const deleted = new Set<string>();
      const { yielded, atStart } = iterateWith(map, (step) => {
        if (step % 2 === 0) map.set(`new${step}`, -step);
        if (step % 5 === 0) {
          const victim = `k${(step * 11) % n}`;
          if (map.delete(victim)) deleted.add(victim);
        }
        if (step === 100) { for (let i = 0; i < 8000; i++) map.set(`bulk${i}`, i); }
      });
      const seen = new Map(yielded);
      assert.equal(seen.size, yielded.length);
      for (const [key, value] of atStart) {
        if (!deleted.has(key)) {
          assert.ok(seen.has(key), `missed ${key}`);
          assert.equal(seen.get(key), value);
        }
      }
      for (const key of deleted) assert.equal(map.has(key), false);
      assert.ok(map.stats().B >= 11);
    }
  });

  test("an iteration while a same-size growth is under way", () => {
    for (let trial = 0; trial < 3; trial++) {
      const map = new GoMap<number, number>({ hint: 400 });
      let lo = 0;
      let hi = 0;
      for (; hi < 400; hi++) map.set(hi, hi);
      const B = map.stats().B;
      // Slide a window of 400 keys until the overflow buckets force a same-size growth.
      for (let ops = 0; !map.stats().sameSizeGrow; ops++) {
        assert.ok(ops < 200_000, "no same-size growth happened");
        map.set(hi, hi);
        hi++;
        map.delete(lo++);
      }
      assert.equal(map.stats().growing, true);
      assert.equal(map.stats().B, B);
      const deleted = new Set<number>();
      let stillGrowing = 0;
      const { yielded, atStart } = iterateWith(map, (step) => {
        if (map.stats().sameSizeGrow) stillGrowing++;
        // Keep sliding: one insert, one delete of the oldest live key.
        map.set(hi, hi);
        hi++;
        if (map.delete(lo)) deleted.add(lo);
        lo++;
        if (step === 20) map.set(lo + 200, -1); // an initial key, still live
      });
      assert.ok(stillGrowing > 0);
      const seen = new Map(yielded);
      assert.equal(seen.size, yielded.length);
      for (const [key] of atStart) {
        if (!deleted.has(key)) assert.ok(seen.has(key), `missed ${key}`);
      }
      for (const [key, value] of yielded) assert.ok(value === key || value === -1);
      assert.equal(map.stats().B, B);
      assert.equal(map.size, 400);
    }
  });

  test("same-size growths that start and finish between two next() calls", () => {
    for (let trial = 0; trial < 3; trial++) {
      const map = new GoMap<number, number>({ hint: 400 });
      // 200 keys that stay, and a window of 200 that slides through churn.
      for (let i = 0; i < 200; i++) map.set(-1 - i, i);
      let lo = 0;
      let hi = 0;
      for (; hi < 200; hi++) map.set(hi, hi);
      const B = map.stats().B;
      let growths = 0;
      const { yielded, atStart } = iterateWith(map, (step) => {
        if (step !== 10) return;
        let wasGrowing = map.stats().growing;
        // Churn until two same-size growths have started, and the second has finished.
        for (let i = 0; (growths < 2 || wasGrowing) && i < 500_000; i++) {
          map.set(hi, hi);
          hi++;
          map.delete(lo++);
          const { growing } = map.stats();
          if (growing && !wasGrowing) growths++;
          wasGrowing = growing;
        }
        assert.ok(hi > 400, "the window never moved past the keys present at the start");
      });
      assert.ok(growths >= 2, `only ${growths} same-size growths`);
      assert.equal(map.stats().B, B);
      const seen = new Map(yielded);
      assert.equal(seen.size, yielded.length, "a key was yielded twice");
      for (let i = 0; i < 200; i++) {
        assert.equal(seen.get(-1 - i), i, `stable key ${-1 - i}`);
      }
      // Window keys from the start were all deleted by the churn: only those visited before it.
      const windowSeen = yielded.filter(([k]) => k >= 0 && k < 200).length;
      assert.ok(windowSeen <= 11);
      assert.equal(atStart.size, 400);
    }
  });

  test("clear() during an iteration ends what it yields from before", () => {
    const map = new GoMap<number, number>();
    for (let i = 0; i < 300; i++) map.set(i, i);
    const yielded: number[] = [];
    for (const [key] of map) {
      yielded.push(key);
      if (yielded.length === 10) {
        map.clear();
        map.set(1000, 1000);
      }
    }
    // Only keys seen before the clear, plus perhaps the key added after it.
    const after = yielded.slice(10);
    assert.ok(after.every((k) => k === 1000), `yielded ${after} after clear()`);
  });
});

test("GoMap: a clear of one bucket's chain of 300 keys, crafted with the map's hash key", () => {
  // A clear step used to empty a bucket and its whole overflow chain in one journaled step: a
  // chain of about 100 keys with blobs overflowed the journal, and the clear and every call
  // after it threw JournalFullError. Now a step takes one overflow bucket at a time.
  const m = new GoMap<string, string>();
  const header = new Int32Array(m.handle.buffer, 0, H_SEED1 + 1);
  const [k0, k1] = [header[H_SEED0], header[H_SEED1]];
  const keys: string[] = [];
  for (let i = 0; keys.length < 300; i++) {
    const key = `key${i}`;
    if ((hashString(key, k0, k1) & 1023) === 5) keys.push(key);
  }
  for (const key of keys) m.set(key, `value of ${key}`);
  assert.ok(m.stats().overflowBuckets >= 30, "the keys share one bucket's chain");
  m.clear();
  assert.equal(m.size, 0);
  for (const key of keys) assert.equal(m.get(key), undefined);
  m.verify();
  m.set("after", "works");
  assert.equal(m.get("after"), "works");
  m.verify();
});
