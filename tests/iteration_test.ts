// Copyright the shmap authors. MIT license.
// The iterators of both maps as objects (what a generator's gave: iterator helpers, return(),
// done for good, no re-entry), and SyncMap.range's and the iterators' batches across a clear,
// a shrink below the partition level, growth and promotion.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Codec, GoMap, SyncMap } from "../mod.ts";
import { R_SERIAL } from "../src/maps/_sync_layout.ts";
import { type AnyMap, type Kind, KINDS } from "./fixtures/map_kinds.ts";

/** %IteratorPrototype%, which generators' and Maps' iterators inherit from. */
const iteratorPrototype = Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]()));

function filled(kind: Kind, n: number): AnyMap {
  const m = KINDS[kind]();
  for (let i = 0; i < n; i++) m.set(i, i * 3);
  return m;
}

for (const kind of Object.keys(KINDS) as Kind[]) {
  describe(`${kind} iterators`, () => {
    test("entries, keys and values yield every entry once, over many batches", () => {
      const n = 5000;
      const m = filled(kind, n);
      const entries = [...m.entries()];
      assert.equal(entries.length, n);
      assert.equal(new Set(entries.map(([k]) => k)).size, n);
      for (const [k, v] of entries) assert.equal(v, (k as number) * 3);
      const keys = [...m.keys()] as number[];
      assert.deepStrictEqual(keys.sort((a, b) => a - b), [...Array(n).keys()]);
      const values = [...m.values()] as number[];
      assert.deepStrictEqual(values.sort((a, b) => a - b), [...Array(n).keys()].map((i) => i * 3));
    });

    test("they inherit %IteratorPrototype%, and are their own iterables", () => {
      const m = filled(kind, 10);
      for (const it of [m.entries(), m.keys(), m.values(), m[Symbol.iterator]()]) {
        assert.ok(
          Object.prototype.isPrototypeOf.call(iteratorPrototype, it),
          "not an %IteratorPrototype% object",
        );
        assert.equal(it[Symbol.iterator](), it);
        assert.equal(Object.prototype.toString.call(it), `[object ${kind} Iterator]`);
      }
      // Iterator helpers, where the runtime has them (Deno, Bun and Node 24 do).
      const helpers = m.keys() as unknown as {
        map?: (f: (k: number) => number) => Iterable<number>;
      };
      if (typeof helpers.map === "function") {
        assert.deepStrictEqual([...helpers.map((k) => k * 2)].sort((a, b) => a - b), [
          0,
          2,
          4,
          6,
          8,
          10,
          12,
          14,
          16,
          18,
        ]);
      }
    });

    test("it starts on its first next(); return() and the end leave it done for good", () => {
      const m = filled(kind, 100);
      const it = m.keys();
      m.set(1000, 0); // before the first next(): seen
      let count = 0;
      for (let r = it.next(); !r.done; r = it.next()) count++;
      assert.equal(count, 101);
      m.set(1001, 0);
      assert.deepStrictEqual(it.next(), { value: undefined, done: true });
      const partial = m.entries();
      assert.equal(partial.next().done, false);
      assert.deepStrictEqual(partial.return!(), { value: undefined, done: true });
      assert.deepStrictEqual(partial.next(), { value: undefined, done: true });
      // A for...of that breaks calls return().
      const broken = m.values();
      for (const _ of broken) break;
      assert.deepStrictEqual(broken.next(), { value: undefined, done: true });
    });

    test("keys() decodes no value and values() no key a map need not look up again", () => {
      const decodes = { keys: 0, values: 0 };
      const counting = (side: "keys" | "values", poison: string): Codec<string> => ({
        name: `count ${side}`,
        encode: (v) => new TextEncoder().encode(v),
        decode: (b) => {
          decodes[side]++;
          const text = new TextDecoder().decode(b);
          if (text === poison) throw new Error(`cannot decode ${side} ${text}`);
          return text;
        },
      });
      const m = KINDS[kind]({
        keys: counting("keys", "bad key"),
        values: counting("values", "bad value"),
      }) as AnyMap;
      const n = 300; // several batches
      for (let i = 0; i < n; i++) m.set(`k${i}`, `v${i}`);
      const count = (f: () => unknown[]) => {
        decodes.keys = decodes.values = 0;
        return { got: f(), ...decodes };
      };
      const keys = count(() => [...m.keys()]);
      assert.equal(keys.got.length, n);
      assert.equal(keys.values, 0, "keys() decoded values");
      assert.equal(keys.keys, n);
      const values = count(() => [...m.values()]);
      assert.deepStrictEqual(
        (values.got as string[]).sort(),
        Array.from({ length: n }, (_, i) => `v${i}`).sort(),
      );
      assert.equal(values.values, n);
      // A GoMap reads keys for values() all the same: one its own writes moved is looked up.
      if (kind === "SyncMap") assert.equal(values.keys, 0, "values() decoded keys");
      // A value its codec cannot decode stops entries() and values(), never keys().
      m.set("k0", "bad value");
      assert.equal([...m.keys()].length, n);
      assert.throws(() => [...m.values()], /cannot decode values bad value/);
      assert.throws(() => [...m.entries()], /cannot decode values bad value/);
      m.set("k0", "v0");
      if (kind === "SyncMap") {
        m.set("bad key", "v");
        assert.equal([...m.values()].length, n + 1);
        assert.throws(() => [...m.keys()], /cannot decode keys bad key/);
        m.delete("bad key");
      }
      // keys() across its own writes: a key deleted before it is reached is not yielded (a
      // GoMap looks the rest of its batch up again), and no value is decoded to find that out.
      const seen: string[] = [];
      const deleted = new Set<string>();
      decodes.values = 0;
      for (const k of m.keys() as Iterable<string>) {
        seen.push(k);
        if (seen.length === 1) {
          for (let i = 1; i < n; i += 2) if (`k${i}` !== k) deleted.add(`k${i}`);
          for (const d of deleted) m.delete(d);
        }
      }
      assert.equal(decodes.values, 0, "keys() decoded values across writes");
      assert.equal(new Set(seen).size, seen.length);
      const after = seen.slice(1).filter((k) => deleted.has(k));
      // A SyncMap yields the rest of a batch it had read (Go's Range may), a GoMap none.
      if (kind === "GoMap") assert.deepStrictEqual(after, []);
      assert.ok(seen.length >= n / 2 - 1, `${seen.length} keys after the deletes`);
      m.verify();
    });

    test("next() or return() from inside its own next() is a TypeError", () => {
      let it: Iterator<unknown> | undefined;
      let call: "next" | "return" = "next";
      const errors: unknown[] = [];
      const codec: Codec<string> = {
        name: "reenter",
        encode: (v) => new TextEncoder().encode(v),
        decode: (b) => {
          if (it !== undefined) {
            try {
              if (call === "next") it.next();
              else it.return!();
            } catch (error) {
              errors.push(error);
            }
          }
          return new TextDecoder().decode(b);
        },
      };
      const m = KINDS[kind]({ values: codec });
      for (let i = 0; i < 50; i++) m.set(i, `v${i}`);
      for (const which of ["next", "return"] as const) {
        call = which;
        errors.length = 0;
        it = m.entries();
        const first = it.next();
        it = undefined;
        assert.equal(first.done, false);
        assert.ok(errors.length > 0, `the decode never ran inside ${which}()`);
        for (const error of errors) assert.ok(error instanceof TypeError, String(error));
      }
    });
  });
}

describe("SyncMap.range and iterators across table changes", () => {
  test("a clear mid-range, then fewer keys than the partition level's tables hold", () => {
    for (let trial = 0; trial < 10; trial++) {
      const m = new SyncMap<number, number>();
      const n = 3000; // a read table of 2^9 buckets: 32 partitions
      for (let i = 0; i < n; i++) m.store(i, i);
      let calls = 0;
      const before: number[] = [];
      const after: number[] = [];
      m.range((k, v) => {
        assert.equal(v, k < n ? k : -k);
        if (++calls === 1) {
          before.push(k);
          m.clear();
          // A one-bucket table: later partitions are read from it by hash.
          for (let j = 0; j < 6; j++) m.store(n + j, -(n + j));
          // Misses, till the dirty table is promoted (eight at least: _sync_core.ts).
          for (let j = 0; j < 8; j++) m.load(-1);
          // The state this case is for: the six keys promoted into a read table of their own.
          const stats = m.stats();
          assert.equal(stats.dirtyKeys, -1, "promoted");
          assert.equal(stats.readKeys, 6);
        } else {
          after.push(k);
        }
      });
      assert.equal(before.length, 1);
      // After the clear, only the new keys, each at most once, and no key from before: the
      // rest of the first batch was decoded before the callback ran, so it may be yielded.
      const late = after.filter((k) => k >= n);
      assert.equal(new Set(late).size, late.length, `a key yielded twice: ${late}`);
      // Read from the new table: at least one of the six lies in a later partition (all six
      // in the first of 32 is a chance of 1 in 10^9).
      assert.ok(late.length > 0 && late.length <= 6, `${late.length} new keys`);
      const firstBatch = after.filter((k) => k < n);
      assert.ok(firstBatch.length < 200, `${firstBatch.length} old keys after the clear`);
      assert.equal(new Set([...before, ...after]).size, 1 + after.length);
      assert.equal(m.size, 6);
    }
  });

  test("keys stored during a range that grow and promote the tables: each at most once", () => {
    const m = new SyncMap<number, number>();
    for (let i = 0; i < 100; i++) m.store(i, i);
    const seen = new Set<number>();
    let next = 100;
    const it = m.keys();
    for (let r = it.next(); !r.done; r = it.next()) {
      assert.ok(!seen.has(r.value), `key ${r.value} yielded twice`);
      seen.add(r.value);
      // 40 new keys a step, loads that miss to promote them: B grows past the start's level.
      for (let j = 0; j < 40; j++) m.store(next++, 0);
      for (let j = 0; j < 60; j++) m.load(-1);
    }
    for (let i = 0; i < 100; i++) assert.ok(seen.has(i), `key ${i} present throughout`);
    assert.ok(m.stats().readKeys > 1000, "the read table did not grow");
  });

  test("keys stored during an iteration: the dirty table is promoted once, at the start", () => {
    // Promoted before each batch, every batch after a new key rebuilt the dirty table, a copy
    // of the whole map: quadratic, and a 32 MiB map of these 50,000 keys threw MapFullError
    // about one run in two, its heap fragmented by the tables freed and made in turn.
    const n = 50_000;
    for (const how of ["range", "for of"]) {
      const m = new SyncMap<number, number>({ maxBytes: 32 * 2 ** 20 });
      for (let i = 0; i < n; i++) m.store(i, i);
      m.store(-1, -1); // a new key: the read table is amended, and the start promotes
      const i32 = new Int32Array(m.handle.buffer);
      const serial = () => i32[R_SERIAL];
      const before = serial();
      const seen = new Set<number>();
      let added = 0;
      const visit = (k: number) => {
        assert.ok(!seen.has(k), `${how}: key ${k} yielded twice`);
        seen.add(k);
        for (let j = 0; j < 3; j++) m.store(n + added++, 0);
      };
      if (how === "range") m.range((k) => visit(k));
      else for (const [k] of m) visit(k);
      assert.equal(serial() - before, 1, `${how}: read tables made during the iteration`);
      for (let i = -1; i < n; i++) assert.ok(seen.has(i), `${how}: key ${i} present throughout`);
      assert.equal(m.size, n + 1 + added);
      m.verify();
    }
  });
});

// What a range callback may do, as any code between two calls may: the callback runs between
// partitions' reads, holding nothing, so the calls it makes reclaim memory, stop the world and
// go offline as they would anywhere else. (A range that held the participant while its callback
// ran failed each of these.)
describe("SyncMap.range: the callback runs holding nothing", () => {
  test("stores in the callback of a full map reuse what the callback's own writes retire", () => {
    for (const maxBytes of [64 * 1024, 256 * 1024]) {
      const m = new SyncMap<number, string>({ maxBytes });
      let n = 0;
      try {
        for (;; n++) m.store(n, `v0:${n}`.padEnd(100, "a"));
      } catch (error) {
        assert.equal((error as Error).name, "MapFullError");
      }
      m.delete(n - 1);
      m.delete(n - 2);
      n -= 2;
      m.range(() => {}); // promoted: each store below retires the value it replaces
      let visited = 0;
      m.range((k) => {
        m.store(k, `v1:${k}`.padEnd(100, "b"));
        visited++;
      });
      assert.equal(visited, n);
      for (let k = 0; k < n; k++) assert.equal(m.load(k), `v1:${k}`.padEnd(100, "b"));
      m.verify();
      m.close();
    }
  });

  test("a callback that rewrites one value thousands of times in a small map", () => {
    const m = new SyncMap<number, string>({ maxBytes: 64 * 1024 });
    for (let k = 0; k < 10; k++) m.store(k, "x".repeat(100));
    m.range(() => {});
    let stores = 0;
    m.range((k) => {
      for (let i = 0; i < 2000; i++, stores++) m.store(k, `${i}`.padEnd(200, "y"));
    });
    assert.equal(stores, 10 * 2000);
    for (let k = 0; k < 10; k++) assert.equal(m.load(k), "1999".padEnd(200, "y"));
    m.verify();
    m.close();
  });

  test("verify() of the map, or of another, in the callback", () => {
    const m = new SyncMap<number, number>();
    const other = new SyncMap<number, number>();
    for (let k = 0; k < 300; k++) m.store(k, k);
    other.store(1, 1);
    let calls = 0;
    m.range(() => {
      m.verify();
      other.verify();
      calls++;
    });
    assert.equal(calls, 300);
    m.close();
    other.close();
  });
});

describe("iteration through a handle whose views predate the buffer's growth", () => {
  // Two handles of one map in one thread have views of their own: the second's were made at
  // 64 KiB, and the first then grows the buffer to megabytes. The batches must reach the
  // memory the table, its entries, records and key blobs lie in before reading them.
  test("SyncMap range and entries, GoMap entries", () => {
    const sync = new SyncMap<string, string>();
    const late = SyncMap.attach<string, string>(sync.handle);
    late.range(() => {});
    const value = "v".repeat(40);
    for (let k = 0; k < 20_000; k++) sync.store(`key ${k}`, value);
    for (let k = 0; k < 20_000; k++) sync.load(`key ${k}`); // promote: all in the read table
    assert.ok(sync.stats().bytesReserved > 1 << 20, "the buffer grew");
    let n = 0;
    late.range((k, v) => {
      assert.equal(v, value, k);
      n++;
    });
    assert.equal(n, 20_000);
    assert.equal([...late.keys()].length, 20_000);
    late.close();
    sync.close();

    const go = new GoMap<string, string>();
    const lateGo = GoMap.attach<string, string>(go.handle);
    assert.equal([...lateGo.entries()].length, 0);
    for (let k = 0; k < 20_000; k++) go.set(`key ${k}`, value);
    const entries = [...lateGo.entries()];
    assert.equal(entries.length, 20_000);
    assert.ok(entries.every(([, v]) => v === value));
  });
});
