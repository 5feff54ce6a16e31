// Copyright the shmap authors. MIT license.
//
// What console.log shows for SyncMap, GoMap, Mutex and RWMutex on the runtime running the test:
// the maps as a native Map of the same entries prints (the runtime's quotes and colors), at
// most 100 entries by default or what the caller's options say, `[SyncMap]` past the depth;
// the locks with their state. Deno prints through Deno.customInspect, Node and Bun through
// nodejs.util.inspect.custom: each runtime runs its own hook here.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import util from "node:util";
import { currentThreadId, GoMap, Mutex, RWMutex, SyncMap } from "../mod.ts";
import { attachOwnSeat } from "../src/maps/sync_map.ts";

type DenoInspect = (value: unknown, options?: Record<string, unknown>) => string;
const denoInspect = (globalThis as { Deno?: { inspect: DenoInspect } }).Deno?.inspect;

/** What console.log prints for `value` on this runtime. */
function show(value: unknown): string {
  return denoInspect ? denoInspect(value) : util.inspect(value);
}

/** The same, with at most `limit` entries of an iterable. */
function showLimited(value: unknown, limit: number): string {
  return denoInspect
    ? denoInspect(value, { iterableLimit: limit })
    : util.inspect(value, { maxArrayLength: limit });
}

/** The same, `depth` levels deep. */
function showDepth(value: unknown, depth: number): string {
  return denoInspect ? denoInspect(value, { depth }) : util.inspect(value, { depth });
}

/** A native Map's text with its name replaced, to compare a shmap map's with. */
function asMap(entries: [unknown, unknown][], name: string): string {
  return show(new Map(entries)).replace(/^Map/, name);
}

const ENTRY = /^ {2}.* => .*,?$/;

for (const kind of ["SyncMap", "GoMap"] as const) {
  const make = <K, V>() => (kind === "SyncMap" ? new SyncMap<K, V>() : new GoMap<K, V>());
  const put = <K, V>(m: SyncMap<K, V> | GoMap<K, V>, k: K, v: V) => {
    if (m instanceof SyncMap) m.store(k, v);
    else m.set(k, v);
  };

  describe(`${kind} inspect`, () => {
    test("prints as a Map of the same entries prints", () => {
      const m = make<unknown, unknown>();
      assert.equal(show(m), `${kind}(0) {}`);
      assert.equal(show(m), asMap([], kind));
      put(m, "a", { x: [1, 2n], y: "s" });
      assert.equal(show(m), asMap([["a", { x: [1, 2n], y: "s" }]], kind));
      put(m, "a", 1);
      put(m, 2, undefined);
      put(m, "long", "v".repeat(100));
      const text = show(m);
      // Entry order is the map's own (GoMap's is random): compare as sets of lines.
      const expected = asMap([["a", 1], [2, undefined], ["long", "v".repeat(100)]], kind);
      const lines = (t: string) => t.split("\n").map((l) => l.replace(/,$/, "")).sort();
      assert.deepEqual(lines(text), lines(expected));
      assert.match(text, new RegExp(`^${kind}\\(3\\) \\{\\n`), "one entry a line when long");
    });

    test("at most 100 entries by default, then how many more", () => {
      const m = make<number, number>();
      for (let i = 0; i < 250; i++) put(m, i, i * 2);
      const lines = show(m).split("\n");
      assert.equal(lines[0], `${kind}(250) {`);
      const entries = lines.filter((l) => ENTRY.test(l));
      assert.equal(entries.length, 100);
      for (const line of entries) {
        const [, k, v] = line.match(/^ {2}(\d+) => (\d+),?$/)!;
        assert.equal(Number(v), Number(k) * 2);
      }
      assert.equal(lines.at(-2), "  ... 150 more items");
      assert.equal(lines.at(-1), "}");
    });

    test("the caller's limit, and no limit", () => {
      const m = make<number, number>();
      for (let i = 0; i < 5; i++) put(m, i, i);
      const entries = (text: string) => text.match(/\d+ => \d+/g)?.length ?? 0;
      const three = showLimited(m, 3);
      assert.equal(entries(three), 3, three);
      assert.match(three, new RegExp(`^${kind}\\(5\\) \\{ .*, \\.\\.\\. 2 more items \\}$`));
      assert.match(showLimited(m, 1), /\{ \d+ => \d+, \.\.\. 4 more items \}$/);
      const big = make<number, number>();
      for (let i = 0; i < 150; i++) put(big, i, i);
      const all = showLimited(big, Infinity);
      assert.equal(entries(all), 150);
      assert.ok(!all.includes("more item"));
    });

    test("past the depth it is a name, as a nested Map is", () => {
      const m = make<number, number>();
      put(m, 1, 1);
      const text = showDepth({ a: m }, 0);
      assert.equal(text, `{ a: [${kind}] }`);
      assert.equal(text, showDepth({ a: new Map([[1, 1]]) }, 0).replace("[Map]", `[${kind}]`));
      assert.equal(showDepth({ a: m }, 1), `{ a: ${kind}(1) { 1 => 1 } }`);
      // A map inside a map's value is shown one level deeper.
      const outer = make<string, unknown>();
      put(outer, "inner", { deep: { deeper: { deepest: 1 } } });
      assert.equal(
        show(outer),
        asMap([["inner", { deep: { deeper: { deepest: 1 } } }]], kind),
      );
    });

    test("values are shown by the runtime's own inspect (colors)", () => {
      const m = make<string, number>();
      put(m, "k", 1);
      const colored = denoInspect
        ? denoInspect(m, { colors: true })
        : util.inspect(m, { colors: true });
      // ANSI color codes: ESC [ n m.
      const ansi = new RegExp(`${String.fromCharCode(27)}\\[\\d+m`, "g");
      assert.match(colored, ansi);
      assert.equal(colored.replace(ansi, ""), show(m));
    });

    test("console.log and String() do not throw", () => {
      const m = make<string, number>();
      put(m, "k", 1);
      assert.equal(String(m), `[object ${kind}]`);
      const log = console.log;
      const printed: unknown[] = [];
      console.log = (...args: unknown[]) => printed.push(args);
      try {
        console.log(m);
      } finally {
        console.log = log;
      }
      assert.equal(printed.length, 1);
    });
  });
}

describe("SyncMap inspect of a closed object", () => {
  test("says it is closed in place of the entries", () => {
    const m = new SyncMap<string, number>();
    m.store("k", 1);
    const other = attachOwnSeat<string, number>(m.handle);
    other.close();
    assert.match(show(other), /^SyncMap(\(1\))? \{ <closed> \}$/);
    assert.equal(show(m), asMap([["k", 1]], "SyncMap"), "the map itself is fine");
    m.verify();
  });
});

describe("Mutex and RWMutex inspect", () => {
  test("Mutex: unlocked, or locked by a thread", () => {
    const mu = new Mutex();
    assert.equal(show(mu), "Mutex { unlocked }");
    mu.lock();
    assert.equal(show(mu), `Mutex { locked by thread ${currentThreadId()} }`);
    assert.equal(util.inspect({ mu }), `{ mu: Mutex { locked by thread ${currentThreadId()} } }`);
    mu.unlock();
    assert.equal(show(mu), "Mutex { unlocked }");
    assert.equal(showDepth({ a: mu }, 0), "{ a: [Mutex] }");
  });

  test("RWMutex: unlocked, read-locked (how many times), write-locked by a thread", () => {
    const rw = new RWMutex();
    assert.equal(show(rw), "RWMutex { unlocked }");
    rw.rLock();
    assert.equal(show(rw), "RWMutex { read-locked (1) }");
    rw.rLock();
    assert.equal(show(rw), "RWMutex { read-locked (2) }");
    rw.rUnlock();
    rw.rUnlock();
    assert.equal(show(rw), "RWMutex { unlocked }");
    rw.lock();
    assert.equal(show(rw), `RWMutex { write-locked by thread ${currentThreadId()} }`);
    rw.unlock();
    assert.equal(show(rw), "RWMutex { unlocked }");
    assert.equal(showDepth({ a: rw }, 0), "{ a: [RWMutex] }");
  });
});
