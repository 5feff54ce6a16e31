// Copyright the shmap authors. MIT license.
//
// SyncMap.loadOrCompute, compute and loadOk in one thread: what each returns, what a key being
// computed looks like to every other method (absent), what a callback calling the map does
// (re-entrancy), errors, the paths through the read and the dirty table, and a model test
// against a native Map. tests/sync_map_compute_workers_test.ts races them across workers.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { codecs, MapFullError, SyncMap } from "../mod.ts";
import { attachOwnSeat } from "../src/maps/sync_map.ts";

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
/** A value's encoding: how the map compares values. */
const enc = (v: unknown) => hex(codecs.auto.encode(v));

/** Loads of a missing key until the dirty table is promoted to be the read table. */
function promote(m: SyncMap<unknown, unknown>): void {
  for (let i = 0; i < 64 && m.stats().amended; i++) m.load("promote: a key never stored");
  assert.equal(m.stats().amended, false, "promoted");
}

/** What every other method sees of `key`, asserted absent. */
function assertAbsent(m: SyncMap<string, unknown>, key: string, size: number): void {
  assert.equal(m.load(key), undefined);
  assert.deepEqual(m.loadOk(key), [undefined, false]);
  assert.equal(m.get(key), undefined);
  assert.equal(m.has(key), false);
  assert.equal(m.size, size, "a key being computed is not counted");
  assert.ok(![...m.keys()].includes(key), "iteration skips it");
  let ranged = false;
  m.range((k) => {
    if (k === key) ranged = true;
  });
  assert.equal(ranged, false, "range skips it");
  assert.equal(m.compareAndSwap(key, undefined, 1), false);
  assert.equal(m.compareAndDelete(key, undefined), false);
}

/** A map holding `key`: `value`. */
function mapWith<V = number>(key: string, value: V): SyncMap<string, V> {
  const m = new SyncMap<string, V>();
  m.store(key, value);
  return m;
}

/** Asserts that `call(fn)`, given an fn that throws, throws fn's error itself. */
function assertThrowsFnError(call: (fn: () => never) => unknown): void {
  const fnError = new Error("fn failed");
  assert.throws(() =>
    call(() => {
      throw fnError;
    }), (e) => e === fnError);
}

describe("SyncMap.loadOk", () => {
  test("tells a stored undefined from a missing key, on every path", () => {
    const m = new SyncMap<unknown, unknown>();
    assert.deepEqual(m.loadOk("k"), [undefined, false]);
    m.store("k", undefined);
    m.store(1, undefined);
    assert.deepEqual(m.loadOk("k"), [undefined, true], "dirty table");
    assert.deepEqual(m.loadOk(1), [undefined, true], "number key, dirty table");
    promote(m);
    assert.deepEqual(m.loadOk("k"), [undefined, true], "read table");
    assert.deepEqual(m.loadOk(1), [undefined, true], "number key, read table");
    m.store("v", { a: [1n, null] });
    assert.deepEqual(m.loadOk("v"), [{ a: [1n, null] }, true]);
    m.delete("k");
    assert.deepEqual(m.loadOk("k"), [undefined, false], "deleted in the read table");
    assert.deepEqual(m.loadOk(NaN), [undefined, false]);
    assert.throws(() => m.loadOk(Symbol() as unknown), TypeError);
  });
});

describe("SyncMap.loadOrCompute", () => {
  test("computes a missing key once, then loads it", () => {
    const m = new SyncMap<string, { n: number }>();
    let calls = 0;
    const fn = () => ({ n: ++calls });
    assert.deepEqual(m.loadOrCompute("a", fn), [{ n: 1 }, false]);
    assert.deepEqual(m.loadOrCompute("a", fn), [{ n: 1 }, true]);
    promote(m as SyncMap<unknown, unknown>);
    assert.deepEqual(m.loadOrCompute("a", fn), [{ n: 1 }, true], "from the read table");
    m.store("b", { n: 9 });
    assert.deepEqual(m.loadOrCompute("b", fn), [{ n: 9 }, true], "a stored value");
    assert.equal(calls, 1);
    assert.equal(m.size, 2);
    m.verify();
  });

  test("claims a key in each state it can be found in", () => {
    const m = new SyncMap<string, number>();
    let calls = 0;
    const fn = () => 100 + ++calls;
    // A new key, the map not amended: the dirty table is made.
    assert.deepEqual(m.loadOrCompute("new", fn), [101, false]);
    // A new key beside a dirty table.
    assert.deepEqual(m.loadOrCompute("new2", fn), [102, false]);
    promote(m as SyncMap<unknown, unknown>);
    // Deleted in the read table (NIL): claimed without the lock.
    m.delete("new");
    assert.deepEqual(m.loadOrCompute("new", fn), [103, false]);
    // Expunged: deleted, then a new key's store rebuilt the dirty table without it.
    m.delete("new");
    m.store("other", 0);
    assert.deepEqual(m.loadOrCompute("new", fn), [104, false]);
    // Only in the dirty table, deleted by compareAndDelete (which leaves the entry there).
    m.store("dirtyOnly", 1);
    assert.equal(m.compareAndDelete("dirtyOnly", 1), true);
    assert.deepEqual(m.loadOrCompute("dirtyOnly", fn), [105, false]);
    assert.equal(calls, 5);
    assert.deepEqual(
      [...m].sort(),
      [["dirtyOnly", 105], ["new", 104], ["new2", 102], ["other", 0]],
    );
    m.verify();
  });

  test("while fn runs, the key is absent to every other method", () => {
    for (const where of ["new", "read table", "dirty table"]) {
      const m = mapWith<unknown>("x", 1);
      if (where !== "new") {
        m.store("k", 0);
        m.delete("k");
        if (where === "read table") promote(m as SyncMap<unknown, unknown>);
      }
      const [value, loaded] = m.loadOrCompute("k", () => {
        assertAbsent(m, "k", 1);
        assert.equal(m.delete("k"), false);
        assert.deepEqual(m.loadAndDelete("k"), [undefined, false]);
        assert.equal(String(m), "[object SyncMap]");
        m.verify(); // a key being computed by a live thread is consistent
        return "computed";
      });
      assert.deepEqual([value, loaded], ["computed", false], where);
      assert.equal(m.load("k"), "computed");
      assert.equal(m.size, 2);
      m.verify();
    }
  });

  test("a delete inside fn leaves the claim in place, even in the dirty table", () => {
    for (const promoted of [false, true]) {
      const m = new SyncMap<string, number>();
      if (promoted) {
        m.store("k", 0);
        promote(m as SyncMap<unknown, unknown>);
        m.delete("k");
      }
      const result = m.loadOrCompute("k", () => {
        assert.equal(m.delete("k"), false);
        // The claim is still this thread's: a nested claim of the key refuses to wait.
        assert.throws(() => m.loadOrCompute("k", () => 2), /computing this key already/);
        return 1;
      });
      assert.deepEqual(result, [1, false]);
      m.verify();
    }
  });

  test("a store of the key inside fn wins: fn's result is dropped", () => {
    const m = new SyncMap<string, number>();
    assert.deepEqual(
      m.loadOrCompute("k", () => {
        m.store("k", 42);
        return 1;
      }),
      [42, true],
    );
    assert.equal(m.load("k"), 42);
    assert.deepEqual(
      m.loadOrCompute("s", () => {
        assert.deepEqual(m.swap("s", 5), [undefined, false], "swap finds no previous value");
        return 1;
      }),
      [5, true],
    );
    assert.deepEqual(
      m.loadOrCompute("l", () => {
        assert.deepEqual(m.loadOrStore("l", 7), [7, false], "loadOrStore stores");
        return 1;
      }),
      [7, true],
    );
    assert.deepEqual(
      m.loadOrCompute("c", () => {
        let seen: [unknown, boolean] | undefined;
        assert.deepEqual(
          m.compute("c", (old, loaded) => {
            seen = [old, loaded];
            return 8;
          }),
          [8, true],
        );
        assert.deepEqual(seen, [undefined, false], "compute sees no value");
        return 1;
      }),
      [8, true],
    );
    assert.equal(m.size, 4);
    m.verify();
  });

  test("a store and a delete, or a clear, inside fn: fn's result is stored", () => {
    const m = mapWith("other", 0);
    assert.deepEqual(
      m.loadOrCompute("k", () => {
        m.store("k", 42);
        m.delete("k");
        return 1;
      }),
      [1, false],
    );
    assert.deepEqual(
      m.loadOrCompute("c", () => {
        m.clear();
        return 2;
      }),
      [2, false],
    );
    assert.deepEqual([...m].sort(), [["c", 2]]);
    m.verify();
  });

  test("fn may call the map for other keys, and loadOrCompute them", () => {
    const m = new SyncMap<number, number>();
    const fib = (n: number): number =>
      n < 2 ? n : m.loadOrCompute(n, () => fib(n - 1) + fib(n - 2))[0];
    assert.equal(fib(40), 102334155);
    assert.equal(m.size, 39);
    m.verify();
  });

  test("fn calling loadOrCompute of its own key throws, through any object", () => {
    const m = new SyncMap<string, number>();
    const other = attachOwnSeat<string, number>(m.handle);
    assert.throws(
      () => m.loadOrCompute("k", () => m.loadOrCompute("k", () => 1)[0]),
      (e: unknown) => e instanceof Error && /computing this key already/.test(e.message),
    );
    assert.equal(m.has("k"), false, "the outer call gave its claim up");
    assert.throws(
      () => m.loadOrCompute("k", () => other.loadOrCompute("k", () => 1)[0]),
      /computing this key already/,
    );
    // Caught inside fn, the outer computation goes on.
    assert.deepEqual(
      m.loadOrCompute("k", () => {
        assert.throws(() => m.loadOrCompute("k", () => 1), /already/);
        return 2;
      }),
      [2, false],
    );
    other.close();
    m.verify();
  });

  test("fn throwing: the error comes through, nothing is stored, the next call computes", () => {
    const m = mapWith("x", 0);
    assertThrowsFnError((fn) => m.loadOrCompute("k", fn));
    assertAbsent(m as SyncMap<string, unknown>, "k", 1);
    assert.deepEqual(m.loadOrCompute("k", () => 3), [3, false]);
    m.verify();
  });

  test("fn failing for ever new keys leaves nothing behind: the map does not fill up", () => {
    // Each claim adds its key to the dirty table; one given up goes with it, as a delete of a
    // dirty-only key does, else NIL entries no promotion drops would fill maxBytes.
    const m = new SyncMap<string, number>({ maxBytes: 65536 });
    const before = m.stats().bytesUsed;
    for (let i = 0; i < 5_000; i++) {
      assert.throws(() =>
        m.loadOrCompute(`key-${i}`, () => {
          throw new Error("fn failed");
        }), /fn failed/);
    }
    const after = m.stats();
    assert.equal(after.count, 0);
    assert.ok(after.dirtyKeys <= 0, `${after.dirtyKeys} keys left in the dirty table`);
    assert.ok(after.bytesUsed <= before + 4096, `bytesUsed ${before} -> ${after.bytesUsed}`);
    assert.deepEqual(m.loadOrCompute("key-1", () => 1), [1, false]);
    m.verify();
  });

  test("a value fn returns that cannot be stored is an error, and nothing is stored", () => {
    const m = new SyncMap<string, unknown>();
    assert.throws(() => m.loadOrCompute("f", () => () => 1), TypeError);
    assert.throws(
      () => m.loadOrCompute("p", () => Promise.resolve(1)),
      (e: unknown) => e instanceof TypeError && /Promise/.test(e.message),
    );
    assert.equal(m.size, 0);
    assertAbsent(m as SyncMap<string, unknown>, "f", 0);
    assertAbsent(m as SyncMap<string, unknown>, "p", 0);
    const small = new SyncMap<string, string>({ maxBytes: 1 << 16 });
    assert.throws(() => small.loadOrCompute("big", () => "x".repeat(40_000)), MapFullError);
    assert.equal(small.has("big"), false);
    small.verify();
    m.verify();
  });

  test("a map too full to retire in once fn returns: the claim is given up all the same", async () => {
    // Another object online holds reclamation back for this task, so fn's deletes only retire,
    // until this object's next call finds no room left to retire in: MapFullError as fn
    // returns. The key must not stay claimed by this live thread.
    const m = new SyncMap<number, string>({ maxBytes: 256 * 1024 });
    const other = attachOwnSeat<number, string>(m.handle);
    other.load(-1);
    let n = 0;
    try {
      for (;; n++) m.store(n, "x".repeat(100));
    } catch (error) {
      if (!(error instanceof MapFullError)) throw error;
    }
    let full = false;
    assert.throws(() =>
      m.loadOrCompute(1e9, () => {
        for (let i = 0; i < n && !full; i++) {
          try {
            m.delete(i);
          } catch (error) {
            if (!(error instanceof MapFullError)) throw error;
            full = true;
          }
        }
        return "computed";
      }), MapFullError);
    assert.ok(full, "fn's deletes ran out of room");
    other.close();
    await new Promise((resolve) => setTimeout(resolve, 20)); // a new task: reclamation
    assert.equal(m.has(1e9), false);
    assert.deepEqual(m.loadOrCompute(1e9, () => "again"), ["again", false]);
    m.verify();
    m.close();
  });

  test("bad arguments are refused before fn runs", () => {
    const m = new SyncMap<unknown, unknown>({ maxBytes: 1 << 16 });
    let calls = 0;
    const fn = () => calls++;
    assert.throws(() => m.loadOrCompute("k", 1 as unknown as () => unknown), TypeError);
    assert.throws(() => m.loadOrCompute({}, fn), TypeError);
    assert.throws(() => m.loadOrCompute("k".repeat(40_000), fn), MapFullError);
    assert.equal(calls, 0);
    assert.equal(m.size, 0);
    m.verify();
  });

  test("fn cannot close the object it runs for", () => {
    const m = new SyncMap<string, number>();
    assert.throws(() =>
      m.loadOrCompute("k", () => {
        m.close();
        return 1;
      }), /cannot close/);
    assert.equal(m.has("k"), false);
    m.verify();
  });
});

describe("SyncMap.compute", () => {
  test("inserts, updates, deletes and cancels, as RedisSyncMap does", () => {
    const m = new SyncMap<string, number>();
    assert.deepEqual(m.compute("n", (old, loaded) => (loaded ? old! + 1 : 10)), [10, true]);
    assert.deepEqual(m.compute("n", (old) => old! + 1), [11, true]);
    assert.deepEqual(m.compute("n", () => SyncMap.CANCEL), [11, true]);
    assert.deepEqual(m.compute("gone", () => SyncMap.CANCEL), [undefined, false]);
    assert.equal(m.has("gone"), false);
    assert.deepEqual(m.compute("n", () => SyncMap.DELETE), [undefined, false]);
    assert.equal(m.has("n"), false);
    assert.deepEqual(m.compute("n", () => SyncMap.DELETE), [undefined, false]);
    let seen: [unknown, boolean] | undefined;
    m.compute("n", (old, loaded) => {
      seen = [old, loaded];
      return SyncMap.CANCEL;
    });
    assert.deepEqual(seen, [undefined, false]);
    m.store("u", undefined as unknown as number);
    m.compute("u", (old, loaded) => {
      seen = [old, loaded];
      return SyncMap.CANCEL;
    });
    assert.deepEqual(seen, [undefined, true], "a stored undefined is loaded");
    assert.equal(m.size, 1);
    m.verify();
  });

  test("every path: new key, dirty table, read table, deleted, expunged", () => {
    const m = new SyncMap<string, number>();
    const inc = (old: number | undefined) => (old ?? 0) + 1;
    assert.deepEqual(m.compute("a", inc), [1, true], "new, not amended");
    assert.deepEqual(m.compute("b", inc), [1, true], "new, amended");
    assert.deepEqual(m.compute("a", inc), [2, true], "dirty table");
    promote(m as SyncMap<unknown, unknown>);
    assert.deepEqual(m.compute("a", inc), [3, true], "read table");
    assert.deepEqual(m.compute("a", () => SyncMap.DELETE), [undefined, false], "read delete");
    assert.deepEqual(m.compute("a", inc), [1, true], "deleted in the read table");
    m.delete("a");
    m.store("c", 0); // rebuilds the dirty table: "a" is expunged
    assert.deepEqual(m.compute("a", inc), [1, true], "expunged");
    assert.deepEqual(m.compute("c", () => SyncMap.DELETE), [undefined, false], "dirty delete");
    assert.deepEqual(m.compute("c", inc), [1, true], "deleted in the dirty table");
    assert.deepEqual([...m].sort(), [["a", 1], ["b", 1], ["c", 1]]);
    m.verify();
  });

  test("a conflicting write while fn runs makes fn run again on the new value", () => {
    const m = mapWith("n", 0);
    let calls = 0;
    const result = m.compute("n", (old) => {
      calls++;
      if (calls === 1) m.store("n", 100);
      return old! + 1;
    });
    assert.equal(calls, 2);
    assert.deepEqual(result, [101, true]);
    assert.equal(m.load("n"), 101);

    // Deleted meanwhile: fn runs again with no value.
    calls = 0;
    const seen: [unknown, boolean][] = [];
    assert.deepEqual(
      m.compute("n", (old, loaded) => {
        seen.push([old, loaded]);
        if (++calls === 1) m.delete("n");
        return loaded ? SyncMap.DELETE : 7;
      }),
      [7, true],
    );
    assert.deepEqual(seen, [[101, true], [undefined, false]]);

    // Stored meanwhile, when fn saw none.
    calls = 0;
    assert.deepEqual(
      m.compute("new", (old, loaded) => {
        if (++calls === 1) m.store("new", 5);
        return loaded ? old! * 2 : 1;
      }),
      [10, true],
    );
    assert.equal(calls, 2);

    // A write of the same encoding is no conflict: values compare by encoding.
    calls = 0;
    m.store("same", 3);
    assert.deepEqual(
      m.compute("same", (old) => {
        calls++;
        m.store("same", 3);
        return old! + 1;
      }),
      [4, true],
    );
    assert.equal(calls, 1);

    // A DELETE whose value changed meanwhile runs again too.
    calls = 0;
    assert.deepEqual(
      m.compute("same", (old) => {
        if (++calls === 1) m.store("same", 40);
        return old === 4 ? SyncMap.DELETE : SyncMap.CANCEL;
      }),
      [40, true],
    );
    assert.equal(m.load("same"), 40);

    // A DELETE of a key fn saw absent, written meanwhile: by fn itself, or by another object of
    // the map (another worker's write), runs again and deletes what was written.
    for (const writer of [m, attachOwnSeat<string, number>(m.handle)]) {
      calls = 0;
      const given: [unknown, boolean][] = [];
      assert.deepEqual(
        m.compute("absent", (old, loaded) => {
          given.push([old, loaded]);
          if (++calls === 1) writer.store("absent", 42);
          return SyncMap.DELETE;
        }),
        [undefined, false],
      );
      assert.deepEqual(given, [[undefined, false], [42, true]]);
      assert.equal(m.has("absent"), false);
      // A number key too, which writes take a path of their own for.
      const numbers = new SyncMap<number, number>();
      calls = 0;
      assert.deepEqual(
        numbers.compute(7, () => {
          if (++calls === 1) numbers.store(7, 1.5);
          return SyncMap.DELETE;
        }),
        [undefined, false],
      );
      assert.equal(calls, 2);
      assert.equal(numbers.has(7), false);
      numbers.verify();
      numbers.close();
      if (writer !== m) writer.close();
    }
    // fn writing it in every round throws, as any self-write does.
    calls = 0;
    assert.throws(
      () =>
        m.compute("absent", () => {
          if (++calls > 10_000) throw new Error("still running");
          m.store("absent", calls);
          m.delete("absent");
          m.store("absent", calls);
          return SyncMap.DELETE;
        }),
      /fn wrote the key it computes/,
    );
    m.verify();
  });

  test("a nested compute of the same key lands first; the outer one runs again", () => {
    const m = mapWith("n", 1);
    let outer = 0;
    const result = m.compute("n", (old) => {
      if (++outer === 1) assert.deepEqual(m.compute("n", (v) => v! * 10), [10, true]);
      return old! + 1;
    });
    assert.deepEqual(result, [11, true]);
    assert.equal(outer, 2);
    m.verify();
  });

  test("fn writing its own key every time throws instead of running for good", () => {
    const m = mapWith("n", 0);
    const other = attachOwnSeat<string, number>(m.handle);
    const selfWrite = /fn wrote the key it computes in \d+ rounds in a row/;
    let calls = 0;
    // A store of the key in every round: each round is lost to the round's own write.
    assert.throws(() =>
      m.compute("n", (old) => {
        if (++calls > 10_000) throw new Error("still running");
        m.store("n", old! + 100);
        return old! + 1;
      }), selfWrite);
    assert.ok(calls > 1 && calls < 1_000, `fn ran ${calls} times`);
    m.verify();
    // The same through another object of the map, and through a nested compute.
    calls = 0;
    assert.throws(() =>
      m.compute("n", (old) => {
        if (++calls > 10_000) throw new Error("still running");
        other.store("n", old! + 1);
        return old! + 1;
      }), selfWrite);
    assert.throws(() =>
      m.compute("n", (old) => {
        m.compute("n", (v) => v! + 1);
        return old! + 1;
      }), selfWrite);
    // A number key and value, whose store takes its own path to a record.
    const numbers = new SyncMap<number, number>();
    numbers.store(1, 0);
    calls = 0;
    assert.throws(() =>
      numbers.compute(1, (old) => {
        if (++calls > 10_000) throw new Error("still running");
        numbers.store(1, old! + 100);
        return old! + 1;
      }), selfWrite);
    numbers.verify();
    numbers.close();
    // Written only while it is small: rounds stop once fn sees a large enough value, and the
    // last round's result is stored.
    m.store("n", 0);
    calls = 0;
    assert.deepEqual(
      m.compute("n", (old) => {
        calls++;
        if (old! < 20) m.store("n", old! + 1);
        return -old!;
      }),
      [-20, true],
    );
    assert.equal(calls, 21);
    // Writes of other keys in every round, with a lost round in between, are no self-write.
    let rounds = 0;
    assert.deepEqual(
      m.compute("n", (old) => {
        m.store(`other ${rounds}`, rounds);
        if (++rounds === 1) other.store("n", 5); // as another worker's write would
        return old! * 2;
      }),
      [10, true],
    );
    // After a throw, nothing is left noted: a later compute's lost rounds start from zero.
    m.store("n", 0);
    calls = 0;
    assert.deepEqual(
      m.compute("n", (old) => {
        if (++calls <= 3) m.store("n", old! + 1);
        return old! + 10;
      }),
      [13, true],
    );
    other.close();
    m.verify();
  });

  test("fn deleting its key on one round and storing it on the next throws too", () => {
    // The rounds it loses to its delete (the key then has no value) count as its own, as those
    // it loses to its store do; else the two alternate for good.
    const m = mapWith("k", 0);
    let calls = 0;
    assert.throws(
      () =>
        m.compute("k", (_old, loaded) => {
          if (++calls > 1_000) return SyncMap.CANCEL; // the bug this guards: rounds for good
          if (loaded) m.delete("k");
          else m.store("k", 1);
          return 2;
        }),
      /fn wrote the key it computes in \d+ rounds in a row/,
    );
    assert.ok(calls <= 64, `${calls} rounds`);
    // A clear on alternate rounds is the same.
    calls = 0;
    assert.throws(() =>
      m.compute("k", (_old, loaded) => {
        if (++calls > 1_000) return SyncMap.CANCEL;
        if (loaded) m.clear();
        else m.store("k", 1);
        return 2;
      }), /rounds in a row/);
    m.verify();
  });

  test("a key too large for maxBytes is refused before fn runs", () => {
    const m = new SyncMap<string, number>({ maxBytes: 65536 });
    let ran = 0;
    assert.throws(() => m.compute("k".repeat(70_000), () => ++ran), MapFullError);
    assert.throws(() => m.loadOrCompute("k".repeat(70_000), () => ++ran), MapFullError);
    assert.equal(ran, 0);
    m.verify();
  });

  test("fn throwing writes nothing; bad values are refused", () => {
    const m = mapWith<unknown>("n", 1);
    assertThrowsFnError((fn) => m.compute("n", fn));
    assert.throws(() => m.compute("n", () => Symbol("v")), TypeError);
    assert.throws(() => m.compute("n", () => Promise.resolve(2)), /Promise/);
    assert.throws(() => m.compute("n", "f" as unknown as () => unknown), TypeError);
    assert.throws(() => m.compute({} as string, () => 1), TypeError);
    assert.equal(m.load("n"), 1, "a failed compute writes nothing");
    assert.equal(m.size, 1);
    m.verify();
  });

  test("values compare by encoding: objects, NaN and -0", () => {
    const m = mapWith<unknown>("o", { a: [1, 2] });
    assert.deepEqual(
      m.compute("o", (old) => ({ ...(old as object), b: true })),
      [{ a: [1, 2], b: true }, true],
    );
    m.store("z", -0);
    let calls = 0;
    assert.deepEqual(
      m.compute("z", (old) => {
        if (++calls === 1) m.store("z", 0); // another encoding than -0
        return Object.is(old, -0) ? "minus zero" : "zero";
      }),
      ["zero", true],
    );
    assert.equal(calls, 2);
    m.verify();
  });
});

describe("SyncMap: compute, loadOrCompute and loadOk against a Map model", () => {
  type Inner =
    | { op: "none" }
    | { op: "storeSame" | "storeOther"; value: number }
    | { op: "deleteSame" };
  type Cmd =
    | { op: "store"; key: number; value: number | undefined }
    | { op: "delete" | "loadOk"; key: number }
    | { op: "compute"; key: number; result: "inc" | "delete" | "cancel" | "throw"; inner: Inner }
    | { op: "loadOrCompute"; key: number; value: number; throws: boolean; inner: Inner }
    | { op: "misses" }
    | { op: "clear" };
  const key = fc.integer({ min: 0, max: 7 });
  const inner: fc.Arbitrary<Inner> = fc.oneof(
    { weight: 4, arbitrary: fc.constant({ op: "none" } as const) },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constantFrom("storeSame" as const, "storeOther" as const),
        value: fc.integer({ min: 0, max: 3 }),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ op: "deleteSame" } as const) },
  );
  const cmd: fc.Arbitrary<Cmd> = fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant("store" as const),
        key,
        value: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
      }),
    },
    { weight: 2, arbitrary: fc.record({ op: fc.constantFrom("delete", "loadOk"), key }) },
    {
      weight: 5,
      arbitrary: fc.record({
        op: fc.constant("compute" as const),
        key,
        result: fc.constantFrom("inc", "inc", "delete", "cancel", "throw"),
        inner,
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant("loadOrCompute" as const),
        key,
        value: fc.integer({ min: 10, max: 13 }),
        throws: fc.boolean(),
        inner,
      }),
    },
    { weight: 1, arbitrary: fc.constant({ op: "misses" } as const) },
    { weight: 1, arbitrary: fc.constant({ op: "clear" } as const) },
  );

  const other = (k: number) => (k + 1) % 8;
  const THROWN = new Error("fn threw");

  test("random sequences agree with the model at every step", () => {
    fc.assert(
      fc.property(fc.array(cmd, { maxLength: 60 }), (cmds) => {
        const m = new SyncMap<number, number | undefined>();
        const model = new Map<number, number | undefined>();
        // The inner write of a callback, on the map and the model alike.
        const runInner = (k: number, op: Inner) => {
          if (op.op === "storeSame" || op.op === "storeOther") {
            const at = op.op === "storeSame" ? k : other(k);
            m.store(at, op.value);
            model.set(at, op.value);
          } else if (op.op === "deleteSame") {
            assert.equal(m.delete(k), model.delete(k));
          }
        };
        for (const c of cmds) {
          switch (c.op) {
            case "store":
              m.store(c.key, c.value);
              model.set(c.key, c.value);
              break;
            case "delete":
              assert.equal(m.delete(c.key), model.delete(c.key));
              break;
            case "loadOk":
              assert.deepEqual(m.loadOk(c.key), [model.get(c.key), model.has(c.key)]);
              break;
            case "misses":
              for (let i = 0; i < 20; i++) m.load(100 + i);
              break;
            case "clear":
              m.clear();
              model.clear();
              break;
            case "compute": {
              let calls = 0;
              // The model: fn sees the state it is called with; a run whose inner write
              // changed the key's encoding runs again (the inner write only the first time).
              const before = model.has(c.key) ? enc(model.get(c.key)) : null;
              const f = (old: number | undefined, loaded: boolean) => {
                calls++;
                assert.deepEqual([old, loaded], [model.get(c.key), model.has(c.key)]);
                if (calls === 1) runInner(c.key, c.inner);
                if (c.result === "throw") throw THROWN;
                if (c.result === "cancel") return SyncMap.CANCEL;
                if (c.result === "delete") return SyncMap.DELETE;
                return (old ?? 0) + 1;
              };
              let result: [number | undefined, boolean] | undefined;
              try {
                result = m.compute(c.key, f);
              } catch (error) {
                assert.equal(error, THROWN);
                assert.equal(calls, 1);
                break;
              }
              // The model's run: after the inner write, did the key's encoding move?
              const after = model.has(c.key) ? enc(model.get(c.key)) : null;
              const modelCalls = c.result !== "cancel" && after !== before ? 2 : 1;
              assert.equal(calls, modelCalls, "fn runs again after a conflicting write");
              if (c.result === "cancel") {
                // Cancelled on the first run: the state fn was given.
                assert.equal(calls, 1);
              } else if (c.result === "delete") {
                // Deleted, or absent still (a key fn saw absent, written meanwhile, ran again).
                model.delete(c.key);
                assert.deepEqual(result, [undefined, false]);
              } else {
                const next = (model.get(c.key) ?? 0) + 1;
                model.set(c.key, next);
                assert.deepEqual(result, [next, true]);
              }
              break;
            }
            case "loadOrCompute": {
              const had = model.has(c.key);
              const value = model.get(c.key);
              let calls = 0;
              let result: [number | undefined, boolean] | undefined;
              try {
                result = m.loadOrCompute(c.key, () => {
                  calls++;
                  assert.equal(m.has(c.key), false, "absent while computed");
                  runInner(c.key, c.inner);
                  if (c.throws) throw THROWN;
                  return c.value;
                });
              } catch (error) {
                assert.equal(error, THROWN);
                assert.equal(had, false);
                assert.equal(calls, 1);
                break;
              }
              if (had) {
                assert.equal(calls, 0);
                assert.deepEqual(result, [value, true]);
              } else if (model.has(c.key)) {
                // The inner write stored the key: it wins.
                assert.deepEqual(result, [model.get(c.key), true]);
              } else {
                model.set(c.key, c.value);
                assert.deepEqual(result, [c.value, false]);
              }
              break;
            }
          }
          assert.equal(m.size, model.size);
        }
        assert.deepEqual(
          [...m].sort((a, b) => a[0] - b[0]),
          [...model].sort((a, b) => a[0] - b[0]),
        );
        m.verify();
      }),
      { numRuns: 500 },
    );
  });
});
