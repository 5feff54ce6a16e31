// Engine unit tests of the bucket table (src/_engine/table.ts) on its own, in a small GoMap-kind
// arena written through a WriterTx (src/_engine/tx.ts), as GoMap builds it: a model check of
// insert, find and delete against a Map, Go's growth rule, incremental evacuation, same-size
// growth under churn, a clear in steps, verify() on corrupt tables, and rollbacks that restore
// every reachable byte.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  ALLOC_JOURNAL_ENTRIES,
  Arena,
  H_ALLOC_JOURNAL,
  H_ROOT,
  KIND_GO_MAP,
} from "../src/_engine/arena.ts";
import { allocate, blockSize, verifyHeap } from "../src/_engine/allocator.ts";
import { Journal, journalWords } from "../src/_engine/journal.ts";
import { Float64Slots, Probe } from "../src/_engine/slots.ts";
import { bucketAt, Table, VALUE_WORDS } from "../src/_engine/table.ts";
import {
  BUCKET_SIZE,
  BUCKET_SLOTS,
  bucketsForHint,
  EMPTY_ONE,
  KEYS,
  MIN_TOP_HASH,
  OVERFLOW,
  pow2,
  SAME_SIZE_GROW,
  T_B,
  T_BUCKETS,
  T_FLAGS,
  T_OLDBUCKETS,
} from "../src/_engine/table_layout.ts";
import { WriterTx } from "../src/_engine/tx.ts";
import { diesAt } from "./fixtures/journal_death.ts";

const KiB = 1024;
/** Where the table header lives: in the root area, as GoMap puts it. */
const TABLE_AT = (H_ROOT + 8) * 4;
const JOURNAL_ENTRIES = 1024;
const codec = new Float64Slots();

interface Setup {
  arena: Arena;
  tx: WriterTx;
  table: Table;
  /** Byte offset of the writer's journal block. */
  journalAt: number;
  /** How many value slots the table handed to freeValue (deleted or cleared keys). */
  freed: { values: number };
}

/** An empty table in a fresh arena, made the way GoMap's constructor makes one. */
function setup(maxBytes = 256 * KiB, hint = 0): Setup {
  const arena = Arena.create(KIND_GO_MAP, maxBytes, 0, "float64", "float64", false);
  const boot = new Journal(arena, H_ALLOC_JOURNAL, ALLOC_JOURNAL_ENTRIES);
  boot.begin();
  const journalAt = allocate(arena, journalWords(JOURNAL_ENTRIES) * 4, false, boot);
  Journal.format(arena.i32, journalAt >> 2, JOURNAL_ENTRIES);
  Table.create(new WriterTx(arena, boot), arena, TABLE_AT, hint);
  boot.commit();
  const tx = new WriterTx(arena, new Journal(arena, journalAt >> 2, JOURNAL_ENTRIES));
  const freed = { values: 0 };
  const table = new Table(arena, TABLE_AT, true, () => void freed.values++, tx);
  return { arena, tx, table, journalAt, freed };
}

function probe(s: Setup, key: number): Probe {
  const p = new Probe();
  codec.toKey(key, p, s.arena.seed0, s.arena.seed1);
  return p;
}

/** Writes `value` for `key` inside the caller's transaction. */
function put(s: Setup, key: number, value: number): void {
  const k = s.table.insert(probe(s, key), true);
  const v = new Probe();
  codec.toValue(value, v);
  const w = (k >> 2) + VALUE_WORDS;
  s.tx.set(w, v.lo);
  s.tx.set(w + 1, v.hi);
}

function set(s: Setup, key: number, value: number): void {
  s.tx.begin();
  try {
    put(s, key, value);
    s.tx.commit();
  } catch (error) {
    s.tx.abort();
    throw error;
  }
}

function del(s: Setup, key: number): boolean {
  s.tx.begin();
  const removed = s.table.remove(probe(s, key));
  s.tx.commit();
  return removed;
}

/** Performs the writes among `ops`, each as a transaction of its own; gets are skipped. */
function apply(s: Setup, ops: readonly Op[]): void {
  for (const [kind, key, value] of ops) {
    if (kind === "set") set(s, key, value);
    else if (kind === "delete") del(s, key);
  }
}

function get(s: Setup, key: number): number | undefined {
  const k = s.table.find(probe(s, key));
  if (k < 0) return undefined;
  const w = (k >> 2) + VALUE_WORDS;
  return codec.decode(s.arena, s.arena.i32[w], s.arena.i32[w + 1]);
}

/**
 * Checks the table's invariants (verify), and that the blocks it owns plus the journal are
 * exactly the blocks the allocator has handed out: nothing leaked, nothing owned twice.
 */
function audit(s: Setup): void {
  const owned = new Map<number, number>([[
    s.journalAt,
    blockSize(journalWords(JOURNAL_ENTRIES) * 4),
  ]]);
  s.table.verify((offset, bytes) => {
    assert.ok(!owned.has(offset), `block ${offset} owned twice`);
    owned.set(offset, blockSize(bytes));
  }, () => {});
  const heap = verifyHeap(s.arena);
  assert.deepEqual(
    [...heap.blocks].sort((a, b) => a[0] - b[0]),
    [...owned].sort((a, b) => a[0] - b[0]),
  );
}

/** The smallest B whose 2^B buckets hold `n` keys at Go's load factor of 6.5 (and 8 at B=0). */
function goB(n: number): number {
  let b = 0;
  while (n > 8 && n > 6.5 * 2 ** b) b++;
  return b;
}

/**
 * Every byte the table and allocator can reach: the arena header words (allocator state, heap
 * top, bytes in use, the root with the table header) and the bytes of every block handed out,
 * except the writer journal's entry area (garbage beyond its count).
 */
function snapshot(s: Setup): string {
  const a = s.arena;
  const blocks = [...verifyHeap(a).blocks].sort((x, y) => x[0] - y[0]);
  // The words of a slot that holds no key (its mark below MIN_TOP_HASH) are never read
  // (table_layout.ts), and an insert writes an empty slot's words without the journal: they
  // are not part of what a rollback restores.
  const i32 = a.i32.slice();
  forEachSlotBelow(i32, MIN_TOP_HASH - 1, (w) => {
    i32.fill(0, w, w + 2);
    i32.fill(0, w + VALUE_WORDS, w + VALUE_WORDS + 2);
  });
  const u8 = new Uint8Array(i32.buffer);
  const parts: unknown[] = [Array.from(i32.subarray(0, H_ALLOC_JOURNAL)), blocks];
  for (const [offset, bytes] of blocks) {
    const end = offset === s.journalAt ? offset + 48 : offset + bytes;
    parts.push(Array.from(u8.subarray(offset, end)));
  }
  return JSON.stringify(parts);
}

/**
 * Calls `fn` with the key slot's word index of every slot of the table's bucket arrays and their
 * chains whose mark is at most `most` (EMPTY_ONE: the empty slots), read from `i32`.
 */
function forEachSlotBelow(i32: Int32Array, most: number, fn: (w: number) => void): void {
  const u8 = new Uint8Array(i32.buffer, i32.byteOffset, i32.byteLength);
  const h = TABLE_AT >> 2;
  const n = 2 ** i32[h + T_B];
  const arrays: [number, number][] = [[i32[h + T_BUCKETS], n]];
  if (i32[h + T_OLDBUCKETS] !== 0) {
    const sameSize = (i32[h + T_FLAGS] & SAME_SIZE_GROW) !== 0;
    arrays.push([i32[h + T_OLDBUCKETS], sameSize ? n : n >> 1]);
  }
  for (const [at, count] of arrays) {
    for (let j = 0; j < count; j++) {
      for (let b = at + j * BUCKET_SIZE; b !== 0; b = i32[(b + OVERFLOW) >> 2]) {
        for (let i = 0; i < BUCKET_SLOTS; i++) {
          if (u8[b + i] <= most) fn((b + KEYS + 8 * i) >> 2);
        }
      }
    }
  }
}

/**
 * Writes key words `like` (a live key's) and a bogus value into every empty slot (mark
 * empty-one or empty-rest) of the table's bucket arrays and their chains, plainly: garbage a
 * reader must not look at.
 */
function poisonEmptySlots(s: Setup, like: Probe): void {
  const i32 = s.arena.i32;
  forEachSlotBelow(i32, EMPTY_ONE, (w) => {
    i32[w] = like.lo;
    i32[w + 1] = like.hi;
    i32[w + VALUE_WORDS] = 0x7ff80bad;
    i32[w + VALUE_WORDS + 1] = -1;
  });
}

const keys = fc.oneof(
  fc.integer({ min: -200, max: 200 }),
  fc.integer(),
  fc.constantFrom(0, -0, NaN, Infinity, -Infinity, 0.5, 2 ** 53),
);

type Op = [op: "set" | "delete" | "get", key: number, value: number];
const op: fc.Arbitrary<Op> = fc.tuple(
  fc.constantFrom("set" as const, "set" as const, "delete" as const, "get" as const),
  keys,
  fc.integer(),
);

describe("table", () => {
  it("insert, find and delete match a Map, through growth and deletes", () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 400 }), (steps) => {
        const s = setup();
        const model = new Map<number, number>();
        let n = 0;
        for (const [kind, key, value] of steps) {
          if (kind === "set") {
            set(s, key, value);
            assert.equal(s.table.inserted, !model.has(key));
            model.set(key, value);
          } else if (kind === "delete") {
            assert.equal(del(s, key), model.delete(key));
          }
          assert.equal(get(s, key), model.get(key));
          assert.equal(s.table.count, model.size);
          if (++n % 50 === 0) audit(s);
        }
        for (const [key, value] of model) assert.equal(get(s, key), value);
        audit(s);
        // What deletes handed to freeValue: one value slot per key removed.
        assert.equal(s.table.count, model.size);
      }),
      { numRuns: 60 },
    );
  });

  it("the words of an empty slot are never read: poisoned after every write, it still matches a Map", () => {
    // A delete leaves the key and value words of the slot it empties as they were (only the
    // mark changes), so nothing may read them: here every empty slot of both arrays gets the
    // words of a live key (the worst garbage: a stale duplicate) and a bogus value.
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 300 }), (steps) => {
        const s = setup();
        const model = new Map<number, number>();
        for (const [kind, key, value] of steps) {
          if (kind === "set") {
            set(s, key, value);
            model.set(key, value);
          } else if (kind === "delete") {
            assert.equal(del(s, key), model.delete(key));
          }
          const live = [...model.keys()];
          if (live.length > 0) poisonEmptySlots(s, probe(s, live[live.length >> 1]));
          assert.equal(get(s, key), model.get(key));
          assert.equal(s.table.count, model.size);
        }
        for (const [key, value] of model) assert.equal(get(s, key), value);
        const seen = new Map<number, number>();
        s.table.forEachKeySlot(0, 0, (k) => {
          const w = (k >> 2) + VALUE_WORDS;
          const key = codec.decode(s.arena, s.arena.i32[k >> 2], s.arena.i32[(k >> 2) + 1]);
          assert.ok(!seen.has(key), `key ${key} visited twice`);
          seen.set(key, codec.decode(s.arena, s.arena.i32[w], s.arena.i32[w + 1]));
        });
        assert.deepEqual(seen, model);
        audit(s);
      }),
      { numRuns: 60 },
    );
  });

  it("B grows by Go's rule: past 8 keys, and past 6.5 keys a bucket", () => {
    const s = setup(1024 * KiB);
    for (let n = 1; n <= 2000; n++) {
      set(s, n * 7919, n);
      const stats = s.table.stats();
      assert.equal(stats.B, goB(n), `after ${n} keys`);
      assert.equal(stats.buckets, 2 ** stats.B);
      assert.equal(stats.count, n);
    }
    audit(s);
    // A hint sizes the array up front: no growth until the hint is passed.
    const hinted = setup(1024 * KiB, 500);
    assert.equal(hinted.table.B, goB(500));
    for (let n = 1; n <= 500; n++) set(hinted, n, n);
    assert.equal(hinted.table.stats().growing, false);
    assert.equal(hinted.table.B, goB(500));
  });

  it("pow2 is 2 ** n past 31 bits too, and a hint of any size gets Go's B", () => {
    for (let n = -3; n <= 60; n++) assert.equal(pow2(n), 2 ** n, `pow2(${n})`);
    for (const hint of [0, 8, 9, 13, 14, 2 ** 20, 6.5 * 2 ** 30, 6.5 * 2 ** 30 + 1, 2 ** 40]) {
      assert.equal(bucketsForHint(hint), goB(hint), `hint ${hint}`);
    }
  });

  it("incremental evacuation moves every old bucket and finishes, one or two buckets a write", () => {
    const s = setup(1024 * KiB);
    const model = new Map<number, number>();
    let growths = 0;
    let key = 1;
    while (growths < 5) {
      set(s, key, -key);
      model.set(key, -key);
      key++;
      const stats = s.table.stats();
      if (!stats.growing) continue;
      growths++;
      assert.equal(stats.sameSizeGrow, false);
      const oldBuckets = 2 ** (stats.B - 1);
      let nevacuate = stats.nevacuate;
      let writes = 0;
      // Writes of both kinds do evacuation work: alternate inserts and deletes.
      while (s.table.stats().growing) {
        if (writes % 2 === 0) {
          set(s, key, -key);
          model.set(key, -key);
          key++;
        } else {
          const victim = model.keys().next().value!;
          assert.ok(del(s, victim));
          model.delete(victim);
        }
        writes++;
        assert.ok(writes <= oldBuckets, `${writes} writes and ${oldBuckets} old buckets`);
        const now = s.table.stats();
        assert.ok(now.nevacuate >= nevacuate + 1 || !now.growing, "progress every write");
        nevacuate = now.nevacuate;
        // Mid-growth, every key is found (in its old or its new bucket) and verify holds.
        if (writes % 4 === 0) {
          audit(s);
          for (const [k, v] of model) assert.equal(get(s, k), v);
        }
      }
      assert.ok(writes <= oldBuckets, `${writes} writes to evacuate ${oldBuckets} buckets`);
      audit(s);
      for (const [k, v] of model) assert.equal(get(s, k), v);
    }
  });

  it("churn with few keys grows to the same size, which compacts the overflow chains", () => {
    const s = setup(256 * KiB);
    const live: number[] = [];
    let next = 1;
    let rng = 12345;
    const random = (n: number): number => { // mulberry32
      rng = (rng + 0x6d2b79f5) | 0;
      let t = Math.imul(rng ^ (rng >>> 15), 1 | rng);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    while (live.length < 20) {
      set(s, next, next);
      live.push(next++);
    }
    const B = s.table.B;
    assert.equal(B, 2);
    let sameSize = 0;
    for (let i = 0; i < 20_000 && sameSize < 3; i++) {
      // Keep 15..24 keys: B stays 2 (a doubling needs 27), while deletes leave holes that new
      // keys fill only in their own bucket, so chains grow overflow buckets now and then.
      if (live.length > 15 && (live.length >= 24 || random(2) === 0)) {
        const at = random(live.length);
        assert.ok(del(s, live[at]));
        live[at] = live[live.length - 1];
        live.pop();
      } else {
        const before = s.table.stats();
        set(s, next, next);
        live.push(next++);
        const after = s.table.stats();
        if (!before.growing && after.growing) {
          assert.equal(after.sameSizeGrow, true, "a growth with few keys keeps the size");
          assert.equal(after.B, B);
          assert.ok(before.overflowBuckets >= 2 ** B, "started by as many overflows as buckets");
          audit(s);
          for (let writes = 0; s.table.stats().growing; writes++) {
            assert.ok(writes <= 2 ** B, "every write evacuates a bucket");
            const at = random(live.length);
            assert.ok(del(s, live[at]));
            set(s, live[at], live[at]);
          }
          assert.equal(s.table.B, B);
          assert.ok(s.table.stats().overflowBuckets < 2 ** B, "compacted");
          sameSize++;
        }
      }
    }
    assert.equal(sameSize, 3, "same-size growths seen");
    audit(s);
    for (const k of live) assert.equal(get(s, k), k);
    assert.equal(s.table.count, live.length);
  });

  it("a clear in steps frees every key and overflow bucket, growing or not, and keeps B", () => {
    const i32Of = (s: Setup, word: number): number => s.arena.i32[(TABLE_AT >> 2) + word];
    // Header words (table.ts): 3 overflow buckets of the current array, 5 the old array, 7
    // overflow buckets of the old array.
    const scenarios: [string, (s: Setup) => boolean][] = [
      [
        "mid-growth, overflow buckets on the old array",
        (s) => i32Of(s, 5) !== 0 && i32Of(s, 7) > 0,
      ],
      ["grown, overflow buckets on the current array", (s) => i32Of(s, 5) === 0 && i32Of(s, 3) > 0],
    ];
    for (const [what, ready] of scenarios) {
      const s = setup(1024 * KiB);
      const model = new Map<number, number>();
      for (let key = 1;; key++) {
        set(s, key * 31, key);
        model.set(key * 31, key);
        if (s.table.B >= 5 && ready(s)) break;
        assert.ok(key < 100_000, what);
      }
      const B = s.table.B;
      const growing = s.table.stats().growing;
      const steps = s.table.clearSteps;
      assert.equal(steps, 2 ** B + (growing ? 2 ** (B - 1) : 0), "old buckets, then current ones");
      s.freed.values = 0;
      for (let step = 0; step < steps;) {
        s.tx.begin();
        if (s.table.clearStep(step)) step++;
        s.tx.commit();
        // Steps change no count: keys of buckets not yet cleared may still be found.
        assert.equal(s.table.count, model.size);
      }
      s.tx.begin();
      s.table.finishClear();
      s.tx.commit();
      assert.equal(s.freed.values, model.size, `${what}: every value handed to freeValue once`);
      const stats = s.table.stats();
      assert.deepEqual(
        [stats.count, stats.B, stats.growing, stats.overflowBuckets, stats.nevacuate],
        [0, B, false, 0, 0],
      );
      audit(s); // the old array and every overflow bucket went back to the allocator
      for (const key of model.keys()) assert.equal(get(s, key), undefined);
      // And the table works again.
      for (const [key, value] of model) set(s, key, value + 1);
      for (const [key, value] of model) assert.equal(get(s, key), value + 1);
      audit(s);
    }
  });

  it("deleting every key leaves each chain marked empty-rest from its first slot", () => {
    // Go's mapdelete turns trailing empty slots into empty-rest marks, walking back through the
    // chain, so that a lookup in an emptied bucket stops at its first slot.
    const s = setup(1024 * KiB);
    const keys: number[] = [];
    for (let key = 1; key <= 400; key++) {
      set(s, key * 17, key);
      keys.push(key * 17);
    }
    s.tx.begin();
    s.table.finishGrowth();
    s.tx.commit();
    assert.ok(s.table.stats().overflowBuckets > 0, "some chains have overflow buckets");
    // Deleted in an order unrelated to the slots: the marks must still reach the heads.
    for (let i = 0; i < keys.length; i++) assert.ok(del(s, keys[(i * 263) % keys.length]));
    assert.equal(s.table.count, 0);
    for (let j = 0; j < s.table.stats().buckets; j++) {
      const { offset, overflowWord } = bucketAt(s.arena, TABLE_AT, j);
      assert.equal(s.arena.u8[offset], 0, `bucket ${j} starts with an empty-rest mark`);
      for (let b = s.arena.i32[overflowWord]; b !== 0; b = s.arena.i32[(b + 136) >> 2]) {
        assert.equal(s.arena.u8[b], 0, `an overflow bucket of bucket ${j}`);
      }
    }
    audit(s);
  });

  it("verify reports a looping or misdirected overflow link and a wrong count", () => {
    const filled = (): Setup => {
      // At least 300 keys, and at least one overflow bucket on the current array.
      const s = setup(1024 * KiB);
      for (let key = 1; key <= 300 || s.table.stats().overflowBuckets === 0; key++) {
        set(s, key, key);
        if (key > 300) {
          s.tx.begin();
          s.table.finishGrowth();
          s.tx.commit();
        }
        assert.ok(key < 10_000);
      }
      s.tx.begin();
      s.table.finishGrowth();
      s.tx.commit();
      audit(s);
      return s;
    };
    /** The first bucket of the current array that satisfies `ok`. */
    const first = (s: Setup, ok: (offset: number, link: number) => boolean): number => {
      for (let j = 0; j < s.table.stats().buckets; j++) {
        const { offset, overflowWord } = bucketAt(s.arena, TABLE_AT, j);
        if (ok(offset, s.arena.i32[overflowWord])) return j;
      }
      throw new Error("no such bucket");
    };
    const verify = (s: Setup): void => s.table.verify(() => {}, () => {});
    // A chain that loops back to its head.
    {
      // A bucket with an overflow bucket is full (no deletes happened), so no empty-rest mark
      // ends the walk: only the loop check does.
      const s = filled();
      const j = first(s, (_, link) => link !== 0);
      const { offset, overflowWord } = bucketAt(s.arena, TABLE_AT, j);
      s.arena.i32[overflowWord] = offset;
      assert.throws(() => verify(s), /an overflow chain loops/);
      // A lookup of a missing key walks that chain: it throws, it does not hang.
      assert.throws(
        () => {
          for (let key = 1_000_000; key < 1_002_000; key++) get(s, key);
        },
        /loops/,
      );
    }
    // A link into another bucket's chain: keys in the wrong bucket.
    {
      // From a bucket with a chain (so full: no empty-rest mark stops the walk), whose overflow
      // buckets are cut off, into another bucket that holds a key in its first slot (an empty
      // one would end the walk at once, and only the count would disagree).
      const s = filled();
      const j = first(s, (_, link) => link !== 0);
      const a = bucketAt(s.arena, TABLE_AT, j);
      const b = bucketAt(
        s.arena,
        TABLE_AT,
        first(s, (offset) => offset !== a.offset && s.arena.u8[offset] >= 5),
      );
      s.arena.i32[a.overflowWord] = b.offset;
      assert.throws(() => verify(s), /verify: table at \d+: .*key in the wrong bucket/);
    }
    // A count that disagrees with the keys.
    {
      const s = filled();
      const n = s.table.count;
      s.arena.i32[TABLE_AT >> 2] += 1;
      assert.throws(() => verify(s), new RegExp(`count ${n + 1} but ${n} keys found`));
    }
    // A tophash byte that disagrees with its key.
    {
      const s = filled();
      const { offset } = bucketAt(s.arena, TABLE_AT, first(s, (offset) => s.arena.u8[offset] >= 5));
      s.arena.u8[offset] = s.arena.u8[offset] === 255 ? 254 : s.arena.u8[offset] + 1;
      assert.throws(() => verify(s), /tophash does not match|empty-rest/);
    }
  });

  it("tx.abort restores every reachable byte after a batch of writes, growth included", () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 200 }),
        fc.array(op, { minLength: 1, maxLength: 60 }),
        (prefix, batch) => {
          const s = setup(256 * KiB);
          apply(s, prefix);
          const before = snapshot(s);
          s.tx.begin();
          for (const [kind, key, value] of batch) {
            if (kind === "set") put(s, key, value);
            else if (kind === "delete") s.table.remove(probe(s, key));
          }
          s.tx.abort();
          assert.equal(snapshot(s), before);
          audit(s);
        },
      ),
      { numRuns: 80 },
    );
  });

  it("a death at any journaled write of a write is rolled back by the journal alone", () => {
    fc.assert(
      fc.property(
        fc.array(op, { minLength: 20, maxLength: 120 }),
        fc.array(op, { minLength: 1, maxLength: 8 }),
        (prefix, tail) => {
          const s = setup(256 * KiB);
          apply(s, prefix);
          for (const [kind, key, value] of tail) {
            if (kind === "get") continue;
            const before = snapshot(s);
            for (let killAt = 0;; killAt++) {
              const died = diesAt(s.tx.journal, killAt, () => {
                s.tx.begin();
                if (kind === "set") put(s, key, value);
                else s.table.remove(probe(s, key));
                s.tx.commit();
              });
              if (!died) break;
              // What the next writer does on finding the writer dead: recover its journal.
              new Journal(s.arena, s.journalAt >> 2, JOURNAL_ENTRIES).recover();
              assert.equal(snapshot(s), before, `death at write ${killAt} of ${kind} ${key}`);
            }
            audit(s);
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  it("a write rolled back mid-growth leaves the evacuated buckets as they were", () => {
    // The evacuations a write performs fill buckets of an array an earlier write allocated:
    // only the journal's zero-range entries can empty them again.
    const s = setup(1024 * KiB);
    let key = 1;
    let checked = 0;
    for (let growths = 0; growths < 4;) {
      set(s, key, key);
      key++;
      if (!s.table.stats().growing) continue;
      growths++;
      while (s.table.stats().growing) {
        const before = snapshot(s);
        s.tx.begin();
        put(s, key + 1_000_000, 1);
        s.table.remove(probe(s, key - 1));
        s.tx.abort();
        assert.equal(snapshot(s), before, `growth ${growths}, key ${key}`);
        checked++;
        set(s, key, key);
        key++;
      }
      audit(s);
    }
    assert.ok(checked >= 4);
    for (let k = 1; k < key; k++) assert.equal(get(s, k), k);
  });

  it("rollbackTo a savepoint undoes the writes after it, and the rest commits", () => {
    const s = setup(256 * KiB);
    for (let key = 1; key <= 12; key++) set(s, key, key);
    s.tx.begin();
    put(s, 100, 100);
    s.table.remove(probe(s, 3));
    const point = s.tx.savepoint();
    const atPoint = snapshot(s);
    for (let key = 200; key < 260; key++) put(s, key, key); // grows, allocates, evacuates
    s.table.remove(probe(s, 5));
    assert.ok(s.table.count > 60);
    s.tx.rollbackTo(point);
    assert.equal(snapshot(s), atPoint);
    s.tx.commit();
    audit(s);
    assert.equal(get(s, 100), 100);
    assert.equal(get(s, 3), undefined);
    assert.equal(get(s, 5), 5);
    assert.equal(get(s, 200), undefined);
    assert.equal(s.table.count, 12);
  });
});
