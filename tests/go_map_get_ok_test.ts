// Copyright the shmap authors. MIT license.
//
// GoMap.getOk: Go's `value, ok := m[key]`, telling a stored undefined from a missing key, on
// every path a key can be found (inline and blob keys, numbers, after deletes and growth).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { codecs, GoMap } from "../mod.ts";

describe("GoMap.getOk", () => {
  test("tells a stored undefined from a missing key", () => {
    const m = new GoMap<unknown, unknown>();
    assert.deepEqual(m.getOk("k"), [undefined, false]);
    m.set("k", undefined).set(1, undefined).set("long key ".repeat(20), undefined);
    assert.equal(m.get("k"), undefined, "get cannot tell");
    assert.deepEqual(m.getOk("k"), [undefined, true]);
    assert.deepEqual(m.getOk(1), [undefined, true]);
    assert.deepEqual(m.getOk("long key ".repeat(20)), [undefined, true]);
    assert.deepEqual(m.getOk(2), [undefined, false]);
    m.set("v", { a: [1n, null] });
    assert.deepEqual(m.getOk("v"), [{ a: [1n, null] }, true]);
    assert.equal(m.delete("k"), true);
    assert.deepEqual(m.getOk("k"), [undefined, false], "deleted");
    assert.deepEqual(m.getOk(NaN), [undefined, false]);
    m.set(NaN, null);
    assert.deepEqual(m.getOk(Number("x")), [null, true], "NaN is one key");
    m.clear();
    assert.deepEqual(m.getOk(1), [undefined, false], "cleared");
  });

  test("agrees with has and get across growth and deletes", () => {
    const m = new GoMap<number, number | undefined>({ keys: codecs.int32 });
    for (let i = 0; i < 2000; i++) m.set(i, i % 3 === 0 ? undefined : i);
    for (let i = 0; i < 2000; i += 2) m.delete(i);
    for (let i = -5; i < 2005; i++) {
      const ok = i >= 0 && i < 2000 && i % 2 === 1;
      assert.deepEqual(m.getOk(i), [ok && i % 3 !== 0 ? i : undefined, ok], `key ${i}`);
      assert.equal(m.has(i), ok);
    }
  });

  test("a bad key is refused: a TypeError, or a RangeError for an int32 out of range", () => {
    const m = new GoMap<number, number>({ keys: codecs.int32 });
    assert.throws(() => m.getOk(1.5), RangeError);
    assert.throws(() => m.getOk("1" as unknown as number), TypeError);
    assert.throws(() => new GoMap().getOk(Symbol() as unknown), TypeError);
  });
});
