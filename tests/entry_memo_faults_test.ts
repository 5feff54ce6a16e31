// Copyright the shmap authors. MIT license.
//
// Regression tests for four faults of the per-handle entry memo (src/maps/_entry_memo.ts, read by
// GoMap's lookups in _go_read.ts and SyncMap's in _sync_entries.ts and sync_map.ts), each found
// by a repro of the review in scratch/review15 and turned into a case here:
//
// - A GoMap get whose built-in structured decode runs user code (an inherited setter on
//   Object.prototype) that reads the same handle: the nested read made the handle's probe
//   another key's, and the outer read then wrote its memo words through it, into the other key's
//   key hash cache entry (r1_reentrant_setter.ts).
// - A stack overflow cut into the memo's serial change (#newSerial) after it had stored the new
//   serial but before the generation moved: the slots of the older version then answered for
//   the new one, through GoMap get and has and SyncMap load (r2_stack_overflow_memo.ts,
//   r2b_stack_overflow_syncmap.ts). The sweeps call a lookup at every depth near the stack's
//   limit, so that the overflow comes at every point of its path in turn (as
//   stack_overflow_test.ts does).
// - The generation coming round (after 2^32 serials; set just short of it with the memo's test
//   hook) while a lookup already held a string key's cache entry: the entry kept the memo words of
//   the previous cycle's generation 1, and the lookup answered from them (r3_generation_wrap.ts).
// - A stack overflow in the memo's switch-on after its warm-up left it off for good
//   (r6_switch_on_overflow.ts, with r6_control.ts's control).
//
// The memo is a private part of a handle: the cases that look at it (whether it is on, its
// generation) take it from the first lookup that calls the method named, through a wrapper put
// on EntryMemo's prototype for that one lookup only.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { GoMap, SyncMap } from "../mod.ts";
import { EntryMemo, WARMUP } from "../src/maps/_entry_memo.ts";
import { withoutLookupCopies } from "./fixtures/no_lookup_copy.ts";

const isOverflow = (error: unknown): boolean =>
  error instanceof RangeError && /call stack/i.test(error.message);

/**
 * Recurses to the stack's limit, then on the way back calls `call` at each depth until one call
 * returns: the calls nearest the limit overflow at successive points of their path, and the one
 * that returns is the first whole call after the last one cut short. Returns how many calls
 * threw, each an overflow; any other error is thrown once the stack has unwound. `pad` changes
 * the recursing frame's arguments, and `shift` the size of the frame the recursion starts from,
 * so that sweeps with different pads and shifts reach the path's calls at different stack
 * offsets.
 *
 * What a call threw is only stored where it is caught, and told from other errors once the
 * stack has unwound: a function called there (a regular expression's test) can overflow itself,
 * so that the calls would stop before the first one whose error could be looked at.
 */
function sweep(call: () => void, pad: number, shift = 0): number {
  let done = false;
  let thrown = 0;
  const errors: unknown[] = new Array(10_000).fill(null);
  const down = (n: number, a: number, b: number, c: number): number => {
    let limit: number;
    try {
      limit = pad === 0 ? down(n + 1, a, b, c) : down(n + 1, a + 1, b + a, c + b);
    } catch {
      limit = n;
    }
    if (!done) {
      try {
        call();
        done = true;
      } catch (error) {
        if (thrown < errors.length) errors[thrown] = error;
        thrown++;
      }
    }
    return limit + ((a + b + c) & 0);
  };
  const start = (...words: number[]): number => down(words.length, pad, pad, pad);
  start(...new Array<number>(shift).fill(0));
  for (const error of errors.slice(0, thrown)) if (!isOverflow(error)) throw error;
  assert.ok(done, "a call returned");
  return thrown;
}

/**
 * The sweeps, as (pad, shift) pairs. Pad 0 makes the recursing frames of one size, the others
 * of another (they differ only in their arguments' values); each shift moves the stack offsets
 * that a sweep meets on by a word. A recursing frame takes 13 to 24 words (Deno, Node, Bun), so
 * 24 shifts bring the overflow to every word of a path's stack: which points of a path a sweep
 * can cut depends on the engine and on how the path's functions are compiled at the time (so on
 * which cases ran before), and a few start offsets, as r2's repro had, missed them on some.
 */
const SWEEPS: readonly (readonly [number, number])[] = [0, 1].flatMap((pad) =>
  Array.from({ length: 24 }, (_, shift) => [pad, shift] as const)
);

type MemoMethod = "find" | "findAt" | "generation" | "generationAt";

/** The EntryMemo of the handle that `read` looks up through, taken as `method` is called. */
function memoOf(method: MemoMethod, read: () => void): EntryMemo {
  const proto = EntryMemo.prototype as unknown as Record<
    MemoMethod,
    (...args: unknown[]) => unknown
  >;
  const original = proto[method];
  let memo: EntryMemo | null = null;
  proto[method] = function (this: EntryMemo, ...args: unknown[]) {
    memo ??= this;
    return original.apply(this, args);
  };
  try {
    read();
  } finally {
    proto[method] = original;
  }
  assert.ok(memo !== null, `the read called EntryMemo.${method}`);
  return memo;
}

describe("a GoMap get whose decode runs user code that reads the same handle", () => {
  withoutLookupCopies(); // these test the entry memo, which the copy would answer for
  const TRAP = "the element that runs the setter";
  test("leaves every key with its own value, and the map whole", () => {
    const map = new GoMap<string, unknown>();
    const LONG = "longer-key-0123456789";
    map.set("keyA1", [TRAP, 1]); // 5 units: its memo words where keyB1's are
    map.set("keyB1", "value of keyB1");
    map.set(LONG, "value of the long key"); // 21 units: memo words past a short key's
    // The key hash cache learns the three strings: their lookups start from its entries.
    for (let i = 0; i < 3; i++) {
      map.get("keyA1");
      map.get("keyB1");
      map.get(LONG);
    }
    let nestedKey = "keyB1";
    const nested: unknown[] = [];
    let inTrap = 0;
    // The built-in decode fills an array by index: an index setter put on Array.prototype runs
    // (the one user code a decode still meets; an object's keys are defined, not assigned). It
    // reads the map only for the element TRAP, and makes every element as an assignment would.
    Object.defineProperty(Array.prototype, "0", {
      configurable: true,
      set(this: unknown[], v: unknown) {
        if (v === TRAP && inTrap++ === 0) {
          nested.push(map.get(nestedKey)); // the same handle, from user code
          inTrap--;
        }
        Object.defineProperty(this, "0", {
          value: v,
          writable: true,
          enumerable: true,
          configurable: true,
        });
      },
    });
    try {
      assert.equal(map.get("keyB1"), "value of keyB1");
      // A new version: the outer lookup of keyA1 walks, then writes its memo words.
      map.set("other", 0);
      assert.deepEqual(map.get("keyA1"), [TRAP, 1]);
      assert.deepEqual(nested, ["value of keyB1"], "the nested get read keyB1");
      assert.equal(map.get("keyB1"), "value of keyB1", "keyB1, after the get that read it");
      assert.equal(map.has("keyB1"), true);
      assert.deepEqual(map.getOk("keyB1"), ["value of keyB1", true]);
      // A shorter outer key and a longer nested one: the outer's memo words would land among
      // the nested key's units in its cache entry.
      nestedKey = LONG;
      map.set("abc", [TRAP, 2]); // 3 units
      for (let i = 0; i < 3; i++) map.get("abc");
      map.set("abc", [TRAP, 3]); // a new version: the memo words of "abc" are stale
      assert.deepEqual(map.get("abc"), [TRAP, 3]);
      assert.equal(nested[nested.length - 1], "value of the long key", "the nested get read LONG");
      assert.equal(map.get(LONG), "value of the long key");
      map.set(LONG, "rewritten");
    } finally {
      delete (Array.prototype as unknown as Record<string, unknown>)[0];
    }
    assert.equal(map.size, 5);
    assert.deepEqual([...map.keys()].sort(), ["abc", "keyA1", "keyB1", LONG, "other"].sort());
    const expected = new Map<string, unknown>([
      ["keyA1", [TRAP, 1]],
      ["keyB1", "value of keyB1"],
      [LONG, "rewritten"],
      ["other", 0],
      ["abc", [TRAP, 3]],
    ]);
    for (const [key, value] of expected) {
      assert.deepEqual(map.get(key), value, key);
      assert.equal(map.has(key), true, key);
    }
    assert.deepEqual(new Map(map.entries()), expected);
    map.verify();
  });
});

describe("a stack overflow inside the memo's serial change never answers from an older version", () => {
  withoutLookupCopies(); // these test the entry memo, which the copy would answer for
  // Each case sweeps a lookup whose memo's serial must change, in two ways. The change only
  // moves the generation: one map, its memo warm, looked up again and again (as r2's repro).
  // The change also makes the memo's own table larger (a map has grown past the keys it was
  // sized for): a map a sweep, its memo's table just made by number key lookups for a few keys.
  // Which points of the change a sweep can cut differs between the two: on some engines and
  // paths (a GoMap has of a string key, whose encoding before the change takes more stack than
  // the change itself) only the second cuts it at all. The string cases run first, and has
  // before get: once the other cases have run, Bun compiles that has so that no sweep cuts its
  // change before the fix (ab9ce2f) either.

  /** What the sweeps found wrong, and how many calls overflowed. */
  class Findings {
    wrong: string[] = [];
    sweeps = 0;
    overflows = 0;

    /** Sweeps `lookup` near the stack's limit, then `check`s its answer: "" when right. */
    sweep(pad: number, shift: number, lookup: () => unknown, check: (deep: unknown) => string) {
      let deep: unknown = "not called";
      this.sweeps++;
      this.overflows += sweep(
        () => {
          deep = lookup();
        },
        pad,
        shift,
      );
      const what = check(deep);
      if (what !== "") this.wrong.push(`pad ${pad} shift ${shift}: ${what}`);
    }

    assertNone(what: string): void {
      assert.ok(this.overflows > 0, "the sweeps reached the stack's limit inside the calls");
      assert.equal(
        this.wrong.length,
        0,
        `${what}, ${this.wrong.length} of ${this.sweeps} sweeps: ${
          this.wrong.slice(0, 3).join("; ")
        }`,
      );
    }
  }

  for (const kind of ["string", "number"] as const) {
    const K = kind === "number" ? (i: number) => i : (i: number) => `key:${i}`;

    for (const how of ["has", "get"] as const) {
      test(`GoMap ${how}, ${kind} keys: a deleted key reads absent`, () => {
        const found = new Findings();
        /** Deletes K(7), which `map` remembers present, and sweeps a lookup of it. */
        const deleteAndSweep = (
          map: GoMap<number | string, number>,
          pad: number,
          shift: number,
        ) => {
          map.delete(K(7)); // a new version
          found.sweep(pad, shift, () => how === "get" ? map.get(K(7)) : map.has(K(7)), (deep) => {
            const after = [map.get(K(7)), map.has(K(7)), map.getOk(K(7))];
            return deep === (how === "get" ? undefined : false) && after[0] === undefined &&
                !after[1]
              ? ""
              : `deep ${how} ${deep}, then get, has, getOk ${JSON.stringify(after)}`;
          });
        };

        // The serial change moves the generation only.
        const map = new GoMap<number | string, number>();
        for (let i = 0; i < 100; i++) map.set(K(1000 + i), i);
        // Past the warm-up (1,024 lookups), and the key hash cache knows the strings.
        for (let i = 0; i < 3000; i++) map.get(K(1000 + (i % 100)));
        // Number keys are kept in the memo's own table (string keys with their cache entries).
        const memo = kind === "number" ? memoOf("findAt", () => map.get(K(1000))) : null;
        if (memo !== null) assert.equal(memo.on, true);
        for (const [pad, shift] of SWEEPS) {
          // At a normal depth: K(7) present, looked up (remembered) at this version.
          map.set(K(7), 700 + found.sweeps);
          for (let j = 0; j < 4; j++) assert.equal(map.get(K(7)), 700 + found.sweeps);
          for (let j = 0; j < 8; j++) map.get(K(1000 + j)); // hits keep the memo on
          deleteAndSweep(map, pad, shift);
        }
        if (memo !== null) assert.equal(memo.on, true, "the memo was in use");
        map.verify();

        // The serial change also makes the memo's table larger.
        for (const [pad, shift] of SWEEPS) {
          const map = new GoMap<number | string, number>();
          for (let i = 0; i < 8; i++) map.set(1000 + i, i);
          for (let i = 0; i < WARMUP + 8; i++) map.get(1000 + (i & 7)); // made: 64 slots
          map.set(K(7), 700 + found.sweeps);
          for (let j = 0; j < 4; j++) assert.equal(map.get(K(7)), 700 + found.sweeps);
          for (let i = 0; i < 32; i++) map.set(2000 + i, i); // 40 keys: 256 slots
          deleteAndSweep(map, pad, shift);
        }
        found.assertNone("a deleted key answered from the memo of an older version");
      });
    }

    test(`SyncMap load, ${kind} keys: a stored key reads present`, () => {
      const found = new Findings();
      /** Stores `key`, which `map` remembers absent, promotes, and sweeps a load of it. */
      const storeAndSweep = (
        map: SyncMap<number | string, number>,
        key: number | string,
        pad: number,
        shift: number,
      ) => {
        const value = found.sweeps;
        map.store(key, value);
        map.range(() => true); // promoted: a new read table, holding the key
        found.sweep(pad, shift, () => map.load(key), (deep) => {
          const after = [map.load(key), map.has(key)];
          return deep === value && after[0] === value && after[1]
            ? ""
            : `deep load ${deep}, then load, has ${JSON.stringify(after)}`;
        });
      };

      // The serial change moves the generation only.
      const map = new SyncMap<number | string, number>();
      for (let i = 0; i < 100; i++) map.store(K(1000 + i), i);
      map.range(() => true); // promoted: the read table holds them
      for (let i = 0; i < 3000; i++) map.load(K(1000 + (i % 100)));
      const memo = kind === "number" ? memoOf("find", () => map.load(K(1000))) : null;
      if (memo !== null) assert.equal(memo.on, true);
      const keys: (number | string)[] = [];
      for (const [pad, shift] of SWEEPS) {
        // A key of its own a sweep, remembered absent from this read table.
        const key = K(100_000 + found.sweeps);
        keys.push(key);
        for (let j = 0; j < 4; j++) assert.equal(map.load(key), undefined);
        for (let j = 0; j < 8; j++) map.load(K(1000 + j)); // hits keep the memo on
        storeAndSweep(map, key, pad, shift);
      }
      if (memo !== null) assert.equal(memo.on, true, "the memo was in use");

      // The serial change also makes the memo's table larger.
      for (const [pad, shift] of SWEEPS) {
        const map = new SyncMap<number | string, number>();
        for (let i = 0; i < 8; i++) map.store(1000 + i, i);
        map.range(() => true);
        for (let i = 0; i < WARMUP + 8; i++) map.load(1000 + (i & 7)); // made: 64 slots
        for (let j = 0; j < 4; j++) assert.equal(map.load(K(7)), undefined);
        for (let i = 0; i < 32; i++) map.store(2000 + i, i); // 41 keys: 256 slots
        storeAndSweep(map, K(7), pad, shift);
      }
      found.assertNone("a stored key answered absent from the memo of an older read table");
      // The first map: every key with its value. Not verify(): on Bun, an overflow can also come
      // inside a load's quiescent point as it frees a retired read table, after the block left
      // its retire list, and verify() then finds the block handed out and unreachable (a leak
      // that is no part of the memo; reclaim.ts #sweep).
      assert.equal(map.size, 100 + keys.length);
      for (let i = 0; i < 100; i++) assert.equal(map.load(K(1000 + i)), i);
      keys.forEach((key, i) => assert.equal(map.load(key), i, String(key)));
    });
  }
});

describe("the generation coming round while a lookup holds a string key's cache entry", () => {
  withoutLookupCopies(); // these test the entry memo, which the copy would answer for
  test("GoMap get: a deleted key does not answer from the previous cycle's memo words", () => {
    const map = new GoMap<string, number>();
    map.set("abcdef", 42);
    map.get("abcdef"); // the key hash cache learns the string
    const memo = memoOf("generationAt", () => map.get("abcdef")); // memo words written
    memo.setGenerationForTests(0); // as if generation 1 came next
    map.set("x", 0); // a new version
    assert.equal(map.get("abcdef"), 42); // memo words: generation 1, the key's slot
    map.delete("abcdef"); // a new version: the slot emptied (the words stay)
    map.set("y", 1);
    memo.setGenerationForTests(-1); // 2^32 - 1 generations on: the next one comes round to 1
    assert.equal(
      map.get("abcdef"),
      undefined,
      "the get that took the cache entry as it came round",
    );
    assert.equal(map.get("abcdef"), undefined);
    assert.equal(map.has("abcdef"), false);
    assert.deepEqual(map.getOk("abcdef"), [undefined, false]);
    assert.deepEqual(new Map(map.entries()), new Map([["x", 0], ["y", 1]]));
    map.verify();
  });

  test("GoMap has: a deleted key reads absent", () => {
    const map = new GoMap<string, number>();
    map.set("abcdef", 42);
    map.has("abcdef");
    const memo = memoOf("generationAt", () => map.has("abcdef"));
    memo.setGenerationForTests(0);
    map.set("x", 0);
    assert.equal(map.has("abcdef"), true); // memo words: generation 1, the key's slot
    map.delete("abcdef");
    map.set("y", 1);
    memo.setGenerationForTests(-1);
    assert.equal(map.has("abcdef"), false, "the has that took the cache entry as it came round");
    assert.equal(map.has("abcdef"), false);
    assert.equal(map.get("abcdef"), undefined);
  });

  test("SyncMap load: a stored key does not answer absent from the previous cycle's memo words", () => {
    const map = new SyncMap<string, number>();
    map.store("other", 1);
    map.range(() => true); // promoted: a read table without "abcdef"
    map.load("abcdef"); // the key hash cache learns the string
    const memo = memoOf("generation", () => map.load("abcdef")); // memo words: absent
    memo.setGenerationForTests(0); // as if generation 1 came next
    map.store("x", 0);
    map.range(() => true); // a new read table
    assert.equal(map.load("abcdef"), undefined); // memo words: generation 1, absent
    map.store("abcdef", 42);
    map.range(() => true); // a new read table, holding "abcdef"
    memo.setGenerationForTests(-1); // the next generation comes round to 1
    assert.equal(map.load("abcdef"), 42, "the load that took the cache entry as it came round");
    assert.equal(map.load("abcdef"), 42);
    assert.equal(map.has("abcdef"), true);
    assert.deepEqual(map.loadOk("abcdef"), [42, true]);
    map.verify();
  });
});

describe("a stack overflow at the memo's switch-on does not leave it off for good", () => {
  withoutLookupCopies(); // these test the entry memo, which the copy would answer for
  /**
   * A GoMap handle one lookup short of its memo's warm-up (the lookup that takes it memoOf
   * included), its memo still off.
   */
  function warmingUp(): { map: GoMap<number, number>; memo: EntryMemo } {
    const map = new GoMap<number, number>();
    map.set(1, 1);
    const memo = memoOf("findAt", () => map.get(1));
    for (let i = 1; i < WARMUP - 1; i++) map.get(1);
    assert.equal(memo.on, false, "still warming up");
    return { map, memo };
  }

  test("control: the warm-up's last lookup switches it on", () => {
    const { map, memo } = warmingUp();
    assert.equal(map.get(1), 1);
    assert.equal(memo.on, true);
    for (let i = 0; i < 100; i++) map.get(1);
    assert.equal(memo.on, true);
  });

  test("the warm-up's last lookup near the stack's limit", () => {
    const stuck: string[] = [];
    for (const [pad, shift] of SWEEPS) {
      const { map, memo } = warmingUp();
      let got: unknown = "not called";
      const overflows = sweep(
        () => {
          got = map.get(1);
        },
        pad,
        shift,
      );
      assert.ok(overflows > 0, "the sweep reached the stack's limit inside the calls");
      assert.equal(got, 1);
      for (let i = 0; i < 100; i++) assert.equal(map.get(1), 1);
      if (!memo.on) stuck.push(`pad ${pad} shift ${shift}`);
    }
    assert.equal(
      stuck.length,
      0,
      `memos left off after an overflow at their switch-on, ${stuck.length} of ${SWEEPS.length}: ${
        stuck.join("; ")
      }`,
    );
  });
});
