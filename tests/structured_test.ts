import assert from "node:assert/strict";
import { test } from "node:test";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import { GoMap } from "../mod.ts";
import { decodeStructured, StructuredWriter } from "../src/_engine/structured.ts";

const writer = new StructuredWriter();

/**
 * Encodes `value`, copies the bytes into a SharedArrayBuffer at an offset that is 4 mod 16 (as
 * the engine's blobs are) and decodes them from there.
 */
function roundTrip(value: unknown, w: StructuredWriter = writer): unknown {
  const length = w.encode(value);
  assert.equal(w.bytes.length, length);
  const shared = new Uint8Array(new SharedArrayBuffer(length + 64));
  // A view starting at byte 16 plus an offset of 4: absolute position 20, i.e. 4 mod 16.
  const view = shared.subarray(16);
  view.set(w.bytes, 4);
  return decodeStructured(view, 4, length);
}

function assertRoundTrip(value: unknown): void {
  assert.deepStrictEqual(roundTrip(value), value);
}

function encoded(value: unknown): number[] {
  writer.encode(value);
  return Array.from(writer.bytes);
}

function assertEncodeThrows(value: unknown, message: string): void {
  const w = new StructuredWriter();
  assert.throws(() => w.encode(value), (error: unknown) => {
    assert.ok(error instanceof TypeError, `expected a TypeError, got ${error}`);
    assert.equal(error.message, message);
    return true;
  });
  // The writer is still usable afterwards.
  assert.equal(w.bytes.length, 0);
  assert.deepStrictEqual(roundTrip({ ok: [1, "two"] }, w), { ok: [1, "two"] });
}

function assertCorrupt(bytes: number[]): void {
  assert.throws(
    () => decodeStructured(new Uint8Array(bytes), 0, bytes.length),
    new RangeError("corrupt structured value"),
  );
}

test("structured: scalars round-trip", () => {
  for (
    const value of [
      undefined,
      null,
      true,
      false,
      0,
      -0,
      1,
      -1,
      0x7fff_ffff,
      -0x8000_0000,
      0x8000_0000,
      -0x8000_0001,
      0.5,
      Number.MAX_SAFE_INTEGER,
      Number.MIN_VALUE,
      -Number.MAX_VALUE,
      NaN,
      Infinity,
      -Infinity,
    ]
  ) {
    const decoded = roundTrip(value);
    assert.ok(Object.is(decoded, value), `${String(value)} decoded as ${String(decoded)}`);
  }
  assert.ok(Object.is((roundTrip([-0]) as number[])[0], -0));
});

test("structured: strings round-trip as UTF-16 code units", () => {
  const lone = ["\ud800", "\udfff", "a\ud83d", "\ude00b", "\udc00\ud800", "x\ud83d\ude00y"];
  for (
    const value of [
      "",
      "a",
      "abc",
      "\u00ff\u00e9",
      "\u0100",
      "é\u20ac",
      "😀",
      "\0\0",
      "narrow then wide \u4e2d\u6587",
      ...lone,
      "a".repeat(17),
      "\u4e2d".repeat(17),
    ]
  ) {
    assert.equal(roundTrip(value), value);
    assert.deepStrictEqual(roundTrip({ [value]: value }), { [value]: value });
  }
  let big = "";
  for (let i = 0; i < 100_000; i++) big += String.fromCharCode((i * 7919) % 0x10000);
  assert.equal(roundTrip(big), big);
  const ascii = "0123456789".repeat(10_000);
  assert.equal(roundTrip(ascii), ascii);
  // A wide unit only at the very end of a long narrow string.
  assert.equal(roundTrip(ascii + "\ud800"), ascii + "\ud800");
});

test("structured: bigints of any size and sign round-trip", () => {
  const values = [
    0n,
    1n,
    -1n,
    255n,
    256n,
    -256n,
    2n ** 48n - 1n,
    -(2n ** 48n - 1n),
    2n ** 48n,
    -(2n ** 48n),
    2n ** 52n + 1n,
    2n ** 64n - 1n,
    2n ** 64n,
    -(2n ** 63n),
    0x1_0000_0000_0000n, // odd number of hex digits
    10n ** 1000n,
    -(7n ** 5000n),
    2n ** 100_000n - 1n,
  ];
  for (const value of values) assert.equal(roundTrip(value), value);
  assert.deepStrictEqual(roundTrip(values), values);
});

test("structured: Uint8Array round-trips as a copy", () => {
  const bytes = new Uint8Array([0, 1, 2, 255]);
  const decoded = roundTrip(bytes) as Uint8Array;
  assert.deepStrictEqual(decoded, bytes);
  assert.ok(!(decoded.buffer instanceof SharedArrayBuffer));
  decoded[0] = 9;
  assert.equal(bytes[0], 0);
  assert.deepStrictEqual(roundTrip(new Uint8Array(0)), new Uint8Array(0));
  const offsetView = new Uint8Array([9, 9, 3, 4, 9]).subarray(2, 4);
  assert.deepStrictEqual(roundTrip(offsetView), new Uint8Array([3, 4]));
  const sharedView = new Uint8Array(new SharedArrayBuffer(8)).fill(7);
  const fromShared = roundTrip(sharedView) as Uint8Array;
  assert.deepStrictEqual(Array.from(fromShared), Array.from(sharedView));
  assert.ok(!(fromShared.buffer instanceof SharedArrayBuffer));
  // Subclasses such as Buffer are Uint8Arrays; they decode as plain ones.
  const decodedBuffer = roundTrip(Buffer.from([1, 2, 3])) as Uint8Array;
  assert.equal(Object.getPrototypeOf(decodedBuffer), Uint8Array.prototype);
  assert.deepStrictEqual(decodedBuffer, new Uint8Array([1, 2, 3]));
  // Decoding from a Buffer source still copies (Buffer#slice would alias).
  writer.encode(new Uint8Array([5, 6]));
  const source = Buffer.from(writer.bytes);
  const copied = decodeStructured(source, 0, source.length) as Uint8Array;
  copied[0] = 0;
  assert.equal(source[2], 5);
  const large = new Uint8Array(100_000).map((_, i) => i * 31);
  assert.deepStrictEqual(roundTrip(large), large);
});

test("structured: arrays and objects round-trip", () => {
  assertRoundTrip([]);
  assertRoundTrip({});
  assertRoundTrip([[[]], [1, [2, [3]]], { a: [{ b: {} }] }]);
  assertRoundTrip({ id: 1, name: "abc", tags: ["x", "y"], nested: { deep: { deeper: [null] } } });
  // Integer-like keys keep Object.keys order (ascending integers first).
  const ordered = roundTrip({ b: 1, 2: 2, a: 3, 1: 4, "-1": 5 }) as object;
  assert.deepStrictEqual(Object.keys(ordered), ["1", "2", "b", "a", "-1"]);
  // An object reachable twice (without a cycle) is encoded twice and decodes as two copies.
  const shared = { n: 1 };
  const twice = roundTrip([shared, shared]) as object[];
  assert.deepStrictEqual(twice, [{ n: 1 }, { n: 1 }]);
  assert.notEqual(twice[0], twice[1]);
});

test("structured: holes decode as undefined", () => {
  // deno-lint-ignore no-sparse-arrays
  const sparse = [1, , 3, ,];
  const decoded = roundTrip(sparse) as unknown[];
  assert.deepStrictEqual(decoded, [1, undefined, 3, undefined]);
  assert.ok(1 in decoded);
  assert.deepStrictEqual(roundTrip(new Array(3)), [undefined, undefined, undefined]);
});

test("structured: null-prototype objects decode with Object.prototype", () => {
  const bare = Object.create(null);
  bare.x = 1;
  bare.y = { z: "w" };
  const decoded = roundTrip(bare) as object;
  assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
  assert.deepStrictEqual(decoded, { x: 1, y: { z: "w" } });
});

test("structured: a __proto__ key round-trips as an own data property", () => {
  const value = JSON.parse('{"a":1,"__proto__":{"polluted":true},"b":[2]}');
  const decoded = roundTrip(value) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
  assert.deepStrictEqual(Object.keys(decoded), ["a", "__proto__", "b"]);
  assert.deepStrictEqual(Object.getOwnPropertyDescriptor(decoded, "__proto__"), {
    value: { polluted: true },
    writable: true,
    enumerable: true,
    configurable: true,
  });
  assert.equal((decoded as { polluted?: boolean }).polluted, undefined);
  assert.equal(({} as { polluted?: boolean }).polluted, undefined);
  assert.deepStrictEqual(decoded, value);
});

test("structured: only own enumerable string keys are encoded; getters are read", () => {
  const value: Record<string | symbol, unknown> = { visible: 1 };
  value[Symbol("hidden")] = 2;
  Object.defineProperty(value, "nonEnumerable", { value: 3, enumerable: false });
  Object.defineProperty(value, "computed", { get: () => [4], enumerable: true });
  const inherited = Object.create({ inheritedKey: 5 });
  assert.deepStrictEqual(roundTrip(value), { visible: 1, computed: [4] });
  assertEncodeThrows(inherited, "cannot encode an object with a custom prototype at value");
  const extraArrayProps = Object.assign([1, 2], { extra: 3 });
  assert.deepStrictEqual(roundTrip(extraArrayProps), [1, 2]);
});

test("structured: the wire format is compact and stable", () => {
  assert.deepStrictEqual(encoded(undefined), [0x00]);
  assert.deepStrictEqual(encoded(null), [0x01]);
  assert.deepStrictEqual(encoded(false), [0x02]);
  assert.deepStrictEqual(encoded(true), [0x03]);
  assert.deepStrictEqual(encoded(0), [0x04, 0x00]);
  assert.deepStrictEqual(encoded(-1), [0x04, 0x01]);
  assert.deepStrictEqual(encoded(1), [0x04, 0x02]);
  assert.deepStrictEqual(encoded(64), [0x04, 0x80, 0x01]);
  assert.deepStrictEqual(encoded(-0x8000_0000), [0x04, 0xff, 0xff, 0xff, 0xff, 0x0f]);
  assert.deepStrictEqual(encoded(-0), [0x05, 0, 0, 0, 0, 0, 0, 0, 0x80]);
  assert.deepStrictEqual(encoded(1.5), [0x05, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f]);
  assert.deepStrictEqual(encoded(""), [0x06, 0x00]);
  assert.deepStrictEqual(encoded("ab"), [0x06, 0x04, 0x61, 0x62]);
  assert.deepStrictEqual(encoded("a\u20ac"), [0x06, 0x05, 0x61, 0x00, 0xac, 0x20]);
  assert.deepStrictEqual(encoded(0n), [0x07, 0x00]);
  assert.deepStrictEqual(encoded(258n), [0x07, 0x02, 0x02, 0x01]);
  assert.deepStrictEqual(encoded(-1n), [0x08, 0x01, 0x01]);
  assert.deepStrictEqual(encoded(2n ** 56n), [0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x01]);
  assert.deepStrictEqual(encoded(new Uint8Array([7, 8])), [0x09, 0x02, 0x07, 0x08]);
  assert.deepStrictEqual(encoded([true, null]), [0x0a, 0x02, 0x03, 0x01]);
  assert.deepStrictEqual(encoded({ a: 1 }), [0x0b, 0x01, 0x02, 0x61, 0x04, 0x02]);
  // The small object used in the benchmarks takes 30 bytes.
  assert.equal(writer.encode({ id: 1, name: "abc", tags: ["x", "y"] }), 30);
});

test("structured: the decoder accepts non-minimal strings and bigints", () => {
  const decode = (bytes: number[]) => decodeStructured(new Uint8Array(bytes), 0, bytes.length);
  assert.equal(decode([0x06, 0x03, 0x61, 0x00]), "a"); // wide string of narrow units
  assert.equal(decode([0x07, 0x03, 0x05, 0x00, 0x00]), 5n); // high zero bytes
  assert.equal(decode([0x08, 0x00]), 0n); // negative zero
  assert.equal(decode([0x07, 0x09, 1, 0, 0, 0, 0, 0, 0, 0, 0]), 1n);
  assert.equal(decode([0x04, 0x82, 0x80, 0x00]), 1); // padded varint
});

test("structured: decodes at any offset, also through views at odd byte offsets", () => {
  const length = writer.encode({ s: "\u4e2d", n: 1.25, b: -(2n ** 70n) });
  for (let offset = 0; offset < 8; offset++) {
    const shared = new Uint8Array(new SharedArrayBuffer(64));
    shared.set(writer.bytes, offset);
    assert.deepStrictEqual(decodeStructured(shared, offset, length), {
      s: "\u4e2d",
      n: 1.25,
      b: -(2n ** 70n),
    });
    // The same bytes seen through a view that itself starts at an odd byte offset.
    const odd = new Uint8Array(shared.buffer, 1, 63);
    if (offset > 0) {
      assert.deepStrictEqual(decodeStructured(odd, offset - 1, length), {
        s: "\u4e2d",
        n: 1.25,
        b: -(2n ** 70n),
      });
    }
  }
  assert.throws(() => decodeStructured(new Uint8Array(4), 2, 3), RangeError);
  assert.throws(() => decodeStructured(new Uint8Array(4), -1, 1), RangeError);
});

test("structured: the scratch buffer grows and bytes stay correct", () => {
  const w = new StructuredWriter();
  const big = { list: Array.from({ length: 10_000 }, (_, i) => ({ i, s: `item ${i}` })) };
  const length = w.encode(big);
  assert.ok(length > 100_000);
  assert.deepStrictEqual(roundTrip(big, w), big);
  const small = w.encode("x");
  assert.equal(small, 3);
  assert.deepStrictEqual(Array.from(w.bytes), [0x06, 0x02, 0x78]);
});

test("structured: unsupported values throw TypeError naming the type and path", () => {
  class Point {
    x = 1;
  }
  const cases: [unknown, string][] = [
    [{ a: [0, 1, 2, () => 0] }, "cannot encode a function at value.a[3]"],
    [Symbol("s"), "cannot encode a symbol at value"],
    [{ when: new Date(0) }, "cannot encode a Date at value.when"],
    [[new Map()], "cannot encode a Map at value[0]"],
    [[[new Set()]], "cannot encode a Set at value[0][0]"],
    [{ "a b": /x/ }, 'cannot encode a RegExp at value["a b"]'],
    [{ 0: new Float64Array(1) }, 'cannot encode a Float64Array at value["0"]'],
    [{ i: new Int16Array(1) }, "cannot encode an Int16Array at value.i"],
    [{ c: new Uint8ClampedArray(1) }, "cannot encode a Uint8ClampedArray at value.c"],
    [new ArrayBuffer(1), "cannot encode an ArrayBuffer at value"],
    [new SharedArrayBuffer(1), "cannot encode a SharedArrayBuffer at value"],
    [new DataView(new ArrayBuffer(1)), "cannot encode a DataView at value"],
    [new WeakMap(), "cannot encode a WeakMap at value"],
    [Promise.resolve(), "cannot encode a Promise at value"],
    [new Error("e"), "cannot encode an Error at value"],
    [{ p: new Point() }, "cannot encode a Point instance at value.p"],
    [new (class {})(), "cannot encode an anonymous class instance at value"],
    [Object(1), "cannot encode a Number at value"],
    [{ $ok: { _1: { sym: Symbol.iterator } } }, "cannot encode a symbol at value.$ok._1.sym"],
  ];
  for (const [value, message] of cases) assertEncodeThrows(value, message);
});

test("structured: cycles throw TypeError naming the path", () => {
  const self: unknown[] = [];
  self.push(self);
  assertEncodeThrows(self, "cannot encode a cyclic structure at value[0]");
  const a: Record<string, unknown> = { x: {} };
  (a.x as Record<string, unknown>).y = a;
  assertEncodeThrows(a, "cannot encode a cyclic structure at value.x.y");
  // A cycle back to an ancestor deeper than the linearly searched ones.
  const root: Record<string, unknown> = {};
  let node = root;
  const chain: Record<string, unknown>[] = [];
  for (let i = 0; i < 60; i++) {
    chain.push(node);
    node = node.n = {};
  }
  node.back = chain[40];
  assertEncodeThrows(root, `cannot encode a cyclic structure at value${".n".repeat(60)}.back`);
  node.back = chain[3];
  assertEncodeThrows(root, `cannot encode a cyclic structure at value${".n".repeat(60)}.back`);
  // After a throw mid-way the writer forgets its ancestors: the same objects encode once acyclic.
  const w = new StructuredWriter();
  assert.throws(() => w.encode(root), TypeError);
  delete node.back;
  assert.ok(w.encode(root) > 0);
});

test("structured: nesting is limited to 1000 containers", () => {
  const nest = (depth: number, leaf: unknown, object: boolean): unknown => {
    let value = leaf;
    for (let i = 0; i < depth; i++) value = object ? { k: value } : [value];
    return value;
  };
  assert.deepStrictEqual(roundTrip(nest(1000, 1, false)), nest(1000, 1, false));
  assert.deepStrictEqual(roundTrip(nest(1000, 1, true)), nest(1000, 1, true));
  assertEncodeThrows(
    nest(1001, 1, false),
    `cannot encode a structure nested more than 1000 levels deep at value${"[0]".repeat(1000)}`,
  );
  assertEncodeThrows(
    nest(100_000, 1, true),
    `cannot encode a structure nested more than 1000 levels deep at value${".k".repeat(1000)}`,
  );
  // The decoder rejects hand-made encodings nested more deeply.
  const deep = (depth: number): number[] => [...Array(depth).fill([0x0a, 0x01]).flat(), 0x00];
  assert.deepStrictEqual(
    decodeStructured(new Uint8Array(deep(1000)), 0, 2001),
    nest(1000, undefined, false),
  );
  assertCorrupt(deep(1001));
  assertCorrupt(deep(200_000));
});

test("structured: encode is not reentrant but recovers", () => {
  const w = new StructuredWriter();
  const value = {
    get inner(): number {
      w.encode(1);
      return 1;
    },
  };
  assert.throws(() => w.encode(value), new TypeError("StructuredWriter.encode is not reentrant"));
  assert.deepStrictEqual(roundTrip([1], w), [1]);
  // Errors thrown by getters propagate unchanged.
  const boom = new Error("boom");
  assert.throws(() =>
    w.encode({
      get x(): never {
        throw boom;
      },
    }), boom);
  assert.deepStrictEqual(roundTrip("ok", w), "ok");
});

test("structured: malformed encodings throw RangeError", () => {
  assertCorrupt([]);
  assertCorrupt([0x0c]); // unknown tag
  assertCorrupt([0xff]);
  assertCorrupt([0x00, 0x00]); // trailing bytes
  assertCorrupt([0x04]); // missing varint
  assertCorrupt([0x04, 0x80, 0x80, 0x80, 0x80, 0x80]); // varint longer than 5 bytes
  assertCorrupt([0x04, 0xff, 0xff, 0xff, 0xff, 0x7f]); // varint of 2^35 - 1
  assertCorrupt([0x05, 0, 0, 0, 0, 0, 0, 0]); // short float
  assertCorrupt([0x06, 0x08, 0x61]); // string longer than the input
  assertCorrupt([0x06, 0x05, 0x61]); // wide string missing its high byte
  assertCorrupt([0x06, 0xff, 0xff, 0xff, 0xff, 0x0f]); // 2^31 units
  assertCorrupt([0x07, 0x02, 0x01]);
  assertCorrupt([0x09, 0x03, 0x01, 0x02]);
  assertCorrupt([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]); // 2^32 - 1 elements
  assertCorrupt([0x0a, 0x02, 0x00]);
  assertCorrupt([0x0b, 0x01, 0x02, 0x61]); // key without value
  assertCorrupt([0x0b, 0x02, 0x00, 0x00, 0x00]);
});

// ---------------------------------------------------------------------------------------------
// Properties

/** Any UTF-16 code unit, so strings include lone surrogates. */
const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit));
const anyString = fc.oneof(fc.string(), fc.string({ unit: anyUnit }));
const anyKey = fc.oneof(
  { weight: 5, arbitrary: anyString },
  fc.constantFrom("__proto__", "constructor", "0", "1", "-0", "length"),
);

const { structured } = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.boolean(),
    fc.constant(-0),
    fc.integer(),
    fc.double(),
    fc.bigInt(),
    fc.bigInt({ min: -(2n ** 300n), max: 2n ** 300n }),
    anyString,
    fc.uint8Array(),
  ),
  structured: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    tie("leaf"),
    fc.array(tie("structured"), { maxLength: 5 }),
    fc.dictionary(anyKey, tie("structured"), { maxKeys: 5, noNullPrototype: true }),
  ),
}));

/** Copies an encoding into a SharedArrayBuffer at `offset` and decodes it from there. */
function decodeShared(bytes: Uint8Array, offset: number): unknown {
  const shared = new Uint8Array(new SharedArrayBuffer(offset + bytes.length + 16));
  shared.set(bytes, offset);
  return decodeStructured(shared, offset, bytes.length);
}

test("structured: JSON values round-trip (property)", () => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.nat(15), (value, slot) => {
      const w = new StructuredWriter();
      w.encode(value);
      assert.deepStrictEqual(decodeShared(w.bytes, 4 + 16 * slot), value);
    }),
    { numRuns: 500 },
  );
});

test("structured: rich values round-trip (property)", () => {
  fc.assert(
    fc.property(structured, fc.nat(15), (value, slot) => {
      // One shared writer, as the engine uses it: each encode replaces the previous one.
      writer.encode(value);
      assert.deepStrictEqual(decodeShared(writer.bytes, 4 * slot), value);
    }),
    { numRuns: 1000 },
  );
});

test("structured: corrupted encodings decode or throw RangeError, in bounded time", () => {
  const started = performance.now();
  let decoded = 0;
  let rejected = 0;
  fc.assert(
    fc.property(
      structured,
      fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 4 }),
      fc.nat(),
      (value, flips, cut) => {
        writer.encode(value);
        const bytes = writer.bytes.slice();
        for (const [at, byte] of flips) bytes[at % bytes.length] = byte;
        const truncated = cut % (bytes.length + 1);
        for (const length of [bytes.length, truncated]) {
          try {
            decodeStructured(bytes, 0, length);
            decoded++;
          } catch (error) {
            assert.ok(error instanceof RangeError, `unexpected ${error}`);
            assert.equal(error.message, "corrupt structured value");
            rejected++;
          }
        }
      },
    ),
    { numRuns: 2000 },
  );
  // Random garbage, including huge declared lengths.
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        decodeStructured(bytes, 0, bytes.length);
      } catch (error) {
        assert.ok(error instanceof RangeError, `unexpected ${error}`);
      }
    }),
    { numRuns: 5000 },
  );
  assert.ok(decoded > 0 && rejected > 0, `decoded ${decoded}, rejected ${rejected}`);
  assert.ok(performance.now() - started < 20_000, "corruption checks took too long");
});

test("structured: decoding runs no setter or method a program put on the prototypes", () => {
  // A setter on Object.prototype (a polyfill's, say) would be called by plain assignment, and
  // would swallow the property; a replaced Array.prototype.push would be called for each element.
  // Either is user code inside a map's read, which may call the map and find the decoder's
  // state reset under it. The properties are defined instead, as JSON.parse defines them.
  const m = new GoMap<string, unknown>();
  m.set("obj", { hook: 1, after: [1, 2], constructor: 3 });
  m.set("inner", { z: 1 });
  let setterCalls = 0;
  let pushCalls = 0;
  const push = Array.prototype.push;
  Object.defineProperty(Object.prototype, "hook", {
    configurable: true,
    set() {
      setterCalls++;
      m.get("inner"); // a nested read, as such user code may make
    },
  });
  Array.prototype.push = function (this: unknown[], ...items: unknown[]) {
    pushCalls++;
    return push.apply(this, items);
  };
  try {
    const got = m.get("obj") as Record<string, unknown>;
    assert.deepEqual(Object.entries(got), [["hook", 1], ["after", [1, 2]], ["constructor", 3]]);
  } finally {
    delete (Object.prototype as Record<string, unknown>).hook;
    Array.prototype.push = push;
  }
  assert.equal(setterCalls, 0);
  assert.equal(pushCalls, 0);
  m.verify();
});
