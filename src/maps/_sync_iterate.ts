/**
 * Internal. SyncMap's iteration (Range, and the Map-like iterators): the read table read in
 * batches, one hash partition each, the dirty table promoted first when it holds keys the read
 * table lacks.
 *
 * Keys are partitioned by the low `level` bits of their hash (the seed is the arena's, so every
 * table of this map agrees), `level` chosen at the start from the read table's size
 * (_iteration.ts batchLevel), and each batch, one partition, is read from the read table as it
 * is when the batch is read. The dirty table is promoted once, at the start, if it holds keys
 * the read table lacks, as Go's Range does. Partitions are visited once each from a random
 * start. A key is in one partition, so it is yielded at most once. A key present throughout is
 * in the read table after that promotion, and in every read table after it (a dirty table is
 * made from the read table with every key that has a value, and a read table is replaced only
 * by such a dirty table), so it is yielded. Keys new since the start live in the dirty table
 * until someone else promotes it, and may or may not be yielded. Promoting before every batch
 * too would make an iteration that stores new keys as it goes rebuild the dirty table, a copy
 * of the whole map, once a batch: quadratic time, and big tables freed and made again in turn,
 * which fragment the heap (MapFullError at 14% of maxBytes, measured). Each batch is decoded whole before any of
 * it is yielded: nothing is held in shared memory while the caller's code runs, and the
 * participant may pass a quiescent point between batches.
 *
 * @module
 */

import { isNumberSlot } from "../_engine/slots.ts";
import type { Table } from "../_engine/table.ts";
import { BatchIterator, batchLevel, type VALUES, type Yield } from "./_iteration.ts";
import * as iteration from "./_iteration.ts";
import type { IterationKeys } from "./_iteration_keys.ts";
import type { SyncAccess } from "./_sync_access.ts";
import { immediateValue } from "./_sync_layout.ts";
import * as sync_layout from "./_sync_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { ENTRIES, KEYS } = iteration;
const { AMENDED, EXPUNGED, R_READ, REC_HI, RECORD_HEADER, S_ENTRY, S_KEY_HI, S_KEY_LO } =
  sync_layout;

/** One batch's decoded keys and values, refilled in place (the arrays keep their capacity). */
class Batch<K, V> {
  readonly keys: K[] = [];
  readonly values: V[] = [];
  /** Key slots, the scratch of {@linkcode readBatch}. */
  readonly slots: number[] = [];
}

/**
 * Calls `f(key, value)` for every entry until it returns `false` (SyncMap.range): a plain loop
 * over the batches.
 */
export function rangeOver<K, V>(
  s: SyncAccess<K, V>,
  f: (key: K, value: V) => boolean | void,
): void {
  const level = startLevel(s);
  const n = 1 << level;
  const start = Math.floor(Math.random() * n);
  const batch = new Batch<K, V>();
  const { keys, values } = batch;
  for (let step = 0; step < n; step++) {
    const count = readBatch(s, level, (start + step) & (n - 1), batch, ENTRIES);
    for (let j = 0; j < count; j++) if (f(keys[j], values[j]) === false) return;
  }
}

/**
 * The Map-like iterators (entries, keys, values): {@linkcode range}'s loop, one entry a
 * `next()`, behaving as a generator does (see BatchIterator).
 */
export class SyncIterator<K, V, T> extends BatchIterator<SyncAccess<K, V>, T> {
  /** The partition level, -1 until the first `next()`. */
  #level = -1;
  #start = 0;
  /** Partitions read so far. */
  #step = 0;
  #batch: Batch<K, V> = new Batch();
  /** Entries in the current batch, and the next one to yield. */
  #count = 0;
  #j = 0;

  protected readonly kind = "SyncMap";
  /**
   * The SyncMap object iterated, held so that it lives as long as this iterator: dropped, it
   * would be collected and its participant closed (maps/_sync_attached.ts) under a loop that
   * awaits between entries.
   */
  readonly #owner: object;

  /** Throws TypeError, as every member of a closed SyncMap object does, when `s` is closed. */
  constructor(s: SyncAccess<K, V>, what: Yield, owner: object) {
    super(s, what);
    s.participant.checkOpen();
    this.#owner = owner;
  }

  next(): IteratorResult<T, undefined> {
    const j = this.#j;
    if (j >= this.#count) return this.readOn();
    this.#j = j + 1;
    return this.#result(j);
  }

  #result(j: number): IteratorResult<T, undefined> {
    const b = this.#batch;
    return this.result(b.keys[j], b.values[j]);
  }

  /** next() at the end of a batch: reads batches until one has entries, or finishes. */
  protected read(s: SyncAccess<K, V>): IteratorResult<T, undefined> {
    do {
      if (this.#level < 0) {
        this.#level = startLevel(s);
        this.#start = Math.floor(Math.random() * (1 << this.#level));
      }
      const n = 1 << this.#level;
      if (this.#step >= n) return this.finish();
      const i = (this.#start + this.#step++) & (n - 1);
      this.#j = 0;
      this.#count = 0; // in case readBatch throws, or a nested next() comes meanwhile
      this.#count = readBatch(s, this.#level, i, this.#batch, this.yields);
    } while (this.#count === 0);
    this.#j = 1;
    return this.#result(0);
  }

  protected drop(): void {
    this.#batch = new Batch();
    this.#count = 0;
  }
}

/**
 * The partition level for an iteration, from the read table's size, promoted first; and the
 * handle's iteration keys told of the table (_iteration_keys.ts).
 */
function startLevel<K, V>(s: SyncAccess<K, V>): number {
  // A read's entry: only a promotion retires, and makes its room (promotedRead).
  s.participant.enterRead();
  const read = promotedRead(s);
  if (read === null) return 0;
  const level = batchLevel(read.B);
  s.iterationKeys.begin(s, read, level);
  return level;
}

/**
 * Reads partition `i` of `level` from the read table as it is now, and decodes its live
 * entries into `batch` (their keys unless `what` is VALUES, their values unless it is KEYS);
 * returns how many. Key slots are gathered first, then each entry's
 * record read and decoded: the table and the records stay readable until this participant's
 * next quiescent point, which a user codec's decode defers (SyncAccess.decodeKey), and number
 * keys and values are read here without a call.
 */
function readBatch<K, V>(
  s: SyncAccess<K, V>,
  level: number,
  i: number,
  batch: Batch<K, V>,
  what: Yield,
): number {
  s.participant.enterRead(); // as startLevel's
  const read = s.core.readTable(Atomics.load(s.arena.i32, R_READ));
  if (read === null) return 0;
  const a = s.arena;
  // The batch reads key slots, entries and key blobs without a per-entry check: all were
  // allocated before the table was published, so below the heap's top as the atomic load of
  // R_READ above makes it visible (records stored since are checked one by one below).
  a.reachTop();
  const { keys, values } = batch;
  const copy = s.iterationKeys;
  if (copy.holds(s, read, level, i)) {
    return what === ENTRIES
      ? copiedEntries(s, copy, i, keys, values)
      : copiedSide(s, copy, i, what === KEYS ? keys : values, what);
  }
  const slots = batch.slots;
  const found = read.gatherKeySlots(level, i, slots);
  const numberKeys = s.numberKeys;
  const numberValues = s.numberValues;
  if (what !== ENTRIES) return readSide(s, slots, found, what === KEYS ? keys : values, what);
  let count = 0;
  for (let j = 0; j < found; j++) {
    const k = slots[j];
    // The views again for each entry: a user codec's decode may have grown the buffer.
    const i32 = a.i32;
    // E_P read plainly, as load reads it (docs/design.md, "The plain reads of a lookup"): the
    // batch began with an atomic load of R_READ, and the record is read through the word read.
    const p = i32[i32[(k >> 2) + S_ENTRY] >> 2];
    if (p <= EXPUNGED) continue;
    const hi = i32[(k >> 2) + S_KEY_HI];
    keys[count] = numberKeys && isNumberSlot(hi)
      ? a.f64[k >> 3] as K
      : s.decodeKey(i32[(k >> 2) + S_KEY_LO], hi);
    values[count] = numberValues ? decodeNumberRecord(s, p) : s.decodeRecord(p);
    count++;
  }
  return count;
}

/**
 * SyncAccess.decodeRecord with its number path first, for a map of number values: a record
 * stored since the views were taken may lie past them, and goes the general way.
 */
function decodeNumberRecord<K, V>(s: SyncAccess<K, V>, p: number): V {
  const a = s.arena;
  if ((p & 1) !== 0) return immediateValue(p) as V;
  return p + RECORD_HEADER <= a.bytes && isNumberSlot(a.i32[(p >> 2) + REC_HI])
    ? a.f64[p >> 3] as V
    : s.decodeRecord(p);
}

/**
 * {@linkcode readBatch} of partition `i` from the handle's copy of the read table's keys, which
 * holds for the table the batch loaded: only each entry's E_P and record are read.
 */
function copiedEntries<K, V>(
  s: SyncAccess<K, V>,
  copy: IterationKeys<K>,
  i: number,
  keys: K[],
  values: V[],
): number {
  const a = s.arena;
  const numberValues = s.numberValues;
  const from = copy.keys[i]!;
  const entries = copy.entries[i]!;
  const n = entries.length;
  let count = 0;
  for (let j = 0; j < n; j++) {
    const i32 = a.i32; // again for each entry, as readBatch's
    const p = i32[entries[j] >> 2];
    if (p <= EXPUNGED) continue;
    keys[count] = from[j];
    values[count] = numberValues ? decodeNumberRecord(s, p) : s.decodeRecord(p);
    count++;
  }
  return count;
}

/** {@linkcode readSide} from the handle's copy of the read table's keys. */
function copiedSide<K, V>(
  s: SyncAccess<K, V>,
  copy: IterationKeys<K>,
  i: number,
  out: unknown[],
  what: typeof KEYS | typeof VALUES,
): number {
  const a = s.arena;
  const from = copy.keys[i]!;
  const entries = copy.entries[i]!;
  const n = entries.length;
  let count = 0;
  for (let j = 0; j < n; j++) {
    const p = a.i32[entries[j] >> 2];
    if (p <= EXPUNGED) continue;
    out[count++] = what === KEYS ? from[j] : s.decodeRecord(p);
  }
  return count;
}

/**
 * {@linkcode readBatch}'s loop for keys() or values(): only the side yielded is decoded, into
 * `out`, so that no codec runs for the other. A loop of its own: a test of `what` in the
 * entries' loop cost a range 1.07x per key on Deno (same run, medians).
 */
function readSide<K, V>(
  s: SyncAccess<K, V>,
  slots: readonly number[],
  found: number,
  out: unknown[],
  what: typeof KEYS | typeof VALUES,
): number {
  const a = s.arena;
  let count = 0;
  for (let j = 0; j < found; j++) {
    const k = slots[j];
    const i32 = a.i32; // again for each entry, as readBatch's
    const p = i32[i32[(k >> 2) + S_ENTRY] >> 2];
    if (p <= EXPUNGED) continue;
    out[count++] = what === KEYS
      ? s.decodeKey(i32[(k >> 2) + S_KEY_LO], i32[(k >> 2) + S_KEY_HI])
      : s.decodeRecord(p);
  }
  return count;
}

/**
 * The read table, after promoting the dirty table if the read table is amended. The promotion
 * retires the old read table: its room is made first, where the caller holds nothing (so an
 * iteration of a full map throws MapFullError only when it must promote and no room can be
 * had); the mutex stops a thread marked terminating.
 */
function promotedRead<K, V>(s: SyncAccess<K, V>): Table | null {
  const a = s.arena;
  const core = s.core;
  let read = Atomics.load(a.i32, R_READ);
  if ((read & AMENDED) !== 0) {
    s.participant.makeRoom(1);
    core.locked(() => {
      if ((Atomics.load(a.i32, R_READ) & AMENDED) !== 0) core.promoteLocked();
    });
    read = Atomics.load(a.i32, R_READ);
  }
  return core.readTable(read);
}
