// User code reached through patched built-ins: setters on Array.prototype that the structured
// decoder's assignments run, a lying %TypedArray%.prototype.length, a codec name getter that
// changes its answer, and NaNs with payload bits inside a value. Each test puts the prototypes
// back before it ends, pass or fail.

import { test } from "node:test";
import assert from "node:assert/strict";
import { type Codec, GoMap, SyncMap } from "../mod.ts";

const apply = Reflect.apply;
const byteLengthGetter = Object.getOwnPropertyDescriptor(
  Object.getPrototypeOf(Uint8Array.prototype),
  "byteLength",
)!.get!;

/**
 * On a GoMap and on a SyncMap: stores a `size`-byte value of 0xff beside 20 live 8-byte values,
 * with holes between them where a block sized too small would land, `armed` run just before;
 * then checks that every value reads back whole (lengths by the built-in getter, through a
 * Reflect.apply taken as this file loaded) and that `verify()` passes.
 */
function storeBesideNeighbours(size: number, armed: () => void = () => {}): void {
  for (const kind of ["GoMap", "SyncMap"]) {
    const go = kind === "GoMap" ? new GoMap<unknown, Uint8Array>() : null;
    const sync = go === null ? new SyncMap<unknown, Uint8Array>() : null;
    const set = (k: unknown, v: Uint8Array) => go !== null ? go.set(k, v) : sync!.store(k, v);
    const get = (k: unknown) => go !== null ? go.get(k) : sync!.load(k);
    for (let i = 0; i < 40; i++) set(i, new Uint8Array(8).fill(i));
    for (let i = 0; i < 20; i++) (go ?? sync)!.delete(2 * i);
    armed();
    set("victim", new Uint8Array(size).fill(0xff));
    for (let i = 1; i < 40; i += 2) {
      const v = get(i)!;
      assert.equal(apply(byteLengthGetter, v, []), 8, `${kind}: neighbour ${i}`);
      for (let j = 0; j < 8; j++) assert.equal(v[j], i, `${kind}: neighbour ${i}`);
    }
    const victim = get("victim")!;
    assert.equal(apply(byteLengthGetter, victim, []), size, kind);
    for (let j = 0; j < size; j++) assert.equal(victim[j], 0xff, kind);
    (go ?? sync)!.verify();
  }
}

test("SyncMap.load of a structured value whose decode, through an Array.prototype setter, stores again", () => {
  // The nested stores retire the record being decoded; before the decode held the participant
  // (no quiescent point), its memory was freed and reused under the decoder, and load returned
  // an array mixing the old value with bytes of later records.
  const m = new SyncMap<string, string[]>();
  const big = (c: string) => [c.repeat(200), c.repeat(200), c.repeat(200)];
  m.store("k", big("a"));
  let hook: (() => void) | null = () => {
    for (let i = 0; i < 300; i++) {
      m.store("k", big("b"));
      m.store(`x${i % 5}`, big("c"));
    }
  };
  Object.defineProperty(Array.prototype, "0", {
    configurable: true,
    set(v) {
      Object.defineProperty(this, "0", {
        value: v,
        writable: true,
        enumerable: true,
        configurable: true,
      });
      const h = hook;
      hook = null;
      h?.();
    },
  });
  let got: string[] | undefined;
  try {
    got = m.load("k");
  } finally {
    delete (Array.prototype as unknown as Record<string, unknown>)["0"];
  }
  assert.equal(hook, null, "the setter ran inside the decode");
  assert.deepEqual(got, big("a"));
  assert.deepEqual(m.load("k"), big("b"));
  assert.equal(m.size, 6);
  m.verify();
});

test("a %TypedArray%.prototype.length that lies sizes no blob smaller than what is copied", () => {
  const TA = Object.getPrototypeOf(Uint8Array.prototype);
  const real = Object.getOwnPropertyDescriptor(TA, "length")!;
  Object.defineProperty(TA, "length", {
    configurable: true,
    get() {
      const n = real.get!.call(this);
      return n === 200 ? 4 : n;
    },
  });
  try {
    storeBesideNeighbours(200);
  } finally {
    Object.defineProperty(TA, "length", real);
  }
});

test("a NaN with payload bits inside a value compares equal to NaN, as a top-level one does", () => {
  // V8 keeps the payload of a NaN stored in an array; the encoder wrote those bits as they came.
  const weird = new Float64Array(new Uint32Array([1, 0xfff10000]).buffer)[0];
  const m = new SyncMap<string, unknown>();
  m.store("a", [NaN]);
  assert.equal(m.compareAndDelete("a", [weird]), true);
  // (Bun makes every NaN in an array the one NaN, so there this holds whatever the encoder does;
  // V8 keeps the payload in an array, not in an object's property.)
  m.store("o", { x: [weird] });
  assert.equal(m.compareAndSwap("o", { x: [NaN] }, 1), true);
  assert.equal(m.load("o"), 1);
});

test("a codec whose name getter changes its answer is recorded under the name it was checked by", () => {
  let reads = 0;
  const codec = {
    get name() {
      // "mine" for the checks, "auto" from the fourth read: what the old code recorded.
      return ++reads <= 3 ? "mine" : "auto";
    },
    encode: (v: string) => new TextEncoder().encode(v),
    decode: (b: Uint8Array) => new TextDecoder().decode(b),
  } as Codec<string>;
  const m = new GoMap<string, number>({ keys: codec });
  m.set("hello", 1);
  // The header says "mine": attaching without that codec must not decode the bytes as auto.
  assert.throws(() => GoMap.attach(m.handle), /use the codec "mine"/);
});

test("a patched Function.prototype.call cannot stand in for the built-in byteLength", () => {
  // The built-ins were called as `getter.call(view)`, which looks `call` up at every use.
  const realCall = Function.prototype.call;
  let reads = 0;
  Object.defineProperty(Function.prototype, "call", {
    configurable: true,
    writable: true,
    value: function (this: (...a: unknown[]) => unknown, self: unknown, ...args: unknown[]) {
      const r = apply(this, self, args);
      // Lies about the 200-byte value, once some reads in: the size a blob is allocated by.
      return this === byteLengthGetter && r === 200 && ++reads >= 2 ? 4 : r;
    },
  });
  try {
    storeBesideNeighbours(200, () => reads = 0);
  } finally {
    Object.defineProperty(Function.prototype, "call", {
      configurable: true,
      writable: true,
      value: realCall,
    });
  }
});

test("a Uint8Array[Symbol.species] subclass hands the writer no longer array than it sized", () => {
  // The default codec's encoding was a subarray of its scratch: species let a subclass return
  // a longer array, copied whole into a block sized by the encoding's length.
  for (const kind of ["GoMap", "SyncMap"]) {
    const go = kind === "GoMap" ? new GoMap<string, unknown>() : null;
    const sync = go === null ? new SyncMap<string, unknown>() : null;
    const set = (k: string, v: unknown) => go !== null ? go.set(k, v) : sync!.store(k, v);
    const get = (k: string) => go !== null ? go.get(k) : sync!.load(k);
    const value = (i: number) => ({ a: i, s: "abcdefgh" });
    for (let i = 0; i < 200; i++) set(`k${i}`, value(i));
    for (let i = 50; i < 150; i += 2) (go ?? sync)!.delete(`k${i}`);
    let armed = false;
    class Longer extends Uint8Array {
      constructor(buffer: ArrayBuffer, offset?: number, length?: number) {
        // Once armed: 256 more bytes than asked for, filled with 0xab.
        const longer = armed && typeof length === "number";
        if (longer) armed = false;
        super(
          longer ? new ArrayBuffer(length! + 256) : buffer,
          longer ? 0 : offset,
          longer ? length! + 256 : length,
        );
        if (longer) this.fill(0xab);
      }
    }
    Object.defineProperty(Uint8Array, Symbol.species, { configurable: true, get: () => Longer });
    try {
      for (let j = 0; j < 20; j++) {
        armed = true;
        set(`victim${j}`, { a: j });
      }
    } finally {
      delete (Uint8Array as unknown as Record<symbol, unknown>)[Symbol.species];
    }
    for (let i = 0; i < 200; i++) {
      if (i >= 50 && i < 150 && i % 2 === 0) continue;
      assert.deepEqual(get(`k${i}`), value(i), `${kind}: k${i}`);
    }
    for (let j = 0; j < 20; j++) assert.deepEqual(get(`victim${j}`), { a: j });
    (go ?? sync)!.verify();
  }
});

test("the built-ins the maps call cannot be given another own call", () => {
  // On Bun each built-in's own `call` is pinned to the built-in one as the module loads (a bound
  // call, which V8 prefers, is slow there); an own `call` put on it later changes nothing either
  // way: the maps call the built-in.
  let assigned = false;
  try {
    (byteLengthGetter as unknown as Record<string, unknown>).call = function () {
      return 4; // a lie about every length
    };
    assigned = true;
  } catch (error) {
    assert.ok(error instanceof TypeError); // pinned
  }
  try {
    storeBesideNeighbours(400);
  } finally {
    if (assigned) delete (byteLengthGetter as unknown as Record<string, unknown>).call;
  }
});
