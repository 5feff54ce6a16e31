// Copyright the shmap authors. MIT license.
//
// The entry memo (src/maps/_entry_memo.ts): a handle's number-key lookups answered from
// what it found in the same read table before. Unit tests of the memo's rules, then a model test
// that runs random operations through two handles of one map, one of them warmed up so that its
// memo is on, while promotions replace the read table under it: a memo that kept an entry of an
// older read table (a table's serial not moving, or a slot of an older generation matching)
// answers with a deleted or moved key's old entry, and the model catches it.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { SyncMap } from "../mod.ts";
import {
  EntryMemo,
  MEMO_NOT_ASKED,
  MEMO_UNKNOWN,
  type MemoViews,
  slotsFor,
  WARMUP,
} from "../src/maps/_entry_memo.ts";
import { T_COUNT } from "../src/_engine/table_layout.ts";
import { R_DIRTY, R_READ, R_SERIAL, T_SERIAL } from "../src/maps/_sync_layout.ts";
import { atomicsCalls } from "./fixtures/atomics_calls.ts";

/** The word at which {@linkcode header} puts a table's header, and the read word naming it. */
const HW = 4;
const READ = 4 * HW;

/**
 * Views holding a table header's words as the memo reads them, at word {@linkcode HW}: serial
 * (lo, hi) and a count of keys. EntryMemo.find takes the read word {@linkcode READ}.
 */
function header(serialLo: number, serialHi: number, keys = 16): MemoViews {
  const i32 = new Int32Array(HW + T_SERIAL + 2);
  i32[HW + T_COUNT] = keys;
  i32[HW + T_SERIAL] = serialLo;
  i32[HW + T_SERIAL + 1] = serialHi;
  return { i32, bytes: i32.byteLength };
}

/** A memo past its warm-up. */
function warmMemo(): EntryMemo {
  const memo = new EntryMemo();
  for (let i = 0; i < WARMUP; i++) assert.equal(memo.find(1, 2, header(1, 0), READ), -1);
  assert.equal(memo.on, true);
  return memo;
}

describe("EntryMemo", () => {
  test("knows nothing until its warm-up is over", () => {
    const memo = new EntryMemo();
    memo.remember(7, 0, 64);
    assert.equal(memo.find(7, 0, header(1, 0), READ), -1);
    assert.equal(memo.on, false);
    assert.equal(memo.slots, 0, "no table made");
  });

  test("answers for the read table it was filled under, absent keys included", () => {
    const memo = warmMemo();
    const t = header(5, 0);
    assert.equal(memo.find(7, 0, t, READ), -1);
    memo.remember(7, 0, 64);
    assert.equal(memo.find(8, 0, t, READ), -1);
    memo.remember(8, 0, 0);
    assert.equal(memo.find(7, 0, t, READ), 64);
    assert.equal(memo.find(8, 0, t, READ), 0, "absent, as remembered");
    assert.equal(memo.find(7, 1, t, READ), -1, "other words");
  });

  test("forgets everything when the serial moves, and does not take an old one back", () => {
    const memo = warmMemo();
    assert.equal(memo.find(7, 0, header(5, 0), READ), -1);
    memo.remember(7, 0, 64);
    const gen = memo.generation(header(5, 0).i32, HW);
    assert.equal(memo.find(7, 0, header(6, 0), READ), -1, "a new read table");
    assert.equal(memo.find(7, 0, header(5, 0), READ), -1, "the old serial again: a new generation");
    assert.equal(memo.find(7, 0, header(5, 1), READ), -1, "the serial's high word counts too");
    assert.ok(memo.generation(header(5, 1).i32, HW) > gen, "generations only go up");
  });

  test("keeps two keys of one bucket, and a third in the second slot", () => {
    // The memo's bucket of key words (k, 0) in a table of 64 slots, 32 buckets of two: the top
    // five bits of the product with 2^32 over the golden ratio (white-box: _entry_memo.ts).
    const bucket = (k: number) => Math.imul(k, 0x9e3779b1) >>> 27;
    const [a, b, c] = Array.from({ length: 200 }, (_, k) => k + 1)
      .filter((k) => bucket(k) === bucket(1));
    assert.ok(c !== undefined, "three keys of one bucket");
    const memo = warmMemo();
    const t = header(5, 0);
    assert.equal(memo.find(a, 0, t, READ), -1);
    assert.equal(memo.slots, 64);
    memo.remember(a, 0, 8);
    memo.remember(b, 0, 16);
    assert.equal(memo.find(a, 0, t, READ), 8, "the first slot");
    assert.equal(memo.find(b, 0, t, READ), 16, "the second slot");
    memo.remember(c, 0, 24);
    assert.equal(memo.find(c, 0, t, READ), 24, "the second slot, taken over");
    assert.equal(memo.find(a, 0, t, READ), 8, "the first slot stays");
    assert.equal(memo.find(b, 0, t, READ), -1, "evicted");
    memo.remember(a, 0, 32);
    assert.equal(memo.find(a, 0, t, READ), 32, "a key remembered again keeps its slot");
    assert.equal(memo.find(c, 0, t, READ), 24);
    // A new read table: the first slot is free again, whatever the old generation left.
    assert.equal(memo.find(b, 0, header(6, 0), READ), -1);
    memo.remember(b, 0, 40);
    memo.remember(c, 0, 48);
    assert.equal(memo.find(b, 0, header(6, 0), READ), 40);
    assert.equal(memo.find(c, 0, header(6, 0), READ), 48);
    assert.equal(memo.find(a, 0, header(6, 0), READ), -1, "an old generation's key");
  });

  test("sizes its table for the read table, four slots a key, and grows with it", () => {
    assert.deepEqual([0, 1, 16, 17, 1024, 5000].map(slotsFor), [64, 64, 64, 128, 4096, 4096]);
    const memo = warmMemo();
    memo.find(7, 0, header(2, 0, 100), READ);
    assert.equal(memo.slots, 512);
    memo.remember(7, 0, 64);
    assert.equal(memo.find(7, 0, header(2, 0, 100), READ), 64);
    memo.find(7, 0, header(3, 0, 10), READ);
    assert.equal(memo.slots, 512, "a smaller read table keeps it");
    memo.find(7, 0, header(4, 0, 1000), READ);
    assert.equal(memo.slots, 4096);
  });

  test("when its generation comes round, forgets its slots, also while switched off", () => {
    const memo = warmMemo();
    const t = header(5, 0);
    assert.equal(memo.find(7, 0, t, READ), -1);
    memo.remember(7, 0, 64);
    assert.equal(memo.find(7, 0, t, READ), 64);
    const gen = memo.generation(t.i32, HW);
    // Switched off by a window of misses: key 3 never remembered, key 8 remembered again and
    // again (in a slot of its own: key 7's stays).
    memo.remember(8, 0, 0);
    assert.equal(memo.find(7, 0, t, READ), 64, "keys 7 and 8 have slots of their own");
    while (memo.on) {
      assert.equal(memo.find(3, 0, t, READ), -1);
      memo.remember(8, 0, 0);
    }
    // 2^32 tables later (the generation set just short of coming round), one short of `gen`.
    memo.setGenerationForTests(-1);
    for (let s = 7; memo.generation(header(s, 0).i32, HW) !== gen - 1; s++);
    while (!memo.on) memo.find(1, 0, header(99, 0), READ); // back on
    assert.equal(memo.find(7, 0, header(100, 0), READ), -1, "a new read table: generation `gen`");
    assert.equal(memo.find(7, 0, header(100, 0), READ), -1, "the slot of 2^32 tables ago");
  });

  test("grows its table for a working set larger than the read table before switching off", () => {
    // Go's LoadMostlyMisses: a read table of one key, 1,024 keys looked up in turn.
    const memo = warmMemo();
    const t = header(9, 0, 1);
    const lookUp = (k: number) => {
      const e = memo.find(k, 0, t, READ);
      if (e !== -1) return e;
      memo.remember(k, 0, k === 0 ? 8 : 0);
      return -1;
    };
    lookUp(0);
    assert.equal(memo.slots, 64, "sized for the read table");
    let hits = 0;
    for (let round = 0; round < 64; round++) {
      for (let k = 0; k < 1024; k++) {
        const e = lookUp(k);
        if (e !== -1) {
          assert.equal(e, k === 0 ? 8 : 0, `key ${k}`);
          if (round >= 32) hits++;
        }
      }
    }
    assert.equal(memo.on, true, "still on");
    assert.equal(memo.slots, 4096, "grown to its largest");
    assert.ok(hits > 0.9 * 32 * 1024, `${hits} of ${32 * 1024} lookups answered`);
    // A working set past even the largest table switches it off: at the end of the window
    // under way (its hits may outnumber its misses so far), or of the next.
    for (let k = 1; memo.on; k++) {
      lookUp(k * 4096);
      assert.ok(k <= 2 * 4096, "off within two windows of misses");
    }
  });

  test("switches itself off when most lookups miss, and on again later", () => {
    const memo = warmMemo();
    const t = header(9, 0, 5000);
    assert.equal(memo.find(0, 0, t, READ), -1);
    // Distinct keys, each looked up once: every lookup a miss.
    for (let i = 1; memo.on; i++) {
      assert.equal(memo.find(i, 0, t, READ), -1);
      memo.remember(i, 0, 16 * i);
      assert.ok(i <= 4096, "off after one window of misses");
    }
    assert.equal(memo.find(1, 0, t, READ), -1, "off: no answers");
  });
});

type Op =
  | { op: "load" | "has" | "delete" | "loadAndDelete" | "range" | "clear"; key: number; via: 0 | 1 }
  | { op: "store" | "loadOrStore" | "swap"; key: number; value: number; via: 0 | 1 }
  | { op: "compareAndSwap" | "compareAndDelete"; key: number; value: number; via: 0 | 1 };

// Half the keys are stored before the memo warms up; the others are new to the read table, so
// storing them makes a dirty table, which expunges the deleted keys, and misses promote it.
const key = fc.integer({ min: 0, max: 31 });
const via = fc.constantFrom<0 | 1>(0, 0, 0, 1);
// Values from a small range, so that a compare-and-X often compares equal.
const value = fc.integer({ min: 0, max: 40 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 25, arbitrary: fc.record({ op: fc.constant("load" as const), key, via }) },
  { weight: 10, arbitrary: fc.record({ op: fc.constant("has" as const), key, via }) },
  { weight: 10, arbitrary: fc.record({ op: fc.constant("delete" as const), key, via }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant("loadAndDelete" as const), key, via }) },
  {
    weight: 15,
    arbitrary: fc.record({
      op: fc.constantFrom("store" as const, "loadOrStore" as const, "swap" as const),
      key,
      value,
      via,
    }),
  },
  {
    weight: 10,
    arbitrary: fc.record({
      op: fc.constantFrom("compareAndSwap" as const, "compareAndDelete" as const),
      key,
      value,
      via,
    }),
  },
  // range promotes the dirty table first; clear unpublishes both tables.
  { weight: 5, arbitrary: fc.record({ op: fc.constant("range" as const), key, via }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("clear" as const), key, via }) },
);

/** Key `i` of a run: a number, or a 16-unit string (kept in the key hash cache with its memo). */
const KINDS = {
  number: (i: number): number | string => i,
  string: (i: number): number | string => "user:" + "-".repeat(9) + String(i).padStart(2, "0"),
};

describe("SyncMap with its entry memo on", () => {
  for (const [kind, keyOf] of Object.entries(KINDS)) {
    test(`agrees with a Map through promotions, by two handles of one map: ${kind} keys`, () => {
      fc.assert(
        fc.property(fc.array(opArb, { minLength: 1, maxLength: 300 }), (ops) => {
          const map = new SyncMap<number | string, number>();
          const other = SyncMap.attach<number | string, number>(map.handle);
          try {
            for (let k = 0; k < 16; k++) map.store(keyOf(k), k);
            // Past the memo's warm-up, every key in the read table and in the key hash cache,
            // for both handles.
            for (let i = 0; i < 2 * WARMUP; i++) map.load(keyOf(i & 15));
            for (let i = 0; i < 2 * WARMUP; i++) other.load(keyOf(i & 15));
            const model = new Map<number | string, number>();
            for (let k = 0; k < 16; k++) model.set(keyOf(k), k);
            for (const o of ops) {
              const m = o.via === 0 ? map : other;
              const key = keyOf(o.key);
              const where = `${o.op}(${key}) via ${o.via}`;
              switch (o.op) {
                case "load":
                  assert.equal(m.load(key), model.get(key), where);
                  break;
                case "has":
                  assert.equal(m.has(key), model.has(key), where);
                  break;
                case "delete":
                  m.delete(key);
                  model.delete(key);
                  break;
                case "loadAndDelete":
                  assert.deepEqual(m.loadAndDelete(key), [model.get(key), model.has(key)], where);
                  model.delete(key);
                  break;
                case "store":
                  m.store(key, o.value);
                  model.set(key, o.value);
                  break;
                case "loadOrStore": {
                  const had = model.has(key);
                  const [value, loaded] = m.loadOrStore(key, o.value);
                  assert.deepEqual([value, loaded], [had ? model.get(key) : o.value, had], where);
                  if (!had) model.set(key, o.value);
                  break;
                }
                case "swap": {
                  const before = [model.get(key), model.has(key)];
                  assert.deepEqual(m.swap(key, o.value), before, where);
                  model.set(key, o.value);
                  break;
                }
                case "compareAndSwap": {
                  const equal = model.get(key) === o.value;
                  assert.equal(m.compareAndSwap(key, o.value, o.value + 1), equal, where);
                  if (equal) model.set(key, o.value + 1);
                  break;
                }
                case "compareAndDelete": {
                  const equal = model.get(key) === o.value;
                  assert.equal(m.compareAndDelete(key, o.value), equal, where);
                  if (equal) model.delete(key);
                  break;
                }
                case "range": {
                  const seen = new Map<number | string, number>();
                  m.range((k, v) => void seen.set(k, v));
                  assert.deepEqual(seen, model, where);
                  break;
                }
                case "clear":
                  m.clear();
                  model.clear();
                  break;
              }
            }
            for (let k = 0; k < 32; k++) {
              assert.equal(map.load(keyOf(k)), model.get(keyOf(k)), `load(${k}) at the end`);
              assert.equal(
                other.load(keyOf(k)),
                model.get(keyOf(k)),
                `other.load(${k}) at the end`,
              );
            }
            map.verify();
          } finally {
            other.close();
          }
        }),
        { numRuns: 150 },
      );
    });
  }
});

describe("SyncMap lookups the entry memo cannot answer", () => {
  const CALLS = 256;

  /**
   * Calls each check CALLS times (with the call's index) and asserts that it made far fewer
   * atomic loads than calls: only those of the quiescent points, one call in 64.
   */
  function assertFewAtomicLoads(checks: Array<[string, (i: number) => void]>): void {
    for (const [what, call] of checks) {
      const loads = atomicsCalls("load", () => {
        for (let i = 0; i < CALLS; i++) call(i);
      }).length;
      assert.ok(loads < CALLS / 8, `${what}: ${loads} atomic loads in ${CALLS} calls`);
    }
  }

  test("a number key new to the memo is walked with no atomic load of the read word", () => {
    const map = new SyncMap<number, number>();
    for (let k = 0; k < 1024; k++) map.store(k, k);
    for (let i = 0; i < 2 * WARMUP; i++) map.load(i & 1023); // promoted; the memo on
    // Each key is new to the memo (check c's call i looks up a key of its own), so each call
    // walks the read table.
    const fresh = (c: number, i: number) => (1 << 20) + c * 2048 + i;
    assertFewAtomicLoads([
      ["load", (i) => assert.equal(map.load(fresh(0, i)), undefined)],
      ["has", (i) => assert.equal(map.has(fresh(1, i)), false)],
      ["delete", (i) => assert.equal(map.delete(fresh(2, i)), false)],
      [
        "loadAndDelete",
        (i) => assert.deepEqual(map.loadAndDelete(fresh(3, i)), [undefined, false]),
      ],
      ["compareAndSwap", (i) => assert.equal(map.compareAndSwap(fresh(4, i), 1, 2), false)],
    ]);
    assert.equal(map.size, 1024);
    map.verify();
  });

  test("a key that makes a probe (a string past the key hash cache) takes no atomic load", () => {
    // Strings of more than 256 units are never cached: every lookup hashes them and walks.
    const long = (i: number) => `${i}:`.padEnd(300, "x");
    const map = new SyncMap<string, number>();
    for (let k = 0; k < 64; k++) map.store(long(k), k);
    for (let k = 0; k < 64; k++) map.load(long(k)); // promoted: every key in the read table
    const keys = Array.from({ length: 128 }, (_, i) => long(i)); // half of them absent
    assertFewAtomicLoads([
      ["load", (i) => assert.equal(map.load(keys[i & 127]), i & 64 ? undefined : i & 127)],
      ["has", (i) => assert.equal(map.has(keys[i & 127]), (i & 64) === 0)],
      ["loadOrStore", (i) => assert.deepEqual(map.loadOrStore(keys[i & 63], -1), [i & 63, true])],
      ["compareAndSwap", (i) => assert.equal(map.compareAndSwap(keys[i & 127], -1, 0), false)],
      ["delete", (i) => assert.equal(map.delete(keys[64 + (i & 63)]), false)],
    ]);
    assert.equal(map.size, 64);
    map.verify();
  });
});

describe("SyncMap.verify and table serials", () => {
  test("the read table carries the last serial made, and a dirty table none", () => {
    const map = new SyncMap<number, number>();
    const i32 = new Int32Array(map.handle.buffer);
    const serial = () => [i32[R_SERIAL], i32[R_SERIAL + 1]];
    assert.deepEqual(serial(), [0, 0], "no table made the read table yet");
    map.store(1, 1);
    for (let i = 0; i < 8; i++) map.load(1); // misses promote the dirty table (eight at least)
    const read = (Atomics.load(i32, R_READ) & ~1) >> 2;
    assert.notEqual(read, 0);
    assert.deepEqual(serial(), [1, 0]);
    assert.deepEqual([i32[read + T_SERIAL], i32[read + T_SERIAL + 1]], [1, 0]);
    map.verify();
    // A read table stamped with a serial not the last made: two read tables might share one.
    i32[read + T_SERIAL] = 7;
    assert.throws(() => map.verify(), /read table's serial 0:7 is not the last one made, 0:1/);
    i32[read + T_SERIAL] = 1;
    map.store(2, 2); // a dirty table again
    const dirty = i32[R_DIRTY] >> 2;
    assert.notEqual(dirty, 0);
    i32[dirty + T_SERIAL + 1] = 3;
    assert.throws(() => map.verify(), /dirty table has a serial \(3:0\)/);
    i32[dirty + T_SERIAL + 1] = 0;
    map.verify();
  });
});

describe("EntryMemo.find and a read table past this worker's views", () => {
  test("does not ask the memo of a header past the views, which reads as undefined", () => {
    // Another worker grew the buffer and made the read table there: this worker's fixed-length
    // views end before its header. Asked there, the memo would read its serial as undefined,
    // twice alike, and answer for one such table from another. find must leave such a table to
    // the atomic load and the walk, which reach it first.
    const i32 = new Int32Array(new SharedArrayBuffer(4096));
    const views = { bytes: i32.byteLength, i32 };
    const memo = warmMemo();
    assert.equal(memo.find(1, 2, views, 8192 | 1), MEMO_NOT_ASKED);
    assert.equal(memo.find(1, 2, views, 4096), MEMO_NOT_ASKED);
    assert.equal(memo.find(1, 2, views, 0 | 1), 0, "no read table, amended");
    assert.equal(memo.find(1, 2, views, 1024), MEMO_UNKNOWN, "a table in the views is asked");
    memo.remember(1, 2, 64);
    assert.equal(memo.find(1, 2, views, 1024), 64, "and answered from then on");
    assert.equal(memo.find(1, 2, views, 8192), MEMO_NOT_ASKED, "a table past the views, still");
  });
});
