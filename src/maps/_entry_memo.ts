/**
 * Internal. One map handle's memo of where its lookups found keys, or found none, in a table
 * whose keys cannot move while a serial stands. For a SyncMap, the entries found in the read
 * table: the hot path of `load`, `has`, and a `store` of a key the read table holds. For a GoMap,
 * the key slots found while the layout stamp stood still (see "GoMap" below). Number keys are
 * kept in the memo's own slots; string keys in their key hash cache entries, under its
 * generation.
 *
 * A read table never changes once published (it is replaced, never written: Go's `read`), so
 * what a lookup of key words (lo, hi) found in it, an entry's offset or nothing, holds for as
 * long as that table is the read table. Each table is stamped with a serial as it is made the
 * read table (T_SERIAL, from R_SERIAL under the mutex; 64 bits, so no two read tables ever share
 * one, though a freed table's header offset is reused). A lookup that loaded R_READ reads the
 * table's serial; while it is the one the memo was filled under, a slot holding (lo, hi) gives
 * the entry without hashing the key or walking the table. When the serial moves, the memo's
 * generation does, and every slot of an older generation stops matching at once.
 *
 * An entry named by a slot is as safe to read as one the walk would have found: it is the
 * current read table's (the serial says so), loaded after R_READ, so the caller's participant
 * holds it until its next quiescent point, as it would hold one it found by walking.
 *
 * The memo is this handle's own JavaScript memory, never shared: nothing in it comes from
 * another thread's writes but offsets and serials this thread read. A key has a bucket of two
 * slots, picked by an unkeyed multiplicative hash of its words, so keys an attacker makes to
 * share a bucket only evict each other (a miss: the lookup walks the table as if there were no
 * memo). A key is remembered in its bucket's first slot when that slot is free (of an older
 * generation) or holds the key, else in the second; a third key of the bucket takes the second
 * slot, so the first stays put for the generation. It makes its table after {@linkcode WARMUP}
 * lookups, sized for the read table (four slots a key, from {@linkcode MIN_SLOTS} to
 * {@linkcode MAX_SLOTS}), and grows it when a larger read table comes, which starts a generation
 * anyway, or when a window of {@linkcode WINDOW} misses saw fewer than eight hits a miss (more
 * keys looked up than the read table holds: absent ones). A table of MAX_SLOTS switches itself
 * off for {@linkcode OFF_CALLS} lookups when a window saw fewer hits than misses, as the hash memo
 * does (hash_memo.ts): a working set much larger than the memo pays a decrement then.
 *
 * GoMap: no key of a GoMap's table moves, comes or goes while its layout stamp (LAYOUT and
 * LAYOUT_WRAPS, _go_layout.ts) stands: every write that may move one stamps the version of SEQ it
 * publishes, and no version comes again (SEQ is 32 bits, so a version is (SEQ, WRAPS), WRAPS
 * counting the times it came round). The stamp is the memo's serial, so what the memo knows, a
 * key's slot or its absence, outlives writes that only replace values, as a read-mostly cache's
 * are. A number value kept with a slot ({@linkcode HELD}) holds at one version of SEQ only, kept
 * beside it ({@linkcode EntryMemo.heldAt}); at any other version the lookup reads the slot. A
 * lookup that reads the slot's value validates SEQ afterwards, as a walked lookup does.
 *
 * @module
 */

// The hash memo's policy: made after WARMUP lookups, off for OFF_CALLS after a WINDOW of misses
// that saw fewer hits.
import * as hash_memo from "../_engine/hash_memo.ts";
import * as table_layout from "../_engine/table_layout.ts";
import * as sync_layout from "./_sync_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { OFF_CALLS, WARMUP, WINDOW } = hash_memo;
const { T_COUNT } = table_layout;
const { AMENDED, T_SERIAL, TABLE_HEADER_BYTES } = sync_layout;

/**
 * Slots at most: 4,096, for read tables of 1,024 keys or more; of four words (lo, hi, generation,
 * entry), 64 KB, or in a memo that keeps number values of eight (those four, the value's two, the
 * version of SEQ it was read at, and the key slot's mark), 128 KB. Fewer slots a key make more
 * keys share a bucket. One slot a bucket (direct-mapped), 1,024 keys in 4,096 slots missed on a
 * fifth of their lookups, each a walk; two slots a bucket, on about 3% (GoMap.get of 1,024 keys in
 * a cycle, counted: a third key of a bucket and the second take turns in its second slot).
 */
export const MAX_SLOTS = 4096;
/** Slots at least (1 KB). */
export const MIN_SLOTS = 64;
export { WARMUP };
/** 2^32 over the golden ratio, odd (Knuth's multiplicative hashing), as hash_memo.ts. */
const GOLDEN = 0x9e3779b1 | 0;
/** No table: the memo is warming up or switched off. */
const NONE = new Int32Array(0);
/** No number values: a SyncMap's memo, or one not made yet. */
const NO_NUMBERS = new Float64Array(0);
/** Words of a slot of a memo without number values (a SyncMap's). */
const SLOT_WORDS = 4;
/**
 * Words of a slot of a memo that keeps number values (a GoMap's): the value and its version
 * live in the slot's own 32 bytes, so a hit whose value the memo holds reads one cache line.
 * The last word is the byte offset of the key slot's mark ({@linkcode EntryMemo.markAt}), or 0.
 * Kept in an array of their own (two float64 a slot), they were a second line: 128 KB of memo
 * for 1,024 keys, so most hits went past the first-level cache twice.
 */
const NUMBER_SLOT_WORDS = 8;

/**
 * The flag of a GoMap slot's entry word (a key slot's offset, a multiple of 8) that says the
 * memo holds the key's number value: a lookup returns it without reading the map.
 */
export const HELD = 1;
/**
 * The flag of a string key's slot word in its key hash cache entry (GoMap) that says the value
 * is an int32, kept in the memo word after the slot word. Read back as it is: a float64 put
 * together from two words goes through memory, where the 64-bit load waits for the two 32-bit
 * stores (x86 cannot forward them), about 4 ns of a 30 ns `get` on Deno.
 */
export const HELD_INT = 2;
/** Either flag. */
export const HELD_ANY: number = HELD | HELD_INT;

/** Where a GoMap table's last lookup found its key slot's mark (table.ts `Table.foundMark`). */
export interface FoundMarks {
  foundMark(k: number): number;
}

/** {@linkcode EntryMemo.find}'s answer when the memo does not know the key. */
export const MEMO_UNKNOWN = -1;
/**
 * {@linkcode EntryMemo.find}'s answer when it did not ask the memo: the read table's header lies
 * past the views.
 */
export const MEMO_NOT_ASKED = -2;

/** The views {@linkcode EntryMemo.find} reads a read table's serial through (an Arena's). */
export interface MemoViews {
  readonly i32: Int32Array;
  readonly bytes: number;
}

/** What sizes the memo: the table's key count. */
export interface Sized {
  readonly count: number;
}

/** The slots for a read table of `keys` keys: four a key, a power of two, within the bounds. */
export function slotsFor(keys: number): number {
  let n = MIN_SLOTS;
  while (n < MAX_SLOTS && n < 4 * keys) n *= 2;
  return n;
}

/** The memo of one map handle; see the module documentation. */
export class EntryMemo {
  /**
   * {@linkcode SLOT_WORDS} or {@linkcode NUMBER_SLOT_WORDS} words a slot, two slots a bucket;
   * {@linkcode NONE} while warming up or switched off.
   */
  #words: Int32Array = NONE;
  #table: Int32Array | null = null;
  /** Right shift that takes a bucket number from the top bits of the 32-bit product. */
  #shift = 32;
  /** The generation of the slots that match: it stands for the serial (#lo, #hi). */
  #gen = 1;
  #lo = 0;
  #hi = 0;
  /**
   * Hits in the current window, counted `(hits + 1) | 0` (hash_memo.ts says why); a count that
   * wraps past 2^31 makes one window's judgment wrong, which costs a switch-off at most.
   */
  #hits = 0;
  #misses = 0;
  #off = WARMUP;
  /** Whether {@linkcode keepNumber} keeps values (a GoMap's memo). */
  readonly #keepsNumbers: boolean;
  /** Words a slot: {@linkcode SLOT_WORDS}, or {@linkcode NUMBER_SLOT_WORDS} keeping numbers. */
  readonly #stride: number;
  /**
   * The table's words seen as float64, when keeping numbers: a slot at word `j` holds the number
   * value of an entry word with {@linkcode HELD} at float64 `(j >> 1) + 2`, and the version of SEQ
   * it was read at in word `j + 6`.
   */
  #numbers: Float64Array = NO_NUMBERS;

  /** `keepsNumbers`: the memo keeps number values with its slots (a GoMap's). */
  constructor(keepsNumbers = false) {
    this.#keepsNumbers = keepsNumbers;
    this.#stride = keepsNumbers ? NUMBER_SLOT_WORDS : SLOT_WORDS;
  }

  /**
   * The entry that the read table named by read word `read` (R_READ as the caller read it)
   * holds for key words (lo, hi): its offset, 0 when the table lacks the key or there is none,
   * {@linkcode MEMO_UNKNOWN} when the memo does not know (then look it up and
   * {@linkcode remember} it), or {@linkcode MEMO_NOT_ASKED} when the table's header lies past
   * `a`'s views (another worker grew the buffer and made the table there: nothing is read there
   * before the atomic load that lets the caller reach it). The caller read `read` from R_READ
   * (plainly, on SyncMap's lock-free paths: docs/design.md, "The plain reads of a lookup"), so
   * it names a published table, never one a step under the mutex may roll back. The table's
   * serial is read at an offset computed from `read` itself, so that the read is ordered after
   * the load of `read` on every CPU (an address dependency) and sees the serial the table was
   * published with; while that serial is the memo's, the memo's answer is one this thread found by
   * walking that table. For a memo without number values (a SyncMap's), whose slots are
   * {@linkcode SLOT_WORDS} words. SyncMap's lookups call this directly, not through a wrapper:
   * JavaScriptCore inlines five calls deep, and the wrapper's level left `find` a call under
   * `delete` and `loadAndDelete`.
   *
   * The read word's checks are here rather than in the caller, so that every lookup calls this:
   * V8 inlines a function's callees by how often each was called when it optimizes it, up to a
   * shared budget. Called only past a check that the map has a read table, this was called by
   * few of the lookups a program makes before its first promotion (the misses of a map just
   * filled), and a `load` optimized then inlined the walk of the table and left this a call: a
   * hit of 1,024 int keys took 24.4 ns instead of 21.8 on Deno, in the one process in three or
   * four whose background compile came at that moment, and in every one with
   * `--no-concurrent-recompilation` (bench/load_spread.ts: 10 processes ranged over 12.9% and
   * 11.5%; 4.2% and 4.5% with this).
   */
  find(lo: number, hi: number, a: MemoViews, read: number): number {
    const h = read & ~AMENDED;
    const w = this.#words;
    if (h === 0 || h + TABLE_HEADER_BYTES > a.bytes || w.length === 0) return this.#findCold(h, a);
    const i32 = a.i32;
    const th = h >> 2;
    // generation()'s serial check, written out: calling it cost int hits 1.05x to 1.16x and
    // misses 1.1x to 1.3x (Deno and Bun, two runs each).
    if (i32[th + T_SERIAL] !== this.#lo || i32[th + T_SERIAL + 1] !== this.#hi) {
      this.#newTable(i32, th);
      return MEMO_UNKNOWN;
    }
    let i = (Math.imul(lo ^ hi, GOLDEN) >>> this.#shift) << 3;
    const gen = this.#gen;
    if (w[i] !== lo || w[i + 1] !== hi || w[i + 2] !== gen) {
      i += 4;
      if (w[i] !== lo || w[i + 1] !== hi || w[i + 2] !== gen) return MEMO_UNKNOWN;
    }
    this.#hits = (this.#hits + 1) | 0;
    return w[i + 3];
  }

  /**
   * {@linkcode find}'s cold answers, for read table offset `h`: no read table (0), a header past
   * `a`'s views ({@linkcode MEMO_NOT_ASKED}), or a memo that has no table in use (warming up, or
   * switched off: {@linkcode MEMO_UNKNOWN}, counting toward the switch-on).
   */
  #findCold(h: number, a: MemoViews): number {
    if (h === 0) return 0;
    if (h + TABLE_HEADER_BYTES > a.bytes) return MEMO_NOT_ASKED;
    const off = (this.#off - 1) | 0;
    this.#off = off;
    if (off <= 0) this.#switchOn(); // <= 0: a switch-on cut short comes again
    return MEMO_UNKNOWN;
  }

  /**
   * {@linkcode find} for a GoMap: the memo slot that knows what the table held for key words
   * (lo, hi) while the serial was (`serialLo`, `serialHi`), as a word index for
   * {@linkcode entryAt} and {@linkcode numberAt}, or -1 when the memo does not know. `table`
   * sizes the memo when the serial moves. Written out beside find rather than shared: find is
   * SyncMap's hottest path, and its serial is read from the table there. For a memo that keeps
   * number values (a GoMap's), whose slots are {@linkcode NUMBER_SLOT_WORDS} words.
   */
  findAt(lo: number, hi: number, serialLo: number, serialHi: number, table: Sized): number {
    const w = this.#words;
    if (w.length === 0) {
      const off = (this.#off - 1) | 0;
      this.#off = off;
      if (off <= 0) this.#switchOn(); // <= 0: a switch-on cut short comes again
      return -1;
    }
    if (serialLo !== this.#lo || serialHi !== this.#hi) {
      this.#newSerial(serialLo, serialHi, table.count);
      return -1;
    }
    return this.#slotIn(w, lo, hi);
  }

  /**
   * {@linkcode findAt} for a GoMap writer: -1 also when the serial is not the memo's (the memo
   * is left at its own; a write that goes on to walk the table moves it only if the walk finds
   * the key, through findAt), and no count toward the warm-up. A write of a new key stamps a new
   * serial anyway: moving the memo to the serial before it would be work lost.
   */
  peekAt(lo: number, hi: number, serialLo: number, serialHi: number): number {
    const w = this.#words;
    if (w.length === 0 || serialLo !== this.#lo || serialHi !== this.#hi) return -1;
    return this.#slotIn(w, lo, hi);
  }

  /**
   * The slot of key words (lo, hi) in its bucket of `w`, a table of
   * {@linkcode NUMBER_SLOT_WORDS} words a slot under the current serial, or -1.
   */
  #slotIn(w: Int32Array, lo: number, hi: number): number {
    const i = (Math.imul(lo ^ hi, GOLDEN) >>> this.#shift) << 4;
    const gen = this.#gen;
    if (w[i] === lo && w[i + 1] === hi && w[i + 2] === gen) {
      this.#hits = (this.#hits + 1) | 0;
      return i;
    }
    if (w[i + 8] === lo && w[i + 9] === hi && w[i + 10] === gen) {
      this.#hits = (this.#hits + 1) | 0;
      return i + 8;
    }
    return -1;
  }

  /**
   * The entry word of the slot at word `j` that {@linkcode findAt} or {@linkcode remember} gave:
   * a GoMap key slot's offset, 0 for an absent key; with {@linkcode HELD} set, the memo holds
   * the key's value too ({@linkcode numberAt}).
   */
  entryAt(j: number): number {
    return this.#words[j + 3];
  }

  /** The number value kept with the slot at word `j`, whose entry word has {@linkcode HELD}. */
  numberAt(j: number): number {
    return this.#numbers[(j >> 1) + 2];
  }

  /**
   * The version of SEQ at which the number value kept with the slot at word `j` was read: the
   * value is the key's while SEQ holds it.
   */
  heldAt(j: number): number {
    return this.#words[j + 6];
  }

  /**
   * Keeps number `value` with the slot at word `j` that {@linkcode findAt} or
   * {@linkcode remember} just gave: the value the key had at version `seq` of SEQ, read and
   * validated at it. The value, then its version, then the flag: a call cut short leaves a slot
   * without the flag, or with one whose version is not `seq` (a slot kept at an older version),
   * which the version never comes back to while the layout stamp stands; either sends its lookups
   * to the table. Only a memo made to keep numbers keeps them.
   */
  keepNumber(j: number, value: number, seq: number): void {
    if (!this.#keepsNumbers) return;
    this.#numbers[(j >> 1) + 2] = value;
    const w = this.#words;
    w[j + 6] = seq;
    w[j + 3] |= HELD;
  }

  /**
   * The byte offset of the tophash mark of the key slot that the slot at word `j` names, as
   * {@linkcode remember} was given it, or 0 (a memo that keeps no numbers never has one). A
   * GoMap writer checks the mark and the slot's key words before it writes through the memo.
   */
  markAt(j: number): number {
    return this.#words[j + 7];
  }

  /**
   * Notes that the read table {@linkcode find} was last asked about holds entry `e` (0: none)
   * for key words (lo, hi), and, in a memo that keeps numbers (a GoMap's), that the key slot
   * `e`'s mark is at byte `mark` (0: not given). Returns the slot's word index, or -1 when the
   * memo is not in use.
   */
  remember(lo: number, hi: number, e: number, mark = 0): number {
    if (this.#words.length === 0) return -1;
    // The window first: ending it may give the memo a larger table, or none (>=: as #off's <= 0).
    const misses = (this.#misses + 1) | 0;
    this.#misses = misses;
    if (misses >= WINDOW) this.#endWindow();
    const w = this.#words;
    if (w.length === 0) return -1;
    const gen = this.#gen;
    const stride = this.#stride;
    let i = (Math.imul(lo ^ hi, GOLDEN) >>> this.#shift) * 2 * stride;
    // The first slot if it is free or holds this key, else the second. Within a generation the
    // second is filled only while the first holds another key, so no key is in both.
    if (w[i + 2] === gen && (w[i] !== lo || w[i + 1] !== hi)) i += stride;
    w[i] = lo;
    w[i + 1] = hi;
    w[i + 2] = gen;
    w[i + 3] = e;
    if (stride === NUMBER_SLOT_WORDS) w[i + 7] = mark;
    return i;
  }

  /**
   * {@linkcode remember} for a GoMap lookup that has just found key slot `k` in `table` (its mark
   * from {@linkcode FoundMarks.foundMark}), or found nothing (`k` below 0).
   */
  rememberSlot(lo: number, hi: number, k: number, table: FoundMarks): number {
    return k >= 0 ? this.remember(lo, hi, k, table.foundMark(k)) : this.remember(lo, hi, 0);
  }

  /**
   * The generation of the read table whose header is at word `th` of `i32` (published, as for
   * {@linkcode find}): a number at least 1 that nothing filled under another read table holds,
   * until the generation comes round after 2^32 tables, when {@linkcode onWrap} is called.
   * String keys keep their memo words with their key hash cache entries under it (slots.ts
   * `Probe.memoAt`), whether or not this memo's own table is in use.
   */
  generation(i32: Int32Array, th: number): number {
    if (i32[th + T_SERIAL] !== this.#lo || i32[th + T_SERIAL + 1] !== this.#hi) {
      this.#newTable(i32, th);
    }
    return this.#gen;
  }

  /** {@linkcode generation} for a GoMap's serial, as {@linkcode findAt} takes it. */
  generationAt(serialLo: number, serialHi: number, table: Sized): number {
    if (serialLo !== this.#lo || serialHi !== this.#hi) {
      this.#newSerial(serialLo, serialHi, table.count);
    }
    return this.#gen;
  }

  /** Called when the generation comes round: forget what is kept elsewhere under old ones. */
  onWrap: () => void = () => {};

  /** Whether the memo's own table is in use (for tests). */
  get on(): boolean {
    return this.#words.length !== 0;
  }

  /** Sets the generation (for tests: a wrap is 2^32 read tables away). */
  setGenerationForTests(gen: number): void {
    this.#gen = gen | 0;
  }

  /** Slots of the memo's table (for tests): 0 before it is made. */
  get slots(): number {
    return (this.#table?.length ?? 0) / this.#stride;
  }

  /**
   * {@linkcode find}'s and {@linkcode generation}'s way to {@linkcode #newSerial}: the read table
   * at word `th` of `i32` holds a new serial. A call of its own keeps those two as small as the
   * engines' inlining budgets want them (find is inlined into SyncMap's hottest paths).
   */
  #newTable(i32: Int32Array, th: number): void {
    this.#newSerial(i32[th + T_SERIAL], i32[th + T_SERIAL + 1], i32[th + T_COUNT]);
  }

  /**
   * The serial moved to (`lo`, `hi`), its table holding `keys` keys: slots of the old generation
   * stop matching. The serial is stored last: a call cut short before it (a stack overflow can
   * throw from any call) leaves the old serial standing with a generation at least as new as
   * its slots, and the next lookup comes here again; stored first, it would let the slots of
   * the old serial answer for the new one.
   */
  #newSerial(lo: number, hi: number, keys: number): void {
    // A larger table: a larger memo (when in use), empty as a new generation wants it.
    if (this.#words.length !== 0) {
      const slots = slotsFor(keys);
      if (this.#stride * slots > this.#words.length) this.#words = this.#make(slots);
    }
    this.#nextGeneration();
    this.#lo = lo;
    this.#hi = hi;
  }

  /**
   * Moves the generation on. After 2^32 serials it comes round: every slot is forgotten rather
   * than let one written 2^32 serials ago match, and so is what is kept elsewhere (onWrap),
   * before the generation is moved, so that a call cut short in between leaves the old one, under
   * which nothing matches any more (the table zeroed holds generation 0, never in use).
   */
  #nextGeneration(): void {
    const next = (this.#gen + 1) | 0;
    if (next !== 0) {
      this.#gen = next;
      return;
    }
    // The table itself, also while switched off (#words is NONE then): switched on again, it
    // would answer from slots of the generation this one comes round to.
    this.#table?.fill(0);
    this.onWrap();
    this.#gen = 1;
  }

  #make(slots: number): Int32Array {
    const table = new Int32Array(this.#stride * slots);
    const numbers = this.#keepsNumbers ? new Float64Array(table.buffer) : NO_NUMBERS;
    const shift = 33 - Math.log2(slots); // a bucket for every two slots
    // No call from here until the caller has stored the table in #words: the number view must
    // never be another table's than the words' (a stack overflow throws at a call).
    this.#numbers = numbers;
    this.#shift = shift;
    return (this.#table = table);
  }

  #switchOn(): void {
    // Sized by the next lookup, whose serial differs from 0:0 (no SyncMap read table has that
    // one). A GoMap never written has it: a generation of its own keeps the slots filled before
    // the memo was switched off, under whatever serial, from matching.
    this.#nextGeneration();
    this.#words = this.#table ?? this.#make(MIN_SLOTS);
    this.#lo = 0;
    this.#hi = 0;
  }

  /**
   * A window of {@linkcode WINDOW} misses is over. A table smaller than {@linkcode MAX_SLOTS} that
   * saw fewer than eight hits a miss gets four times the slots; one of MAX_SLOTS that saw fewer
   * hits than misses is switched off. A working set larger than the read table (Go's
   * LoadMostlyMisses: 1,023 absent keys looked up in a table of one) thrashed a table sized for the
   * read table alone, and the memo switched itself off: each miss then hashed the key and walked
   * the table (67.8 ns a SyncMap `load` against 35.3 for a hit on Deno). The larger table is zeroed
   * and keeps the generation: its slots match nothing until filled (generation 0 is never in use),
   * and what is kept elsewhere under the generation (string keys' memo words) does not depend on
   * the table.
   */
  #endWindow(): void {
    const slots = this.#words.length / this.#stride;
    if (slots < MAX_SLOTS) {
      if (this.#hits < 8 * this.#misses) this.#words = this.#make(Math.min(MAX_SLOTS, 4 * slots));
    } else if (this.#hits < this.#misses) {
      this.#off = OFF_CALLS;
      this.#words = NONE;
    }
    this.#hits = 0;
    this.#misses = 0;
  }
}
