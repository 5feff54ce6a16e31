// Copyright the shmap authors. MIT license.
//
// GoMap's failure modes: input the codecs cannot encode, invalid options, running out of
// maxBytes (at any step of an insert: a blob, an overflow bucket, a growth, an evacuation),
// handles that are not a GoMap's, and the concurrent-misuse detector (simulated in one thread by
// writing the map's sequence word through a raw view of its buffer).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type Codec,
  codecs,
  ConcurrentMapWriteError,
  GoMap,
  MapFullError,
  Mutex,
  SyncMap,
} from "../mod.ts";
import { H_KIND, H_MAX_BYTES, H_ROOT, H_TOP, H_VERSION } from "../src/_engine/arena.ts";
import { failAllocationsForTests } from "../src/_engine/allocator.ts";
import { BUCKET_BYTES, bucketBytes, numbersInBucket, runs } from "./fixtures/go_map_helpers.ts";

/** Everything observable about a map, to compare before and after a failed operation. */
function snapshot(map: GoMap<unknown, unknown>): unknown {
  const entries = [...map].map(([k, v]) => [typeof k === "bigint" ? `${k}n` : k, v] as const);
  entries.sort((x, y) => (String(x[0]) < String(y[0]) ? -1 : String(x[0]) > String(y[0]) ? 1 : 0));
  return { size: map.size, stats: map.stats(), entries };
}

/** The map's raw 32-bit words: the header, the seqlock word, the allocator's state. */
function words(map: GoMap<unknown, unknown>): Int32Array {
  return new Int32Array(map.handle.buffer);
}

/** A map with some content of every kind. */
function filledMap(): GoMap<unknown, unknown> {
  const map = new GoMap<unknown, unknown>();
  for (let i = 0; i < 100; i++) map.set(i, `value ${i}`);
  map.set("long key ".repeat(20), { nested: [1, 2n ** 70n, new Uint8Array([1])] });
  map.set(2n ** 90n, -0);
  return map;
}

function assertUnchangedAfter(
  map: GoMap<unknown, unknown>,
  errorClass: typeof TypeError | typeof RangeError,
  fn: () => unknown,
): void {
  const before = snapshot(map);
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof errorClass, `expected a ${errorClass.name}, got ${error}`);
    assert.ok((error as Error).message.length > 10, "the error has no useful message");
    return true;
  });
  assert.deepStrictEqual(snapshot(map), before);
  assert.equal(words(map)[H_ROOT] & 1, 0, "the map was left marked as being written");
}

describe("GoMap rejects what it cannot encode, unchanged", () => {
  test("keys the default codec does not take", () => {
    const map = filledMap();
    class Thing {}
    const bad: unknown[] = [
      {},
      [],
      [1],
      () => 1,
      Symbol("s"),
      new Date(0),
      new Uint8Array(2),
      new Thing(),
      new Map(),
    ];
    for (const key of bad) {
      assertUnchangedAfter(map, TypeError, () => map.set(key, 1));
      assertUnchangedAfter(map, TypeError, () => map.get(key));
      assertUnchangedAfter(map, TypeError, () => map.has(key));
      assertUnchangedAfter(map, TypeError, () => map.delete(key));
    }
    assert.throws(() => map.set({}, 1), /cannot use an object as a key/);
    assert.throws(() => map.set(() => 1, 1), /cannot use a function as a key/);
  });

  test("values the default codec does not take, overwrites included", () => {
    const map = filledMap();
    class Point {
      x = 1;
    }
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const cyclicArray: unknown[] = [1];
    cyclicArray.push([cyclicArray]);
    let deep: unknown = 1;
    for (let i = 0; i < 1100; i++) deep = [deep];
    const bad: unknown[] = [
      () => 1,
      Symbol("s"),
      new Date(0),
      new Map([[1, 2]]),
      new Set([1]),
      /re/,
      new Point(),
      new Int16Array(2),
      new ArrayBuffer(8),
      cyclic,
      cyclicArray,
      deep,
      { fine: "x".repeat(5000), bad: [1, 2, { f: () => 1 }] },
      [new Uint8Array(1000), Symbol("late")],
    ];
    for (const value of bad) {
      assertUnchangedAfter(map, TypeError, () => map.set("new key", value));
      assertUnchangedAfter(map, TypeError, () => map.set(5, value)); // an existing key keeps its value
      assertUnchangedAfter(map, TypeError, () => map.set("long key ".repeat(20), value));
    }
    assert.throws(() => map.set(1, { a: [0, () => 1] }), /function at value\.a\[1\]/);
    assert.throws(() => map.set(1, cyclic), /cyclic/);
    // Still fully usable.
    map.set("new key", { ok: true });
    assert.deepStrictEqual(map.get("new key"), { ok: true });
  });

  test("typed codecs reject the wrong type (TypeError) or range (RangeError)", () => {
    const int = new GoMap<number, number>({ keys: codecs.int32, values: codecs.int32 });
    int.set(1, 1);
    const i = int as GoMap<unknown, unknown>;
    assertUnchangedAfter(i, RangeError, () => i.set(1.5, 1));
    assertUnchangedAfter(i, RangeError, () => i.set(2 ** 31, 1));
    assertUnchangedAfter(i, RangeError, () => i.set(NaN, 1));
    assertUnchangedAfter(i, RangeError, () => i.set(2, 0.5));
    assertUnchangedAfter(i, RangeError, () => i.set(1, -(2 ** 31) - 1));
    assertUnchangedAfter(i, RangeError, () => i.get(1.5));
    assertUnchangedAfter(i, TypeError, () => i.set("x", 1));
    assertUnchangedAfter(i, TypeError, () => i.set(2, "x"));
    assertUnchangedAfter(i, TypeError, () => i.has("1"));
    assertUnchangedAfter(i, TypeError, () => i.delete(1n));
    const f = new GoMap({ keys: codecs.float64, values: codecs.float64 }) as GoMap<
      unknown,
      unknown
    >;
    f.set(1, 1);
    assertUnchangedAfter(f, TypeError, () => f.set("1", 1));
    assertUnchangedAfter(f, TypeError, () => f.set(1, 1n));
    assertUnchangedAfter(f, TypeError, () => f.get(1n));
    const s = new GoMap({ keys: codecs.string, values: codecs.string }) as GoMap<unknown, unknown>;
    s.set("a", "b");
    assertUnchangedAfter(s, TypeError, () => s.set(1, "x"));
    assertUnchangedAfter(s, TypeError, () => s.set("a", 1));
    assertUnchangedAfter(s, TypeError, () => s.get(null));
    const b = new GoMap({ keys: codecs.bytes, values: codecs.bytes }) as GoMap<unknown, unknown>;
    b.set(new Uint8Array([1]), new Uint8Array([2]));
    assertUnchangedAfter(b, TypeError, () => b.set([1], new Uint8Array(1)));
    assertUnchangedAfter(b, TypeError, () => b.set(new Uint8Array(1), "x"));
    assertUnchangedAfter(b, TypeError, () => b.set(new Uint8Array(1), new Uint16Array(1)));
  });

  test("a user codec whose encode returns something other than a Uint8Array", () => {
    for (
      const result of [[1, 2], new ArrayBuffer(2), "ab", undefined, null, new Uint16Array(2), 7]
    ) {
      const codec: Codec<string> = {
        name: "broken",
        encode: (v) => (v === "good" ? new Uint8Array([1]) : result as unknown as Uint8Array),
        decode: () => "good",
      };
      for (const role of ["keys", "values"] as const) {
        const map = new GoMap<string, string>({ [role]: codec }) as GoMap<unknown, unknown>;
        map.set("good", "good");
        assertUnchangedAfter(map, TypeError, () => map.set("bad", "bad"));
        assert.throws(() => map.set("bad", "bad"), /"broken" encode\(\) returned/);
        if (role === "keys") {
          assertUnchangedAfter(map, TypeError, () => map.get("bad"));
          assertUnchangedAfter(map, TypeError, () => map.delete("bad"));
        }
      }
    }
    // An encode that throws propagates its error, with the map unchanged.
    const throwing: Codec<string> = {
      name: "throwing",
      encode: (v) => {
        if (v === "bad") throw new RangeError("no bad values");
        return new TextEncoder().encode(v);
      },
      decode: (b) => new TextDecoder().decode(b),
    };
    const map = new GoMap<string, string>({ keys: throwing, values: throwing }) as GoMap<
      unknown,
      unknown
    >;
    map.set("a", "b");
    assertUnchangedAfter(map, RangeError, () => map.set("bad", "x"));
    assertUnchangedAfter(map, RangeError, () => map.set("a", "bad"));
  });
});

describe("GoMap options", () => {
  const noop = { encode: () => new Uint8Array(0), decode: () => 0 };

  test("invalid hint", () => {
    for (const hint of [-1, 1.5, NaN, Infinity, -Infinity, 2 ** 53]) {
      assert.throws(() => new GoMap({ hint }), RangeError, `hint ${hint}`);
    }
    for (const hint of ["10", 10n, {}]) {
      assert.throws(
        () => new GoMap({ hint: hint as unknown as number }),
        (e: unknown) => e instanceof TypeError || e instanceof RangeError,
        `hint ${String(hint)}`,
      );
    }
  });

  test("a hint too big for maxBytes is a RangeError, however big", () => {
    // Refused by the options check itself, not by an allocation that fails later (a
    // MapFullError is a RangeError too).
    const refused = (hint: number) => (e: unknown) =>
      e instanceof RangeError && !(e instanceof MapFullError) &&
      new RegExp(`^hint ${hint} needs more memory`).test(e.message);
    assert.throws(() => new GoMap({ hint: 100_000, maxBytes: 65536 }), refused(100_000));
    // Bucket arrays past 2^31 bytes must not wrap around in 32-bit arithmetic. (2^24 keys
    // need 2^22 buckets, which fit the default maxBytes of 1 GiB but not 256 MiB.)
    assert.throws(() => new GoMap({ hint: 2 ** 24, maxBytes: 2 ** 28 }), refused(2 ** 24));
    for (const hint of [2 ** 26, 2 ** 28, 2 ** 31, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
      assert.throws(() => new GoMap({ hint }), refused(hint), `hint ${hint}`);
    }
    // The bucket array may take half of maxBytes: with 1 MiB, 2^11 buckets (13312 keys) fit,
    // 2^12 do not.
    assert.throws(() => new GoMap({ hint: 13313, maxBytes: 2 ** 20 }), refused(13313));
    const ok = new GoMap({ hint: 13312, maxBytes: 2 ** 20 });
    assert.equal(ok.stats().B, 11);
    ok.set(1, 1);
    assert.equal(ok.get(1), 1);
  });

  test("invalid maxBytes", () => {
    // A number that is not a valid size is a RangeError; what is not a number, a TypeError.
    for (
      const maxBytes of [
        0,
        1000,
        65535,
        -65536,
        2 ** 30 + 1,
        2 ** 31,
        2 ** 40,
        65536.5,
        NaN,
        Infinity,
      ]
    ) {
      assert.throws(() => new GoMap({ maxBytes }), RangeError, `maxBytes ${maxBytes}`);
    }
    for (const maxBytes of ["65536", 65536n, {}, null]) {
      assert.throws(
        () => new GoMap({ maxBytes: maxBytes as number }),
        TypeError,
        `maxBytes ${String(maxBytes)}`,
      );
    }
    for (const maxBytes of [65536, 2 ** 20, 2 ** 30]) {
      const map = new GoMap({ maxBytes });
      map.set("k", "v");
      assert.equal(map.get("k"), "v");
      assert.ok(map.stats().bytesReserved <= maxBytes);
    }
  });

  test("keys and values must be codecs", () => {
    const notCodecs: unknown[] = [
      "float64",
      42,
      null,
      {},
      { name: "x" },
      { name: "x", encode: () => new Uint8Array(0) },
      { name: "", ...noop },
      { name: 7, ...noop },
      { name: "auto", ...noop }, // a built-in's name on a user codec
      { name: "string", ...noop },
      { name: "x".repeat(33), ...noop }, // longer than the header holds
    ];
    for (const codec of notCodecs) {
      for (const role of ["keys", "values"]) {
        assert.throws(
          () => new GoMap({ [role]: codec }),
          TypeError,
          `${role}: ${JSON.stringify(codec)}`,
        );
      }
    }
    assert.throws(
      () => new GoMap({ keys: { name: "x" } as unknown as Codec<unknown> }),
      /keys must be a Codec/,
    );
    assert.throws(() => new GoMap({ values: { name: "auto", ...noop } }), /reserved/);
    // A built-in codec is the object itself: a spread of one, or an object inheriting from one,
    // is a user's codec, refused under a built-in's name (before, it took the built-in's slot
    // layout under any name: an int32 spread named "string" read a string map's values as NaN).
    const int32Spread = { ...codecs.int32, name: "string" } as Codec<unknown>;
    const strings = new GoMap<number, string>({ values: codecs.string }).set(1, "a string");
    assert.throws(() => GoMap.attach(strings.handle, { values: int32Spread }), /reserved/);
    assert.throws(() => new GoMap({ values: int32Spread }), /reserved/);
    assert.throws(() => new GoMap({ values: { ...codecs.int32 } }), /reserved/);
    assert.throws(() => new SyncMap({ keys: Object.create(codecs.string) }), /reserved/);
    assert.equal(GoMap.attach(strings.handle, { values: codecs.string }).get(1), "a string");
    assert.throws(() => new GoMap({ keys: null as never }), /keys must be a Codec/);
    assert.throws(
      () => new GoMap({ values: 42 as never }),
      /values must be a Codec: .*, got a number 42/,
    );
    // A 32-character name is fine.
    const map = new GoMap({ keys: { name: "y".repeat(32), ...noop } });
    assert.equal(map.size, 0);
  });

  test("options must be an object", () => {
    for (const options of [null, 5, "x", true]) {
      assert.throws(() => new GoMap(options as unknown as object), TypeError);
    }
  });
});

// ---------------------------------------------------------------------------------------------

/** Checks that `map` holds exactly `model`, by lookups and by iteration. */
function assertSame(map: GoMap<unknown, unknown>, model: Map<unknown, unknown>): void {
  assert.equal(map.size, model.size);
  for (const [key, value] of model) {
    if (!map.has(key)) assert.fail(`lost key ${String(key)}`);
    assert.deepStrictEqual(map.get(key), value);
  }
  const seen = new Map<unknown, unknown>();
  for (const [key, value] of map) {
    if (seen.has(key)) assert.fail(`key ${String(key)} yielded twice`);
    seen.set(key, value);
    assert.deepStrictEqual(value, model.get(key));
  }
  assert.equal(seen.size, model.size);
}

function assertMapFull(error: unknown): true {
  assert.ok(error instanceof MapFullError, `expected a MapFullError, got ${error}`);
  assert.ok(error instanceof RangeError);
  assert.equal(error.name, "MapFullError");
  assert.match(error.message, /maxBytes/);
  return true;
}

describe("GoMap running out of maxBytes", () => {
  test("a key too large for maxBytes is refused before the value is encoded", () => {
    // The value's getters are user code: they must not run for a write that cannot happen.
    const map = new GoMap<string, unknown>({ maxBytes: 65536 });
    let ran = 0;
    const value = {
      get x() {
        ran++;
        map.set("side", 1);
        return 1;
      },
    };
    assert.throws(() => map.set("k".repeat(40_000), value), MapFullError);
    assert.equal(ran, 0);
    assert.equal(map.has("side"), false);
    const sync = new SyncMap<string, unknown>({ maxBytes: 65536 });
    for (
      const write of [
        () => sync.store("k".repeat(40_000), value),
        () => sync.swap("k".repeat(40_000), value),
        () => sync.loadOrStore("k".repeat(40_000), value),
      ]
    ) {
      assert.throws(write, MapFullError);
    }
    assert.equal(ran, 0);
    assert.equal(map.size + sync.size, 0);
    map.verify();
    sync.verify();
  });

  test("MapFullError is exported and is a RangeError", () => {
    const error = new MapFullError(10, 65536);
    assert.ok(error instanceof RangeError && error instanceof Error);
    assert.equal(error.name, "MapFullError");
    assert.match(error.message, /65536/);
  });

  test("long string values until full: consistent, usable, and room again after deletes", () => {
    for (
      const [maxBytes, hint, keyOf] of [
        [65536, 200, (i: number) => i],
        [131072, 1000, (i: number) => `key ${i}`],
      ] as const
    ) {
      const map = new GoMap<unknown, unknown>({ maxBytes, hint });
      const B = map.stats().B;
      const model = new Map<unknown, unknown>();
      const valueOf = (i: number) => `${i}:`.padEnd(300, "x");
      let failed = -1;
      for (let i = 0; failed < 0; i++) {
        assert.ok(i < 10_000, "never ran out of memory");
        try {
          map.set(keyOf(i), valueOf(i));
          model.set(keyOf(i), valueOf(i));
        } catch (error) {
          assertMapFull(error);
          failed = i;
        }
      }
      // Presized: no growth, so the failure was the value's blob.
      assert.equal(map.stats().B, B);
      assert.equal(map.stats().growing, false);
      assert.equal(words(map)[H_ROOT] & 1, 0, "a write was left open");
      assert.equal(map.has(keyOf(failed)), false);
      assert.equal(map.get(keyOf(failed)), undefined);
      assertSame(map, model);
      const s = map.stats();
      assert.ok(s.bytesUsed <= maxBytes && s.bytesReserved <= maxBytes);
      // The same insert fails again, and changes nothing again.
      const before = snapshot(map);
      assert.throws(() => map.set(keyOf(failed), valueOf(failed)), assertMapFull);
      assert.deepStrictEqual(snapshot(map), before);
      // Writes that need no memory work right away.
      map.set(keyOf(0), 0);
      model.set(keyOf(0), 0);
      assert.equal(map.get(keyOf(0)), 0);
      // Delete every other key; their blocks serve the same inserts again.
      const deleted: number[] = [];
      for (let i = 1; i < failed; i += 2) {
        assert.equal(map.delete(keyOf(i)), true);
        model.delete(keyOf(i));
        deleted.push(i);
      }
      assertSame(map, model);
      for (const i of deleted.slice(0, deleted.length >> 1)) {
        map.set(keyOf(i), valueOf(i));
        model.set(keyOf(i), valueOf(i));
      }
      // Fresh keys too, of the same sizes as deleted ones ("key -1" like "key 11").
      for (let i = 1; i <= 8; i++) {
        map.set(keyOf(-i), valueOf(i));
        model.set(keyOf(-i), valueOf(i));
      }
      assertSame(map, model);
      assert.ok(map.stats().bytesUsed <= maxBytes);
      // clear() gives everything back but the bucket array.
      map.clear();
      assert.equal(map.stats().bytesUsed, BUCKET_BYTES * 2 ** B);
      for (let i = 0; i < failed; i++) map.set(keyOf(i), valueOf(i));
      assert.equal(map.size, failed);
    }
  });

  test("number keys: past the load factor when growth cannot fit, then full; consistent", () => {
    const maxBytes = 65536;
    const map = new GoMap<number, number>({ maxBytes });
    const model = new Map<unknown, unknown>();
    let failed = -1;
    for (let i = 0; failed < 0; i++) {
      try {
        map.set(i, -i);
        model.set(i, -i);
      } catch (error) {
        assertMapFull(error);
        failed = i;
      }
    }
    const s = map.stats();
    // The doubling to 2^(B+1) buckets never fit, so keys went on into overflow buckets.
    assert.ok(failed > 6.5 * 2 ** s.B, `only ${failed} keys fit in 2^${s.B} buckets`);
    assert.ok(s.overflowBuckets > 0);
    assert.ok(s.bytesUsed <= maxBytes);
    assert.equal(map.has(failed), false);
    assertSame(map as GoMap<unknown, unknown>, model);
    // Deleting keys frees slots that the same keys can take again.
    for (let i = 0; i < failed; i += 3) {
      assert.equal(map.delete(i), true);
      model.delete(i);
    }
    for (let i = 0; i < failed; i += 6) {
      map.set(i, i);
      model.set(i, i);
    }
    assertSame(map as GoMap<unknown, unknown>, model);
  });

  /**
   * Engineered failures inside a growth. Picks number keys whose hashes (under this map's key)
   * all end in binary 00, so they share bucket 0 at B = 0, 1 and 2, and fills 13 of them into a
   * B = 1 table: bucket 0 and one overflow bucket. Allocations then fail as `fail` says.
   */
  function crowdedMap(): {
    map: GoMap<number, unknown>;
    keys: number[];
    model: Map<unknown, unknown>;
  } {
    const map = new GoMap<number, unknown>({ maxBytes: 65536 });
    const keys = numbersInBucket(map, 3, 0, 40);
    const model = new Map<unknown, unknown>();
    for (const key of keys.slice(0, 13)) {
      map.set(key, 0);
      model.set(key, 0);
    }
    const s = map.stats();
    assert.equal(s.B, 1, "13 keys fit in 2 buckets");
    assert.equal(s.growing, false);
    assert.equal(s.overflowBuckets, 1, "bucket 0 holds all 13 keys: 8 plus 5 in one overflow");
    return { map, keys, model };
  }

  test("an evacuation that runs out of memory is undone with its growth; the key still goes in", () => {
    const { map, keys, model } = crowdedMap();
    const m = map as GoMap<unknown, unknown>;
    // The 14th key is over the load factor, so the table doubles; evacuating old bucket 0 puts
    // all 13 keys in new bucket 0, which needs an overflow bucket: that allocation fails.
    // The doubled array (4 buckets) fits; an overflow bucket fails, from its own size class or
    // from any larger one a full arena could serve it from (allocateAtLeast).
    const doubled = 4 * BUCKET_BYTES;
    failAllocationsForTests((size) => size >= BUCKET_BYTES && size <= 1024 && size !== doubled);
    try {
      // The growth is undone, and the key goes into the table as it was, where bucket 0's
      // overflow bucket has room: as when the doubled array itself cannot be had. (A new key
      // once waited for that evacuation and was refused while it could not be made.)
      for (const key of keys.slice(13, 16)) {
        map.set(key, 1);
        model.set(key, 1);
        const s = map.stats();
        assert.equal(s.growing, false);
        assert.equal(s.B, 1);
      }
      assertSame(m, model);
      m.verify();
      // Bucket 0's chain is full: the 17th key needs an overflow bucket, which fails, and the
      // insert has no effect.
      const before = snapshot(m);
      assert.throws(() => map.set(keys[16], 1), assertMapFull);
      assert.deepStrictEqual(snapshot(m), before);
      assert.equal(words(m)[H_ROOT] & 1, 0);
      // Overwriting a key with an inline value needs no memory.
      map.set(keys[0], "x");
      model.set(keys[0], "x");
      assertSame(m, model);
      // Deletes work too, and a freed slot takes a new key with no allocation.
      for (const key of keys.slice(1, 6)) {
        assert.equal(map.delete(key), true);
        model.delete(key);
      }
      map.set(keys[16], 1);
      model.set(keys[16], 1);
      assertSame(m, model);
      m.verify();
    } finally {
      failAllocationsForTests(undefined);
    }
  });

  test("a growth that cannot be allocated is skipped: inserts go on past the load factor", () => {
    const { map, keys, model } = crowdedMap();
    const m = map as GoMap<unknown, unknown>;
    // The doubled array (4 buckets) never fits; two more overflow buckets do.
    let overflows = 0;
    failAllocationsForTests((size) =>
      size > BUCKET_BYTES || (size === BUCKET_BYTES && ++overflows > 2)
    );
    let failed = -1;
    try {
      for (let i = 13; i < keys.length; i++) {
        try {
          map.set(keys[i], i);
          model.set(keys[i], i);
        } catch (error) {
          assertMapFull(error);
          failed = i;
          break;
        }
        const s = map.stats();
        assert.equal(s.growing, false);
        assert.equal(s.B, 1);
      }
    } finally {
      failAllocationsForTests(undefined);
    }
    // Bucket 0 had room for 16 keys, then took two overflow buckets of 8: 32 keys, over 6.5 * 2.
    assert.equal(failed, 32);
    assert.equal(map.stats().count, 32);
    assert.equal(map.has(keys[32]), false);
    assertSame(m, model);
    assert.equal(words(m)[H_ROOT] & 1, 0);
    map.delete(keys[0]);
    model.delete(keys[0]);
    map.set(keys[32], 32);
    model.set(keys[32], 32);
    assertSame(m, model);
  });

  test("random writes under memory pressure: every op succeeds or fails with no effect", () => {
    const value = fc.oneof(
      fc.integer(),
      fc.nat(1500).map((n) => "v".repeat(n)),
      fc.nat(3000).map((n) => new Uint8Array(n)),
      fc.record({ a: fc.nat(800).map((n) => "w".repeat(n)) }, { noNullPrototype: true }),
    );
    const op = fc.oneof(
      { weight: 8, arbitrary: fc.tuple(fc.constant("set" as const), fc.nat(400), value) },
      {
        weight: 3,
        arbitrary: fc.tuple(fc.constant("delete" as const), fc.nat(400), fc.constant(0)),
      },
      {
        weight: 1,
        arbitrary: fc.tuple(fc.constant("check" as const), fc.nat(400), fc.constant(0)),
      },
    );
    let fulls = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(65536, 131072),
        fc.array(op, { minLength: 100, maxLength: 600, size: "max" }),
        (maxBytes, ops) => {
          const map = new GoMap<unknown, unknown>({ maxBytes });
          const model = new Map<unknown, unknown>();
          for (const [kind, n, v] of ops) {
            const key = n % 3 === 0 ? n : n % 3 === 1 ? `key number ${n}` : BigInt(n) << 70n;
            if (kind === "set") {
              const before = map.stats();
              try {
                map.set(key, v);
                model.set(key, v);
              } catch (error) {
                assertMapFull(error);
                fulls++;
                assert.equal(map.stats().count, before.count);
                assert.deepStrictEqual(map.get(key), model.get(key));
                assert.equal(map.has(key), model.has(key));
              }
            } else if (kind === "delete") {
              assert.equal(map.delete(key), model.delete(key));
            } else {
              assertSame(map, model);
            }
            assert.equal(map.size, model.size);
            assert.ok(map.stats().bytesUsed <= maxBytes);
          }
          assertSame(map, model);
          for (const key of [...model.keys()]) map.delete(key);
          assert.equal(map.stats().bytesUsed, bucketBytes(map), "leaked blocks");
        },
      ),
      runs(50),
    );
    assert.ok(fulls > 0, "memory never ran out");
  });
});

// ---------------------------------------------------------------------------------------------

describe("GoMap.attach rejects what is not a GoMap handle", () => {
  const rejects = (handle: unknown, message: RegExp) =>
    assert.throws(
      () => GoMap.attach(handle as never),
      (e: unknown) => e instanceof TypeError && message.test(e.message),
      `attach(${String(handle)}) should throw a TypeError matching ${message}`,
    );

  test("non-objects, wrong kinds and missing or wrong buffers", () => {
    rejects(null, /GoMap\.attach.*handle/);
    rejects(undefined, /GoMap\.attach.*handle/);
    rejects(42, /GoMap\.attach.*handle/);
    rejects("GoMap", /GoMap\.attach.*handle/);
    rejects({}, /GoMap\.attach.*not a GoMap/);
    rejects({ kind: "GoMap" }, /not a SharedArrayBuffer/);
    rejects({ kind: "GoMap", buffer: new ArrayBuffer(65536) }, /not a SharedArrayBuffer/);
    rejects(
      { kind: "GoMap", buffer: new Uint8Array(new SharedArrayBuffer(65536)) },
      /not a SharedArrayBuffer/,
    );
    rejects({ kind: "GoMap", buffer: new SharedArrayBuffer(65536) }, /not a shmap arena/);
    rejects(
      { kind: "GoMap", buffer: new SharedArrayBuffer(64, { maxByteLength: 65536 }) },
      /not a shmap arena/,
    );
    rejects(
      { kind: "GoMap", buffer: new SharedArrayBuffer(65536, { maxByteLength: 65536 }) },
      /bad magic/,
    );
    const mutex = new Mutex();
    rejects(mutex.handle, /for a Mutex, not a GoMap/);
    rejects({ ...mutex.handle, kind: "GoMap" }, /GoMap\.attach/);
    const map = new GoMap();
    rejects({ kind: "SyncMap", buffer: map.handle.buffer }, /for a SyncMap, not a GoMap/);
    rejects({ kind: "gomap", buffer: map.handle.buffer }, /not a GoMap/);
  });

  test("a corrupted header", () => {
    const map = new GoMap<string, number>();
    map.set("a", 1);
    const i32 = words(map as GoMap<unknown, unknown>);
    const corrupt = (word: number, value: number, message: RegExp) => {
      const saved = i32[word];
      i32[word] = value;
      try {
        rejects(map.handle, message);
      } finally {
        i32[word] = saved;
      }
    };
    corrupt(0, 0, /bad magic/);
    corrupt(H_VERSION, 99, /layout version 99/);
    corrupt(H_KIND, 2, /for a SyncMap, not a GoMap/);
    corrupt(H_KIND, 77, /unknown kind 77/);
    corrupt(H_MAX_BYTES, 12345, /corrupt/);
    corrupt(H_TOP, 3, /corrupt/);
    corrupt(H_TOP, 2 ** 30, /corrupt/);
    // Restored, it attaches again.
    assert.equal(GoMap.attach<string, number>(map.handle).get("a"), 1);
  });

  test("codecs must match the ones the map recorded", () => {
    const point: Codec<number[]> = {
      name: "point",
      encode: (p) => new Uint8Array(new Int32Array(p).buffer),
      decode: (b) => Array.from(new Int32Array(b.slice().buffer)),
    };
    const map = new GoMap<number[], string>({ keys: point, values: codecs.string });
    map.set([1, 2], "a");
    assert.throws(() => GoMap.attach(map.handle), /keys use the codec "point": pass it/);
    assert.throws(
      () => GoMap.attach(map.handle, { keys: { ...point, name: "pointy" } }),
      /"point", not "pointy"/,
    );
    // Names that differ in what does not print are told apart: escaped in the message.
    assert.throws(
      () => GoMap.attach(map.handle, { keys: { ...point, name: "point\u0000" } }),
      (error: Error) => error.message.includes(String.raw`not "point\u0000"`),
    );
    assert.throws(() => GoMap.attach(map.handle, { keys: codecs.bytes }), TypeError);
    assert.throws(
      () => GoMap.attach(map.handle, { keys: point, values: codecs.auto }),
      /"string", not "auto"/,
    );
    assert.throws(
      () => GoMap.attach(map.handle, { keys: point, values: { name: "x" } as never }),
      TypeError,
    );
    const ok = GoMap.attach<number[], string>(map.handle, { keys: point, values: codecs.string });
    assert.equal(ok.get([1, 2]), "a");
    const auto = new GoMap().set(1, 1);
    assert.throws(
      () => GoMap.attach(auto.handle, { keys: codecs.float64 }),
      /"auto", not "float64"/,
    );
    assert.equal(GoMap.attach(auto.handle, { keys: codecs.auto }).get(1), 1);
  });
});

// ---------------------------------------------------------------------------------------------

describe("GoMap detects concurrent misuse", () => {
  const isMisuse = (e: unknown) =>
    e instanceof ConcurrentMapWriteError && e.name === "ConcurrentMapWriteError" &&
    /concurrent map/.test(e.message);

  test("while another worker is inside a write, every operation throws and changes nothing", () => {
    const map = filledMap();
    const i32 = words(map);
    const before = snapshot(map);
    const seq = i32[H_ROOT];
    assert.equal(seq & 1, 0);
    // An iterator part-way through, to be resumed while the write is "in progress".
    const it = map.entries();
    it.next();
    Atomics.store(i32, H_ROOT, seq + 1); // a writer elsewhere has begun
    const ops: [string, () => unknown][] = [
      ["get number", () => map.get(5)],
      ["get missing number", () => map.get(-5)],
      ["get string", () => map.get("long key ".repeat(20))],
      ["get bigint", () => map.get(2n ** 90n)],
      ["has", () => map.has(5)],
      ["has missing number", () => map.has(-5)],
      ["getOk number", () => map.getOk(5)],
      ["getOk missing number", () => map.getOk(-5)],
      ["has string", () => map.has("x")],
      ["set new", () => map.set("new", 1)],
      ["set existing", () => map.set(5, "changed")],
      ["delete", () => map.delete(5)],
      ["delete missing", () => map.delete("missing")],
      ["clear", () => map.clear()],
      ["spread", () => [...map]],
      ["keys", () => [...map.keys()]],
      ["values", () => [...map.values()]],
      ["forEach", () => map.forEach(() => {})],
      ["resumed iterator", () => {
        for (let r = it.next(); !r.done; r = it.next());
      }],
    ];
    for (const [name, op] of ops) assert.throws(op, isMisuse, name);
    assert.equal(i32[H_ROOT], seq + 1, "a failed operation touched the sequence word");
    // The other writer finishes: everything is as it was, and usable.
    Atomics.store(i32, H_ROOT, seq + 2);
    assert.deepStrictEqual(snapshot(map), before);
    map.set("new", 1);
    assert.equal(map.get("new"), 1);
    assert.equal(map.delete(5), true);
    assert.equal(map.size, 102);
  });

  test("a user codec's decode runs after the read is validated, on bytes copied out", () => {
    // A read that overlaps a write is checked by the workers test (go_map_workers_test.ts):
    // no user code runs inside a read any more, so one thread cannot interleave with it.
    let interfere: (() => void) | undefined;
    const watched: Codec<string> = {
      name: "watched",
      encode: (s) => new TextEncoder().encode(s),
      decode: (b) => {
        interfere?.();
        return new TextDecoder().decode(b);
      },
    };
    const map = new GoMap<number, string>({ values: watched });
    for (let i = 0; i < 50; i++) map.set(i, `v${i}`);
    const i32 = words(map as GoMap<unknown, unknown>);
    // A whole write by another worker while this one decodes: the read was over, and its
    // bytes were copied, so the value is the one read.
    interfere = () => void Atomics.add(i32, H_ROOT, 2);
    assert.equal(map.get(1), "v1");
    assert.equal([...map].length, 50);
    // A write by another worker begins while this one decodes: this read is complete, the
    // next one sees the writer inside.
    interfere = () => {
      Atomics.add(i32, H_ROOT, 1);
      interfere = undefined;
    };
    assert.equal(map.get(1), "v1");
    assert.throws(() => map.get(1), isMisuse); // still inside that write
    Atomics.add(i32, H_ROOT, 1);
    // The codec's own error comes through as it is.
    interfere = () => {
      Atomics.add(i32, H_ROOT, 2);
      throw new RangeError("garbage");
    };
    assert.throws(
      () => map.get(1),
      (e: unknown) => e instanceof RangeError && e.message === "garbage",
    );
    interfere = undefined;
    assert.equal(map.get(1), "v1");
    assert.equal(map.size, 50);
    assert.equal([...map].length, 50);
  });

  test("the error class is exported and named", () => {
    const error = new ConcurrentMapWriteError("write");
    assert.ok(error instanceof Error);
    assert.equal(error.name, "ConcurrentMapWriteError");
    assert.match(error.message, /concurrent map write/);
  });
});
