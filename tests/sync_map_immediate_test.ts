// Copyright the shmap authors. MIT license.
//
// SyncMap immediates (src/maps/_sync_layout.ts): in a map whose values use a built-in number
// codec (auto, float64 or int32), an integer value from 0 to IMMEDIATE_MAX (2^30 - 2), but not -0, is
// held in its entry's word itself, as 2v + 3, with no value record allocated, retired or freed;
// every other value (fractions, negatives, -0, NaN, 2^30 - 1 and up, strings, objects, every
// value of a user codec) takes a record as before. Each test compares the map with a plain Map:
//
// - boundary values come back as they went in (Object.is: -0 stays -0) through every method,
//   in the read table and in the dirty table, and take the kind they should (the entry word);
// - a key goes from an immediate to a record and back through every writing method, retiring
//   a record exactly when it replaces one;
// - compareAndSwap and compareAndDelete compare across the two kinds (-0 is not 0, NaN is NaN);
// - compute and loadOrCompute store immediates, and a callback that writes its own key in every
//   round is still stopped after SELF_WRITES_MAX rounds, whatever kind it writes and however;
// - overwrites with integers allocate and retire nothing, where fractions retire a record each,
//   and clear() of a map of immediates gives back everything;
// - verify() fails on an immediate in a map whose value codec makes none, and on a record that
//   holds a value an immediate would;
// - random operation sequences (fast-check) over immediates, boundary numbers and fractions;
// - two workers racing on shared keys with both kinds: counters reach their exact totals, and
//   every key ends with the value of some worker's last write to it.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { type Codec, codecs, SyncMap } from "../mod.ts";
import { SELF_WRITES_MAX } from "../src/_computed.ts";
import { Arena, KIND_SYNC_MAP } from "../src/_engine/arena.ts";
import { Participant } from "../src/_engine/reclaim.ts";
import { Table } from "../src/_engine/table.ts";
import {
  AMENDED,
  EXPUNGED,
  IMMEDIATE_MAX,
  K_RECORD,
  R_DIRTY,
  R_READ,
  REC_HI,
  REC_LO,
  S_ENTRY,
} from "../src/maps/_sync_layout.ts";
import {
  CTRL_WORDS,
  type ImmediateMixResult,
  MIX_COUNTERS,
  MIX_DELETED,
  MIX_SLOTS,
  MIX_UNWRITTEN,
  mixSlotKey,
  mixSlotValue,
  mixValue,
  mixWriter,
  runEach,
  shared,
  sleep,
  startTogether,
  withTrackedWorkers,
  WORKER_TEST,
} from "./fixtures/sync_map_harness.ts";

const tick = (): Promise<void> => sleep(0);

// ---------------------------------------------------------------------------------------------
// What the map holds, seen from outside its API

/** The arena of `map`, attached once, for reading its entry words. */
const arenas = new WeakMap<SharedArrayBuffer, Arena>();
function arenaOf(map: SyncMap<unknown, unknown>): Arena {
  const buffer = map.handle.buffer;
  let a = arenas.get(buffer);
  if (a === undefined) arenas.set(buffer, a = Arena.attach(buffer, KIND_SYNC_MAP, true, "test"));
  a.reach(buffer.byteLength);
  return a;
}

/**
 * The entry of number key `key` and the table it was found in (the read table first), or
 * undefined when neither table holds the key.
 */
function entryOf(
  map: SyncMap<unknown, unknown>,
  key: number,
): { e: number; table: "read" | "dirty" } | undefined {
  const a = arenaOf(map);
  const tables = [
    ["read", Atomics.load(a.i32, R_READ) & ~AMENDED],
    ["dirty", Atomics.load(a.i32, R_DIRTY)],
  ] as const;
  for (const [table, header] of tables) {
    if (header === 0) continue;
    let e = 0;
    new Table(a, header, false, () => {}, undefined as never).forEachKeySlot(0, 0, (k) => {
      if (a.f64[k >> 3] === key) e = a.i32[(k >> 2) + S_ENTRY];
    });
    if (e !== 0) return { e, table };
  }
  return undefined;
}

type Kind = "immediate" | "record" | "none";

/** The kind of value number key `key` holds, read from its entry word. */
function kindOf(map: SyncMap<unknown, unknown>, key: number): Kind {
  const found = entryOf(map, key);
  if (found === undefined) return "none";
  const p = Atomics.load(arenaOf(map).i32, found.e >> 2);
  if (p <= EXPUNGED) return "none";
  return (p & 1) !== 0 ? "immediate" : "record";
}

/** The entry word of number key `key` (which must be in a table). */
function wordOf(map: SyncMap<unknown, unknown>, key: number): number {
  const found = entryOf(map, key);
  assert.ok(found !== undefined, `key ${key} is in a table`);
  return Atomics.load(arenaOf(map).i32, found.e >> 2);
}

/**
 * The kind value `v` takes in a map whose value codec makes immediates, written out here rather
 * than taken from the source: an integer from 0 to 2^30 - 2, and not -0.
 */
function kindFor(v: unknown): Kind {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 2 ** 30 - 2 &&
      !Object.is(v, -0)
    ? "immediate"
    : "record";
}

/** Asserts the kind number key `key` holds `v` as, and an immediate's exact word, 2v + 3. */
function assertKind(map: SyncMap<unknown, unknown>, key: number, v: unknown, what: string): void {
  const kind = kindFor(v);
  assert.equal(
    kindOf(map, key),
    kind,
    `${what}: ${String(v)} is held as ${kind === "immediate" ? "an immediate" : "a record"}`,
  );
  if (kind === "immediate") assert.equal(wordOf(map, key), 2 * (v as number) + 3, what);
}

/** Calls `f`, counting the value records retired meanwhile (Participant.retire's calls). */
function countRetired<T>(f: () => T): { result: T; records: number } {
  const proto = Participant.prototype;
  const retire = proto.retire;
  let records = 0;
  proto.retire = function (this: Participant, tag: number) {
    if ((tag & 15) === K_RECORD) records++;
    return retire.call(this, tag);
  };
  try {
    const result = f();
    return { result, records };
  } finally {
    proto.retire = retire;
  }
}

/**
 * `fn`, for a compute, made to throw once it has run `max` times: a compute that loses every
 * round (a compare that never matches) fails the test instead of running for good.
 */
function bounded<A extends unknown[], R>(fn: (...args: A) => R, max = 1000): (...args: A) => R {
  let calls = 0;
  return (...args) => {
    if (++calls > max) throw new Error(`compute's fn ran ${max} times: it never stores`);
    return fn(...args);
  };
}

/** Promotes the dirty table, as an iteration does: every key then in the read table. */
function promote(map: SyncMap<unknown, unknown>): void {
  map.range(() => {});
  assert.equal(map.stats().amended, false, "promoted");
}

/** Asserts that `map` holds exactly what `model` does, through every reading method. */
function assertMatches(map: SyncMap<unknown, unknown>, model: Map<unknown, unknown>, what: string) {
  const want = [...model];
  assert.equal(map.size, model.size, `${what}: size`);
  /** The pairs `got`, each once, in the model's order. */
  const inOrder = (got: [unknown, unknown][], how: string) => {
    const byKey = new Map(got);
    assert.equal(got.length, model.size, `${what}: ${how} gave ${got.length} pairs`);
    assert.equal(byKey.size, got.length, `${what}: ${how} gave a key twice`);
    return [...model.keys()].map((k) => [k, byKey.get(k)]);
  };
  const ranged: [unknown, unknown][] = [];
  map.range((k, v) => void ranged.push([k, v]));
  assert.deepStrictEqual(inOrder(ranged, "range"), want, `${what}: range`);
  assert.deepStrictEqual(inOrder([...map.entries()], "entries()"), want, `${what}: entries()`);
  assert.deepStrictEqual(inOrder([...map], "the iterator"), want, `${what}: [Symbol.iterator]`);
  const each: [unknown, unknown][] = [];
  map.forEach((v, k) => each.push([k, v]));
  assert.deepStrictEqual(inOrder(each, "forEach"), want, `${what}: forEach`);
  for (const [k, v] of model) {
    assert.deepStrictEqual(map.load(k), v, `${what}: load(${String(k)})`);
    assert.deepStrictEqual(map.loadOk(k), [v, true], `${what}: loadOk(${String(k)})`);
    assert.equal(map.has(k), true, `${what}: has(${String(k)})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Values

/** Numbers on both sides of every edge of the immediates. */
const BOUNDARY: readonly number[] = [
  0,
  1,
  2,
  3,
  1000,
  IMMEDIATE_MAX - 1,
  IMMEDIATE_MAX,
  2 ** 30 - 1,
  2 ** 30,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32 + 5,
  -0,
  -1,
  -(2 ** 30),
  0.5,
  1.5,
  IMMEDIATE_MAX + 0.5,
  NaN,
  Infinity,
  -Infinity,
  Number.MAX_SAFE_INTEGER,
  Number.MIN_VALUE,
  1e300,
];

const show = (v: unknown): string => Object.is(v, -0) ? "-0" : String(v);

test("IMMEDIATE_MAX is 2^30 - 2: the largest v whose 2v + 3 is an int32", () => {
  assert.equal(IMMEDIATE_MAX, 2 ** 30 - 2);
  assert.equal(2 * IMMEDIATE_MAX + 3, 2 ** 31 - 1);
});

// ---------------------------------------------------------------------------------------------
// Boundary values, through every method

describe("SyncMap immediates: boundary values round-trip", () => {
  for (const where of ["dirty", "read"] as const) {
    test(`through every method (${where} table)`, () => {
      const m = new SyncMap<unknown, unknown>();
      const model = new Map<unknown, unknown>();
      // "read" promotes after every store; "dirty" never promotes, and has enough other keys in
      // its dirty table that the calls below, each counting a miss, do not promote it either.
      // (Nothing iterates until the end: an iteration promotes.)
      const fillers = where === "dirty" ? 2000 : 0;
      for (let i = 0; i < fillers; i++) {
        m.store(`filler ${i}`, i);
        model.set(`filler ${i}`, i);
      }
      const place = () => {
        if (where === "read") promote(m);
      };
      /** What every reading method gives for `key`, which holds `v`. */
      const reads = (key: unknown, v: unknown, what: string) => {
        assert.deepStrictEqual(m.load(key), v, `${what}: load`);
        assert.deepStrictEqual(m.loadOk(key), [v, true], `${what}: loadOk`);
        assert.deepStrictEqual(m.get(key), v, `${what}: get`);
        assert.equal(m.has(key), true, `${what}: has`);
      };
      for (const [i, v] of BOUNDARY.entries()) {
        for (const key of [10_000 + i, `key ${i}`]) {
          const what = `${show(v)} under ${JSON.stringify(key)} (${where})`;
          // Another value of the other kind, for the swaps.
          const other = kindFor(v) === "immediate" ? 0.25 : 7;
          assert.deepStrictEqual(m.loadOrStore(key, v), [v, false], `${what}: loadOrStore, absent`);
          model.set(key, v);
          place();
          if (typeof key === "number") {
            assertKind(m, key, v, what);
            assert.equal(entryOf(m, key)!.table, where, `${what}: in the ${where} table`);
          }
          reads(key, v, what);
          assert.deepStrictEqual(m.loadOrStore(key, 12345.5), [v, true], `${what}: loadOrStore`);
          assert.deepStrictEqual(m.swap(key, other), [v, true], `${what}: swap out`);
          if (typeof key === "number") assertKind(m, key, other, `${what}: swapped out`);
          assert.deepStrictEqual(m.swap(key, v), [other, true], `${what}: swap back`);
          if (typeof key === "number") assertKind(m, key, v, `${what}: swapped back`);
          reads(key, v, `${what}, swapped back`);
          assert.deepStrictEqual(m.loadAndDelete(key), [v, true], `${what}: loadAndDelete`);
          assert.deepStrictEqual(m.loadAndDelete(key), [undefined, false], what);
          assert.deepStrictEqual(m.loadOk(key), [undefined, false], `${what}, deleted`);
          model.delete(key);
          m.store(key, v);
          model.set(key, v);
          place();
          assert.deepStrictEqual(m.swap(key, v), [v, true], `${what}: swap with itself`);
          assert.equal(m.compareAndSwap(key, v, v), true, `${what}: compareAndSwap with itself`);
          reads(key, v, what);
          if (typeof key === "number") {
            assertKind(m, key, v, `${what}, stored again`);
            assert.equal(entryOf(m, key)!.table, where, `${what}: in the ${where} table`);
          }
        }
      }
      if (where === "dirty") assert.equal(m.stats().readKeys, 0, "never promoted");
      m.verify();
      // And once more the whole lot, in one range, then every key deleted.
      assertMatches(m, model, "at the end");
      for (const k of [...model.keys()]) {
        assert.deepStrictEqual(m.loadAndDelete(k), [model.get(k), true]);
        model.delete(k);
      }
      assertMatches(m, model, "emptied");
      m.verify();
    });
  }

  // The other codecs: float64 and int32 make immediates as auto does; user codecs make none.
  const float: Codec<number> = {
    name: "user float",
    encode: (v) => new Uint8Array(new Float64Array([v]).buffer),
    decode: (b) => new Float64Array(b.slice(0, 8).buffer)[0],
  };
  const CODECS: [string, Codec<number>, boolean, readonly number[]][] = [
    ["float64", codecs.float64, true, BOUNDARY],
    // -0 aside: an int32 has none, and the codec stores it as 0 (the int32 test below).
    ["int32", codecs.int32, true, BOUNDARY.filter((v) => (v | 0) === v && !Object.is(v, -0))],
    ["a user codec", float, false, BOUNDARY],
  ];
  for (const [name, codec, immediates, values] of CODECS) {
    test(`values of ${name}, which makes ${immediates ? "immediates" : "none"}`, () => {
      const m = new SyncMap<number, number>({ values: codec });
      for (const [k, v] of values.entries()) m.store(k, v);
      for (const [k, v] of values.entries()) {
        assert.equal(m.load(k), v, `${show(v)}: load`);
        const kind = immediates ? kindFor(v) : "record";
        assert.equal(kindOf(m as SyncMap<unknown, unknown>, k), kind, `${show(v)}: ${kind}`);
      }
      promote(m as SyncMap<unknown, unknown>);
      for (const [k, v] of values.entries()) {
        assert.deepStrictEqual(m.swap(k, v), [v, true], `${show(v)}: swap`);
        assert.equal(m.compareAndSwap(k, v, v), true, `${show(v)}: compareAndSwap`);
        assert.equal(m.compareAndDelete(k, v), true, `${show(v)}: compareAndDelete`);
        assert.deepStrictEqual(m.loadOrStore(k, v), [v, false], `${show(v)}: loadOrStore`);
      }
      for (const [k, v] of values.entries()) assert.equal(m.load(k), v, `${show(v)}: stored again`);
      m.verify();
    });
  }
  // int32's number paths take a value with an immediate without calling the codec; every other
  // number goes through it, so what it refuses is refused as before, whatever the key holds.
  test("values of int32: immediates take the number paths, the codec still refuses the rest", () => {
    const m = new SyncMap<number, number>({ values: codecs.int32 });
    const model = new Map<number, number>();
    const refused = [0.5, -0.5, 2 ** 31, -(2 ** 31) - 1, NaN, Infinity];
    for (const where of ["dirty", "read"]) {
      for (const [k, v] of [[1, 5], [2, -1], [3, IMMEDIATE_MAX + 1], [4, 2 ** 31 - 1], [5, -0]]) {
        m.store(k, v);
        model.set(k, v === 0 ? 0 : v); // an int32 has no -0: stored as 0
      }
      if (where === "read") promote(m as SyncMap<unknown, unknown>);
      for (const bad of refused) {
        assert.throws(() => m.store(1, bad), RangeError, `store ${show(bad)} (${where})`);
        assert.throws(() => m.swap(2, bad), RangeError, `swap ${show(bad)}`);
        assert.throws(() => m.loadOrStore(1, bad), RangeError, `loadOrStore ${show(bad)}`);
        assert.throws(() => m.compareAndSwap(1, 5, bad), RangeError, `CAS to ${show(bad)}`);
        assert.throws(() => m.compareAndSwap(1, bad, 6), RangeError, `CAS from ${show(bad)}`);
        assert.throws(() => m.compareAndSwap(1, 7, bad), RangeError, `CAS 7 to ${show(bad)}`);
        assert.throws(() => m.compareAndDelete(1, bad), RangeError, `CAD ${show(bad)}`);
      }
      assertMatches(m as SyncMap<unknown, unknown>, model as Map<unknown, unknown>, where);
      for (const [k, v] of model) {
        assert.equal(kindOf(m as SyncMap<unknown, unknown>, k), kindFor(v), `${show(v)}: kind`);
      }
      // Across kinds, through the number paths and the codec's.
      assert.equal(m.compareAndSwap(1, 5, -7), true);
      assert.equal(m.compareAndSwap(1, -7, 9), true);
      assert.equal(m.compareAndSwap(1, 8, 10), false);
      assert.deepStrictEqual(m.swap(3, 11), [IMMEDIATE_MAX + 1, true]);
      assert.deepStrictEqual(m.loadOrStore(3, 12), [11, true]);
      assert.equal(m.compareAndDelete(4, 2 ** 31 - 1), true);
      assert.ok(Object.is(m.load(5), 0), "-0 was stored as 0");
      assert.equal(m.compareAndDelete(5, -0), true, "and -0 compares equal to it, as 0 does");
      assert.deepStrictEqual(m.loadOrStore(4, 13), [13, false]);
      for (const [k, v] of [[1, 9], [3, 11], [4, 13]]) model.set(k, v);
      model.delete(5);
      assertMatches(m as SyncMap<unknown, unknown>, model as Map<unknown, unknown>, where);
      m.verify();
      m.clear();
      model.clear();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A key moving between the two kinds

/** Values in turn: each step goes from one kind to the other, or to another type of value. */
const SEQUENCE: readonly unknown[] = [
  5,
  0.5,
  7,
  -0,
  0,
  2 ** 31,
  IMMEDIATE_MAX,
  2 ** 30 - 1,
  3,
  NaN,
  4,
  "a string",
  6,
  [1, "two"],
  8,
  -1,
  9,
];

type Writer = "store" | "swap" | "compareAndSwap" | "compute" | "loadAndDelete+loadOrStore";
const WRITERS: readonly Writer[] = [
  "store",
  "swap",
  "compareAndSwap",
  "compute",
  "loadAndDelete+loadOrStore",
];

describe("SyncMap immediates: a key switching between an immediate and a record", () => {
  for (const where of ["read", "dirty"] as const) {
    for (const writer of WRITERS) {
      test(`by ${writer}, in the ${where} table`, () => {
        const m = new SyncMap<unknown, unknown>();
        const model = new Map<unknown, unknown>();
        // In the dirty table, enough other keys that the key's misses do not promote it.
        const fillers = where === "dirty" ? 300 : 0;
        for (let i = 0; i < fillers; i++) m.store(-1 - i, i);
        for (let i = 0; i < fillers; i++) model.set(-1 - i, i);
        const key = 42;
        m.store(key, SEQUENCE[0]);
        model.set(key, SEQUENCE[0]);
        if (where === "read") promote(m);
        for (let i = 1; i < SEQUENCE.length; i++) {
          const [from, to] = [SEQUENCE[i - 1], SEQUENCE[i]];
          const what = `${show(from)} -> ${show(to)} by ${writer} (${where})`;
          const { records } = countRetired(() => {
            switch (writer) {
              case "store":
                m.store(key, to);
                break;
              case "swap":
                assert.deepStrictEqual(m.swap(key, to), [from, true], what);
                break;
              case "compareAndSwap":
                assert.equal(m.compareAndSwap(key, from, to), true, what);
                break;
              case "compute":
                assert.deepStrictEqual(
                  m.compute(
                    key,
                    bounded((old, loaded) => {
                      assert.deepStrictEqual([old, loaded], [from, true], what);
                      return to;
                    }),
                  ),
                  [to, true],
                  what,
                );
                break;
              case "loadAndDelete+loadOrStore":
                assert.deepStrictEqual(m.loadAndDelete(key), [from, true], what);
                assert.deepStrictEqual(m.loadOrStore(key, to), [to, false], what);
                break;
            }
          });
          model.set(key, to);
          // A record is retired exactly when one is replaced (or deleted): an immediate never.
          assert.equal(records, kindFor(from) === "record" ? 1 : 0, `${what}: records retired`);
          assertKind(m, key, to, what);
          assert.equal(entryOf(m, key)!.table, where, `${what}: still in the ${where} table`);
          assert.deepStrictEqual(m.load(key), to, what);
          assert.deepStrictEqual(m.loadOk(key), [to, true], what);
        }
        assertMatches(m, model, `${writer} (${where})`);
        m.verify();
      });
    }
  }

  test("a deleted read entry takes either kind in place, and an expunged one comes back", () => {
    const m = new SyncMap<number, unknown>();
    m.store(1, 5);
    m.store(2, 0.5);
    promote(m as SyncMap<unknown, unknown>);
    // Deleted in the read table (nil), then stored again in place, as the other kind.
    assert.equal(m.delete(1), true);
    assert.equal(m.delete(2), true);
    assert.deepStrictEqual(m.loadOrStore(1, 1.5), [1.5, false]);
    assert.deepStrictEqual(m.swap(2, 6), [undefined, false]);
    assert.equal(m.stats().dirtyKeys, -1, "stored in place: no dirty table");
    assertKind(m as SyncMap<unknown, unknown>, 1, 1.5, "key 1");
    assertKind(m as SyncMap<unknown, unknown>, 2, 6, "key 2");
    // Deleted, then expunged by a new key (the dirty table is rebuilt without them), then back.
    m.delete(1);
    m.delete(2);
    m.store(3, 3);
    assert.deepStrictEqual(m.swap(1, 0), [undefined, false]);
    m.store(2, -0);
    assertKind(m as SyncMap<unknown, unknown>, 1, 0, "key 1, unexpunged");
    assertKind(m as SyncMap<unknown, unknown>, 2, -0, "key 2, unexpunged");
    assert.equal(m.load(1), 0);
    assert.equal(m.load(2), -0);
    assert.equal(m.size, 3);
    m.verify();
  });
});

// ---------------------------------------------------------------------------------------------
// compareAndSwap and compareAndDelete across the kinds

/** One compare-and-X and what it must return, from the value stored before it. */
interface CompareCase {
  before: unknown;
  op: "cas" | "cad";
  old: unknown;
  next?: unknown;
  ok: boolean;
}

const COMPARE_CASES: readonly CompareCase[] = [
  { before: 5, op: "cas", old: 5, next: 7, ok: true }, // immediate -> immediate
  { before: 5, op: "cas", old: 6, next: 7, ok: false },
  { before: 5, op: "cas", old: 5.5, next: 7, ok: false },
  { before: 5, op: "cas", old: "5", next: 7, ok: false },
  { before: 5, op: "cas", old: 5, next: 0.5, ok: true }, // immediate -> record
  { before: 0.5, op: "cas", old: 0.5, next: 5, ok: true }, // record -> immediate
  { before: 0.5, op: "cas", old: 0, next: 5, ok: false },
  { before: 0.5, op: "cas", old: 0.5, next: 1.5, ok: true }, // record -> record
  { before: 0, op: "cas", old: -0, next: 1, ok: false }, // -0 is not 0
  { before: -0, op: "cas", old: 0, next: 1, ok: false },
  { before: -0, op: "cas", old: -0, next: 0, ok: true },
  { before: 0, op: "cas", old: 0, next: -0, ok: true },
  { before: NaN, op: "cas", old: NaN, next: 4, ok: true }, // NaN is NaN
  { before: 4, op: "cas", old: NaN, next: 4, ok: false },
  { before: IMMEDIATE_MAX, op: "cas", old: IMMEDIATE_MAX, next: 2 ** 30 - 1, ok: true },
  { before: 2 ** 30 - 1, op: "cas", old: 2 ** 30 - 1, next: IMMEDIATE_MAX, ok: true },
  { before: 2 ** 30 - 1, op: "cas", old: IMMEDIATE_MAX, next: 1, ok: false },
  { before: IMMEDIATE_MAX, op: "cas", old: 2 ** 30 - 1, next: 1, ok: false },
  { before: 3, op: "cas", old: -1, next: 1, ok: false },
  { before: "text", op: "cas", old: "text", next: 9, ok: true }, // string record -> immediate
  { before: 9, op: "cas", old: 9, next: "text", ok: true },
  { before: 5, op: "cad", old: 5, ok: true },
  { before: 5, op: "cad", old: 6, ok: false },
  { before: 5, op: "cad", old: 5.5, ok: false },
  { before: 0.5, op: "cad", old: 0, ok: false },
  { before: 0.5, op: "cad", old: 0.5, ok: true },
  { before: 0, op: "cad", old: -0, ok: false },
  { before: 0, op: "cad", old: 0, ok: true },
  { before: -0, op: "cad", old: 0, ok: false },
  { before: -0, op: "cad", old: -0, ok: true },
  { before: NaN, op: "cad", old: NaN, ok: true },
  { before: IMMEDIATE_MAX, op: "cad", old: 2 ** 30 - 1, ok: false },
  { before: IMMEDIATE_MAX, op: "cad", old: IMMEDIATE_MAX, ok: true },
  { before: 2 ** 30 - 1, op: "cad", old: 2 ** 30 - 1, ok: true },
];

describe("SyncMap immediates: compareAndSwap and compareAndDelete across kinds", () => {
  for (const where of ["read", "dirty"] as const) {
    for (const keyKind of ["number", "string"] as const) {
      test(`${keyKind} keys, in the ${where} table`, () => {
        const m = new SyncMap<unknown, unknown>();
        const model = new Map<unknown, unknown>();
        for (let i = 0; i < 300; i++) m.store(`filler ${i}`, i);
        for (let i = 0; i < 300; i++) model.set(`filler ${i}`, i);
        for (const [i, c] of COMPARE_CASES.entries()) {
          const key = keyKind === "number" ? i : `key ${i}`;
          m.store(key, c.before);
          model.set(key, c.before);
        }
        if (where === "read") promote(m);
        for (const [i, c] of COMPARE_CASES.entries()) {
          const key = keyKind === "number" ? i : `key ${i}`;
          const what = `${show(c.before)}: ${c.op}(${show(c.old)}${
            c.op === "cas" ? `, ${show(c.next)}` : ""
          })`;
          if (keyKind === "number" && where === "read") {
            assertKind(m, key as number, c.before, what);
          }
          const got = c.op === "cas"
            ? m.compareAndSwap(key, c.old, c.next)
            : m.compareAndDelete(key, c.old);
          // The model: by value, as Object.is compares numbers (-0 apart from 0, NaN equal).
          const want = model.has(key) && Object.is(model.get(key), c.old);
          assert.equal(want, c.ok, `${what}: the case's own answer`);
          assert.equal(got, want, what);
          if (got && c.op === "cas") model.set(key, c.next);
          else if (got) model.delete(key);
          assert.deepStrictEqual(
            m.loadOk(key),
            model.has(key) ? [model.get(key), true] : [undefined, false],
            what,
          );
          if (keyKind === "number" && model.has(key)) {
            assertKind(m, key as number, model.get(key), what);
          }
        }
        if (where === "dirty") assert.equal(m.stats().readKeys, 0, "never promoted");
        assertMatches(m, model, `${keyKind} keys (${where})`);
        m.verify();
      });
    }
  }

  test("a missing, a deleted and an expunged key compare equal to nothing", () => {
    const m = new SyncMap<number, number>();
    m.store(1, 5);
    m.store(2, 0.5);
    assert.equal(m.compareAndSwap(3, 5, 6), false, "missing");
    assert.equal(m.compareAndDelete(3, 5), false, "missing");
    promote(m as SyncMap<unknown, unknown>);
    assert.equal(m.compareAndSwap(3, 5, 6), false, "missing, not amended");
    m.delete(1);
    m.delete(2);
    for (const old of [5, 0.5, 0]) {
      assert.equal(m.compareAndSwap(1, old, 6), false, `deleted: ${old}`);
      assert.equal(m.compareAndSwap(2, old, 6), false, `deleted: ${old}`);
      assert.equal(m.compareAndDelete(1, old), false, `deleted: ${old}`);
    }
    m.store(4, 4); // expunges 1 and 2
    for (const old of [5, 0.5, 0]) {
      assert.equal(m.compareAndSwap(1, old, 6), false, `expunged: ${old}`);
      assert.equal(m.compareAndDelete(2, old), false, `expunged: ${old}`);
    }
    assert.deepStrictEqual([m.has(1), m.has(2), m.size], [false, false, 1]);
    m.verify();
  });

  test("with a user codec, which makes no immediates, the same answers", () => {
    const codec: Codec<number> = {
      name: "user float for compares",
      encode: (v) => new Uint8Array(new Float64Array([v]).buffer),
      decode: (b) => new Float64Array(b.slice(0, 8).buffer)[0],
    };
    const m = new SyncMap<number, number>({ values: codec });
    const cases = COMPARE_CASES.filter((c) =>
      typeof c.before === "number" && typeof c.old === "number" &&
      (c.next === undefined || typeof c.next === "number")
    );
    for (const [i, c] of cases.entries()) m.store(i, c.before as number);
    promote(m as SyncMap<unknown, unknown>);
    for (const [i, c] of cases.entries()) {
      const got = c.op === "cas"
        ? m.compareAndSwap(i, c.old as number, c.next as number)
        : m.compareAndDelete(i, c.old as number);
      assert.equal(got, c.ok, `${show(c.before)}: ${c.op}(${show(c.old)})`);
      assert.equal(
        kindOf(m as SyncMap<unknown, unknown>, i),
        got && c.op === "cad" ? "none" : "record",
      );
    }
    m.verify();
  });
});

// ---------------------------------------------------------------------------------------------
// compute and loadOrCompute

describe("SyncMap immediates: compute and loadOrCompute", () => {
  test("store immediates and records, and go from one to the other", () => {
    const m = new SyncMap<number, unknown>();
    const model = new Map<unknown, unknown>();
    const mm = m as SyncMap<unknown, unknown>;
    assert.deepStrictEqual(m.loadOrCompute(1, () => 5), [5, false]);
    assert.deepStrictEqual(m.loadOrCompute(1, () => 6), [5, true]);
    assert.deepStrictEqual(m.loadOrCompute(2, () => 0.5), [0.5, false]);
    assert.deepStrictEqual(m.loadOrCompute(3, () => -0), [-0, false]);
    assert.deepStrictEqual(m.loadOrCompute(4, () => IMMEDIATE_MAX), [IMMEDIATE_MAX, false]);
    model.set(1, 5).set(2, 0.5).set(3, -0).set(4, IMMEDIATE_MAX);
    for (const [k, v] of model) assertKind(mm, k as number, v, `loadOrCompute of ${k}`);
    for (const round of [0, 1]) {
      if (round === 1) promote(mm);
      const where = round === 0 ? "dirty" : "read";
      // Immediate -> immediate, immediate -> record, record -> immediate, -> -0, -> past the max.
      const steps: [number, (old: unknown) => unknown][] = [
        [1, (old) => (old as number) + 1],
        [1, (old) => (old as number) + 0.5],
        [1, (old) => (old as number) - 0.5],
        [2, () => 0],
        [3, () => 1],
        [4, (old) => (old as number) + 1],
        [4, (old) => (old as number) - 1],
      ];
      for (const [k, fn] of steps) {
        const old = model.get(k);
        const next = fn(old);
        const what = `compute of ${k}: ${show(old)} -> ${show(next)} (${where})`;
        const { result, records } = countRetired(() => m.compute(k, bounded(fn)));
        assert.deepStrictEqual(result, [next, true], what);
        assert.equal(records, kindFor(old) === "record" ? 1 : 0, `${what}: records retired`);
        model.set(k, next);
        assertKind(mm, k, next, what);
      }
      // CANCEL leaves the immediate; DELETE takes it out, retiring nothing.
      assert.deepStrictEqual(m.compute(1, () => SyncMap.CANCEL), [model.get(1), true]);
      const { result, records } = countRetired(() => m.compute(2, bounded(() => SyncMap.DELETE)));
      assert.deepStrictEqual([result, records], [[undefined, false], 0], "DELETE of 0");
      model.delete(2);
      assert.deepStrictEqual(
        m.compute(
          2,
          bounded((old, loaded) => {
            assert.deepStrictEqual([old, loaded], [undefined, false]);
            return 2;
          }),
        ),
        [2, true],
      );
      model.set(2, 2);
      assertMatches(mm, model, `after the computes (${where})`);
    }
    m.verify();
  });

  test("a callback storing the value it was given over its key does not lose its round", () => {
    // The key still holds what fn saw (by value), so the round's result is stored at once:
    // for an immediate the entry's word does not even change.
    for (const v of [5, 0.5]) {
      const m = new SyncMap<number, number>();
      m.store(1, v);
      promote(m as SyncMap<unknown, unknown>);
      let calls = 0;
      assert.deepStrictEqual(
        m.compute(
          1,
          bounded((old) => {
            calls++;
            m.store(1, old!);
            return old! + 1;
          }),
        ),
        [v + 1, true],
      );
      assert.equal(calls, 1, `${v}: rounds`);
      m.verify();
    }
  });

  // fn writing its own key in every round loses every round to its own write: compute stops it
  // after SELF_WRITES_MAX rounds in a row (src/maps/_compute_watch.ts), whether the value fn
  // wrote is an immediate (a word, which no record offset equals) or a record, and whichever
  // method wrote it.
  type SelfWrite = (
    m: SyncMap<number | string, number>,
    key: number | string,
    old: number,
    round: number,
  ) => void;
  const SELF_WRITES: [string, SelfWrite][] = [
    ["store of an immediate", (m, k, old) => m.store(k, old + 100)],
    ["store of a record", (m, k, old) => m.store(k, old + 100.5)],
    [
      "store of either kind in turn",
      (m, k, old, r) => m.store(k, r % 2 === 0 ? Math.floor(old) + 7 : old + 0.5),
    ],
    ["swap of an immediate", (m, k, old) => void m.swap(k, Math.floor(old) + 100)],
    ["loadAndDelete, then loadOrStore of an immediate", (m, k, old) => {
      m.loadAndDelete(k);
      m.loadOrStore(k, Math.floor(old) + 100);
    }],
    // On a number key in the read table, compareAndSwap's own path for two immediates: the
    // entry word's compare-exchange alone, which must note the write all the same.
    ["compareAndSwap from an immediate to an immediate", (m, k, old) => {
      m.compareAndSwap(k, old, old + 3);
    }],
    // From an immediate to a record, then from that record to an immediate, and so on.
    ["compareAndSwap between the kinds", (m, k, old) => {
      m.compareAndSwap(k, old, Number.isInteger(old) ? old + 0.5 : Math.floor(old) + 3);
    }],
  ];
  for (const keyKind of ["number", "string"] as const) {
    for (const [name, write] of SELF_WRITES) {
      test(`fn writing its own ${keyKind} key in every round, by ${name}, is stopped`, () => {
        const m = new SyncMap<number | string, number>();
        const key = keyKind === "number" ? 1 : "k";
        m.store(key, 0);
        promote(m as SyncMap<unknown, unknown>);
        let calls = 0;
        assert.throws(
          () =>
            m.compute(key, (old) => {
              if (++calls > 10_000) throw new Error("still running after 10,000 rounds");
              write(m, key, old!, calls);
              return old! + 1;
            }),
          /fn wrote the key it computes in \d+ rounds in a row/,
        );
        assert.equal(calls, SELF_WRITES_MAX, "rounds");
        m.verify();
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Memory

describe("SyncMap immediates: memory", () => {
  const KEYS = 1000;
  const OVERWRITES = 1_000_000;

  test("1,000,000 overwrites with integers allocate and retire nothing; with fractions, a record each", async () => {
    const m = new SyncMap<number, number>();
    for (let k = 0; k < KEYS; k++) m.store(k, k);
    promote(m as SyncMap<unknown, unknown>); // the overwrites take the lock-free path
    m.verify();
    const before = m.stats().bytesUsed;
    const immediates = countRetired(() => {
      for (let i = KEYS; i < OVERWRITES + KEYS; i++) {
        m.store(i % KEYS, i);
        if (i % 50_000 === 0) assert.equal(m.stats().retired, 0, `after ${i - KEYS} overwrites`);
      }
    });
    const after = m.stats();
    assert.equal(immediates.records, 0, "records retired by integer overwrites");
    assert.equal(after.retired, 0);
    assert.ok(
      Math.abs(after.bytesUsed - before) <= 256,
      `bytesUsed ${before} before ${OVERWRITES} integer overwrites, ${after.bytesUsed} after`,
    );
    for (let k = 0; k < KEYS; k++) assert.equal(m.load(k), OVERWRITES + k);
    for (let k = 0; k < KEYS; k += 97) {
      assertKind(m as SyncMap<unknown, unknown>, k, m.load(k), `key ${k}`);
    }
    m.verify();
    // The same with fractions: the first pass replaces immediates (nothing to retire), every
    // later overwrite a record.
    let waiting = 0;
    let max = 0;
    const fractions = countRetired(() => {
      for (let i = 0; i < OVERWRITES; i++) {
        m.store(i % KEYS, i + 0.5);
        if (i % 50_000 === 49_999) {
          waiting = Math.max(waiting, m.stats().retired);
          max = Math.max(max, m.stats().bytesUsed);
        }
      }
    });
    assert.equal(fractions.records, OVERWRITES - KEYS, "records retired by fraction overwrites");
    assert.ok(waiting > 0, "retired records waited for a quiescent point");
    // A 16-byte record for each key, and those retired and not yet freed: bounded all the same.
    assert.ok(max <= before + 16 * KEYS + 16 * 1024, `bytesUsed ${max}, ${before} before`);
    m.verify();
    // And back to integers: the records are retired once more, then freed.
    const back = countRetired(() => {
      for (let k = 0; k < KEYS; k++) m.store(k, k);
    });
    assert.equal(back.records, KEYS);
    await tick();
    m.load(0); // a quiescent point that frees what waited
    await tick();
    assert.equal(m.stats().retired, 0);
    // Every record freed: what is left is what the integers used before.
    const settled = m.stats().bytesUsed;
    assert.ok(Math.abs(settled - before) <= 256, `bytesUsed ${settled} after, ${before} before`);
    m.verify();
    m.close();
  });

  test("overwrites of dirty-only keys with integers retire nothing either", () => {
    const m = new SyncMap<number, number>();
    for (let k = 0; k < KEYS; k++) m.store(k, k);
    assert.equal(m.stats().readKeys, 0, "dirty only");
    const before = m.stats().bytesUsed;
    // Fewer overwrites than keys: each counts a miss, and as many promote the table.
    const { records } = countRetired(() => {
      for (let k = 0; k < KEYS / 2; k++) m.store(k, k + 1);
    });
    assert.equal(records, 0);
    assert.equal(m.stats().readKeys, 0, "still dirty only");
    assert.ok(m.stats().bytesUsed - before <= 256, `bytesUsed ${before} -> ${m.stats().bytesUsed}`);
    m.verify();
  });

  test("clear() of a map of immediates gives back everything, verify() passing throughout", async () => {
    const m = new SyncMap<number, number>();
    // The empty map's figure, measured as at the end: once it has stored and deleted (this
    // thread's retire list and cache exist) and a macrotask has freed what clear() retired.
    m.store(0, 0);
    m.delete(0);
    m.clear();
    await tick();
    const empty = m.stats().bytesUsed;
    m.verify();
    for (let round = 0; round < 3; round++) {
      for (let k = 0; k < 10_000; k++) m.store(k, k);
      promote(m as SyncMap<unknown, unknown>);
      for (let k = 10_000; k < 11_000; k++) m.store(k, k % 2 === 0 ? k : k + 0.5); // a dirty table
      for (let k = 0; k < 100; k++) m.delete(k);
      assert.equal(m.size, 10_900);
      m.verify();
      m.clear();
      assert.equal(m.size, 0);
      assert.equal(m.load(5000), undefined);
      m.verify();
      await tick();
      const after = m.stats().bytesUsed;
      assert.equal(
        after,
        empty,
        `round ${round}: bytesUsed ${after} after clear(), ${empty} empty`,
      );
      m.verify();
    }
    m.close();
  });
});

// ---------------------------------------------------------------------------------------------
// verify() and the two kinds

describe("SyncMap immediates: verify()", () => {
  test("fails on an immediate in a map whose value codec makes none", () => {
    const codec: Codec<number> = {
      name: "user float for verify",
      encode: (v) => new Uint8Array(new Float64Array([v]).buffer),
      decode: (b) => new Float64Array(b.slice(0, 8).buffer)[0],
    };
    const m = new SyncMap<number, number>({ values: codec });
    m.store(1, 5);
    m.verify();
    const { e } = entryOf(m as SyncMap<unknown, unknown>, 1)!;
    const i32 = arenaOf(m as SyncMap<unknown, unknown>).i32;
    const record = i32[e >> 2];
    assert.equal(record & 1, 0, "a record");
    i32[e >> 2] = 2 * 5 + 3;
    assert.throws(() => m.verify(), /verify: SyncMap: an immediate value 13 in a map/);
    i32[e >> 2] = record;
    m.verify();
  });

  test("fails on a record that holds a value an immediate would", () => {
    const m = new SyncMap<number, number>();
    m.store(1, 0.5);
    m.verify();
    const a = arenaOf(m as SyncMap<unknown, unknown>);
    const r = wordOf(m as SyncMap<unknown, unknown>, 1);
    assert.equal(r & 1, 0, "a record");
    const words = new Int32Array(new Float64Array([5]).buffer);
    const saved = [a.i32[(r >> 2) + REC_LO], a.i32[(r >> 2) + REC_HI]];
    a.i32[(r >> 2) + REC_LO] = words[0];
    a.i32[(r >> 2) + REC_HI] = words[1];
    assert.throws(() => m.verify(), /verify: SyncMap: .*record.* holds 5/);
    a.i32[(r >> 2) + REC_LO] = saved[0];
    a.i32[(r >> 2) + REC_HI] = saved[1];
    m.verify();
  });
});

// ---------------------------------------------------------------------------------------------
// Random operation sequences

/** Values: mostly immediates, with boundary numbers, fractions and a string among them. */
const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: fc.nat(40) },
  { weight: 3, arbitrary: fc.constantFrom(...BOUNDARY) },
  { weight: 3, arbitrary: fc.nat(40).map((n) => n + 0.5) },
  { weight: 1, arbitrary: fc.integer({ min: IMMEDIATE_MAX - 2, max: 2 ** 30 + 2 }) },
  { weight: 1, arbitrary: fc.constantFrom("s", "a longer string value") },
);
const keyArb: fc.Arbitrary<number | string> = fc.oneof(
  { weight: 3, arbitrary: fc.nat(15) },
  { weight: 1, arbitrary: fc.nat(5).map((n) => `k${n}`) },
);

type Cmd =
  | { op: "store" | "swap" | "loadOrStore"; key: number | string; value: unknown }
  | { op: "load" | "loadOk" | "has" | "delete" | "loadAndDelete"; key: number | string }
  | { op: "cas"; key: number | string; current: boolean; old: unknown; value: unknown }
  | { op: "cad"; key: number | string; current: boolean; old: unknown }
  | { op: "compute"; key: number | string; value: unknown; how: "set" | "delete" | "cancel" }
  | { op: "loadOrCompute"; key: number | string; value: unknown }
  | { op: "promote" | "clear" };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      op: fc.constantFrom("store" as const, "swap" as const, "loadOrStore" as const),
      key: keyArb,
      value: valueArb,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constantFrom(
        "load" as const,
        "loadOk" as const,
        "has" as const,
        "delete" as const,
        "loadAndDelete" as const,
      ),
      key: keyArb,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("cas" as const),
      key: keyArb,
      current: fc.boolean(),
      old: valueArb,
      value: valueArb,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("cad" as const),
      key: keyArb,
      current: fc.boolean(),
      old: valueArb,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("compute" as const),
      key: keyArb,
      value: valueArb,
      how: fc.constantFrom("set" as const, "set" as const, "delete" as const, "cancel" as const),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("loadOrCompute" as const),
      key: keyArb,
      value: valueArb,
    }),
  },
  { weight: 1, arbitrary: fc.constant({ op: "promote" } as const) },
  { weight: 1, arbitrary: fc.constant({ op: "clear" } as const) },
);

/** Runs `cmd` on the map and the model, asserting that they agree. */
function applyCmd(
  m: SyncMap<unknown, unknown>,
  model: Map<unknown, unknown>,
  cmd: Cmd,
  where: string,
) {
  const had = "key" in cmd && model.has(cmd.key);
  const old = "key" in cmd ? model.get(cmd.key) : undefined;
  switch (cmd.op) {
    case "store":
      m.store(cmd.key, cmd.value);
      model.set(cmd.key, cmd.value);
      return;
    case "swap":
      assert.deepStrictEqual(
        m.swap(cmd.key, cmd.value),
        had ? [old, true] : [undefined, false],
        where,
      );
      model.set(cmd.key, cmd.value);
      return;
    case "loadOrStore":
      assert.deepStrictEqual(
        m.loadOrStore(cmd.key, cmd.value),
        had ? [old, true] : [cmd.value, false],
        where,
      );
      if (!had) model.set(cmd.key, cmd.value);
      return;
    case "load":
      assert.deepStrictEqual(m.load(cmd.key), old, where);
      return;
    case "loadOk":
      assert.deepStrictEqual(m.loadOk(cmd.key), had ? [old, true] : [undefined, false], where);
      return;
    case "has":
      assert.equal(m.has(cmd.key), had, where);
      return;
    case "delete":
      assert.equal(m.delete(cmd.key), had, where);
      model.delete(cmd.key);
      return;
    case "loadAndDelete":
      assert.deepStrictEqual(
        m.loadAndDelete(cmd.key),
        had ? [old, true] : [undefined, false],
        where,
      );
      model.delete(cmd.key);
      return;
    case "cas": {
      const expected = cmd.current && had ? old : cmd.old;
      const want = had && Object.is(old, expected);
      assert.equal(m.compareAndSwap(cmd.key, expected, cmd.value), want, where);
      if (want) model.set(cmd.key, cmd.value);
      return;
    }
    case "cad": {
      const expected = cmd.current && had ? old : cmd.old;
      const want = had && Object.is(old, expected);
      assert.equal(m.compareAndDelete(cmd.key, expected), want, where);
      if (want) model.delete(cmd.key);
      return;
    }
    case "compute": {
      const got = m.compute(
        cmd.key,
        bounded((o, loaded) => {
          assert.deepStrictEqual([o, loaded], [old, had], `${where}: fn's arguments`);
          return cmd.how === "set"
            ? cmd.value
            : cmd.how === "delete"
            ? SyncMap.DELETE
            : SyncMap.CANCEL;
        }),
      );
      if (cmd.how === "set") {
        assert.deepStrictEqual(got, [cmd.value, true], where);
        model.set(cmd.key, cmd.value);
      } else if (cmd.how === "delete") {
        assert.deepStrictEqual(got, [undefined, false], where);
        model.delete(cmd.key);
      } else assert.deepStrictEqual(got, had ? [old, true] : [undefined, false], where);
      return;
    }
    case "loadOrCompute": {
      const got = m.loadOrCompute(cmd.key, () => cmd.value);
      assert.deepStrictEqual(got, had ? [old, true] : [cmd.value, false], where);
      if (!had) model.set(cmd.key, cmd.value);
      return;
    }
    case "promote":
      for (let i = 0; i < 64 && m.stats().amended; i++) m.load("a key never stored");
      return;
    case "clear":
      m.clear();
      model.clear();
      return;
  }
}

describe("SyncMap immediates: random operation sequences", () => {
  test("match a Map, and every number key holds the kind its value takes", () => {
    fc.assert(
      fc.property(fc.array(cmdArb, { minLength: 1, maxLength: 150, size: "max" }), (cmds) => {
        const m = new SyncMap<unknown, unknown>();
        const model = new Map<unknown, unknown>();
        for (const [i, cmd] of cmds.entries()) {
          applyCmd(m, model, cmd, `step ${i + 1}: ${cmd.op}`);
          assert.equal(m.size, model.size, `size after step ${i + 1}`);
        }
        assertMatches(m, model, "at the end");
        for (const [k, v] of model) {
          if (typeof k === "number") assertKind(m, k, v, `key ${k} at the end`);
        }
        m.verify();
        m.close();
      }),
      { numRuns: 300, interruptAfterTimeLimit: 15_000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Workers

const MIX_ROUNDS = 2000;

test(
  "SyncMap immediates: two workers racing on shared keys with both kinds",
  WORKER_TEST,
  async () => {
    const map = new SyncMap<number | string, number>();
    for (const { key } of MIX_COUNTERS) map.store(key, 0);
    // The slots' first values, as a third writer's (id 3): each worker overwrites every slot.
    for (let slot = 0; slot < MIX_SLOTS; slot++) {
      map.store(mixSlotKey(slot), mixSlotValue(3, slot, slot % 3));
    }
    promote(map as SyncMap<unknown, unknown>);
    const ctrl = shared(CTRL_WORDS);
    const results = await withTrackedWorkers(2, async (workers) => {
      const runs = runEach<ImmediateMixResult>(workers, map.handle, ctrl, (i) => ({
        job: "immediateMix",
        rounds: MIX_ROUNDS,
        slotOps: 10,
        seed: 0x1337 + i,
        maxMs: 20_000,
      }));
      await startTogether(ctrl, 2);
      return await Promise.all(runs);
    });
    for (const [i, r] of results.entries()) {
      assert.equal(r.bad, 0, `worker ${i + 1} read values no worker wrote: ${r.firstBad}`);
    }
    // Every increment of every counter landed once: 2 workers x MIX_ROUNDS.
    for (const { key, mixed } of MIX_COUNTERS) {
      assert.equal(map.load(key), mixValue(2 * MIX_ROUNDS, mixed), `counter ${key}`);
    }
    // Each slot holds the value of one worker's last write of it (or is absent, if that last
    // write was a delete).
    for (let slot = 0; slot < MIX_SLOTS; slot++) {
      const key = mixSlotKey(slot);
      const got = map.load(key);
      const lasts = results.map((r) => r.last[slot]);
      assert.ok(!lasts.includes(MIX_UNWRITTEN), `slot ${slot} was written by both workers`);
      const candidates = lasts.map((v) => v === MIX_DELETED ? undefined : v);
      assert.ok(
        candidates.some((v) => Object.is(v, got)),
        `slot ${String(key)} holds ${got}, not either worker's last write (${candidates})`,
      );
      if (got !== undefined) {
        assert.notEqual(mixWriter(got), 0, `slot ${String(key)}: ${got}`);
        if (typeof key === "number") {
          assertKind(map as SyncMap<unknown, unknown>, key, got, `slot ${key}`);
        }
      }
    }
    console.log(
      `immediates with workers: ${results.map((r) => r.writes).join(" + ")} slot writes, ` +
        `${MIX_ROUNDS} rounds of ${MIX_COUNTERS.length} counter increments each`,
    );
    map.verify();
    assert.equal(map.stats().participants, 1);
  },
);
