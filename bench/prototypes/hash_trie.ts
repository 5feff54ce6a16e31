// Copyright the shmap authors. MIT license.
/**
 * PROTOTYPE, a measurement subject, not library code: a hash-trie map of number keys to number
 * values in one SharedArrayBuffer, shaped as Go 1.24's sync.Map (internal/sync.HashTrieMap) and
 * bench/go/hash_trie.go are, to measure in JavaScript what issue 11's churn shapes would gain from
 * the trie over SyncMap's read/dirty design (bench/prototypes/hash_trie_bench.ts). It is run by
 * one thread, but every step a second thread would need is here and pays its real cost: each
 * node's lock word is taken with `Atomics.compareExchange` and released with `Atomics.store`, and
 * every publication of a child word, an overflow link or a value word is an `Atomics.store` (or a
 * compare-and-swap). What it leaves out, and the real thing would need: a participant's entry per
 * call for QSBR (SyncMap's `enterRead`, two compares), lock words with owners and waits (futex)
 * instead of a spin, and a shared allocator with per-thread caches instead of the JavaScript free
 * lists below. See "Not done" at the end of this comment.
 *
 * Shape (as bench/go/hash_trie.go's header comment describes it). A tree of indirect nodes of 16
 * children each: the child of a node at depth d is chosen by the 4 bits of the key's 32-bit hash
 * at bit offset 28 - 4d (the top 4 bits pick the root's child), so there are at most 8 levels. A
 * child word holds 0 (nil), an indirect node (its word index, even) or an entry (its word index
 * with the low bit set): a leaf holding one key and its value, and, for keys whose full 32-bit
 * hashes are equal, a chain of further entries through its overflow word. The hash is the
 * library's own, HalfSipHash-1-3 of the key's two float64 words (SameValueZero: -0 is 0, every
 * NaN one NaN, as `keyNumberWords` makes them) under a random 64-bit key; 32 bits, so with many
 * keys equal full hashes do happen and the chains are needed (Go's is 64 bits).
 *
 * Concurrency, as it would be with several threads:
 * - Lookups never lock and use no atomic operation: they read the root word and the child words
 *   down to nil or an entry, then compare keys along the entry's chain (plain reads, as SyncMap's
 *   lookups read published words plainly: docs/design.md, "The plain reads of a lookup").
 * - A child word of a node is written only while the node's lock is held. A writer walks as a
 *   lookup does to the lowest node on the key's path, locks it, then checks that the node is not
 *   dead (pruned) and that the slot still holds what the walk read; if not, it unlocks and walks
 *   again.
 * - Inserting a key whose slot holds an entry of another hash expands the slot: new nodes, built
 *   privately until the two hashes' digits differ, published with one `Atomics.store` of the
 *   child word. A key whose full hash equals the slot's entry's is prepended to its chain (a new
 *   head entry whose overflow is the old head, published the same way).
 * - Deleting the last entry of a slot stores 0 in it; a node other than the root left with 16 nil
 *   children is pruned: with its own lock held, the deleter locks the parent (child before
 *   parent: the only place two locks are held, so no cycle), marks the node dead, clears the
 *   parent's child word, unlocks the node and repeats one level up.
 * - Overwrites, two variants ({@linkcode HashTrieOptions.overwrite}):
 *   - "cow" (Go 1.24's): entries are immutable once published. A store of a present key locks
 *     the slot's node, builds a new entry (and copies of the entries before it in its chain),
 *     publishes it with one store and frees the old ones: an allocation, a free and three
 *     atomics (lock, publish, unlock) an overwrite.
 *   - "inplace": an entry's value is one int32 word, an immediate for the integers 0 to
 *     2^30 - 2 (`((v + 1) << 1) | 1`, SyncMap's encoding) or the word index of an immutable
 *     float64 record (even), or 0 for an entry being deleted (a tombstone). A store of a present
 *     key swaps the value word with one `Atomics.compareExchange`, without the lock (Go 1.19's
 *     entry.tryStore, which SyncMap does too); a delete, under the node's lock, first swaps the
 *     word to 0 with `Atomics.exchange` (so a racing lock-free store fails and takes the locked
 *     path), then unlinks the entry. A chain is unlinked in place (the predecessor's overflow word
 *     stored atomically) rather than copied, so an entry, once published, is never replaced
 *     while its key is present: what lets a handle memo key -> entry.
 * - Memos ({@linkcode HashTrieOptions.memo}, "inplace" only): a per-handle direct-mapped memo of
 *   key words -> entry, like SyncMap's entry memo (src/maps/_entry_memo.ts), and the library's own
 *   per-thread memo of keyed hashes (src/_engine/hash_memo.ts, which SyncMap uses). The trie has
 *   no read-table serial to key a memo by, so a slot (lo, hi, e, inc) names the entry and the
 *   incarnation it held the key in: each entry has an incarnation word, bumped whenever its block
 *   is freed, and entry blocks are type-stable (the free lists are per size, so an entry's block
 *   is only ever reused as an entry, and the word stays where it is). A lookup by the memo reads
 *   the incarnation, the value word, and the incarnation again (a seqlock's read): both equal to
 *   the slot's, and the value word not the tombstone, the word is the live entry's, and stays
 *   safe to compare-and-swap for the rest of the call (a deleter tombstones before it unlinks,
 *   and under QSBR an entry live during the call is not freed before it ends). Anything else: a
 *   walk. No absent key is remembered (an insert would have to reach every handle's memo).
 * - QSBR stand-in ({@linkcode HashTrieOptions.qsbr}): what SyncMap's participant costs a call on
 *   its fast path (src/_engine/reclaim.ts `enterRead` for a lookup, `enter` for a write: a plain
 *   read of a census word and of the participant's claim word, each against a token, and a
 *   countdown), with a quiescent point every 64 calls that announces with an `Atomics.load` and
 *   an `Atomics.store`. The point frees nothing here (blocks are freed at once); the rest of
 *   what SyncMap's writes do for a thread's death (the hand word, the journal) is not here.
 *
 * Memory: an Int32Array and a Float64Array over one fixed-size SharedArrayBuffer (64 MiB by
 * default, not growable). Blocks are 8-byte aligned: nodes of 20 words (lock, dead, parent, pad,
 * 16 children), entries of 6 (key lo, key hi, hash, overflow, value: a float64 for "cow", the
 * value word and a pad for "inplace"), float64 records of 2. A bump allocator and one free list
 * per size, their heads kept in this object (single thread). Freed blocks are reused at once:
 * with one thread nothing can still be reading them. The real thing would retire them through
 * QSBR (src/_engine/reclaim.ts) and free them only once every participant has passed a
 * quiescent point, as SyncMap does for its tables and records.
 *
 * Not done (a prototype): the QSBR participant's entry on every call, owner-encoded lock words,
 * waiting on a contended lock (it spins), recovery of a thread dead in a step, a shared
 * allocator, growth of the buffer, keys and values other than numbers, `size` (Go's trie keeps
 * none; {@linkcode HashTrie.count} walks), and a `range` that survives callbacks deleting keys
 * other than the one they are given (with QSBR it would; here a freed block may be reused before
 * the walk leaves it).
 *
 * @module
 */

import { hashWords } from "../../src/_engine/hash.ts";
import { HashMemo } from "../../src/_engine/hash_memo.ts";
import { keyNumberWords, numberOf } from "../../src/_engine/slots.ts";

/** Words reserved at the start of the buffer: the root word and padding. */
const HEADER_WORDS = 16;
/** The root node's word index (never changes: the root is never pruned; read plainly). */
const H_ROOT = 0;

// An indirect node: 20 words.
const N_LOCK = 0;
const N_DEAD = 1;
const N_PARENT = 2;
const N_CHILD = 4;
const NODE_WORDS = 20;

// An entry: 6 words.
const E_LO = 0;
const E_HI = 1;
const E_HASH = 2;
const E_OVF = 3;
/** "cow": the value's float64 (words 4 and 5); "inplace": the value word. */
const E_VAL = 4;
/** "inplace": the entry's incarnation, bumped each time the block is freed (the memo's check). */
const E_INC = 5;
const ENTRY_WORDS = 6;

/** A float64 record ("inplace" values that are not immediates): 2 words. */
const RECORD_WORDS = 2;

/** The root's digit: bits 28..31. */
const TOP_SHIFT = 28;

/** Slots of the entry memo: 4,096 of four words (lo, hi, entry, incarnation), 64 KB. */
const MEMO_SLOTS = 4096;
const MEMO_SHIFT = 32 - Math.log2(MEMO_SLOTS);
/** 2^32 over the golden ratio, odd: the memo's multiplicative hash (hash_memo.ts's). */
const GOLDEN = 0x9e3779b1 | 0;
const NO_MEMO = new Int32Array(0);

/** The largest immediate value: SyncMap's range, 0 to 2^30 - 2. */
const MAX_IMMEDIATE = 0x3ffffffe;

/** The options of a {@linkcode HashTrie}. */
export interface HashTrieOptions {
  /** How a store of a present key writes its value: "cow" (default) or "inplace". */
  overwrite?: "cow" | "inplace";
  /** The per-handle entry memo and the library's hash memo ("inplace" only). Default false. */
  memo?: boolean;
  /** The buffer's size in bytes. Default 64 MiB. */
  bytes?: number;
  /** The QSBR stand-in on every call (see the module documentation). Default false. */
  qsbr?: boolean;
  /**
   * For the self-check: hashes are ANDed with this, to force equal full hashes (chains) and
   * deep expansions. Default -1 (all 32 bits).
   */
  hashMask?: number;
}

/** The allocation counts of a trie, for the self-check's leak test. */
export interface TrieCensus {
  nodes: number;
  entries: number;
  records: number;
}

/** See the module documentation. */
export class HashTrie {
  readonly buffer: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  readonly k0: number;
  readonly k1: number;
  readonly inPlace: boolean;
  readonly mask: number;
  /** The library's hash memo, or null (plain hashWords). */
  readonly hashMemo: HashMemo | null;
  /** The entry memo's slots, or {@linkcode NO_MEMO}. */
  readonly memo: Int32Array;
  /** The QSBR stand-in, or null. */
  readonly qsbr: QsbrStandIn | null;

  // The allocator (single thread: its state lives here, not in the buffer).
  private top: number;
  private freeNodes = 0;
  private freeEntries = 0;
  private freeRecords = 0;
  /** Blocks allocated and not freed, by size: for the self-check. */
  readonly live: TrieCensus = { nodes: 0, entries: 0, records: 0 };

  // What the last walk found: the lowest node on the key's path, its digit's shift, and the
  // child word read there (0 or an entry, tagged).
  private wn = 0;
  private wshift = 0;
  private wc = 0;

  constructor(options: HashTrieOptions = {}) {
    const bytes = options.bytes ?? 64 * 1024 * 1024;
    this.buffer = new SharedArrayBuffer(bytes);
    this.i32 = new Int32Array(this.buffer);
    this.f64 = new Float64Array(this.buffer);
    const seed = crypto.getRandomValues(new Int32Array(2));
    this.k0 = seed[0];
    this.k1 = seed[1];
    this.inPlace = options.overwrite === "inplace";
    if (options.memo === true && !this.inPlace) {
      throw new Error('HashTrie: memo needs overwrite: "inplace"');
    }
    this.mask = options.hashMask ?? -1;
    this.hashMemo = options.memo === true ? new HashMemo(this.k0, this.k1) : null;
    if (options.memo === true) {
      // Every slot (-1, -1): a NaN that keyNumberWords never makes, so no key matches it.
      this.memo = new Int32Array(4 * MEMO_SLOTS).fill(-1);
    } else {
      this.memo = NO_MEMO;
    }
    this.qsbr = options.qsbr === true ? new QsbrStandIn() : null;
    this.top = HEADER_WORDS;
    const root = this.newNode(0);
    Atomics.store(this.i32, H_ROOT, root);
  }

  // -------------------------------------------------------------------------------------------
  // Lookups (no lock, no atomic operation).

  /** The value of `key`, or undefined. */
  load(key: number): number | undefined {
    if (this.qsbr !== null) this.qsbr.enterRead();
    const w = keyNumberWords(key);
    const lo = w[0];
    const hi = w[1];
    const i32 = this.i32;
    const mm = this.memo;
    if (mm.length !== 0) {
      const s = memoSlot(lo, hi);
      if (mm[s] === lo && mm[s + 1] === hi) {
        // The entry still at the incarnation it held the key in, with a value, and still at
        // it after the value was read (a seqlock's read: it was not freed meanwhile).
        const e = mm[s + 2];
        const inc = mm[s + 3];
        if (i32[e + E_INC] === inc) {
          const p = i32[e + E_VAL];
          if (p !== 0 && i32[e + E_INC] === inc) {
            return (p & 1) !== 0 ? (p >> 1) - 1 : this.f64[p >> 1];
          }
        }
      }
    }
    const e = this.find(lo, hi, this.hashOf(lo, hi));
    if (e === 0) return undefined;
    if (!this.inPlace) return this.f64[(e + E_VAL) >> 1];
    const p = i32[e + E_VAL];
    if (p === 0) return undefined;
    if (mm.length !== 0) remember(mm, i32, lo, hi, e);
    return (p & 1) !== 0 ? (p >> 1) - 1 : this.f64[p >> 1];
  }

  /** Whether `key` has a value. */
  has(key: number): boolean {
    return this.load(key) !== undefined;
  }

  /** The keyed hash of key words (lo, hi). */
  private hashOf(lo: number, hi: number): number {
    const hm = this.hashMemo;
    return (hm === null ? hashWords(lo, hi, this.k0, this.k1) : hm.hash(lo, hi)) & this.mask;
  }

  /** The entry of key words (lo, hi) whose hash is `h`, or 0. */
  private find(lo: number, hi: number, h: number): number {
    const i32 = this.i32;
    let n = i32[H_ROOT];
    let shift = TOP_SHIFT;
    for (;;) {
      const c = i32[n + N_CHILD + ((h >>> shift) & 15)];
      if ((c & 1) === 0) {
        if (c === 0) return 0;
        n = c;
        shift -= 4;
        continue;
      }
      return chainFind(i32, c ^ 1, lo, hi, h);
    }
  }

  /** The entry {@linkcode memoValue} found. */
  private memoE = 0;

  /**
   * The value word of key words (lo, hi) by the memo (its entry left in `memoE`), or 0 when the
   * memo cannot tell. The value word is read between two reads of the entry's incarnation, both
   * the one the memo remembered: no free came between them, so the word is the live entry's,
   * and an entry live inside this call's read section is not freed before the call ends (QSBR):
   * a compare-and-swap of the word is as safe as one on an entry a walk found.
   */
  private memoValue(lo: number, hi: number): number {
    const mm = this.memo;
    const s = memoSlot(lo, hi);
    if (mm[s] !== lo || mm[s + 1] !== hi) return 0;
    const e = mm[s + 2];
    const inc = mm[s + 3];
    const i32 = this.i32;
    if (i32[e + E_INC] !== inc) return 0;
    const p = i32[e + E_VAL];
    if (i32[e + E_INC] !== inc) return 0;
    this.memoE = e;
    return p;
  }

  /**
   * Walks to the lowest node on hash `h`'s path: leaves it in `wn`, its digit's shift in
   * `wshift` and the child word read there (0 or a tagged entry) in `wc`.
   */
  private walk(h: number): void {
    const i32 = this.i32;
    let n = i32[H_ROOT];
    let shift = TOP_SHIFT;
    let c: number;
    for (;;) {
      c = i32[n + N_CHILD + ((h >>> shift) & 15)];
      if (c === 0 || (c & 1) !== 0) break;
      n = c;
      shift -= 4;
    }
    this.wn = n;
    this.wshift = shift;
    this.wc = c;
  }

  /**
   * Locks the node of the last walk and checks it is alive and its slot for `h` still holds
   * what the walk read. False (unlocked again) if not: walk again.
   */
  private lockWalked(h: number): boolean {
    const i32 = this.i32;
    const n = this.wn;
    lock(i32, n);
    if (i32[n + N_DEAD] === 0 && i32[n + N_CHILD + ((h >>> this.wshift) & 15)] === this.wc) {
      return true;
    }
    unlock(i32, n);
    return false;
  }

  // -------------------------------------------------------------------------------------------
  // Writes.

  /** Stores `value` for `key`. */
  store(key: number, value: number): void {
    if (this.qsbr !== null) this.qsbr.enter();
    const w = keyNumberWords(key);
    const lo = w[0];
    const hi = w[1];
    const i32 = this.i32;
    if (this.memo.length !== 0) {
      const p = this.memoValue(lo, hi);
      if (p !== 0) {
        const nv = this.encode(value);
        if (Atomics.compareExchange(i32, this.memoE + E_VAL, p, nv) === p) {
          if ((p & 1) === 0) this.freeRecord(p); // the real thing: retired through QSBR
          return;
        }
        if ((nv & 1) === 0) this.freeRecord(nv); // raced: the walk below decides
      }
    }
    const h = this.hashOf(lo, hi);
    for (;;) {
      this.walk(h);
      const c = this.wc;
      const e = c === 0 ? 0 : chainFind(i32, c ^ 1, lo, hi, h);
      // "inplace": a present key's value word swapped without the lock.
      if (e !== 0 && this.inPlace && this.casValue(e, value)) {
        if (this.memo.length !== 0) remember(this.memo, i32, lo, hi, e);
        return;
      }
      if (!this.lockWalked(h)) continue;
      const n = this.wn;
      // Under the lock the slot holds the chain the walk read: "cow" chains are immutable, so e
      // stands; an "inplace" chain may have lost an entry after its head (unlinked in place by
      // a delete that beat the lock-free store above), so the key is looked for again.
      const f = this.inPlace && c !== 0 ? chainFind(i32, c ^ 1, lo, hi, h) : e;
      if (f !== 0) {
        if (this.inPlace) this.casValue(f, value); // cannot fail: deletes hold this lock
        else this.replace(n, this.wshift, c ^ 1, f, value);
      } else {
        const ne = this.insert(n, this.wshift, c, lo, hi, h, value);
        if (this.memo.length !== 0) remember(this.memo, i32, lo, hi, ne);
      }
      unlock(i32, n);
      return;
    }
  }

  /** Go's LoadOrStore: the value present and true, or `value` (stored) and false. */
  loadOrStore(key: number, value: number): [number, boolean] {
    if (this.qsbr !== null) this.qsbr.enter();
    const w = keyNumberWords(key);
    const lo = w[0];
    const hi = w[1];
    const i32 = this.i32;
    const mm = this.memo;
    if (mm.length !== 0) {
      const p = this.memoValue(lo, hi);
      if (p !== 0) return [(p & 1) !== 0 ? (p >> 1) - 1 : this.f64[p >> 1], true];
    }
    const h = this.hashOf(lo, hi);
    for (;;) {
      this.walk(h);
      const c = this.wc;
      if (c !== 0) {
        const e = chainFind(i32, c ^ 1, lo, hi, h);
        if (e !== 0) {
          if (!this.inPlace) return [this.f64[(e + E_VAL) >> 1], true];
          const p = i32[e + E_VAL];
          if (p !== 0) {
            if (mm.length !== 0) remember(mm, i32, lo, hi, e);
            return [(p & 1) !== 0 ? (p >> 1) - 1 : this.f64[p >> 1], true];
          }
          // Being deleted: the locked path waits for the deleter, then walks again.
        }
      }
      if (!this.lockWalked(h)) continue;
      // The slot is as the walk read it, so the key is still absent (or tombstoned, which
      // the slot check rules out: a delete unlinks under this lock).
      const n = this.wn;
      if (c !== 0 && chainFind(i32, c ^ 1, lo, hi, h) !== 0) {
        unlock(i32, n);
        continue;
      }
      const ne = this.insert(n, this.wshift, c, lo, hi, h, value);
      if (mm.length !== 0) remember(mm, i32, lo, hi, ne);
      unlock(i32, n);
      return [value, false];
    }
  }

  /** Go's LoadAndDelete: the value deleted and true, or undefined and false. */
  loadAndDelete(key: number): [number | undefined, boolean] {
    const v = this.remove(key);
    return this.found ? [v, true] : [undefined, false];
  }

  /** Deletes `key`; whether it was present. */
  delete(key: number): boolean {
    this.remove(key);
    return this.found;
  }

  /** Whether the last {@linkcode remove} found its key. */
  private found = false;

  /** Deletes `key`: its value (sets {@linkcode found}). A miss takes no lock. */
  private remove(key: number): number {
    if (this.qsbr !== null) this.qsbr.enter();
    const w = keyNumberWords(key);
    const lo = w[0];
    const hi = w[1];
    const i32 = this.i32;
    const h = this.hashOf(lo, hi);
    for (;;) {
      this.walk(h);
      const c = this.wc;
      if (c === 0 || chainFind(i32, c ^ 1, lo, hi, h) === 0) {
        this.found = false;
        return 0;
      }
      if (!this.lockWalked(h)) continue;
      // Found again under the lock: an "inplace" chain may have lost an entry after its head.
      const e = chainFind(i32, c ^ 1, lo, hi, h);
      const n = this.wn;
      if (e === 0) {
        unlock(i32, n);
        this.found = false;
        return 0;
      }
      const shift = this.wshift;
      const slot = n + N_CHILD + ((h >>> shift) & 15);
      const head = c ^ 1;
      let v: number;
      if (this.inPlace) {
        // The tombstone first: a lock-free store racing with this one fails and locks.
        const p = Atomics.exchange(i32, e + E_VAL, 0);
        v = (p & 1) !== 0 ? (p >> 1) - 1 : this.f64[p >> 1];
        if ((p & 1) === 0) this.freeRecord(p);
        const next = i32[e + E_OVF];
        if (head === e) {
          Atomics.store(i32, slot, next === 0 ? 0 : next | 1);
        } else {
          let pred = head;
          while (i32[pred + E_OVF] !== e) pred = i32[pred + E_OVF];
          Atomics.store(i32, pred + E_OVF, next);
        }
        this.freeEntry(e);
      } else {
        v = this.f64[(e + E_VAL) >> 1];
        const nh = this.replacing(head, e, i32[e + E_OVF]);
        Atomics.store(i32, slot, nh === 0 ? 0 : nh | 1);
        this.freeChainPrefix(head, e);
        this.freeEntry(e);
      }
      this.found = true;
      if (i32[slot] === 0) this.prune(n, shift, h);
      else unlock(i32, n);
      return v;
    }
  }

  /**
   * Swaps entry `e`'s value word for `value`'s ("inplace"), unless it is the tombstone (false:
   * the entry is being deleted).
   */
  private casValue(e: number, value: number): boolean {
    const i32 = this.i32;
    const nv = this.encode(value);
    for (;;) {
      const p = i32[e + E_VAL];
      if (p === 0) {
        if ((nv & 1) === 0) this.freeRecord(nv);
        return false;
      }
      if (Atomics.compareExchange(i32, e + E_VAL, p, nv) === p) {
        if ((p & 1) === 0) this.freeRecord(p); // the real thing: retired through QSBR
        return true;
      }
    }
  }

  /** The value word of `value` ("inplace"): an immediate, or a new record's word index. */
  private encode(value: number): number {
    if (
      (value | 0) === value && value >= 0 && value <= MAX_IMMEDIATE &&
      (value !== 0 || 1 / value > 0)
    ) {
      return ((value + 1) << 1) | 1;
    }
    const r = this.allocRecord();
    this.f64[r >> 1] = value;
    return r;
  }

  /**
   * "cow": replaces entry `e` of the chain at `head` (in node `n`'s slot at `shift`, locked) with
   * a new entry holding `value`, copying the entries before it; frees the ones replaced.
   */
  private replace(n: number, shift: number, head: number, e: number, value: number): void {
    const i32 = this.i32;
    const ne = this.allocEntry();
    i32[ne + E_LO] = i32[e + E_LO];
    i32[ne + E_HI] = i32[e + E_HI];
    i32[ne + E_HASH] = i32[e + E_HASH];
    i32[ne + E_OVF] = i32[e + E_OVF];
    this.f64[(ne + E_VAL) >> 1] = value;
    const nh = head === e ? ne : this.replacing(head, e, ne);
    Atomics.store(i32, n + N_CHILD + ((i32[e + E_HASH] >>> shift) & 15), nh | 1);
    this.freeChainPrefix(head, e);
    this.freeEntry(e);
  }

  /**
   * "cow": a copy of the chain at `head` up to `target` (excluded), followed by `repl` (an entry,
   * or 0: the entries after target, or none); the entries after target are shared. Built
   * privately: published by the caller's store.
   */
  private replacing(head: number, target: number, repl: number): number {
    if (head === target) return repl;
    const i32 = this.i32;
    const f64 = this.f64;
    const first = this.allocEntry();
    let copy = first;
    let e = head;
    for (;;) {
      i32[copy + E_LO] = i32[e + E_LO];
      i32[copy + E_HI] = i32[e + E_HI];
      i32[copy + E_HASH] = i32[e + E_HASH];
      f64[(copy + E_VAL) >> 1] = f64[(e + E_VAL) >> 1];
      e = i32[e + E_OVF];
      if (e === target) {
        i32[copy + E_OVF] = repl;
        return first;
      }
      const next = this.allocEntry();
      i32[copy + E_OVF] = next;
      copy = next;
    }
  }

  /** Frees the entries of the chain at `head` before `target` (copied by replacing). */
  private freeChainPrefix(head: number, target: number): void {
    let e = head;
    while (e !== target) {
      const next = this.i32[e + E_OVF];
      this.freeEntry(e);
      e = next;
    }
  }

  /**
   * Inserts key words (lo, hi) of hash `h` with `value` at node `n` (locked), whose slot at
   * `shift` holds `c` (0 or a tagged entry of another key). Returns the new entry.
   */
  private insert(
    n: number,
    shift: number,
    c: number,
    lo: number,
    hi: number,
    h: number,
    value: number,
  ): number {
    const i32 = this.i32;
    const e = this.allocEntry();
    i32[e + E_LO] = lo;
    i32[e + E_HI] = hi;
    i32[e + E_HASH] = h;
    i32[e + E_OVF] = 0;
    if (this.inPlace) {
      i32[e + E_VAL] = this.encode(value); // E_INC stays: bumped as the block was freed
    } else {
      this.f64[(e + E_VAL) >> 1] = value;
    }
    const slot = n + N_CHILD + ((h >>> shift) & 15);
    if (c === 0) {
      Atomics.store(i32, slot, e | 1);
      return e;
    }
    const old = c ^ 1;
    const oh = i32[old + E_HASH];
    if (oh === h) {
      i32[e + E_OVF] = old; // a new head for the chain of equal hashes
      Atomics.store(i32, slot, e | 1);
      return e;
    }
    // Expansion: nodes built privately down to the first digit where the hashes differ.
    const first = this.newNode(n);
    let cur = first;
    let s = shift - 4;
    while (((h >>> s) & 15) === ((oh >>> s) & 15)) {
      const next = this.newNode(cur);
      i32[cur + N_CHILD + ((h >>> s) & 15)] = next;
      cur = next;
      s -= 4;
    }
    i32[cur + N_CHILD + ((h >>> s) & 15)] = e | 1;
    i32[cur + N_CHILD + ((oh >>> s) & 15)] = c;
    Atomics.store(i32, slot, first);
    return e;
  }

  /**
   * Node `n` (locked; its digit's shift `shift`) just had its slot on hash `h`'s path cleared:
   * prunes it and its ancestors while they are empty (not the root), then unlocks.
   */
  private prune(n: number, shift: number, h: number): void {
    const i32 = this.i32;
    const root = i32[H_ROOT];
    while (n !== root && isEmpty(i32, n)) {
      const parent = i32[n + N_PARENT];
      const pshift = shift + 4;
      lock(i32, parent); // child before parent
      i32[n + N_DEAD] = 1; // under both locks; read by lockers only
      Atomics.store(i32, parent + N_CHILD + ((h >>> pshift) & 15), 0);
      unlock(i32, n);
      this.freeNode(n); // the real thing: retired through QSBR
      n = parent;
      shift = pshift;
    }
    unlock(i32, n);
  }

  // -------------------------------------------------------------------------------------------
  // Iteration.

  /**
   * Calls `f` with each key and value until it returns false. The walk reads every child word
   * once. See the module documentation: `f` may delete only the key it is given.
   */
  range(f: (key: number, value: number) => boolean | void): void {
    if (this.qsbr !== null) this.qsbr.enter();
    this.rangeNode(this.i32[H_ROOT], f);
  }

  private rangeNode(n: number, f: (key: number, value: number) => boolean | void): boolean {
    const i32 = this.i32;
    for (let j = 0; j < 16; j++) {
      const c = i32[n + N_CHILD + j];
      if (c === 0) continue;
      if ((c & 1) === 0) {
        if (!this.rangeNode(c, f)) return false;
        continue;
      }
      let e = c ^ 1;
      while (e !== 0) {
        const next = i32[e + E_OVF]; // before f, which may delete e
        const key = numberOf(i32[e + E_LO], i32[e + E_HI]);
        let value: number;
        if (this.inPlace) {
          const p = i32[e + E_VAL];
          if (p === 0) {
            e = next;
            continue;
          }
          value = (p & 1) !== 0 ? (p >> 1) - 1 : this.f64[p >> 1];
        } else {
          value = this.f64[(e + E_VAL) >> 1];
        }
        if (f(key, value) === false) return false;
        e = next;
      }
    }
    return true;
  }

  /** The number of keys (a walk: Go's trie keeps no count). */
  count(): number {
    let n = 0;
    this.range(() => {
      n++;
    });
    return n;
  }

  // -------------------------------------------------------------------------------------------
  // The allocator: bump, then per-size free lists (single thread; see the module documentation).

  private bump(words: number): number {
    const b = this.top;
    if (b + words > this.i32.length) throw new RangeError("HashTrie: the buffer is full");
    this.top = b + words;
    return b;
  }

  /** A new node (zeroed) whose parent is `parent`. */
  private newNode(parent: number): number {
    let n = this.freeNodes;
    if (n !== 0) this.freeNodes = this.i32[n];
    else n = this.bump(NODE_WORDS);
    this.live.nodes++;
    const i32 = this.i32;
    for (let j = 0; j < NODE_WORDS; j++) i32[n + j] = 0;
    i32[n + N_PARENT] = parent;
    return n;
  }

  private freeNode(n: number): void {
    this.i32[n] = this.freeNodes; // the lock word: the node is gone
    this.freeNodes = n;
    this.live.nodes--;
  }

  private allocEntry(): number {
    const e = this.freeEntries;
    this.live.entries++;
    if (e === 0) return this.bump(ENTRY_WORDS);
    this.freeEntries = this.i32[e + E_OVF];
    return e;
  }

  /**
   * Links a free entry through its overflow word, and bumps its incarnation ("inplace"; an
   * `Atomics.store` in the real thing, before the block could be reused): a memo slot naming the
   * block stops matching.
   */
  private freeEntry(e: number): void {
    if (this.inPlace) this.i32[e + E_INC] = (this.i32[e + E_INC] + 1) | 0;
    this.i32[e + E_OVF] = this.freeEntries;
    this.freeEntries = e;
    this.live.entries--;
  }

  private allocRecord(): number {
    const r = this.freeRecords;
    this.live.records++;
    if (r === 0) return this.bump(RECORD_WORDS);
    this.freeRecords = this.i32[r];
    return r;
  }

  private freeRecord(r: number): void {
    this.i32[r] = this.freeRecords;
    this.freeRecords = r;
    this.live.records--;
  }

  // -------------------------------------------------------------------------------------------
  // For the self-check.

  /**
   * Checks the tree's invariants and returns the blocks it reaches: every lock free, no node
   * dead, every node's parent word its parent, every node but the root with a child, every
   * entry on its hash's path, every chain of one hash and distinct keys, every value word of
   * "inplace" live. Throws on the first violation.
   */
  verify(): TrieCensus {
    const i32 = this.i32;
    const seen: TrieCensus = { nodes: 0, entries: 0, records: 0 };
    const visit = (n: number, parent: number, shift: number, prefix: number) => {
      seen.nodes++;
      if (i32[n + N_LOCK] !== 0) throw new Error(`node ${n} locked`);
      if (i32[n + N_DEAD] !== 0) throw new Error(`node ${n} dead but linked`);
      if (i32[n + N_PARENT] !== parent) throw new Error(`node ${n}: parent word`);
      if (parent !== 0 && isEmpty(i32, n)) throw new Error(`node ${n} empty, not pruned`);
      for (let j = 0; j < 16; j++) {
        const c = i32[n + N_CHILD + j];
        if (c === 0) continue;
        // The hash bits above this level's digit, then the digit j.
        const p = shift === TOP_SHIFT ? j : prefix * 16 + j;
        if ((c & 1) === 0) {
          if (shift === 0) throw new Error(`node ${n}: a node below the last level`);
          visit(c, n, shift - 4, p);
          continue;
        }
        let e = c ^ 1;
        const h = i32[e + E_HASH];
        if (h >>> shift !== p) throw new Error(`entry ${e} off its hash's path`);
        const keys = new Set<string>();
        while (e !== 0) {
          seen.entries++;
          if (i32[e + E_HASH] !== h) throw new Error(`entry ${e}: chain of mixed hashes`);
          const k = `${i32[e + E_LO]},${i32[e + E_HI]}`;
          if (keys.has(k)) throw new Error(`entry ${e}: key twice in a chain`);
          keys.add(k);
          if (this.inPlace) {
            const v = i32[e + E_VAL];
            if (v === 0) throw new Error(`entry ${e}: tombstone linked`);
            if ((v & 1) === 0) seen.records++;
          }
          e = i32[e + E_OVF];
        }
      }
    };
    visit(i32[H_ROOT], 0, TOP_SHIFT, 0);
    return seen;
  }
}

/** The first word of the entry memo slot of key words (lo, hi). */
function memoSlot(lo: number, hi: number): number {
  return (Math.imul(lo ^ hi, GOLDEN) >>> MEMO_SHIFT) << 2;
}

/** Remembers that entry `e` (of `i32`, at its present incarnation) holds key words (lo, hi). */
function remember(mm: Int32Array, i32: Int32Array, lo: number, hi: number, e: number): void {
  const s = memoSlot(lo, hi);
  mm[s] = lo;
  mm[s + 1] = hi;
  mm[s + 2] = e;
  mm[s + 3] = i32[e + E_INC];
}

/** The entry of key words (lo, hi) in the chain at `e`, whose keys' hash must be `h`; or 0. */
function chainFind(i32: Int32Array, e: number, lo: number, hi: number, h: number): number {
  if (i32[e + E_HASH] !== h) return 0; // the whole chain shares one hash
  do {
    if (i32[e + E_LO] === lo && i32[e + E_HI] === hi) return e;
    e = i32[e + E_OVF];
  } while (e !== 0);
  return 0;
}

function isEmpty(i32: Int32Array, n: number): boolean {
  let or = 0;
  for (let j = N_CHILD; j < N_CHILD + 16; j++) or |= i32[n + j];
  return or === 0;
}

/** Takes node `n`'s lock: a CAS, spinning while another holds it (the real thing would wait). */
function lock(i32: Int32Array, n: number): void {
  while (Atomics.compareExchange(i32, n + N_LOCK, 0, 1) !== 0) {
    // Contended: never, with one thread.
  }
}

function unlock(i32: Int32Array, n: number): void {
  Atomics.store(i32, n + N_LOCK, 0);
}

/**
 * What SyncMap's QSBR participant costs a call on its fast path (reclaim.ts `enterRead` and
 * `enter`, census.ts `fast`): the words are in a SharedArrayBuffer of their own, as the seat
 * lines and the census head are in the arena.
 */
class QsbrStandIn {
  /** Word 0: the census count; word 16: the claim word of this seat; word 32: its announcement. */
  readonly words: Int32Array = new Int32Array(new SharedArrayBuffer(256));
  private seen = 0;
  private token = 1;
  private readToken = 1;
  private countdown = 64;

  constructor() {
    Atomics.store(this.words, 16, 1);
  }

  enterRead(): void {
    if (this.words[16] !== this.readToken) throw new Error("released");
    if (--this.countdown <= 0) this.quiesce();
  }

  enter(): void {
    if (this.words[0] !== this.seen) throw new Error("census moved");
    if (this.words[16] !== this.token) throw new Error("released");
    if (--this.countdown <= 0) this.quiesce();
  }

  /** A quiescent point: announce the epoch seen (a load of it, a store of the announcement). */
  private quiesce(): void {
    this.countdown = 64;
    Atomics.store(this.words, 32, Atomics.load(this.words, 48) + 1);
  }
}
