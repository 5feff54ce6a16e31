/**
 * Internal. One GoMap object's way into the shared map: its arena, table, writer's
 * transaction, codecs and scratch; and the encoding of keys and values and the reading of a
 * table slot's key and value that every path (_go_read.ts, _go_writer.ts, go_map.ts) goes
 * through.
 *
 * @module
 */

import { GoBatches } from "./_go_batches.ts";
import { GoHits } from "./_go_hits.ts";
import { SlotStrings } from "../_engine/slot_strings.ts";
import * as slot_strings from "../_engine/slot_strings.ts";
import type { Arena } from "../_engine/arena.ts";
import { Journal } from "../_engine/journal.ts";
import {
  cachesStringKeys,
  freeSlot,
  isNumberSlot,
  keyProbe,
  Probe,
  setKeyNumberMemo,
  type SlotCodec,
  storesNumbers,
  UserSlots,
} from "../_engine/slots.ts";
import { Table } from "../_engine/table.ts";
import { WriterTx } from "../_engine/tx.ts";
import { EntryMemo } from "./_entry_memo.ts";
import type { OpenedGoMap } from "./_go_open.ts";
import * as go_layout from "./_go_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { SLOTS } = slot_strings;
const { JOURNAL, JOURNAL_ENTRIES, KEY_HI, KEY_LO, TABLE_AT, VALUE_BYTES, VALUE_HI, VALUE_LO } =
  go_layout;

/** One GoMap object's state: what it shares (arena, table) and its own scratch. */
export class GoAccess<K, V> {
  readonly arena: Arena;
  readonly table: Table;
  readonly keys: SlotCodec<K>;
  readonly values: SlotCodec<V>;
  readonly tx: WriterTx;
  /** Scratch for the key and the value of a call; a nested call makes its own (see nested). */
  readonly probe: Probe = keyProbe();
  readonly valueProbe: Probe = new Probe();
  /**
   * Whether the key probe that GoMap.set's number fast path (_go_writer.ts overwriteNumber)
   * handed over lacks its hash: the fast path hashes a key only when it walks the table.
   */
  hashOwed = false;
  /**
   * Whether that fast path walked the table and missed the key: GoMap.set's general path may
   * then put it in without a walk of its own (Table.insertAbsent).
   */
  walkedAbsent = false;
  /**
   * The key slots this object's lookups found, by version of the map (_entry_memo.ts); string
   * keys keep theirs in the probe's key hash cache entries, forgotten when its generation
   * comes round.
   */
  readonly found: EntryMemo = new EntryMemo(true);
  /** What this object's iterations read, kept while the map is not written (_go_batches.ts). */
  readonly batches: GoBatches = new GoBatches();
  /** What this object's lookups found, kept while the map is not written (_go_hits.ts). */
  readonly hits: GoHits = new GoHits();
  /** Number keys are plain float64 slots: look them up without calling the codec. */
  readonly numberKeys: boolean;
  /** String keys' probes come from the key hash cache: a get may take its entry directly. */
  readonly stringKeys: boolean;
  /** Number values are plain float64 slots: read them without calling the codec. */
  readonly numberValues: boolean;
  /** The key codec when it is a user's (its encode and decode run user code), else null. */
  readonly userKeys: UserSlots<K> | null;
  /** The value codec when it is a user's, else null. */
  readonly userValues: UserSlots<V> | null;
  /**
   * How many calls of this object are running user code: a getter or Proxy trap read by the
   * default codec, or a user codec's encode or decode. That code may call this map again; the
   * nested call must not touch the scratch (probes, and the default codec's writer inside them)
   * the outer call is still using, so while this is nonzero calls use fresh probes. It is
   * raised only around what can run user code: number keys and values never pay for it.
   */
  #inUser = 0;

  constructor(opened: OpenedGoMap<K, V>) {
    const arena = opened.arena;
    this.arena = arena;
    this.keys = opened.keys;
    this.values = opened.values;
    this.tx = new WriterTx(
      arena,
      new Journal(arena, arena.i32[JOURNAL] >> 2, JOURNAL_ENTRIES),
    );
    // Sizes are checked when encoding: what cannot fit in maxBytes fails before the work.
    this.keys.limit = arena.maxBytes;
    this.values.limit = arena.maxBytes;
    this.numberKeys = storesNumbers(this.keys as SlotCodec<unknown>);
    this.numberValues = storesNumbers(this.values as SlotCodec<unknown>);
    this.stringKeys = cachesStringKeys(this.keys as SlotCodec<unknown>);
    this.userKeys = this.keys instanceof UserSlots ? this.keys : null;
    this.userValues = this.values instanceof UserSlots ? this.values : null;
    this.found.onWrap = () => {
      this.probe.keyCache?.clear();
      this.#slotStrings?.clear();
    };
    this.table = new Table(arena, TABLE_AT, true, (lo, hi, tx) => {
      freeSlot(arena, lo, hi, tx);
    }, this.tx);
  }

  /** Whether a call of this object is running user code: a call now uses fresh scratch. */
  get nested(): boolean {
    return this.#inUser !== 0;
  }

  /**
   * Reads the value of the key in slot `k`, inside a read the caller validates afterwards. A
   * user codec's value is only copied out here, to be decoded by {@linkcode decodeCopy} once
   * the read is validated: the user's decode may write the map, which between the read and its
   * validation would look like another worker's write.
   */
  readValue(k: number): unknown {
    const a = this.arena;
    const hi = a.i32[(k >> 2) + VALUE_HI];
    if (this.numberValues && isNumberSlot(hi)) return a.f64[(k + VALUE_BYTES) >> 3];
    const lo = a.i32[(k >> 2) + VALUE_LO];
    return this.userValues === null ? this.values.decode(a, lo, hi) : this.userValues.copy(a, lo);
  }

  /**
   * The handle's cache of decoded string keys by slot (slot_strings.ts), once an iteration has
   * read a string key ({@linkcode keepSlotStrings}); null before, and while the map holds more
   * keys than it has entries.
   */
  slotStrings(): SlotStrings | null {
    return this.table.count <= SLOTS ? this.#slotStrings : null;
  }

  /** Makes the cache of {@linkcode slotStrings}, but for a user key codec's keys (copies). */
  keepSlotStrings(): void {
    if (this.userKeys === null) this.#slotStrings ??= new SlotStrings();
  }

  #slotStrings: SlotStrings | null = null;

  /** The key of slot `k`, read as {@linkcode readValue} reads values. */
  readKey(k: number): unknown {
    const a = this.arena;
    const hi = a.i32[(k >> 2) + KEY_HI];
    if (this.numberKeys && isNumberSlot(hi)) return a.f64[k >> 3];
    const lo = a.i32[(k >> 2) + KEY_LO];
    return this.userKeys === null ? this.keys.decode(a, lo, hi) : this.userKeys.copy(a, lo);
  }

  /** Runs the user's decode on bytes a validated read copied out. */
  decodeCopy<T>(codec: UserSlots<T>, copy: unknown): T {
    this.#inUser++;
    try {
      return codec.fromCopy(copy as Uint8Array);
    } finally {
      this.#inUser--;
    }
  }

  /**
   * Encodes `key` into `p` and hashes it. Only a user's key codec runs user code here (the
   * built-in ones take primitives and Uint8Arrays, checked by brand), so only it is counted
   * in {@linkcode nested}.
   */
  encodeKey(key: K, p: Probe): Probe {
    if (typeof key === "number" && this.numberKeys) {
      setKeyNumberMemo(p, key, this.arena.memo); // the codec's probe, hashed through the memo
      return p;
    }
    if (this.userKeys === null) {
      this.keys.toKey(key, p, this.arena.seed0, this.arena.seed1);
      return p;
    }
    this.#inUser++;
    try {
      this.keys.toKey(key, p, this.arena.seed0, this.arena.seed1);
    } finally {
      this.#inUser--;
    }
    return p;
  }

  /**
   * Encodes `value` into `v`. User code can run for an object (the default codec reads its
   * properties, which may be getters or a Proxy's traps) or under a user's codec.
   */
  encodeValue(value: V, v: Probe): Probe {
    if (typeof value !== "object" && this.userValues === null) {
      this.values.toValue(value, v);
      return v;
    }
    this.#inUser++;
    try {
      this.values.toValue(value, v);
    } finally {
      this.#inUser--;
    }
    return v;
  }
}
