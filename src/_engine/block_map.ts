/**
 * Internal. {@linkcode BlockMap}: the map from a block's offset to its size that the allocator's
 * walk (heap_verify.ts) and the markings of `verify()` and the sweep build, one entry for every
 * block of the heap.
 *
 * A JavaScript `Map` was used before. It cost 100 to 200 ns a block, and a sweep walks every
 * block the map reaches with the world stopped: after a worker's death, a SyncMap of a million
 * keys (two million blocks) stopped every other worker for about 2.3 s, and a `Map` holds at
 * most 2^24 entries in V8 (Deno, Node), so there a heap of more blocks could not be verified
 * or swept at all. Here
 * a block 16-byte aligned and below the limit given (the heap's top) takes one byte, indexed by
 * its offset / 16: its size in 16-byte units, when it has 254 units or fewer (every block of a
 * span: they are 1,024 bytes at most), else 255, with the size in a `Map` beside. Anything else
 * (an offset a corrupt word names) goes to that `Map` too, so every offset and size is kept as
 * given, as a `Map` would keep it.
 *
 * @module
 */

/** The size byte of a block whose size is in {@linkcode BlockMap}'s `Map` of large ones. */
const LARGE = 255;

/**
 * A map from block offset to size (both positive), for the offsets below `limit`, dense.
 * Iterates in address order: the dense part first, then the others by offset.
 */
export class BlockMap {
  readonly #units: Uint8Array;
  readonly #large = new Map<number, number>();
  #size = 0;

  /** A map for blocks below offset `limit` (others are kept too, less compactly). */
  constructor(limit: number) {
    this.#units = new Uint8Array(Math.max(0, Math.ceil(limit / 16)));
  }

  /** Entries. */
  get size(): number {
    return this.#size;
  }

  /** Whether `offset` has an entry. */
  has(offset: number): boolean {
    return this.#dense(offset) ? this.#units[offset >> 4] !== 0 : this.#large.has(offset);
  }

  /** The size of `offset`'s block, or undefined. */
  get(offset: number): number | undefined {
    if (!this.#dense(offset)) return this.#large.get(offset);
    const u = this.#units[offset >> 4];
    return u === 0 ? undefined : u === LARGE ? this.#large.get(offset) : u << 4;
  }

  /** Gives `offset` the size `bytes`. */
  set(offset: number, bytes: number): this {
    if (!this.#dense(offset)) {
      if (!this.#large.has(offset)) this.#size++;
      this.#large.set(offset, bytes);
      return this;
    }
    const i = offset >> 4;
    const had = this.#units[i];
    if (had === 0) this.#size++;
    else if (had === LARGE) this.#large.delete(offset);
    if ((bytes & 15) === 0 && bytes > 0 && bytes < LARGE << 4) this.#units[i] = bytes >> 4;
    else {
      this.#units[i] = LARGE;
      this.#large.set(offset, bytes);
    }
    return this;
  }

  /**
   * Gives `offset` the size `bytes` if it has none, and returns undefined; else returns the
   * size it has, unchanged. One lookup where `get` and `set` make two.
   */
  add(offset: number, bytes: number): number | undefined {
    if (this.#dense(offset)) {
      const u = this.#units[offset >> 4];
      if (u === 0) {
        this.set(offset, bytes);
        return undefined;
      }
      return u === LARGE ? this.#large.get(offset) : u << 4;
    }
    const had = this.#large.get(offset);
    if (had === undefined) this.set(offset, bytes);
    return had;
  }

  /** Calls `fn(offset, bytes)` for every entry, in address order: the iterator's walk, faster. */
  forEach(fn: (offset: number, bytes: number) => void): void {
    const units = this.#units;
    const large = this.#large;
    // Four units at a time past the empty stretches (the bytes of blocks' insides are 0).
    const words = new Int32Array(units.buffer, 0, units.length >> 2);
    for (let w = 0; w < words.length; w++) {
      if (words[w] === 0) continue;
      for (let i = w << 2; i < (w << 2) + 4; i++) {
        const u = units[i];
        if (u !== 0) fn(i << 4, u === LARGE ? large.get(i << 4)! : u << 4);
      }
    }
    for (let i = words.length << 2; i < units.length; i++) {
      const u = units[i];
      if (u !== 0) fn(i << 4, u === LARGE ? large.get(i << 4)! : u << 4);
    }
    const others = [...large].filter(([offset]) => !this.#dense(offset));
    for (const [offset, bytes] of others.sort((x, y) => x[0] - y[0])) fn(offset, bytes);
  }

  /** The entries `[offset, bytes]`, in address order. */
  [Symbol.iterator](): IterableIterator<[number, number]> {
    const out: [number, number][] = [];
    this.forEach((offset, bytes) => out.push([offset, bytes]));
    return out[Symbol.iterator]();
  }

  /** The offsets, in address order. */
  keys(): IterableIterator<number> {
    const out: number[] = [];
    this.forEach((offset) => out.push(offset));
    return out[Symbol.iterator]();
  }

  /** The sizes, in the offsets' order. */
  values(): IterableIterator<number> {
    const out: number[] = [];
    this.forEach((_, bytes) => out.push(bytes));
    return out[Symbol.iterator]();
  }

  /** Whether `offset` is one the dense part holds: 16-aligned, positive, below the limit. */
  #dense(offset: number): boolean {
    return (offset & 15) === 0 && offset > 0 && (offset >> 4) < this.#units.length &&
      offset === (offset | 0);
  }
}
