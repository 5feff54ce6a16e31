/**
 * Internal. The blocks of shared memory the public `Mutex` and `RWMutex` live in, and their
 * handles.
 *
 * | word   | meaning                                                             |
 * | ------ | ------------------------------------------------------------------- |
 * | 0      | {@linkcode LOCK_MAGIC}, so that `attach` can tell a lock from other memory |
 * | 1      | the kind (1 Mutex, 2 RWMutex), so one kind is not attached as the other |
 * | 2      | words in the block                                                  |
 * | 3..15  | unused (the RWMutex's reader seats start on a 64-byte line)         |
 * | 16..   | the lock words: a mutex word (futex.ts) or reader/writer words (rw_lock.ts) |
 *
 * The header is written before the block is shared; posting the buffer to another thread
 * happens-before that thread reads it, so plain reads suffice. A handle carries the census of
 * the thread that made the lock (census.ts), so that every thread using the lock learns of the
 * deaths of the others.
 *
 * @module
 */

import { adoptCensus, census } from "./census.ts";
import { deadOwnerOf } from "./futex.ts";
import { OwnerDeadError } from "../errors.ts";
import { describe, emptyHandleHint } from "../_describe.ts";

/** "shml" in little-endian byte order: a shmap lock block. */
const LOCK_MAGIC = 0x6c6d6873;
const W_WORDS = 2;

/** Where the lock words start in a block. */
export const LOCK_BASE = 16;

/** Names of the public lock kinds, as they appear in handles. */
export type LockKind = "Mutex" | "RWMutex";

const KIND_CODE: Readonly<Record<LockKind, number>> = { Mutex: 1, RWMutex: 2 };

/** What a lock handle holds. */
export interface LockHandle<K extends LockKind> {
  readonly kind: K;
  readonly buffer: SharedArrayBuffer;
  readonly byteOffset: number;
  readonly census?: SharedArrayBuffer;
}

/**
 * A lock block to wrap, checked by {@linkcode attachLockBlock}: what `Mutex.attach` and
 * `RWMutex.attach` pass their constructor, which no one else can make one for (this module is
 * not public).
 */
export class LockAttachment {
  readonly block: Int32Array<SharedArrayBuffer>;
  constructor(block: Int32Array<SharedArrayBuffer>) {
    this.block = block;
  }
}

/**
 * The OwnerDeadError a public lock of `kind`, whose poisoned word is `i32[index]`, throws while
 * the caller holds it; it names the dead holder when this thread took the word over from it
 * ({@linkcode deadOwnerOf}). Making it can
 * throw instead (a stack overflow can throw from any call, this one's entry included), so each
 * caller makes it inside a `try` in the frame that took the lock, whose `catch` gives the lock
 * back, still poisoned, written out (Mutex `acquire`, rw_lock.ts `writeLock`, RWMutex `rLock`
 * and `tryRLock`).
 */
export function ownerDead(kind: LockKind, i32: Int32Array, index: number): OwnerDeadError {
  return new OwnerDeadError(kind, deadOwnerOf(i32, index));
}

/** Makes a block of `kind` with `words` lock words in a fresh SharedArrayBuffer. */
export function newLockBlock(kind: LockKind, words: number): Int32Array<SharedArrayBuffer> {
  census(); // made now, so that the handle can carry it
  const block = new Int32Array(new SharedArrayBuffer((LOCK_BASE + words) * 4));
  block[0] = LOCK_MAGIC;
  block[1] = KIND_CODE[kind];
  block[W_WORDS] = LOCK_BASE + words;
  return block;
}

/** The handle of `block`. */
export function lockHandle<K extends LockKind>(
  kind: K,
  block: Int32Array<SharedArrayBuffer>,
): LockHandle<K> {
  return { kind, buffer: block.buffer, byteOffset: block.byteOffset, census: census() };
}

// Brand check that works across realms and cannot be fooled by Symbol.toStringTag: the
// `byteLength` getter of SharedArrayBuffer.prototype throws for anything else.
const sabByteLength = Object.getOwnPropertyDescriptor(SharedArrayBuffer.prototype, "byteLength")!
  .get as (this: unknown) => number;

function sharedByteLength(value: unknown): number | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  try {
    return sabByteLength.call(value);
  } catch {
    return undefined;
  }
}

/**
 * Checks that `handle` describes a lock block of `kind` and returns a view of exactly that
 * block.
 *
 * @throws {TypeError} naming what is wrong with the handle.
 */
export function attachLockBlock(handle: unknown, kind: LockKind): Int32Array<SharedArrayBuffer> {
  const where = `${kind}.attach`;
  if (typeof handle !== "object" || handle === null || Array.isArray(handle)) {
    throw new TypeError(
      `${where}: expected the object returned by ${kind}.prototype.handle, got ${describe(handle)}`,
    );
  }
  const h = handle as { kind?: unknown; buffer?: unknown; byteOffset?: unknown; census?: unknown };
  if (h.kind !== kind) {
    throw new TypeError(
      `${where}: handle.kind must be "${kind}", got ${describe(h.kind)}` +
        (h.kind === "Mutex" || h.kind === "RWMutex"
          ? ` (use ${h.kind}.attach)`
          : emptyHandleHint(handle)),
    );
  }
  const byteLength = sharedByteLength(h.buffer);
  if (byteLength === undefined) {
    throw new TypeError(
      `${where}: handle.buffer must be a SharedArrayBuffer, got ${describe(h.buffer)}`,
    );
  }
  const offset = h.byteOffset;
  if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0) {
    throw new TypeError(
      `${where}: handle.byteOffset must be a non-negative integer, got ${describe(offset)}`,
    );
  }
  if (offset % 64 !== 0) {
    throw new TypeError(`${where}: handle.byteOffset ${offset} is not a multiple of 64`);
  }
  if (offset + LOCK_BASE * 4 > byteLength) {
    throw new TypeError(
      `${where}: handle.byteOffset ${offset} is out of range for a buffer of ${byteLength} bytes`,
    );
  }
  const header = new Int32Array(h.buffer as SharedArrayBuffer, offset, LOCK_BASE);
  if (header[0] !== LOCK_MAGIC) {
    throw new TypeError(`${where}: no shmap lock at byteOffset ${offset} (bad magic word)`);
  }
  if (header[1] !== KIND_CODE[kind]) {
    const found = (Object.keys(KIND_CODE) as LockKind[]).find((k) => KIND_CODE[k] === header[1]);
    throw new TypeError(
      `${where}: the lock at byteOffset ${offset} is ${
        found === undefined ? "of unknown kind" : found === "Mutex" ? "a Mutex" : "an RWMutex"
      }, not ${kind === "Mutex" ? "a Mutex" : "an RWMutex"}`,
    );
  }
  const words = header[W_WORDS];
  if (words < LOCK_BASE || offset + words * 4 > byteLength) {
    throw new TypeError(`${where}: the lock at byteOffset ${offset} is corrupt (bad size)`);
  }
  if (h.census !== undefined) adoptCensus(h.census);
  return new Int32Array(h.buffer as SharedArrayBuffer, offset, words);
}
