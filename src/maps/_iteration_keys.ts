/**
 * Internal. A SyncMap handle's iteration keys: a copy, in this thread's own memory, of the keys
 * of one read table, decoded, with each key's entry offset, by iteration partition.
 *
 * A read table never changes once published (its keys, their slots and their entries stay put
 * until it is replaced), and each read table has a serial of its own (T_SERIAL, 64 bits, never
 * reused; see _entry_memo.ts). So the keys an iteration gathers from a read table, and the entries
 * they name, hold for as long as the table with that serial is the read table. An iteration's
 * batch that loaded R_READ and finds the same serial reads its partition's keys and entry offsets
 * here, and only each entry's value word (E_P) and record from shared memory: no walk of the
 * buckets and no decode of a key. The entries are as safe to read as the walk's would be: they are
 * the current read table's, loaded after R_READ, so the caller's participant holds them until its
 * next quiescent point (the entry memo's argument).
 *
 * Filled from the second iteration that begins under one serial (the first only notes it), so
 * that a map whose read table moves on between iterations (a churn of new keys: each iteration
 * promotes) never pays for a copy it would not use; a partition at a time, as that iteration's
 * batches read them (an iteration that stops early fills only what it read), each partition in
 * one step that runs no user code. Kept only for:
 * - keys the built-in codecs decode without user code: not for a user key codec, nor for a key
 *   the default codec stores structured (its decode may run user code);
 * - keys that decode to primitives: a `Uint8Array` key is a fresh copy for each caller, which
 *   the caller may change;
 * - at most {@linkcode MAX_KEYS} keys and {@linkcode MAX_UNITS} string units in all (the copy is
 *   this handle's memory: at most about 2 MiB of strings).
 * A table past a limit is refused, and what was filled of it dropped. The copy is dropped when an
 * iteration begins under another serial, and by this handle's `clear()` and `close()`.
 *
 * @module
 */

import * as slots_module from "../_engine/slots.ts";
import type { Table } from "../_engine/table.ts";
import type { SyncAccess } from "./_sync_access.ts";
import * as sync_layout from "./_sync_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { TAG_STRUCT } = slots_module;
const { S_ENTRY, S_KEY_HI, S_KEY_LO, T_SERIAL } = sync_layout;

/** The most keys a copy holds. */
export const MAX_KEYS = 1 << 16;
/** The most string units a copy holds, its keys' lengths summed (a key that is not a string: 4). */
export const MAX_UNITS = 1 << 20;

/** An iteration began under the serial: the next one fills the copy. */
const NOTED = 0;
/** The copy is of the serial's table, at {@linkcode IterationKeys.level}, filled as read. */
const FILLING = 1;
/** The serial's table does not qualify (module doc): no copy is tried again. */
const REFUSED = 2;

/** See the module doc. */
export class IterationKeys<K> {
  /** The serial of the table copied, or of the last one an iteration began under. */
  #lo = 0;
  #hi = 0;
  /** What is known of table (#lo, #hi): {@linkcode NOTED}, {@linkcode FILLING} or {@linkcode REFUSED}. */
  #state = NOTED;
  /** The partition level the copy is split by. */
  #level = -1;
  /** Keys and string units held, against the limits. */
  #keys = 0;
  #units = 0;
  /** Partition i's keys, or undefined while it is not filled. */
  keys: (K[] | undefined)[] = [];
  /** The entry offset of each key of partition i, beside {@linkcode keys}. */
  entries: (Int32Array | undefined)[] = [];

  /** How many keys the copy holds. */
  get held(): number {
    return this.#keys;
  }

  /**
   * Whether the copy holds partition `i` of `table` at `level`: the serial read plainly from
   * its header, which the caller loaded after an atomic load of R_READ (a published table's
   * header is immutable). Fills the partition first when the copy is filling this table.
   */
  holds<V>(s: SyncAccess<K, V>, table: Table, level: number, i: number): boolean {
    if (this.#state !== FILLING || level !== this.#level) return false;
    const i32 = table.arena.i32;
    if (i32[table.h + T_SERIAL] !== this.#lo || i32[table.h + T_SERIAL + 1] !== this.#hi) {
      return false;
    }
    return this.keys[i] !== undefined || this.#fill(s, table, i);
  }

  /**
   * At an iteration's start over read table `table` at `level`: starts filling the copy if an
   * iteration began under this serial before, notes the serial otherwise.
   */
  begin<V>(s: SyncAccess<K, V>, table: Table, level: number): void {
    const i32 = table.arena.i32;
    const lo = i32[table.h + T_SERIAL];
    const hi = i32[table.h + T_SERIAL + 1];
    if (lo !== this.#lo || hi !== this.#hi) {
      this.drop();
      this.#lo = lo;
      this.#hi = hi;
    } else if (this.#state === NOTED) {
      const fits = !s.userKeys && table.count <= MAX_KEYS;
      this.#state = fits ? FILLING : REFUSED;
      this.#level = level;
      // Packed arrays of a partition each (no hole checks), filled as batches read them.
      if (fits) {
        this.keys = new Array(1 << level).fill(undefined);
        this.entries = new Array(1 << level).fill(undefined);
      }
    }
  }

  /** Forgets the copy and the serial noted. */
  drop(): void {
    this.#empty(NOTED);
    this.#lo = this.#hi = 0; // no read table has serial 0:0 (_entry_memo.ts)
  }

  /** Lets the copy's partitions go, leaving the serial noted in `state`. */
  #empty(state: number): void {
    this.#state = state;
    this.#keys = this.#units = 0;
    this.keys = [];
    this.entries = [];
  }

  /**
   * Gathers and decodes every key of partition `i` into fresh arrays, and keeps them if every
   * key qualifies (module doc); returns whether it kept them. Nothing is kept until the end: a
   * call cut short (a stack overflow, a decode that throws) leaves the partition unfilled, to be
   * filled again by the next batch that reads it. A key that does not qualify refuses the table.
   */
  #fill<V>(s: SyncAccess<K, V>, table: Table, i: number): boolean {
    const a = table.arena;
    const slots: number[] = [];
    const found = table.gatherKeySlots(this.#level, i, slots);
    const keys: K[] = []; // packed, as push makes it: reads need no hole check
    const entries = new Int32Array(found);
    let units = 0;
    const i32 = a.i32; // no user code runs below: the views stand
    for (let j = 0; j < found; j++) {
      const k = slots[j];
      const hi = i32[(k >> 2) + S_KEY_HI];
      if (hi === TAG_STRUCT) return this.#refuse();
      const key = s.decodeKey(i32[(k >> 2) + S_KEY_LO], hi);
      const u = unitsOf(key);
      if (u < 0) return this.#refuse();
      units += u;
      keys.push(key);
      entries[j] = i32[(k >> 2) + S_ENTRY];
    }
    if (this.#keys + found > MAX_KEYS || this.#units + units > MAX_UNITS) return this.#refuse();
    this.#keys += found;
    this.#units += units;
    this.entries[i] = entries;
    this.keys[i] = keys;
    return true;
  }

  #refuse(): false {
    this.#empty(REFUSED);
    return false;
  }
}

/**
 * The string units `v` counts against {@linkcode MAX_UNITS} (a string its length, another
 * primitive 4), or -1 when it is not a primitive and so cannot be kept in a copy.
 */
export function unitsOf(v: unknown): number {
  if (typeof v === "string") return v.length;
  return (typeof v === "object" && v !== null) || typeof v === "function" ? -1 : 4;
}
