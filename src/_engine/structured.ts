/**
 * Internal. A compact binary encoding for "plain structured data": the map values that the
 * engine cannot store inline. Values are copied in on write ({@linkcode StructuredWriter}) and
 * copied out on read ({@linkcode decodeStructured}); no identity is preserved, so an object
 * reachable twice through a tree (without forming a cycle) is encoded, and later decoded, as two
 * separate copies.
 *
 * ## Supported values
 *
 * `undefined`, `null`, booleans, every float64 number (including `-0`, `NaN` and the
 * infinities), strings (as UTF-16 code units, so lone surrogates survive), bigints of any size
 * and sign, `Uint8Array` (copied; subclasses such as Node's `Buffer` decode as a plain
 * `Uint8Array`), arrays (holes decode as `undefined`; non-index properties are ignored) and plain
 * objects (prototype `Object.prototype` or `null`; own enumerable string keys only, in
 * `Object.keys` order; symbol keys are ignored; getters are read as values). Objects always
 * decode with `Object.prototype`, and a `"__proto__"` key decodes as an own data property.
 *
 * Anything else (functions, symbols, class instances, `Date`, `Map`, `Set`, `RegExp`, other
 * typed arrays, `ArrayBuffer`, ...), cycles, and nesting deeper than 1000 containers make the
 * encoder throw a `TypeError` naming the offending path, e.g. `cannot encode a function at
 * value.a[3]`.
 *
 * ## Wire format
 *
 * An encoding is exactly one value; nothing may follow it. A value is a one-byte tag followed by
 * a tag-specific payload. Multi-byte integers are little-endian. `varint` is an unsigned LEB128
 * integer of at most 5 bytes holding a value below 2^32 (7 bits per byte, least significant
 * group first, high bit set on every byte but the last).
 *
 * | Tag    | Value                | Payload                                                    |
 * | ------ | -------------------- | ---------------------------------------------------------- |
 * | `0x00` | `undefined`          | none                                                       |
 * | `0x01` | `null`               | none                                                       |
 * | `0x02` | `false`              | none                                                       |
 * | `0x03` | `true`               | none                                                       |
 * | `0x04` | int32 number, not -0 | varint of the zigzag-encoded value: `(n << 1) ^ (n >> 31)` |
 * | `0x05` | any other number     | 8 bytes: IEEE 754 float64, little-endian                   |
 * | `0x06` | string               | string payload (below)                                     |
 * | `0x07` | bigint `>= 0`        | varint `n`, then `n` bytes of the magnitude, little-endian |
 * | `0x08` | bigint `< 0`         | same as `0x07`, holding the magnitude of the value         |
 * | `0x09` | `Uint8Array`         | varint byte length `n`, then the `n` bytes                 |
 * | `0x0a` | array                | varint length `n`, then `n` values                         |
 * | `0x0b` | plain object         | varint key count `n`, then `n` × (string payload, value)   |
 *
 * A string payload (also used, without a tag, for object keys) is a varint header
 * `length * 2 + wide` followed by the string's `length` UTF-16 code units: one byte each when
 * `wide` is 0 (every unit is at most 0xff), two bytes each, little-endian, when `wide` is 1.
 *
 * The encoder writes the shortest form: minimal varints, tag `0x04` whenever it applies, narrow
 * strings whenever possible and bigint magnitudes without high zero bytes (zero has no bytes).
 * The decoder also accepts non-minimal varints, bigints and strings: it relies only on the
 * layout above, never on canonical form.
 *
 * ## Encoder limits
 *
 * An encoding may take at most `limit` bytes ({@linkcode MAX_ENCODED_BYTES} unless the caller
 * passes less, as the maps do with their `maxBytes`). The encoder checks the least size a
 * container, a `Uint8Array`, a bigint or a string longer than 16 units can take (1 byte per
 * array element, 2 per object entry, 1 per string unit) before it walks or copies it, and
 * checks where it stands whenever its scratch grows. So a sparse array of length 2^32 - 1 or a
 * 2 GiB `Uint8Array` is rejected at once rather than after the work, and the work done on any
 * input is linear in `limit` (plus what the caller's getters do). Going over the limit throws
 * the error the writer was made with (a `RangeError` by default).
 *
 * ## Decoder safety
 *
 * The decoder treats its input as untrusted: every count is checked against the bytes that
 * remain before anything is allocated (each array element takes at least 1 byte, each object
 * entry at least 2, each string unit at least 1), recursion is limited to 1000 containers as in
 * the encoder, and the value must end exactly at `offset + length`. So decoding takes time and
 * memory linear in `length`, and any inconsistency throws `RangeError("corrupt structured
 * value")`.
 *
 * @module
 */

/** The deepest container nesting accepted by the encoder and the decoder. */
const MAX_DEPTH = 1000;

/**
 * The default and largest `limit` of an encoding, in bytes: the largest `maxBytes` of a map,
 * and small enough that every size the encoder computes stays far from 2^31.
 */
export const MAX_ENCODED_BYTES = 2 ** 30;

const TAG_UNDEFINED = 0x00;
const TAG_NULL = 0x01;
const TAG_FALSE = 0x02;
const TAG_TRUE = 0x03;
const TAG_INT = 0x04;
const TAG_FLOAT64 = 0x05;
const TAG_STRING = 0x06;
const TAG_BIGINT_POSITIVE = 0x07;
const TAG_BIGINT_NEGATIVE = 0x08;
const TAG_BYTES = 0x09;
const TAG_ARRAY = 0x0a;
const TAG_OBJECT = 0x0b;

/** Up to this many ancestors are searched linearly for cycles; deeper ones live in a `Set`. */
const LINEAR_ANCESTORS = 32;
/** Strings up to this length are decoded by concatenating single characters. */
const SHORT_STRING = 16;
/** Longer strings are decoded in chunks of this many code units. */
const STRING_CHUNK = 4096;
/** Object keys up to this length are cached by the decoder. */
const MAX_CACHED_KEY = 32;
/** Number of strings the decoder's key cache holds (a power of two). */
const KEY_CACHE_SIZE = 512;
/** Bigints whose magnitude fits in this many bytes are converted through a `number`. */
const SMALL_BIGINT_BYTES = 6;
const SMALL_BIGINT_LIMIT = 0xffff_ffff_ffffn;
const INITIAL_CAPACITY = 256;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const typedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype);
/** Uint8Array as this module loaded: a later `globalThis.Uint8Array = ...` changes nothing. */
const FixedUint8Array = Uint8Array;

const CALL = Function.prototype.call;

/**
 * Pins built-in `f`'s own `call` to the built-in `Function.prototype.call`, once: an own data
 * property, neither writable nor configurable, which shadows whatever user code later puts on
 * `Function.prototype` or on `f`'s prototype chain, and which nothing can replace. So
 * `f.call(self)` is the built-in call of `f` for good, at the speed of a plain call (a call
 * bound with `bind` cost 17 ns on Bun against 4 to 7). Returns false when `f` cannot be pinned
 * (frozen, or given another own `call` before this module loaded).
 */
function pinCall(f: object): boolean {
  try {
    Object.defineProperty(f, "call", { value: CALL, writable: false, configurable: false });
  } catch {
    // Checked below.
  }
  const own = Object.getOwnPropertyDescriptor(f, "call");
  return own !== undefined && own.value === CALL && own.writable === false &&
    own.configurable === false;
}

/**
 * Whether to call the built-ins through calls bound as this module loads, which V8 compiles to
 * direct calls (3.5 ns against 5.4 for a pinned `f.call`), rather than a pinned `f.call`, which
 * JavaScriptCore does (7 ns against 17 for a bound call). Both are safe; this is only speed.
 */
const BOUND_IS_FAST = typeof (globalThis as { Bun?: unknown }).Bun === "undefined";

/**
 * The built-in getter `f` as a function of its receiver that user code cannot stand in for: a
 * call bound now, or `f.call(self)` with `call` pinned (pinCall).
 */
function uncurry<T, R>(f: (this: T) => R): (self: T) => R {
  if (!BOUND_IS_FAST && pinCall(f)) return (self) => f.call(self);
  return CALL.bind(f) as (self: T) => R;
}

/**
 * Brand check for typed arrays: returns e.g. `"Uint8Array"`, or `undefined` for other values.
 * It reads an internal slot, so it runs no user code: a Proxy is not a typed array.
 */
export const typedArrayTag: (value: unknown) => string | undefined = uncurry(
  Object.getOwnPropertyDescriptor(typedArrayPrototype, Symbol.toStringTag)!.get as (
    this: unknown,
  ) => string | undefined,
);
/**
 * The built-in `byteLength` getter of typed arrays: an own property cannot lie to it, nor a
 * patched prototype. For a Uint8Array it is the length. (Not `length`: V8 15's Maglev compiles
 * a typed array's `length` of 2^31 or more, once the code has seen small ones, as a negative
 * int32, so `4 + length > limit` came out false for a 2 GiB array; `byteLength` is not
 * affected.)
 */
export const typedArrayByteLength: (view: ArrayBufferView) => number = uncurry(
  Object.getOwnPropertyDescriptor(typedArrayPrototype, "byteLength")!.get as (
    this: ArrayBufferView,
  ) => number,
);
const typedArrayBuffer: (view: ArrayBufferView) => ArrayBufferLike = uncurry(
  Object.getOwnPropertyDescriptor(typedArrayPrototype, "buffer")!.get as (
    this: ArrayBufferView,
  ) => ArrayBufferLike,
);
const typedArrayOffset: (view: ArrayBufferView) => number = uncurry(
  Object.getOwnPropertyDescriptor(typedArrayPrototype, "byteOffset")!.get as (
    this: ArrayBufferView,
  ) => number,
);

/**
 * A fresh fixed-length view of the bytes of `value`, a Uint8Array (checked by brand, so not a
 * Proxy), or undefined when it is not one. The engine reads the view while it holds locks or
 * writes the map, so it must run no user code and keep its length: a Proxy's traps, an own
 * `length` accessor (allowed on a typed array) or a length-tracking view could do either, and
 * a length that changed between sizing a blob and writing it would write past the block.
 */
export function ownBytes(value: unknown): Uint8Array | undefined {
  // isView first: engines inline it, and it rules out plain objects and arrays cheaply.
  if (!ArrayBuffer.isView(value) || typedArrayTag(value) !== "Uint8Array") return undefined;
  const view = value as Uint8Array;
  return new Uint8Array(
    typedArrayBuffer(view),
    typedArrayOffset(view),
    typedArrayByteLength(view),
  );
}

const builtinSet = typedArrayPrototype.set as (
  this: Uint8Array,
  source: ArrayLike<number>,
  offset?: number,
) => void;

/** The built-in `set` of typed arrays, which user code cannot stand in for (see uncurry). */
export const typedArraySet: (
  target: Uint8Array,
  source: ArrayLike<number>,
  offset?: number,
) => void = !BOUND_IS_FAST && pinCall(builtinSet)
  ? (target, source, offset) => builtinSet.call(target, source, offset)
  : CALL.bind(builtinSet) as (
    target: Uint8Array,
    source: ArrayLike<number>,
    offset?: number,
  ) => void;

/**
 * A copy of `bytes` (a view {@linkcode ownBytes} made) in memory of its own. A user codec may
 * hand back a view of a buffer it reuses for the next encode, or of memory another thread
 * writes: what the engine hashed must be what it stores, so it keeps a copy, made with the
 * built-in `set` (a patched prototype runs no code here).
 */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  const copy = new Uint8Array(typedArrayByteLength(bytes));
  typedArraySet(copy, bytes);
  return copy;
}

/** Makes the error for an encoding of at least `needed` bytes against `limit`. */
export type TooLarge = (needed: number, limit: number) => Error;

function tooLargeError(needed: number, limit: number): Error {
  return new RangeError(
    `cannot encode a value of ${needed} bytes or more: the limit is ${limit} bytes`,
  );
}

/** An `Object.keys`-style path segment: an array index or an object key. */
type PathKey = number | string;

/**
 * Reusable encoder: holds a growable scratch buffer (a plain `ArrayBuffer`, not shared).
 *
 * Not reentrant: calling `encode` on the same writer from a getter that is being read by that
 * writer throws a `TypeError`. Callers that may be re-entered (the maps, `codecs.auto.encode`)
 * use another writer when {@linkcode busy} is set.
 */
export class StructuredWriter {
  readonly #tooLarge: TooLarge;
  /** The current encoding's limit in bytes. */
  #limit = MAX_ENCODED_BYTES;
  #buffer: Uint8Array = new Uint8Array(INITIAL_CAPACITY);
  #view: DataView = new DataView(this.#buffer.buffer);
  /** Write position during `encode`. */
  #pos = 0;
  /** Byte length of the last successful encoding (0 after a failed one). */
  #length = 0;
  /** Cached `bytes` view; `undefined` until requested after each `encode`. */
  #bytes: Uint8Array | undefined = undefined;
  #busy = false;
  /**
   * The containers being encoded, outermost first: `#ancestors[d]` is the container at depth
   * `d`, and `#keys[d]` is the key or index of its child currently being encoded. Entries beyond
   * the current depth are cleared on the way out so the writer does not retain user objects.
   */
  #ancestors: object[] = [];
  #keys: PathKey[] = [];
  /** The ancestors at depths `>= LINEAR_ANCESTORS`, for constant-time cycle checks. */
  #deepAncestors: Set<object> = new Set();

  /** `tooLarge` makes the error thrown when an encoding would pass its limit. */
  constructor(tooLarge: TooLarge = tooLargeError) {
    this.#tooLarge = tooLarge;
  }

  /** Whether an `encode` of this writer is under way (a getter it reads is calling back). */
  get busy(): boolean {
    return this.#busy;
  }

  /**
   * Encodes `value` into the scratch buffer, replacing previous contents; returns the encoded
   * byte length. Throws `TypeError` on unsupported input, and the writer's too-large error
   * (before doing the work, where a size is known in advance) when the encoding would take
   * more than `limit` bytes (at most {@linkcode MAX_ENCODED_BYTES}). Errors thrown by getters
   * propagate unchanged. After a throw nothing outside the writer has changed, and the writer
   * is usable again, holding an empty encoding.
   */
  encode(value: unknown, limit: number = MAX_ENCODED_BYTES): number {
    if (this.#busy) {
      throw new TypeError("StructuredWriter.encode is not reentrant");
    }
    this.#busy = true;
    this.#pos = 0;
    this.#length = 0;
    this.#bytes = undefined;
    this.#limit = Math.min(limit, MAX_ENCODED_BYTES);
    try {
      this.#value(value, 0);
      if (this.#pos > this.#limit) this.#tooBig(this.#pos);
      this.#length = this.#pos;
      return this.#length;
    } catch (error) {
      this.#ancestors.fill(undefined as unknown as object);
      this.#deepAncestors.clear();
      throw error;
    } finally {
      this.#busy = false;
    }
  }

  /**
   * The encoded bytes of the last `encode()` (a view into the scratch buffer, valid until the
   * next `encode`).
   */
  /** The length of {@linkcode bytes}: the last `encode()`'s. */
  get length(): number {
    return this.#length;
  }

  get bytes(): Uint8Array {
    // The constructor, not subarray: a subclass set as Uint8Array[Symbol.species], or a patched
    // subarray, could hand back a longer array, and a map copies the whole array into a block
    // sized by `length`. (The scratch buffer is this writer's own, from offset 0.)
    return this.#bytes ??= new FixedUint8Array(typedArrayBuffer(this.#buffer), 0, this.#length);
  }

  /** Throws the too-large error for an encoding of at least `needed` bytes. */
  #tooBig(needed: number): never {
    throw this.#tooLarge(needed, this.#limit);
  }

  /**
   * Makes room for `n` more bytes at `#pos`, at least doubling the scratch when it grows, but
   * not far past the limit (a worst-case estimate may exceed it when the result will not).
   */
  #makeRoom(n: number): void {
    const needed = this.#pos + n;
    if (needed <= this.#buffer.length) return;
    // Past the limit already (short strings are not checked one by one): stop here.
    if (this.#pos > this.#limit) this.#tooBig(this.#pos);
    const cap = Math.max(needed, this.#limit + 16);
    const grown = new Uint8Array(Math.max(needed, Math.min(this.#buffer.length * 2, cap)));
    grown.set(this.#buffer.subarray(0, this.#pos));
    this.#buffer = grown;
    this.#view = new DataView(grown.buffer);
  }

  /** Writes an unsigned varint of `n < 2^32`; the caller has made room for 5 bytes. */
  #varint(n: number): void {
    const buffer = this.#buffer;
    let pos = this.#pos;
    while (n > 0x7f) {
      buffer[pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    buffer[pos++] = n;
    this.#pos = pos;
  }

  #value(value: unknown, depth: number): void {
    switch (typeof value) {
      case "undefined":
        this.#makeRoom(1);
        this.#buffer[this.#pos++] = TAG_UNDEFINED;
        return;
      case "boolean":
        this.#makeRoom(1);
        this.#buffer[this.#pos++] = value ? TAG_TRUE : TAG_FALSE;
        return;
      case "number":
        this.#number(value);
        return;
      case "string":
        this.#makeRoom(1);
        this.#buffer[this.#pos++] = TAG_STRING;
        this.#string(value);
        return;
      case "bigint":
        this.#bigint(value);
        return;
      case "object":
        if (value === null) {
          this.#makeRoom(1);
          this.#buffer[this.#pos++] = TAG_NULL;
        } else if (Array.isArray(value)) {
          this.#enter(value, depth);
          this.#array(value, depth);
          this.#leave(value, depth);
        } else {
          const proto = Object.getPrototypeOf(value);
          if (proto === Object.prototype || proto === null) {
            this.#enter(value, depth);
            this.#object(value as Record<string, unknown>, depth);
            this.#leave(value, depth);
          } else if (typedArrayTag(value) === "Uint8Array") {
            this.#uint8Array(value as Uint8Array);
          } else {
            throw new TypeError(`cannot encode ${describeObject(value)} at ${this.#path(depth)}`);
          }
        }
        return;
      default:
        // "function" and "symbol"; any future type is unsupported until added here.
        throw new TypeError(`cannot encode a ${typeof value} at ${this.#path(depth)}`);
    }
  }

  #number(value: number): void {
    this.#makeRoom(9);
    // `(value | 0) === value` selects int32 values, which include 0 but not -0 (1 / -0 < 0).
    if ((value | 0) === value && (value !== 0 || 1 / value > 0)) {
      this.#buffer[this.#pos++] = TAG_INT;
      this.#varint(((value << 1) ^ (value >> 31)) >>> 0);
    } else {
      this.#buffer[this.#pos++] = TAG_FLOAT64;
      // One NaN: V8 keeps a NaN's payload bits inside an array, and values compare by bytes.
      this.#view.setFloat64(this.#pos, value === value ? value : NaN, true);
      this.#pos += 8;
    }
  }

  /**
   * Writes a string payload in one pass: optimistically narrow, widening the units written so
   * far in place on the first unit above 0xff. The header's size does not depend on `wide`
   * (`2n` is even, so `2n + 1` needs the same number of 7-bit groups) and `wide` is the lowest
   * bit of its first byte, so it is patched in place.
   */
  #string(value: string): void {
    const length = value.length;
    // A short string cannot take the encoding far past the limit before a container's check
    // or the last one stops it; a long one is checked before it is copied.
    if (length > SHORT_STRING && this.#pos + 1 + length > this.#limit) {
      this.#tooBig(this.#pos + 1 + length);
    }
    this.#makeRoom(5 + 2 * length);
    const buffer = this.#buffer;
    const header = this.#pos;
    this.#varint(length * 2);
    const start = this.#pos;
    let i = 0;
    for (; i < length; i++) {
      const unit = value.charCodeAt(i);
      if (unit > 0xff) break;
      buffer[start + i] = unit;
    }
    if (i === length) {
      this.#pos = start + length;
      return;
    }
    buffer[header] |= 1;
    if (start + 2 * length > this.#limit) this.#tooBig(start + 2 * length);
    for (let j = i - 1; j >= 0; j--) {
      buffer[start + 2 * j] = buffer[start + j];
      buffer[start + 2 * j + 1] = 0;
    }
    for (; i < length; i++) {
      const unit = value.charCodeAt(i);
      buffer[start + 2 * i] = unit & 0xff;
      buffer[start + 2 * i + 1] = unit >>> 8;
    }
    this.#pos = start + 2 * length;
  }

  #bigint(value: bigint): void {
    const negative = value < 0n;
    const magnitude = negative ? -value : value;
    if (magnitude <= SMALL_BIGINT_LIMIT) {
      let n = Number(magnitude);
      this.#makeRoom(2 + SMALL_BIGINT_BYTES);
      const buffer = this.#buffer;
      buffer[this.#pos++] = negative ? TAG_BIGINT_NEGATIVE : TAG_BIGINT_POSITIVE;
      const countAt = this.#pos++;
      let count = 0;
      while (n > 0) {
        buffer[this.#pos++] = n % 256;
        n = Math.floor(n / 256);
        count++;
      }
      buffer[countAt] = count;
      return;
    }
    // `toString(16)` and `BigInt("0x...")` are linear for power-of-two radixes.
    const hex = magnitude.toString(16);
    const count = (hex.length + 1) >>> 1;
    if (this.#pos + 2 + count > this.#limit) this.#tooBig(this.#pos + 2 + count);
    this.#makeRoom(6 + count);
    const buffer = this.#buffer;
    buffer[this.#pos++] = negative ? TAG_BIGINT_NEGATIVE : TAG_BIGINT_POSITIVE;
    this.#varint(count);
    let pos = this.#pos;
    // Byte k (least significant first) holds the hex digits at [end - 2, end) with end = L - 2k.
    for (let end = hex.length; end > 0; end -= 2) {
      const low = hexDigit(hex.charCodeAt(end - 1));
      buffer[pos++] = end >= 2 ? (hexDigit(hex.charCodeAt(end - 2)) << 4) | low : low;
    }
    this.#pos = pos;
  }

  #uint8Array(value: Uint8Array): void {
    // The built-in getter: an own `length` property (allowed on a typed array) could lie, and
    // `set` below copies the real length.
    const length = typedArrayByteLength(value);
    if (this.#pos + 2 + length > this.#limit) this.#tooBig(this.#pos + 2 + length);
    this.#makeRoom(6 + length);
    this.#buffer[this.#pos++] = TAG_BYTES;
    this.#varint(length);
    this.#buffer.set(value, this.#pos);
    this.#pos += length;
  }

  #array(value: unknown[], depth: number): void {
    const length = value.length;
    // Each element takes at least a byte: a huge (even sparse) length fails here, at once.
    // (A length that is not a valid array length can only come from a Proxy.)
    if (length >>> 0 !== length) {
      throw new TypeError(
        `cannot encode an array of length ${String(length)} at ${this.#path(depth)}`,
      );
    }
    if (this.#pos + 2 + length > this.#limit) this.#tooBig(this.#pos + 2 + length);
    this.#makeRoom(6);
    this.#buffer[this.#pos++] = TAG_ARRAY;
    this.#varint(length);
    const keys = this.#keys;
    for (let i = 0; i < length; i++) {
      keys[depth] = i;
      this.#value(value[i], depth + 1);
    }
  }

  #object(value: Record<string, unknown>, depth: number): void {
    const names = Object.keys(value);
    const count = names.length;
    // Each entry takes at least two bytes: its key's header and its value's tag.
    if (this.#pos + 2 + 2 * count > this.#limit) this.#tooBig(this.#pos + 2 + 2 * count);
    this.#makeRoom(6);
    this.#buffer[this.#pos++] = TAG_OBJECT;
    this.#varint(count);
    const keys = this.#keys;
    for (let i = 0; i < count; i++) {
      const name = names[i];
      keys[depth] = name;
      this.#string(name);
      this.#value(value[name], depth + 1);
    }
  }

  /** Registers `container` at `depth`, rejecting cycles and excessive nesting. */
  #enter(container: object, depth: number): void {
    const ancestors = this.#ancestors;
    const linear = depth < LINEAR_ANCESTORS ? depth : LINEAR_ANCESTORS;
    for (let d = 0; d < linear; d++) {
      if (ancestors[d] === container) {
        throw new TypeError(`cannot encode a cyclic structure at ${this.#path(depth)}`);
      }
    }
    if (depth >= LINEAR_ANCESTORS) {
      if (this.#deepAncestors.has(container)) {
        throw new TypeError(`cannot encode a cyclic structure at ${this.#path(depth)}`);
      }
      if (depth >= MAX_DEPTH) {
        throw new TypeError(
          `cannot encode a structure nested more than ${MAX_DEPTH} levels deep at ${
            this.#path(depth)
          }`,
        );
      }
      this.#deepAncestors.add(container);
    }
    ancestors[depth] = container;
  }

  #leave(container: object, depth: number): void {
    this.#ancestors[depth] = undefined as unknown as object;
    if (depth >= LINEAR_ANCESTORS) this.#deepAncestors.delete(container);
  }

  /** Formats the path of the value at `depth`, e.g. `value.a[3]["b c"]`. */
  #path(depth: number): string {
    let path = "value";
    for (let d = 0; d < depth; d++) {
      const key = this.#keys[d];
      if (typeof key === "number") path += `[${key}]`;
      else if (/^[A-Za-z_$][\w$]*$/.test(key)) path += `.${key}`;
      else path += `[${JSON.stringify(key)}]`;
    }
    return path;
  }
}

function hexDigit(code: number): number {
  // `bigint.toString(16)` produces only 0-9 and a-f.
  return code <= 0x39 ? code - 0x30 : code - 0x57;
}

/** Names an unsupported object for an error message, e.g. "a Date" or "an Int16Array". */
function describeObject(value: object): string {
  let name: string | undefined = typedArrayTag(value);
  try {
    name ??= Object.prototype.toString.call(value).slice(8, -1);
    if (name === "Object") {
      // A class instance is named after its constructor; anything else is only described.
      const proto = Object.getPrototypeOf(value);
      const constructor = proto.constructor;
      if (typeof constructor !== "function" || constructor.prototype !== proto) {
        name = "object with a custom prototype";
      } else if (constructor.name === "Object") {
        name = "object from another realm";
      } else {
        name = `${constructor.name || "anonymous class"} instance`;
      }
    }
  } catch {
    // A proxy or a hostile getter: fall back to a generic description.
    name = "object with a custom prototype";
  }
  // "U" is a consonant in "Uint8Array" and friends.
  return `${/^[AEIOaeiou]/.test(name) ? "an" : "a"} ${name}`;
}

// ---------------------------------------------------------------------------------------------
// Decoding. The decoder's state lives in module variables (no reader allocated per call), saved
// and restored by each call to `decodeStructured`, so that a nested decode leaves the outer one
// reading its own bytes. User code a program put on the prototypes: an object's key that exists on
// Object.prototype is defined rather than assigned, so an inherited setter there does not run (nor
// swallow the property); array elements are appended by index, so a replaced `push` does not run.
// An index setter put on Array.prototype or Object.prototype would still run, and may decode.

const EMPTY = new Uint8Array(0);
let src: Uint8Array = EMPTY;
let pos = 0;
let end = 0;

/** Float64 conversion scratch: 8 bytes copied in, read as one number. */
const floatBytes = new Uint8Array(8);
const floatValue = new Float64Array(floatBytes.buffer);
/** Code unit scratch for decoding long strings chunk by chunk. */
const unitChunk = new Uint16Array(STRING_CHUNK);
/** Recently decoded object keys, indexed by a hash of their length and end units. */
const keyCache: string[] = new Array(KEY_CACHE_SIZE).fill("");
const HEX_BYTES: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function corrupt(): never {
  throw new RangeError("corrupt structured value");
}

/**
 * Decodes `length` bytes at `offset` of `source` (which may be a view over a
 * `SharedArrayBuffer`). Throws `RangeError("corrupt structured value")` when the bytes are not
 * exactly one valid encoding; time and memory are linear in `length` whatever the bytes hold.
 */
export function decodeStructured(source: Uint8Array, offset: number, length: number): unknown {
  if (
    !Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 ||
    offset + length > source.length
  ) {
    throw new RangeError(
      `structured value range ${offset}+${length} is outside a source of ${source.length} bytes`,
    );
  }
  const outer = src;
  const outerPos = pos;
  const outerEnd = end;
  src = source;
  pos = offset;
  end = offset + length;
  try {
    const value = readValue(0);
    if (pos !== end) corrupt();
    return value;
  } finally {
    // Back to the outer decode's state, or EMPTY: the caller's (possibly large, shared) buffer
    // is not kept alive.
    src = outer;
    pos = outerPos;
    end = outerEnd;
  }
}

function readByte(): number {
  if (pos >= end) corrupt();
  return src[pos++];
}

/** Reads an unsigned varint below 2^32. */
function readVarint(): number {
  let result = 0;
  let scale = 1;
  for (let i = 0; i < 5; i++) {
    const byte = readByte();
    result += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      if (result > 0xffff_ffff) corrupt();
      return result;
    }
    scale *= 128;
  }
  return corrupt();
}

/** Reads a count of items each taking at least `minBytes` bytes, checked against what remains. */
function readCount(minBytes: number): number {
  const count = readVarint();
  if (count * minBytes > end - pos) corrupt();
  return count;
}

function readValue(depth: number): unknown {
  const tag = readByte();
  switch (tag) {
    case TAG_UNDEFINED:
      return undefined;
    case TAG_NULL:
      return null;
    case TAG_FALSE:
      return false;
    case TAG_TRUE:
      return true;
    case TAG_INT: {
      const zigzag = readVarint();
      return (zigzag >>> 1) ^ -(zigzag & 1);
    }
    case TAG_FLOAT64:
      return readFloat64();
    case TAG_STRING:
      return readString();
    case TAG_BIGINT_POSITIVE:
      return readBigint(false);
    case TAG_BIGINT_NEGATIVE:
      return readBigint(true);
    case TAG_BYTES: {
      const count = readCount(1);
      const bytes = new Uint8Array(count);
      bytes.set(src.subarray(pos, pos + count));
      pos += count;
      return bytes;
    }
    case TAG_ARRAY: {
      if (depth >= MAX_DEPTH) corrupt();
      const count = readCount(1);
      // Appended by index, not push(), which a program may have replaced.
      const array: unknown[] = [];
      for (let i = 0; i < count; i++) array[i] = readValue(depth + 1);
      return array;
    }
    case TAG_OBJECT: {
      if (depth >= MAX_DEPTH) corrupt();
      const count = readCount(2);
      const object: Record<string, unknown> = {};
      for (let i = 0; i < count; i++) {
        const key = readKey();
        const value = readValue(depth + 1);
        if (key in Object.prototype) {
          // Plain assignment would call an inherited setter instead (`__proto__`'s, or one a
          // program defined on Object.prototype: user code, which would also not create the
          // property); defined, as JSON.parse defines its properties.
          Object.defineProperty(object, key, {
            value,
            writable: true,
            enumerable: true,
            configurable: true,
          });
        } else {
          object[key] = value;
        }
      }
      return object;
    }
    default:
      return corrupt();
  }
}

function readFloat64(): number {
  if (end - pos < 8) corrupt();
  if (LITTLE_ENDIAN) {
    for (let i = 0; i < 8; i++) floatBytes[i] = src[pos + i];
  } else {
    for (let i = 0; i < 8; i++) floatBytes[7 - i] = src[pos + i];
  }
  pos += 8;
  return floatValue[0];
}

function readString(): string {
  return readStringBody(readVarint());
}

/**
 * Reads an object key. Narrow keys of up to `MAX_CACHED_KEY` units are looked up in `keyCache`
 * first: a hit returns the same string as last time, which saves building it and lets the
 * engine skip internalizing it again when it becomes a property name.
 */
function readKey(): string {
  const header = readVarint();
  if ((header & 1) !== 0 || header > 2 * MAX_CACHED_KEY) return readStringBody(header);
  const length = header / 2;
  if (length > end - pos) corrupt();
  const source = src;
  const p = pos;
  const at = length === 0
    ? 0
    : (source[p] * 0x3b + source[p + length - 1] * 0x61 + length) & (KEY_CACHE_SIZE - 1);
  const cached = keyCache[at];
  if (cached.length === length) {
    let i = 0;
    while (i < length && cached.charCodeAt(i) === source[p + i]) i++;
    if (i === length) {
      pos = p + length;
      return cached;
    }
  }
  return keyCache[at] = readStringBody(header);
}

/** Reads the units of a string payload whose `header` has been read. */
function readStringBody(header: number): string {
  const wide = header & 1;
  const length = (header - wide) / 2;
  const size = wide ? 2 * length : length;
  if (size > end - pos) corrupt();
  const source = src;
  let p = pos;
  pos += size;
  if (length <= SHORT_STRING) {
    let result = "";
    if (wide) {
      for (let i = 0; i < length; i++, p += 2) {
        result += String.fromCharCode(source[p] | (source[p + 1] << 8));
      }
    } else {
      for (let i = 0; i < length; i++) result += String.fromCharCode(source[p + i]);
    }
    return result;
  }
  let result = "";
  for (let done = 0; done < length;) {
    const n = Math.min(STRING_CHUNK, length - done);
    if (wide) {
      for (let i = 0; i < n; i++, p += 2) unitChunk[i] = source[p] | (source[p + 1] << 8);
    } else {
      for (let i = 0; i < n; i++) unitChunk[i] = source[p++];
    }
    const units = n === STRING_CHUNK ? unitChunk : unitChunk.subarray(0, n);
    result += String.fromCharCode.apply(null, units as unknown as number[]);
    done += n;
  }
  return result;
}

function readBigint(negative: boolean): bigint {
  const count = readCount(1);
  const source = src;
  const start = pos;
  pos += count;
  let magnitude: bigint;
  if (count <= SMALL_BIGINT_BYTES) {
    let n = 0;
    for (let i = count - 1; i >= 0; i--) n = n * 256 + source[start + i];
    magnitude = BigInt(n);
  } else {
    let hex = "0x";
    for (let i = start + count - 1; i >= start; i--) hex += HEX_BYTES[source[i]];
    try {
      magnitude = BigInt(hex);
    } catch {
      // Only a length beyond the engine's BigInt limit can fail; no encoder produces that.
      return corrupt();
    }
  }
  return negative ? -magnitude : magnitude;
}
