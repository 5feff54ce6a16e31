// Copyright the shmap authors. MIT license.
//
// Sizes near and past 2^31, and encodings whose cost is out of proportion to what can be stored:
// each is a clear RangeError (MapFullError when the map's maxBytes is what it cannot fit), found
// before the work, with the map unchanged and working afterwards.
import { startWorker, type TestWorker } from "./fixtures/spawn.ts";
import { WriterTx } from "../src/_engine/tx.ts";
import { Journal } from "../src/_engine/journal.ts";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Codec, codecs, MapFullError, SyncMap } from "../mod.ts";
import {
  ALLOC_JOURNAL_ENTRIES,
  Arena,
  H_ALLOC_JOURNAL,
  KIND_GO_MAP,
} from "../src/_engine/arena.ts";
import { bytesUsed } from "../src/_engine/allocator.ts";
import { Table } from "../src/_engine/table.ts";
import { deadline } from "./fixtures/harness.ts";
import { type AnyMap, keyOrder, type Kind, KINDS, sorted } from "./fixtures/map_kinds.ts";

/** What a failed operation must leave as it was. */
function snapshot(map: AnyMap): unknown {
  return { entries: sorted(map), size: map.size, bytesUsed: map.stats().bytesUsed };
}

/** Runs `fn`, which must throw MapFullError (a RangeError), and checks the map is unchanged. */
function refusedFull(map: AnyMap, fn: () => unknown, what: string): void {
  const before = snapshot(map);
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof MapFullError, `${what}: expected a MapFullError, got ${e}`);
    assert.ok(e instanceof RangeError);
    assert.match((e as Error).message, /maxBytes/);
    return true;
  }, what);
  assert.deepStrictEqual(snapshot(map), before, `${what}: the map changed`);
}

/** 200 writes, reads and deletes that must all work, checked against a model. */
function stillWorks(map: AnyMap, what: string): void {
  const model = new Map(sorted(map));
  for (let i = 0; i < 200; i++) {
    const key = `after ${i % 50}`;
    if (i % 3 === 2) {
      assert.equal(map.delete(key), model.delete(key), `${what}: delete ${i}`);
    } else {
      map.set(key, { i, s: "v".repeat(i % 40) });
      model.set(key, { i, s: "v".repeat(i % 40) });
    }
    assert.deepStrictEqual(map.get(key), model.get(key), `${what}: get ${i}`);
  }
  assert.deepStrictEqual(
    sorted(map),
    [...model].sort((a, b) => keyOrder(a[0]) < keyOrder(b[0]) ? -1 : 1),
  );
  assert.ok(map.stats().bytesUsed > 0, `${what}: bytesUsed ${map.stats().bytesUsed}`);
}

/**
 * A sparse array of length 2^32 - 1 behind a Proxy that counts element reads and gives up after
 * 1000 of them: an encoder that walks the elements fails with "walked", instead of running for
 * minutes.
 */
function hugeSparseArray(): { array: unknown[]; reads: () => number } {
  const sparse: unknown[] = [];
  sparse.length = 2 ** 32 - 1;
  let reads = 0;
  const array = new Proxy(sparse, {
    get(target, name, receiver) {
      if (typeof name === "string" && /^\d+$/.test(name) && ++reads > 1000) {
        throw new Error("walked the elements of a huge sparse array");
      }
      return Reflect.get(target, name, receiver);
    },
  });
  return { array, reads: () => reads };
}

describe("SyncMap: a huge hint is refused, not a corrupt table", () => {
  for (const hint of [1e8, 1e9, 2 ** 31, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
    test(`hint ${hint}`, () => {
      assert.throws(
        () => new SyncMap({ hint }),
        (e: unknown) => e instanceof RangeError && /hint .* needs more memory/.test(e.message),
      );
    });
  }

  test("the largest hint that fits builds a table that holds it", () => {
    // maxBytes / 4 bounds the hint's table: 2^16 buckets of 144 bytes fit 2^24 bytes.
    const map = new SyncMap<number, number>({ hint: 6.5 * 2 ** 16, maxBytes: 2 ** 26 });
    for (let i = 0; i < 1000; i++) map.store(i, i);
    assert.equal(map.size, 1000);
    assert.equal(map.load(999), 999);
    assert.throws(() => new SyncMap({ hint: 6.5 * 2 ** 16 + 1, maxBytes: 2 ** 26 }), RangeError);
  });
});

describe("Table.create: a bucket array that cannot fit is a MapFullError, allocating nothing", () => {
  for (const hint of [1e8, 1e9, 2 ** 31]) {
    test(`hint ${hint}`, () => {
      const arena = Arena.create(KIND_GO_MAP, 2 ** 20, 0, "auto", "auto", false);
      const tx = new WriterTx(
        arena,
        new Journal(arena, H_ALLOC_JOURNAL, ALLOC_JOURNAL_ENTRIES),
      );
      const before = bytesUsed(arena);
      tx.begin();
      assert.throws(() => Table.create(tx, arena, 2048, hint), MapFullError);
      tx.abort();
      assert.equal(bytesUsed(arena), before);
    });
  }
});

describe("values and keys of 2 GiB or more", () => {
  // A 2 GiB Uint8Array costs address space only: its pages are never touched.
  const huge = new Uint8Array(2 ** 31);
  for (const kind of Object.keys(KINDS) as Kind[]) {
    test(`${kind}: a 2 GiB Uint8Array value, alone or nested, and as a bytes key`, () => {
      const map = KINDS[kind]();
      map.set("a", 1).set("b", "bee");
      refusedFull(map, () => map.set("huge", huge), "a 2 GiB value");
      refusedFull(map, () => map.set("a", huge), "a 2 GiB overwrite");
      refusedFull(map, () => map.set("huge", { inner: [huge] }), "a nested 2 GiB value");
      stillWorks(map, kind);
      const bytesKeys = KINDS[kind]({ keys: codecs.bytes, values: codecs.bytes });
      bytesKeys.set(new Uint8Array([1]), new Uint8Array([2]));
      refusedFull(bytesKeys, () => bytesKeys.set(huge, new Uint8Array(1)), "a 2 GiB key");
      refusedFull(bytesKeys, () => bytesKeys.set(new Uint8Array(1), huge), "a 2 GiB bytes value");
      // A key too large for the map is in it under no circumstances: lookups find nothing.
      assert.equal(bytesKeys.has(huge), false);
      assert.equal(bytesKeys.get(huge), undefined);
      assert.equal(bytesKeys.delete(huge), false);
      assert.deepStrictEqual([...bytesKeys], [[new Uint8Array([1]), new Uint8Array([2])]]);
    });

    test(`${kind}: a user codec that returns 2 GiB`, () => {
      let out = new Uint8Array(1);
      const codec: Codec<string> = {
        name: "sized",
        encode: () => out,
        decode: (b) => `${b.length}`,
      };
      const map = KINDS[kind]({ values: codec });
      map.set("small", "x");
      out = huge;
      refusedFull(map, () => map.set("big", "x"), "a user codec's 2 GiB encoding");
      out = new Uint8Array(3);
      map.set("after", "x");
      assert.deepStrictEqual(sorted(map), [["after", "3"], ["small", "1"]]);
    });

    test(`${kind}: what cannot fit in maxBytes is refused before it is encoded`, () => {
      const map = KINDS[kind]({ maxBytes: 65536 });
      map.set("a", "kept");
      refusedFull(map, () => map.set("s", "x".repeat(40_000)), "a string of 80 KB");
      refusedFull(map, () => map.set("s", ["x".repeat(70_000)]), "a nested 70 KB string");
      refusedFull(map, () => map.set("s", new Array(70_000).fill(0)), "an array of 70,000");
      refusedFull(map, () => map.set("x".repeat(40_000), 1), "a key of 80 KB");
      assert.equal(map.has("x".repeat(40_000)), false);
      assert.equal(map.delete("x".repeat(40_000)), false);
      if (map instanceof SyncMap) {
        refusedFull(map, () => map.loadOrStore("x".repeat(40_000), 1), "loadOrStore's key");
        refusedFull(map, () => map.swap(2n ** (8n * 70_000n), 1), "swap's key");
        assert.deepStrictEqual(map.loadAndDelete("x".repeat(40_000)), [undefined, false]);
        assert.equal(map.compareAndSwap("x".repeat(40_000), 1, 2), false);
        assert.equal(map.compareAndDelete("x".repeat(40_000), 1), false);
      }
      refusedFull(map, () => map.set("b", 2n ** (8n * 70_000n)), "a bigint of 70 KB");
      stillWorks(map, kind);
    });

    test(`${kind}: a sparse array of length 2^32 - 1 is refused without walking it`, () => {
      const map = KINDS[kind]();
      map.set("a", [1, 2]);
      const { array, reads } = hugeSparseArray();
      refusedFull(map, () => map.set("sparse", array), "a sparse array");
      refusedFull(map, () => map.set("sparse", { deep: [[array]] }), "a nested sparse array");
      assert.equal(reads(), 0);
      stillWorks(map, kind);
    });
  }

  test("a 2 GiB Uint8Array after many small ones, in optimized code", {
    timeout: 60_000,
  }, async () => {
    // V8 15's Maglev compiled `4 + bytes.length > limit` as false for a 2 GiB array once the
    // code had seen only small ones (the length read as a negative int32), and the map wrote
    // past its buffer. A worker starts with code no huge array has run through.
    let worker: TestWorker | undefined;
    try {
      const outcomes = await deadline(
        new Promise<Record<string, string>>((resolve, reject) => {
          worker = startWorker(new URL("./fixtures/huge_bytes_worker.ts", import.meta.url), {
            message: (data) => resolve(data as Record<string, string>),
            error: reject,
          });
        }),
        50_000,
        "the worker's outcomes",
      );
      const expected: Record<string, string> = {};
      for (const kind of ["GoMap", "SyncMap"]) {
        for (const what of ["auto value", "bytes value", "bytes key", "nested value"]) {
          expected[`${kind} ${what}`] = "MapFullError";
        }
      }
      assert.deepStrictEqual(outcomes, expected);
    } finally {
      worker?.terminate();
    }
  });

  test("codecs.auto.encode refuses a sparse array of length 2^32 - 1 at once", () => {
    const { array, reads } = hugeSparseArray();
    assert.throws(
      () => codecs.auto.encode(array),
      (e: unknown) => e instanceof RangeError && /limit is 1073741824 bytes/.test(e.message),
    );
    assert.equal(reads(), 0);
    assert.throws(() => codecs.auto.encode(huge), RangeError);
    // The limit leaves every real value alone.
    assert.deepStrictEqual(codecs.auto.decode(codecs.auto.encode([1, "two", [3]])), [1, "two", [
      3,
    ]]);
  });

  test("bigints of thousands of bytes round-trip, as keys and values", () => {
    for (const kind of Object.keys(KINDS) as Kind[]) {
      const map = KINDS[kind]();
      const values = [
        2n ** 40000n - 1n,
        -(2n ** 40001n),
        2n ** 31n,
        -(2n ** 31n) - 1n,
        255n << 64n,
      ];
      for (const v of values) map.set(v, v);
      for (const v of values) assert.equal(map.get(v), v, `${kind}: ${v % 1000n}`);
      assert.equal(map.size, values.length);
    }
  });
});
