// Copyright the shmap authors. MIT license.
//
// A GoMap handle's batch copy (src/maps/_go_batches.ts): from its second iteration at one
// version of the map (SEQ, WRAPS), a handle takes each partition's keys and values from its own
// copy instead of walking the buckets. The copy must be used only while the map has not been
// written since it was made: by this handle, by another handle of the same buffer, or by another
// worker. Each test compares what every iteration yields with a plain Map, and checks that the
// copy was made (or, where it must not be, that it was not).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Codec, codecs, GoMap } from "../mod.ts";
import { MAX_KEYS, MAX_UNITS } from "../src/maps/_iteration_keys.ts";
import { batchesOf } from "../src/maps/go_map.ts";
import { readUnderWriter } from "./fixtures/read_under_writer.ts";

const held = (m: GoMap<unknown, unknown>): number => batchesOf(m).held;

/** Asserts that every way to iterate `m` (forEach and for...of included) yields `model`. */
function assertIterates<K, V>(m: GoMap<K, V>, model: Map<K, V>, what: string): void {
  assert.deepStrictEqual(new Map(m.entries()), model, `${what}: entries()`);
  assert.deepStrictEqual(new Map(m), model, `${what}: for...of`);
  const viaForEach = new Map<K, V>();
  m.forEach((v, k) => viaForEach.set(k, v));
  assert.deepStrictEqual(viaForEach, model, `${what}: forEach`);
  const keys = [...m.keys()];
  assert.equal(keys.length, model.size, `${what}: keys() yields each key once`);
  assert.deepStrictEqual(new Set(keys), new Set(model.keys()), `${what}: keys()`);
  const sorted = (vs: Iterable<V>) => [...vs].map(String).sort();
  assert.deepStrictEqual(sorted(m.values()), sorted(model.values()), `${what}: values()`);
}

/** A map of keys 0..n-1 to `value(k)`, and its model. */
function filled<V>(n: number, value: (k: number) => V): [GoMap<number, V>, Map<number, V>] {
  const m = new GoMap<number, V>();
  const model = new Map<number, V>();
  for (let k = 0; k < n; k++) {
    m.set(k, value(k));
    model.set(k, value(k));
  }
  return [m, model];
}

describe("GoMap batch copy", () => {
  test("iterations of a map nobody writes match a Map, and the copy serves them from the second", () => {
    for (const n of [0, 1, 7, 100, 3000]) {
      const [m, model] = filled(n, (k) => (k % 2 === 0 ? k * 10 : `v${k}`));
      const g = m as GoMap<unknown, unknown>;
      assert.deepStrictEqual(new Map(m), model, `n=${n}: first`);
      assert.equal(held(g), 0, `n=${n}: the first iteration only notes the version`);
      assert.deepStrictEqual(new Map(m), model, `n=${n}: second`);
      assert.equal(held(g), n, `n=${n}: the second fills the copy`);
      assertIterates(m, model, `n=${n}: from the copy`);
      assert.equal(held(g), n);
      m.verify();
    }
  });

  test("a write by this handle between iterations, or between two next() calls, is seen", () => {
    const n = 2000;
    const [m, model] = filled(n, (k) => k);
    const g = m as GoMap<unknown, unknown>;
    for (let r = 0; r < 2; r++) new Map(m);
    assert.equal(held(g), n);
    // Overwrites only (the layout stands), deletes, and new keys, each after a full copy.
    const writes: [string, () => void][] = [
      ["an overwrite", () => (m.set(5, -5), model.set(5, -5))],
      ["overwrites of every key", () => {
        for (let k = 0; k < n; k++) if (model.has(k)) (m.set(k, k + 0.5), model.set(k, k + 0.5));
      }],
      ["a delete", () => (m.delete(6), model.delete(6))],
      ["a new key", () => (m.set(n + 1, 1), model.set(n + 1, 1))],
      ["a set of the value it held", () => (m.set(7, model.get(7)!), undefined)],
    ];
    for (const [what, write] of writes) {
      for (let r = 0; r < 2; r++) new Map(m); // the copy, made at this version
      write();
      assertIterates(m, model, `after ${what}`);
    }
    // Within one iteration: entries already yielded stay yielded; the rest come as they are now.
    for (let r = 0; r < 2; r++) new Map(m);
    const it = m.entries();
    const seen = new Map<number, number>([it.next().value as [number, number]]);
    for (let k = 0; k < n; k++) {
      if (model.has(k) && !seen.has(k)) (m.set(k, -k), model.set(k, -k));
    }
    for (let r = it.next(); !r.done; r = it.next()) seen.set(r.value[0], r.value[1]);
    const [first] = seen.keys();
    const want = new Map(model);
    want.set(first, seen.get(first)!);
    assert.deepStrictEqual(seen, want);
    m.verify();
  });

  test("a write through another handle of the buffer is seen", () => {
    const n = 1500;
    const [m, model] = filled(n, (k) => k * 2);
    const other = GoMap.attach<number, number>(m.handle);
    for (let round = 0; round < 20; round++) {
      for (let r = 0; r < 3; r++) assertIterates(m, model, `round ${round}, iteration ${r}`);
      assert.ok(held(m as GoMap<unknown, unknown>) > 0, "the copy was made");
      const k = (round * 97) % n;
      if (round % 3 === 0) (other.delete(k), model.delete(k));
      else (other.set(k, round), model.set(k, round));
    }
    m.verify();
  });

  test("clear() drops the copy; what is set after is seen", () => {
    const [m, model] = filled(500, (k) => k);
    for (let r = 0; r < 2; r++) new Map(m);
    assert.equal(held(m as GoMap<unknown, unknown>), 500);
    m.clear();
    model.clear();
    assert.equal(held(m as GoMap<unknown, unknown>), 0);
    assertIterates(m, model, "cleared");
    m.set(1, 2);
    model.set(1, 2);
    for (let r = 0; r < 3; r++) assertIterates(m, model, `after clear and set, ${r}`);
  });

  test("keys() iterations use the copy but do not make it", () => {
    const [m] = filled(800, (k) => k);
    for (let r = 0; r < 3; r++) assert.equal([...m.keys()].length, 800);
    assert.equal(held(m as GoMap<unknown, unknown>), 0);
  });

  test("objects, byte arrays and user codecs' values are never copied: each caller gets its own", () => {
    const [m] = filled(300, (k) => (k === 150 ? { k } : k));
    for (let r = 0; r < 3; r++) new Map(m);
    assert.equal(held(m as GoMap<unknown, unknown>), 0, "an object value refuses the copy");
    const first = new Map(m).get(150) as { k: number };
    first.k = -1;
    assert.deepStrictEqual(new Map(m).get(150), { k: 150 }, "a fresh object each time");

    const bytes = new GoMap<number, Uint8Array>({ values: codecs.bytes });
    for (let k = 0; k < 50; k++) bytes.set(k, new Uint8Array([k]));
    for (let r = 0; r < 3; r++) new Map(bytes);
    assert.equal(held(bytes as GoMap<unknown, unknown>), 0);
    new Map(bytes).get(3)![0] = 99;
    assert.equal(new Map(bytes).get(3)![0], 3);

    const upper: Codec<string> = {
      name: "upper",
      encode: (v) => new TextEncoder().encode(v),
      decode: (b) => new TextDecoder().decode(b).toUpperCase(),
    };
    const user = new GoMap<number, string>({ values: upper });
    for (let k = 0; k < 50; k++) user.set(k, `v${k}`);
    for (let r = 0; r < 3; r++) assert.equal(new Map(user).get(7), "V7");
    assert.equal(held(user as GoMap<unknown, unknown>), 0, "a user codec's values");
  });

  test("a map past the copy's limits is not copied", () => {
    const [big] = filled(MAX_KEYS + 1, (k) => k);
    for (let r = 0; r < 3; r++) new Map(big);
    assert.equal(held(big as GoMap<unknown, unknown>), 0, "more keys than MAX_KEYS");
    const long = "x".repeat(4096);
    const n = Math.ceil(MAX_UNITS / long.length) + 1;
    const [wide, model] = filled(n, (k) => `${k}${long}`);
    for (let r = 0; r < 3; r++) assert.deepStrictEqual(new Map(wide), model);
    assert.equal(held(wide as GoMap<unknown, unknown>), 0, "more string units than MAX_UNITS");
  });

  test("another worker's writes between iterations are seen (RWMutex, real workers)", async () => {
    const KEYS = 600;
    await readUnderWriter(KEYS, (map, round) => {
      for (let r = 0; r < 3; r++) {
        const seen = new Set<number>();
        let n = 0;
        for (const [, v] of map) (seen.add(v), n++);
        assert.equal(n, KEYS);
        assert.deepStrictEqual([...seen], [round], `iteration ${r} under round ${round}`);
      }
      return held(map as GoMap<unknown, unknown>) === KEYS;
    });
  });
});
