/**
 * Internal. Where a SyncMap keeps its state in its arena: the root words, entries, records,
 * table slots and retire tags. docs/design.md ("SyncMap memory") tabulates each word's writers,
 * readers and protection; the constants here are the only place the offsets are spelled.
 *
 * @module
 */

import type { Arena } from "../_engine/arena.ts";
import * as arena_module from "../_engine/arena.ts";
import type { Registry } from "../_engine/registry.ts";
import * as registry from "../_engine/registry.ts";
import { numberWords } from "../_engine/slots.ts";
import * as table from "../_engine/table.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { H_ROOT } = arena_module;
const { SEAT_WORDS } = registry;
const { TABLE_WORDS } = table;

// The root is 64 words from H_ROOT, 64-byte aligned, grouped in cache lines by how often each
// word is written, so that writing one does not evict the read-mostly words every load needs.

// Line 0: read by every operation, written rarely.
export const R_READ = H_ROOT, // read table header offset | AMENDED; 0: empty and not amended
  R_SEATS = H_ROOT + 1, // word index of the participant seats
  R_NSEATS = H_ROOT + 2, // number of participant seats
  R_SEATS_BLOCK = H_ROOT + 3, // the seats' block as allocated (they start at its next 64-byte line)
  R_JOURNAL = H_ROOT + 4; // byte offset of the mutex's journal
// Line 1: the mutex and what it guards.
export const R_MU = H_ROOT + 16, // the mutex (a mutex word, futex.ts)
  R_DIRTY = H_ROOT + 17, // dirty table header offset; 0 when there is none
  R_MISSES = H_ROOT + 18, // loads that took the lock since the last promotion
  R_SERIAL = H_ROOT + 19, // and + 20: the serial (lo, hi) of the last table made the read table
  R_UNLISTED = H_ROOT + 21; // a step's unlisted list (_engine/unlisted_list.ts); 0 between steps
// Line 2: reclamation and recovery (registry.ts, reclaim.ts, _sync_recovery.ts).
export const R_EPOCH = H_ROOT + 32, // the global epoch
  R_ORPHANS = H_ROOT + 33, // released seats still holding a retire list or a cache
  R_SEATS_HIGH = H_ROOT + 34, // one past the highest participant seat ever claimed
  R_PAUSE = H_ROOT + 35, // owner id of the thread stopping the world for a recovery; 0 when none
  R_SWEEP_DUE = H_ROOT + 36; // 1: a sweep is due; 2: a release is put off (registry.ts sweepWord)
// Line 3: written by a clear and by the sweep's recount.
/**
 * The base of the key count: keys with a value, less what the participant seats' KEYS words
 * count (registry.ts; SyncCore.keyCount adds them up).
 */
export const R_COUNT = H_ROOT + 48;

/** Entries of the mutex's journal, whose byte offset R_JOURNAL holds. */
export const SYNC_JOURNAL_ENTRIES = 512;

/** Bit 0 of R_READ: the dirty table holds keys the read table lacks. */
export const AMENDED = 1;

// An entry is 16 bytes: p, the key's slot words (lo, hi; the entry owns the key's blob), and
// `owner`: 0 while the entry lives, -1 once removed from the dirty table and retired, else the
// header of the retired table whose freeing frees it.
export const E_P = 0;
export const E_KEY_LO = 1;
export const E_KEY_HI = 2;
export const E_OWNER = 3;
export const ENTRY_BYTES = 16;

/** Entry `p`: deleted, still in the read table. */
export const NIL = 0;
/** Entry `p`: deleted and absent from the dirty table. */
export const EXPUNGED = 1;
// Entry `p` below 0: pending. The key has no value; the thread whose owner id (census.ts) is -p
// is computing one (SyncMap.loadOrCompute; _sync_compute.ts). Record offsets are positive (and
// 16-aligned), so the negative words are free, and every reader that takes `p <= EXPUNGED` for
// "no value" reads a pending key as absent without a further test.

/** The pending `p` of the thread with owner id `owner`. */
export function pendingOf(owner: number): number {
  return -owner;
}

// Entry `p` odd and above EXPUNGED: an immediate, a value held in the word itself, with no
// record. Only a map whose values use a codec that stores numbers as float64 slots (`auto`,
// `float64` and `int32`: SyncCore.immediates) makes them, for an integer from 0 to IMMEDIATE_MAX,
// as 2v + 3 (so that 0 is 3, clear of NIL and EXPUNGED). Record offsets are 16-aligned, so
// `(p & 1) !== 0` tells the two apart once `p > EXPUNGED` is known. An immediate is never
// allocated, retired or freed, and reads nothing but the word: a store of one is the entry's
// compare-exchange alone. Its slot words are the number's float64 words, as a record of the
// same number holds, so values compare (compareAndSwap, compute) alike either way.

/** The largest value an immediate holds: 2v + 3 must stay a positive int32. */
export const IMMEDIATE_MAX = 2 ** 30 - 2;

/**
 * The immediate `p` of number `v`, or 0 when `v` has none (not an integer in range, or -0). In a
 * map that makes immediates, every value that has one is stored as one, never in a record
 * (`verify()` checks it), so such a value is compared by its word alone.
 */
export function immediateOf(v: number): number {
  return v >= 0 && v <= IMMEDIATE_MAX && (v | 0) === v && (v !== 0 || 1 / v > 0) ? 2 * v + 3 : 0;
}

/** The number immediate `p` holds. */
export function immediateValue(p: number): number {
  return (p >> 1) - 1;
}

/** The slot words `[lo, hi]` of the number immediate `p` holds (numberWords' scratch). */
export function immediateWords(p: number): Int32Array {
  return numberWords(immediateValue(p));
}

// In a table, the value slot of a key holds its entry's offset (S_ENTRY words from the key
// slot), and, once the table is retired, S_OWNS: bit 0 set when freeing the table frees that
// entry, and in the other bits a record to free with it (a value `clear` took out of the
// entry). The mark lives in the table, not the entry: by the time a retired table is freed, an
// entry it merely shared may have been freed (and reused) already, so freeing a table reads
// only its own slots. Readers never read S_OWNS.
export const S_ENTRY = 16;
export const S_OWNS = 17;
/** A table slot's key words (lo, hi). */
export const S_KEY_LO = 0;
export const S_KEY_HI = 1;

/** A value record: the value's slot words (lo, hi), then its blob, if any, inline. */
export const RECORD_HEADER = 8;
/** A record's slot words. */
export const REC_LO = 0;
export const REC_HI = 1;

// Retired blocks are tagged with their kind in the low bits of their 16-aligned offset.
export const K_RECORD = 0;
export const K_ENTRY = 1;
export const K_TABLE = 2;

/**
 * Header words (lo, hi) after the generic table header: the table's serial, stamped from
 * R_SERIAL when it is made the read table, so that no two read tables ever share one (a header
 * offset is reused once its table is freed). 0 while the table is dirty.
 */
export const T_SERIAL = TABLE_WORDS;

/** Bytes of a table header block: the generic header and the serial. */
export const TABLE_HEADER_BYTES = (TABLE_WORDS + 2) * 4;

/**
 * Where a SyncMap arena keeps its participants. Throws RangeError when the root's seat words
 * (written once, as the map is made) do not name seats inside the arena.
 */
export function registryOf(arena: Arena): Registry {
  const seats = arena.i32[R_SEATS];
  const count = arena.i32[R_NSEATS];
  if (!(count > 0 && seats > 0 && seats + count * SEAT_WORDS <= arena.i32.length)) {
    throw new RangeError(`corrupt SyncMap root: ${count} participant seats at word ${seats}`);
  }
  return {
    arena,
    epochWord: R_EPOCH,
    orphanWord: R_ORPHANS,
    sweepWord: R_SWEEP_DUE,
    highWord: R_SEATS_HIGH,
    pauseWord: R_PAUSE,
    seats,
    count,
  };
}
