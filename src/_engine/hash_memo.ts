/**
 * Internal. One thread's memo of the keyed hashes of the number keys it has hashed lately, for
 * one map (one hash key): the arena's {@linkcode Arena.memo}.
 *
 * HalfSipHash-1-3 of a key's two words (hash.ts `hashWords`) is a chain of six dependent
 * SipRounds, about 18 ns on this project's machine: a third of a number-key `load` or `get`, and
 * more than all the rest of a hit in Go's sync.Map. A program that looks the same keys up again
 * and again (a read-mostly cache, a hot set of ids) pays it every time. The memo is a
 * direct-mapped table of {@linkcode MEMO_SLOTS} slots of three words, the key's words and their
 * hash; a key's slot is a multiplicative (Fibonacci) hash of its words, unkeyed, which spreads
 * small integers and runs of them nearly without a collision, and other keys as random ones would
 * be. A hit costs a multiply, three reads and two compares.
 *
 * What it holds is a pure function of the key's words under the map's hash key, which is fixed
 * for the map's life, so a stale slot costs a miss, never a wrong hash. Keys that an attacker
 * makes share a memo slot only evict each other: a miss, which hashes the key as if there were
 * no memo. The memo is this thread's own JavaScript memory, never shared: nothing in it is
 * seen by another worker, and no user code runs while it is read or written.
 *
 * The table is made zeroed, so every slot starts as the words (0, 0), and slot 0, the one
 * (0, 0) maps to, is given their true hash. A lookup of (0, 0) only ever reads slot 0, so the
 * other slots' (0, 0) match nothing: no pair of words, key or not, can read a hash that is not
 * its own. The table, 48 KB, is made after {@linkcode WARMUP} lookups, so a map whose keys are
 * not numbers, or a handle that is attached for a few calls and dropped, pays nothing for it.
 *
 * A working set much larger than the memo makes most lookups misses, each a read of a slot out
 * of cache and three writes on top of the hash (8% to 14% of a `get` among 2^20 random keys), so
 * the memo watches its hit rate: when a window of {@linkcode WINDOW} misses saw fewer hits, it
 * switches itself off for {@linkcode OFF_CALLS} lookups (each then costs a decrement), then tries
 * again, keeping what it held.
 *
 * @module
 */

import { hashWords } from "./hash.ts";

/** Slots of the memo, a power of two: 4,096 slots of three words, 48 KB. */
export const MEMO_SLOTS = 4096;
/** Lookups hashed without a table before the table is made. */
export const WARMUP = 1024;
/** Misses per hit-rate window. */
export const WINDOW = 4096;
/** Lookups the memo stays off for after a window with fewer hits than misses. */
export const OFF_CALLS = 262144;
/** Right shift that takes a slot number from the top bits of the 32-bit product. */
const SHIFT = 32 - Math.log2(MEMO_SLOTS);
/** The multiplier: 2^32 over the golden ratio, odd (Knuth's multiplicative hashing). */
const GOLDEN = 0x9e3779b1 | 0;
/** The first word of (lo, hi)'s slot in the table. */
function slotOf(lo: number, hi: number): number {
  return (Math.imul(lo ^ hi, GOLDEN) >>> SHIFT) * 3;
}

/** The words of a memo that has no table yet, or is switched off: no slot to read. */
const NONE = new Int32Array(0);

/** The memo of one arena; see the module documentation. */
export class HashMemo {
  readonly #k0: number;
  readonly #k1: number;
  /** The table: three words per slot (lo, hi, hash); null until {@linkcode WARMUP} lookups. */
  #table: Int32Array | null = null;
  /** The table while the memo is on, else {@linkcode NONE}. */
  #words: Int32Array = NONE;
  /**
   * Hits and misses in the current window. A hit is counted `(hits + 1) | 0`, not `hits++`:
   * JavaScriptCore checks `++` for overflow past int32 and keeps the path to a double, which
   * cost Bun about 1 ns a hit (SyncMap `load` hit 0.91x and GoMap `get` 0.88x without it, same
   * run); V8 runs both alike. A count that wraps past 2^31 makes one window's judgment wrong,
   * which costs a switch-off at most.
   */
  #hits = 0;
  #misses = 0;
  /** Lookups left while switched off, or before the table is made. */
  #off = WARMUP;
  /**
   * The last key hashed without a table, and its hash: a lookup that misses the read table of an
   * amended map hashes its key again under the mutex, for the dirty table, and keys that are
   * each new to the map (Go's adversarial shapes, the misses of LoadAndDeleteBalanced) are what
   * switches the table off. (0, 0) stands for no key until one is hashed: its hash is the true one.
   */
  #lastLo = 0;
  #lastHi = 0;
  #lastHash: number;

  /** A memo of hashes under the hash key (k0, k1). */
  constructor(k0: number, k1: number) {
    this.#k0 = k0;
    this.#k1 = k1;
    this.#lastHash = hashWords(0, 0, k0, k1);
  }

  /** `hashWords(lo, hi, k0, k1)` for this memo's hash key, from the memo when it holds it. */
  hash(lo: number, hi: number): number {
    const w = this.#words;
    if (w.length === 0) return this.#bypass(lo, hi);
    const i = slotOf(lo, hi);
    if (w[i] === lo && w[i + 1] === hi) {
      this.#hits = (this.#hits + 1) | 0;
      return w[i + 2];
    }
    const h = hashWords(lo, hi, this.#k0, this.#k1);
    w[i] = lo;
    w[i + 1] = hi;
    w[i + 2] = h;
    const misses = (this.#misses + 1) | 0;
    this.#misses = misses;
    if (misses >= WINDOW) this.#endWindow(); // >=: an #endWindow cut short comes again
    return h;
  }

  /** Whether the memo is in use (false before its table is made, and while switched off). */
  get on(): boolean {
    return this.#words.length !== 0;
  }

  /** Whether the memo holds the hash of (lo, hi) now (for tests). */
  holds(lo: number, hi: number): boolean {
    const i = slotOf(lo, hi);
    const w = this.#words;
    return w.length !== 0 && w[i] === lo && w[i + 1] === hi;
  }

  /** A lookup with no table in use: before it is made, or while the memo is off. */
  #bypass(lo: number, hi: number): number {
    // <= 0: a switch-on cut short (a stack overflow in the allocation) is tried again.
    const off = (this.#off - 1) | 0;
    this.#off = off;
    if (off <= 0) {
      if (this.#table === null) {
        // Zeroed: (0, 0) in every slot, with its true hash in slot 0, the one it maps to.
        this.#table = new Int32Array(3 * MEMO_SLOTS);
        this.#table[2] = hashWords(0, 0, this.#k0, this.#k1);
      }
      this.#words = this.#table;
    }
    if (lo === this.#lastLo && hi === this.#lastHi) return this.#lastHash;
    const h = hashWords(lo, hi, this.#k0, this.#k1);
    this.#lastLo = lo;
    this.#lastHi = hi;
    this.#lastHash = h;
    return h;
  }

  /** A window of {@linkcode WINDOW} misses is over: fewer hits than misses switch it off. */
  #endWindow(): void {
    if (this.#hits < this.#misses) {
      this.#off = OFF_CALLS;
      this.#words = NONE;
    }
    this.#hits = 0;
    this.#misses = 0;
  }
}
