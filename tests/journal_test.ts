// Engine unit tests of journals (src/_engine/journal.ts) on their own, over a plain shared
// Int32Array: word, byte and zero-range entries undone by recover and by rollbackTo, commits
// that empty the journal, words published only at commit (and by a recovery that rolls a
// COMMITTING journal forward), FREE and DEFER entries, a full journal, and intents.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  ACTIVE,
  COMMITTING,
  IDLE,
  J_ARGS,
  J_INTENT,
  Journal,
  JournalFullError,
  journalWords,
} from "../src/_engine/journal.ts";
import { MapFullError } from "../src/errors.ts";

/** Words of data the journal guards: [0, DATA). */
const DATA = 64;
/** Where the journal lives. */
const AT = 128;
/**
 * Words of the test buffer: past the journal, room for the blocks that FREE and DEFER entries
 * name, which a journal checks lie inside its view.
 */
const WORDS = 16384;

/** The journal's header words the tests read directly: journal.ts's layout, from AT on. */
function header(i32: Int32Array): { count: number; capacity: number; state: number } {
  const [count, capacity, state] = i32.subarray(AT, AT + 3);
  return { count, capacity, state };
}

interface Setup {
  i32: Int32Array;
  j: Journal;
}

/** A shared buffer with data words [0, DATA) and a journal of `capacity` entries at AT. */
function setup(capacity = 32): Setup {
  const i32 = new Int32Array(new SharedArrayBuffer(WORDS * 4));
  Journal.format(i32, AT, capacity);
  return { i32, j: new Journal({ i32 }, AT, capacity) };
}

function data(i32: Int32Array): number[] {
  return Array.from(i32.subarray(0, DATA));
}

/** Everything but the journal's entry area (garbage beyond the count is allowed). */
function state(i32: Int32Array): number[] {
  return Array.from(i32.subarray(0, AT + 12));
}

type Op =
  | { kind: "set"; index: number; value: number }
  | { kind: "byte"; offset: number; value: number }
  | { kind: "zero"; start: number; length: number; fill: number };

const ops: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant("set" as const),
    index: fc.integer({ min: 0, max: DATA - 1 }),
    value: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  }),
  fc.record({
    kind: fc.constant("byte" as const),
    offset: fc.integer({ min: 0, max: DATA * 4 - 1 }),
    value: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({
    kind: fc.constant("zero" as const),
    start: fc.integer({ min: 0, max: DATA - 1 }),
    length: fc.integer({ min: 1, max: 8 }),
    fill: fc.integer({ min: 1, max: 1000 }),
  }),
);

/**
 * Applies `op` through the journal. A zero-range entry promises the range was zero: the op
 * zeroes it first (outside the journal, as memory the mutation knows is empty), records the
 * entry, then fills it with plain writes, as an evacuation fills empty buckets.
 */
function apply(s: Setup, op: Op): void {
  const u8 = new Uint8Array(s.i32.buffer);
  switch (op.kind) {
    case "set":
      s.j.set(op.index, op.value);
      break;
    case "byte":
      s.j.setByte(u8, op.offset, op.value);
      break;
    case "zero": {
      const end = Math.min(DATA, op.start + op.length);
      // Only ranges that are zero before may be journaled as ZERO.
      if (s.i32.subarray(op.start, end).some((w) => w !== 0)) break;
      s.j.zeroed(op.start, end);
      s.i32.fill(op.fill, op.start, end);
      break;
    }
  }
}

/** Random initial data with some zero runs, so that ZERO entries get used. */
const initial = fc.array(fc.oneof(fc.constant(0), fc.integer()), {
  minLength: DATA,
  maxLength: DATA,
});

describe("journal", () => {
  it("recover undoes set, setByte and zeroed entries, newest first, to the exact prior data", () => {
    fc.assert(
      fc.property(initial, fc.array(ops, { minLength: 1, maxLength: 30 }), (init, steps) => {
        const s = setup(32);
        s.i32.set(init);
        const before = state(s.i32);
        s.j.begin();
        assert.equal(header(s.i32).state, ACTIVE);
        for (const op of steps) apply(s, op);
        assert.ok(s.j.dirty);
        s.j.recover();
        assert.deepEqual(state(s.i32), before);
        assert.equal(s.j.length, 0);
        assert.equal(s.j.dirty, false);
        // Idempotent: a second recovery (a recoverer that died after finishing) changes nothing.
        s.j.recover();
        assert.deepEqual(state(s.i32), before);
      }),
      { numRuns: 300 },
    );
  });

  it("commit keeps the writes and empties the journal", () => {
    fc.assert(
      fc.property(initial, fc.array(ops, { minLength: 1, maxLength: 30 }), (init, steps) => {
        const s = setup(32);
        s.i32.set(init);
        // The same ops on a copy without a journal give the expected data.
        const model = setup(32);
        model.i32.set(init);
        model.j.begin();
        for (const op of steps) apply(model, op);
        const expected = data(model.i32);
        s.j.begin();
        for (const op of steps) apply(s, op);
        s.j.commit();
        assert.deepEqual(data(s.i32), expected);
        assert.equal(s.j.length, 0);
        assert.equal(header(s.i32).state, IDLE);
        assert.equal(s.j.dirty, false);
        assert.equal(s.j.room, 32);
        // A recovery of a committed journal undoes nothing.
        s.j.recover();
        assert.deepEqual(data(s.i32), expected);
      }),
      { numRuns: 200 },
    );
  });

  it("rollbackTo(mark) undoes only what came after the mark", () => {
    fc.assert(
      fc.property(
        initial,
        fc.array(ops, { maxLength: 15 }),
        fc.array(ops, { minLength: 1, maxLength: 15 }),
        (init, first, second) => {
          const s = setup(32);
          s.i32.set(init);
          s.j.begin();
          for (const op of first) apply(s, op);
          const mark = s.j.mark;
          const atMark = state(s.i32);
          for (const op of second) apply(s, op);
          s.j.rollbackTo(mark);
          assert.deepEqual(state(s.i32), atMark);
          assert.equal(s.j.length, mark);
          assert.equal(header(s.i32).state, ACTIVE, "still in the mutation");
        },
      ),
      { numRuns: 200 },
    );
  });

  it("begin on a journal in use throws a RangeError: the journal is corrupt", () => {
    const s = setup();
    s.j.begin();
    assert.throws(() => s.j.begin(), { name: "RangeError", message: /corrupt journal/ });
    s.j.set(3, 7);
    s.j.commit();
    s.j.begin(); // idle again
  });

  it("publishAtCommit stores the word only at commit, and a rollback never stores it", () => {
    const s = setup();
    s.i32[5] = 11;
    s.j.begin();
    s.j.set(6, 1);
    s.j.publishAtCommit(5, 99);
    assert.equal(s.i32[5], 11, "not before the commit");
    s.j.commit();
    assert.equal(s.i32[5], 99);
    assert.equal(s.i32[6], 1);
    assert.equal(s.j.dirty, false);

    s.j.begin();
    s.j.set(6, 2);
    s.j.publishAtCommit(5, 123);
    s.j.recover(); // the holder died before committing
    assert.equal(s.i32[5], 99, "a rolled-back mutation publishes nothing");
    assert.equal(s.i32[6], 1);
    // The noted word does not leak into the next mutation.
    s.j.begin();
    s.j.commit();
    assert.equal(s.i32[5], 99);
  });

  it("recovery of a COMMITTING journal rolls forward: publishes and performs the deferred frees", () => {
    // A death at each point of a commit, made by a view source whose i32 throws on its n-th read:
    // before COMMITTING is set the mutation is rolled back, after it the commit is finished.
    const seen = { back: 0, forward: 0 };
    for (let dieAt = 1;; dieAt++) {
      const { i32 } = setup(16);
      let calls = 0;
      let armed = false;
      class Killed extends Error {}
      const j = new Journal(
        {
          get i32() {
            if (armed && ++calls === dieAt) throw new Killed();
            return i32;
          },
        },
        AT,
        16,
      );
      const freed: [number, number][] = [];
      const free = (offset: number, size: number, countWord: number, count: number): void => {
        freed.push([offset, size]);
        i32[countWord] = count; // truncates, as the allocator step does
      };
      i32[1] = 10;
      i32[2] = 20;
      j.begin();
      j.set(1, 11);
      j.deferFree(1024, 48);
      j.set(2, 21);
      j.deferFree(2048, 4096);
      j.publishAtCommit(3, 77);
      armed = true;
      let finished = false;
      try {
        j.commit(free);
        finished = true;
      } catch (error) {
        if (!(error instanceof Killed)) throw error;
      }
      armed = false;
      if (finished) {
        assert.ok(
          seen.back > 0 && seen.forward > 0,
          `both kinds of death: ${JSON.stringify(seen)}`,
        );
        break;
      }
      const committing = header(i32).state === COMMITTING;
      const publishedBefore = i32[3];
      j.recover(free);
      assert.equal(header(i32).state, IDLE);
      assert.equal(j.length, 0);
      seen[committing ? "forward" : "back"]++;
      if (committing) {
        // Rolled forward: the writes stay, the word is published, every block freed once.
        assert.deepEqual([i32[1], i32[2], i32[3]], [11, 21, 77], `death at call ${dieAt}`);
        assert.deepEqual(freed.sort((a, b) => a[0] - b[0]), [[1024, 48], [2048, 4096]]);
      } else {
        assert.equal(publishedBefore, 0);
        assert.deepEqual([i32[1], i32[2], i32[3]], [10, 20, 0], `death at call ${dieAt}`);
        assert.deepEqual(freed, []);
      }
    }
  });

  it("a deferred free is not done by a rollback; an allocated block is freed by one", () => {
    const s = setup();
    const freed: [number, number][] = [];
    const free = (offset: number, size: number, countWord: number, count: number): void => {
      freed.push([offset, size]);
      s.i32[countWord] = count;
    };
    s.j.begin();
    s.j.allocatedFrom(() => 4096, 64);
    s.j.set(0, 5);
    s.j.deferFree(8192, 32);
    s.j.recover(free);
    assert.deepEqual(freed, [[4096, 64]]);
    assert.equal(s.i32[0], 0);
    // A FREE entry in a journal with no free function (a GoMap's, the allocator's) is
    // corrupt: an error before anything is written, not a silent leak.
    s.j.begin();
    s.j.set(1, 9);
    s.j.allocatedFrom(() => 4096, 64);
    assert.throws(() => s.j.rollbackTo(0), { name: "RangeError", message: /entry 1 is/ });
    assert.equal(s.i32[1], 9, "nothing rolled back");
  });

  it("a commit frees exactly the deferred blocks, with or without a word to publish", () => {
    for (const publish of [false, true]) {
      const s = setup();
      const freed: [number, number][] = [];
      const free = (offset: number, size: number, countWord: number, count: number): void => {
        freed.push([offset, size]);
        s.i32[countWord] = count;
      };
      // A commit with no DEFER entry frees nothing, allocations included.
      s.j.begin();
      s.j.allocatedFrom(() => 4096, 64);
      s.j.set(0, 5);
      s.j.commit(free);
      assert.deepEqual(freed, []);
      // Deferred frees among other entries, the last one followed by more entries.
      s.j.begin();
      s.j.set(1, 6);
      s.j.deferFree(8192, 32);
      s.j.allocatedFrom(() => 12288, 16);
      s.j.zeroed(8, 12);
      s.j.deferFree(16384, 48);
      s.j.set(2, 7);
      if (publish) s.j.publishAtCommit(3, 9);
      s.j.commit(free);
      assert.deepEqual(freed, [[16384, 48], [8192, 32]], "newest first, each once");
      assert.deepEqual([s.i32[0], s.i32[1], s.i32[2], s.i32[3]], [5, 6, 7, publish ? 9 : 0]);
      assert.deepEqual(header(s.i32), { count: 0, capacity: 32, state: IDLE });
      // A DEFER entry rolled back to a savepoint is not freed by the commit after it.
      freed.length = 0;
      s.j.begin();
      const mark = s.j.mark;
      s.j.deferFree(20480, 16);
      s.j.rollbackTo(mark, free);
      s.j.set(4, 1);
      s.j.commit(free);
      assert.deepEqual(freed, []);
    }
  });
  it("allocatedVia writes the FREE entry through the outer journal, so the outer rollback drops it", () => {
    const i32 = new Int32Array(new SharedArrayBuffer(WORDS * 4));
    Journal.format(i32, AT, 32);
    const outerAt = AT + journalWords(32);
    Journal.format(i32, outerAt, 8);
    const inner = new Journal({ i32 }, AT, 32);
    const alloc = new Journal({ i32 }, outerAt, 8);
    inner.begin();
    alloc.begin();
    inner.allocatedVia(4096, 64, alloc);
    assert.equal(inner.length, 1);
    assert.equal(alloc.length, 3, "entry's two words and the count, journaled");
    alloc.recover(); // the allocator step died: the FREE entry goes with it
    assert.equal(inner.length, 0);
    alloc.begin();
    inner.allocatedVia(4096, 64, alloc);
    alloc.commit();
    const freed: number[][] = [];
    inner.recover((offset, size, countWord, count) => {
      freed.push([offset, size]);
      i32[countWord] = count;
    });
    assert.deepEqual(freed, [[4096, 64]]);
  });

  it("a full journal throws JournalFullError, a MapFullError, and writes nothing", () => {
    const s = setup(4);
    s.j.begin();
    for (let i = 0; i < 4; i++) s.j.set(i, 100 + i);
    assert.equal(s.j.room, 0);
    const before = state(s.i32);
    for (
      const attempt of [
        () => s.j.set(10, 1),
        () => s.j.setByte(new Uint8Array(s.i32.buffer), 44, 1),
        () => s.j.zeroed(20, 30),
        () => s.j.allocatedFrom(() => 4096, 16),
        () => s.j.deferFree(4096, 16),
      ]
    ) {
      let error: unknown;
      try {
        attempt();
      } catch (e) {
        error = e;
      }
      assert.ok(error instanceof JournalFullError);
      assert.ok(error instanceof MapFullError);
      assert.ok(error instanceof RangeError);
      assert.equal((error as Error).name, "JournalFullError");
      assert.match((error as Error).message, /journal/);
      assert.deepEqual(state(s.i32), before);
    }
    s.j.recover();
    assert.deepEqual(data(s.i32), new Array(DATA).fill(0));
    assert.equal(header(s.i32).capacity, 4);
  });

  it("intents and their arguments survive recover; journaled intent writes are undone", () => {
    const s = setup();
    s.j.setIntent(5, 1, 2, 3, -4);
    assert.ok(s.j.dirty, "an intent under way is a dirty journal");
    s.j.begin();
    s.j.set(0, 9);
    s.j.recover();
    assert.equal(s.i32[0], 0);
    assert.equal(s.j.intent, 5);
    assert.deepEqual([0, 1, 2, 3].map((k) => s.j.arg(k)), [1, 2, 3, -4]);
    assert.equal(s.j.intentWord, AT + J_INTENT);
    assert.equal(s.j.argWord(2), AT + J_ARGS + 2);
    // Progress written through the journal is undone with the step; committed progress stays.
    s.j.begin();
    s.j.set(s.j.argWord(0), 10);
    s.j.commit();
    s.j.begin();
    s.j.set(s.j.argWord(0), 11);
    s.j.set(s.j.intentWord, 0);
    s.j.recover();
    assert.equal(s.j.arg(0), 10);
    assert.equal(s.j.intent, 5);
    s.j.begin();
    s.j.set(s.j.intentWord, 0);
    s.j.commit();
    assert.equal(s.j.intent, 0);
    assert.equal(s.j.dirty, false);
  });

  it("format writes an empty journal of the given capacity, and the count leads the entries", () => {
    const s = setup(7);
    assert.equal(header(s.i32).capacity, 7);
    assert.equal(header(s.i32).count, 0);
    assert.equal(journalWords(7), 12 + 14);
    s.j.begin();
    for (let i = 0; i < 7; i++) s.j.set(i, i + 1);
    // Entries stay inside journalWords(7): the word after the journal is untouched.
    assert.equal(s.i32[AT + journalWords(7)], 0);
    s.j.recover();
  });

  it("setPair: a death after any of its writes leaves both words old or both new", () => {
    const OLD = [111, 222];
    const NEW = [-5, 7];
    let died = 0;
    for (let killAt = 0;; killAt++) {
      const s = setup();
      s.i32[10] = OLD[0];
      s.i32[11] = OLD[1];
      // The dying thread's view: write number `killAt` throws instead of writing.
      let writes = 0;
      const dying = new Proxy(s.i32, {
        set(target, key, value) {
          if (writes++ === killAt) throw new Error("killed");
          return Reflect.set(target, key, value);
        },
        get(target, key) {
          const v = Reflect.get(target, key);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
      const threw = (() => {
        try {
          new Journal({ i32: dying }, AT, 32).setPair(dying, 10, NEW[0], NEW[1]);
          return false;
        } catch {
          return true;
        }
      })();
      // The next holder recovers.
      s.j.recover();
      const words = [s.i32[10], s.i32[11]];
      assert.ok(
        (words[0] === OLD[0] && words[1] === OLD[1]) ||
          (words[0] === NEW[0] && words[1] === NEW[1]),
        `death at write ${killAt}: words ${words}`,
      );
      assert.equal(header(s.i32).count, 0);
      assert.equal(header(s.i32).state, IDLE);
      if (!threw) {
        assert.deepEqual(words, NEW, "a setPair that completed is kept");
        break;
      }
      died++;
    }
    assert.ok(died >= 7, `only ${died} death points`);
    // From a journal in use, it refuses like begin.
    const s = setup();
    s.j.begin();
    assert.throws(() => s.j.setPair(s.i32, 10, 1, 2), {
      name: "RangeError",
      message: /corrupt journal/,
    });
  });
});

describe("journal: corrupt words are a RangeError, and nothing is written", () => {
  /** A journal in the middle of a mutation: two WORD entries over data words 1 and 2. */
  function midway(): Setup {
    const s = setup(8);
    s.i32[1] = 10;
    s.i32[2] = 20;
    s.j.begin();
    s.j.set(1, 11);
    s.j.set(2, 21);
    return s;
  }

  /** Asserts that `f` throws a RangeError about the journal, and that no word changed. */
  function refused(s: Setup, f: () => void, message: RegExp): void {
    const before = Array.from(s.i32);
    const start = performance.now();
    assert.throws(f, (error: unknown) => {
      assert.ok(error instanceof RangeError, `a RangeError, got ${error}`);
      assert.match((error as Error).message, /^corrupt journal at word \d+: /);
      assert.match((error as Error).message, message);
      return true;
    });
    assert.ok(performance.now() - start < 1000, "at once");
    assert.deepEqual(Array.from(s.i32), before, "nothing written");
  }

  const free = (): void => {
    throw new Error("a corrupt journal frees nothing");
  };

  it("a count past the capacity, or below 0, as recover, rollbackTo and set read it", () => {
    for (const count of [9, 1501647360, -1, -(2 ** 31)]) {
      const s = midway();
      s.i32[AT] = count;
      refused(s, () => s.j.recover(free), new RegExp(`count ${count}`));
      refused(s, () => s.j.rollbackTo(0, free), new RegExp(`count ${count}`));
      refused(s, () => s.j.set(3, 1), new RegExp(`count ${count}`));
      refused(s, () => s.j.deferFree(4096, 16), new RegExp(`count ${count}`));
    }
  });

  it("a count below the savepoint", () => {
    const s = midway();
    const mark = s.j.mark;
    s.j.set(3, 1);
    s.i32[AT] = 1;
    refused(s, () => s.j.rollbackTo(mark), /count 1, expected 2 to 8/);
  });

  it("an idle journal with entries: its count was overwritten, its entries are stale", () => {
    const s = setup(8);
    s.j.begin();
    s.j.set(1, 11);
    s.j.commit();
    s.i32[AT] = 1; // the stale entry would put 0 back into word 1
    refused(s, () => s.j.recover(), /count 1, expected 0 while idle/);
    refused(s, () => s.j.begin(), /count 1 as a mutation begins/);
    refused(s, () => s.j.setPair(s.i32, 5, 1, 2), /count 1 as a mutation begins/);
    assert.equal(s.i32[1], 11);
  });

  it("a state that is none of the three, and a capacity word that changed", () => {
    const s = midway();
    s.i32[AT + 2] = 7;
    refused(s, () => s.j.recover(), /state 7/);
    const t = midway();
    t.i32[AT + 1] = 1 << 20;
    refused(t, () => t.j.recover(), /capacity 1048576, made with 8/);
    // Appends are bounded by the capacity the journal was made with, not by the word.
    for (let i = 2; i < 8; i++) t.j.set(3, i);
    assert.throws(() => t.j.set(3, 9), JournalFullError);
    t.i32[AT] = 0;
    t.i32[AT + 2] = IDLE;
    refused(t, () => t.j.begin(), /capacity 1048576, made with 8/);
  });

  it("entries naming words outside the view or inside the journal's bookkeeping", () => {
    const words = WORDS;
    for (
      const [first, second, what] of [
        [words << 2, 0, "a word past the view"], // K_WORD
        [((words - 1) << 2) | 1, words + 1, "a zero range past the view"], // K_ZERO
        [(9 << 2) | 1, 3, "a zero range that ends before it starts"],
        [AT << 2, 0, "the journal's own count"],
        [(AT + 12) << 2, 0, "the journal's own entries"],
        [(AT + 10) << 2 | 1, AT + 14, "a zero range over the journal's entries"],
      ] as const
    ) {
      const s = midway();
      // A third entry, newest: the rollback would apply it first.
      s.i32[AT + 12 + 4] = first;
      s.i32[AT + 12 + 5] = second;
      s.i32[AT] = 3;
      refused(s, () => s.j.recover(), /entry 2 is/);
      assert.deepEqual([s.i32[1], s.i32[2]], [11, 21], what);
    }
    // Its intent and argument words are written through it, and rolled back.
    const s = midway();
    s.j.set(s.j.argWord(3), 5);
    s.j.recover();
    assert.deepEqual([s.i32[1], s.i32[2], s.j.arg(3)], [10, 20, 0]);
  });

  it("FREE and DEFER entries: blocks outside the view or misaligned, or in a journal without a free", () => {
    for (
      const [offset, size, withFree] of [
        [WORDS * 4, 16, true],
        [(WORDS - 2) * 4, 16, true],
        [4104, 16, true],
        [4096, 0, true],
        [4096, -16, true],
        [4096, 16, false],
      ] as const
    ) {
      for (const kind of ["allocatedFrom", "deferFree"] as const) {
        const s = midway();
        if (kind === "allocatedFrom") s.j.allocatedFrom(() => offset, size);
        else s.j.deferFree(offset, size);
        const call = withFree ? () => s.j.recover(free) : () => s.j.recover();
        refused(s, call, /entry 2 is/);
        if (kind === "deferFree") {
          s.i32[AT + 2] = COMMITTING; // a death in the commit: the roll-forward checks too
          refused(s, call, /entry 2 is/);
        }
      }
    }
  });

  it("a word to publish outside the view", () => {
    const s = midway();
    s.j.publishAtCommit(WORDS + 5, 1);
    s.i32[AT + 2] = COMMITTING;
    refused(s, () => s.j.recover(free), /word to publish/);
  });

  it("a journal that does not fit in the view is refused when it is made", () => {
    const i32 = new Int32Array(new SharedArrayBuffer(1024));
    assert.throws(() => new Journal({ i32 }, 200, 64), RangeError);
    assert.throws(() => new Journal({ i32 }, -4, 1), RangeError);
    assert.throws(() => new Journal({ i32 }, 0, 1), RangeError);
  });
});
