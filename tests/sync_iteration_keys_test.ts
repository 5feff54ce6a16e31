// Copyright the shmap authors. MIT license.
//
// A SyncMap handle's iteration keys (src/maps/_iteration_keys.ts): from its second iteration of
// one read table, a handle reads each partition's keys and entry offsets from its own copy. The
// copy must be used only while that table is the read table: a batch read after the table was
// replaced (a promotion between two next() calls) that trusted the copy would read entries the
// replacement dropped, freed and handed to other keys. Values are always read anew, deleted keys
// skipped, and keys that decode to objects (Uint8Array) or through user code never copied.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Codec, codecs, SyncMap } from "../mod.ts";
import { MAX_UNITS } from "../src/maps/_iteration_keys.ts";
import { iterationKeysOf } from "../src/maps/sync_map.ts";

/** A map of keys 0..n-1 to key*10, promoted and iterated twice (so its copy is made). */
function copied(n: number): SyncMap<number, number> {
  const m = new SyncMap<number, number>();
  for (let k = 0; k < n; k++) m.store(k, k * 10);
  promote(m, 0, n);
  for (let r = 0; r < 2; r++) {
    let seen = 0;
    m.range(() => void seen++);
    assert.equal(seen, n);
  }
  return m;
}

/** Loads keys from..to-1 until the dirty table is promoted (Go's misses rule). */
function promote(m: SyncMap<number, number>, from: number, to: number): void {
  for (let r = 0; r < 3; r++) for (let k = from; k < to; k++) m.load(k);
}

describe("SyncMap iteration keys", () => {
  test("an iteration of a copied read table reads values anew and skips deleted keys", () => {
    const n = 3000;
    const m = copied(n);
    for (let k = 0; k < n; k++) m.store(k, k * 10 + 1); // overwrites: the read table stays
    for (let k = 0; k < n; k += 3) m.delete(k);
    const want = new Map<number, number>();
    for (let k = 0; k < n; k++) if (k % 3 !== 0) want.set(k, k * 10 + 1);
    for (const got of [new Map<number, number>(), new Map<number, number>()]) {
      m.range((k, v) => void got.set(k, v));
      assert.deepStrictEqual(got, want);
    }
    assert.deepStrictEqual(new Map(m.entries()), want);
    assert.deepStrictEqual(new Set(m.keys()), new Set(want.keys()));
    assert.deepStrictEqual([...m.values()].sort((a, b) => a - b), [...want.values()]);
    m.verify();
  });

  test("a batch read after the read table was replaced does not use the copy", () => {
    const n = 4096;
    for (let trial = 0; trial < 4; trial++) {
      const m = copied(n);
      const it = m.entries();
      const first = it.next();
      assert.equal(first.done, false);
      const seen = new Map<number, number>([first.value as [number, number]]);
      // Between two batches: delete the even keys, add new ones, promote (the even keys'
      // entries leave the read table and are freed), then reuse their blocks.
      for (let k = 0; k < n; k += 2) m.delete(k);
      for (let k = n; k < 2 * n; k++) m.store(k, k * 10);
      promote(m, n, 2 * n);
      for (let round = 0; round < 4; round++) {
        for (let k = 2 * n; k < 3 * n; k++) m.store(k, k * 10);
        promote(m, 2 * n, 3 * n);
        for (let k = 2 * n; k < 3 * n; k++) m.delete(k);
        promote(m, 2 * n, 3 * n);
      }
      for (let r = it.next(); !r.done; r = it.next()) {
        const [k, v] = r.value as [number, number];
        assert.ok(!seen.has(k), `key ${k} yielded twice`);
        assert.equal(v, k * 10, `key ${k} yielded with another key's value`);
        seen.set(k, v);
      }
      // Keys present throughout are yielded; deleted ones only if their batch came first.
      for (let k = 1; k < n; k += 2) assert.ok(seen.has(k), `key ${k} was present throughout`);
      for (const k of seen.keys()) {
        assert.ok(k < 2 * n, `key ${k} was never present during the iteration`);
      }
      m.verify();
    }
  });

  test("the copy follows a read table replaced between two iterations", () => {
    const n = 2000;
    const m = copied(n);
    for (let k = n; k < n + 500; k++) m.store(k, k * 10);
    promote(m, n, n + 500);
    for (let k = 0; k < 100; k++) m.delete(k);
    for (let r = 0; r < 3; r++) {
      const got = new Map<number, number>();
      m.range((k, v) => void got.set(k, v));
      assert.equal(got.size, n + 400);
      for (const [k, v] of got) assert.equal(v, k * 10);
    }
  });

  test("Uint8Array keys (codecs.bytes) are decoded anew for every iteration", () => {
    const m = new SyncMap<Uint8Array, number>({ keys: codecs.bytes });
    for (let k = 0; k < 600; k++) m.store(new Uint8Array([k & 255, k >> 8]), k);
    for (let r = 0; r < 3; r++) {
      let count = 0;
      m.range((key, v) => {
        assert.equal(key[0] | (key[1] << 8), v, "a key changed by an earlier iteration's caller");
        key[0] ^= 0xff; // the caller's own copy
        count++;
      });
      assert.equal(count, 600);
    }
  });

  test("string keys and a user key codec iterate the same as number keys", () => {
    const codec: Codec<string> = {
      name: "utf8",
      encode: (s) => new TextEncoder().encode(s),
      decode: (b) => new TextDecoder().decode(b),
    };
    for (const m of [new SyncMap<string, number>(), new SyncMap<string, number>({ keys: codec })]) {
      for (let k = 0; k < 1500; k++) m.store(`key-${k}`, k);
      for (let r = 0; r < 3; r++) {
        if (r === 2) { for (let k = 0; k < 1500; k += 2) m.delete(`key-${k}`); }
        const got = new Map(m.entries());
        assert.equal(got.size, r === 2 ? 750 : 1500);
        for (const [k, v] of got) assert.equal(k, `key-${v}`);
      }
    }
  });

  test("the copy is filled as batches read it, from the second iteration under one table", () => {
    const n = 3000;
    const m = new SyncMap<number, number>();
    for (let k = 0; k < n; k++) m.store(k, k);
    promote(m, 0, n);
    const copy = iterationKeysOf(m);
    m.range(() => {});
    assert.equal(copy.held, 0, "the first iteration only notes the table");
    m.keys().next(); // a peek: one batch
    assert.ok(copy.held > 0 && copy.held < n / 4, `a peek filled ${copy.held} keys`);
    m.range(() => {});
    assert.equal(copy.held, n);
    m.clear();
    assert.equal(copy.held, 0, "clear() drops the copy");
    for (let k = 0; k < n; k++) m.store(k, k);
    promote(m, 0, n);
    m.range(() => {});
    m.range(() => {});
    assert.equal(copy.held, n);
    m.close();
    assert.equal(copy.held, 0, "close() drops the copy");
  });

  test("keys longer in all than the copy's bound are not copied", () => {
    const m = new SyncMap<string, number>();
    const n = 600;
    const long = "x".repeat(Math.ceil(MAX_UNITS / n) + 1);
    for (let k = 0; k < n; k++) m.store(`${k}:${long}`, k);
    for (let r = 0; r < 3; r++) {
      let count = 0;
      m.range((key, v) => {
        assert.equal(key, `${v}:${long}`);
        count++;
      });
      assert.equal(count, n);
      assert.equal(iterationKeysOf(m).held, 0, `round ${r}: the copy held long keys`);
    }
    m.verify();
  });
});
