// Copyright the shmap authors. MIT license.
// The wire encoding (src/_engine/wire.ts): a key or value as one byte string, the slot words a
// map keeps and the blob payload, so RedisSyncMap stores exactly what SyncMap stores.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type Codec, codecs } from "../mod.ts";
import { slotCodecOf } from "../src/codec.ts";
import { Wire } from "../src/_engine/wire.ts";
import { sameEncoding, VALUES } from "./fixtures/conformance.ts";

const wire = <T>(codec?: Codec<T>) => new Wire<T>(slotCodecOf(codec, "values"));
const NONE = new Uint8Array(0);
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

test("every value of the default codec round-trips", () => {
  const w = wire<unknown>();
  for (const [i, v] of VALUES.entries()) {
    const got = w.decode(w.value(v));
    assert.ok(sameEncoding(got, v), `value ${i}`);
    if (typeof v !== "object" || v === null) assert.ok(Object.is(got, v), `value ${i}`);
    else assert.deepEqual(got, v, `value ${i}`);
  }
});

test("two values encode alike exactly when SyncMap's compareAndSwap finds them equal", () => {
  const w = wire<unknown>();
  const extra = [-0, 0, NaN, Number("nan"), { a: 1 }, { a: 1 }, { a: 2 }, [1], "1", 1, 1n];
  const all = [...VALUES, ...extra];
  for (const a of all) {
    for (const b of all) {
      assert.equal(
        hex(w.value(a)) === hex(w.value(b)),
        sameEncoding(a, b),
        `${String(a)} ${String(b)}`,
      );
    }
  }
});

test("the layout: slot words little-endian, then the blob payload", () => {
  const w = wire<unknown>();
  // 1.5 is the float64 0x3ff8000000000000: lo word 0, hi word 0x3ff80000.
  assert.equal(hex(w.value(1.5)), "000000000000f83f");
  // "ab" sits in the slot: units in lo, kind 5 and length 2 in hi.
  assert.equal(hex(w.value("ab")), "61006200" + "0200f5ff");
  // "abc" is a string blob (kind 6): lo 0 here, then UTF-16LE units.
  assert.equal(hex(w.value("abc")), "00000000" + "0000f6ff" + "610062006300");
  assert.equal(hex(w.value(new Uint8Array([9, 8]))), "00000000" + "0000f8ff" + "0908");
  // A head (a key prefix) goes in front, in the same allocation.
  assert.equal(hex(w.key("ab", new Uint8Array([0xaa, 0xbb]))), "aabb" + "61006200" + "0200f5ff");
});

test("keys are canonical: -0 is 0 and every NaN is one NaN; values keep -0", () => {
  const w = wire<unknown>();
  assert.equal(hex(w.key(-0, NONE)), hex(w.key(0, NONE)));
  const otherNaN = new Float64Array(new Uint32Array([1, 0x7ff00000]).buffer)[0];
  assert.ok(Number.isNaN(otherNaN));
  assert.equal(hex(w.key(otherNaN, NONE)), hex(w.key(NaN, NONE)));
  assert.notEqual(hex(w.value(-0)), hex(w.value(0)));
  assert.ok(Object.is(w.decode(w.value(-0)), -0));
  assert.equal(hex(w.value(otherNaN)), hex(w.value(NaN)));
});

test("typed and user codecs round-trip", () => {
  assert.equal(wire(codecs.float64).decode(wire(codecs.float64).value(-2.25)), -2.25);
  assert.equal(wire(codecs.int32).decode(wire(codecs.int32).value(-7)), -7);
  const s = wire(codecs.string);
  for (const v of ["", "x", "xy", "long string ü \u{1F600}"]) assert.equal(s.decode(s.value(v)), v);
  const b = wire(codecs.bytes);
  assert.deepEqual([...b.decode(b.value(new Uint8Array([1, 2, 3])))], [1, 2, 3]);
  const point: Codec<{ x: number }> = {
    name: "point",
    encode: (p) => new Uint8Array(new Float64Array([p.x]).buffer),
    decode: (bytes) => ({ x: new Float64Array(bytes.slice().buffer)[0] }),
  };
  const p = wire(point);
  assert.deepEqual(p.decode(p.value({ x: 3.5 })), { x: 3.5 });
});

test("decode rejects bytes that are not an encoding, with a RangeError", () => {
  const w = wire<unknown>();
  assert.throws(() => w.decode(new Uint8Array(3)), RangeError);
  assert.throws(() => w.decode(new Uint8Array([...w.value(1.5), 0])), RangeError);
  const odd = new Uint8Array([...w.value("abc"), 0]);
  assert.throws(() => w.decode(odd), RangeError);
  // From an offset: the prefix is skipped.
  const prefixed = w.key("abc", new Uint8Array([1, 2, 3]));
  assert.equal(w.decode(prefixed, 3), "abc");
});

test("decode rejects another codec's encoding, with a RangeError, rather than misread it", () => {
  // RedisSyncMap reports such a value as "corrupt" only if decode throws.
  const auto = wire<unknown>();
  const str = wire(codecs.string);
  const bytes = wire(codecs.bytes);
  const f64 = wire(codecs.float64);
  const i32 = wire(codecs.int32);
  const point = wire<unknown>({ name: "point", encode: () => new Uint8Array(1), decode: () => 0 });
  for (const foreign of [auto.value(true), auto.value(5), auto.value(new Uint8Array([65, 0]))]) {
    assert.throws(() => str.decode(foreign), RangeError);
  }
  assert.throws(() => bytes.decode(auto.value("hello")), RangeError);
  assert.throws(() => point.decode(auto.value("hello")), RangeError);
  assert.throws(() => f64.decode(auto.value(true)), RangeError);
  assert.throws(() => i32.decode(auto.value(1.5)), RangeError);
  assert.throws(() => i32.decode(f64.value(2 ** 31)), RangeError);
  // A short string of more than two units is no encoding at all.
  const three = str.value("ab");
  three[4] = 3;
  assert.throws(() => str.decode(three), RangeError);
  assert.throws(() => auto.decode(three), RangeError);
  // What each codec writes, it reads; auto reads every kind the typed codecs write.
  assert.equal(i32.decode(auto.value(7)), 7);
  assert.equal(f64.decode(i32.value(-3)), -3);
  assert.equal(auto.decode(str.value("xy")), "xy");
  assert.deepEqual([...auto.decode(bytes.value(new Uint8Array([9]))) as Uint8Array], [9]);
});

test("bad input throws the codec's TypeError", () => {
  const w = wire<unknown>();
  assert.throws(() => w.value(() => 1), TypeError);
  assert.throws(() => w.key({ a: 1 }, NONE), TypeError);
  assert.throws(() => wire(codecs.string).value(1 as unknown as string), TypeError);
});

test("a key too large for the codec is a RangeError, never an encoding", () => {
  // Each such key used to encode to the same few bytes (the codec's placeholder for a key that
  // fits no map), so two of them were one Redis key. The limit, 2^30 bytes in use, is lowered
  // here so that the keys can be small.
  for (const codec of [codecs.bytes, codecs.string, undefined]) {
    const slots = slotCodecOf(codec as Codec<unknown> | undefined, "keys");
    slots.limit = 16;
    const w = new Wire(slots);
    const big = codec === codecs.bytes ? new Uint8Array(100) : "k".repeat(100);
    assert.throws(() => w.key(big, NONE), {
      name: "RangeError",
      message: /key of \d+ bytes is too large to encode/,
    });
    const small = codec === codecs.bytes ? new Uint8Array(4) : "k";
    assert.deepEqual(w.decode(w.key(small, NONE)), small);
  }
});
