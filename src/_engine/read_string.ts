/**
 * Internal. Reading a string blob back: a 32-bit count of UTF-16 units, then the units (the
 * layout slots.ts writes).
 *
 * @module
 */

import type { Arena } from "./arena.ts";

const fcc = String.fromCharCode;

/** Units per `fromCharCode.apply` call: well under every engine's argument limit. */
const APPLY_UNITS = 4096;

/**
 * Decodes a string blob at `offset`. The result is the blob's units exactly, lone surrogates
 * included (no decoder that might replace them). Up to 16 units (the usual keys) come from one
 * `fromCharCode` call of fixed arity, several times faster on both engines than `apply` over a
 * view (which reads it as an array-like) or concatenating units one at a time (which makes a
 * cons string past 12 units); longer strings from `apply` over views of up to APPLY_UNITS.
 */
export function readString(arena: Arena, offset: number): string {
  if (offset + 4 > arena.bytes) arena.reach(offset + 4);
  const count = arena.i32[offset >> 2] >>> 0;
  const end = offset + 4 + count * 2;
  if (end > arena.bytes) arena.reach(end);
  const u = arena.u16;
  const b = (offset + 4) >> 1;
  // One line a length: fromCharCode of fixed arity over the units.
  // deno-fmt-ignore
  switch (count) {
    case 0: return "";
    case 1: return fcc(u[b]);
    case 2: return fcc(u[b], u[b + 1]);
    case 3: return fcc(u[b], u[b + 1], u[b + 2]);
    case 4: return fcc(u[b], u[b + 1], u[b + 2], u[b + 3]);
    case 5: return fcc(u[b], u[b + 1], u[b + 2], u[b + 3], u[b + 4]);
    case 6: return fcc(u[b], u[b + 1], u[b + 2], u[b + 3], u[b + 4], u[b + 5]);
    case 7: return fcc(u[b], u[b + 1], u[b + 2], u[b + 3], u[b + 4], u[b + 5], u[b + 6]);
    case 8: return fcc(u[b], u[b + 1], u[b + 2], u[b + 3], u[b + 4], u[b + 5], u[b + 6], u[b + 7]);
    case 9: return fcc(u[b], u[b + 1], u[b + 2], u[b + 3], u[b + 4], u[b + 5], u[b + 6], u[b + 7], u[b + 8]);
    case 10: return fcc(u[b], u[b + 1], u[b + 2], u[b + 3], u[b + 4], u[b + 5], u[b + 6], u[b + 7], u[b + 8], u[b + 9]);
    case 11: return fcc(u[b], u[b + 1], u[b + 2], u[b + 3], u[b + 4], u[b + 5], u[b + 6], u[b + 7], u[b + 8], u[b + 9], u[b + 10]);
    case 12: return fcc(u[b], u[b + 1], u[b + 2], u[b + 3], u[b + 4], u[b + 5], u[b + 6], u[b + 7], u[b + 8], u[b + 9], u[b + 10], u[b + 11]);
    case 13: return fcc(u[b], u[b + 1], u[b + 2], u[b + 3], u[b + 4], u[b + 5], u[b + 6], u[b + 7], u[b + 8], u[b + 9], u[b + 10], u[b + 11], u[b + 12]);
    case 14: return fcc(u[b], u[b + 1], u[b + 2], u[b + 3], u[b + 4], u[b + 5], u[b + 6], u[b + 7], u[b + 8], u[b + 9], u[b + 10], u[b + 11], u[b + 12], u[b + 13]);
    case 15: return fcc(u[b], u[b + 1], u[b + 2], u[b + 3], u[b + 4], u[b + 5], u[b + 6], u[b + 7], u[b + 8], u[b + 9], u[b + 10], u[b + 11], u[b + 12], u[b + 13], u[b + 14]);
    case 16: return fcc(u[b], u[b + 1], u[b + 2], u[b + 3], u[b + 4], u[b + 5], u[b + 6], u[b + 7], u[b + 8], u[b + 9], u[b + 10], u[b + 11], u[b + 12], u[b + 13], u[b + 14], u[b + 15]);
  }
  let s = "";
  for (let i = 0; i < count; i += APPLY_UNITS) {
    const stop = Math.min(count, i + APPLY_UNITS);
    s += fcc.apply(null, u.subarray(b + i, b + stop) as unknown as number[]);
  }
  return s;
}
