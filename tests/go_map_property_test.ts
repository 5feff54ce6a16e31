// Copyright the shmap authors. MIT license.
//
// Model-based property tests: random operation sequences run on a GoMap and on a native Map
// (the reference), which must agree at every step and at the end. Iterations interleave writes
// between next() calls and are checked against Go's rule: every key present at the start and
// not deleted since is yielded exactly once, no key twice, with its current value.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { type Codec, codecs, GoMap, type GoMapOptions } from "../mod.ts";
import { bucketBytes, runs } from "./fixtures/go_map_helpers.ts";
import { type Point, pointCodec } from "./fixtures/point_codec.ts";
import { describeReentrantAndHuge } from "./fixtures/reentrant_model.ts";
import { EQUALITY_KEYS, INT32_EDGE_BIGINTS } from "./fixtures/special_keys.ts";
import {
  collidingBytes,
  collidingKey,
  collidingString,
  keysCollidingIn,
} from "./fixtures/colliding_keys.ts";

// ---------------------------------------------------------------------------------------------
// Arbitraries

/** Strings of arbitrary UTF-16 code units: lone surrogates included. */
const unitString = (maxLength: number) =>
  fc.string({
    unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
    maxLength,
  });
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
const longString = fc.tuple(fc.constantFrom("x", "é", "\u{1F600}", "\ud800"), fc.nat(60))
  .map(([unit, extra]) => unit.repeat(101 + extra));

/** Keys every pool contains: the ones whose equality is easy to get wrong. */
const SPECIAL_KEYS: readonly unknown[] = [
  ...EQUALITY_KEYS,
  "\0",
  "\0\0",
  "ab",
  "abc",
  true,
  false,
  null,
  undefined,
  Infinity,
  -Infinity,
  0.1,
  2 ** 53,
  -(2 ** 31),
  ...INT32_EDGE_BIGINTS,
  2n ** 64n,
  -(2n ** 64n),
  2n ** 100n + 7n,
  "x".repeat(150),
  "x".repeat(151),
  "\ud800",
  "\udc00\ud800",
  "naïve — ünïcödé",
  "\u{1F600}\u{1F601}",
];

const autoKey: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -4, max: 12 }),
  fc.double(),
  fc.constantFrom(...SPECIAL_KEYS),
  fc.string({ maxLength: 4 }),
  fc.string({ unit: "binary", maxLength: 6 }),
  unitString(5),
  loneSurrogate,
  longString,
  fc.bigInt({ min: -(2n ** 100n), max: 2n ** 100n }),
  fc.bigInt({ min: -5n, max: 5n }),
  fc.boolean(),
  fc.constantFrom(null, undefined),
);

const leafValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.double(),
  fc.constantFrom(-0, 0, NaN, Infinity, -Infinity, 2 ** 31, -(2 ** 31) - 1),
  fc.integer(),
  fc.string({ maxLength: 6 }),
  unitString(8),
  longString,
  fc.bigInt({ min: -(2n ** 130n), max: 2n ** 130n }),
  fc.boolean(),
  fc.constantFrom(null, undefined),
  fc.uint8Array({ maxLength: 40 }),
);

const { value: autoValue } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leafValue,
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 4 }), tie("value"), {
      maxKeys: 4,
      noNullPrototype: true,
    }),
  ),
}));

// ---------------------------------------------------------------------------------------------
// The model and the runner

/** How a map flavour is built and how its keys compare. */
interface Flavour<K, V> {
  name: string;
  options: GoMapOptions<K, V>;
  /** The model's key: equal for keys the map must treat as one. */
  modelKey(key: K): unknown;
  /** The key the map should give back when it iterates over `key`. */
  decodedKey(key: K): K;
  /** A key guaranteed not to be in the pool, numbered `n`, for bulk inserts. */
  freshKey(n: number): K;
  /** A value for bulk inserts. */
  freshValue(n: number): V;
}

/** A printable form of any key, for failure messages. */
function show(value: unknown): string {
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? value.slice(0, 40) + "..." : value);
  }
  if (typeof value === "object" && value !== null) {
    try {
      return JSON.stringify(value, (_, v) => (typeof v === "bigint" ? `${v}n` : v));
    } catch {
      return "an object";
    }
  }
  return Object.is(value, -0) ? "-0" : String(value);
}

/** -0 as 0: the key a map gives back for either zero. */
const canonicalNumber = <T>(k: T): T => (k === 0 ? 0 : k) as T;

const AUTO: Flavour<unknown, unknown> = {
  name: "auto",
  options: {},
  modelKey: (k) => k, // a native Map already uses SameValueZero
  decodedKey: canonicalNumber,
  freshKey: (n) => (n % 2 === 0 ? 1e9 + n : `fresh key ${n}`),
  freshValue: (n) => (n % 3 === 0 ? { n, s: "v".repeat(n % 200) } : n),
};

type Action =
  | { a: "deleteUnvisited"; at: number; pick: number }
  | { a: "deleteVisited"; at: number; pick: number }
  | { a: "overwriteUnvisited"; at: number; pick: number; value: unknown }
  | { a: "set"; at: number; key: number; value: unknown }
  | { a: "bulk"; at: number; count: number }
  | { a: "clear"; at: number };

type Op =
  | { op: "set"; key: number; value: unknown }
  | { op: "get"; key: number }
  | { op: "has"; key: number }
  | { op: "delete"; key: number }
  | { op: "clear" }
  | { op: "iterate"; how: number }
  | { op: "iterateMutating"; actions: Action[] };

function actionArb<V>(value: fc.Arbitrary<V>): fc.Arbitrary<Action> {
  const at = fc.nat(40);
  return fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({ a: fc.constant("deleteUnvisited" as const), at, pick: fc.nat() }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ a: fc.constant("deleteVisited" as const), at, pick: fc.nat() }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        a: fc.constant("overwriteUnvisited" as const),
        at,
        pick: fc.nat(),
        value: value as fc.Arbitrary<unknown>,
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        a: fc.constant("set" as const),
        at,
        key: fc.nat(),
        value: value as fc.Arbitrary<unknown>,
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        a: fc.constant("bulk" as const),
        at,
        count: fc.integer({ min: 1, max: 400 }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ a: fc.constant("clear" as const), at }) },
  );
}

function opArb<V>(value: fc.Arbitrary<V>): fc.Arbitrary<Op> {
  const key = fc.nat();
  return fc.oneof(
    {
      weight: 10,
      arbitrary: fc.record({
        op: fc.constant("set" as const),
        key,
        value: value as fc.Arbitrary<unknown>,
      }),
    },
    { weight: 5, arbitrary: fc.record({ op: fc.constant("get" as const), key }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant("has" as const), key }) },
    { weight: 5, arbitrary: fc.record({ op: fc.constant("delete" as const), key }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("clear" as const) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("iterate" as const), how: fc.nat(3) }) },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant("iterateMutating" as const),
        actions: fc.array(actionArb(value), { maxLength: 12, size: "max" }),
      }),
    },
  );
}

/** A GoMap and its reference model, checked against each other. */
class Checked<K, V> {
  /** The map as operations see it: one of `views`, switched by run(). */
  map: GoMap<K, V>;
  /** Views of the same map: the one made, then any attached to it (as other workers would). */
  readonly views: GoMap<K, V>[];
  /** model key -> [the key as first set, the value] */
  readonly model = new Map<unknown, [K, V]>();
  readonly flavour: Flavour<K, V>;
  fresh = 0;
  /** Set once stats() reported a growth under way during an iteration. */
  sawGrowthDuringIteration = false;

  constructor(flavour: Flavour<K, V>, options: GoMapOptions<K, V> = {}) {
    this.flavour = flavour;
    this.map = new GoMap<K, V>({ ...flavour.options, ...options });
    this.views = [this.map];
  }

  set(key: K, value: V): void {
    assert.equal(this.map.set(key, value), this.map);
    const mk = this.flavour.modelKey(key);
    const had = this.model.get(mk);
    this.model.set(mk, [had === undefined ? key : had[0], value]);
  }

  delete(key: K): void {
    const mk = this.flavour.modelKey(key);
    assert.equal(this.map.delete(key), this.model.delete(mk), "delete result");
  }

  clear(): void {
    this.map.clear();
    this.model.clear();
  }

  get(key: K): void {
    const entry = this.model.get(this.flavour.modelKey(key));
    assert.deepStrictEqual(this.map.get(key), entry?.[1]);
  }

  has(key: K): void {
    assert.equal(this.map.has(key), this.model.has(this.flavour.modelKey(key)));
  }

  /** Checks a yielded entry: the key is present now, decoded canonically, with its value now. */
  checkEntry(key: K, value: V): unknown {
    const mk = this.flavour.modelKey(key);
    const entry = this.model.get(mk);
    if (entry === undefined) assert.fail(`iteration yielded ${show(key)}, which is not in the map`);
    assert.deepStrictEqual(key, this.flavour.decodedKey(entry[0]));
    assert.deepStrictEqual(value, entry[1]);
    return mk;
  }

  /** A full iteration, one of four ways, compared with the model. */
  iterate(how: number): void {
    const entries: [K, V][] = [];
    switch (how) {
      case 0:
        for (const entry of this.map) entries.push(entry);
        break;
      case 1:
        this.map.forEach(function (this: unknown, value, key, map) {
          assert.equal(this, "thisArg");
          entries.push([key, value]);
          assert.ok(map instanceof GoMap);
        }, "thisArg");
        break;
      case 2: {
        const keys = [...this.map.keys()];
        for (const key of keys) {
          const entry = this.model.get(this.flavour.modelKey(key));
          assert.ok(entry !== undefined);
          entries.push([key, entry[1]]);
        }
        // values() yields the same multiset of values.
        assert.equal([...this.map.values()].length, keys.length);
        break;
      }
      default:
        entries.push(...this.map.entries());
    }
    const seen = new Set<unknown>();
    for (const [key, value] of entries) {
      const mk = this.checkEntry(key, value);
      if (seen.has(mk)) assert.fail(`iteration yielded ${show(key)} twice`);
      seen.add(mk);
    }
    assert.equal(entries.length, this.model.size);
  }

  /** An iteration with writes between next() calls, checked by Go's rule. */
  iterateMutating(pool: readonly K[], actions: readonly Action[]): void {
    const { map, model } = this;
    const atStart = new Set(model.keys());
    const deletedDuring = new Set<unknown>();
    const visited = new Set<unknown>();
    const sorted = [...actions].sort((x, y) => x.at - y.at);
    let next = 0;
    let step = 0;
    const iterator = map.entries();
    for (;;) {
      const r = iterator.next();
      if (r.done) break;
      const [key, value] = r.value;
      const mk = this.checkEntry(key, value);
      if (visited.has(mk)) assert.fail(`iteration yielded ${show(key)} twice`);
      visited.add(mk);
      // Writes between this next() and the following one.
      while (next < sorted.length && sorted[next].at <= step) {
        this.apply(sorted[next++], pool, atStart, visited, deletedDuring);
        if (map.stats().growing) this.sawGrowthDuringIteration = true;
      }
      step++;
    }
    for (const mk of atStart) {
      if (!deletedDuring.has(mk) && !visited.has(mk)) {
        assert.fail(`iteration missed ${show(model.get(mk)?.[0] ?? mk)}`);
      }
    }
    // The iterator stays done.
    assert.equal(iterator.next().done, true);
  }

  apply(
    action: Action,
    pool: readonly K[],
    atStart: Set<unknown>,
    visited: Set<unknown>,
    deletedDuring: Set<unknown>,
  ): void {
    const { model, flavour } = this;
    const pickFrom = (keys: unknown[], pick: number): K | undefined =>
      keys.length === 0 ? undefined : model.get(keys[pick % keys.length])?.[0];
    switch (action.a) {
      case "deleteUnvisited": {
        const key = pickFrom(
          [...atStart].filter((k) => !visited.has(k) && model.has(k)),
          action.pick,
        );
        if (key === undefined) return;
        deletedDuring.add(flavour.modelKey(key));
        this.delete(key);
        return;
      }
      case "deleteVisited": {
        const key = pickFrom([...visited].filter((k) => model.has(k)), action.pick);
        if (key === undefined) return;
        deletedDuring.add(flavour.modelKey(key));
        this.delete(key);
        return;
      }
      case "overwriteUnvisited": {
        const key = pickFrom(
          [...atStart].filter((k) => !visited.has(k) && model.has(k)),
          action.pick,
        );
        if (key !== undefined) this.set(key, action.value as V);
        return;
      }
      case "set": {
        const key = pool[action.key % pool.length];
        // A key deleted earlier in this iteration and set again may or may not be yielded.
        this.set(key, action.value as V);
        return;
      }
      case "bulk":
        for (let i = 0; i < action.count; i++) {
          const n = this.fresh++;
          this.set(flavour.freshKey(n), flavour.freshValue(n));
        }
        return;
      case "clear":
        for (const mk of model.keys()) deletedDuring.add(mk);
        this.clear();
        return;
    }
  }

  /** Runs `ops`, op i through view `via[i]` (modulo the number of views). */
  run(pool: readonly K[], ops: readonly Op[], via: readonly number[] = []): void {
    for (const [i, op] of ops.entries()) {
      this.map = this.views[(via[i] ?? 0) % this.views.length];
      switch (op.op) {
        case "set":
          this.set(pool[op.key % pool.length], op.value as V);
          break;
        case "get":
          this.get(pool[op.key % pool.length]);
          break;
        case "has":
          this.has(pool[op.key % pool.length]);
          break;
        case "delete":
          this.delete(pool[op.key % pool.length]);
          break;
        case "clear":
          this.clear();
          break;
        case "iterate":
          this.iterate(op.how);
          break;
        case "iterateMutating":
          this.iterateMutating(pool, op.actions);
          break;
      }
      assert.equal(this.map.size, this.model.size, `size after ${op.op}`);
    }
    this.finish(pool);
  }

  /** Final checks: same contents; deleting everything frees every blob. */
  finish(pool: readonly K[]): void {
    for (const view of this.views) {
      this.map = view;
      this.iterate(0);
      for (const key of pool) this.get(key), this.has(key);
    }
    for (const [key] of [...this.model.values()]) this.delete(key);
    assert.equal(this.map.size, 0);
    assert.equal(this.map.stats().bytesUsed, bucketBytes(this.map as GoMap<unknown, unknown>));
    assert.deepStrictEqual([...this.map], []);
  }
}

function poolArb<K>(special: readonly K[], key: fc.Arbitrary<K>): fc.Arbitrary<K[]> {
  return fc.array(key, { minLength: 1, maxLength: 24, size: "max" }).map((
    keys,
  ) => [...special, ...keys]);
}

/**
 * Runs `numRuns` random pools of keys (`special` ones, then some of `key`) with up to `maxOps`
 * random operations on them, each on a fresh map of `flavour` against a native Map.
 */
function modelProperty<K, V>(
  flavour: Flavour<K, V>,
  special: readonly K[],
  key: fc.Arbitrary<K>,
  value: fc.Arbitrary<V>,
  numRuns: number,
  maxOps = 100,
): void {
  fc.assert(
    fc.property(
      poolArb(special, key),
      fc.array(opArb(value), { maxLength: maxOps, size: "max" }),
      (pool, ops) => {
        new Checked(flavour).run(pool, ops);
      },
    ),
    runs(numRuns),
  );
}

// ---------------------------------------------------------------------------------------------

describe("GoMap against a native Map", () => {
  test("random operations with the default codecs, tricky keys and values", () => {
    modelProperty(AUTO, SPECIAL_KEYS, autoKey, autoValue, 300, 120);
  });

  test("thousands of keys with hint variations: growth under every operation", () => {
    const bigOp: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 12,
        arbitrary: fc.record({
          op: fc.constant("set" as const),
          key: fc.nat(),
          value: fc.oneof(fc.integer(), longString, fc.constant({ a: [1, "b"] })) as fc.Arbitrary<
            unknown
          >,
        }),
      },
      { weight: 4, arbitrary: fc.record({ op: fc.constant("get" as const), key: fc.nat() }) },
      { weight: 4, arbitrary: fc.record({ op: fc.constant("delete" as const), key: fc.nat() }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant("has" as const), key: fc.nat() }) },
    );
    const pool: unknown[] = [...SPECIAL_KEYS];
    for (let i = 0; i < 2500; i++) pool.push(i, `k${i}`);
    let grew = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(undefined, 0, 1, 8, 9, 100, 1000, 5000),
        fc.array(bigOp, { minLength: 2000, maxLength: 6000, size: "max" }),
        fc.array(
          fc.record({
            at: fc.nat(6000),
            actions: fc.array(actionArb(fc.integer() as fc.Arbitrary<unknown>), { maxLength: 6 }),
          }),
          { maxLength: 3 },
        ),
        (hint, ops, iterations) => {
          const checked = new Checked(AUTO, { hint });
          const initialB = checked.map.stats().B;
          const all: Op[] = [...ops];
          for (const { at, actions } of iterations) {
            all.splice(Math.min(at, all.length), 0, { op: "iterateMutating", actions });
          }
          all.push({ op: "iterate", how: 0 });
          checked.run(pool, all);
          if (checked.map.stats().B > initialB) grew++;
        },
      ),
      runs(25),
    );
    assert.ok(grew > 0, "no run grew the table");
  });

  test("iterations interleaved with bulk inserts see every old key once while the table grows", () => {
    let sawGrowth = false;
    fc.assert(
      fc.property(
        poolArb(SPECIAL_KEYS, autoKey),
        fc.integer({ min: 0, max: 300 }),
        fc.array(actionArb(autoValue), { minLength: 1, maxLength: 20, size: "max" }),
        fc.array(fc.record({ at: fc.nat(40), count: fc.integer({ min: 50, max: 1500 }) }), {
          minLength: 1,
          maxLength: 3,
        }),
        (pool, prefill, actions, bulks) => {
          const checked = new Checked(AUTO);
          for (let i = 0; i < prefill; i++) checked.set(AUTO.freshKey(1e6 + i), i);
          for (const key of pool) checked.set(key, String(key));
          checked.iterateMutating(pool, [
            ...actions,
            ...bulks.map((b) => ({ a: "bulk" as const, ...b })),
          ]);
          sawGrowth ||= checked.sawGrowthDuringIteration;
          checked.finish(pool);
        },
      ),
      runs(80),
    );
    assert.ok(sawGrowth, "no iteration overlapped a growth");
  });
});

describe("GoMap against a native Map, with colliding keys", () => {
  test("keys crafted to collide under the old hash, and keys sharing long prefixes", () => {
    fc.assert(
      fc.property(
        poolArb([], collidingKey),
        fc.array(opArb(autoValue), { maxLength: 120, size: "max" }),
        (pool, ops) => {
          new Checked(AUTO).run(pool, ops);
        },
      ),
      runs(200),
    );
  });

  test("keys that share a bucket (at B <= 3) and a tophash under the map's own hash", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 24 }),
        fc.array(opArb(autoValue), { maxLength: 120, size: "max" }),
        (count, ops) => {
          const checked = new Checked(AUTO);
          const pool = keysCollidingIn(checked.map.handle.buffer, count);
          // Every key of the pool in one table: one bucket and its overflow chain.
          for (const key of pool) checked.set(key, 0);
          assert.equal(checked.map.stats().overflowBuckets, Math.ceil(count / 8) - 1);
          checked.run(pool, ops);
        },
      ),
      runs(150),
    );
  });
});

test("GoMap: three views of one map, used in turn, agree with one model as the buffer grows", () => {
  // Each view has its own typed-array views of the buffer, made when it attached, as each worker
  // would; big values grow the buffer through one view while the others' views lag behind.
  const big = fc.oneof(
    autoValue,
    fc.integer({ min: 1000, max: 40_000 }).map((n) => new Uint8Array(n).fill(n & 255)),
    fc.integer({ min: 500, max: 20_000 }).map((n) => "big".repeat(n)),
  );
  fc.assert(
    fc.property(
      poolArb(SPECIAL_KEYS, autoKey),
      fc.array(opArb(big), { minLength: 20, maxLength: 150, size: "max" }),
      fc.array(fc.nat(2), { maxLength: 150, size: "max" }),
      (pool, ops, via) => {
        const checked = new Checked(AUTO);
        checked.views.push(GoMap.attach(checked.map.handle), GoMap.attach(checked.map.handle));
        checked.run(pool, ops, via);
      },
    ),
    runs(100),
  );
});

// ---------------------------------------------------------------------------------------------
// Typed codecs

const hex = (bytes: Uint8Array): string =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** A user codec for values: JSON through UTF-8. */
const jsonCodec: Codec<unknown> = {
  name: "test-json",
  encode: (v) => new TextEncoder().encode(JSON.stringify(v)),
  decode: (bytes) => JSON.parse(new TextDecoder().decode(bytes)),
};

/**
 * The flavour of a built-in codec for keys and values alike: keys compare as they are, or by
 * `modelKey`, and the map gives them back as they are, but for -0 (given back as 0).
 */
function sameCodec<T>(
  codec: Codec<T>,
  flavour:
    & Pick<Flavour<T, T>, "freshKey" | "freshValue">
    & Partial<Pick<Flavour<T, T>, "modelKey">>,
): Flavour<T, T> {
  return {
    name: codec.name,
    options: { keys: codec, values: codec },
    modelKey: (k) => k,
    decodedKey: canonicalNumber,
    ...flavour,
  };
}

describe("GoMap with typed codecs against a native Map", () => {
  test("float64 keys and values", () => {
    modelProperty(
      sameCodec(codecs.float64, { freshKey: (n) => 1e12 + n, freshValue: (n) => -n }),
      [NaN, -0, 0, 1, -1, Infinity, -Infinity, Number.MIN_VALUE, Number.MAX_VALUE, 0.1 + 0.2],
      fc.oneof(fc.double(), fc.integer({ min: -3, max: 3 })),
      fc.oneof(fc.double(), fc.constantFrom(-0, NaN)),
      150,
    );
  });

  test("int32 keys and values", () => {
    modelProperty(
      sameCodec(codecs.int32, { freshKey: (n) => 1_000_000_000 + n, freshValue: (n) => n }),
      [0, -0, 1, -1, 2 ** 31 - 1, -(2 ** 31)],
      fc.oneof(fc.integer(), fc.integer({ min: -3, max: 3 })),
      fc.integer(),
      150,
    );
  });

  test("string keys and values", () => {
    modelProperty(
      sameCodec(codecs.string, {
        freshKey: (n) => `fresh ${n}`,
        freshValue: (n) => "v".repeat(n % 120),
      }),
      ["", "1", "a", "ab", "abc", "\ud800", "\udfff\ud800", "x".repeat(200), "é", "\u{1F600}"],
      fc.oneof(
        fc.string({ maxLength: 3 }),
        unitString(6),
        longString,
        fc.string({ unit: "binary" }),
        collidingString,
      ),
      fc.oneof(fc.string(), unitString(10), longString),
      150,
    );
  });

  test("bytes keys and values", () => {
    modelProperty(
      sameCodec(codecs.bytes, {
        modelKey: hex,
        freshKey: (n) => new Uint8Array(new Float64Array([n]).buffer),
        freshValue: (n) => new Uint8Array(n % 50),
      }),
      [
        new Uint8Array(0),
        new Uint8Array(1),
        new Uint8Array(2),
        new Uint8Array([1]),
        new Uint8Array(300),
      ],
      fc.oneof(fc.uint8Array({ maxLength: 12 }), collidingBytes),
      fc.uint8Array({ maxLength: 200 }),
      100,
    );
  });

  test("a user codec for keys and another for values", () => {
    modelProperty<Point, unknown>(
      {
        name: "user",
        options: { keys: pointCodec, values: jsonCodec },
        modelKey: (p) => `${p.x},${p.y}`,
        decodedKey: (p) => ({ x: p.x, y: p.y }),
        freshKey: (n) => ({ x: n, y: -n - 1 }),
        freshValue: (n) => ({ n }),
      },
      [{ x: 0, y: 0 }, { x: 1, y: 0 }, { x: 0, y: 1 }, { x: -1, y: -1 }],
      fc.record(
        { x: fc.integer({ min: -3, max: 3 }), y: fc.integer({ min: -3, max: 3 }) },
        { noNullPrototype: true },
      ),
      fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v))),
      100,
    );
  });
});

describeReentrantAndHuge("GoMap", (options) => new GoMap(options), false);
