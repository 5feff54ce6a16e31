// Copyright the shmap authors. MIT license.
//
// Model-based property tests for SyncMap, after Go's TestMapMatchesRWMutex: random sequences of
// every operation run on a SyncMap and on a reference model (a native Map with sync.Map's
// semantics, compare-and-X by encoded value), which must agree at every step and at the end.
//
// A second, "shadow" model tracks which keys Go's design puts in the read and the dirty table
// (promotion after misses, the dirty table rebuilt from the read table with deleted entries
// expunged, stores unexpunging them, dirty-only keys removed by deletes), and is checked
// against stats() at every step; the runs also count how often each of those paths was taken
// and fail if one never was.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { codecs, SyncMap, type SyncMapStats } from "../mod.ts";
import { describeReentrantAndHuge } from "./fixtures/reentrant_model.ts";
import { EQUALITY_KEYS } from "./fixtures/special_keys.ts";
import { collidingKey, keysCollidingIn } from "./fixtures/colliding_keys.ts";

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

// ---------------------------------------------------------------------------------------------
// Arbitraries

/** Keys whose equality is easy to get wrong, and a small pool so that keys collide. */
const SPECIAL_KEYS: readonly unknown[] = [
  ...EQUALITY_KEYS,
  "ab",
  "abc",
  true,
  null,
  undefined,
  -(2n ** 64n),
  "k".repeat(120),
  "k".repeat(121),
  "naïve ünïcödé \u{1F600}",
  "\ud800",
];

const keyArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 11 }) },
  { weight: 4, arbitrary: fc.constantFrom(...SPECIAL_KEYS) },
  { weight: 1, arbitrary: fc.string({ maxLength: 3 }) },
);

const leafValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(-0, 0, NaN, Infinity, 0.5, 2 ** 40),
  fc.double(),
  fc.string({ maxLength: 4 }),
  fc.constantFrom("v".repeat(200), "ü".repeat(33), "\u{1F600}x"),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
  fc.boolean(),
  fc.constantFrom(null, undefined),
  fc.uint8Array({ maxLength: 12 }),
);

const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: leafValue },
  { weight: 1, arbitrary: fc.array(leafValue, { maxLength: 3 }) },
  {
    weight: 1,
    arbitrary: fc.record({ a: leafValue, b: fc.array(leafValue, { maxLength: 2 }) }, {
      requiredKeys: ["a"],
      noNullPrototype: true,
    }),
  },
);

/** The old value of a compare-and-X: the key's current value (usually), or any value. */
type Old = { current: true } | { current: false; value: unknown };
const oldArb: fc.Arbitrary<Old> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ current: true } as const) },
  { weight: 1, arbitrary: valueArb.map((value) => ({ current: false as const, value })) },
);

type Cmd =
  | { op: "load" | "get" | "has" | "delete" | "loadAndDelete"; key: unknown }
  | { op: "store" | "set" | "swap" | "loadOrStore"; key: unknown; value: unknown }
  | { op: "cas"; key: unknown; old: Old; value: unknown }
  | { op: "cad"; key: unknown; old: Old }
  | { op: "range"; stopAfter: number }
  | { op: "iterate"; how: number }
  | { op: "rangeMutating"; actions: Cmd[] }
  | { op: "clear" }
  | { op: "misses"; n: number }
  | { op: "fill"; n: number }
  | { op: "tick" };

const keyed = (ops: readonly ("load" | "get" | "has" | "delete" | "loadAndDelete")[]) =>
  fc.record({ op: fc.constantFrom(...ops), key: keyArb });
const writes = (ops: readonly ("store" | "set" | "swap" | "loadOrStore")[]) =>
  fc.record({ op: fc.constantFrom(...ops), key: keyArb, value: valueArb });

/** A plain command: no iteration, clear or tick (what a rangeMutating callback runs). */
const simpleCmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 4, arbitrary: keyed(["load", "get", "has"]) },
  { weight: 3, arbitrary: keyed(["delete", "loadAndDelete"]) },
  { weight: 6, arbitrary: writes(["store", "set", "swap", "loadOrStore"]) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("cas" as const),
      key: keyArb,
      old: oldArb,
      value: valueArb,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant("cad" as const), key: keyArb, old: oldArb }),
  },
);

function cmdArb(withTicks: boolean): fc.Arbitrary<Cmd> {
  return fc.oneof(
    { weight: 20, arbitrary: simpleCmd },
    {
      weight: 1,
      arbitrary: fc.record({ op: fc.constant("range" as const), stopAfter: fc.nat(6) }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("iterate" as const), how: fc.nat(4) }) },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant("rangeMutating" as const),
        actions: fc.array(simpleCmd, { minLength: 1, maxLength: 6 }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("clear" as const) }) },
    // Loads of missing keys: misses, so that the dirty table gets promoted.
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant("misses" as const),
        n: fc.integer({ min: 1, max: 40 }),
      }),
    },
    // New keys: the dirty table is rebuilt from the read table (expunging) and grows.
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant("fill" as const),
        n: fc.integer({ min: 1, max: 30 }),
      }),
    },
    { weight: withTicks ? 1 : 0, arbitrary: fc.constant({ op: "tick" } as const) },
  );
}

// ---------------------------------------------------------------------------------------------
// The models

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
/** Equality of values as the map compares them: by encoding. */
const sameEncoding = (a: unknown, b: unknown) =>
  hex(codecs.auto.encode(a)) === hex(codecs.auto.encode(b));
/** A sort key for keys: -0 and 0 sort together (the map gives keys back canonical). */
const keyOrder = (k: unknown) => hex(codecs.auto.encode(k === 0 ? 0 : k));
const sortedPairs = (pairs: Iterable<[unknown, unknown]>) =>
  [...pairs].map(([k, v]) => [k === 0 ? 0 : k, v] as [unknown, unknown])
    .sort((a, b) => (keyOrder(a[0]) < keyOrder(b[0]) ? -1 : 1));

/** A value as the map will hand it back: a copy. */
function copy(value: unknown): unknown {
  return value instanceof Uint8Array ? value.slice() : structuredClone(value);
}

/**
 * Which keys Go's design keeps in which table. Checked against stats() after every step, so the
 * paths below are known to be taken as Go takes them.
 */
class Shadow {
  read = new Set<unknown>();
  /** Whether there is a read table (an empty one included): not before the first promotion. */
  hasRead = false;
  dirty: Set<unknown> | null = null;
  /** Go's `amended`: a key was added to the dirty table since it was made. */
  amended = false;
  counts = {
    promotions: 0,
    promotedAtOnce: 0,
    expunged: 0,
    unexpunged: 0,
    dirtyOnlyDeletes: 0,
    clearsWithBothTables: 0,
    readPathWrites: 0,
  };

  /** A write (store, swap, loadOrStore, or a successful CAS) of `key`, present or not. */
  write(key: unknown, live: ReadonlySet<unknown> | Map<unknown, unknown>, stores: boolean): void {
    if (this.read.has(key)) {
      if (this.dirty !== null && !this.dirty.has(key)) {
        // Expunged: in the read table, not in the dirty table. A store puts it back.
        if (stores) {
          this.dirty.add(key);
          this.counts.unexpunged++;
        }
      } else if (stores) {
        this.counts.readPathWrites++;
      }
      return;
    }
    if (this.dirty?.has(key) || !stores) return;
    let atOnce = false;
    if (this.dirty === null) {
      // dirtyLocked: copy the read table's live keys, expunge the others. A read table that was
      // all deleted (or empty), or mostly, is replaced at once by the new table.
      this.dirty = new Set([...this.read].filter((k) => live.has(k)));
      const expunged = this.read.size - this.dirty.size;
      this.counts.expunged += expunged;
      atOnce = this.hasRead &&
        (expunged === this.read.size || (expunged >= 64 && 2 * expunged >= this.read.size));
    }
    this.dirty.add(key);
    this.amended = true;
    if (atOnce) {
      this.promote();
      this.counts.promotedAtOnce++;
    }
  }

  /** A delete that takes the key out of the dirty table when only the dirty table has it. */
  remove(key: unknown): void {
    if (!this.read.has(key) && this.dirty?.has(key)) {
      this.dirty.delete(key);
      this.counts.dirtyOnlyDeletes++;
    }
  }

  /** What Range does first: promote the dirty table if it holds keys the read table lacks. */
  promoteIfAmended(): void {
    if (this.amended) this.promote();
  }

  promote(): void {
    if (this.dirty === null) return;
    this.read = this.dirty;
    this.hasRead = true;
    this.dirty = null;
    this.amended = false;
    this.counts.promotions++;
  }

  /** Catches up with a promotion stats() shows: misses are not modelled. */
  sync(s: SyncMapStats): void {
    if (this.dirty !== null && s.dirtyKeys === -1) this.promote();
  }

  clear(): void {
    if (this.read.size > 0 && this.dirty !== null && this.dirty.size > 0) {
      this.counts.clearsWithBothTables++;
    }
    this.read = new Set();
    this.hasRead = false;
    this.dirty = null;
    this.amended = false;
  }

  /** Compares with stats(), after catching up with a promotion. */
  check(s: SyncMapStats, where: string): void {
    this.sync(s);
    assert.equal(s.readKeys, this.read.size, `readKeys ${where}`);
    assert.equal(s.dirtyKeys, this.dirty === null ? -1 : this.dirty.size, `dirtyKeys ${where}`);
    assert.equal(s.amended, this.amended, `amended ${where}`);
  }
}

interface Run {
  maps: SyncMap<unknown, unknown>[];
  model: Map<unknown, unknown>;
  shadow: Shadow;
  fresh: number;
  step: number;
}

/** Runs one command on map `m` and on the models; checks the result. */
function apply(run: Run, m: SyncMap<unknown, unknown>, cmd: Cmd, inRange: boolean): void {
  const { model, shadow } = run;
  const where = `at step ${run.step}: ${cmd.op}`;
  switch (cmd.op) {
    case "load":
    case "get": {
      const got = cmd.op === "load" ? m.load(cmd.key) : m.get(cmd.key);
      assert.deepStrictEqual(got, model.get(cmd.key), where);
      return;
    }
    case "has":
      assert.equal(m.has(cmd.key), model.has(cmd.key), where);
      return;
    case "delete":
      shadow.remove(cmd.key);
      assert.equal(m.delete(cmd.key), model.delete(cmd.key), where);
      return;
    case "loadAndDelete": {
      const expected = model.has(cmd.key) ? [model.get(cmd.key), true] : [undefined, false];
      shadow.remove(cmd.key);
      model.delete(cmd.key);
      assert.deepStrictEqual(m.loadAndDelete(cmd.key), expected, where);
      return;
    }
    case "store":
    case "set": {
      shadow.write(cmd.key, model, true);
      if (cmd.op === "store") assert.equal(m.store(cmd.key, cmd.value), undefined);
      else assert.equal(m.set(cmd.key, cmd.value), m);
      model.set(cmd.key, copy(cmd.value));
      return;
    }
    case "swap": {
      const expected = model.has(cmd.key) ? [model.get(cmd.key), true] : [undefined, false];
      shadow.write(cmd.key, model, true);
      model.set(cmd.key, copy(cmd.value));
      assert.deepStrictEqual(m.swap(cmd.key, cmd.value), expected, where);
      return;
    }
    case "loadOrStore": {
      const expected = model.has(cmd.key) ? [model.get(cmd.key), true] : [copy(cmd.value), false];
      shadow.write(cmd.key, model, true);
      if (!model.has(cmd.key)) model.set(cmd.key, copy(cmd.value));
      assert.deepStrictEqual(m.loadOrStore(cmd.key, cmd.value), expected, where);
      return;
    }
    case "cas": {
      const old = cmd.old.current ? model.get(cmd.key) : cmd.old.value;
      const expected = model.has(cmd.key) && sameEncoding(model.get(cmd.key), old);
      // compareAndSwap never adds a key nor unexpunges one.
      if (expected) model.set(cmd.key, copy(cmd.value));
      assert.equal(m.compareAndSwap(cmd.key, old, cmd.value), expected, where);
      return;
    }
    case "cad": {
      const old = cmd.old.current ? model.get(cmd.key) : cmd.old.value;
      const expected = model.has(cmd.key) && sameEncoding(model.get(cmd.key), old);
      if (expected) model.delete(cmd.key);
      assert.equal(m.compareAndDelete(cmd.key, old), expected, where);
      return;
    }
    case "misses":
      for (let i = 0; i < cmd.n; i++) assert.equal(m.load(`missing ${i}`), undefined);
      return;
    case "fill":
      for (let i = 0; i < cmd.n; i++) {
        const key = `fresh ${run.fresh++}`;
        shadow.write(key, model, true);
        m.store(key, i);
        model.set(key, i);
      }
      return;
    case "range": {
      shadow.promoteIfAmended();
      let calls = 0;
      m.range((k, v) => {
        assert.ok(model.has(k), `${where}: range gave key ${String(k)}`);
        assert.deepStrictEqual(v, model.get(k), where);
        return ++calls < cmd.stopAfter || cmd.stopAfter === 0;
      });
      const expected = cmd.stopAfter === 0 ? model.size : Math.min(cmd.stopAfter, model.size);
      assert.equal(calls, expected, `${where}: calls`);
      return;
    }
    case "iterate": {
      shadow.promoteIfAmended();
      const expected = sortedPairs(model);
      let got: [unknown, unknown][];
      switch (cmd.how) {
        case 0:
          got = [...m];
          break;
        case 1:
          got = [...m.entries()];
          break;
        case 2: {
          const keys = [...m.keys()];
          got = keys.map((k) => [k, m.load(k)]);
          break;
        }
        case 3:
          got = [];
          m.forEach((v, k) => got.push([k, v]));
          break;
        default: {
          // values() agrees with the model as a multiset, by encoding.
          const values = [...m.values()].map((v) => hex(codecs.auto.encode(v))).sort();
          assert.deepStrictEqual(
            values,
            [...model.values()].map((v) => hex(codecs.auto.encode(v))).sort(),
            where,
          );
          return;
        }
      }
      assert.deepStrictEqual(sortedPairs(got), expected, where);
      return;
    }
    case "rangeMutating": {
      shadow.promoteIfAmended();
      // Keys the actions never touch are present throughout: each must be visited once.
      const touched = new Set(cmd.actions.map((a) => (a as { key: unknown }).key));
      const untouched = [...model.keys()].filter((k) => !touched.has(k));
      const visited = new Set<unknown>();
      let i = 0;
      m.range((k) => {
        assert.ok(!visited.has(k), `${where}: key ${String(k)} visited twice`);
        visited.add(k);
        // Each batch of the range promotes first if its callbacks added keys.
        shadow.sync(m.stats());
        if (i < cmd.actions.length) {
          apply(run, m, cmd.actions[i++], true);
          // A miss may have promoted the dirty table.
          shadow.sync(m.stats());
        }
        return true;
      });
      for (const k of untouched) {
        assert.ok(visited.has(k), `${where}: key ${String(k)} not visited`);
      }
      // The range's last batches may have promoted too.
      shadow.sync(m.stats());
      // Actions left over (the range ended first) run afterwards.
      while (i < cmd.actions.length) {
        apply(run, m, cmd.actions[i++], true);
        shadow.sync(m.stats());
      }
      return;
    }
    case "clear":
      shadow.clear();
      m.clear();
      model.clear();
      return;
    case "tick":
      throw new Error("tick is handled by the async runner");
  }
  void inRange;
}

/** After every step: size, count and the tables as the shadow has them. */
function checkStep(run: Run, m: SyncMap<unknown, unknown>, cmd: Cmd): void {
  assert.equal(m.size, run.model.size, `size at step ${run.step} (${cmd.op})`);
  const s = m.stats();
  assert.equal(s.count, run.model.size);
  if (s.dirtyKeys >= 0) assert.ok(s.dirtyKeys >= s.count, "the dirty table holds every value");
  else assert.ok(s.readKeys >= s.count, "the read table holds every value");
  run.shadow.check(s, `after step ${run.step} (${cmd.op})`);
}

/** The final contents, by range and by iteration, from every object. */
function checkFinal(run: Run): void {
  const expected = sortedPairs(run.model);
  for (const m of run.maps) {
    const ranged: [unknown, unknown][] = [];
    m.range((k, v) => {
      ranged.push([k, v]);
    });
    assert.deepStrictEqual(sortedPairs(ranged), expected, "final contents by range");
    assert.deepStrictEqual(sortedPairs(m), expected, "final contents by iteration");
    for (const [k, v] of run.model) assert.deepStrictEqual(m.load(k), v);
    assert.equal(m.size, run.model.size);
  }
}

const totals = new Shadow().counts;
function addCounts(shadow: Shadow): void {
  for (const key of Object.keys(totals) as (keyof typeof totals)[]) {
    totals[key] += shadow.counts[key];
  }
}

/** `cmd` with every key, its range actions' included, replaced by `f(key)`. */
function withKeys(cmd: Cmd, f: (key: unknown) => unknown): Cmd {
  if (cmd.op === "rangeMutating") {
    return { ...cmd, actions: cmd.actions.map((a) => withKeys(a, f)) };
  }
  return "key" in cmd ? { ...cmd, key: f(cmd.key) } : cmd;
}

/** Runs `cmds` on the new map `m` and the models, with keys 0..11 replaced by `pool`'s keys. */
function runWithPool(m: SyncMap<unknown, unknown>, cmds: readonly Cmd[], pool: unknown[]): void {
  const f = (
    k: unknown,
  ) => (Number.isInteger(k) && (k as number) >= 0 && (k as number) < 12 ? pool[k as number] : k);
  runOnOne(newRun([m]), m, cmds.map((cmd) => withKeys(cmd, f)));
}

/** Runs `cmds` on `m`, the one map of `run`, checking each step and the end; closes `m`. */
function runOnOne(run: Run, m: SyncMap<unknown, unknown>, cmds: readonly Cmd[]): void {
  for (const cmd of cmds) {
    run.step++;
    apply(run, m, cmd, false);
    checkStep(run, m, cmd);
  }
  checkFinal(run);
  addCounts(run.shadow);
  m.close();
}

function newRun(maps: SyncMap<unknown, unknown>[]): Run {
  return { maps, model: new Map(), shadow: new Shadow(), fresh: 0, step: 0 };
}

describe("SyncMap matches a model (Go's TestMapMatchesRWMutex)", () => {
  test("random operation sequences on one object", () => {
    fc.assert(
      fc.property(
        fc.array(cmdArb(false), { minLength: 5, maxLength: 150, size: "max" }),
        fc.boolean(),
        (cmds, hinted) => {
          const m = new SyncMap<unknown, unknown>(hinted ? { hint: 20 } : {});
          const run = newRun([m]);
          if (hinted) run.shadow.dirty = new Set();
          runOnOne(run, m, cmds);
        },
      ),
      { numRuns: 1000 },
    );
  });

  test("random sequences on two objects of one map, across tasks", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(cmdArb(true), fc.nat(1)), { minLength: 5, maxLength: 120, size: "max" }),
        async (cmds) => {
          const a = new SyncMap<unknown, unknown>();
          const b = SyncMap.attach<unknown, unknown>(structuredClone(a.handle));
          const run = newRun([a, b]);
          for (const [cmd, who] of cmds) {
            run.step++;
            const m = run.maps[who];
            if (cmd.op === "tick") {
              await tick();
              continue;
            }
            apply(run, m, cmd, false);
            checkStep(run, run.maps[1 - who], cmd);
          }
          await tick();
          checkFinal(run);
          addCounts(run.shadow);
          b.close();
          a.close();
        },
      ),
      { numRuns: 300 },
    );
  });

  // Colliding keys: the commands' keys 0..11 stand for the 12 keys of a pool of colliding keys.
  test("keys crafted to collide under the old hash, and keys sharing long prefixes", () => {
    fc.assert(
      fc.property(
        fc.array(cmdArb(false), { minLength: 5, maxLength: 150, size: "max" }),
        fc.array(collidingKey, { minLength: 12, maxLength: 12 }),
        (cmds, pool) => {
          runWithPool(new SyncMap<unknown, unknown>(), cmds, pool);
        },
      ),
      { numRuns: 200 },
    );
  });

  test("keys that share a bucket (at B <= 3) and a tophash under the map's own hash", () => {
    fc.assert(
      fc.property(
        fc.array(cmdArb(false), { minLength: 5, maxLength: 150, size: "max" }),
        (cmds) => {
          const m = new SyncMap<unknown, unknown>();
          runWithPool(m, cmds, keysCollidingIn(m.handle.buffer, 12));
        },
      ),
      { numRuns: 200 },
    );
  });

  test("every path of Go's design was taken", () => {
    // Runs after the two properties above (tests in a file run in order).
    for (const [path, count] of Object.entries(totals)) {
      assert.ok(count > 0, `path never taken: ${path} (${JSON.stringify(totals)})`);
    }
  });
});

describeReentrantAndHuge("SyncMap", (options) => new SyncMap(options), true);
