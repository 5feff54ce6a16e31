// Copyright the shmap authors. MIT license.
//
// The shape of a GoMap's table, seen through stats(): Go's growth rule, presizing, incremental
// evacuation, same-size growth under churn, and memory accounting (no leaked blocks).
import { blockSize } from "../src/_engine/allocator.ts";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { GoMap } from "../mod.ts";
import { BUCKET_BYTES, bucketBytes } from "./fixtures/go_map_helpers.ts";

const LOAD_FACTOR = 6.5;

/** Go's rule: the smallest B whose 2^B buckets hold n keys at 6.5 a bucket (and any 8). */
function expectedB(n: number): number {
  let b = 0;
  while (n > 8 && n > LOAD_FACTOR * 2 ** b) b++;
  return b;
}

/** Checks the stats that must hold at any time. */
function checkShape(map: GoMap<unknown, unknown>): void {
  const s = map.stats();
  assert.equal(s.buckets, 2 ** s.B);
  assert.equal(s.count, map.size);
  assert.ok(s.overflowBuckets >= 0);
  assert.ok(s.bytesUsed <= s.bytesReserved);
  if (s.sameSizeGrow) assert.ok(s.growing, "sameSizeGrow without a growth under way");
  if (s.growing) {
    const oldBuckets = s.sameSizeGrow ? s.buckets : s.buckets / 2;
    assert.ok(s.nevacuate < oldBuckets, `nevacuate ${s.nevacuate} of ${oldBuckets} while growing`);
  }
}

describe("GoMap growth rule", () => {
  test("B after n inserts is the smallest b with n <= 8 or n <= 6.5 * 2^b, n = 0..2000", () => {
    for (const makeKey of [(i: number) => i, (i: number) => `key number ${i}`]) {
      const map = new GoMap<unknown, number>();
      assert.equal(map.stats().B, 0);
      for (let n = 1; n <= 2000; n++) {
        map.set(makeKey(n), n);
        const s = map.stats();
        assert.equal(s.B, expectedB(n), `B after ${n} inserts`);
        assert.equal(s.buckets, 2 ** s.B);
        assert.equal(s.count, n);
      }
      checkShape(map);
    }
  });

  test("B follows the rule up to 120000 keys, and overwrites never grow the table", () => {
    const map = new GoMap<number, number>();
    const checkpoints = new Set<number>();
    for (let b = 4; b <= 15; b++) {
      const edge = Math.floor(LOAD_FACTOR * 2 ** b);
      checkpoints.add(edge).add(edge + 1);
    }
    for (let n = 1; n <= 120_000; n++) {
      map.set(n * 7919, n);
      if (checkpoints.has(n)) assert.equal(map.stats().B, expectedB(n), `B after ${n} inserts`);
    }
    const { B } = map.stats();
    for (let n = 1; n <= 120_000; n += 3) map.set(n * 7919, -n);
    assert.equal(map.stats().B, B);
    assert.equal(map.size, 120_000);
    assert.equal(map.get(7919 * 3), 3);
    assert.equal(map.get(7919 * 4), -4);
  });

  test("hint presizes the bucket array: no growth until the hint is exceeded", () => {
    for (const hint of [0, 1, 8, 9, 13, 14, 26, 27, 100, 832, 833, 1000, 5000]) {
      const map = new GoMap<number, number>({ hint });
      const B = expectedB(hint);
      assert.equal(map.stats().B, B, `B for hint ${hint}`);
      assert.equal(map.stats().bytesUsed, BUCKET_BYTES * 2 ** B);
      for (let n = 1; n <= hint; n++) {
        map.set(n, n);
        if (map.stats().growing || map.stats().B !== B) {
          assert.fail(`hint ${hint}: the table grew at ${n} keys`);
        }
      }
      // The first growth comes exactly when the rule says it must.
      let n = hint;
      while (expectedB(n + 1) === B) {
        map.set(++n, n);
        assert.equal(map.stats().B, B, `hint ${hint}: grew early at ${n} keys`);
      }
      map.set(++n, n);
      assert.equal(map.stats().B, B + 1, `hint ${hint}: did not grow at ${n} keys`);
    }
  });
});

describe("GoMap incremental evacuation", () => {
  /** Inserts number keys until a doubling to 2^B buckets has just started. */
  function startGrowthTo(B: number): GoMap<number, number> {
    const map = new GoMap<number, number>();
    for (let i = 0; !(map.stats().growing && map.stats().B === B); i++) map.set(i, i);
    return map;
  }

  test("reads do not evacuate; every write evacuates at least one old bucket until done", () => {
    for (const write of ["overwrite", "delete missing", "insert"] as const) {
      const map = startGrowthTo(10);
      const oldBuckets = 512;
      const start = map.stats();
      assert.ok(start.growing && !start.sameSizeGrow);
      assert.ok(start.nevacuate < 8, `nevacuate ${start.nevacuate} right after the growth began`);
      const keys = map.size;
      for (let i = 0; i < keys; i++) assert.equal(map.get(i), i);
      for (let i = 0; i < 100; i++) map.has(-i - 1);
      [...map];
      assert.deepStrictEqual(map.stats(), start, "reads changed the table");
      let writes = 0;
      let last = start.nevacuate;
      while (map.stats().growing) {
        if (write === "overwrite") map.set(writes % keys, -1);
        else if (write === "delete missing") map.delete(-1 - writes);
        else map.set(1e6 + writes, 0);
        writes++;
        const s = map.stats();
        if (s.growing) {
          assert.ok(s.nevacuate > last, `${write}: write ${writes} did not advance nevacuate`);
          last = s.nevacuate;
        }
        checkShape(map as GoMap<unknown, unknown>);
        assert.equal(s.bytesUsed, bucketBytes(map as GoMap<unknown, unknown>), "bucket bytes");
        assert.ok(writes <= oldBuckets, `${write}: still growing after ${writes} writes`);
      }
      const done = map.stats();
      assert.equal(done.nevacuate, oldBuckets);
      assert.equal(done.B, 10);
      assert.equal(done.sameSizeGrow, false);
      // The old array is freed: only the new one and its overflow buckets remain.
      assert.equal(done.bytesUsed, BUCKET_BYTES * (1024 + done.overflowBuckets));
      for (let i = 0; i < keys; i++) {
        const expected = write === "overwrite" && i < writes ? -1 : i;
        assert.equal(map.get(i), expected, `key ${i} after ${write}`);
      }
    }
  });

  test("keys stay findable at every step of a growth, through get, has and iteration", () => {
    const map = startGrowthTo(8);
    const n = map.size;
    let step = 0;
    while (map.stats().growing) {
      map.set(n + step, n + step);
      step++;
      for (let i = 0; i < n + step; i += step % 7 === 0 ? 1 : 13) {
        if (map.get(i) !== i) assert.fail(`key ${i} lost at step ${step} of the growth`);
      }
      if (step % 16 === 0) {
        const seen = new Set(map.keys());
        assert.equal(seen.size, n + step);
      }
    }
    assert.ok(step > 0 && step <= 128);
  });
});

describe("GoMap same-size growth", () => {
  test("a sliding window of keys piles up overflow buckets and triggers same-size growth", () => {
    const WINDOW = 400;
    const map = new GoMap<number, string>({ hint: WINDOW });
    const B = map.stats().B;
    let lo = 0;
    let hi = 0;
    for (; hi < WINDOW; hi++) map.set(hi, `v${hi}`);
    let sameSizeGrowths = 0;
    let wasGrowing = false;
    let maxOverflow = 0;
    for (let ops = 0; sameSizeGrowths < 3; ops++) {
      assert.ok(ops < 300_000, `only ${sameSizeGrowths} same-size growths in ${ops} moves`);
      map.set(hi, `v${hi}`);
      hi++;
      assert.equal(map.delete(lo), true);
      lo++;
      const s = map.stats();
      maxOverflow = Math.max(maxOverflow, s.overflowBuckets);
      if (s.growing && !wasGrowing) {
        assert.equal(s.sameSizeGrow, true, "a growth that doubled: the window never grows");
        sameSizeGrowths++;
      }
      if (!s.growing && wasGrowing) {
        // Compaction leaves fewer overflow buckets than the threshold that triggered it.
        assert.ok(
          s.overflowBuckets < 2 ** B,
          `${s.overflowBuckets} overflow buckets after compaction`,
        );
        assert.equal(s.nevacuate, 2 ** B);
      }
      wasGrowing = s.growing;
      assert.equal(s.B, B);
      assert.equal(s.count, WINDOW);
      if (ops % 97 === 0) {
        assert.equal(s.bytesUsed, bucketBytes(map as GoMap<unknown, unknown>) + liveBlobBytes(map));
        for (let k = lo; k < hi; k += 5) assert.equal(map.get(k), `v${k}`);
        assert.equal(map.get(lo - 1), undefined);
      }
    }
    assert.ok(maxOverflow >= 2 ** B - 1, `overflow buckets peaked at ${maxOverflow}`);
  });

  /** Bytes of the value blobs of a map whose values are "v" + number (> 2 units, so blobs). */
  function liveBlobBytes(map: GoMap<number, string>): number {
    let bytes = 0;
    for (const [, value] of map) {
      if (value.length > 2) bytes += roundToClass(4 + 2 * value.length);
    }
    return bytes;
  }

  /** Bytes the allocator gives a block of `size` (its size class, or its heap chunk). */
  function roundToClass(size: number): number {
    return blockSize(size);
  }
});

describe("GoMap memory accounting", () => {
  test("deleting every key keeps B and frees every blob", () => {
    const map = new GoMap<unknown, unknown>();
    const empty = map.stats().bytesUsed;
    assert.equal(empty, BUCKET_BYTES, "an empty map is one bucket");
    for (let i = 0; i < 3000; i++) {
      map.set(`a long key, number ${i}`, { i, s: "x".repeat(i % 300), b: 2n ** 80n + BigInt(i) });
      map.set(2n ** 70n + BigInt(i), new Uint8Array(i % 100));
    }
    const full = map.stats();
    assert.equal(full.B, expectedB(6000));
    for (let i = 0; i < 3000; i++) {
      assert.equal(map.delete(`a long key, number ${i}`), true);
      assert.equal(map.delete(2n ** 70n + BigInt(i)), true);
    }
    const s = map.stats();
    assert.equal(s.count, 0);
    assert.equal(s.B, full.B);
    assert.equal(s.bytesUsed, bucketBytes(map), "blobs left behind after deleting every key");
    assert.deepStrictEqual([...map], []);
    map.set("again", 1);
    assert.equal(map.get("again"), 1);
  });

  test("clear() keeps B and frees everything but the bucket array, also mid-growth", () => {
    for (const stopWhen of ["settled", "doubling", "same-size"] as const) {
      const map = new GoMap<unknown, unknown>();
      let i = 0;
      if (stopWhen === "same-size") {
        for (; i < 400; i++) map.set(i, `value ${i}`);
        for (let lo = 0; !map.stats().sameSizeGrow; lo++, i++) {
          map.set(i, `value ${i}`);
          map.delete(lo);
        }
      } else {
        for (; i < 3000 || (stopWhen === "doubling" && !map.stats().growing); i++) {
          map.set(i, i % 2 ? `value ${i}` : { i });
        }
      }
      const before = map.stats();
      assert.equal(before.growing, stopWhen !== "settled", `${stopWhen}: growing`);
      map.clear();
      const s = map.stats();
      assert.equal(s.count, 0);
      assert.equal(s.B, before.B, `${stopWhen}: clear changed B`);
      assert.equal(s.growing, false);
      assert.equal(s.sameSizeGrow, false);
      assert.equal(s.overflowBuckets, 0);
      assert.equal(s.bytesUsed, BUCKET_BYTES * 2 ** s.B, `${stopWhen}: bytes after clear`);
      assert.deepStrictEqual([...map], []);
      assert.equal(map.get(1), undefined);
      // Usable afterwards, and refilling it does not grow it.
      for (let j = 0; j < before.count; j++) map.set(j, j);
      assert.equal(map.stats().B, before.B);
      assert.equal(map.get(before.count - 1), before.count - 1);
    }
  });

  test("bytesUsed is stable across rounds of setting and deleting the same keys", () => {
    const map = new GoMap<unknown, unknown>();
    const keys = Array.from(
      { length: 200 },
      (_, i) => (i % 2 ? `key ${i} `.repeat(3) : 2n ** 65n * BigInt(i)),
    );
    const value = (i: number, round: number): unknown =>
      [
        "s".repeat(50 + (i % 50)),
        { round, list: [i, "x".repeat(i % 40)] },
        new Uint8Array(i % 64),
        -(2n ** 90n) - BigInt(i),
      ][(i + round) % 4];
    let baseline = -1;
    let live = -1;
    for (let round = 0; round < 60; round++) {
      keys.forEach((k, i) => map.set(k, value(i, round)));
      const full = map.stats().bytesUsed;
      // Rounds differ in which value each key holds; after the first four, they repeat.
      if (round === 4) live = full;
      if (round > 4 && round % 4 === 0) assert.equal(full, live, `round ${round}: live bytes`);
      keys.forEach((k) => assert.equal(map.delete(k), true));
      const empty = map.stats().bytesUsed;
      if (round === 0) baseline = empty;
      else assert.equal(empty, baseline, `round ${round}: bytes after deleting everything`);
    }
    assert.equal(baseline, bucketBytes(map));
  });

  test("overwriting a blob value many times leaks nothing", () => {
    const map = new GoMap<string, unknown>();
    map.set("other", "o".repeat(500));
    const base = map.stats().bytesUsed;
    map.set("k", "v".repeat(1000));
    const withOne = map.stats().bytesUsed;
    assert.ok(withOne > base);
    for (let i = 0; i < 5000; i++) {
      const v = i % 3 === 0
        ? "w".repeat(i % 2000)
        : i % 3 === 1
        ? { i, a: new Uint8Array(i % 700) }
        : 2n ** BigInt(i % 500);
      map.set("k", v);
      if (i % 500 === 0) assert.deepStrictEqual(map.get("k"), v);
    }
    map.set("k", "v".repeat(1000));
    assert.equal(map.stats().bytesUsed, withOne);
    map.set("k", 1);
    assert.equal(map.stats().bytesUsed, base);
    assert.equal(map.delete("k"), true);
    assert.equal(map.stats().bytesUsed, base);
    assert.equal(map.get("other"), "o".repeat(500));
  });
});
