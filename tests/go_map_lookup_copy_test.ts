// Copyright the shmap authors. MIT license.
//
// A GoMap handle's lookup copy (src/maps/_go_hits.ts): once enough lookups have been validated at
// one version of the map (SEQ, WRAPS), a handle keeps what its get and getOk calls found, a value
// or the key's absence, in a native Map, and answers from it while SEQ still reads that version.
// The copy must never answer after a write: by this handle, by another handle of the buffer, or
// by another worker. Each test compares every answer with a plain Map, and checks that the copy
// was made (or, where it must not be, that it was not), so that a copy that is never used, or
// used past its version, fails.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { type Codec, codecs, GoMap } from "../mod.ts";
import { MAX_ABSENT, MAX_HELD, MAX_WARMUP, MIN_WARMUP } from "../src/maps/_go_hits.ts";
import { hitsOf } from "../src/maps/go_map.ts";
import { MAX_UNITS } from "../src/maps/_iteration_keys.ts";
import { LAST_SEQ, SEQ, SEQ_BEFORE_WRAP, WRAPS } from "../src/maps/_go_layout.ts";
import { readUnderWriter } from "./fixtures/read_under_writer.ts";

const held = (m: GoMap<unknown, unknown>): number => {
  const h = hitsOf(m);
  return h.seq === 1 ? 0 : h.held.size;
};

/** Looks each of `keys` up `times` times with get, checking each answer against `model`. */
function readAll<K, V>(m: GoMap<K, V>, model: Map<K, V>, keys: K[], times: number, what: string) {
  for (let t = 0; t < times; t++) {
    for (const k of keys) {
      assert.equal(m.get(k), model.get(k), `${what}: get(${String(k)}), pass ${t}`);
      const [value, ok] = m.getOk(k);
      assert.equal(ok, model.has(k), `${what}: getOk(${String(k)}) ok, pass ${t}`);
      assert.equal(value, model.get(k), `${what}: getOk(${String(k)}) value, pass ${t}`);
      assert.equal(m.has(k), model.has(k), `${what}: has(${String(k)}), pass ${t}`);
    }
  }
}

/** A map of `keys` to `value(k)`, and its model. */
function filled<K, V>(
  keys: K[],
  value: (k: K) => V,
  m = new GoMap<K, V>(),
): [GoMap<K, V>, Map<K, V>] {
  const model = new Map<K, V>();
  for (const k of keys) {
    m.set(k, value(k));
    model.set(k, value(k));
  }
  return [m, model];
}

const ints = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

describe("GoMap lookup copy", () => {
  test("number and string keys, present and absent, are answered from the copy once warm", () => {
    for (const keys of [ints(200), ints(200).map((k) => `key-${k}`)] as (number | string)[][]) {
      const [m, model] = filled<number | string, number | string | boolean | null>(
        keys,
        (k) =>
          typeof k === "number" ? (k % 3 === 0 ? k / 4 : k % 3 === 1 ? `s${k}` : k === 2) : null,
      );
      const absent = typeof keys[0] === "number"
        ? ints(50, 10_000)
        : ints(50).map((k) => `no-${k}`);
      const all = [...keys, ...absent];
      readAll(m, model, all, 1, "cold");
      const g = m as GoMap<unknown, unknown>;
      assert.ok(held(g) > 0, `${typeof keys[0]} keys: the copy is made`);
      readAll(m, model, all, 2, "warm");
      assert.equal(held(g), all.length, "every key, present or absent, is held");
      const before = hitsOf(g).answered;
      readAll(m, model, all, 1, "from the copy");
      assert.ok(hitsOf(g).answered >= 2 * all.length, "get and getOk are answered from it");
      assert.ok(before < hitsOf(g).answered);
      m.verify();
    }
  });

  test("a write by this handle moves the version: nothing held before is answered after", () => {
    const n = 300;
    const [m, model] = filled(ints(n), (k) => k);
    const all = [...ints(n), ...ints(20, 5_000)];
    const writes: [string, () => void][] = [
      ["an overwrite with a number", () => (m.set(5, -5), model.set(5, -5))],
      [
        "an overwrite with a string",
        () => (m.set(6, "six" as never), model.set(6, "six" as never)),
      ],
      ["a delete", () => (m.delete(7), model.delete(7))],
      ["a new key that was looked up absent", () => (m.set(5_003, 1), model.set(5_003, 1))],
      ["a set of the value it held", () => m.set(8, model.get(8)!)],
      ["a delete of an absent key", () => m.delete(123_456)],
      ["growth", () => {
        for (let k = 10_000; k < 10_000 + 4 * n; k++) (m.set(k, k), model.set(k, k));
      }],
      [
        "a stored undefined",
        () => (m.set(9, undefined as never), model.set(9, undefined as never)),
      ],
    ];
    for (const [what, write] of writes) {
      readAll(m, model, all, 3, `before ${what}`);
      assert.ok(held(m as GoMap<unknown, unknown>) > 0, `the copy is made before ${what}`);
      write();
      readAll(m, model, all, 3, `after ${what}`);
    }
    // A stored undefined is a value: getOk tells it from an absent key, every time.
    for (let t = 0; t < MAX_WARMUP; t++) assert.deepStrictEqual(m.getOk(9), [undefined, true]);
    m.verify();
  });

  test("a write through another handle of the buffer, or a clear, is seen", () => {
    const n = 400;
    const [m, model] = filled(ints(n), (k) => k * 2);
    const other = GoMap.attach<number, number>(m.handle);
    for (let round = 0; round < 30; round++) {
      readAll(m, model, ints(n + 10), 2, `round ${round}`);
      assert.ok(held(m as GoMap<unknown, unknown>) > 0, `round ${round}: the copy is made`);
      const k = (round * 97) % (n + 10);
      if (round % 3 === 0) (other.delete(k), model.delete(k));
      else (other.set(k, round), model.set(k, round));
    }
    readAll(m, model, ints(n), 2, "before clear");
    other.clear();
    model.clear();
    readAll(m, model, ints(n), 2, "after another handle's clear");
    m.set(1, 2);
    model.set(1, 2);
    readAll(m, model, ints(n), 2, "after clear and set");
    m.clear();
    model.clear();
    assert.equal(held(m as GoMap<unknown, unknown>), 0, "this handle's clear drops its copy");
    readAll(m, model, ints(n), 2, "after this handle's clear");
  });

  test("a copy made at (S, WRAPS) does not answer when SEQ comes round to S: WRAPS moved", () => {
    // 2^31 writes bring SEQ back to any version; the pair (SEQ, WRAPS) never comes again. The
    // map is poked to the version before 0 (as those writes would leave it), a write deletes a
    // key and moves WRAPS, and writes of new keys bring SEQ back to the version the reader's
    // copy was made at. Number keys (GoMap.get's own check) and string keys (GoHits.answer).
    for (const keys of [ints(40), ints(40).map((k) => `key-${k}`)] as (number | string)[][]) {
      const [w, model] = filled<number | string, number>(keys, (k) => String(k).length);
      const r = GoMap.attach<number | string, number>(w.handle);
      const all = [...keys, typeof keys[0] === "number" ? 9_999 : "absent"];
      readAll(r, model, all, MAX_WARMUP / all.length + 2, `${typeof keys[0]} keys: warm`);
      assert.ok(held(r as GoMap<unknown, unknown>) > 0, "the copy is made");
      const i32 = new Int32Array(w.handle.buffer);
      const S = i32[SEQ];
      Atomics.store(i32, SEQ, SEQ_BEFORE_WRAP);
      i32[LAST_SEQ] = SEQ_BEFORE_WRAP - 2;
      w.delete(keys[3]);
      model.delete(keys[3]);
      assert.equal(i32[WRAPS], 1, "the write that wrapped moved WRAPS");
      for (let j = 0; i32[SEQ] !== S; j++) {
        assert.ok(j < 1000, "SEQ comes back to S");
        const k = typeof keys[0] === "number" ? 100_000 + j : `new-${j}`;
        w.set(k, 1);
        model.set(k, 1);
      }
      assert.equal(r.get(keys[3]), undefined, "the deleted key, looked up at (S, 1)");
      assert.equal(r.has(keys[3]), false);
      readAll(r, model, all, 2, `${typeof keys[0]} keys: at (S, 1)`);
      w.verify();
    }
  });

  test("objects, byte arrays and user codecs' values are never held: each caller gets its own", () => {
    const [m] = filled(ints(100), (k) => (k % 2 === 0 ? { k } : [k]));
    for (let t = 0; t < 3 * MIN_WARMUP; t++) for (let k = 0; k < 100; k++) m.get(k);
    assert.equal(held(m as GoMap<unknown, unknown>), 0, "object values");
    (m.get(4) as { k: number }).k = -1;
    assert.deepStrictEqual(m.get(4), { k: 4 }, "a fresh object each time");

    const bytes = new GoMap<number, Uint8Array>({ values: codecs.bytes });
    for (let k = 0; k < 50; k++) bytes.set(k, new Uint8Array([k]));
    for (let t = 0; t < 3 * MIN_WARMUP; t++) for (let k = 0; k < 50; k++) bytes.get(k);
    assert.equal(held(bytes as GoMap<unknown, unknown>), 0, "byte values");
    bytes.get(3)![0] = 99;
    assert.equal(bytes.get(3)![0], 3);

    let decodes = 0;
    const upper: Codec<string> = {
      name: "upper",
      encode: (v) => new TextEncoder().encode(v),
      decode: (b) => (decodes++, new TextDecoder().decode(b).toUpperCase()),
    };
    const user = new GoMap<number, string>({ values: upper });
    for (let k = 0; k < 50; k++) user.set(k, `v${k}`);
    for (let t = 0; t < 3 * MIN_WARMUP; t++) assert.equal(user.get(7), "V7");
    assert.equal(decodes, 3 * MIN_WARMUP, "a user codec decodes every get");
    assert.equal(held(user as GoMap<unknown, unknown>), 0, "a user codec's values");
  });

  test("keys compare as the map's codec compares them; a key it refuses is still refused", () => {
    const m = new GoMap<number | string, number>();
    m.set(0, 10).set(NaN, 11).set("1", 12);
    for (let t = 0; t < 3 * MIN_WARMUP; t++) {
      assert.equal(m.get(-0), 10, "-0 is 0");
      assert.equal(m.get(NaN), 11, "NaN is NaN (SameValueZero)");
      assert.equal(m.get(1), undefined, '1 is not "1"');
      assert.equal(m.get("1"), 12);
    }
    assert.ok(held(m as GoMap<unknown, unknown>) > 0);

    const i32 = new GoMap<number, number>({ keys: codecs.int32 });
    for (let k = 0; k < 20; k++) i32.set(k, k);
    for (let t = 0; t < 3 * MIN_WARMUP; t++) for (let k = 0; k < 20; k++) i32.get(k);
    assert.throws(() => i32.get(1.5), RangeError, "an int32 map still refuses 1.5");
    assert.equal(held(i32 as GoMap<unknown, unknown>), 0, "no copy for keys a codec encodes");

    const s = new GoMap<string, number>({ keys: codecs.string });
    for (let k = 0; k < 20; k++) s.set(`k${k}`, k);
    for (let t = 0; t < 3 * MIN_WARMUP; t++) for (let k = 0; k < 20; k++) s.get(`k${k}`);
    assert.ok(held(s as GoMap<unknown, unknown>) > 0, "string codec keys are held");
    assert.throws(() => s.get(1 as never), TypeError, "a string map still refuses a number");
  });

  test("the copy holds at most MAX_HELD keys and MAX_UNITS string units; past them, lookups go the usual way", () => {
    const n = MAX_HELD + 500;
    const [m, model] = filled(ints(n), (k) => k);
    readAll(m, model, ints(n), 2, "past the limit");
    assert.equal(held(m as GoMap<unknown, unknown>), MAX_HELD);
    const long = "x".repeat(4096);
    const [wide, wideModel] = filled(ints(400), (k) => `${k}${long}`);
    readAll(wide, wideModel, ints(400), 3, "long strings");
    const h = held(wide as GoMap<unknown, unknown>);
    assert.ok(h > 0 && h <= MAX_UNITS / long.length, `${h} long strings held`);
  });

  test("keys each new to the map: at most MAX_ABSENT held absent, and a copy that has not paid is dropped", () => {
    const [m, model] = filled(ints(1024), (k) => k);
    const g = m as GoMap<unknown, unknown>;
    // Ids checked once each, as a dedup check makes them: none of them is asked again.
    let next = 1_000_000;
    const newKeys = (map: GoMap<unknown, unknown>, key: () => unknown, what: string) => {
      let most = 0;
      let drops = 0;
      for (let i = 0; i < 8 * (MAX_WARMUP + MAX_ABSENT); i++) {
        const before = held(map);
        assert.equal(map.get(key()), undefined);
        const now = held(map);
        if (now < before) drops++;
        if (now > most) most = now;
      }
      assert.ok(most <= MAX_ABSENT, `${what}: ${most} absent keys held`);
      // Dropped once, and then no absent key taken at this version: no fill, no Map.get.
      assert.equal(drops, 1, `${what}: the copy was dropped ${drops} times`);
      assert.equal(held(map), 0, `${what}: held after the drop`);
    };
    // Present keys asked after it: their answers go in at once, the absent keys' lookups having
    // counted the warmup down (GoHits.offer counts them before it turns them away).
    const presentKeys = (map: GoMap<unknown, unknown>, keys: unknown[], what: string) => {
      for (const k of keys) assert.equal(map.get(k), k);
      assert.equal(held(map), keys.length, `${what}: present keys held after the drop`);
    };
    newKeys(g, () => next++, "first version");
    presentKeys(g, ints(10), "first version");
    // A write, a new version: the copy judges again, and takes absent keys after its warmup.
    m.set(0, 0);
    assert.equal(m.get(0), 0); // the first lookup at the new version drops the present keys
    newKeys(g, () => next++, "after a write");
    // String keys take GoHits.offer for every lookup (number keys count the warmup down inline).
    const [s] = filled(ints(1024).map((k) => `k${k}`), (k) => k);
    const gs = s as GoMap<unknown, unknown>;
    newKeys(gs, () => `new ${next++}`, "string keys");
    presentKeys(gs, ints(10).map((k) => `k${k}`), "string keys");
    // A hot set with new keys among its lookups: the copy pays, so it stays, full of absent
    // keys, and answers the hot set.
    const [hot, hotModel] = filled(ints(100), (k) => k);
    const h = hot as GoMap<unknown, unknown>;
    for (let i = 0; i < 4 * (MAX_WARMUP + MAX_ABSENT); i++) {
      assert.equal(hot.get(i % 100), hotModel.get(i % 100));
      if (i % 4 === 0) assert.equal(hot.get(next++), undefined);
    }
    assert.equal(held(h), 100 + MAX_ABSENT, "the hot set and MAX_ABSENT absent keys");
    const answered = hitsOf(h).answered;
    for (let k = 0; k < 100; k++) assert.equal(hot.get(k), k);
    assert.equal(hitsOf(h).answered, answered + 100, "the hot set is answered from the copy");
    readAll(m, model, ints(1100), 1, "after the new keys");
  });

  test("one value too long to hold leaves room for the rest; a long key is not held", () => {
    const [m, model] = filled(ints(500).map((k) => `k${k}`), (k) => `v${k}`);
    const big = "x".repeat(MAX_UNITS + 1);
    m.set("big", big);
    model.set("big", big);
    const longKey = "L".repeat(300);
    m.set(longKey, "long");
    model.set(longKey, "long");
    const keys = [...model.keys()];
    readAll(m, model, keys, 3, "with a value past MAX_UNITS");
    const h = hitsOf(m as GoMap<unknown, unknown>);
    assert.equal(held(m as GoMap<unknown, unknown>), 500, "every key but the two");
    assert.equal(h.held.get("big"), undefined);
    assert.equal(h.held.get(longKey), undefined);
  });

  test("user code in a patched Map.prototype.set or get never runs inside the copy", () => {
    const m = new GoMap<number, number>();
    for (let k = 0; k < 10; k++) m.set(k, k);
    const h = hitsOf(m as GoMap<unknown, unknown>);
    const { get, set } = Map.prototype;
    let ran = 0;
    // What a patched set would do (review of 8740489): write the map and look it up again from
    // inside the copy's fill, so that the outer fill stores 0 for key 0 at the new version.
    Map.prototype.set = function (this: Map<unknown, unknown>, k: unknown, v: unknown) {
      if (this === (h.held as unknown)) {
        ran++;
        Map.prototype.set = set;
        m.set(0, 1000);
        for (let i = 0; i < 200; i++) m.get(5);
      }
      return set.call(this, k, v);
    };
    Map.prototype.get = function (this: Map<unknown, unknown>, k: unknown) {
      if (this === (h.held as unknown)) ran++;
      return get.call(this, k);
    };
    try {
      for (let i = 0; i < 3 * MIN_WARMUP; i++) for (let k = 0; k < 10; k++) m.get(k);
    } finally {
      Map.prototype.set = set;
      Map.prototype.get = get;
    }
    assert.equal(ran, 0, "the copy called the patched methods");
    assert.ok(held(m as GoMap<unknown, unknown>) > 0);
    for (let k = 0; k < 10; k++) assert.equal(m.get(k), k);
  });

  test("a copy that does not pay makes the next wait longer; one that pays shortens it", () => {
    const n = 1024;
    const [m, model] = filled(ints(n), (k) => k);
    const g = m as GoMap<unknown, unknown>;
    // A write every 100 lookups of distinct keys: each copy answers almost nothing.
    let fills = 0;
    for (let round = 0; round < 20; round++) {
      for (let j = 0; j < 100; j++) m.get((round * 100 + j) % n);
      fills += held(g);
      m.set(round % n, round);
      model.set(round % n, round);
    }
    assert.ok(
      fills < 3 * (100 - MIN_WARMUP),
      `the copy stopped filling (${fills} keys held in all)`,
    );
    // Then a map nobody writes: the copy fills again, within MAX_WARMUP lookups.
    readAll(m, model, ints(n), Math.ceil(MAX_WARMUP / n) + 2, "read-mostly again");
    assert.equal(held(g), n);
  });

  test("any sequence of calls through two handles answers as a Map does (fast-check)", () => {
    const key = fc.oneof(
      fc.integer({ min: -3, max: 12 }),
      fc.constantFrom("a", "b", "c", -0, NaN, 0.5),
    );
    const value = fc.oneof(
      fc.integer(),
      fc.string({ maxLength: 3 }),
      fc.constant(undefined),
      fc.constant({}),
    );
    const command = fc.oneof(
      fc.record({ op: fc.constant("read" as const), by: fc.nat(1), key }),
      fc.record({ op: fc.constant("set" as const), by: fc.nat(1), key, value }),
      fc.record({ op: fc.constant("delete" as const), by: fc.nat(1), key }),
      fc.record({ op: fc.constant("clear" as const), by: fc.nat(1) }),
    );
    fc.assert(
      fc.property(fc.array(command, { maxLength: 60 }), (commands) => {
        const a = new GoMap<unknown, unknown>();
        const handles = [a, GoMap.attach<unknown, unknown>(a.handle)];
        const model = new Map<unknown, unknown>();
        for (const c of commands) {
          const m = handles[c.by];
          if (c.op === "set") (m.set(c.key, c.value), model.set(c.key, c.value));
          else if (c.op === "delete") assert.equal(m.delete(c.key), model.delete(c.key));
          else if (c.op === "clear") (m.clear(), model.clear());
          else {
            // Enough lookups of the key to pass the warmup, so that the copy answers the last.
            for (let t = 0; t < MIN_WARMUP + 2; t++) {
              assert.deepStrictEqual(m.get(c.key), model.get(c.key));
              assert.deepStrictEqual(m.getOk(c.key), [model.get(c.key), model.has(c.key)]);
              assert.equal(m.has(c.key), model.has(c.key));
            }
          }
        }
        for (const m of handles) {
          for (const k of [...model.keys(), "zz", 99]) {
            assert.deepStrictEqual(m.getOk(k), [model.get(k), model.has(k)]);
          }
        }
        a.verify();
      }),
      { numRuns: 150 },
    );
  });

  test("another worker's writes are seen by a reader whose copy is warm (RWMutex, real workers)", async () => {
    const KEYS = 300;
    await readUnderWriter(KEYS, (map, round) => {
      for (let t = 0; t < 4; t++) {
        for (let k = 0; k < KEYS; k++) {
          const v = map.get(k);
          if (v !== round) assert.fail(`get(${k}) = ${v} under round ${round}, pass ${t}`);
        }
      }
      return held(map as GoMap<unknown, unknown>) > 0;
    });
  });
});
