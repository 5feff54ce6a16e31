/**
 * Internal. SyncMap's paths to a key's entry (the read table without a lock, then the dirty
 * table under it, as Go's sync.Map goes) and the atomic steps on an entry's `p` word that need
 * no lock: trySwap's aftermath, tryLoadOrStore and tryCompareAndSwap (the deletes are in
 * _sync_delete.ts).
 *
 * @module
 */

// The design is Go's (sync/map.go, Go 1.23), in shared memory:
//
// - The read table holds the keys that may be read without the lock. It is immutable once
//   published: only the table itself is never written, the entries it points to are. Its
//   header offset and the `amended` bit ("the dirty table holds keys the read table lacks")
//   share one word, so one read gives a reader both.
// - The dirty table, under the mutex, holds every key of the read table that is not expunged
//   plus the keys added since, so promoting it is a pointer swap.
// - An entry is one key's cell, shared by both tables: its `p` word is NIL (deleted, still in
//   the read table), EXPUNGED (deleted and absent from the dirty table) or the offset of a value
//   record. `p` changes only by atomic compare-exchange or exchange; a store to a key of the
//   read table is one such exchange, with no lock, which is why disjoint writers scale.
// - Misses (loads that had to lock) promote the dirty table once they reach its length; the
//   next store of a new key rebuilds the dirty table from the read table, expunging deleted
//   entries.

import * as key_hash_cache from "../_engine/key_hash_cache.ts";
import * as entry_memo from "./_entry_memo.ts";
import { cachedKeyString, keyNumberWords, Probe, setCachedKeyString } from "../_engine/slots.ts";
import * as slots from "../_engine/slots.ts";
import { wakeWaiters } from "./_sync_compute.ts";
import * as sync_layout from "./_sync_layout.ts";
import type { SyncAccess } from "./_sync_access.ts";
import type { Arena } from "../_engine/arena.ts";
import type { Table } from "../_engine/table.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { MEMO_WORDS } = key_hash_cache;
const { MEMO_UNKNOWN } = entry_memo;
const { MODE_STRING } = slots;
const { AMENDED, EXPUNGED, K_RECORD, NIL, R_READ, TABLE_HEADER_BYTES } = sync_layout;

/**
 * The read table's entry for number key `key` (the codec stores it as a plain float64), read
 * word `read` (Go's `read.m[key]`): 0 when the read table lacks it. No codec call and no
 * atomic: the hot path of every operation on a number key. The handle's entry memo answers for
 * a key looked up in this read table before (_entry_memo.ts); SyncMap.load writes this
 * out.
 */
export function readEntryForNumber<K, V>(s: SyncAccess<K, V>, read: number, key: number): number {
  const a = s.arena;
  const core = s.core;
  const words = keyNumberWords(key);
  const lo = words[0];
  const hi = words[1];
  const table = core.readTable(read);
  if (table === null) return 0;
  const e = s.entries.find(lo, hi, a, read);
  return e >= 0 ? e : walkReadTable(s, table, lo, hi);
}

/**
 * The entry of key words (lo, hi) in read table `table`, found by hashing the key and walking
 * the table, and noted in the handle's entry memo: 0 when the table lacks the key. The memo's
 * miss, kept out of line so that its callers stay small.
 */
function walkReadTable<K, V>(
  s: SyncAccess<K, V>,
  table: Table,
  lo: number,
  hi: number,
): number {
  const k = table.findWords(lo, hi, s.arena.memo.hash(lo, hi));
  const e = k < 0 ? 0 : s.core.entryAt(k);
  s.entries.remember(lo, hi, e);
  return e;
}

/**
 * R_READ for a lookup that walks the read table it names ({@linkcode readEntry}), read plainly
 * as {@linkcode readPastMemo} reads it: every word the walk reads lies at an offset computed
 * from this one. Loaded atomically when the table's header lies past this worker's views
 * (another worker grew the buffer and made the table there), whose reach must come after an
 * atomic load.
 */
export function readWordForWalk(a: Arena): number {
  const plain = a.i32[R_READ];
  return (plain & ~AMENDED) + TABLE_HEADER_BYTES > a.bytes ? Atomics.load(a.i32, R_READ) : plain;
}

/**
 * The read table's entry for number key `key` ({@linkcode readEntryForNumber}) with R_READ
 * read plainly when the handle's entry memo knows the key (EntryMemo.find), else loaded
 * atomically ({@linkcode readPastMemo}): 0 when the read table lacks it. For the callers that
 * need no `amended` bit. Beside {@linkcode unlockedEntryForNumber} rather than calling it: the
 * extra call cost `loadOrStore` hits 1.04x to 1.05x on Deno and LoadOrStoreCollision 1.04x to
 * 1.07x on Bun (same-run medians).
 */
export function currentEntryForNumber<K, V>(s: SyncAccess<K, V>, key: number): number {
  const words = keyNumberWords(key);
  const plain = s.arena.i32[R_READ];
  const e = s.entries.find(words[0], words[1], s.arena, plain);
  if (e > 0) return e;
  if (e < 0) return readPastMemo(s, plain, key, words[0], words[1], e);
  s.searched = plain;
  return 0;
}

/**
 * Go's Load up to the entry for number key `key` of slot words (lo, hi), once the handle's entry
 * memo gave `known` for it in the read table of read word `plain`, which the caller read plainly
 * (EntryMemo.find): 0 (no table, or the memo knows the table lacks the key), MEMO_UNKNOWN
 * or MEMO_NOT_ASKED. The read table ({@linkcode readPastMemo}), then, when the read table that
 * lacked the key is amended, SyncCore.entryLocked.
 *
 * `load` calls this only when the memo has no entry, so that its hit stays short: V8 inlines a
 * function's callees by call frequency over bytecode size, and with the walk called from `load`
 * itself, `load` optimized while a map's memo was still warming up inlined the walk's pieces and
 * left the memo's lookup a call: a hit of 1,024 int keys took 24 ns on Deno in a fresh process,
 * 20 with this (`deno run -A bench/mixed_keys.ts`, "int keys alone"). A key the memo does not know
 * pays the call: a new key's miss 1.05x to 1.08x (bench/compare_versions.ts, "unique int").
 */
export function entryPastMemo<K, V>(
  s: SyncAccess<K, V>,
  plain: number,
  key: number,
  lo: number,
  hi: number,
  known: number,
): number {
  let read = plain;
  let e = known;
  if (e < 0) {
    e = readPastMemo(s, plain, key, lo, hi, e);
    if (e !== 0) return e;
    read = s.searched;
  }
  if ((read & AMENDED) === 0) return 0;
  return lockedEntryForNumber(s, key, read);
}

/**
 * The read table's entry for number key `key` of slot words (lo, hi) when the entry memo, asked
 * about the table of read word `plain` (read plainly), answered `known` and did not know: 0 when
 * the table lacks the key, with `s.searched` set to the read word whose table it searched.
 *
 * - MEMO_UNKNOWN (the table lies within this worker's views, and the memo stands at its serial,
 *   or is switched off): the table walked where the plain read found it. Every word the walk
 *   reads lies at an offset computed from `plain` (the header, then the buckets and chains it
 *   names), so each read is ordered after the plain read as the serial's is, and sees what the
 *   table was published with (docs/design.md, "The plain reads of a lookup"). An atomic load of
 *   R_READ first would cost a miss about 13 ns on V8 (Go's LoadAndDeleteBalanced, every key's
 *   first lookup).
 * - MEMO_NOT_ASKED (the header lies past this worker's views): R_READ loaded atomically and its
 *   table searched ({@linkcode readEntryForNumber}).
 */
function readPastMemo<K, V>(
  s: SyncAccess<K, V>,
  plain: number,
  key: number,
  lo: number,
  hi: number,
  known: number,
): number {
  let read = plain;
  let e: number;
  if (known === MEMO_UNKNOWN) {
    const table = s.core.readTable(plain);
    e = table === null ? 0 : walkReadTable(s, table, lo, hi);
  } else {
    read = Atomics.load(s.arena.i32, R_READ);
    e = readEntryForNumber(s, read, key);
  }
  if (e === 0) s.searched = read;
  return e;
}

/**
 * Number key `key`'s entry as far as it can be found without the lock: the read table's entry
 * (through the memo, else {@linkcode readEntryForNumber}), 0 when absent from a read table that
 * is not amended, or -1 when the dirty table must be looked at under the lock. The `amended`
 * bit tested is the one of the read word the answer came from. The memo's answer first, the rest
 * in one call ({@linkcode readPastMemo}), as {@linkcode entryPastMemo} for `load`: a delete of
 * a deleted key (Go's DeleteCollision) 20.8 -> 19.7 ns on Deno in a fresh process, Bun neutral.
 */
export function unlockedEntryForNumber<K, V>(s: SyncAccess<K, V>, key: number): number {
  const words = keyNumberWords(key);
  const plain = s.arena.i32[R_READ];
  let e = s.entries.find(words[0], words[1], s.arena, plain);
  if (e > 0) return e;
  if (e === 0) s.searched = plain;
  else {
    e = readPastMemo(s, plain, key, words[0], words[1], e);
    if (e !== 0) return e;
  }
  return (s.searched & AMENDED) === 0 ? 0 : -1;
}

/**
 * Go's Load up to the entry for a number key (`has`, `loadOk`): the entry memo's answer, else
 * {@linkcode entryPastMemo}, as `load` writes it out (for the same reason: its callees as V8
 * ranks them for inlining).
 */
export function entryForNumber<K, V>(s: SyncAccess<K, V>, key: number): number {
  const plain = s.arena.i32[R_READ];
  const words = keyNumberWords(key);
  const e = s.entries.find(words[0], words[1], s.arena, plain);
  return e > 0 || (e === 0 && (plain & AMENDED) === 0)
    ? e
    : entryPastMemo(s, plain, key, words[0], words[1], e);
}

/**
 * Number key `key`'s entry once the read table of read word `searched` lacked it and was
 * amended: SyncCore.entryLocked, which looks at the dirty table under the lock, and at the
 * read table again if it is no longer that one.
 */
export function lockedEntryForNumber<K, V>(
  s: SyncAccess<K, V>,
  key: number,
  searched: number,
): number {
  return s.core.entryLocked(s.keyProbe(key as K, s.nested ? new Probe() : s.probe), searched);
}

/**
 * {@linkcode entryForRead} of a string key under a built-in codec. A key the handle's key hash
 * cache holds is answered from its cache entry's memo words when they were written under the
 * read table's serial, without making a probe (as {@linkcode readEntry} would answer once it had
 * one); otherwise the probe is made from the cache entry. Any other string takes the probe's
 * path, as does a nested call (its scratch is not the handle's).
 */
export function entryForString<K, V>(s: SyncAccess<K, V>, key: string): number {
  const a = s.arena;
  const p = s.probe;
  const cached = s.nested ? null : cachedKeyString(p, key, a.seed0, a.seed1);
  if (cached === null) return entryForRead(s, key as K);
  // R_READ read plainly while the memo words answer, as EntryMemo.find does: the serial's offset is
  // computed from the word read, and a header past the views is not read (generation 0, never
  // in use, stands for it). A walk loads the word atomically first.
  let read = a.i32[R_READ];
  const h = read & ~AMENDED;
  let e = 0;
  if (h !== 0) {
    const at = cached.length - MEMO_WORDS;
    // The generation first: coming round, it zeroes the memo words of every cached entry.
    const gen = h + TABLE_HEADER_BYTES > a.bytes ? 0 : s.entries.generation(a.i32, h >> 2);
    if (gen !== 0 && cached[at] === gen) e = cached[at + 1];
    else {
      setCachedKeyString(p, key, cached);
      read = readWordForWalk(a);
      e = readEntry(s, read, p);
    }
  }
  if (e !== 0 || (read & AMENDED) === 0) return e;
  setCachedKeyString(p, key, cached);
  return s.core.entryLocked(p, read);
}

/**
 * Go's Load up to the entry, through the key's probe: the read table, then, when amended, the
 * dirty table. Any key; its callers send number keys of a number codec to
 * {@linkcode entryForNumber} and string keys of a built-in codec to {@linkcode entryForString}
 * first, each from its own branch: a function of theirs that chose between the two cost a string
 * `load` hit 2 to 6 ns on Deno in a process whose maps use both key types (28 ns a hit in a
 * process of string keys alone, 32 to 36 after a number-key map's loads).
 */
export function entryForRead<K, V>(s: SyncAccess<K, V>, key: K): number {
  const a = s.arena;
  const core = s.core;
  // Encoded before anything shared is read: a user codec's encode may call this map.
  const probe = s.keyProbe(key, s.nested ? new Probe() : s.probe, true);
  const read = readWordForWalk(a);
  const e = readEntry(s, read, probe);
  if (e !== 0 || (read & AMENDED) === 0) return e;
  return core.entryLocked(probe, read);
}

/**
 * The entry of `probe`'s key in the read table of read word `read`, which the caller loaded
 * atomically (a published table, never one a step under the mutex may still roll back): 0 when
 * the table lacks it. A string key found in the handle's key hash cache keeps what this found
 * in the cache entry's memo words, under the entry memo's generation for the table's serial
 * (_entry_memo.ts), and is answered from them while the read table stands.
 */
export function readEntry<K, V>(s: SyncAccess<K, V>, read: number, probe: Probe): number {
  const core = s.core;
  const table = core.readTable(read);
  if (table === null) return 0;
  const at = probe.memoAt;
  if (at < 0 || !probe.hasWords || probe.mode !== MODE_STRING) return core.findIn(table, probe);
  const gen = s.entries.generation(s.arena.i32, table.h);
  const w = probe.words;
  if (w[at] === gen) return w[at + 1];
  const e = core.findIn(table, probe);
  w[at] = gen;
  w[at + 1] = e;
  return e;
}

/**
 * After replacing record `p` (or nil, or a pending key's `p`) of entry `e`: counts a new
 * value, or retires `p`. Returns the record to report as the previous value, or NIL. The
 * caller decodes it (outside the lock): it stays readable until this participant's next
 * quiescent point, and it is retired first because decoding may run user code, which may use
 * the room reserved for this.
 */
export function replaced<K, V>(s: SyncAccess<K, V>, p: number, e: number): number {
  if (p <= EXPUNGED) {
    s.core.count(1);
    // A pending key's waiters find the value stored over it.
    if (p < NIL) wakeWaiters(s.arena.i32, e);
    return NIL;
  }
  // SyncCore.retireRecord written out: JavaScriptCore left the extra call in swap's path.
  if ((p & 1) === 0) s.participant.retire(p | K_RECORD);
  return p;
}

/**
 * Go's tryLoadOrStore on entry `e` with the new value already in `record`. Returns NIL when
 * it stored `record`; EXPUNGED when it could not (the entry is expunged: Go's !ok); else the
 * record already there (loaded), for the caller to decode, outside the lock if it holds it.
 * The caller frees `record` unless it was stored.
 */
export function tryLoadOrStore<K, V>(s: SyncAccess<K, V>, e: number, record: number): number {
  const i32 = s.arena.i32;
  let p = i32[e >> 2]; // plainly, as deleteEntry reads it
  for (;;) {
    // A pending key has no value: it is stored over as NIL is, and its waiters woken.
    if (p > NIL) return p;
    const found = Atomics.compareExchange(i32, e >> 2, p, record);
    if (found === p) {
      s.core.published = record; // before any call: see SyncCore.published
      s.core.count(1);
      if (p < NIL) wakeWaiters(i32, e);
      // Last: a call cut short (a stack overflow at its entry) skips only the note, which a
      // compute's watch may then miss, not the count or the wake.
      s.core.noteStored(e, record);
      return NIL;
    }
    p = found;
  }
}

/** Go's tryCompareAndSwap, with the new value encoded in `next`. */
export function tryCompareAndSwap<K, V>(
  s: SyncAccess<K, V>,
  e: number,
  expected: Probe,
  next: Probe,
): boolean {
  const i32 = s.arena.i32;
  const core = s.core;
  let p = i32[e >> 2]; // plainly, as deleteEntry reads it
  if (p <= EXPUNGED || !core.recordEquals(p, expected)) return false;
  const record = core.newRecord(next);
  for (;;) {
    const found = Atomics.compareExchange(i32, e >> 2, p, record);
    if (found === p) {
      core.retireRecord(p);
      core.noteStored(e, record); // last, as in tryLoadOrStore
      return true;
    }
    p = found;
    if (p <= EXPUNGED || !core.recordEquals(p, expected)) {
      core.freeRecord(record);
      return false;
    }
  }
}
