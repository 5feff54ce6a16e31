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
 * Made by the second iteration that begins under one serial (the first only notes it), so that
 * a map whose read table moves on between iterations (a churn of new keys: each iteration
 * promotes) never pays for a copy it would not use. Made whole at that iteration's start, from
 * the table that iteration reads, in one step that runs no user code; kept only for:
 * - keys the built-in codecs decode without user code: not for a user key codec, nor for a key
 *   the default codec stores structured (its decode may run user code);
 * - keys that decode to primitives: a `Uint8Array` key is a fresh copy for each caller, which
 *   the caller may change;
 * - tables of at most {@linkcode MAX_KEYS} keys (the copy is this handle's memory).
 * Dropped when an iteration begins under another serial.
 *
 * @module
 */

import { TAG_STRUCT } from "../_engine/slots.ts";
import type { Table } from "../_engine/table.ts";
import type { SyncAccess } from "./_sync_access.ts";
import { S_ENTRY, S_KEY_HI, S_KEY_LO, T_SERIAL } from "./_sync_layout.ts";

/** The most keys a copy holds: 65,536 (a few MB of strings at most, per handle). */
export const MAX_KEYS = 1 << 16;

/** An iteration began under the serial: the next one makes the copy. */
const NOTED = 0;
/** The copy is of the serial's table, at {@linkcode IterationKeys.level}. */
const READY = 1;
/** The serial's table does not qualify (module doc): no copy is tried again. */
const REFUSED = 2;

const NO_STARTS = new Int32Array(0);
const NO_ENTRIES = new Int32Array(0);

/** See the module doc. */
export class IterationKeys<K> {
  /** The serial of the table copied, or of the last one an iteration began under. */
  #lo = 0;
  #hi = 0;
  /** What is known of table (#lo, #hi): {@linkcode NOTED}, {@linkcode READY} or {@linkcode REFUSED}. */
  #state = NOTED;
  /** The partition level the copy is split by. */
  level = -1;
  /** Partition i's keys are `keys[starts[i]]` to `keys[starts[i + 1] - 1]`. */
  starts: Int32Array = NO_STARTS;
  keys: K[] = [];
  /** The entry offset of each key in {@linkcode keys}. */
  entries: Int32Array = NO_ENTRIES;

  /**
   * Whether the copy is of `table` at `level`: the serial read plainly from its header, which
   * the caller loaded after an atomic load of R_READ (a published table's header is immutable).
   */
  holds(table: Table, level: number): boolean {
    const i32 = table.arena.i32;
    return this.#state === READY && level === this.level && i32[table.h + T_SERIAL] === this.#lo &&
      i32[table.h + T_SERIAL + 1] === this.#hi;
  }

  /**
   * At an iteration's start over read table `table` at `level`: makes the copy if an iteration
   * began under this serial before and none was refused, notes the serial otherwise. The caller is entered and loaded
   * R_READ before reading `table`.
   */
  begin<V>(s: SyncAccess<K, V>, table: Table, level: number): void {
    const i32 = table.arena.i32;
    const lo = i32[table.h + T_SERIAL];
    const hi = i32[table.h + T_SERIAL + 1];
    if (lo !== this.#lo || hi !== this.#hi) {
      this.#drop();
      this.#lo = lo;
      this.#hi = hi;
    } else if (this.#state === NOTED) {
      // Refused unless the copy is kept; a copy cut short by a stack overflow stays refused.
      this.#state = REFUSED;
      if (!s.userKeys && table.count <= MAX_KEYS) this.#copy(s, table, level);
    }
  }

  #drop(): void {
    this.#state = NOTED;
    this.starts = NO_STARTS;
    this.keys = [];
    this.entries = NO_ENTRIES;
  }

  /**
   * Gathers and decodes every key of `table`, partition by partition, into fresh arrays, and
   * keeps them only if every key qualifies (module doc). Nothing is kept until the end: a call
   * cut short (a stack overflow, a decode that throws) leaves no copy.
   */
  #copy<V>(s: SyncAccess<K, V>, table: Table, level: number): void {
    const a = table.arena;
    a.reachTop(); // the key slots, entries and key blobs are below the top (see readBatch)
    const n = 1 << level;
    const starts = new Int32Array(n + 1);
    const keys: K[] = [];
    const entries: number[] = [];
    const slots: number[] = [];
    for (let i = 0; i < n; i++) {
      starts[i] = keys.length;
      const found = table.gatherKeySlots(level, i, slots);
      const i32 = a.i32;
      for (let j = 0; j < found; j++) {
        const k = slots[j];
        const hi = i32[(k >> 2) + S_KEY_HI];
        if (hi === TAG_STRUCT) return;
        const key = s.decodeKey(i32[(k >> 2) + S_KEY_LO], hi);
        if ((typeof key === "object" && key !== null) || typeof key === "function") return;
        keys.push(key);
        entries.push(i32[(k >> 2) + S_ENTRY]);
      }
    }
    starts[n] = keys.length;
    this.starts = starts;
    this.keys = keys;
    this.entries = Int32Array.from(entries);
    this.level = level;
    this.#state = READY;
  }
}
