/**
 * Internal. A key or value as one byte string, for a store outside shared memory (Redis): the
 * same encoding a map keeps in its slots, so a value written by one and read by the other
 * decodes identically, and two encodings are equal exactly when a SyncMap would find them equal
 * (SameValueZero for keys; for values, `NaN` equals `NaN`, `-0` differs from `0`, and objects
 * compare by content).
 *
 * Layout, little-endian:
 *
 * | bytes | what                                                                           |
 * | ----- | ------------------------------------------------------------------------------ |
 * | 0..3  | the slot's `lo` word (int32)                                                   |
 * | 4..7  | the slot's `hi` word (int32): a number, or a NaN-boxed kind (see slots.ts)     |
 * | 8..   | for a blob kind only (6..9): the blob's payload, UTF-16 code units for a string, bytes otherwise; its count is the remaining length |
 *
 * In a slot, a blob kind's `lo` word is the blob's offset in the arena; here it is always 0.
 *
 * @module
 */

import type { Arena } from "./arena.ts";
import { isBlob, isNumberSlot, Probe, type SlotCodec } from "./slots.ts";
import * as slots from "./slots.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { MODE_BYTES, MODE_INLINE, MODE_TOO_LARGE, TAG_BYTES, TAG_SHORT_STRING, TAG_STRING } = slots;

const WORDS = 8;

// Typed arrays use the host's byte order; the encoding is little-endian, and so is every host
// JavaScript runs on today. Refuse to run rather than write bytes no other host could read.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("shmap's wire encoding needs a little-endian host");
}

/** Allocates the byte string an encoding is written to (Node's Buffer.allocUnsafe, say). */
export type Allocate = (bytes: number) => Uint8Array;

const allocateUint8Array: Allocate = (bytes) => new Uint8Array(bytes);

/**
 * Encodes keys or values of one codec into byte strings and decodes them back. Each encoding
 * is a fresh allocation the caller owns; `head` bytes (a key prefix) may be written in front of
 * it in the same allocation.
 */
export class Wire<T> {
  readonly #codec: SlotCodec<T>;
  readonly #allocate: Allocate;
  readonly #probe = new Probe();

  constructor(codec: SlotCodec<T>, allocate: Allocate = allocateUint8Array) {
    this.#codec = codec;
    this.#allocate = allocate;
  }

  /** The codec's name. */
  get name(): string {
    return this.#codec.name;
  }

  /**
   * `head` followed by the encoding of `key`, canonical for SameValueZero. Throws TypeError (or
   * the codec's RangeError) for a key the codec cannot encode.
   */
  key(key: T, head: Uint8Array): Uint8Array {
    const p = this.#probe;
    this.#codec.toKey(key, p, 0, 0);
    // A key too large for the codec is a probe that matches nothing in a map, and writes no
    // blob: its encoding would be the same few bytes for every such key.
    if (p.mode === MODE_TOO_LARGE) {
      throw new RangeError(
        `a key of ${p.needed} bytes is too large to encode (the codec takes at most ${p.limit})`,
      );
    }
    return this.#write(head);
  }

  /** `head` followed by the encoding of `value`. Throws as the codec does for bad values. */
  value(value: T, head: Uint8Array = EMPTY): Uint8Array {
    this.#codec.toValue(value, this.#probe);
    return this.#write(head);
  }

  /**
   * Decodes the encoding at `bytes[from..]`. Throws RangeError when the bytes are not an
   * encoding of this codec's kind (too short, or a length that does not fit the kind).
   */
  decode(bytes: Uint8Array, from: number = 0): T {
    const length = bytes.length - from;
    if (length < WORDS) throw corrupt(`${length} bytes`);
    const lo = readInt32(bytes, from);
    const hi = readInt32(bytes, from + 4);
    // A slot of a kind this codec does not write (another program's bytes, another codec's) is
    // refused rather than read as this codec's kind (a string codec would read `true` as "", an
    // int32 one return 1.5). The bytes codec and user codecs share one kind: bytes.
    if (!accepts(this.#codec.name, lo, hi)) {
      throw corrupt(`a slot of kind 0x${(hi >>> 0).toString(16)} for codec "${this.#codec.name}"`);
    }
    if (!isBlob(hi)) {
      if (length !== WORDS) throw corrupt(`${length} bytes for an inline slot`);
      return this.#codec.decode(NO_ARENA, lo, hi);
    }
    const payload = length - WORDS;
    const units = hi === TAG_STRING;
    if (units && (payload & 1) !== 0) throw corrupt("an odd number of bytes for a string");
    return this.#codec.decode(blobArena(bytes, from + WORDS, payload, units), 0, hi);
  }

  #write(head: Uint8Array): Uint8Array {
    const p = this.#probe;
    const at = head.length;
    let out: Uint8Array;
    if (p.mode === MODE_INLINE) {
      out = this.#allocate(at + WORDS);
    } else if (p.mode === MODE_BYTES) {
      const b = p.bytes;
      out = this.#allocate(at + WORDS + b.length);
      out.set(b, at + WORDS);
      // The codec may have encoded into scratch space its next call reuses: drop the reference.
      p.bytes = EMPTY;
      p.byteCount = 0;
    } else {
      const s = p.str;
      out = this.#allocate(at + WORDS + s.length * 2);
      for (let i = 0, o = at + WORDS; i < s.length; i++, o += 2) {
        const u = s.charCodeAt(i);
        out[o] = u;
        out[o + 1] = u >>> 8;
      }
      p.str = "";
    }
    // A key prefix is short: a loop beats TypedArray.set's call.
    if (at <= 64) { for (let i = 0; i < at; i++) out[i] = head[i]; }
    else out.set(head, 0);
    writeInt32(out, at, p.lo);
    writeInt32(out, at + 4, p.hi);
    return out;
  }
}

const EMPTY = new Uint8Array(0);

// Scratch for reading a number slot's value.
const f64 = new Float64Array(1);
const w32 = new Int32Array(f64.buffer);

/** Whether a slot (lo, hi) is one the codec named `name` writes. */
function accepts(name: string, lo: number, hi: number): boolean {
  const shortString = (hi & 0xffff0000) === TAG_SHORT_STRING && (hi & 0xffff) <= 2;
  switch (name) {
    case "auto":
      return isNumberSlot(hi) || (hi & 0xffff0000) !== TAG_SHORT_STRING || shortString;
    case "float64":
      return isNumberSlot(hi);
    case "int32":
      if (!isNumberSlot(hi)) return false;
      w32[0] = lo;
      w32[1] = hi;
      return (f64[0] | 0) === f64[0];
    case "string":
      return hi === TAG_STRING || shortString;
    default: // "bytes", and every user codec
      return hi === TAG_BYTES;
  }
}

function readInt32(b: Uint8Array, at: number): number {
  return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24);
}

function writeInt32(b: Uint8Array, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
  b[at + 2] = v >>> 16;
  b[at + 3] = v >>> 24;
}

function corrupt(what: string): RangeError {
  return new RangeError(`not a shmap encoding: ${what}`);
}

/**
 * The part of an {@linkcode Arena} that `SlotCodec.decode` reads: typed views, and `reach`,
 * which a real arena needs when another worker has grown it and a private copy never does.
 */
interface BlobArena {
  i32: Int32Array;
  u16: Uint16Array;
  u8: Uint8Array;
  reach(end: number): void;
}

function reach(_end: number): void {}

// Inline slots decode from their words alone; a codec never touches the arena for them.
const NO_ARENA = {
  i32: new Int32Array(0),
  u16: new Uint16Array(0),
  u8: new Uint8Array(0),
  reach,
} satisfies BlobArena as unknown as Arena;

/** A private arena holding one blob at offset 0: its count, then its payload. */
function blobArena(bytes: Uint8Array, from: number, payload: number, units: boolean): Arena {
  const buffer = new ArrayBuffer((4 + payload + 3) & ~3);
  const i32 = new Int32Array(buffer);
  const u8 = new Uint8Array(buffer);
  i32[0] = units ? payload >> 1 : payload;
  u8.set(bytes.subarray(from, from + payload), 4);
  const arena: BlobArena = { i32, u16: new Uint16Array(buffer), u8, reach };
  return arena as unknown as Arena;
}
