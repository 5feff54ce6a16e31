/**
 * Internal. A GoMap handle's batch copy: the keys and values its iterations read, decoded, by
 * iteration partition, in this thread's own memory, for one version of the map.
 *
 * Every write moves the write sequence, and the pair (SEQ, WRAPS) never comes again
 * (_go_layout.ts). So what a validated batch read at version (SEQ, WRAPS) found in a partition
 * is what the partition holds for as long as SEQ still reads that version: a later batch of the
 * same partition that begins at that version (beginRead) may take the copy instead of walking
 * the buckets and decoding every slot. No validation is needed afterwards: it read nothing of
 * the map but SEQ and WRAPS, and the copy was validated when it was made.
 *
 * Filled from the second iteration that begins at one version (the first only notes it), so that
 * a map written between iterations never pays for a copy it would not use; a partition at a
 * time, as an `entries()` or `values()` iteration's batches read them (a `keys()` iteration
 * reads no values: it uses the copy but does not fill it). Kept only for:
 * - maps whose codecs are built in (a user codec's decode runs user code, and makes objects);
 * - keys and values that decode to primitives: an object, an array or a `Uint8Array` is a fresh
 *   copy for each caller, which the caller may change;
 * - at most {@linkcode MAX_KEYS} entries and {@linkcode MAX_UNITS} string units in all, as a
 *   SyncMap's iteration keys (a string counts its length, anything else 4).
 * A map past a limit is refused until its version moves, and what was filled dropped. The
 * copy is dropped when an iteration begins at another version, and by this handle's `clear()`.
 *
 * @module
 */

import { unitsOf } from "./_iteration_keys.ts";
import * as iteration_keys from "./_iteration_keys.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { MAX_KEYS, MAX_UNITS } = iteration_keys;

/** An iteration began at the version: the next one fills the copy. */
const NOTED = 0;
/** The copy is of the version, at {@linkcode GoBatches}'s level, filled as read. */
const FILLING = 1;
/** The version's map does not qualify (module doc): no copy is tried again. */
const REFUSED = 2;

/** One partition's copy: its keys and, beside each, its value. */
export interface Batch {
  readonly keys: readonly unknown[];
  readonly values: readonly unknown[];
}

/** See the module doc. */
export class GoBatches {
  /** The version (SEQ, WRAPS) copied, or noted by the last iteration that began. */
  #seq = 1; // odd: no version
  #wraps = 0;
  #state = NOTED;
  /** The partition level the copy is split by. */
  #level = -1;
  /** Entries and string units held, against the limits. */
  #entries = 0;
  #units = 0;
  #batches: (Batch | undefined)[] = [];

  /** How many entries the copy holds. */
  get held(): number {
    return this.#entries;
  }

  /**
   * At an iteration's start, its first batch at version (`seq`, `wraps`) over a table of
   * `count` keys split at `level`: starts filling the copy if an iteration began at this
   * version before, notes the version otherwise. `builtIn`: both codecs are built in.
   */
  begin(seq: number, wraps: number, level: number, count: number, builtIn: boolean): void {
    if (seq !== this.#seq || wraps !== this.#wraps) {
      this.drop();
      this.#seq = seq;
      this.#wraps = wraps;
    } else if (this.#state === NOTED) {
      const fits = builtIn && count <= MAX_KEYS;
      this.#state = fits ? FILLING : REFUSED;
      this.#level = level;
      // A packed array (no hole checks), filled as batches read the partitions.
      if (fits) this.#batches = new Array(1 << level).fill(undefined);
    }
  }

  /** Partition `i` at `level` as the copy holds it at version (`seq`, `wraps`), or undefined. */
  at(seq: number, wraps: number, level: number, i: number): Batch | undefined {
    return this.#filling(seq, wraps, level) ? this.#batches[i] : undefined;
  }

  /** Whether the copy is filling version (`seq`, `wraps`) split at `level`. */
  #filling(seq: number, wraps: number, level: number): boolean {
    return this.#state === FILLING && seq === this.#seq && wraps === this.#wraps &&
      level === this.#level;
  }

  /**
   * Keeps the first `count` of `keys` and `values`, partition `i` at `level` as a batch read and
   * validated it at version (`seq`, `wraps`), if the copy is filling that version and every
   * entry qualifies (module doc). An entry that does not refuses the version.
   */
  keep(
    seq: number,
    wraps: number,
    level: number,
    i: number,
    keys: readonly unknown[],
    values: readonly unknown[],
    count: number,
  ): void {
    if (!this.#filling(seq, wraps, level) || this.#batches[i] !== undefined) return;
    let units = 0;
    for (let j = 0; j < count; j++) {
      const k = unitsOf(keys[j]);
      const v = unitsOf(values[j]);
      if (k < 0 || v < 0) return this.#refuse();
      units += k + v;
    }
    if (this.#entries + count > MAX_KEYS || this.#units + units > MAX_UNITS) {
      return this.#refuse();
    }
    this.#entries += count;
    this.#units += units;
    this.#batches[i] = { keys: keys.slice(0, count), values: values.slice(0, count) };
  }

  /** Forgets the copy and the version noted. */
  drop(): void {
    this.#empty(NOTED);
    this.#seq = 1;
  }

  #refuse(): void {
    this.#empty(REFUSED);
  }

  /** Lets the copy's partitions go, leaving the version noted in `state`. */
  #empty(state: number): void {
    this.#state = state;
    this.#entries = this.#units = 0;
    this.#batches = [];
  }
}
