/**
 * Internal. SyncMap's iteration (Range, and the Map-like iterators): the read table read in
 * batches, one hash partition each, the dirty table promoted first when it holds keys the read
 * table lacks.
 *
 * @module
 */

import type { Table } from "../_engine/table.ts";
import type { SyncAccess } from "./_sync_access.ts";
import { AMENDED, EXPUNGED, R_READ, S_ENTRY, S_KEY_HI, S_KEY_LO } from "./_sync_layout.ts";

/**
 * Iterates in batches, as GoMap does: keys are partitioned by the low `level` bits of their
 * hash (the seed is the arena's, so every table of this map agrees), and each batch, one
 * partition, is read from the read table as it is when the batch is read (the dirty table
 * promoted first if it holds keys the read table lacks, as Go's Range does). A key is in one
 * partition, so it is yielded at most once; a key present throughout is in the read table
 * when its partition is read, so it is yielded. Entries are decoded before any is yielded:
 * nothing is held in shared memory while the caller's code runs.
 */
export function* iterate<K, V>(s: SyncAccess<K, V>): Generator<[K, V], undefined, undefined> {
  for (const [keys, values] of batches(s)) {
    for (let j = 0; j < keys.length; j++) yield [keys[j], values[j]];
  }
}

/**
 * Yields each batch of an iteration in turn, as decoded keys and values (the same two arrays,
 * refilled: use a batch before asking for the next). A generator per batch, not per entry,
 * so that range() pays for it once every few entries.
 */
export function* batches<K, V>(s: SyncAccess<K, V>): Generator<[K[], V[]], undefined, undefined> {
  const level = batchLevel(s);
  const n = 1 << level;
  const start = Math.floor(Math.random() * n);
  const keys: K[] = [];
  const values: V[] = [];
  for (let step = 0; step < n; step++) {
    keys.length = 0;
    values.length = 0;
    readBatch(s, level, (start + step) & (n - 1), keys, values);
    if (keys.length > 0) yield [keys, values];
  }
}

/** The partition level for an iteration: B of the read table, promoted first. */
function batchLevel<K, V>(s: SyncAccess<K, V>): number {
  const part = s.participant;
  part.enter();
  return promotedRead(s)?.B ?? 0;
}

function readBatch<K, V>(
  s: SyncAccess<K, V>,
  level: number,
  i: number,
  keys: K[],
  values: V[],
): void {
  const part = s.participant;
  part.enter();
  const a = s.arena;
  const read = promotedRead(s);
  // The batch reads entries without a per-entry check: cover what was allocated so far.
  a.reach(a.buffer.byteLength);
  read?.collect(level, i, (k) => {
    const i32 = a.i32;
    const e = i32[(k >> 2) + S_ENTRY];
    const p = Atomics.load(i32, e >> 2);
    if (p <= EXPUNGED) return;
    keys.push(s.decodeKey(i32[(k >> 2) + S_KEY_HI], i32[(k >> 2) + S_KEY_LO]));
    values.push(s.decodeRecord(p));
  });
}

/** The read table, after promoting the dirty table if the read table is amended. */
function promotedRead<K, V>(s: SyncAccess<K, V>): Table | null {
  const a = s.arena;
  const core = s.core;
  let read = Atomics.load(a.i32, R_READ);
  if ((read & AMENDED) !== 0) {
    core.locked(() => {
      if ((Atomics.load(a.i32, R_READ) & AMENDED) !== 0) core.promoteLocked();
    });
    read = Atomics.load(a.i32, R_READ);
  }
  return core.readTable(read);
}
