/**
 * Codecs: how keys and values are copied into shared memory and back.
 *
 * @module
 */

import {
  AutoSlots,
  BytesSlots,
  Float64Slots,
  Int32Slots,
  type SlotCodec,
  StringSlots,
  UserSlots,
} from "./_engine/slots.ts";
import { ownBytes } from "./_engine/structured.ts";
import { decodeStructured, StructuredWriter } from "./_engine/structured.ts";
import { describe } from "./_describe.ts";

/**
 * Converts values of type `T` to bytes and back, so that a map can keep them in shared memory.
 * Keys are equal when their encodings are equal byte for byte, so an `encode` meant for keys
 * must give equal values equal bytes.
 *
 * The `name` is recorded in the map's shared header; a worker attaching to the map must use a
 * codec of the same name, which guards against decoding one type as another.
 *
 * @example A codec for 2-D points
 * ```ts
 * import { type Codec, GoMap } from "@shmap/shmap";
 *
 * interface Point { x: number; y: number }
 * const point: Codec<Point> = {
 *   name: "point",
 *   encode: (p) => new Uint8Array(new Float64Array([p.x, p.y]).buffer),
 *   decode: (bytes) => {
 *     const [x, y] = new Float64Array(bytes.slice().buffer);
 *     return { x, y };
 *   },
 * };
 * const map = new GoMap<Point, string>({ keys: point });
 * map.set({ x: 1, y: 2 }, "a");
 * console.log(map.get({ x: 1, y: 2 })); // "a"
 * ```
 */
export interface Codec<T> {
  /** Identifies the codec; at most 32 characters. */
  readonly name: string;
  /** Encodes `value`. Throws TypeError for values it cannot encode. */
  encode(value: T): Uint8Array;
  /** Decodes bytes made by {@linkcode encode}. Receives a private copy it may keep. */
  decode(bytes: Uint8Array): T;
}

const SLOTS: unique symbol = Symbol("shmap.slots");

interface BuiltinCodec<T> extends Codec<T> {
  readonly [SLOTS]: () => SlotCodec<T>;
}

function builtin<T>(
  name: string,
  slots: () => SlotCodec<T>,
  encode: (value: T) => Uint8Array,
  decode: (bytes: Uint8Array) => T,
): Codec<T> {
  const codec: BuiltinCodec<T> = { name, encode, decode, [SLOTS]: slots };
  return Object.freeze(codec);
}

const structured = new StructuredWriter();

/** `value`, checked to be of `type` (a codec's encode takes whatever the caller passes). */
function checkType<T>(value: T, type: "number" | "string"): T {
  const actual: string = typeof value;
  if (actual !== type) throw new TypeError(`expected a ${type}, got ${describe(value)}`);
  return value;
}

/**
 * The built-in codecs. Numbers, booleans, null, undefined, strings of up to two UTF-16 units and
 * bigints in the int32 range are stored inline in a slot; everything else in a block of its own.
 *
 * - `auto` (the default for keys and values): strings, numbers, bigints, booleans, null and
 *   undefined as keys; those plus Uint8Array, arrays and plain objects as values.
 * - `float64`: numbers only, the fastest choice for numeric keys or values.
 * - `int32`: integers in [-2^31, 2^31) only; `-0` is stored as `0`, as an int32 has no `-0`.
 * - `string`: strings only, stored as UTF-16 code units.
 * - `bytes`: Uint8Array only, copied in and out.
 *
 * Keys follow JavaScript's SameValueZero under every built-in codec: `NaN` equals `NaN`, `-0`
 * equals `0`, and `1`, `1n` and `"1"` are three different keys. (Go's map differs: there a NaN
 * key never equals itself.)
 *
 * @example Typed keys and values
 * ```ts
 * import { codecs, GoMap } from "@shmap/shmap";
 *
 * const scores = new GoMap<string, number>({ keys: codecs.string, values: codecs.float64 });
 * scores.set("ada", 1.5);
 * console.log(scores.get("ada")); // 1.5
 * ```
 */
export const codecs: {
  /** The default: primitives as keys; primitives, Uint8Array, arrays, plain objects as values. */
  readonly auto: Codec<unknown>;
  /** Numbers as float64. */
  readonly float64: Codec<number>;
  /** Integers in the int32 range. */
  readonly int32: Codec<number>;
  /** Strings. */
  readonly string: Codec<string>;
  /** Uint8Arrays, copied. */
  readonly bytes: Codec<Uint8Array>;
} = Object.freeze({
  auto: builtin<unknown>(
    "auto",
    () => new AutoSlots(),
    (value) => {
      // A getter of `value` may call this codec again: that call gets a writer of its own.
      // The encoding takes at most 2^30 bytes (a RangeError, before the work where it can).
      const writer = structured.busy ? new StructuredWriter() : structured;
      writer.encode(value);
      return writer.bytes.slice();
    },
    (bytes) => decodeStructured(bytes, 0, bytes.length),
  ),
  float64: builtin<number>(
    "float64",
    () => new Float64Slots(),
    (value) => new Uint8Array(new Float64Array([checkType(value, "number")]).buffer),
    (bytes) => new Float64Array(bytes.slice(0, 8).buffer)[0],
  ),
  int32: builtin<number>(
    "int32",
    () => new Int32Slots(),
    (value) => {
      if ((checkType(value, "number") | 0) !== value) {
        throw new RangeError(`not an int32: ${String(value)}`);
      }
      return new Uint8Array(new Int32Array([value]).buffer);
    },
    (bytes) => new Int32Array(bytes.slice(0, 4).buffer)[0],
  ),
  string: builtin<string>(
    "string",
    () => new StringSlots(),
    (value) => {
      checkType(value, "string");
      const units = new Uint16Array(value.length);
      for (let i = 0; i < value.length; i++) units[i] = value.charCodeAt(i);
      return new Uint8Array(units.buffer);
    },
    (bytes) => {
      const units = new Uint16Array(bytes.slice().buffer, 0, bytes.length >> 1);
      let s = "";
      for (let i = 0; i < units.length; i += 4096) {
        s += String.fromCharCode(...units.subarray(i, i + 4096));
      }
      return s;
    },
  ),
  bytes: builtin<Uint8Array>(
    "bytes",
    () => new BytesSlots(),
    (value) => {
      const bytes = ownBytes(value);
      if (bytes === undefined) {
        throw new TypeError(`expected a Uint8Array, got ${describe(value)}`);
      }
      return bytes.slice();
    },
    (bytes) => bytes,
  ),
});

const BUILTINS: Record<string, Codec<unknown>> = { ...codecs } as Record<string, Codec<unknown>>;

/**
 * Internal: the engine's view of `codec`, checking the shape of a user's codec. `role` names
 * the option for error messages.
 */
export function slotCodecOf<T>(codec: Codec<T> | undefined, role: string): SlotCodec<T> {
  if (codec === undefined) return new AutoSlots() as SlotCodec<T>;
  // The name is read once: a getter could pass these checks with one name and be recorded in
  // the map's header under another (a built-in's, whose decoder would then read its bytes).
  // Only an object can be a codec: reading a name off null would throw an unhelpful TypeError.
  const name = typeof codec === "object" && codec !== null ? codec.name : undefined;
  // A built-in codec is the very object `codecs` holds under its name. Its SLOTS alone do not
  // make one: a spread of it (`{ ...codecs.int32, name: "string" }`) or an object inheriting
  // from it carries them under any name, and would read another codec's bytes as its own.
  if (
    typeof name === "string" && Object.hasOwn(BUILTINS, name) && BUILTINS[name] === codec
  ) {
    return (codec as BuiltinCodec<T>)[SLOTS]();
  }
  if (
    typeof codec !== "object" || codec === null || typeof name !== "string" ||
    name.length === 0 || typeof codec.encode !== "function" ||
    typeof codec.decode !== "function"
  ) {
    throw new TypeError(
      `${role} must be a Codec: { name: string, encode(value), decode(bytes) }, got ${
        describe(codec)
      }`,
    );
  }
  if (Object.hasOwn(BUILTINS, name)) {
    throw new TypeError(`${role}: the codec name "${name}" is reserved for a built-in codec`);
  }
  return new UserSlots(codec, name);
}

/**
 * A codec name in a message, quoted and escaped, so that names that differ only in control
 * characters or lone surrogates read differently.
 */
function quoted(name: string): string {
  return JSON.stringify(name);
}

/**
 * Internal: the codec to use when attaching to a map whose header records `recorded`. Checks a
 * codec passed by the caller against it, or finds the built-in codec of that name.
 */
export function attachCodec<T>(
  given: Codec<T> | undefined,
  recorded: string,
  role: string,
): SlotCodec<T> {
  if (given === undefined) {
    const codec = Object.hasOwn(BUILTINS, recorded) ? BUILTINS[recorded] : undefined;
    if (codec === undefined) {
      throw new TypeError(
        `this map's ${role} use the codec ${quoted(recorded)}: pass it as ${role}`,
      );
    }
    return slotCodecOf(codec as Codec<T>, role);
  }
  if (given?.name !== recorded) {
    throw new TypeError(
      `this map's ${role} use the codec ${quoted(recorded)}, not ${quoted(String(given?.name))}`,
    );
  }
  return slotCodecOf(given, role);
}
