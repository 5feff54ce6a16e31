// Copyright the shmap authors. MIT license.
//
// Model-based property tests for a SyncMap that keeps running out of memory: a small maxBytes
// (64 to 256 KiB), keys from a pool of hundreds to thousands (small ints, short strings, long
// strings whose key blobs take kilobytes), values of a few bytes to several kilobytes or numbers
// (integers the map holds in the entry word, fractions and large integers in records), and
// random sequences of every operation, compared with a native Map at every step.
//
// A step that throws MapFullError must be a step that did nothing: the map's contents are the
// model's (checked after each failure, in full for the first ones of a run and every few after
// that), its size is the model's, and verify() passes, which finds a block handed out and
// reachable from nowhere. No other error is allowed. After the sequence (and, in half the runs,
// a delete of every key), clear() and a macrotask bring bytesUsed back to exactly what the same
// map used empty before it.
//
// The sequences promote often (loads of missing keys, iteration) and add new keys right after,
// so that a step copies the read table into a new dirty table and then finds the map full for
// the new key's entry or key blob: a rollback of that step must free the copy's overflow
// buckets, which its journal does not list (tests/sync_map_large_copy_test.ts forces that
// failure; this test reaches it by filling the map). The runs count the failures of new keys right after a promotion and
// fail if there were none.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { poolKey } from "./fixtures/full_map_keys.ts";
import { MapFullError, SyncMap } from "../mod.ts";

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));
const KiB = 1024;

// ---------------------------------------------------------------------------------------------
// Keys and values

/** Key `i` of the pool (small ints, short and long strings). */
const keyOf = poolKey;

/** A value of the map: a string, or a number. */
type Value = string | number;

/**
 * A value: for `len` 1 or more, a tag (so that compare-and-X sees different values) padded to
 * `len` characters; for `len` 0, the integer `tag`, which the map holds in the entry word (an
 * immediate, with no record); for -1, `tag + 0.5`, a number in a 16-byte record; for -2,
 * `2 ** 31 + tag`, an integer too large for an immediate, in a record too.
 */
interface ValueSpec {
  len: number;
  tag: number;
}
const valueOf = (v: ValueSpec): Value =>
  v.len > 0
    ? `${v.tag}:`.padEnd(v.len, "abcdefgh"[v.tag & 7])
    : v.len === 0
    ? v.tag
    : v.len === -1
    ? v.tag + 0.5
    : 2 ** 31 + v.tag;

const valueArb: fc.Arbitrary<ValueSpec> = fc.record({
  len: fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: -2, max: 0 }) },
    { weight: 4, arbitrary: fc.integer({ min: 1, max: 32 }) },
    { weight: 3, arbitrary: fc.integer({ min: 33, max: 600 }) },
    { weight: 2, arbitrary: fc.integer({ min: 601, max: 8000 }) },
  ),
  tag: fc.nat(5),
});

/** Old values of a compare-and-X: the key's current value, or another. */
type Old = { current: true } | { current: false; value: ValueSpec };
const oldArb: fc.Arbitrary<Old> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ current: true } as const) },
  { weight: 1, arbitrary: valueArb.map((value) => ({ current: false as const, value })) },
);

type Cmd =
  | { op: "load" | "has" | "delete" | "loadAndDelete"; key: number }
  | { op: "store" | "swap" | "loadOrStore"; key: number; value: ValueSpec }
  | { op: "cas"; key: number; old: Old; value: ValueSpec }
  | { op: "cad"; key: number; old: Old }
  | { op: "misses"; n: number }
  | { op: "fill"; n: number; value: ValueSpec }
  | { op: "promoteThenAdd"; len: number; value: ValueSpec }
  | { op: "range"; stopAfter: number }
  | { op: "iterate"; how: number }
  | { op: "clear" };

/** Commands over a pool of `poolSize` keys; indices favour the pool's first 64 keys. */
function cmdArb(poolSize: number): fc.Arbitrary<Cmd> {
  const key = fc.oneof(fc.nat(poolSize - 1), fc.nat(Math.min(poolSize, 64) - 1));
  const keyed = (...ops: ("load" | "has" | "delete" | "loadAndDelete")[]) =>
    fc.record({ op: fc.constantFrom(...ops), key });
  return fc.oneof(
    {
      weight: 10,
      arbitrary: fc.record({
        op: fc.constantFrom("store" as const, "swap" as const, "loadOrStore" as const),
        key,
        value: valueArb,
      }),
    },
    { weight: 4, arbitrary: keyed("load", "has") },
    { weight: 3, arbitrary: keyed("delete", "loadAndDelete") },
    {
      weight: 2,
      arbitrary: fc.record({ op: fc.constant("cas" as const), key, old: oldArb, value: valueArb }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("cad" as const), key, old: oldArb }) },
    // Loads of missing keys: misses, so that the dirty table gets promoted.
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant("misses" as const),
        n: fc.integer({ min: 1, max: 80 }),
      }),
    },
    // New keys until the map is full.
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant("fill" as const),
        n: fc.integer({ min: 1, max: 200 }),
        value: valueArb,
      }),
    },
    // A promotion, then a new key with a long key blob and a small value: the copy of the read
    // table is made, then the key's own allocations may find the map full.
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant("promoteThenAdd" as const),
        len: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 41, max: 4000 })),
        value: fc.record({ len: fc.integer({ min: 1, max: 24 }), tag: fc.nat(5) }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ op: fc.constant("range" as const), stopAfter: fc.nat(6) }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("iterate" as const), how: fc.nat(2) }) },
    { weight: 1, arbitrary: fc.constant({ op: "clear" } as const) },
  );
}

// ---------------------------------------------------------------------------------------------
// The run

interface Run {
  m: SyncMap<unknown, Value>;
  model: Map<unknown, Value>;
  step: number;
  fresh: number;
  /** MapFullErrors in this run. */
  fulls: number;
}

const totals = { fulls: 0, newKeyAfterPromotion: 0, fullNewKeyAfterPromotion: 0 };

const order = (k: unknown) => (typeof k === "number" ? `n${String(k).padStart(12, "0")}` : `s${k}`);
const sorted = (pairs: Iterable<[unknown, Value]>) =>
  [...pairs].sort((a, b) => (order(a[0]) < order(b[0]) ? -1 : 1));

/** The map's contents, by range, against the model's. */
function checkContents(run: Run, where: string): void {
  const got: [unknown, Value][] = [];
  run.m.range((k, v) => {
    got.push([k, v]);
  });
  assert.deepStrictEqual(sorted(got), sorted(run.model), `contents ${where}`);
}

/** After a MapFullError: nothing changed, and the map is sound. */
function checkUnchanged(run: Run, where: string): void {
  run.fulls++;
  totals.fulls++;
  run.m.verify();
  assert.equal(run.m.size, run.model.size, `size ${where}`);
  if (run.fulls <= 4 || run.fulls % 8 === 0) checkContents(run, where);
}

/** The old value of a compare-and-X: the key's value when it has one and `old` says so. */
function oldValue(model: Map<unknown, Value>, key: unknown, old: Old): Value {
  if (!old.current) return valueOf(old.value);
  return model.get(key) ?? "absent";
}

const FULL = Symbol("MapFullError");

/** `f()`, or FULL if it threw MapFullError (checked to have changed nothing). */
function attempt<T>(run: Run, where: string, f: () => T): T | typeof FULL {
  try {
    return f();
  } catch (error) {
    if (!(error instanceof MapFullError)) throw error;
    checkUnchanged(run, `after a MapFullError ${where}`);
    return FULL;
  }
}

function apply(run: Run, cmd: Cmd): void {
  const { m, model } = run;
  const where = `at step ${run.step}: ${cmd.op}`;
  switch (cmd.op) {
    case "load": {
      const key = keyOf(cmd.key);
      const got = attempt(run, where, () => m.load(key));
      if (got !== FULL) assert.equal(got, model.get(key), where);
      return;
    }
    case "has": {
      const key = keyOf(cmd.key);
      const got = attempt(run, where, () => m.has(key));
      if (got !== FULL) assert.equal(got, model.has(key), where);
      return;
    }
    case "delete": {
      const key = keyOf(cmd.key);
      const got = attempt(run, where, () => m.delete(key));
      if (got !== FULL) assert.equal(got, model.delete(key), where);
      return;
    }
    case "loadAndDelete": {
      const key = keyOf(cmd.key);
      const expected = model.has(key) ? [model.get(key), true] : [undefined, false];
      const got = attempt(run, where, () => m.loadAndDelete(key));
      if (got === FULL) return;
      model.delete(key);
      assert.deepStrictEqual(got, expected, where);
      return;
    }
    case "store":
    case "swap":
    case "loadOrStore": {
      const key = keyOf(cmd.key);
      const value = valueOf(cmd.value);
      const had = model.has(key);
      const old = model.get(key);
      const got = attempt(run, where, () => {
        if (cmd.op === "store") return m.store(key, value);
        return cmd.op === "swap" ? m.swap(key, value) : m.loadOrStore(key, value);
      });
      if (got === FULL) return;
      if (cmd.op === "store") assert.equal(got, undefined, where);
      else if (cmd.op === "swap") {
        assert.deepStrictEqual(got, had ? [old, true] : [undefined, false]);
      } else assert.deepStrictEqual(got, had ? [old, true] : [value, false], where);
      if (cmd.op !== "loadOrStore" || !had) model.set(key, value);
      return;
    }
    case "cas": {
      const key = keyOf(cmd.key);
      const old = oldValue(model, key, cmd.old);
      const value = valueOf(cmd.value);
      const expected = model.has(key) && model.get(key) === old;
      const got = attempt(run, where, () => m.compareAndSwap(key, old, value));
      if (got === FULL) return;
      assert.equal(got, expected, where);
      if (expected) model.set(key, value);
      return;
    }
    case "cad": {
      const key = keyOf(cmd.key);
      const old = oldValue(model, key, cmd.old);
      const expected = model.has(key) && model.get(key) === old;
      const got = attempt(run, where, () => m.compareAndDelete(key, old));
      if (got === FULL) return;
      assert.equal(got, expected, where);
      if (expected) model.delete(key);
      return;
    }
    case "misses":
      for (let i = 0; i < cmd.n; i++) {
        const got = attempt(run, where, () => m.load(`missing ${i}`));
        if (got !== FULL) assert.equal(got, undefined, where);
      }
      return;
    case "fill":
      for (let i = 0; i < cmd.n; i++) {
        const key = `fresh ${run.fresh++}`;
        const value = valueOf({ len: cmd.value.len, tag: i });
        if (attempt(run, where, () => m.store(key, value)) === FULL) return;
        model.set(key, value);
      }
      return;
    case "promoteThenAdd": {
      // Misses until the dirty table is promoted (there is none once it was).
      for (let i = 0; i < 2_000 && m.stats().dirtyKeys !== -1; i++) {
        attempt(run, where, () => m.load(`missing ${i}`));
      }
      const promoted = m.stats().dirtyKeys === -1;
      const key = `${run.fresh++}#`.padEnd(cmd.len, "N");
      const value = valueOf(cmd.value);
      if (promoted) totals.newKeyAfterPromotion++;
      if (attempt(run, where, () => m.store(key, value)) === FULL) {
        if (promoted) totals.fullNewKeyAfterPromotion++;
        return;
      }
      model.set(key, value);
      return;
    }
    case "range": {
      let calls = 0;
      const got = attempt(run, where, () =>
        m.range((k, v) => {
          assert.equal(v, model.get(k), `${where}: range gave key ${String(k)}`);
          return ++calls < cmd.stopAfter || cmd.stopAfter === 0;
        }));
      if (got === FULL) return;
      const expected = cmd.stopAfter === 0 ? model.size : Math.min(cmd.stopAfter, model.size);
      assert.equal(calls, expected, `${where}: calls`);
      return;
    }
    case "iterate": {
      const got = attempt(run, where, () => {
        if (cmd.how === 0) return [...m];
        const pairs: [unknown, Value][] = [];
        if (cmd.how === 1) m.forEach((v, k) => pairs.push([k, v]));
        else for (const k of m.keys()) pairs.push([k, m.load(k)!]);
        return pairs;
      });
      if (got !== FULL) assert.deepStrictEqual(sorted(got), sorted(model), where);
      return;
    }
    case "clear":
      if (attempt(run, where, () => m.clear()) !== FULL) model.clear();
      return;
  }
}

/** bytesUsed of `m` once a macrotask has let its retired blocks be freed. */
async function settledBytes(m: SyncMap<unknown, Value>): Promise<number> {
  await tick();
  return m.stats().bytesUsed;
}

describe("SyncMap in a small maxBytes matches a model through MapFullErrors", () => {
  test("random operation sequences that fill the map", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(64 * KiB, 128 * KiB, 256 * KiB),
        fc.integer({ min: 200, max: 3000 }).chain((poolSize) =>
          fc.array(cmdArb(poolSize), { minLength: 20, maxLength: 200, size: "max" })
        ),
        fc.boolean(),
        async (maxBytes, cmds, deleteFirst) => {
          const m = new SyncMap<unknown, Value>({ maxBytes });
          // The empty map's figure, measured as at the end.
          m.store(0, "");
          m.delete(0);
          m.clear();
          const empty = await settledBytes(m);
          const run: Run = { m, model: new Map(), step: 0, fresh: 0, fulls: 0 };
          for (const cmd of cmds) {
            run.step++;
            apply(run, cmd);
            assert.equal(m.size, run.model.size, `size after step ${run.step} (${cmd.op})`);
          }
          m.verify();
          checkContents(run, "at the end");
          if (deleteFirst) {
            for (const key of [...run.model.keys()]) {
              const got = attempt(run, "deleting every key", () => m.delete(key));
              if (got !== FULL) assert.equal(got, run.model.delete(key), `delete ${String(key)}`);
            }
            m.verify();
          }
          m.clear();
          // In one thread, the macrotask frees every retired block (the tables, entries, keys
          // and values clear() retired) and gives back a retire list that grew for them: what
          // is left is exactly what the map used empty. A block leaked by a failed step stays.
          const after = await settledBytes(m);
          assert.equal(
            after,
            empty,
            `bytesUsed ${after} after clear(), ${empty} empty (${run.fulls} MapFullErrors)`,
          );
          m.verify();
          m.close();
        },
      ),
      // At most 15 s in all, shrinking included: a failure found by then is still reported, with
      // the smallest counterexample found so far (a failing run shrinks for a minute or more).
      { numRuns: 100, interruptAfterTimeLimit: 15_000 },
    );
  });

  test("new keys found the map full right after a promotion", () => {
    // Runs after the property above (tests in a file run in order).
    assert.ok(totals.fullNewKeyAfterPromotion > 0, JSON.stringify(totals));
  });
});
