/**
 * Internal. A map handle's cache of the string keys it has hashed: each string's keyed hash and
 * its units packed two to a word, as slots.ts `setKeyString` computes them (hash.ts
 * `hashStringWords`).
 *
 * Hashing a key reads every unit of it through `charCodeAt`, which is most of what a lookup of
 * a short string key costs (about 30 ns of a 16-unit key's on Deno). The cache finds a string
 * again through a JavaScript `Map`, whose lookups use the hash the engine keeps inside every
 * string, so a key seen before costs one such lookup: the probe then reads the entry's words in
 * place (an entry's units and hash are never written once made, so a probe may keep one). Four
 * more words follow the hash, for the map handle's entry memo (maps/_entry_memo.ts): the
 * generation, the entry (a SyncMap's) or the key slot (a GoMap's) its lookup of the string
 * found, and a GoMap's number value in two words; they are the memo's, never read as the key's.
 * What it holds is a pure function of the string and the map's hash key, so a stale or evicted
 * entry can cost time, never a wrong answer; the hash key is checked on every lookup all the
 * same, so the cache can never answer for another map's key.
 *
 * Bounds: {@linkcode CAPACITY} strings of at most {@linkcode MAX_UNITS} units, each entry a small
 * `Int32Array` of its own, and {@linkcode WORD_BUDGET} words in all (with the entries' own
 * overhead, about 300 KB at most). The units bound is generous on purpose: the cache's lookup
 * costs about the same for a string of any length (the engine hashes a string once and keeps
 * its hash inside it), while hashing a key costs about 3.5 ns per two units on Deno, so a
 * UUID-sized key (36 units) costs three to five times as much uncached. Full (by count or by
 * words), it keeps what it holds and adds nothing,
 * so a working set somewhat larger than the cache still hits on the part it holds (starting over
 * would make a cycle of more than CAPACITY strings miss on every lookup, each miss also paying an
 * insert). Full, it watches its hit rate: when fewer than half of a window of {@linkcode WINDOW}
 * lookups hit, it empties itself, so that a working set that moved on is learned afresh, and
 * turns itself off for {@linkcode OFF_CALLS} calls (each then costs a decrement), then tries
 * again.
 *
 * Each instance belongs to one probe of one thread (probes are never shared, see slots.ts
 * Probe), so nothing here is shared memory.
 *
 * @module
 */

/** Strings cached at most; a full cache adds no more until a poor window empties it. */
export const CAPACITY = 1024;
/** The longest string cached, in UTF-16 units. */
export const MAX_UNITS = 256;
/**
 * Words of all entries together at most (192 KiB): 1,024 keys of 64 units fit, and long keys
 * cannot make the cache much larger than short ones do.
 */
export const WORD_BUDGET = 49152;
/** Lookups per hit-rate window. */
export const WINDOW = 4096;
/** Calls the cache stays off after a window with fewer hits than misses. */
export const OFF_CALLS = 262144;

/**
 * Words after an entry's hash that belong to the entry memo: generation, entry or slot, and a
 * GoMap's number value (low word, high word) with the version of SEQ it was read at.
 */
export const MEMO_WORDS = 5;

/** The cache of one probe; see the module documentation. */
export class KeyHashCache {
  /**
   * Each string's entry: its units two to a word, then its hash, then the entry memo's
   * words ({@linkcode MEMO_WORDS}, made 0: no generation).
   */
  #index = new Map<string, Int32Array>();
  /** Words of all entries held. */
  #words = 0;
  /** Whether an add was refused for want of room since the cache was last emptied. */
  #full = false;
  #k0 = 0;
  #k1 = 0;
  /** Lookups left in this hit-rate window. */
  #left = WINDOW;
  /** Lookups of this window that missed. */
  #misses = 0;
  #off = 0;
  /** The string of the last lookup, when it missed and nothing was looked up since. */
  #missed: string | null = null;

  /** Whether the cache is in use (false while its hit rate has switched it off). */
  get on(): boolean {
    return this.#off === 0;
  }

  /** Strings held now. */
  get size(): number {
    return this.#index.size;
  }

  /** Words the entries held now take, memo words included. */
  get words(): number {
    return this.#words;
  }

  /**
   * The entry of string `s` hashed under (k0, k1), or null when there is none (or the cache is
   * off): `s`'s units two to a word (as slots.ts `setKeyString` packs them), then its hash. The
   * caller reads it and never writes it. `s` must have at most {@linkcode MAX_UNITS} units.
   */
  find(s: string, k0: number, k1: number): Int32Array | null {
    if (this.#off !== 0) {
      this.#off = (this.#off - 1) | 0; // not --: see hash_memo.ts #hits
      return null;
    }
    // A map's fast path that missed here goes on to the probe's own lookup (slots.ts
    // setKeyString), which asks again: answered from the note, a miss is looked up and counted
    // once.
    const missed = this.#missed;
    if (missed !== null) {
      this.#missed = null;
      if (missed === s) return null;
    }
    const entry = this.#index.get(s);
    if (entry !== undefined && k0 === this.#k0 && k1 === this.#k1) {
      // Only a full cache counts its window: one that is not full learns every string it
      // misses (add), so its hit rate is never judged.
      if (this.#full && (this.#left = (this.#left - 1) | 0) === 0) this.#endWindow();
      return entry;
    }
    this.#missed = s;
    if (this.#full) {
      this.#misses = (this.#misses + 1) | 0;
      if ((this.#left = (this.#left - 1) | 0) === 0) this.#endWindow();
    }
    return null;
  }

  /**
   * Judges the window just ended, which only a full cache counts: the misses of a filling cache
   * are it learning (one insert each, at most CAPACITY of them), and the window starts as it
   * becomes full (see add).
   */
  #endWindow(): void {
    if (2 * this.#misses > WINDOW && this.#full) {
      this.#off = OFF_CALLS;
      this.clear();
    }
    this.#left = WINDOW;
    this.#misses = 0;
  }

  /**
   * Forgets every string, and zeroes every entry's memo words first: an entry a lookup already
   * holds (its probe took it before the entry memo's generation came round, which is when this is
   * called) must not keep words that the generation coming round would make match again.
   */
  clear(): void {
    for (const entry of this.#index.values()) entry.fill(0, entry.length - MEMO_WORDS);
    this.#index.clear();
    this.#words = 0;
    this.#full = false;
    this.#missed = null;
  }

  /**
   * Adds string `s`, hashed to `hash` under (k0, k1), with its units in `words[0, need)`.
   * Does nothing while the cache is off.
   */
  add(s: string, k0: number, k1: number, hash: number, words: Int32Array, need: number): void {
    if (this.#off !== 0) return;
    if (k0 !== this.#k0 || k1 !== this.#k1) {
      this.clear();
      this.#k0 = k0;
      this.#k1 = k1;
    } else if (this.#full) {
      return;
    }
    const size = need + 1 + MEMO_WORDS;
    if (this.#index.size === CAPACITY || this.#words + size > WORD_BUDGET) {
      // Full from now on: the window restarts, so that the misses it judges are a full
      // cache's, not those of its learning.
      this.#full = true;
      this.#left = WINDOW;
      this.#misses = 0;
      return;
    }
    const entry = new Int32Array(size);
    for (let j = 0; j < need; j++) entry[j] = words[j];
    entry[need] = hash;
    this.#index.set(s, entry);
    this.#words += size;
    this.#missed = null;
  }
}
