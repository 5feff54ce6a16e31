// Copyright the shmap authors. MIT license.
//
// GoMap's entry memo (src/maps/_entry_memo.ts, used by src/maps/_go_read.ts): `get`, `has`
// and `getOk` of a key that the same handle looked up while the map's write sequence stood at
// the same version answer from the handle's memo (the key slot found then) instead of hashing
// the key and walking the table. The memo's serial is (SEQ, WRAPS): SEQ is the seqlock word,
// WRAPS counts the times SEQ came round past 2^31 writes. Number keys use the memo's own slot
// table (made after WARMUP lookups); string keys of a few to 256 units keep two memo words, a
// generation and the slot, in the handle's key hash cache entries.
//
// A memo that answers for a version of the map that is no longer current returns a deleted
// key's slot, or a moved key's old one. So:
//
// - Model tests run random writes and bursts of reads through two handles of one map (a writer
//   handle and a reader handle whose memo is warm; either may do anything), over a small key
//   space so that the same keys are read again and again between writes, with bursts of new
//   keys that make the table grow, and compare every read with a plain Map.
// - Wrap tests make SEQ come round (poked to the version before 0, as if 2^31 writes had
//   passed), change the map, and write on until SEQ is back at the version the reader's memo
//   was filled at: only WRAPS tells that version from the old one, and the reader must not
//   answer from its memo. A writer that recovers an abandoned write from that version must
//   move WRAPS too. A control shows the same steps with WRAPS held still do reach the memo.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { GoMap } from "../mod.ts";
import { WARMUP } from "../src/maps/_entry_memo.ts";
import { Table } from "../src/_engine/table.ts";
import { J_ARGS, J_INTENT } from "../src/_engine/journal.ts";
import {
  INTENT_CLEAR,
  JOURNAL,
  LAST_SEQ,
  LAYOUT,
  LAYOUT_WRAPS,
  SEQ,
  SEQ_BEFORE_WRAP,
  WRAPS,
} from "../src/maps/_go_layout.ts";
import { ABANDONED } from "../src/maps/_go_writer.ts";
import { atomicsCalls } from "./fixtures/atomics_calls.ts";
import { runs } from "./fixtures/go_map_helpers.ts";
import { withoutLookupCopies } from "./fixtures/no_lookup_copy.ts";

type Key = number | string;

/** The table walks (Table.findWords, Table.insert) that `fn` makes. */
function walksIn(fn: () => void): number {
  const proto = Table.prototype;
  const { findWords, insert } = proto;
  let walks = 0;
  proto.findWords = function (this: Table, ...args: Parameters<typeof findWords>) {
    walks++;
    return findWords.apply(this, args);
  };
  proto.insert = function (this: Table, ...args: Parameters<typeof insert>) {
    walks++;
    return insert.apply(this, args);
  };
  try {
    fn();
  } finally {
    proto.findWords = findWords;
    proto.insert = insert;
  }
  return walks;
}

/**
 * Number keys: -0 is the key 0 (SameValueZero, as for a Map), one NaN, non-integers, infinities,
 * subnormals, and integers past the int32 and float64-exact ranges.
 */
const NUMBER_KEYS: readonly number[] = [
  0,
  -0,
  1,
  2,
  3,
  7,
  42,
  -1,
  0.5,
  -1.5,
  NaN,
  Infinity,
  -Infinity,
  2 ** 31,
  -(2 ** 31) - 1,
  2 ** 53 + 2,
  Number.MIN_VALUE,
  Number.MAX_VALUE,
  123456.789,
  -7.25e-8,
];

/** A 16-unit string key, kept in the key hash cache with its memo words. */
function str16(prefix: string, i: number): string {
  const s = prefix + String(i).padStart(3, "0");
  return s.padStart(16, i % 3 === 0 ? "é" : "-");
}

/** How a run names its keys: the small set read again and again, and the keys that grow it. */
interface KeyKind {
  named: readonly Key[];
  filler(j: number): Key;
}

const KINDS: Record<string, KeyKind> = {
  number: { named: NUMBER_KEYS, filler: (j) => 1000 + j },
  string: {
    named: NUMBER_KEYS.map((_, i) => str16("user:", i)),
    filler: (j) => str16("fill:", j),
  },
};

/** Values: numbers only (the memo hit's unboxed path), or anything the auto codec stores. */
const numberValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -100, max: 100 }),
  fc.constantFrom(-0, NaN, 0.25, -1e300, Infinity),
);
const VALUES: Record<string, fc.Arbitrary<unknown>> = {
  "number values": numberValue,
  "mixed values": fc.oneof(
    numberValue,
    fc.string({ maxLength: 2 }), // inline
    fc.string({ minLength: 3, maxLength: 40 }), // a block of its own
    // A plain object, as it decodes (fast-check makes records without a prototype).
    fc.record({ n: fc.integer(), s: fc.string({ maxLength: 8 }) }).map((o) => ({ ...o })),
    fc.array(fc.integer(), { maxLength: 4 }),
    fc.constantFrom(null, undefined, true, false),
  ),
};

/** One read of a burst: which of the burst's keys, how, and by whom. */
interface Read {
  pick: number;
  how: 0 | 1 | 2; // get, has, getOk
  via: 0 | 1; // 0: the reader handle, 1: the writer handle
}

/**
 * A burst of reads of a few keys, each read several times over while the map stands still:
 * the first read of a key walks the table, the ones after it answer from the memo. A key is
 * named by its index: a named key below NAMED, a filler key (present or not) from NAMED on.
 */
interface Burst {
  op: "reads";
  keys: { key: number; filler: number }[];
  reads: Read[];
}

type Op =
  | Burst
  | { op: "set"; key: number; value: unknown; via: 0 | 1 }
  | { op: "delete"; key: number; via: 0 | 1 }
  | { op: "clear"; via: 0 | 1 }
  | { op: "grow"; n: number; via: 0 | 1 };

const NAMED = NUMBER_KEYS.length;

function opArb(value: fc.Arbitrary<unknown>): fc.Arbitrary<Op> {
  // Writes mostly by the writer handle, reads mostly by the reader handle, but either does both.
  const writeVia = fc.constantFrom<0 | 1>(1, 1, 1, 0);
  const key = fc.integer({ min: 0, max: NAMED - 1 });
  const burst: fc.Arbitrary<Burst> = fc.record({
    op: fc.constant("reads" as const),
    keys: fc.array(
      fc.record({ key: fc.integer({ min: 0, max: NAMED + 1 }), filler: fc.nat(1000) }),
      { minLength: 1, maxLength: 4 },
    ),
    reads: fc.array(
      fc.record({
        pick: fc.nat(3),
        how: fc.constantFrom<0 | 1 | 2>(0, 1, 2),
        via: fc.constantFrom<0 | 1>(0, 0, 0, 1),
      }),
      { minLength: 1, maxLength: 16 },
    ),
  });
  return fc.oneof(
    { weight: 40, arbitrary: burst },
    {
      weight: 25,
      arbitrary: fc.record({ op: fc.constant("set" as const), key, value, via: writeVia }),
    },
    {
      weight: 15,
      arbitrary: fc.record({ op: fc.constant("delete" as const), key, via: writeVia }),
    },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("clear" as const), via: writeVia }) },
    {
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant("grow" as const),
        n: fc.integer({ min: 1, max: 150 }),
        via: writeVia,
      }),
    },
  );
}

/** Reads `key` through `m` as `how` says, and checks the answer against `model`. */
function checkRead(
  m: GoMap<Key, unknown>,
  model: Map<Key, unknown>,
  key: Key,
  how: 0 | 1 | 2,
  where: string,
): void {
  switch (how) {
    case 0:
      assert.deepStrictEqual(m.get(key), model.get(key), `get(${String(key)}) ${where}`);
      break;
    case 1:
      assert.equal(m.has(key), model.has(key), `has(${String(key)}) ${where}`);
      break;
    case 2:
      assert.deepStrictEqual(
        m.getOk(key),
        [model.get(key), model.has(key)],
        `getOk(${String(key)}) ${where}`,
      );
      break;
  }
}

describe("GoMap entry memo: two handles agree with a Map", () => {
  withoutLookupCopies(); // these test the entry memo, which the copy would answer for
  for (const [kindName, kind] of Object.entries(KINDS)) {
    for (const [valuesName, value] of Object.entries(VALUES)) {
      test(`${kindName} keys, ${valuesName}`, () => {
        fc.assert(
          fc.property(fc.array(opArb(value), { minLength: 1, maxLength: 100 }), (ops) => {
            const w = new GoMap<Key, unknown>();
            const r = GoMap.attach<Key, unknown>(w.handle);
            const handles = [r, w];
            const model = new Map<Key, unknown>();
            // Half the named keys present, then the reader past its memo's warm-up (and every
            // named key in its key hash cache).
            for (let i = 0; i < NAMED; i += 2) {
              w.set(kind.named[i], i);
              model.set(kind.named[i], i);
            }
            for (let i = 0; i < WARMUP + 2 * NAMED; i++) {
              checkRead(r, model, kind.named[i % NAMED], 0, "warming up");
            }
            let fillers = 0;
            ops.forEach((o, step) => {
              const where = `at step ${step}`;
              switch (o.op) {
                case "reads": {
                  // A filler key already inserted, or the next one (absent).
                  const keys = o.keys.map(({ key, filler }) =>
                    key < NAMED ? kind.named[key] : kind.filler(filler % (fillers + 1))
                  );
                  for (const rd of o.reads) {
                    const key = keys[rd.pick % keys.length];
                    checkRead(handles[rd.via], model, key, rd.how, `via ${rd.via} ${where}`);
                  }
                  break;
                }
                case "set":
                  handles[o.via].set(kind.named[o.key], o.value);
                  model.set(kind.named[o.key], o.value);
                  break;
                case "delete":
                  assert.equal(
                    handles[o.via].delete(kind.named[o.key]),
                    model.delete(kind.named[o.key]),
                    `delete ${where}`,
                  );
                  break;
                case "clear":
                  handles[o.via].clear();
                  model.clear();
                  // The same filler keys come again, into a table that keeps its grown buckets.
                  fillers = 0;
                  break;
                case "grow":
                  // New keys, enough of them over a run to make the table grow a few times;
                  // the named keys move to the new buckets as the growth evacuates them.
                  for (let j = 0; j < o.n; j++, fillers++) {
                    handles[o.via].set(kind.filler(fillers), fillers);
                    model.set(kind.filler(fillers), fillers);
                  }
                  break;
              }
            });
            assert.equal(w.size, model.size);
            for (const key of [...kind.named, ...model.keys()]) {
              for (const m of handles) {
                checkRead(m, model, key, 0, "at the end");
                checkRead(m, model, key, 1, "at the end");
                checkRead(m, model, key, 2, "at the end");
              }
            }
            w.verify();
          }),
          runs(200),
        );
      });
    }
  }
});

/** Int32 view of a map's shared memory: its root words SEQ, LAST_SEQ and WRAPS. */
function words(map: GoMap<Key, unknown>): Int32Array {
  return new Int32Array(map.handle.buffer);
}

/**
 * A map with `key` (value 1) and one other key, and a reader handle whose memo holds `key`'s
 * slot and `absent`'s absence under the map's version now, S (with WRAPS at 0).
 */
function warmReader(key: Key, other: Key, absent: Key) {
  const w = new GoMap<Key, unknown>();
  w.set(key, 1);
  w.set(other, 2);
  const r = GoMap.attach<Key, unknown>(w.handle);
  for (let i = 0; i < 2 * WARMUP; i++) {
    assert.equal(r.get(key), 1);
    assert.equal(r.has(absent), false);
  }
  // Answered from the memo now, as every read from here on at this version.
  assert.equal(r.has(key), true);
  assert.deepEqual(r.getOk(key), [1, true]);
  const i32 = words(w);
  assert.equal(i32[WRAPS], 0);
  return { w, r, i32, S: i32[SEQ] };
}

/**
 * Makes SEQ come round: with the map idle, pokes SEQ to the version before 0, as 2^31 writes
 * would leave it (and LAST_SEQ to the version that last write started from).
 */
function pokeBeforeWrap(i32: Int32Array): void {
  Atomics.store(i32, SEQ, SEQ_BEFORE_WRAP);
  i32[LAST_SEQ] = SEQ_BEFORE_WRAP - 2;
}

/**
 * Writes new keys through `w` until SEQ is back at `S`, the version the reader's memo was
 * filled at. Nothing else reads meanwhile: a reader that looked at another version would have
 * started a new generation of its memo, and only the serial's WRAPS word would not be tested.
 */
function writeUntil(w: GoMap<Key, unknown>, i32: Int32Array, S: number, keyOf: (j: number) => Key) {
  for (let j = 0; i32[SEQ] !== S; j++) {
    assert.ok(j < 1000, "SEQ comes back to S");
    w.set(keyOf(j), 100 + j);
  }
}

describe("GoMap entry memo: SEQ coming round", () => {
  withoutLookupCopies(); // these test the entry memo, which the copy would answer for
  for (const [kindName, kind] of Object.entries(KINDS)) {
    // Three distinct keys (0 and -0 are one key): a non-integer, an integer, NaN for numbers.
    const [key, other, absent] = [8, 2, 10].map((i) => kind.named[i]);
    const keyOf = (j: number) => kind.filler(j);

    test(`${kindName} keys: a key deleted as SEQ wraps is gone at the memo's old version`, () => {
      const { w, r, i32, S } = warmReader(key, other, absent);
      pokeBeforeWrap(i32);
      // The write that begins from the version before 0 moves WRAPS, then publishes 0.
      assert.equal(w.delete(key), true);
      assert.equal(i32[SEQ], 0);
      const wraps = i32[WRAPS];
      writeUntil(w, i32, S, keyOf);
      assert.equal(i32[SEQ], S, "SEQ is the version the reader's memo was filled at");
      // (S, 1) is not (S, 0): the memo must not answer with the deleted key's slot. (The reads
      // come before the checks of WRAPS itself, so that a WRAPS left still fails here first.)
      assert.equal(r.has(key), false);
      assert.equal(r.get(key), undefined);
      assert.deepEqual(r.getOk(key), [undefined, false]);
      assert.equal(r.get(other), 2);
      assert.equal(r.get(keyOf(0)), 100);
      assert.equal(wraps, 1, "WRAPS moved by the write that wrapped");
      assert.equal(i32[WRAPS], 1, "and not by the writes after it");
      w.verify();
    });

    test(`${kindName} keys: a key added as SEQ wraps is found at the memo's old version`, () => {
      const { w, r, i32, S } = warmReader(key, other, absent);
      pokeBeforeWrap(i32);
      w.set(absent, "new");
      writeUntil(w, i32, S, keyOf);
      assert.equal(r.has(absent), true, "the memo knew it absent at (S, 0)");
      assert.equal(r.get(absent), "new");
      assert.deepEqual(r.getOk(absent), ["new", true]);
      assert.equal(i32[WRAPS], 1);
      w.verify();
    });

    test(`${kindName} keys: recovering an abandoned write from the version before 0 moves WRAPS`, () => {
      const { w, r, i32, S } = warmReader(key, other, absent);
      // A write that began from the version before 0 and was abandoned (SEQ = ABANDONED, owner
      // 0) with its journal empty: it wrote nothing, and may have died before moving WRAPS.
      Atomics.store(i32, SEQ, ABANDONED);
      i32[LAST_SEQ] = SEQ_BEFORE_WRAP;
      // The next read (the writer handle's: the reader must not look at another version)
      // recovers it and publishes the version after it, 0, moving WRAPS.
      assert.equal(w.get(other), 2);
      assert.equal(i32[SEQ], 0);
      const wraps = i32[WRAPS];
      assert.equal(w.delete(key), true);
      writeUntil(w, i32, S, keyOf);
      assert.equal(r.has(key), false);
      assert.equal(r.get(key), undefined);
      assert.deepEqual(r.getOk(key), [undefined, false]);
      assert.equal(wraps, 1, "WRAPS moved by the recovery");
      assert.equal(i32[WRAPS], 1, "and not by the writes after it");
      w.verify();
    });

    test(`${kindName} keys: a value overwritten as SEQ wraps is new at the memo's old version`, () => {
      // Overwrites alone keep the layout stamp, and a number value the memo keeps holds at the
      // version of SEQ it was read at. An overwrite that wraps SEQ must stamp the layout anyway:
      // otherwise, SEQ back at S after 2^31 overwrites, the memo would answer with the value
      // it kept at S in the old round.
      const { w, r, i32, S } = warmReader(key, other, absent);
      const stamp = [i32[LAYOUT], i32[LAYOUT_WRAPS]];
      pokeBeforeWrap(i32);
      w.set(key, 7);
      assert.deepEqual([i32[LAYOUT], i32[LAYOUT_WRAPS]], [0, 1], "the wrap stamped the layout");
      for (let j = 0; i32[SEQ] !== S; j++) {
        assert.ok(j < 1000, "SEQ comes back to S");
        w.set(other, j); // an overwrite in place
      }
      assert.deepEqual([i32[LAYOUT], i32[LAYOUT_WRAPS]], [0, 1], "overwrites keep the stamp");
      assert.notDeepEqual(stamp, [0, 1]);
      assert.equal(r.get(key), 7);
      assert.deepEqual(r.getOk(key), [7, true]);
      assert.equal(r.has(absent), false);
      w.verify();
    });

    test(`${kindName} keys: a verify that wraps SEQ stamps the layout too`, () => {
      // verify() takes the write sequence and writes nothing; started from the version before
      // 0, it still moves WRAPS, so it must stamp like any write that wraps.
      const { w, r, i32, S } = warmReader(key, other, absent);
      pokeBeforeWrap(i32);
      w.verify();
      assert.deepEqual([i32[LAYOUT], i32[LAYOUT_WRAPS]], [0, 1]);
      w.set(key, 7);
      for (let j = 0; i32[SEQ] !== S; j++) {
        assert.ok(j < 1000, "SEQ comes back to S");
        w.set(other, j);
      }
      assert.equal(r.get(key), 7);
    });

    test(`${kindName} keys (control): with WRAPS held still, the same steps reach the memo`, () => {
      // What WRAPS is for: the first test's steps, with WRAPS put back after the wrap, leave the
      // map at the very serial the reader's memo was filled under, and the reader answers from
      // its memo with the deleted key's slot. This shows the tests above reach the memo; should
      // the memo ever check the slot's key itself, this control would need to go.
      const { w, r, i32, S } = warmReader(key, other, absent);
      pokeBeforeWrap(i32);
      assert.equal(w.delete(key), true);
      writeUntil(w, i32, S, keyOf);
      i32[WRAPS] = 0;
      i32[LAYOUT_WRAPS] = 0;
      assert.equal(r.has(key), true, "answered from the memo: the serial is the one it knows");
      assert.equal(w.has(key), false, "the writer handle's memo never saw (S, 0) with the key");
    });
  }
});

describe("GoMap entry memo: the layout stamp", () => {
  withoutLookupCopies(); // these test the entry memo, which the copy would answer for
  /** The stamp (LAYOUT, LAYOUT_WRAPS) of the map `w` is a handle of. */
  const stampOf = (w: GoMap<Key, unknown>) => {
    const i32 = words(w);
    return [i32[LAYOUT], i32[LAYOUT_WRAPS]];
  };

  test("only an overwrite in place, in a table not growing, keeps it", () => {
    const w = new GoMap<Key, unknown>();
    const moves = (what: string, write: () => void, moved: boolean) => {
      const before = stampOf(w);
      write();
      const after = stampOf(w);
      assert.equal(after[0] !== before[0], moved, `${what}: ${before} -> ${after}`);
      if (moved) assert.equal(after[0], words(w)[SEQ], `${what} stamps the version it publishes`);
    };
    moves("an insert", () => w.set(1, 1), true);
    moves("an overwrite with a number", () => w.set(1, 2), false);
    moves("an overwrite with a string of its own block", () => w.set(1, "x".repeat(40)), false);
    moves("an overwrite with an object", () => w.set(1, { a: [1, 2] }), false);
    moves("an overwrite of a string key", () => w.set("k", 1), true);
    moves("the same, again", () => w.set("k", "v"), false);
    moves("a delete", () => w.delete(1), true);
    moves("a delete of an absent key", () => w.delete(1), false);
    moves("a clear", () => w.clear(), true);
    // Grow the table, then overwrite while it is still growing: the write evacuates buckets.
    let i = 0;
    while (!w.stats().growing) w.set(100 + i++, i);
    moves("an overwrite while the table grows", () => w.set(100, -1), true);
    while (!w.stats().growing) w.set(100 + i++, i);
    moves("a delete of an absent key while the table grows", () => w.delete(-5), true);
    w.verify();
  });

  test("a clear that a dead writer left is finished under a new stamp", () => {
    for (const key of [5, str16("key:", 5)]) {
      const w = new GoMap<number | string, unknown>().set(key, 1);
      const r = GoMap.attach<number | string, unknown>(w.handle);
      for (let i = 0; i < 2 * WARMUP; i++) r.get(key);
      const i32 = words(w);
      const stamp = stampOf(w);
      // A writer that began a clear and was abandoned before its first step: its intent is
      // recorded, SEQ names no live writer. Whoever reads next finishes the clear.
      const journal = i32[JOURNAL] >> 2;
      i32[journal + J_INTENT] = INTENT_CLEAR;
      i32[journal + J_ARGS] = 0; // the next step: the first
      i32[LAST_SEQ] = i32[SEQ];
      Atomics.store(i32, SEQ, ABANDONED);
      assert.equal(r.has(key), false, `${key}: the memo's slot is not the map's`);
      assert.equal(r.get(key), undefined);
      assert.notDeepEqual(stampOf(w), stamp);
      assert.equal(stampOf(w)[0], i32[SEQ]);
      w.verify();
    }
  });

  test("a set writes the key's own slot when the handle's memo names another", () => {
    // A writer that does not stamp (a build before the stamp, or a stamp a weaker CPU showed out
    // of order): the handle's memo names a slot that no longer holds its key. A set finds the
    // key in the table itself, never through the memo, and so never writes there.
    for (const [one, two] of [[1, 2], [str16("key:", 1), str16("key:", 2)]] as const) {
      const w = new GoMap<Key, unknown>().set(one, 1).set(two, 2);
      const h = GoMap.attach<Key, unknown>(w.handle);
      for (let i = 0; i < 2 * WARMUP; i++) h.get(i & 1 ? one : two);
      const i32 = words(w);
      const stamp = [i32[LAYOUT], i32[LAYOUT_WRAPS]];
      w.delete(one);
      [i32[LAYOUT], i32[LAYOUT_WRAPS]] = stamp; // as if the delete had not stamped
      h.set(one, 5);
      assert.equal(w.get(one), 5, `${one}: the set is seen by another handle`);
      assert.equal(h.get(one), 5, `${one}: and by its own handle`);
      assert.equal(w.size, 2);
      w.verify();
    }
  });

  test("a set whose memo names a slot the key left tells the memo the key's slot", () => {
    // As above, a writer that did not stamp, but the key is back in another slot: the set's
    // check refuses the memo's slot, walks, overwrites the key where it is, and tells the memo,
    // so that the handle's next get reads the key's own slot (not key 100's, now in the old one).
    const a = new GoMap<number, number>();
    for (let k = 1; k <= 5; k++) a.set(k, k * 10);
    const b = GoMap.attach<number, number>(a.handle);
    for (let i = 0; i < 2 * WARMUP; i++) a.get(i & 1 ? 3 : 1);
    const i32 = words(a);
    const stamp = [i32[LAYOUT], i32[LAYOUT_WRAPS]];
    b.delete(3);
    b.set(100, 1000);
    b.set(3, 30);
    [i32[LAYOUT], i32[LAYOUT_WRAPS]] = stamp; // as if these had not stamped
    a.set(3, 42);
    assert.equal(b.get(3), 42);
    assert.equal(a.get(3), 42, "the handle's own get reads the key's slot");
    assert.equal(a.get(100), 1000);
    a.verify();
  });

  test("a set of a number key its memo knows takes the slot from it, with no walk", () => {
    const w = new GoMap<number, number>();
    for (let k = 0; k < 64; k++) w.set(k, k);
    for (let i = 0; i < 2 * WARMUP; i++) w.get(i & 63);
    const walks = walksIn(() => {
      for (let k = 0; k < 64; k++) w.set(k, k + 0.5);
    });
    assert.equal(walks, 0, "every slot came from the memo");
    // A key the memo knows absent is inserted by the general path, which walks.
    w.get(1000);
    assert.ok(walksIn(() => w.set(1000, 1)) > 0);
    const r = GoMap.attach<number, number>(w.handle);
    for (let k = 0; k < 64; k++) assert.equal(r.get(k), k + 0.5);
    assert.equal(r.get(1000), 1);
    assert.equal(w.size, 65);
    w.verify();
  });

  test("a set of a new number key walks the table once: the fast path's walk", () => {
    const w = new GoMap<number, number>({ hint: 1024 }); // no growth due, buckets with room
    for (let k = 0; k < 10; k++) w.set(k, k);
    for (let k = 100; k < 110; k++) {
      assert.equal(walksIn(() => w.set(k, -k)), 1, `${k}: findWords alone`);
    }
    assert.equal(w.size, 20);
    for (let k = 100; k < 110; k++) assert.equal(w.get(k), -k);
    w.verify();
  });

  test("a reader's memo outlives overwrites: absent keys and slots stay known", () => {
    for (const key of [5, str16("key:", 5)]) {
      const absent = typeof key === "number" ? 6 : str16("key:", 6);
      const w = new GoMap<number | string, unknown>().set(key, 1.25);
      const r = GoMap.attach<number | string, unknown>(w.handle);
      for (let i = 0; i < 2 * WARMUP; i++) r.get(i & 1 ? key : absent);
      w.set(key, 2.5); // an overwrite: a new version, the same layout
      const loads = (fn: () => void) => atomicsCalls("load", fn).length;
      assert.equal(loads(() => assert.equal(r.has(absent), false)), 0, `${key}: absent, known`);
      assert.equal(loads(() => assert.equal(r.get(absent), undefined)), 0);
      assert.equal(loads(() => assert.equal(r.has(key), true)), 0, `${key}: present, known`);
      assert.equal(loads(() => assert.equal(r.get(key), 2.5)), 1, `${key}: its slot read`);
      assert.equal(loads(() => assert.equal(r.get(key), 2.5)), 0, `${key}: the value kept`);
      w.set(absent, 3); // an insert: a new layout
      assert.equal(loads(() => assert.equal(r.get(absent), 3)), 1, `${key}: a walk`);
      assert.equal(loads(() => assert.equal(r.get(key), 2.5)), 1);
    }
  });
});

describe("GoMap entry memo: what a lookup known at this version reads", () => {
  withoutLookupCopies(); // these test the entry memo, which the copy would answer for
  /** Runs `fn` and counts its calls of Atomics.load. */
  function atomicLoads(fn: () => void): number {
    return atomicsCalls("load", fn).length;
  }

  test("a number value or an absent key known at this version takes no atomic load", () => {
    const map = new GoMap<number, unknown>().set(1, 1.5).set(2, "two").set(3, -0);
    for (let i = 0; i < 2 * WARMUP; i++) map.get(i & 3);
    const read =
      (): unknown[] => [map.get(1), map.get(2), map.get(3), map.get(0), map.has(1), map.has(0)];
    let got: unknown[] = [];
    assert.equal(atomicLoads(() => got = read()), 1, "only the string value is validated");
    assert.deepEqual(got, [1.5, "two", -0, undefined, true, false]);
    map.set(1, 7);
    // An overwrite keeps the layout stamp: the memo still knows where 1, 2 and 3 are and that 0
    // is absent, but the number values it kept were read at the old version, so the gets of 1
    // and 3 read their slots, each validated, as the get of 2 does.
    assert.equal(atomicLoads(() => got = read()), 3);
    assert.deepEqual(got, [7, "two", -0, undefined, true, false]);
    assert.equal(atomicLoads(() => got = read()), 1);
    assert.deepEqual(got, [7, "two", -0, undefined, true, false]);
  });

  test("a cached string key's number value, or its absence, known at this version, too", () => {
    // -0, NaN and 2^31 are kept as float64 words; 42 and -7 as int32 words.
    const [one, two, three, four, five] = [1, 2, 3, 4, 5].map((i) => str16("key:", i));
    const map = new GoMap<string, unknown>().set(one, -0).set(two, "two").set(four, 42)
      .set(five, -7);
    const keys = [one, two, three, four, five];
    for (let i = 0; i < 2 * WARMUP; i++) map.get(keys[i % 5]);
    const read = (): unknown[] => [...keys.map((k) => map.get(k)), map.getOk(one)];
    let got: unknown[] = [];
    assert.equal(atomicLoads(() => got = read()), 1, "only the string value is validated");
    assert.deepEqual(got, [-0, "two", undefined, 42, -7, [-0, true]]);
    map.set(one, NaN).set(four, 2 ** 31);
    assert.equal(
      atomicLoads(() => got = read()),
      4,
      "a new version: each number value is read from its slot again",
    );
    assert.deepEqual(got, [NaN, "two", undefined, 2 ** 31, -7, [NaN, true]]);
    assert.equal(atomicLoads(() => got = read()), 1);
    assert.deepEqual(got, [NaN, "two", undefined, 2 ** 31, -7, [NaN, true]]);
    map.set(one, 0).set(four, -(2 ** 31));
    for (let i = 0; i < 2; i++) read();
    assert.equal(atomicLoads(() => got = read()), 1);
    assert.deepEqual(got, [0, "two", undefined, -(2 ** 31), -7, [0, true]]);
  });

  test("a has of a cached string key known at this version takes no atomic load", () => {
    const [one, two] = [1, 2].map((i) => str16("key:", i));
    const map = new GoMap<string, unknown>().set(one, "one");
    for (let i = 0; i < 2 * WARMUP; i++) map.get(i & 1 ? one : two);
    const read = (): unknown[] => [map.has(one), map.has(two)];
    let got: unknown[] = [];
    assert.equal(atomicLoads(() => got = read()), 0);
    assert.deepEqual(got, [true, false]);
    map.delete(one);
    map.set(two, 2);
    assert.equal(atomicLoads(() => got = read()), 2, "a new version: the has calls walk");
    assert.deepEqual(got, [false, true]);
    assert.equal(atomicLoads(() => got = read()), 0);
    assert.deepEqual(got, [false, true]);
  });

  test("a value that a has did not learn is read once, then kept", () => {
    for (const key of [5, str16("key:", 5)]) {
      const map = new GoMap<number | string, number>().set(key, 1.25);
      for (let i = 0; i < 2 * WARMUP; i++) map.get(key);
      map.set(-1, 0); // a new version
      assert.equal(atomicLoads(() => assert.equal(map.has(key), true)), 1, `has(${key}) walks`);
      assert.equal(atomicLoads(() => assert.equal(map.get(key), 1.25)), 1, `get(${key}) reads`);
      assert.equal(atomicLoads(() => assert.equal(map.get(key), 1.25)), 0, `get(${key}) kept`);
    }
  });
});
