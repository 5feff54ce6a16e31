// Copyright the shmap authors. MIT license.
//
// SyncMap on one thread, its edges: attaching in the same thread, closing, and bad input
// (unsupported keys and values, a full arena, bad handles and options).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Codec, codecs, GoMap, MapFullError, SyncMap, type SyncMapHandle } from "../mod.ts";
import { attachOwnSeat, shareSyncMap } from "../src/maps/sync_map.ts";
import { H_ALLOC_LOCK } from "../src/_engine/arena.ts";
import { CACHE_BLOCK_BYTES } from "../src/_engine/alloc_cache.ts";
import { sleep } from "./fixtures/harness.ts";
import { sorted } from "./fixtures/map_pairs.ts";

const tick = (): Promise<void> => sleep(0);

describe("SyncMap: handles, attach and close", () => {
  test("an attached object in the same thread sees and writes the same data", () => {
    const m = new SyncMap<string, unknown>();
    m.store("a", 1);
    const handle = m.handle;
    assert.equal(handle.kind, "SyncMap");
    assert.ok(handle.buffer instanceof SharedArrayBuffer);
    // A seat of its own, as another worker's object would have.
    const other = attachOwnSeat<string, unknown>(structuredClone(handle));
    assert.equal(m.stats().participants, 2);
    assert.equal(other.load("a"), 1);
    other.store("b", { x: [1] });
    assert.deepStrictEqual(m.load("b"), { x: [1] });
    assert.deepStrictEqual(m.swap("a", 2), [1, true]);
    assert.equal(other.load("a"), 2);
    assert.equal(other.compareAndSwap("a", 2, 3), true);
    assert.equal(m.load("a"), 3);
    other.range(() => {}); // other promotes; m reads the new read table
    assert.equal(m.stats().dirtyKeys, -1);
    m.delete("b");
    assert.equal(other.has("b"), false);
    assert.equal(other.size, 1);
    other.clear();
    assert.equal(m.size, 0);
    m.store("c", 3);
    assert.deepStrictEqual([...other], [["c", 3]]);
    other.close();
    assert.equal(m.stats().participants, 1);
    assert.equal(m.load("c"), 3);
  });

  test("after close every operation throws TypeError; the map lives on", () => {
    const m = new SyncMap<string, number>();
    m.store("a", 1);
    const v = attachOwnSeat<string, number>(m.handle);
    v.load("a");
    v.close();
    v.close(); // twice is fine
    const ops: [string, () => unknown][] = [
      ["load", () => v.load("a")],
      ["get", () => v.get("a")],
      ["has", () => v.has("a")],
      ["store", () => v.store("a", 2)],
      ["set", () => v.set("a", 2)],
      ["loadOrStore", () => v.loadOrStore("a", 2)],
      ["loadAndDelete", () => v.loadAndDelete("a")],
      ["delete", () => v.delete("a")],
      ["swap", () => v.swap("a", 2)],
      ["compareAndSwap", () => v.compareAndSwap("a", 1, 2)],
      ["compareAndDelete", () => v.compareAndDelete("a", 1)],
      ["range", () => v.range(() => {})],
      ["clear", () => v.clear()],
      ["iterator", () => [...v]],
      ["entries", () => [...v.entries()]],
      ["keys", () => [...v.keys()]],
      ["values", () => [...v.values()]],
      // The call itself, not only its first next(), as for every other member.
      ["Symbol.iterator()", () => v[Symbol.iterator]()],
      ["entries()", () => v.entries()],
      ["keys()", () => v.keys()],
      ["values()", () => v.values()],
      ["forEach", () => v.forEach(() => {})],
      ["stats", () => v.stats()],
      ["size", () => v.size],
    ];
    for (const [name, op] of ops) assert.throws(op, TypeError, name);
    assert.equal(m.load("a"), 1);
    assert.equal(m.size, 1);
    assert.equal(m.stats().participants, 1);
    // The creating object may close too; an attached one keeps the map.
    const w = attachOwnSeat<string, number>(m.handle);
    m[Symbol.dispose]();
    assert.throws(() => m.load("a"), TypeError);
    assert.equal(w.load("a"), 1);
    w.store("b", 2);
    assert.equal(w.stats().participants, 1);
    w.close();
  });

  test("attach rejects what is not a live SyncMap handle", () => {
    const m = new SyncMap();
    const bad: [string, unknown][] = [
      ["null", null],
      ["undefined", undefined],
      ["a number", 42],
      ["{}", {}],
      ["a GoMap handle", new GoMap().handle],
      ["a SyncMap kind on a GoMap buffer", { kind: "SyncMap", buffer: new GoMap().handle.buffer }],
      ["a plain SharedArrayBuffer", { kind: "SyncMap", buffer: new SharedArrayBuffer(4096) }],
      ["an ArrayBuffer", { kind: "SyncMap", buffer: new ArrayBuffer(65536) }],
      [
        "a zeroed growable buffer",
        { kind: "SyncMap", buffer: new SharedArrayBuffer(65536, { maxByteLength: 1 << 20 }) },
      ],
      ["no buffer", { kind: "SyncMap" }],
      ["participant -1", { ...m.handle, participant: -1 }],
      ["participant 1.5", { ...m.handle, participant: 1.5 }],
      ["participant out of range", { ...m.handle, participant: 256 }],
      ["participant not a number", { ...m.handle, participant: "0" }],
      // Seat 0 is the creator's: in use, not reserved.
      ["a seat in use", { ...m.handle, participant: 0 }],
      // Seat 5 is free: only a reserved seat can be attached by index.
      ["a free seat", { ...m.handle, participant: 5 }],
    ];
    for (const [name, handle] of bad) {
      assert.throws(() => SyncMap.attach(handle as SyncMapHandle), TypeError, name);
    }
    // Nothing leaked a participant seat.
    assert.equal(m.stats().participants, 1);
  });

  test("a reserved participant seat attaches exactly once", () => {
    const m = new SyncMap<string, number>();
    m.store("x", 1);
    const share = shareSyncMap(m as SyncMap<never, never>);
    assert.equal(m.stats().participants, 2, "a reserved share counts");
    const w = SyncMap.attach<string, number>(structuredClone(share.handle));
    assert.equal(w.load("x"), 1);
    // Attached again in the thread that adopted it: the same object, one attach more.
    assert.equal(SyncMap.attach(structuredClone(share.handle)), w);
    assert.equal(m.stats().participants, 2);
    w.close();
    assert.equal(w.load("x"), 1, "one attach of two closed");
    w.close();
    assert.throws(() => w.load("x"), TypeError);
    assert.throws(() => SyncMap.attach(share.handle), TypeError, "released");
    const again = shareSyncMap(m as SyncMap<never, never>);
    again.release();
    assert.throws(() => SyncMap.attach(again.handle), TypeError, "released before attaching");
    assert.equal(m.stats().participants, 1);
  });

  test("maxParticipants bounds the attached objects, with a clear RangeError", () => {
    const m = new SyncMap<string, number>({ maxParticipants: 2 });
    const a = attachOwnSeat(m.handle);
    assert.throws(
      () => attachOwnSeat(m.handle),
      (e: unknown) =>
        e instanceof RangeError && /participant seats/.test(e.message) &&
        /maxParticipants/.test(e.message),
    );
    assert.throws(() => shareSyncMap(m as SyncMap<never, never>), RangeError);
    a.close();
    const b = attachOwnSeat<string, number>(m.handle);
    b.store("k", 1);
    assert.equal(m.load("k"), 1);
    b.close();
    const one = new SyncMap({ maxParticipants: 1 });
    assert.throws(() => attachOwnSeat(one.handle), RangeError);
    one.close();
    const c = SyncMap.attach(one.handle);
    assert.equal(c.size, 0);
    c.close();
  });

  test("invalid options", () => {
    for (const maxParticipants of [0, -1, 1.5, NaN, 65537, Infinity]) {
      assert.throws(() => new SyncMap({ maxParticipants }), RangeError, String(maxParticipants));
    }
    for (const hint of [-1, 1.5, NaN, Infinity]) {
      assert.throws(() => new SyncMap({ hint }), RangeError, String(hint));
    }
    assert.throws(() => new SyncMap({ hint: 1e7, maxBytes: 1 << 20 }), RangeError);
    assert.throws(() => new SyncMap({ maxBytes: 1000 }), RangeError);
    assert.throws(() => new SyncMap({ maxBytes: 1.5 }), RangeError);
    assert.throws(() => new SyncMap({ maxBytes: "65536" as unknown as number }), TypeError);
    assert.throws(() => new SyncMap(null as unknown as object), TypeError);
    assert.throws(() => new SyncMap({ keys: {} as Codec<unknown> }), TypeError);
    assert.throws(
      () =>
        new SyncMap<string, Uint8Array>({
          values: { name: "auto", encode: (x) => x, decode: (x) => x },
        }),
      TypeError,
    );
    // Valid extremes work.
    const h = new SyncMap<number, number>({ hint: 1000, maxParticipants: 1 });
    const s = h.stats();
    assert.equal(s.dirtyKeys, 0, "a hint starts with an empty dirty table");
    for (let i = 0; i < 1000; i++) h.store(i, i);
    assert.equal(h.size, 1000);
  });
});

describe("SyncMap: bad input", () => {
  function snapshot(m: SyncMap<unknown, unknown>) {
    const s = m.stats();
    return { size: m.size, bytesUsed: s.bytesUsed, count: s.count, entries: sorted(m) };
  }

  test("an old value too large for maxBytes equals no stored value: compare-and-X is false", () => {
    const m = new SyncMap<unknown, unknown>({ maxBytes: 65536 });
    m.store("k", { a: 1 });
    const before = snapshot(m);
    const huge = [
      "x".repeat(40_000),
      new Uint8Array(100_000),
      2n ** 600_000n,
      { s: "x".repeat(20_000), t: "y".repeat(20_000) },
    ];
    for (const old of huge) {
      assert.equal(m.compareAndSwap("k", old, 2), false);
      assert.equal(m.compareAndDelete("k", old), false);
      assert.equal(m.compareAndSwap("absent", old, 2), false);
      // Stored, it is still refused.
      assert.throws(() => m.store("k", old), MapFullError);
    }
    assert.deepStrictEqual(snapshot(m), before);
    // A user codec's encoding, and inside a getter (a nested call's probe).
    const user = new SyncMap<string, string>({
      maxBytes: 65536,
      values: {
        name: "utf8",
        encode: (s) => new TextEncoder().encode(s),
        decode: (b) => new TextDecoder().decode(b),
      },
    });
    user.store("k", "v");
    assert.equal(user.compareAndDelete("k", "z".repeat(100_000)), false);
    m.store("g", {
      get x() {
        return m.compareAndSwap("k", huge[0], 3);
      },
    });
    assert.deepEqual(m.load("g"), { x: false });
    assert.deepEqual(m.load("k"), { a: 1 });
    assert.equal(m.compareAndSwap("k", { a: 1 }, 3), true, "an old value that fits still matches");
    m.verify();
    user.verify();
  });

  test("unsupported keys and values throw TypeError and change nothing", () => {
    const m = new SyncMap<unknown, unknown>();
    for (let i = 0; i < 20; i++) m.store(i, { i });
    m.range(() => {});
    m.store("dirty", 1); // both tables present
    m.delete(3);
    const before = snapshot(m);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    const badKeys: unknown[] = [{}, [1], new Uint8Array(1), () => 1, Symbol("s"), new Date(0)];
    const badValues: unknown[] = [
      () => 1,
      Symbol("s"),
      cycle,
      new Date(0),
      new Map(),
      new Set(),
      new Int32Array(2),
      { f: () => 1 },
      [1, Symbol("nested")],
      new (class Thing {})(),
    ];
    for (const key of badKeys) {
      const what = `key ${String(typeof key === "symbol" ? "symbol" : key)}`;
      assert.throws(() => m.store(key, 1), TypeError, what);
      assert.throws(() => m.set(key, 1), TypeError, what);
      assert.throws(() => m.load(key), TypeError, what);
      assert.throws(() => m.has(key), TypeError, what);
      assert.throws(() => m.delete(key), TypeError, what);
      assert.throws(() => m.loadAndDelete(key), TypeError, what);
      assert.throws(() => m.loadOrStore(key, 1), TypeError, what);
      assert.throws(() => m.swap(key, 1), TypeError, what);
      assert.throws(() => m.compareAndSwap(key, 1, 2), TypeError, what);
      assert.throws(() => m.compareAndDelete(key, 1), TypeError, what);
    }
    for (const value of badValues) {
      for (const key of [0, 3, "dirty", "new", "a long new key, with a blob"]) {
        assert.throws(() => m.store(key, value), TypeError);
        assert.throws(() => m.swap(key, value), TypeError);
        assert.throws(() => m.compareAndSwap(key, value, 1), TypeError);
        assert.throws(() => m.compareAndSwap(key, { i: 0 }, value), TypeError);
        assert.throws(() => m.compareAndDelete(key, value), TypeError);
      }
      assert.throws(() => m.loadOrStore("new", value), TypeError);
    }
    assert.deepStrictEqual(snapshot(m), before);
    // And the map works as before.
    m.store("new", 1);
    assert.equal(m.load("new"), 1);
    assert.deepStrictEqual(m.load(0), { i: 0 });
  });

  test("typed and user codecs reject what they cannot encode, changing nothing", () => {
    const m = new SyncMap<number, number>({ keys: codecs.int32, values: codecs.float64 });
    m.store(1, 1);
    const before = snapshot(m as SyncMap<unknown, unknown>);
    assert.throws(() => m.store("1" as unknown as number, 1), TypeError);
    assert.throws(() => m.store(1.5, 1), RangeError);
    assert.throws(() => m.store(2 ** 31, 1), RangeError);
    assert.throws(() => m.store(2, "x" as unknown as number), TypeError);
    assert.throws(() => m.compareAndSwap(1, 1n as unknown as number, 2), TypeError);
    assert.deepStrictEqual(snapshot(m as SyncMap<unknown, unknown>), before);
    const failing: Codec<string> = {
      name: "failing",
      encode: (s) => {
        if (s === "bad") throw new TypeError("no bad");
        if (s === "wrong") return [1, 2] as unknown as Uint8Array;
        return new TextEncoder().encode(s);
      },
      decode: (b) => new TextDecoder().decode(b),
    };
    const u = new SyncMap<string, string>({ keys: failing, values: failing });
    u.store("ok", "ok");
    const ub = snapshot(u as SyncMap<unknown, unknown>);
    assert.throws(() => u.store("bad", "x"), TypeError);
    assert.throws(() => u.store("x", "bad"), TypeError);
    assert.throws(() => u.store("x", "wrong"), TypeError);
    assert.throws(() => u.loadOrStore("wrong", "x"), TypeError);
    assert.deepStrictEqual(snapshot(u as SyncMap<unknown, unknown>), ub);
  });

  test("a bad key is refused before the old value is encoded, by every compare-and-X", () => {
    // Both bad: the key's error comes, as from every write (and RedisSyncMap), and none of the
    // old value's code runs first: a getter that writes the map would have changed it.
    const m = new SyncMap<number, number>({ keys: codecs.int32, values: codecs.int32 });
    m.store(1, 1);
    const before = snapshot(m as SyncMap<unknown, unknown>);
    const bad = "k" as unknown as number;
    assert.throws(() => m.compareAndDelete(bad, 1.5), /expected a number, got a string "k"/);
    assert.throws(() => m.compareAndSwap(bad, 1.5, 1), /expected a number, got a string "k"/);
    assert.deepStrictEqual(snapshot(m as SyncMap<unknown, unknown>), before);
    const o = new SyncMap<number, { v: number }>({ keys: codecs.int32 });
    o.store(1, { v: 1 });
    let ran = 0;
    const old = {
      get v() {
        ran++;
        o.store(2, { v: 2 });
        return 1;
      },
    };
    const oBefore = snapshot(o as SyncMap<unknown, unknown>);
    assert.throws(() => o.compareAndDelete(bad, old), TypeError);
    assert.throws(() => o.compareAndSwap(bad, old, { v: 3 }), TypeError);
    assert.equal(ran, 0, "the old value's getter ran before the key was refused");
    assert.deepStrictEqual(snapshot(o as SyncMap<unknown, unknown>), oBefore);
    // A good key with a getter that writes the map: the compare goes on, and the write stays.
    assert.equal(o.compareAndDelete(1, old), true);
    assert.equal(ran, 1);
    assert.deepStrictEqual(o.load(2), { v: 2 });
    assert.equal(o.load(1), undefined);
    o.verify();
  });
  test("after MapFullError, deletes make room for a store in the same task", () => {
    const m = new SyncMap<number, string>({ maxBytes: 128 * 1024 });
    const value = (i: number) => `${i}:` + "v".repeat(500);
    let stored = 0;
    assert.throws(() => {
      for (;; stored++) m.store(stored, value(stored));
    }, MapFullError);
    // No await between the deletes and the store: the records the deletes retire must be
    // freed by the store's own call, since nothing else can be reading them.
    for (let i = 0; i < 8; i++) assert.equal(m.delete(i), true);
    for (let i = 0; i < 8; i++) m.store(i, value(i));
    for (let i = 0; i < stored; i++) assert.equal(m.load(i), value(i), `key ${i}`);
    assert.equal(m.size, stored);
  });

  test("MapFullError leaves the map consistent, usable and unlocked", async () => {
    const maxBytes = 256 * 1024;
    const m = new SyncMap<number, string>({ maxBytes });
    const long = (i: number) => `${i}:` + "x".repeat(700 + (i % 13) * 50);
    let stored = 0;
    let error: unknown;
    try {
      for (;; stored++) {
        if (stored === 100) m.range(() => {}); // some keys in the read table too
        m.store(stored, long(stored));
      }
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof MapFullError, `got ${String(error)}`);
    assert.ok(error instanceof RangeError);
    assert.ok(stored > 100, `stored ${stored}`);
    // No lock is held: stats() takes the map's mutex (a held one would hang here, on the
    // futex), and the allocator's lock word reads zero.
    const header = new Int32Array(m.handle.buffer, 0, H_ALLOC_LOCK + 1);
    assert.equal(Atomics.load(header, H_ALLOC_LOCK), 0, "the allocator lock is free");
    const s = m.stats();
    assert.equal(s.count, stored);
    assert.ok(s.bytesReserved <= maxBytes);
    // Consistent: everything stored before is there, nothing else.
    assert.equal(m.size, stored);
    for (let i = 0; i < stored; i++) assert.equal(m.load(i), long(i), `key ${i}`);
    assert.equal(m.load(stored), undefined);
    assert.equal([...m].length, stored);
    // Every writing operation fails the same way, changing nothing.
    const bytes = m.stats().bytesUsed;
    assert.throws(() => m.swap(stored, long(stored)), MapFullError);
    assert.throws(() => m.loadOrStore(stored, long(stored)), MapFullError);
    assert.throws(() => m.compareAndSwap(0, long(0), "y".repeat(5000)), MapFullError);
    assert.equal(m.load(0), long(0));
    // Nothing leaked: a failed store frees what it took. (It may free more: running out of
    // memory makes the next call free blocks retired earlier, which changes no contents.)
    assert.ok(m.stats().bytesUsed <= bytes, `${m.stats().bytesUsed} > ${bytes}`);
    for (let i = 0; i < stored; i++) assert.equal(m.load(i), long(i), `key ${i}`);
    assert.equal(m.size, stored);
    // Usable: deleted memory is reclaimed once this task ends; then stores succeed again.
    for (let i = 0; i < 10; i++) assert.equal(m.delete(i), true);
    await tick();
    assert.ok(m.stats().bytesUsed < bytes, "deleted values were freed");
    m.store(0, long(0));
    assert.deepStrictEqual(m.loadOrStore(1, long(1)), [long(1), false]);
    assert.equal(m.load(0), long(0));
    assert.equal(m.size, stored - 10 + 2);
    // After clear, memory is reusable. (Not all of it for any use: freed blocks keep their
    // size class, so refill with values of the same sizes.)
    m.clear();
    await tick();
    const half = stored >> 1;
    for (let i = 0; i < half; i++) m.store(i, long(i));
    assert.equal(m.size, half);
    for (let i = 0; i < half; i++) assert.equal(m.load(i), long(i));
  });

  test("MapFullError from a new key whose dirty table cannot be built changes nothing", () => {
    // Fill with small values, so that the tables, not values, take the memory.
    const m = new SyncMap<number, number>({ maxBytes: 64 * 1024 });
    let n = 0;
    try {
      for (;; n++) {
        m.store(n, n);
        if (n % 97 === 0) m.range(() => {});
      }
    } catch (e) {
      assert.ok(e instanceof MapFullError, String(e));
    }
    assert.equal(m.size, n);
    for (let i = 0; i < n; i++) assert.equal(m.load(i), i);
    // Again after promoting: now the dirty table must be rebuilt from the read table.
    m.range(() => {});
    assert.throws(() => {
      for (let i = n;; i++) m.store(i, i);
    }, MapFullError);
    const size = m.size;
    assert.deepStrictEqual(sorted(m).map(([k, v]) => k - v), new Array(size).fill(0));
    for (let i = 0; i < size; i++) assert.equal(m.load(i), i);
    assert.equal(m.stats().count, size);
    m.store(0, -1);
    assert.equal(m.load(0), -1);
  });

  test("a second object's first allocation, on a full map, is a MapFullError", () => {
    // Its cache's own block cannot be had: nothing may be flushed for want of a cache.
    const options = { keys: codecs.int32, values: codecs.bytes };
    const m = new SyncMap<number, Uint8Array>({ ...options, maxBytes: 128 * 1024 });
    const b = attachOwnSeat<number, Uint8Array>(m.handle, options);
    b.load(0); // online once: no cache yet
    m.store(1, new Uint8Array(64));
    let k = 2;
    // Down to sizes whose blocks are smaller than a cache block, through one in its very class
    // (whose span the first object's cache block came from, with room for more).
    const ladder = [4000, 2000, 1000, 600, 400, CACHE_BLOCK_BYTES - 16, 230, 200, 150, 120, 100];
    for (const size of ladder.sort((x, y) => y - x)) {
      for (;;) {
        try {
          m.store(k++, new Uint8Array(size));
        } catch (error) {
          assert.ok(error instanceof MapFullError, String(error));
          break;
        }
      }
    }
    assert.throws(() => b.store(-1, new Uint8Array(64)), MapFullError);
    m.verify();
    m.store(-2, new Uint8Array(64));
    assert.equal(m.load(-2)?.length, 64);
    b.close();
  });

  test("MapFullError after the dirty table's build: deleted keys can be stored again", () => {
    // The build expunges the read table's deleted keys; the new key's blob then cannot fit,
    // and the step is rolled back, the build with it. Its expunges must be undone too: an
    // expunged key with no dirty table has no table to be put back in.
    const m = new SyncMap<string, number>({ maxBytes: 256 * 1024 });
    for (let i = 0; i < 8; i++) m.store(`k${i}`, i);
    for (let i = 0; i < 50; i++) m.load(`missing ${i}`); // misses promote: no dirty table
    m.delete("k0");
    assert.equal(m.stats().dirtyKeys, -1, "no dirty table");
    assert.throws(() => m.store("x".repeat(120 * 1024), 1), MapFullError);
    m.store("k0", 42);
    assert.equal(m.load("k0"), 42);
    assert.equal(m.loadOrStore("k1", 5)[0], 1);
    m.delete("k2");
    assert.deepEqual(m.loadOrCompute("k2", () => 7), [7, false]);
    m.verify();
  });
});
