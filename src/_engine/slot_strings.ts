/**
 * Internal. One handle's cache of the string keys its iterations decoded, by key slot.
 *
 * A GoMap iteration makes each string key anew from its units (read_string.ts), the most of a
 * string entry's cost. A key slot holds the same key for as long as the map's layout stamp
 * stands (every insert, delete, growth step and clear stamps it anew; an overwrite changes a
 * value only), and the handle's entry memo gives each stamp a generation of its own
 * (_entry_memo.ts, `generationAt`). So a string read from a slot, in a read validated under a
 * generation, is that slot's key for the whole generation, and is kept under it here.
 *
 * Direct-mapped: {@linkcode SLOTS} entries of (slot offset, generation, string), the slot found
 * from the offset's bits; a miss decodes as before. It is this thread's own JavaScript memory,
 * bounded (at most SLOTS strings of at most {@linkcode MAX_UNITS} units), never shared. A handle
 * makes it once an iteration has read a string key, and uses it while the map holds at most
 * SLOTS keys: past that, most slots would share an entry with another (a repeated iteration of
 * 4,096 keys hit 55% of the time, of 16,384 keys 6% to 12%). Slot offset 0 lies in the arena's header,
 * never a key slot, so the zeroed table matches nothing; generation 0 is never in use.
 * {@linkcode clear} empties it when the generations come round (EntryMemo.onWrap).
 *
 * @module
 */

/** Entries, a power of two: 4,096 keys, 64 KiB with their strings' references. */
export const SLOTS = 4096;
const MASK = SLOTS - 1;
/**
 * The longest string kept, in UTF-16 units, as the key hash cache's: the table then holds at
 * most 256 KiB of strings, whatever keys the map held once, and a long key's making costs
 * little against reading its units anyway.
 */
export const MAX_UNITS = 32;

/** See the module documentation. */
export class SlotStrings {
  #slots = new Int32Array(SLOTS);
  #gens = new Int32Array(SLOTS);
  #strings: string[] = new Array<string>(SLOTS).fill("");

  /** The string kept for key slot `k` under generation `gen`, or undefined. */
  get(k: number, gen: number): string | undefined {
    const i = (k >>> 3) & MASK; // key slots are 8 bytes apart
    return this.#slots[i] === k && this.#gens[i] === gen ? this.#strings[i] : undefined;
  }

  /**
   * Keeps `s`, the key of slot `k` read and validated under generation `gen`, unless it is
   * longer than {@linkcode MAX_UNITS}.
   */
  set(k: number, gen: number, s: string): void {
    if (s.length > MAX_UNITS) return;
    const i = (k >>> 3) & MASK;
    this.#slots[i] = k;
    this.#gens[i] = gen;
    this.#strings[i] = s;
  }

  /** Forgets everything (the generations came round). */
  clear(): void {
    this.#slots.fill(0);
    this.#strings.fill("");
  }
}
