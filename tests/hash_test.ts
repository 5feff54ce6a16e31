// Copyright the shmap authors. MIT license.
//
// The keyed hash (src/_engine/hash.ts) is HalfSipHash-1-3 under a 64-bit key that every arena
// draws at random: checked against the Linux kernel's test vectors, for every input form (words,
// strings, stored UTF-16 units, bytes), and for the key's two header words.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { GoMap, SyncMap } from "../mod.ts";
import { H_SEED0, H_SEED1 } from "../src/_engine/arena.ts";
import { hashBytes, hashString, hashUnits, hashWords } from "../src/_engine/hash.ts";

// HalfSipHash-1-3 with 32-bit output, key bytes 00 01 .. 07 (k0 = 0x03020100, k1 = 0x07060504):
// vector n hashes the n bytes 00 01 .. n-1. From the Linux kernel's lib/siphash_kunit.c (the
// BITS_PER_LONG == 32 build, where hsiphash is HalfSipHash-1-3), taken there from the reference
// implementation at https://github.com/veorq/SipHash.
const K0 = 0x03020100;
const K1 = 0x07060504;
const VECTORS = [
  0x5814c896,
  0xe7e864ca,
  0xbc4b0e30,
  0x01539939,
  0x7e059ea6,
  0x88e3d89b,
  0xa0080b65,
  0x9d38d9d6,
  0x577999b1,
  0xc839caed,
  0xe4fa32cf,
  0x959246ee,
  0x6b28096c,
  0x66dd9cd6,
  0x16658a7c,
  0xd0257b04,
  0x8b31d501,
  0x2b1cd04b,
  0x06712339,
  0x522aca67,
  0x911bb605,
  0x90a65f0e,
  0xf826ef7b,
  0x62512deb,
  0x57150ad7,
  0x5d473507,
  0x1ec47442,
  0xab64afd3,
  0x0a4100d0,
  0x6d2ce652,
  0x2331b6a3,
  0x08d8791a,
  0xbc6dda8d,
  0xe0f6c934,
  0xb0652033,
  0x9b9851cc,
  0x7c46fb7f,
  0x732ba8cb,
  0xf142997a,
  0xfcc9aa1b,
  0x05327eb2,
  0xe110131c,
  0xf9e5e7c0,
  0xa7d708a6,
  0x11795ab1,
  0x65671619,
  0x9f5fff91,
  0xd89c5267,
  0x007783eb,
  0x95766243,
  0xab639262,
  0x9c7e1390,
  0xc368dda6,
  0x38ddc455,
  0xfa13d379,
  0x979ea4e8,
  0x53ecd77e,
  0x2ee80657,
  0x33dbb66a,
  0xae3f0577,
  0x88b4c4cc,
  0x3e7f480b,
  0x74c1ebf8,
  0x87178304,
];

const BYTES = Uint8Array.from({ length: 64 }, (_, i) => i);
/** The same bytes read as little-endian UTF-16 code units: 0x0100, 0x0302, ... */
const UNITS = new Uint16Array(BYTES.buffer);

const hex = (n: number): string => (n >>> 0).toString(16).padStart(8, "0");

/** `s`'s UTF-16 code units as little-endian bytes. */
function utf16le(s: string): Uint8Array {
  const units = Uint16Array.from({ length: s.length }, (_, i) => s.charCodeAt(i));
  return new Uint8Array(units.buffer);
}

describe("the keyed hash is HalfSipHash-1-3", () => {
  test("bytes: the kernel's 64 vectors, from any start offset", () => {
    for (let n = 0; n < 64; n++) {
      assert.equal(hex(hashBytes(BYTES, 0, n, K0, K1)), hex(VECTORS[n]), `${n} bytes`);
      const shifted = new Uint8Array(n + 3);
      shifted.set(BYTES.subarray(0, n), 3);
      assert.equal(hex(hashBytes(shifted, 3, n, K0, K1)), hex(VECTORS[n]), `${n} bytes at 3`);
    }
  });

  test("strings and stored units: their UTF-16LE bytes, so the even-length vectors", () => {
    for (let n = 0; n < 32; n++) {
      const s = String.fromCharCode(...UNITS.subarray(0, n));
      assert.equal(hex(hashString(s, K0, K1)), hex(VECTORS[2 * n]), `${n} units`);
      assert.equal(hex(hashUnits(UNITS, 0, n, K0, K1)), hex(VECTORS[2 * n]), `${n} stored units`);
    }
  });

  test("slot words: the 8 bytes lo then hi (the kernel's hsiphash_2u32)", () => {
    assert.equal(hex(hashWords(0x03020100, 0x07060504, K0, K1)), hex(VECTORS[8]));
  });

  test("a string, its stored units and its bytes hash alike under any key", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
        fc.integer({ min: 0, max: 5 }),
        fc.integer(),
        fc.integer(),
        (s, at, k0, k1) => {
          const h = hashString(s, k0, k1);
          const units = new Uint16Array(at + s.length);
          for (let i = 0; i < s.length; i++) units[at + i] = s.charCodeAt(i);
          assert.equal(hashUnits(units, at, s.length, k0, k1), h);
          const bytes = utf16le(s);
          assert.equal(hashBytes(bytes, 0, bytes.length, k0, k1), h);
          if (s.length === 4) {
            assert.equal(
              hashWords(
                units[at] | units[at + 1] << 16,
                units[at + 2] | units[at + 3] << 16,
                k0,
                k1,
              ),
              h,
            );
          }
        },
      ),
    );
  });

  test("both key words change every hash", () => {
    // A hash that ignored either word would let keys be precomputed against the other.
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer(),
        fc.integer(),
        fc.integer(),
        fc.integer({ min: 0, max: 31 }),
        fc.string({ minLength: 3, maxLength: 20 }),
        (lo, hi, k0, k1, bit, s) => {
          const flip = 1 << bit;
          // Each comparison fails by chance with probability 2^-32.
          assert.notEqual(hashWords(lo, hi, k0 ^ flip, k1), hashWords(lo, hi, k0, k1));
          assert.notEqual(hashWords(lo, hi, k0, k1 ^ flip), hashWords(lo, hi, k0, k1));
          assert.notEqual(hashString(s, k0 ^ flip, k1), hashString(s, k0, k1));
          assert.notEqual(hashString(s, k0, k1 ^ flip), hashString(s, k0, k1));
        },
      ),
    );
  });
});

describe("every map draws its own 64-bit hash key", () => {
  test("header words H_SEED0 and H_SEED1 are random per map, for both kinds", () => {
    const keys = new Set<string>();
    const highs = new Set<number>();
    const maps = [
      ...Array.from({ length: 8 }, () => new GoMap().handle.buffer),
      ...Array.from({ length: 8 }, () => {
        const m = new SyncMap();
        const buffer = m.handle.buffer;
        m.close();
        return buffer;
      }),
    ];
    for (const buffer of maps) {
      const header = new Int32Array(buffer, 0, 256);
      keys.add(`${header[H_SEED0]},${header[H_SEED1]}`);
      highs.add(header[H_SEED1]);
    }
    // 16 draws of 64 random bits: a repeat, or a repeated high word, has probability < 2^-24.
    assert.equal(keys.size, 16);
    assert.equal(highs.size, 16);
  });
});
