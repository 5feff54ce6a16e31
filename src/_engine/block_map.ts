/**
 * Internal. {@linkcode BlockMap}: the map from a block's offset to its size that the allocator's
 * walk (heap_verify.ts) and the markings of `verify()` and the sweep build, one entry for every
 * block of the heap.
 *
 * A JavaScript `Map` cost 100 to 200 ns a block, and a sweep walks every block the map reaches
 * with the world stopped: after a worker's death, a SyncMap of a million keys (two million
 * blocks) stopped every other worker for about 2.3 s; and V8's `Map` (Deno, Node) holds at most
 * 2^24 entries, so there a heap of more blocks could not be swept or verified at all. Here a
 * block 16-byte aligned and below the limit given (the heap's top) takes one byte, indexed by
 * its offset / 16: its size in 16-byte units when it has 254 units or fewer (every block of a
 * span: they are 1,008 bytes at most), else 255, with the size in a `Map` beside. The bytes come
 * in pages of {@linkcode PAGE_BYTES} of the heap, made as a block in them is set: a heap of a
 * few large blocks (six values of 128 MiB) costs a page for each, not a byte for every 16 bytes
 * of its span. Anything else (an offset a corrupt word names, a size that is not a positive
 * multiple of 16) goes to the `Map` too, so every offset and size is kept as given, as a `Map`
 * would keep it.
 *
 * @module
 */

import type { Arena } from "./arena.ts";
import * as arena_module from "./arena.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { H_TOP } = arena_module;

/** The size byte of a block whose size is in {@linkcode BlockMap}'s `Map` of large ones. */
const LARGE = 255;
/** Bytes of the heap a page of size bytes covers (a power of two), and the shift for it. */
const PAGE_SHIFT = 16;
const PAGE_BYTES = 1 << PAGE_SHIFT;
/** Size bytes in a page: one for each 16 bytes. */
const PAGE_UNITS = PAGE_BYTES >> 4;

/**
 * A map from block offset to size, compact for the offsets that are 16-byte aligned and below
 * `limit`. Walks in address order: those offsets first, then the others by offset.
 */
export class BlockMap {
  readonly #pages: (Uint8Array | undefined)[];
  readonly #limit: number;
  readonly #large = new Map<number, number>();
  #size = 0;

  /** A map compact for the blocks of `arena`'s heap, up to its top as it stands. */
  static ofHeap(arena: Arena): BlockMap {
    return new BlockMap(arena.i32[H_TOP]);
  }

  /** A map for blocks below offset `limit` (others are kept too, less compactly). */
  constructor(limit: number) {
    this.#limit = Math.max(0, Math.min(limit, 2 ** 31));
    this.#pages = new Array(Math.ceil(this.#limit / PAGE_BYTES)).fill(undefined);
  }

  /** Entries. */
  get size(): number {
    return this.#size;
  }

  /** Whether `offset` has an entry. */
  has(offset: number): boolean {
    return this.get(offset) !== undefined;
  }

  /** The size of `offset`'s block, or undefined. */
  get(offset: number): number | undefined {
    if (!this.#compact(offset)) return this.#large.get(offset);
    const page = this.#pages[offset >>> PAGE_SHIFT];
    if (page === undefined) return undefined;
    const u = page[(offset >>> 4) & (PAGE_UNITS - 1)];
    return u === 0 ? undefined : u === LARGE ? this.#large.get(offset) : u << 4;
  }

  /** Gives `offset` the size `bytes`. */
  set(offset: number, bytes: number): this {
    if (!this.#compact(offset)) {
      if (!this.#large.has(offset)) this.#size++;
      this.#large.set(offset, bytes);
      return this;
    }
    const p = offset >>> PAGE_SHIFT;
    const page = this.#pages[p] ??= new Uint8Array(PAGE_UNITS);
    const i = (offset >>> 4) & (PAGE_UNITS - 1);
    const had = page[i];
    if (had === 0) this.#size++;
    else if (had === LARGE) this.#large.delete(offset);
    // A positive multiple of 16 below LARGE units; a fraction or a negative goes to the Map.
    if (bytes > 0 && bytes < LARGE << 4 && (bytes >> 4) << 4 === bytes) page[i] = bytes >> 4;
    else {
      page[i] = LARGE;
      this.#large.set(offset, bytes);
    }
    return this;
  }

  /**
   * Gives `offset` the size `bytes` if it has none, and returns undefined; else returns the
   * size it has, unchanged: a marking's "own this block, unless something owns it already".
   */
  add(offset: number, bytes: number): number | undefined {
    if (this.#compact(offset)) {
      const page = this.#pages[offset >>> PAGE_SHIFT];
      const u = page === undefined ? 0 : page[(offset >>> 4) & (PAGE_UNITS - 1)];
      if (u !== 0) return u === LARGE ? this.#large.get(offset) : u << 4;
    } else if (this.#large.has(offset)) return this.#large.get(offset);
    this.set(offset, bytes);
    return undefined;
  }

  /** Calls `fn(offset, bytes)` for every entry, in address order: the iterator's walk, faster. */
  forEach(fn: (offset: number, bytes: number) => void): void {
    const large = this.#large;
    for (let p = 0; p < this.#pages.length; p++) {
      const page = this.#pages[p];
      if (page === undefined) continue;
      // Four bytes at a time past the empty stretches (the bytes of blocks' insides are 0).
      const words = new Int32Array(page.buffer);
      const base = p << PAGE_SHIFT;
      for (let w = 0; w < words.length; w++) {
        if (words[w] === 0) continue;
        for (let i = w << 2; i < (w << 2) + 4; i++) {
          const u = page[i];
          if (u === 0) continue;
          const offset = base + (i << 4);
          fn(offset, u === LARGE ? large.get(offset)! : u << 4);
        }
      }
    }
    const others = [...large].filter(([offset]) => !this.#compact(offset));
    for (const [offset, bytes] of others.sort((x, y) => x[0] - y[0])) fn(offset, bytes);
  }

  /** The entries `[offset, bytes]`, in address order. */
  [Symbol.iterator](): IterableIterator<[number, number]> {
    const out: [number, number][] = [];
    this.forEach((offset, bytes) => out.push([offset, bytes]));
    return out[Symbol.iterator]();
  }

  /** Whether `offset` is one the pages hold: 16-aligned, positive, below the limit. */
  #compact(offset: number): boolean {
    return offset > 0 && offset < this.#limit && (offset & 15) === 0 && offset === (offset | 0);
  }
}
