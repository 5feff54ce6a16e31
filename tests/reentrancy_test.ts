// Copyright the shmap authors. MIT license.
//
// Re-entrant user code: getters and Proxy traps read by the default codec, user codecs' encode
// and decode, and callbacks, calling the map they run for. Every case runs on both maps beside
// a native Map model driven by the same user code, and the two must agree exactly: a nested call
// takes effect before the outer write (encoding comes first), and the outer call must write
// its own key and value, never the nested call's.
//
// A SyncMap user decode that stores a key, called for a key found under the map's mutex, used to
// wait forever on that mutex; those cases run in a child process with a timeout
// (fixtures/reentrant_decode.ts), so that a regression fails instead of hanging the suite.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Codec, codecs, type GoMap, SyncMap } from "../mod.ts";
import { runChild } from "./fixtures/child.ts";
import { type AnyMap, keyOrder, type Kind, KINDS, sorted } from "./fixtures/map_kinds.ts";

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16)).join(",");
/** Whether the model has `key` with a value encoded as `value` is (how compare-and-X compare). */
const sameEncoding = (model: Map<unknown, unknown>, key: unknown, value: unknown) =>
  model.has(key) && hex(codecs.auto.encode(model.get(key))) === hex(codecs.auto.encode(value));

/** The map and its model, written together; `check` compares them, and sizes. */
class Twin {
  readonly model = new Map<unknown, unknown>();
  readonly map: AnyMap;
  constructor(map: AnyMap) {
    this.map = map;
  }

  /** A write of a value whose stored form (what reads give back) is `plain`. */
  set(key: unknown, value: unknown, plain: unknown = value): void {
    this.map.set(key, value);
    this.model.set(key, plain);
  }
  get(key: unknown): void {
    assert.deepStrictEqual(this.map.get(key), this.model.get(key), `get(${keyOrder(key)})`);
  }
  has(key: unknown): void {
    assert.equal(this.map.has(key), this.model.has(key), `has(${keyOrder(key)})`);
  }
  delete(key: unknown): void {
    assert.equal(this.map.delete(key), this.model.delete(key), `delete(${keyOrder(key)})`);
  }
  check(what: string): void {
    assert.deepStrictEqual(sorted(this.map), sorted(this.model), what);
    assert.equal(this.map.size, this.model.size, `${what}: size`);
  }
}

/** A Twin over a map of `kind` holding a, b and other (in SyncMap: a, b read; other dirty). */
function filled(kind: Kind, options?: object): Twin {
  const twin = new Twin(KINDS[kind](options));
  twin.set("a", { n: 1 });
  twin.set("b", [2, "two"]);
  // SyncMap: loads of a missing key promote a and b to the read table; "other" is dirty-only.
  for (let i = 0; i < 4; i++) twin.map.get("missing");
  twin.set("other", "o".repeat(40));
  return twin;
}

/** What a getter does to the map (and the model) while the default codec reads it. */
type Nested = [name: string, run: (t: Twin) => void];
const NESTED: Nested[] = [
  ["has", (t) => {
    t.has("other");
    t.has("nope");
  }],
  ["get", (t) => {
    t.get("other");
    t.get("a");
    t.get("nope");
  }],
  ["set of a structured value", (t) => t.set("inner", { deep: [1, { x: "y".repeat(9) }] })],
  ["set of a number", (t) => t.set(7, 7.5)],
  ["delete", (t) => {
    t.delete("b");
    t.delete("nope");
  }],
  ["iteration", (t) => assert.deepStrictEqual(sorted(t.map), sorted(t.model))],
];

describe("a getter read by the default codec may call the map", () => {
  for (const kind of Object.keys(KINDS) as Kind[]) {
    for (const [what, nested] of NESTED) {
      for (const target of ["target", "a", 5]) {
        test(`${kind}: set(${keyOrder(target)}) whose getter calls ${what}`, () => {
          const t = filled(kind);
          let calls = 0;
          const value = {
            before: "kept",
            get x() {
              calls++;
              nested(t);
              return 42;
            },
            after: [1, 2, 3],
          };
          t.set(target, value, { before: "kept", x: 42, after: [1, 2, 3] });
          assert.equal(calls, 1);
          t.check("after the outer write");
          t.get(target);
        });
      }
    }
    test(`${kind}: getters calling the map two levels deep`, () => {
      const t = filled(kind);
      const value = {
        get x() {
          const inner = {
            get y() {
              t.set("deepest", ["z"]);
              t.has("target");
              return "y";
            },
          };
          t.set("middle", inner, { y: "y" });
          t.get("deepest");
          return "x";
        },
      };
      t.set("target", value, { x: "x" });
      t.check("after three nested writes");
    });

    test(`${kind}: a Proxy's traps calling the map`, () => {
      const t = filled(kind);
      const proxy = new Proxy({ p: 1, q: [2] }, {
        ownKeys(target) {
          t.has("other");
          t.set("from-ownKeys", { k: 1 });
          return Reflect.ownKeys(target);
        },
        get(target, name, receiver) {
          t.get("a");
          return Reflect.get(target, name, receiver);
        },
      });
      t.set("target", proxy, { p: 1, q: [2] });
      t.check("after a write of a Proxy");
      // A Proxy of a Uint8Array is not a Uint8Array: its traps cannot run once encoded.
      const bytes = new Proxy(new Uint8Array([1, 2, 3]), {
        get(target, name) {
          t.has("other");
          const v = Reflect.get(target, name);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
      assert.throws(() => t.map.set("bytes", bytes), TypeError);
      t.check("after a Proxy of a Uint8Array was refused");
      // So under a user codec, whose error does not call it a Uint8Array.
      const codec = KINDS[kind]({
        values: { name: "proxy", encode: () => bytes, decode: () => 0 },
      });
      assert.throws(
        () => codec.set("k", 1),
        (e: unknown) =>
          e instanceof TypeError &&
          /returned an object that is not a real Uint8Array/.test(e.message),
      );
      codec.verify();
      assert.equal(codec.size, 0);
    });

    test(`${kind}: a Uint8Array whose own length lies is stored as it is`, () => {
      const t = filled(kind);
      const bytes = new Uint8Array(100).fill(9);
      Object.defineProperty(bytes, "length", {
        get() {
          t.has("other");
          return 1;
        },
      });
      t.set("bytes", bytes, new Uint8Array(100).fill(9));
      t.set("nested", { bytes }, { bytes: new Uint8Array(100).fill(9) });
      t.check("after writes of a lying Uint8Array");
      // What is next to the blob is intact.
      t.set("after", "x".repeat(50));
      t.check("after a write next to it");
    });

    test(`${kind}: a user codec's encode that looks the map up`, () => {
      for (const role of ["keys", "values"] as const) {
        let map: AnyMap | undefined;
        let inside = false;
        let nestedCalls = 0;
        const json: Codec<unknown> = {
          name: "json-lookup",
          encode: (v) => {
            // Lookups encode their keys with this codec too: one level of nesting.
            if (map !== undefined && !inside) {
              inside = true;
              try {
                nestedCalls++;
                map.has("other");
                map.get("a");
              } finally {
                inside = false;
              }
            }
            return new TextEncoder().encode(JSON.stringify(v));
          },
          decode: (b) => JSON.parse(new TextDecoder().decode(b)),
        };
        const t = filled(kind, { [role]: json });
        map = t.map;
        t.set("target", { v: 1 });
        t.get("target");
        t.delete("a");
        t.set("other", [1, 2]);
        t.set("b", "bee");
        map = undefined;
        t.check(`a ${role} codec`);
        assert.ok(nestedCalls >= 3, `${role}: ${nestedCalls} nested calls`);
      }
    });

    test(`${kind}: a user codec's encode that writes the map`, () => {
      const state: { map?: AnyMap } = {};
      let writing = false;
      const model = new Map<unknown, unknown>();
      const codec: Codec<string> = {
        name: "writes",
        encode: (v) => {
          const map = state.map;
          if (map !== undefined && !writing) {
            writing = true;
            try {
              map.set(`log:${v}`, v);
              model.set(`log:${v}`, v);
            } finally {
              writing = false;
            }
          }
          return new TextEncoder().encode(v);
        },
        decode: (b) => new TextDecoder().decode(b),
      };
      const m = KINDS[kind]({ values: codec });
      state.map = m;
      m.set("k1", "one");
      model.set("k1", "one");
      m.set("k2", "two");
      model.set("k2", "two");
      m.set("k1", "uno");
      model.set("k1", "uno");
      assert.deepStrictEqual(sorted(m), sorted(model));
    });

    test(`${kind}: a user codec's decode that writes the map`, () => {
      let map: AnyMap | undefined;
      let decodes = 0;
      const model = new Map<unknown, unknown>();
      const codec: Codec<string> = {
        name: "decode-writes",
        encode: (v) => new TextEncoder().encode(v),
        decode: (b) => {
          const v = new TextDecoder().decode(b);
          if (map !== undefined) {
            decodes++;
            map.set(`seen:${decodes}`, v);
            model.set(`seen:${decodes}`, v);
          }
          return v;
        },
      };
      const m = KINDS[kind]({ values: codec });
      for (const k of ["x", "y", "z"]) {
        m.set(k, k.repeat(3));
        model.set(k, k.repeat(3));
      }
      map = m;
      // A GoMap decode used to run inside the read and its write made the read throw
      // ConcurrentMapWriteError; a SyncMap's runs outside the lock.
      assert.equal(m.get("y"), "yyy");
      const pairs = [...m];
      map = undefined;
      assert.ok(pairs.some(([k, v]) => k === "x" && v === "xxx"));
      assert.deepStrictEqual(sorted(m), sorted(model));
      assert.ok(decodes >= 2);
    });

    test(`${kind}: forEach's callback may call the map; a bad callback is a TypeError`, () => {
      const t = filled(kind);
      (t.map as GoMap<unknown, unknown>).forEach((_v, k) => {
        if (k === "a") t.set("from-callback", { k });
      });
      t.check("after forEach");
      for (const bad of [null, undefined, 42, "f", {}]) {
        assert.throws(
          () => t.map.forEach(bad as never),
          (e: unknown) =>
            e instanceof TypeError && /forEach: the callback must be a function/.test(e.message),
        );
      }
      // Even on an empty map, where there is nothing to call it for.
      assert.throws(() => KINDS[kind]().forEach(null as never), TypeError);
      t.check("after the refused calls");
    });
  }
});

describe("SyncMap: every operation's getters and codecs may call the map", () => {
  /** SyncMap operations a getter can call, checked against the model. */
  const SYNC_NESTED: [string, (t: Twin, m: SyncMap<unknown, unknown>) => void][] = [
    ["load", (t, m) => assert.deepStrictEqual(m.load("other"), t.model.get("other"))],
    ["store", (t, m) => {
      m.store("stored", { s: 1 });
      t.model.set("stored", { s: 1 });
    }],
    ["loadOrStore", (t, m) => {
      const had = t.model.has("los");
      const expected = had ? t.model.get("los") : ["v"];
      assert.deepStrictEqual(m.loadOrStore("los", ["v"]), [expected, had]);
      t.model.set("los", expected);
    }],
    ["swap", (t, m) => {
      const had = t.model.has("other");
      assert.deepStrictEqual(m.swap("other", { swapped: true }), [t.model.get("other"), had]);
      t.model.set("other", { swapped: true });
    }],
    ["compareAndSwap", (t, m) => {
      const expected = sameEncoding(t.model, "a", { n: 1 });
      assert.equal(m.compareAndSwap("a", { n: 1 }, { n: 2 }), expected);
      if (expected) t.model.set("a", { n: 2 });
    }],
    ["compareAndDelete", (t, m) => {
      const expected = sameEncoding(t.model, "b", [2, "two"]);
      assert.equal(m.compareAndDelete("b", [2, "two"]), expected);
      if (expected) t.model.delete("b");
    }],
    ["loadAndDelete", (t, m) => {
      const expected = [t.model.get("other"), t.model.has("other")];
      assert.deepStrictEqual(m.loadAndDelete("other"), expected);
      t.model.delete("other");
    }],
    ["range", (t, m) => {
      const seen = new Map<unknown, unknown>();
      m.range((k, v) => void seen.set(k, v));
      assert.deepStrictEqual(sorted(seen), sorted(t.model));
    }],
    ["clear", (t, m) => {
      m.clear();
      t.model.clear();
    }],
  ];

  /**
   * Outer operations, each taking a value (or two) whose getter runs the nested operation. The
   * nested operation takes effect first, so what the outer one returns is checked against the
   * model after the call (by then updated by the nested operation only), before the outer
   * operation's own effect is applied to it.
   */
  type Outer = [string, (t: Twin, m: SyncMap<unknown, unknown>, v: () => unknown) => void];
  const X = { x: 42 };
  const OUTER: Outer[] = [
    ["store", (t, m, v) => {
      m.store("target", v());
      t.model.set("target", X);
    }],
    ["swap", (t, m, v) => {
      const result = m.swap("target", v());
      assert.deepStrictEqual(result, [t.model.get("target"), t.model.has("target")]);
      t.model.set("target", X);
    }],
    ["loadOrStore", (t, m, v) => {
      const value = v();
      const [actual, loaded] = m.loadOrStore("target", value);
      assert.equal(loaded, t.model.has("target"));
      if (loaded) {
        assert.deepStrictEqual(actual, t.model.get("target"));
      } else {
        assert.equal(actual, value);
        t.model.set("target", X);
      }
    }],
    ["compareAndSwap, the new value's getter", (t, m, v) => {
      m.store("target", { old: true });
      t.model.set("target", { old: true });
      const swapped = m.compareAndSwap("target", { old: true }, v());
      assert.equal(swapped, sameEncoding(t.model, "target", { old: true }));
      if (swapped) t.model.set("target", X);
    }],
    ["compareAndSwap, the old value's getter", (t, m, v) => {
      m.store("target", X);
      t.model.set("target", X);
      const swapped = m.compareAndSwap("target", v(), { swapped: 1 });
      assert.equal(swapped, sameEncoding(t.model, "target", X));
      if (swapped) t.model.set("target", { swapped: 1 });
    }],
    ["compareAndDelete", (t, m, v) => {
      m.store("target", X);
      t.model.set("target", X);
      const deleted = m.compareAndDelete("target", v());
      assert.equal(deleted, sameEncoding(t.model, "target", X));
      if (deleted) t.model.delete("target");
    }],
  ];

  for (const [outerName, outer] of OUTER) {
    for (const [nestedName, nested] of SYNC_NESTED) {
      test(`${outerName} whose value's getter calls ${nestedName}`, () => {
        const t = filled("SyncMap");
        const m = t.map as SyncMap<unknown, unknown>;
        let calls = 0;
        const value = () => ({
          get x() {
            calls++;
            nested(t, m);
            return 42;
          },
        });
        outer(t, m, value);
        assert.equal(calls, 1);
        t.check(`${outerName} / ${nestedName}`);
      });
    }
  }

  test("compareAndSwap whose new value's getter stores the key compared", () => {
    // The nested store happens first (encoding precedes the swap): the swap then fails.
    const t = filled("SyncMap");
    const m = t.map as SyncMap<unknown, unknown>;
    m.store("target", { v: 1 });
    const next = {
      get x() {
        m.store("target", { v: 2 });
        return 42;
      },
    };
    assert.equal(m.compareAndSwap("target", { v: 1 }, next), false);
    assert.deepStrictEqual(m.load("target"), { v: 2 });
  });

  test("close() inside a getter of one of the object's calls is a TypeError", () => {
    const m = new SyncMap<string, unknown>();
    m.store("kept", 1);
    const value = {
      get x() {
        m.close();
        return 1;
      },
    };
    assert.throws(
      () => m.store("target", value),
      (e: unknown) => e instanceof TypeError && /inside one of its calls/.test(e.message),
    );
    assert.deepStrictEqual(sorted(m), [["kept", 1]]);
    m.store("after", 2);
    assert.equal(m.size, 2);
    m.close();
  });
});

describe("a SyncMap user decode that calls the map runs outside the mutex", () => {
  test("loadOrStore, swap, load, loadAndDelete and range on dirty-only keys finish", {
    timeout: 60_000,
  }, async () => {
    const script = new URL("./fixtures/reentrant_decode.ts", import.meta.url);
    const { code, stdout, stderr, timedOut } = await runChild(script, [], 30_000);
    assert.equal(timedOut, false, `the child hung (a decode waiting on the map's mutex)`);
    assert.equal(code, 0, `the child failed:\n${stderr}`);
    const report = JSON.parse(stdout.trim().split("\n").pop()!) as Record<string, unknown>;
    assert.deepStrictEqual(report, {
      loadOrStore: "ok",
      swap: "ok",
      load: "ok",
      loadAndDelete: "ok",
      range: "ok",
    });
  });
});

test("codecs.auto.encode may be called from a getter it is reading", () => {
  const value = {
    get x() {
      return codecs.auto.decode(codecs.auto.encode({ inner: [1, 2] }));
    },
    y: "after",
  };
  const bytes = codecs.auto.encode(value);
  assert.deepStrictEqual(codecs.auto.decode(bytes), { x: { inner: [1, 2] }, y: "after" });
});

describe("bytes a codec hands over are copied before the map relies on them", () => {
  /** A codec of strings that returns views of one scratch buffer, rewritten by every encode. */
  function scratchCodec(): Codec<string> {
    const scratch = new Uint8Array(256);
    const text = new TextEncoder();
    return {
      name: "scratch",
      encode: (s) => scratch.subarray(0, text.encodeInto(s, scratch).written),
      decode: (bytes) => new TextDecoder().decode(bytes),
    };
  }

  for (const kind of ["GoMap", "SyncMap"] as const) {
    test(`${kind}: a user codec reusing its output buffer for keys and values`, () => {
      const codec = scratchCodec(); // one buffer for keys and values
      const options = { keys: codec, values: codec };
      const twin = new Twin(KINDS[kind](options));
      for (let i = 0; i < 40; i++) twin.set(`key ${i}`, `value ${i} ${"v".repeat(i)}`);
      twin.set("alpha", "omega");
      twin.set("alpha", "omega 2");
      twin.get("alpha");
      twin.delete("key 3");
      twin.check("after writes whose value encode rewrote the key's bytes");
      twin.map.verify();
      if (kind === "SyncMap") {
        // The old and the new value encoded by one codec, one after the other.
        const m = twin.map as unknown as SyncMap<string, string>;
        assert.equal(m.compareAndSwap("alpha", "not it", "swapped"), false);
        assert.equal(m.load("alpha"), "omega 2");
        assert.equal(m.compareAndSwap("alpha", "omega 2", "swapped"), true);
        assert.equal(m.load("alpha"), "swapped");
        m.verify();
      }
    });

    test(`${kind}: a value's getter writing the bytes of the key being stored`, () => {
      const twin = new Twin(KINDS[kind]({ keys: codecs.bytes }));
      const key = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      const stored = key.slice();
      const value = {
        get x() {
          key[0] = 99; // after the key was encoded and hashed
          return 1;
        },
      };
      twin.map.set(key, value);
      twin.model.set(stored, { x: 1 });
      twin.map.verify();
      assert.deepStrictEqual([...twin.map.keys()], [stored]);
      assert.deepStrictEqual(twin.map.get(stored), { x: 1 });
      assert.equal(twin.map.get(key), undefined, "the key as it is now is another key");
    });
  }
});
