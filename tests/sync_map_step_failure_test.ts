// SyncMap steps cut short past a write that is not journaled: a record stored into an entry
// (exchange or compare-exchange of E_P), an expunged entry put back (unexpungeLocked), a key
// added by a step that committed. First, the unexpunge, cut short two ways:
// - the thread dies before the commit, while the dirty table is part-way through a growth: the
//   mutex's next holder rolls the step back and re-inserts the entry. That insert used to finish
//   the whole growth in one step, which overflowed the mutex's journal for tables of a few
//   hundred keys, so every later locked call threw JournalFullError for good;
// - the commit throws in a live thread (a stack overflow): the rollback left a value missing
//   from the dirty table, lost at the next promotion.

import { test } from "node:test";
import assert from "node:assert/strict";
import { MapFullError, SyncMap, threadGone } from "../mod.ts";
import { Journal } from "../src/_engine/journal.ts";
import { Participant } from "../src/_engine/reclaim.ts";
import { Table } from "../src/_engine/table.ts";
import { SyncCore } from "../src/maps/_sync_core.ts";
import { OWNER_SHIFT, POISONED } from "../src/_engine/futex.ts";
import { T_OLDBUCKETS } from "../src/_engine/table_layout.ts";
import { R_DIRTY, R_MU } from "../src/maps/_sync_layout.ts";

class Injected extends Error {}

/**
 * Makes the next commit of a SyncMap step (the one commit given a releaser; an allocator step's
 * commit takes none) throw `error()` first; returns how to undo that.
 */
function failNextCommit(before: () => void, error: () => Error): () => void {
  const commit = Journal.prototype.commit;
  let armed = true;
  Journal.prototype.commit = function (this: Journal, ...args) {
    if (armed && args[0] !== undefined) {
      armed = false;
      before();
      throw error();
    }
    return commit.apply(this, args);
  };
  return () => Journal.prototype.commit = commit;
}

/**
 * A map of `n` keys promoted to the read table, key 0 deleted, then new keys until the dirty
 * table (built with key 0 expunged) is growing.
 */
function growingWithExpunged(n: number): SyncMap<number, number> {
  const m = new SyncMap<number, number>();
  for (let k = 0; k < n; k++) m.store(k, k);
  for (let i = 0; i < 3 && m.stats().amended; i++) for (let k = 0; k < n; k++) m.load(k);
  assert.equal(m.stats().amended, false, "promoted");
  m.delete(0);
  const i32 = new Int32Array(m.handle.buffer);
  let extra = n;
  m.store(extra++, 1); // builds the dirty table: key 0's entry expunged
  while (i32[(i32[R_DIRTY] >> 2) + T_OLDBUCKETS] === 0) m.store(extra++, 1);
  return m;
}

// The value stored over the expunged entry: an integer (an immediate, held in the entry word) or
// a fraction (a value record, allocated before the step).
const VALUES = [42, 42.5];

for (const value of VALUES) {
  test(`SyncMap: a death after an unexpunge, in a growing dirty table of 1,600 keys, is repaired (value ${value})`, () => {
    const dead = 999_001;
    threadGone(dead);
    const m = growingWithExpunged(1600);
    const before = m.size;
    const buffer = m.handle.buffer;
    let image: Uint8Array | null = null;
    // The death: memory as it was the instant before the commit, the mutex held by a gone thread.
    const restore = failNextCommit(
      () => image = new Uint8Array(buffer).slice(),
      () => new Injected(),
    );
    try {
      assert.throws(() => m.store(0, value), Injected);
    } finally {
      restore();
    }
    new Uint8Array(buffer).set(image!);
    const i32 = new Int32Array(buffer);
    i32[R_MU] = ((dead + 1) << OWNER_SHIFT) | (i32[R_MU] & POISONED);
    // Every call goes on. The store's exchange of the entry's value is not journaled, so the
    // value it stored stands, counted (its dirty-table insert is what the recovery redoes).
    for (let i = 0; i < 3; i++) m.store(123_456 + i, i);
    assert.equal(m.load(123_456), 0);
    m.verify();
    assert.equal(m.load(0), value);
    assert.equal(m.size, before + 3 + 1);
    m.store(0, 7);
    assert.equal(m.load(0), 7);
    for (let k = 1; k < 1600; k += 37) assert.equal(m.load(k), k);
    m.verify();
  });

  test(`SyncMap: a commit that throws after an unexpunge leaves the value in the dirty table (value ${value})`, () => {
    const m = growingWithExpunged(200);
    const restore = failNextCommit(
      () => {},
      () => new RangeError("Maximum call stack size exceeded (injected)"),
    );
    try {
      assert.throws(() => m.store(0, value), /injected/);
    } finally {
      restore();
    }
    // E_P is not journaled: the value stands, and must be in the dirty table too.
    m.verify();
    assert.equal(m.load(0), value);
    // Promote the dirty table (misses), and the key is still there.
    for (let i = 0; i < 3 && m.stats().amended; i++) {
      for (let k = 0; k < 2 * m.size; k++) m.load(-1 - k);
    }
    assert.equal(m.stats().amended, false, "promoted");
    assert.equal(m.load(0), value);
    m.verify();
  });
}

test("SyncMap: a commit that throws after a locked store's exchange keeps its record alive", () => {
  // A key only in the dirty table is stored under the mutex by an exchange of its entry's
  // value: not journaled, so a rollback leaves the new record published, and the caller freed
  // it as unused (a block both in a cache and in use).
  for (const op of ["store", "swap"] as const) {
    const m = new SyncMap<number, string>();
    m.store(1, "one");
    assert.equal(m.stats().readKeys, 0, "only in the dirty table");
    const restore = failNextCommit(
      () => {},
      () => new RangeError("Maximum call stack size exceeded (injected)"),
    );
    try {
      assert.throws(() => op === "store" ? m.store(1, "two") : m.swap(1, "two"), /injected/);
    } finally {
      restore();
    }
    m.verify();
    assert.equal(m.load(1), "two", op);
    for (let i = 0; i < 100; i++) m.store(100 + i, `v${i}`); // reuse of freed blocks
    assert.equal(m.load(1), "two", op);
    m.verify();
  }
});

/** Makes the next call of `proto[name]` throw as a stack overflow would; returns the undo. */
function failNextCall<T extends object>(proto: T, name: string): () => void {
  const methods = proto as Record<string, (...args: unknown[]) => unknown>;
  const original = methods[name];
  let armed = true;
  methods[name] = function (this: unknown, ...args: unknown[]) {
    if (armed) {
      armed = false;
      throw new RangeError("Maximum call stack size exceeded (injected)");
    }
    return original.apply(this, args);
  };
  return () => methods[name] = original;
}

test("SyncMap: a call that throws right after a step's compare-exchange stored its record", () => {
  // loadOrStore and compute marked their record published only once the helper that stored it
  // returned: a throw inside it (the count, the retirement of the old record) freed a record
  // the entry points at, and later loads read another key's value or a corrupt offset.
  const cases = [
    {
      name: "loadOrStore, the count",
      setup: (m: SyncMap<number, string>) => {
        m.store(1, "one-value");
        m.compareAndDelete(1, "one-value"); // in the dirty table only, with no value
      },
      fail: () => failNextCall(SyncCore.prototype, "count"),
      op: (m: SyncMap<number, string>) => m.loadOrStore(1, "two-value"),
    },
    {
      name: "compute, the retirement",
      setup: (m: SyncMap<number, string>) => m.store(1, "one-value"),
      fail: () => failNextCall(Participant.prototype, "retire"),
      op: (m: SyncMap<number, string>) => m.compute(1, () => "two-value"),
    },
    {
      name: "swap, the retirement",
      setup: (m: SyncMap<number, string>) => m.store(1, "one-value"),
      fail: () => failNextCall(Participant.prototype, "retire"),
      op: (m: SyncMap<number, string>) => m.swap(1, "two-value"),
    },
  ];
  for (const c of cases) {
    const m = new SyncMap<number, string>();
    c.setup(m);
    const restore = c.fail();
    try {
      assert.throws(() => c.op(m), /injected/, c.name);
    } finally {
      restore();
    }
    assert.equal(m.load(1), "two-value", c.name);
    for (let i = 0; i < 200; i++) m.store(1000 + i, `XXXXX${i}`); // reuse of freed blocks
    assert.equal(m.load(1), "two-value", c.name);
    // (The count, or the old record's retirement, cut short is a key miscounted or a record
    // left to the sweep: what a stack overflow exactly there costs.)
  }
});

test("SyncMap: a step that added a key and committed, then threw, keeps the key's record", () => {
  // The record was the caller's to free unless an exchange had published it: a throw after
  // the commit (the intent that marks the old read table's entries) freed a live key's record.
  const m = new SyncMap<number, string>();
  for (let k = 0; k < 200; k++) m.store(k, `v${k}`);
  for (let i = 0; i < 3 && m.stats().amended; i++) for (let k = 0; k < 200; k++) m.load(k);
  assert.equal(m.stats().amended, false, "promoted");
  for (let k = 0; k < 150; k++) m.delete(k); // mostly deleted: the next add promotes at once
  const restore = failNextCall(Journal.prototype, "arg");
  try {
    assert.throws(() => m.store(5000, "new-key-value"), /injected/);
  } finally {
    restore();
  }
  assert.equal(m.load(5000), "new-key-value");
  for (let i = 0; i < 100; i++) m.store(9000 + i, `XXXXXXXXXXXXX${i}`);
  assert.equal(m.load(5000), "new-key-value");
  assert.equal(m.size, 151, "the added key counted");
  m.verify();
});

test("SyncMap: a live repair that fails leaves its step's own error, and no second run", () => {
  // The commit throws after an unexpunge and an exchange; the repair then finds no memory.
  // Its MapFullError reached lockedOrReclaim, which ran the step again: the record, exchanged
  // over itself, was retired as the previous value while the entry still held it.
  const m = new SyncMap<number, string>();
  for (let k = 0; k < 40; k++) m.store(k, `v${k}`);
  for (let i = 0; i < 3 && m.stats().amended; i++) for (let k = 0; k < 40; k++) m.load(k);
  assert.equal(m.stats().amended, false, "promoted");
  m.delete(0);
  m.store(1000, "x"); // builds the dirty table: key 0's entry expunged
  const restoreCommit = failNextCommit(
    () => {},
    () => new RangeError("Maximum call stack size exceeded (injected)"),
  );
  const insertUnique = Table.prototype.insertUnique;
  let repairs = 0;
  Table.prototype.insertUnique = function (this: Table, ...args) {
    if (args[3] === true && repairs++ === 0) throw new MapFullError(144, 0);
    return insertUnique.apply(this, args);
  };
  try {
    assert.throws(() => m.store(0, "zero-value-stored"), /injected/);
  } finally {
    restoreCommit();
    Table.prototype.insertUnique = insertUnique;
  }
  assert.equal(repairs, 1, "the live repair ran, and failed");
  assert.equal(m.load(0), "zero-value-stored");
  for (let r = 0; r < 5; r++) for (let i = 0; i < 300; i++) m.store(5000 + i, `YYYYYYYYYY${r}`);
  assert.equal(m.load(0), "zero-value-stored");
  m.verify(); // the mutex's next holder repaired what the failed repair left
});
